//! Compile and evaluation errors, worded as upstream's where a user reads them in a field error.

/// Why an expression was rejected when its CRD or policy was written.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CompileError {
    /// The text is not CEL; `message` is the parser's `ERROR: <input>:L:C: ...` lines.
    #[error("compilation failed: {message}")]
    Syntax {
        /// The parser's errors, one per line, cel-go's layout.
        message: String,
    },
    /// The expression names a variable or function the environment does not declare.
    #[error(
        "compilation failed: ERROR: <input>:{line}:{column}: undeclared reference to '{name}' (in container '')"
    )]
    UndeclaredReference {
        /// The undeclared name.
        name: String,
        /// 1-based line of the reference.
        line: usize,
        /// 1-based column of the reference.
        column: usize,
    },
    /// A field is selected from an object whose schema does not declare it, as upstream's
    /// type checker refuses it.
    #[error("compilation failed: ERROR: <input>:{line}:{column}: undefined field '{name}'")]
    UndefinedField {
        /// The field, as the expression spells it.
        name: String,
        /// 1-based line of the selection.
        line: usize,
        /// 1-based column of the selection (its `.`).
        column: usize,
    },
    /// An operator is applied to operands no overload of it takes, as upstream's type
    /// checker refuses it (`self.replicas + 'a'`).
    #[error(
        "compilation failed: ERROR: <input>:{line}:{column}: found no matching overload for '{function}' applied to '({arguments})'"
    )]
    NoMatchingOverload {
        /// The operator or function, as cel-go names it (`_+_`, `_<_`, `size`).
        function: String,
        /// The operand types, comma-separated, as cel-go prints them.
        arguments: String,
        /// 1-based line of the application.
        line: usize,
        /// 1-based column of the application.
        column: usize,
    },
    /// A literal argument is invalid, caught at compile time as upstream's library
    /// validators do (a regex that does not compile, a malformed `quantity('..')`, ...).
    #[error("compilation failed: ERROR: <input>:{line}:{column}: {message}")]
    InvalidArgument {
        /// What is wrong with the literal.
        message: String,
        /// 1-based line of the call.
        line: usize,
        /// 1-based column of the call.
        column: usize,
    },
    /// The static worst-case cost exceeds the limit; `factor` is formatted as upstream's.
    #[error(
        "estimated rule cost exceeds budget by factor of {factor} (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)"
    )]
    CostExceeded {
        /// `more than 100x`, `1.200000x` or `3.4x`, as upstream prints it.
        factor: String,
    },
    /// The `cel` crate failed internally (a panic caught by the guard).
    #[error("compilation failed: internal error: {message}")]
    Internal {
        /// What failed.
        message: String,
    },
}

/// Why an evaluation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    /// The evaluation would spend more than the per-call cost limit.
    #[error("operation cancelled: actual cost limit exceeded")]
    CostLimitExceeded,
    /// A field or map key that is not present was read (use `has()` or `?.`).
    #[error("no such key: {key}")]
    NoSuchKey {
        /// The missing key.
        key: String,
    },
    /// A function was applied to arguments of types it has no overload for.
    #[error("{message}")]
    NoSuchOverload {
        /// cel-go's `found no matching overload for '...' applied to '(...)'`.
        message: String,
    },
    /// A list index out of range.
    #[error("index out of bounds: {index}")]
    IndexOutOfBounds {
        /// The index, as written.
        index: String,
    },
    /// Division or modulus by zero.
    #[error("division by zero")]
    DivisionByZero,
    /// Integer overflow.
    #[error("integer overflow")]
    Overflow,
    /// A declared variable the program uses had no binding.
    #[error("no such attribute(s): {name}")]
    Unbound {
        /// The variable.
        name: String,
    },
    /// A library function failed (invalid URL, IP, quantity, regex, ...).
    #[error("{message}")]
    Function {
        /// The function's message.
        message: String,
    },
    /// The result is not representable as JSON (a type value, NaN, ...).
    #[error("unsupported result: {message}")]
    UnsupportedResult {
        /// What could not be converted.
        message: String,
    },
    /// Any other evaluation error, with the `cel` crate's message.
    #[error("{message}")]
    Other {
        /// The message.
        message: String,
    },
    /// The `cel` crate failed internally (a panic caught by the guard).
    #[error("internal error: {message}")]
    Internal {
        /// What failed.
        message: String,
    },
}

impl EvalError {
    /// Maps the `cel` crate's error to ours, keeping the texts upstream users know.
    pub(crate) fn from_execution(e: cel::ExecutionError) -> EvalError {
        use cel::ExecutionError as E;
        match e {
            E::NoSuchKey(k) => EvalError::NoSuchKey { key: k.to_string() },
            E::NoSuchOverload(o) => EvalError::NoSuchOverload {
                message: o.to_string(),
            },
            E::IndexOutOfBounds(i) => EvalError::IndexOutOfBounds {
                index: format!("{i:?}"),
            },
            E::DivisionByZero(_) | E::RemainderByZero(_) => EvalError::DivisionByZero,
            E::Overflow(..) => EvalError::Overflow,
            E::FunctionError { message, .. } => {
                if message == crate::library::COST_EXCEEDED {
                    EvalError::CostLimitExceeded
                } else {
                    EvalError::Function { message }
                }
            }
            E::UndeclaredReference(name) => EvalError::Unbound {
                name: name.to_string(),
            },
            other => EvalError::Other {
                message: other.to_string(),
            },
        }
    }
}

//! CEL's lexical rules that API validation and the CEL environment share: its reserved
//! words (refused as variable names, escaped as `__word__` when they are property names).

/// CEL's reserved words.
pub const RESERVED: &[&str] = &[
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// CEL's `IDENT` minus the reserved words.
pub fn is_identifier(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
        && !RESERVED.contains(&name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn identifiers_exclude_reserved_words() {
        assert!(super::is_identifier("_x1"));
        assert!(!super::is_identifier("1x"));
        assert!(!super::is_identifier("a-b"));
        assert!(!super::is_identifier("namespace"));
        assert!(!super::is_identifier(""));
    }
}

//! Behaviour tests: upstream's library test cases, Gateway API rules on example objects, cost
//! limits, error texts, and odd inputs that must not panic.

use crate::{AdmissionVariables, Bindings, CompileError, Env, EvalError, Program};
use serde_json::{json, Value};

/// Evaluates `expr` with `self` bound to `value` under `schema`.
fn eval_with(expr: &str, schema: &Value, value: &Value) -> Result<Value, String> {
    let env = Env::crd_rule(schema, false);
    let program = Program::compile(expr, &env).map_err(|e| e.to_string())?;
    program
        .eval(&Bindings::new().with("self", value))
        .map_err(|e| e.to_string())
}

/// Evaluates an expression without variables.
fn eval(expr: &str) -> Result<Value, String> {
    eval_with(expr, &json!({}), &Value::Null)
}

fn assert_true(exprs: &[&str]) {
    for e in exprs {
        assert_eq!(eval(e), Ok(json!(true)), "{e}");
    }
}

#[test]
fn program_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Program>();
    check::<Env>();
}

#[test]
fn fields_of_objects_are_selected_and_tested_with_has() {
    let schema = json!({"type": "object", "properties": {
        "spec": {"type": "object", "properties": {"replicas": {"type": "integer"}, "name": {"type": "string"}}}
    }});
    let obj = json!({"spec": {"replicas": 3}});
    assert_eq!(
        eval_with("self.spec.replicas == 3", &schema, &obj),
        Ok(json!(true))
    );
    assert_eq!(
        eval_with("has(self.spec.name)", &schema, &obj),
        Ok(json!(false))
    );
    assert_eq!(
        eval_with("self.spec.name == 'x'", &schema, &obj),
        Err("no such key: name".into())
    );
}

#[test]
fn number_fields_are_doubles_and_integer_fields_ints() {
    let schema = json!({"type": "object", "properties": {
        "ratio": {"type": "number"}, "count": {"type": "integer"}
    }});
    let obj = json!({"ratio": 1, "count": 2});
    assert_eq!(
        eval_with("self.ratio == 1.0", &schema, &obj),
        Ok(json!(true))
    );
    assert_eq!(
        eval_with("type(self.ratio) == double", &schema, &obj),
        Ok(json!(true))
    );
    assert_eq!(
        eval_with("type(self.count) == int", &schema, &obj),
        Ok(json!(true))
    );
}

#[test]
fn int_or_string_fields_are_either() {
    let schema = json!({"type": "object", "properties": {
        "port": {"x-kubernetes-int-or-string": true}
    }});
    for (obj, want) in [
        (json!({"port": 80}), "int"),
        (json!({"port": "http"}), "string"),
    ] {
        let expr = format!("type(self.port) == {want}");
        assert_eq!(eval_with(&expr, &schema, &obj), Ok(json!(true)), "{obj}");
    }
}

#[test]
fn reserved_and_punctuated_property_names_are_escaped() {
    let schema = json!({"type": "object", "properties": {
        "namespace": {"type": "string"}, "x-y": {"type": "string"}, "a.b": {"type": "string"}
    }});
    let obj = json!({"namespace": "ns", "x-y": "1", "a.b": "2"});
    assert_eq!(
        eval_with(
            "self.__namespace__ == 'ns' && self.x__dash__y == '1' && self.a__dot__b == '2'",
            &schema,
            &obj
        ),
        Ok(json!(true))
    );
}

#[test]
fn map_keys_are_not_escaped() {
    let schema = json!({"type": "object", "additionalProperties": {"type": "string"}});
    let obj = json!({"app.kubernetes.io/name": "x"});
    assert_eq!(
        eval_with("self['app.kubernetes.io/name'] == 'x'", &schema, &obj),
        Ok(json!(true))
    );
}

#[test]
fn date_time_and_duration_strings_are_timestamps_and_durations() {
    let schema = json!({"type": "object", "properties": {
        "at": {"type": "string", "format": "date-time"},
        "every": {"type": "string", "format": "duration"}
    }});
    let obj = json!({"at": "2024-01-02T03:04:05Z", "every": "1m30s"});
    assert_eq!(
        eval_with(
            "self.at.getFullYear() == 2024 && self.every == duration('90s')",
            &schema,
            &obj
        ),
        Ok(json!(true))
    );
}

#[test]
fn transition_rules_report_old_self() {
    let schema = json!({"type": "string"});
    let env = Env::crd_rule(&schema, true);
    let rule = Program::compile("self == oldSelf", &env).unwrap();
    assert!(rule.uses_old_self());
    assert!(!Program::compile("self == 'a'", &env)
        .unwrap()
        .uses_old_self());
    let (new, old) = (json!("a"), json!("b"));
    let b = Bindings::new().with("self", &new).with("oldSelf", &old);
    assert_eq!(rule.eval(&b), Ok(json!(false)));
}

#[test]
fn optional_old_self_is_none_on_create() {
    let schema = json!({"type": "string"});
    let env = Env::crd_rule(&schema, true).with_optional_old_self();
    let rule =
        Program::compile("oldSelf.hasValue() ? oldSelf.value() == self : true", &env).unwrap();
    let new = json!("a");
    assert_eq!(
        rule.eval(&Bindings::new().with("self", &new)),
        Ok(json!(true))
    );
}

#[test]
fn message_expressions_return_strings() {
    let schema = json!({"type": "object", "properties": {"name": {"type": "string"}}});
    let obj = json!({"name": "web"});
    assert_eq!(
        eval_with("'name ' + self.name + ' is taken'", &schema, &obj),
        Ok(json!("name web is taken"))
    );
}

#[test]
fn optional_syntax_works() {
    let schema = json!({"type": "object", "properties": {"a": {"type": "object", "properties": {"b": {"type": "string"}}}}});
    let obj = json!({"a": {}});
    assert_eq!(
        eval_with("self.?a.?b.orValue('none')", &schema, &obj),
        Ok(json!("none"))
    );
    assert_eq!(
        eval_with("self.a.?b.hasValue()", &schema, &obj),
        Ok(json!(false))
    );
}

#[test]
fn standard_macros_and_string_functions_work() {
    assert_true(&[
        "[1, 2, 3].all(x, x > 0)",
        "[1, 2, 3].exists(x, x == 2)",
        "[1, 2, 3].exists_one(x, x == 2)",
        "[1, 2, 3].map(x, x * 2) == [2, 4, 6]",
        "[1, 2, 3].filter(x, x > 1) == [2, 3]",
        "size('abc') == 3 && 'abc'.size() == 3",
        "'abc'.matches('^a') && 'abc'.startsWith('a') && 'abc'.endsWith('c') && 'abc'.contains('b')",
        "'abc'.charAt(1) == 'b'",
        "'abcb'.indexOf('b') == 1 && 'abcb'.lastIndexOf('b') == 3",
        "'AbC'.lowerAscii() == 'abc' && 'abc'.upperAscii() == 'ABC'",
        "'aaa'.replace('a', 'b') == 'bbb'",
        "'a,b'.split(',') == ['a', 'b']",
        "'hello'.substring(1, 3) == 'el'",
        "' x '.trim() == 'x'",
        "['a', 'b'].join('-') == 'a-b'",
    ]);
}

#[test]
fn kubernetes_list_functions_work() {
    assert_true(&[
        "[1, 2, 3].isSorted() && ![2, 1].isSorted()",
        "[1, 2, 3].sum() == 6 && [1.5, 2.5].sum() == 4.0 && [].sum() == 0",
        "[3, 1, 2].min() == 1 && [3, 1, 2].max() == 3",
        "[1, 2, 1].indexOf(1) == 0 && [1, 2, 1].lastIndexOf(1) == 2 && [1].indexOf(5) == -1",
        "['b', 'a'].min() == 'a'",
    ]);
    assert_eq!(eval("[].min()"), Err("min called on empty list".into()));
}

#[test]
fn kubernetes_regex_functions_work() {
    assert_true(&[
        "'abc 123'.find('[0-9]+') == '123'",
        "'abc'.find('[0-9]+') == ''",
        "'123 abc 456'.findAll('[0-9]+') == ['123', '456']",
        "'123 abc 456'.findAll('[0-9]+', 1) == ['123']",
    ]);
}

#[test]
fn kubernetes_url_functions_work() {
    assert_true(&[
        "isURL('https://example.com:80/path?query=val#fragment')",
        "!isURL('not a url') && !isURL('mailto:x@example.com')",
        "url('https://example.com:80/').getScheme() == 'https'",
        "url('https://example.com:80/').getHost() == 'example.com:80'",
        "url('https://example.com:80/').getHostname() == 'example.com'",
        "url('https://example.com:80/').getPort() == '80'",
        "url('https://[::1]:80/').getHostname() == '::1'",
        "url('https://[::1]:80/').getHost() == '[::1]:80'",
        "url('https://example.com/').getPort() == ''",
        "url('https://example.com/a%20b').getEscapedPath() == '/a%20b'",
        "url('https://example.com/?k=a&k=b&j=c').getQuery() == {'k': ['a', 'b'], 'j': ['c']}",
        "url('/absolute/path').getScheme() == ''",
    ]);
}

#[test]
fn kubernetes_quantity_functions_work() {
    assert_true(&[
        "isQuantity('1Gi') && !isQuantity('1Gj')",
        "quantity('1Gi') == quantity('1024Mi')",
        "quantity('200M').isLessThan(quantity('1G'))",
        "quantity('2').isGreaterThan(quantity('1500m'))",
        "quantity('1').compareTo(quantity('2')) == -1",
        "quantity('50k').add(quantity('20k')) == quantity('70k')",
        "quantity('50k').add(20) == quantity('50020')",
        "quantity('50k').sub(quantity('20k')) == quantity('30k')",
        "quantity('50k').asInteger() == 50000",
        "quantity('50k').isInteger() && !quantity('1e20').isInteger() && !quantity('1500m').isInteger()",
        "quantity('50.5').asApproximateFloat() == 50.5",
        "quantity('-1').sign() == -1 && quantity('0').sign() == 0",
    ]);
    assert!(eval("quantity('500m').asInteger()").is_err());
}

#[test]
fn kubernetes_ip_and_cidr_functions_work() {
    assert_true(&[
        "isIP('1.2.3.4') && isIP('::1') && !isIP('1.2.3.04') && !isIP('fe80::1%eth0')",
        "!isIP('::ffff:1.2.3.4')",
        "ip('1.2.3.4').family() == 4 && ip('::1').family() == 6",
        "ip('127.0.0.1').isLoopback() && ip('0.0.0.0').isUnspecified()",
        "ip('169.254.1.1').isLinkLocalUnicast() && ip('224.0.0.1').isLinkLocalMulticast()",
        "ip('10.0.0.1').isGlobalUnicast() && !ip('255.255.255.255').isGlobalUnicast()",
        "ip.isCanonical('2001:db8::1') && !ip.isCanonical('2001:DB8::1')",
        "string(ip('1.2.3.4')) == '1.2.3.4'",
        "isCIDR('10.0.0.0/8') && !isCIDR('10.0.0.0/33') && !isCIDR('10.0.0.0')",
        "cidr('10.0.0.0/8').containsIP(ip('10.1.2.3')) && cidr('10.0.0.0/8').containsIP('10.1.2.3')",
        "!cidr('10.0.0.0/8').containsIP('11.0.0.1')",
        "cidr('10.0.0.0/8').containsCIDR('10.1.0.0/16') && !cidr('10.1.0.0/16').containsCIDR('10.0.0.0/8')",
        "cidr('10.1.2.3/8').masked() == cidr('10.0.0.0/8')",
        "cidr('10.1.2.3/8').ip() == ip('10.1.2.3') && cidr('10.0.0.0/8').prefixLength() == 8",
        "string(cidr('::1/128')) == '::1/128'",
    ]);
}

#[test]
fn kubernetes_format_library_works() {
    assert_true(&[
        "!format.dns1123Label().validate('my-name').hasValue()",
        "format.dns1123Label().validate('My_Name').hasValue()",
        "format.named('dns1123Subdomain').value().validate('a.b').hasValue() == false",
        "!format.named('nope').hasValue()",
        "!format.uuid().validate('123e4567-e89b-12d3-a456-426614174000').hasValue()",
    ]);
}

#[test]
fn syntax_errors_read_as_upstreams() {
    let err = Program::compile("self.x ==", &Env::crd_rule(&json!({}), false)).unwrap_err();
    assert!(matches!(err, CompileError::Syntax { .. }));
    assert!(
        err.to_string()
            .starts_with("compilation failed: ERROR: <input>:1:"),
        "{err}"
    );
}

#[test]
fn undeclared_variables_and_functions_are_refused_at_compile_time() {
    let env = Env::crd_rule(&json!({}), false);
    let err = Program::compile("foo == 1", &env).unwrap_err();
    assert_eq!(
        err.to_string(),
        "compilation failed: ERROR: <input>:1:1: undeclared reference to 'foo' (in container '')"
    );
    let err = Program::compile("self.x == 1 && nope(self)", &env).unwrap_err();
    assert!(
        matches!(&err, CompileError::UndeclaredReference { name, .. } if name == "nope"),
        "{err}"
    );
    // oldSelf is only declared when asked for.
    assert!(Program::compile("self == oldSelf", &env).is_err());
    // comprehension variables are in scope inside only.
    assert!(Program::compile("[1].all(x, x > 0)", &env).is_ok());
    assert!(Program::compile("[1].all(x, x > 0) && x > 0", &env).is_err());
}

#[test]
fn fields_the_schema_does_not_declare_are_refused_at_compile_time() {
    // Upstream's checker: `compilation failed: ERROR: <input>:1:5: undefined field 'nope'`,
    // at the selection's dot.
    let schema = json!({"type": "object", "properties": {
        "spec": {"type": "object", "properties": {
            "items": {"type": "array", "maxItems": 4, "items": {"type": "object",
                "properties": {"port": {"type": "integer"}}}},
            "labels": {"type": "object", "maxProperties": 4,
                "additionalProperties": {"type": "string", "maxLength": 8}},
            "raw": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            "namespace": {"type": "string"},
            "a.b": {"type": "string"},
        }},
    }});
    let env = Env::crd_rule(&schema, true);
    let refused = |expr: &str| {
        Program::compile(expr, &env)
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        refused("self.nope == 1"),
        "compilation failed: ERROR: <input>:1:5: undefined field 'nope'"
    );
    assert_eq!(
        refused("self.spec.nope"),
        "compilation failed: ERROR: <input>:1:10: undefined field 'nope'"
    );
    for (expr, field) in [
        ("has(self.spec.nope)", "nope"),
        ("self.spec.items.all(i, i.nope > 0)", "nope"),
        ("self.spec.items[0].host == 'x'", "host"),
        ("self.spec.namespace == 'x'", "namespace"),
        ("oldSelf.spec.itemz == self.spec.items", "itemz"),
        (
            "self.spec.items.exists(i, self.spec.items.all(j, j.port == i.prot))",
            "prot",
        ),
    ] {
        let err = refused(expr);
        assert!(
            err.ends_with(&format!("undefined field '{field}'")),
            "{expr}: {err}"
        );
    }
    for expr in [
        "self.spec.items.all(i, i.port > 0)",
        "self.spec.labels.anything == 'x'",
        "self.spec.raw.any.depth == 1",
        "self.spec.__namespace__ == 'x' && self.spec.a__dot__b == 'y'",
        "[{'nope': 1}].all(m, m.nope == 1)",
        "self.spec.items.map(i, i).all(i, i.whatever == 1)",
    ] {
        assert!(Program::compile(expr, &env).is_ok(), "{expr}");
    }
    // Dynamic variables and schemaless objects select anything.
    let dynamic = Env::new().with_variable("request", None);
    assert!(Program::compile("request.anything.at.all == 1", &dynamic).is_ok());
}

#[test]
fn invalid_literal_arguments_are_refused_at_compile_time() {
    let env = Env::crd_rule(&json!({"type": "string"}), false);
    for expr in [
        "self.matches('[')",
        "quantity('1Gj').sign() == 1",
        "ip('1.2.3') == ip('1.2.3.4')",
        "cidr('x').prefixLength() == 1",
    ] {
        assert!(
            matches!(
                Program::compile(expr, &env),
                Err(CompileError::InvalidArgument { .. })
            ),
            "{expr}"
        );
    }
}

#[test]
fn unbounded_lists_exceed_the_static_cost_limit() {
    let schema = json!({"type": "array", "items": {"type": "string"}});
    let env = Env::crd_rule(&schema, false);
    let err = Program::compile("self.all(a, self.all(b, a.matches(b)))", &env).unwrap_err();
    assert_eq!(
        err.to_string(),
        "estimated rule cost exceeds budget by factor of more than 100x (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)"
    );
    let bounded =
        json!({"type": "array", "maxItems": 10, "items": {"type": "string", "maxLength": 10}});
    let program = Program::compile(
        "self.all(a, self.all(b, a.matches(b)))",
        &Env::crd_rule(&bounded, false),
    )
    .unwrap();
    assert!(
        program.estimated_cost() < 10_000,
        "{}",
        program.estimated_cost()
    );
}

#[test]
fn cost_factor_prints_as_upstream() {
    assert_eq!(crate::cost::factor(12, 10), "1.200000x");
    assert_eq!(crate::cost::factor(34, 10), "3.4x");
    assert_eq!(crate::cost::factor(10_000, 10), "more than 100x");
}

#[test]
fn evaluations_over_the_per_call_limit_are_refused() {
    let schema = json!({"type": "array", "items": {"type": "integer"}});
    let env = Env::crd_rule(&schema, false).with_cost_limit(u64::MAX);
    let program = Program::compile("self.all(a, self.all(b, a <= b || a > b))", &env).unwrap();
    let small: Value = (0..10).collect::<Vec<i32>>().into();
    assert_eq!(
        program.eval(&Bindings::new().with("self", &small)),
        Ok(json!(true))
    );
    let big: Value = (0..2000).collect::<Vec<i32>>().into();
    assert_eq!(
        program.eval(&Bindings::new().with("self", &big)),
        Err(EvalError::CostLimitExceeded)
    );
}

#[test]
fn admission_environment_declares_its_variables() {
    let env = Env::admission(&AdmissionVariables {
        has_params: true,
        variable_names: vec!["replicas".into()],
        ..Default::default()
    });
    let program = Program::compile(
        "object.spec.replicas <= params.max && variables.replicas == object.spec.replicas && request.operation == 'CREATE'",
        &env,
    )
    .unwrap();
    let (object, params, vars, request) = (
        json!({"spec": {"replicas": 3}}),
        json!({"max": 5}),
        json!({"replicas": 3}),
        json!({"operation": "CREATE"}),
    );
    let b = Bindings::new()
        .with("object", &object)
        .with("params", &params)
        .with("variables", &vars)
        .with("request", &request);
    assert_eq!(program.eval(&b), Ok(json!(true)));
    assert!(Program::compile("self == 1", &env).is_err());
}

#[test]
fn unbound_variables_are_an_evaluation_error() {
    let program = Program::compile(
        "self == 1",
        &Env::crd_rule(&json!({"type": "integer"}), false),
    )
    .unwrap();
    assert!(matches!(
        program.eval(&Bindings::new()),
        Err(EvalError::Unbound { .. })
    ));
}

#[test]
fn odd_inputs_neither_panic_nor_succeed_wrongly() {
    let env = Env::crd_rule(&json!({"type": "object"}), true);
    let inputs = [
        "",
        " ",
        "(",
        ")",
        "[[[[",
        "{",
        "}",
        "'",
        "\"",
        "r'",
        "'''",
        "\\",
        "self.",
        ".self",
        "self..x",
        "1 +",
        "!",
        "-",
        "a.b.c.d.e.f",
        "self[",
        "self[?",
        "self.?",
        "has()",
        "has(self)",
        "has(1.x)",
        "self.all()",
        "self.all(x)",
        "self.all(1, x)",
        "self.map(x, y, z, w)",
        "1/0",
        "1%0",
        "9223372036854775807 + 1",
        "-9223372036854775808 - 1",
        "'\\u00'",
        "b'\\xff'.string()",
        "duration('99999999999999999h')",
        "timestamp('x')",
        "int('x')",
        "size(1)",
        "{1: 2, 1: 3}",
        "[1, 2][5]",
        "[1][-1]",
        "{}['x']",
        "'abc'.substring(5)",
        "'abc'.charAt(-1)",
        "'abc'.substring(2, 1)",
        "''.split('')",
        "'a'.replace('', 'b')",
        "[].sum()",
        "[1, 'a'].isSorted()",
        "[1, 'a'].sum()",
        "['a'].max()",
        "'a'.findAll('a', -5)",
        "url('')",
        "url('http://[::1')",
        "ip('')",
        "cidr('/')",
        "cidr('1.2.3.4/')",
        "quantity('')",
        "quantity('1e999999999')",
        "quantity('1').add(quantity('9999999999999999999999999999'))",
        "format.named('').value()",
        "optional.none().value()",
        "self.?x.y",
        "dyn(1) == dyn('a')",
        "1 == 1.0",
        "type(type)",
        "x.y()",
        "(((((((((((((((((((((((((1)))))))))))))))))))))))))",
        &"!".repeat(1000),
        &"(".repeat(500),
        &"[".repeat(500),
        &"a.".repeat(300),
        &format!("{}1", "-".repeat(1000)),
        "\u{0}",
        "🙂",
        "'🙂'.charAt(0) == '🙂'",
    ];
    let obj = json!({"x": 1});
    for input in inputs {
        if let Ok(p) = Program::compile(input, &env) {
            let _ = p.eval(&Bindings::new().with("self", &obj).with("oldSelf", &obj));
        }
    }
}

/// Gateway API rules (quoted from the standard-channel CRDs) on example objects.
#[test]
fn gateway_api_rules_evaluate_on_example_objects() {
    let path_schema = json!({"type": "object", "properties": {
        "type": {"type": "string", "enum": ["Exact", "PathPrefix", "RegularExpression"]},
        "value": {"type": "string", "maxLength": 1024}
    }});
    let rule = "(self.type in ['Exact','PathPrefix']) ? self.value.matches(r\"\"\"^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$\"\"\") : true";
    assert_eq!(
        eval_with(
            rule,
            &path_schema,
            &json!({"type": "PathPrefix", "value": "/api"})
        ),
        Ok(json!(true))
    );
    assert_eq!(
        eval_with(
            rule,
            &path_schema,
            &json!({"type": "PathPrefix", "value": "/a b"})
        ),
        Ok(json!(false))
    );
    let rule = "(self.type in ['Exact','PathPrefix']) ? !self.value.contains('//') : true";
    assert_eq!(
        eval_with(
            rule,
            &path_schema,
            &json!({"type": "Exact", "value": "/a//b"})
        ),
        Ok(json!(false))
    );

    let filters = json!({"type": "array", "maxItems": 16, "items": {"type": "object", "properties": {
        "type": {"type": "string"}, "requestRedirect": {"type": "object"}, "urlRewrite": {"type": "object"}
    }}});
    let rule =
        "!(self.exists(f, f.type == 'RequestRedirect') && self.exists(f, f.type == 'URLRewrite'))";
    assert_eq!(
        eval_with(rule, &filters, &json!([{"type": "RequestRedirect"}])),
        Ok(json!(true))
    );
    assert_eq!(
        eval_with(
            rule,
            &filters,
            &json!([{"type": "RequestRedirect"}, {"type": "URLRewrite"}])
        ),
        Ok(json!(false))
    );
    let rule = "self.filter(f, f.type == 'URLRewrite').size() <= 1";
    assert_eq!(
        eval_with(
            rule,
            &filters,
            &json!([{"type": "URLRewrite"}, {"type": "URLRewrite"}])
        ),
        Ok(json!(false))
    );

    let parent_refs = json!({"type": "array", "maxItems": 32, "items": {"type": "object", "properties": {
        "group": {"type": "string", "maxLength": 253}, "kind": {"type": "string", "maxLength": 63},
        "name": {"type": "string", "maxLength": 253}, "namespace": {"type": "string", "maxLength": 63},
        "sectionName": {"type": "string", "maxLength": 253}
    }}});
    let rule = "self.all(p1, self.exists_one(p2, p1.group == p2.group && p1.kind == p2.kind && p1.name == p2.name && (((!has(p1.__namespace__) || p1.__namespace__ == '') && (!has(p2.__namespace__) || p2.__namespace__ == '')) || (has(p1.__namespace__) && has(p2.__namespace__) && p1.__namespace__ == p2.__namespace__ )) && (((!has(p1.sectionName) || p1.sectionName == '') && (!has(p2.sectionName) || p2.sectionName == '')) || (has(p1.sectionName) && has(p2.sectionName) && p1.sectionName == p2.sectionName))))";
    let one = json!({"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw", "namespace": "infra"});
    assert_eq!(
        eval_with(rule, &parent_refs, &json!([one.clone()])),
        Ok(json!(true))
    );
    assert_eq!(
        eval_with(rule, &parent_refs, &json!([one.clone(), one])),
        Ok(json!(false))
    );

    let hostnames =
        json!({"type": "array", "maxItems": 16, "items": {"type": "string", "maxLength": 253}});
    assert_eq!(
        eval_with("self.all(h, !isIP(h))", &hostnames, &json!(["example.com"])),
        Ok(json!(true))
    );
    assert_eq!(
        eval_with("self.all(h, !isIP(h))", &hostnames, &json!(["10.0.0.1"])),
        Ok(json!(false))
    );

    let timeouts = json!({"type": "object", "properties": {
        "request": {"type": "string", "maxLength": 32}, "backendRequest": {"type": "string", "maxLength": 32}
    }});
    let rule = "!(has(self.request) && has(self.backendRequest) && duration(self.request) != duration('0s') && duration(self.backendRequest) > duration(self.request))";
    assert_eq!(
        eval_with(
            rule,
            &timeouts,
            &json!({"request": "10s", "backendRequest": "5s"})
        ),
        Ok(json!(true))
    );
    assert_eq!(
        eval_with(
            rule,
            &timeouts,
            &json!({"request": "1s", "backendRequest": "5s"})
        ),
        Ok(json!(false))
    );
}

/// Operators applied to operands no overload takes are refused when compiling, with
/// cel-go's message; what cannot be typed statically (int-or-string, preserved fields,
/// function results) never is.
#[test]
fn type_errors_are_refused_at_compile_time() {
    let schema = json!({"type": "object", "properties": {
        "replicas": {"type": "integer"},
        "ratio": {"type": "number"},
        "name": {"type": "string"},
        "enabled": {"type": "boolean"},
        "port": {"x-kubernetes-int-or-string": true},
        "created": {"type": "string", "format": "date-time"},
        "timeout": {"type": "string", "format": "duration"},
        "tags": {"type": "array", "maxItems": 10, "items": {"type": "string", "maxLength": 10}},
        "labels": {"type": "object", "maxProperties": 10,
                   "additionalProperties": {"type": "string", "maxLength": 10}},
        "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
    }});
    let env = Env::crd_rule(&schema, true);
    let refused = [
        ("self.replicas + 'a' > 0", "_+_", "int, string"),
        ("self.name > 3", "_>_", "string, int"),
        ("!self.replicas", "!_", "int"),
        ("self.enabled && self.name", "_&&_", "bool, string"),
        ("self.replicas == 'three'", "_==_", "int, string"),
        ("self.tags[0] + 1 == 2", "_+_", "string, int"),
        ("self.labels['a'] == 1", "_==_", "string, int"),
        (
            "self.created + self.created > self.created",
            "_+_",
            "google.protobuf.Timestamp, google.protobuf.Timestamp",
        ),
        ("self.tags.all(t, t + 1 > 0)", "_+_", "string, int"),
        ("size(self.replicas) > 0", "size", "int"),
        ("self.enabled ? 1 : 'one'", "_?_:_", "bool, int, string"),
        ("self.replicas % 2.0 == 0.0", "_%_", "int, double"),
    ];
    for (rule, function, args) in refused {
        let err = Program::compile(rule, &env).expect_err(rule).to_string();
        assert!(
            err.contains(&format!(
                "found no matching overload for '{function}' applied to '({args})'"
            )),
            "{rule}: {err}"
        );
    }
    let accepted = [
        "self.replicas + 1 > 0",
        "self.replicas < self.ratio",
        "self.replicas == 2.0",
        "self.port == 80 || self.port == 'http'",
        "self.extra.anything + 1 > 0",
        "self.name + '-x' != self.name",
        "self.created + self.timeout > self.created",
        "self.created - self.created == duration('0s')",
        "self.tags.all(t, t.startsWith('a'))",
        "'a' in self.tags && 'k' in self.labels",
        "self.tags.map(t, size(t)).all(n, n < 10)",
        "size(self.tags) + size(self.name) < 20",
        "has(self.replicas) ? self.replicas > 0 : true",
        "self.replicas >= oldSelf.replicas",
        "self.enabled == null || self.enabled",
        "int(self.name) > 0",
        "self.tags.exists_one(t, t == 'a')",
        "[1, 2] + [3] == [1, 2, 3]",
    ];
    for rule in accepted {
        if let Err(e) = Program::compile(rule, &env) {
            panic!("{rule}: {e}");
        }
    }
}

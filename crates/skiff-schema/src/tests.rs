//! Table tests ported from upstream's apiextensions-apiserver tests (validation_test.go,
//! schema/validation_test.go, pruning/algorithm_test.go, defaulting/algorithm_test.go), plus
//! skiff's own for the CEL walk and for never panicking.

use serde_json::{json, Value};

use crate::schema::{self, Schema};
use crate::{walk, Structural};

/// A schema parsed without the CRD checks (upstream's tests build `Structural` values
/// directly, often without types).
fn raw(v: Value) -> Schema {
    let mut errs = Vec::new();
    let s = schema::parse(&v, "", &mut errs);
    assert!(errs.is_empty(), "{errs:?}");
    s
}

fn sorted_messages(errs: &[crate::FieldError]) -> Vec<String> {
    let mut m: Vec<String> = errs.iter().map(crate::FieldError::message).collect();
    m.sort();
    m
}

fn structural(v: Value) -> Structural {
    Structural::new(&v, "schema")
        .unwrap_or_else(|e| panic!("schema rejected: {:?}", sorted_messages(&e)))
}

#[test]
fn validate_reports_upstream_messages() {
    struct Case {
        name: &'static str,
        schema: Value,
        valid: Vec<Value>,
        invalid: Vec<(Value, Vec<&'static str>)>,
    }
    let cases = vec![
        Case {
            name: "!nullable",
            schema: json!({"type": "object", "properties": {"field": {"type": "object"}}}),
            valid: vec![json!({}), json!({"field": {}})],
            invalid: vec![
                (
                    json!({"field": "foo"}),
                    vec![
                        r#"field: Invalid value: "string": field in body must be of type object: "string""#,
                    ],
                ),
                (
                    json!({"field": 42}),
                    vec![
                        r#"field: Invalid value: "integer": field in body must be of type object: "integer""#,
                    ],
                ),
                (
                    json!({"field": true}),
                    vec![
                        r#"field: Invalid value: "boolean": field in body must be of type object: "boolean""#,
                    ],
                ),
                (
                    json!({"field": 1.2}),
                    vec![
                        r#"field: Invalid value: "number": field in body must be of type object: "number""#,
                    ],
                ),
                (
                    json!({"field": []}),
                    vec![
                        r#"field: Invalid value: "array": field in body must be of type object: "array""#,
                    ],
                ),
                (
                    json!({"field": null}),
                    vec![
                        r#"field: Invalid value: "null": field in body must be of type object: "null""#,
                    ],
                ),
            ],
        },
        Case {
            name: "nullable",
            schema: json!({"type": "object", "properties": {"field": {"type": "object", "nullable": true}}}),
            valid: vec![json!({}), json!({"field": {}}), json!({"field": null})],
            invalid: vec![(
                json!({"field": "foo"}),
                vec![
                    r#"field: Invalid value: "string": field in body must be of type object: "string""#,
                ],
            )],
        },
        Case {
            name: "x-kubernetes-int-or-string",
            schema: json!({"type": "object", "properties": {"field": {"x-kubernetes-int-or-string": true}}}),
            valid: vec![json!({}), json!({"field": 42}), json!({"field": "foo"})],
            invalid: vec![
                (
                    json!({"field": null}),
                    vec![
                        r#"field: Invalid value: "null": field in body must be of type integer,string: "null""#,
                    ],
                ),
                (
                    json!({"field": true}),
                    vec![
                        r#"field: Invalid value: "boolean": field in body must be of type integer,string: "boolean""#,
                    ],
                ),
                (
                    json!({"field": 1.2}),
                    vec![
                        r#"field: Invalid value: "number": field in body must be of type integer,string: "number""#,
                    ],
                ),
                (
                    json!({"field": {}}),
                    vec![
                        r#"field: Invalid value: "object": field in body must be of type integer,string: "object""#,
                    ],
                ),
            ],
        },
        Case {
            name: "nullable, x-kubernetes-int-or-string and user-provided anyOf",
            schema: json!({"type": "object", "properties": {"field": {
                "nullable": true, "x-kubernetes-int-or-string": true,
                "anyOf": [{"type": "integer"}, {"type": "string"}]}}}),
            valid: vec![
                json!({}),
                json!({"field": null}),
                json!({"field": 42}),
                json!({"field": "foo"}),
            ],
            invalid: vec![(
                json!({"field": true}),
                vec![
                    r#"<nil>: Invalid value: "": "field" must validate at least one schema (anyOf)"#,
                    r#"field: Invalid value: "boolean": field in body must be of type integer,string: "boolean""#,
                    r#"field: Invalid value: "boolean": field in body must be of type integer: "boolean""#,
                ],
            )],
        },
        Case {
            name: "nullable, x-kubernetes-int-or-string and user-provided allOf",
            schema: json!({"type": "object", "properties": {"field": {
                "nullable": true, "x-kubernetes-int-or-string": true,
                "allOf": [{"anyOf": [{"type": "integer"}, {"type": "string"}]}]}}}),
            valid: vec![
                json!({"field": null}),
                json!({"field": 42}),
                json!({"field": "foo"}),
            ],
            invalid: vec![(
                json!({"field": []}),
                vec![
                    r#"<nil>: Invalid value: "": "field" must validate all the schemas (allOf). None validated"#,
                    r#"<nil>: Invalid value: "": "field" must validate at least one schema (anyOf)"#,
                    r#"field: Invalid value: "array": field in body must be of type integer,string: "array""#,
                    r#"field: Invalid value: "array": field in body must be of type integer: "array""#,
                ],
            )],
        },
        Case {
            name: "required field",
            schema: json!({"type": "object", "required": ["field"], "properties": {"field": {
                "type": "object", "required": ["nested"], "properties": {"nested": {"type": "string"}}}}}),
            valid: vec![json!({"field": {"nested": "x"}})],
            invalid: vec![
                (json!({"test": "a"}), vec!["field: Required value"]),
                (json!({"field": {}}), vec!["field.nested: Required value"]),
            ],
        },
        Case {
            name: "enum",
            schema: json!({"type": "object", "properties": {"field": {
                "type": "object", "required": ["nestedint", "nestedstring"],
                "properties": {
                    "nestedint": {"type": "integer", "enum": [1, 2]},
                    "nestedstring": {"type": "string", "enum": ["a", "b"]}}}}}),
            valid: vec![json!({"field": {"nestedint": 2, "nestedstring": "a"}})],
            invalid: vec![
                (
                    json!({"field": {}}),
                    vec![
                        "field.nestedint: Required value",
                        "field.nestedstring: Required value",
                    ],
                ),
                (
                    json!({"field": {"nestedint": "x", "nestedstring": true}}),
                    vec![
                        r#"field.nestedint: Invalid value: "string": field.nestedint in body must be of type integer: "string""#,
                        r#"field.nestedint: Unsupported value: "x": supported values: "1", "2""#,
                        r#"field.nestedstring: Invalid value: "boolean": field.nestedstring in body must be of type string: "boolean""#,
                        r#"field.nestedstring: Unsupported value: true: supported values: "a", "b""#,
                    ],
                ),
            ],
        },
        Case {
            name: "string limits and pattern",
            schema: json!({"type": "object", "properties": {
                "s": {"type": "string", "pattern": "^[0-9]+$"},
                "long": {"type": "string", "maxLength": 3},
                "short": {"type": "string", "minLength": 2}}}),
            valid: vec![json!({"s": "123", "long": "héé", "short": "ab"})],
            invalid: vec![
                (
                    json!({"s": "abc"}),
                    vec![r#"s: Invalid value: "abc": s in body should match '^[0-9]+$'"#],
                ),
                (
                    json!({"long": "abcd"}),
                    vec!["long: Too long: may not be more than 3 bytes"],
                ),
                (
                    json!({"short": "a"}),
                    vec![
                        r#"short: Invalid value: "a": short in body should be at least 2 chars long"#,
                    ],
                ),
            ],
        },
        Case {
            name: "numeric bounds",
            schema: json!({"type": "object", "properties": {
                "i": {"type": "integer", "minimum": 1, "maximum": 10},
                "x": {"type": "integer", "minimum": 1, "exclusiveMinimum": true, "maximum": 10, "exclusiveMaximum": true},
                "f": {"type": "number", "maximum": 1.5},
                "m": {"type": "integer", "multipleOf": 3},
                "mf": {"type": "number", "multipleOf": 0.5}}}),
            valid: vec![
                json!({"i": 10, "x": 5, "f": 1.5, "m": 9, "mf": 2.5}),
                json!({"f": 1}),
            ],
            invalid: vec![
                (
                    json!({"i": 11}),
                    vec!["i: Invalid value: 11: i in body should be less than or equal to 10"],
                ),
                (
                    json!({"i": 0}),
                    vec!["i: Invalid value: 0: i in body should be greater than or equal to 1"],
                ),
                (
                    json!({"x": 10}),
                    vec!["x: Invalid value: 10: x in body should be less than 10"],
                ),
                (
                    json!({"x": 1}),
                    vec!["x: Invalid value: 1: x in body should be greater than 1"],
                ),
                (
                    json!({"f": 1.75}),
                    vec!["f: Invalid value: 1.75: f in body should be less than or equal to 1.5"],
                ),
                (
                    json!({"m": 10}),
                    vec!["m: Invalid value: 10: m in body should be a multiple of 3"],
                ),
                (
                    json!({"mf": 0.75}),
                    vec!["mf: Invalid value: 0.75: mf in body should be a multiple of 0.5"],
                ),
                (
                    json!({"i": 2.5}),
                    vec![
                        r#"<nil>: Invalid value: "": Checked value must be of type integer (default format) in i"#,
                        r#"i: Invalid value: "number": i in body must be of type integer: "number""#,
                    ],
                ),
            ],
        },
        Case {
            name: "integral floats are integers",
            schema: json!({"type": "object", "properties": {"i": {"type": "integer", "enum": [2]}}}),
            valid: vec![json!({"i": 2.0}), json!({"i": 2})],
            invalid: vec![(
                json!({"i": 3}),
                vec![r#"i: Unsupported value: 3: supported values: "2""#],
            )],
        },
        Case {
            name: "list and map sizes",
            schema: json!({"type": "object", "properties": {
                "l": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "string"}},
                "m": {"type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": {"type": "integer"}}}}),
            valid: vec![json!({"l": ["a"], "m": {"a": 1}})],
            invalid: vec![
                (
                    json!({"l": []}),
                    vec!["l: Invalid value: 0: l in body should have at least 1 items"],
                ),
                (
                    json!({"l": ["a", "b", "c"]}),
                    vec!["l: Too many: 3: must have at most 2 items"],
                ),
                (
                    json!({"l": ["a", 1]}),
                    vec![
                        r#"l[1]: Invalid value: "integer": l[1] in body must be of type string: "integer""#,
                    ],
                ),
                (
                    json!({"m": {}}),
                    vec!["m: Invalid value: 0: m in body should have at least 1 properties"],
                ),
                (
                    json!({"m": {"a": 1, "b": 2}}),
                    vec!["m: Too many: 2: must have at most 1 items"],
                ),
                (
                    json!({"m": {"a": "x"}}),
                    vec![
                        r#"m.a: Invalid value: "string": m.a in body must be of type integer: "string""#,
                    ],
                ),
            ],
        },
        Case {
            name: "formats",
            schema: json!({"type": "object", "properties": {
                "t": {"type": "string", "format": "date-time"},
                "u": {"type": "string", "format": "uuid"},
                "n": {"type": "integer", "format": "int32"},
                "z": {"type": "string", "format": "no-such-format"}}}),
            valid: vec![
                json!({"t": "2024-01-02T03:04:05Z", "u": "123e4567-e89b-12d3-a456-426614174000", "n": 1_i64 << 40, "z": "x"}),
            ],
            invalid: vec![
                (
                    json!({"t": "yesterday"}),
                    vec![
                        r#"t: Invalid value: "yesterday": t in body must be of type date-time: "yesterday""#,
                    ],
                ),
                (
                    json!({"u": "x"}),
                    vec![r#"u: Invalid value: "x": u in body must be of type uuid: "x""#],
                ),
            ],
        },
        Case {
            name: "not and oneOf",
            schema: json!({"type": "object", "properties": {
                "n": {"type": "string", "not": {"enum": ["forbidden"]}},
                "o": {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                      "oneOf": [{"required": ["a"]}, {"required": ["b"]}]}}}),
            valid: vec![json!({"n": "ok", "o": {"a": "x"}})],
            invalid: vec![
                (
                    json!({"n": "forbidden"}),
                    vec![r#"<nil>: Invalid value: "": "n" must not validate the schema (not)"#],
                ),
                (
                    json!({"o": {"a": "x", "b": "y"}}),
                    vec![
                        r#"<nil>: Invalid value: "": "o" must validate one and only one schema (oneOf). Found 2 valid alternatives"#,
                    ],
                ),
                (
                    json!({"o": {}}),
                    vec![
                        r#"<nil>: Invalid value: "": "o" must validate one and only one schema (oneOf). Found none valid"#,
                        "o.a: Required value",
                    ],
                ),
            ],
        },
        Case {
            name: "embedded resource type and object meta",
            schema: json!({"type": "object", "properties": {"e": {
                "type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true}}}),
            valid: vec![
                json!({"e": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}}),
            ],
            invalid: vec![
                (
                    json!({"e": {}}),
                    vec!["e.apiVersion: Required value", "e.kind: Required value"],
                ),
                (
                    json!({"e": {"apiVersion": "a/b/c", "kind": "Foo_Bar", "metadata": {"name": "a/b"}}}),
                    vec![
                        r#"e.apiVersion: Invalid value: "a/b/c": unexpected GroupVersion string: a/b/c"#,
                        r#"e.kind: Invalid value: "Foo_Bar": may have mixed case, but should otherwise match: a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"#,
                        r#"e.metadata.name: Invalid value: "a/b": may not contain '/'"#,
                    ],
                ),
            ],
        },
        Case {
            name: "list-type set and map duplicates",
            schema: json!({"type": "object", "properties": {
                "set": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                "map": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                        "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}}},
                "byport": {"type": "object", "additionalProperties": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "integer"}}}}}),
            valid: vec![
                json!({"set": ["a", "b"], "map": [{"name": "a"}, {"name": "b"}], "byport": {"x": [1, 2]}}),
            ],
            invalid: vec![
                (
                    json!({"set": ["a", "b", "a", "a"]}),
                    vec![r#"set[2]: Duplicate value: "a""#],
                ),
                (
                    json!({"map": [{"name": "a", "port": 1}, {"name": "a", "port": 2}]}),
                    vec![r#"map[1]: Duplicate value: map[string]interface {}{"name":"a"}"#],
                ),
                (
                    json!({"byport": {"x": [1, 1]}}),
                    vec!["byport[x][1]: Duplicate value: 1"],
                ),
            ],
        },
    ];
    for c in cases {
        let s = structural(c.schema);
        for v in &c.valid {
            assert_eq!(
                sorted_messages(&s.validate(v)),
                Vec::<String>::new(),
                "{}: {v}",
                c.name
            );
        }
        for (v, want) in &c.invalid {
            let mut want: Vec<String> = want.iter().map(|w| w.to_string()).collect();
            want.sort();
            assert_eq!(sorted_messages(&s.validate(v)), want, "{}: {v}", c.name);
        }
    }
}

#[test]
fn schema_checks_reject_non_structural_schemas() {
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        ("valid", json!({"type": "object", "properties": {"spec": {"type": "object"}}}), vec![]),
        ("type missing at the root", json!({"properties": {"a": {"type": "string"}}}), vec!["schema.type: Required value: must not be empty at the root"]),
        (
            "type missing in a field and in items",
            json!({"type": "object", "properties": {"a": {}, "l": {"type": "array", "items": {}}}}),
            vec![
                "schema.properties[a].type: Required value: must not be empty for specified object fields",
                "schema.properties[l].items.type: Required value: must not be empty for specified array items",
            ],
        ),
        ("array without items", json!({"type": "object", "properties": {"l": {"type": "array"}}}), vec!["schema.properties[l].items: Required value: must be specified"]),
        (
            "additionalProperties at the root",
            json!({"type": "object", "additionalProperties": {"type": "string"}}),
            vec!["schema.additionalProperties: Forbidden: must not be used at the root"],
        ),
        ("root must be an object", json!({"type": "string"}), vec![r#"schema.type: Invalid value: "string": must be object at the root"#]),
        (
            "metadata other than name",
            json!({"type": "object", "properties": {"metadata": {"type": "object", "properties": {"labels": {"type": "object"}}}}}),
            vec!["schema.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified"],
        ),
        (
            "metadata name restriction allowed",
            json!({"type": "object", "properties": {"metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 10}}}}}),
            vec![],
        ),
        (
            "nested type forbidden and completeness (checked from the root's value validations, as upstream)",
            json!({"type": "object",
                   "allOf": [{"properties": {"b": {"properties": {"c": {"maxLength": 1}}}}}],
                   "properties": {"a": {"type": "string", "anyOf": [{"type": "string"}]}, "b": {"type": "object"}}}),
            vec![
                "schema.properties[a].anyOf[0].type: Forbidden: must be empty to be structural",
                "schema.properties[b].properties[c]: Required value: because it is defined in schema.allOf[0].properties[b].properties[c]",
            ],
        ),
        (
            "int-or-string with preserve-unknown-fields",
            json!({"type": "object", "properties": {"a": {"x-kubernetes-int-or-string": true, "x-kubernetes-preserve-unknown-fields": true}}}),
            vec!["schema.properties[a].x-kubernetes-preserve-unknown-fields: Invalid value: true: must be false if x-kubernetes-int-or-string is true"],
        ),
        (
            "embedded resource must be an object with properties",
            json!({"type": "object", "properties": {"e": {"type": "string", "x-kubernetes-embedded-resource": true}}}),
            vec![
                "schema.properties[e].properties: Required value: must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
                r#"schema.properties[e].type: Invalid value: "string": must be object if x-kubernetes-embedded-resource is true"#,
            ],
        ),
        (
            "list-map keys",
            json!({"type": "object", "properties": {"l": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["k", "missing"],
                "items": {"type": "object", "properties": {"k": {"type": "string"}}}}}}),
            vec![
                r#"schema.properties[l].x-kubernetes-list-map-keys: Invalid value: []interface {}{"k", "missing"}: entries must all be names of item properties"#,
                "schema.properties[l].items.properties[k].default: Required value: this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property",
            ],
        ),
        (
            "unknown list type",
            json!({"type": "object", "properties": {"l": {"type": "array", "x-kubernetes-list-type": "bag", "items": {"type": "string"}}}}),
            vec![r#"schema.properties[l].x-kubernetes-list-type: Unsupported value: "bag": supported values: "atomic", "set", "map""#],
        ),
        (
            "uniqueItems and unsupported keywords",
            json!({"type": "object", "properties": {"l": {"type": "array", "uniqueItems": true, "items": {"type": "string"}}, "r": {"type": "string", "$ref": "#/x"}}}),
            vec![
                "schema.properties[l].uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
                "schema.properties[r].$ref: Forbidden: $ref is not supported",
            ],
        ),
        (
            "defaults must validate and be pruned",
            json!({"type": "object", "properties": {
                "a": {"type": "integer", "default": "x"},
                "b": {"type": "object", "properties": {"c": {"type": "string"}}, "default": {"c": "ok", "d": 1}}}}),
            vec![
                r#"schema.properties[a].default: Invalid value: "string":  in body must be of type integer: "string""#,
                r#"schema.properties[b].default: Invalid value: map[string]interface {}{"c":"ok", "d":1}: must not have unknown fields"#,
            ],
        ),
        (
            "default in top-level metadata",
            json!({"type": "object", "properties": {"metadata": {"type": "object", "default": {}}}}),
            vec!["schema.properties[metadata].default: Forbidden: must not be set in top-level metadata"],
        ),
        (
            "invalid pattern",
            json!({"type": "object", "properties": {"p": {"type": "string", "pattern": "(a"}}}),
            vec!["schema.properties[p].pattern: Invalid value: \"(a\": must be a valid regular expression, but isn't: error parsing regexp: missing closing ): `(a`"],
        ),
        (
            "x-kubernetes-validations fields",
            json!({"type": "object", "x-kubernetes-validations": [{"rule": " "}, {"rule": "self.a", "reason": "Nope"}, {"rule": "true", "fieldPath": ".nope"}],
                   "properties": {"a": {"type": "string"}}}),
            vec![
                "schema.x-kubernetes-validations[0].rule: Required value: rule is not specified",
                r#"schema.x-kubernetes-validations[1].reason: Unsupported value: "Nope": supported values: "FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired""#,
                r#"schema.x-kubernetes-validations[2].fieldPath: Invalid value: ".nope": fieldPath must be a valid path"#,
            ],
        ),
        ("nullable root", json!({"type": "object", "nullable": true}), vec!["schema.nullable: Forbidden: nullable cannot be true at the root"]),
        ("type null", json!({"type": "object", "properties": {"n": {"type": "null"}}}), vec![
            "schema.properties[n].type: Forbidden: type cannot be set to null, use nullable as an alternative",
            r#"schema.properties[n].type: Unsupported value: "null": supported values: "array", "boolean", "integer", "number", "object", "string""#,
        ]),
    ];
    for (name, schema, want) in cases {
        let got = match Structural::new(&schema, "schema") {
            Ok(_) => Vec::new(),
            Err(e) => sorted_messages(&e),
        };
        let mut want: Vec<String> = want.iter().map(|w| w.to_string()).collect();
        want.sort();
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn prune_drops_unknown_fields_like_upstream() {
    // (name, object, schema, resource root, pruned object, pruned paths)
    type Case = (&'static str, Value, Value, bool, Value, Vec<&'static str>);
    let cases: Vec<Case> = vec![
        ("scalar", json!(4), json!({}), false, json!(4), vec![]),
        ("scalar array", json!([1, 2]), json!({"items": {}}), false, json!([1, 2]), vec![]),
        (
            "object array",
            json!([{"a": 1}, {"b": 1}, {"a": 1, "b": 2, "c": 3}]),
            json!({"items": {"properties": {"a": {}, "c": {}}}}),
            false,
            json!([{"a": 1}, {}, {"a": 1, "c": 3}]),
            vec!["[1].b", "[2].b"],
        ),
        (
            "object array object",
            json!({"array": [{"a": 1}, {"b": 1}, {"a": 1, "b": 2, "c": 3}], "unspecified": {"a": 1}, "specified": {"a": 1, "b": 2, "c": 3}}),
            json!({"properties": {"array": {"items": {"properties": {"a": {}, "c": {}}}}, "specified": {"properties": {"a": {}, "c": {}}}}}),
            false,
            json!({"array": [{"a": 1}, {}, {"a": 1, "c": 3}], "specified": {"a": 1, "c": 3}}),
            vec!["array[1].b", "array[2].b", "specified.b", "unspecified"],
        ),
        (
            "nested x-kubernetes-preserve-unknown-fields",
            json!({"unspecified": "bar", "alpha": "abc", "beta": 42.0,
                   "pruning": {"unspecified": "bar", "pruning": {"unspecified": "bar"}, "preserving": {"unspecified": "bar"}},
                   "preserving": {"unspecified": "bar", "pruning": {"unspecified": "bar"}, "preserving": {"unspecified": "bar"}},
                   "preservingAdditionalPropertiesNotInheritingXPreserveUnknownFields": {"foo": {"specified": {"unspecified": "bar"}, "unspecified": "bar"}}}),
            json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {
                "alpha": {"type": "string"}, "beta": {"type": "number"},
                "pruning": {"type": "object", "properties": {
                    "preserving": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "pruning": {"type": "object"}}},
                "preserving": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {
                    "preserving": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "pruning": {"type": "object"}}},
                "preservingAdditionalPropertiesNotInheritingXPreserveUnknownFields": {
                    "type": "object", "x-kubernetes-preserve-unknown-fields": true,
                    "additionalProperties": {"type": "object", "properties": {"specified": {"type": "object"}}}}}}),
            false,
            json!({"unspecified": "bar", "alpha": "abc", "beta": 42.0,
                   "pruning": {"pruning": {}, "preserving": {"unspecified": "bar"}},
                   "preserving": {"unspecified": "bar", "pruning": {}, "preserving": {"unspecified": "bar"}},
                   "preservingAdditionalPropertiesNotInheritingXPreserveUnknownFields": {"foo": {"specified": {}}}}),
            vec![
                "preserving.pruning.unspecified",
                "preservingAdditionalPropertiesNotInheritingXPreserveUnknownFields.foo.specified.unspecified",
                "preservingAdditionalPropertiesNotInheritingXPreserveUnknownFields.foo.unspecified",
                "pruning.pruning.unspecified",
                "pruning.unspecified",
            ],
        ),
        (
            "additionalProperties with schema",
            json!({"a": 1, "b": 1, "c": {"a": 1, "b": 2, "c": {"a": 1}}}),
            json!({"properties": {"a": {}, "c": {"additionalProperties": {"type": "integer"}}}}),
            false,
            json!({"a": 1, "c": {"a": 1, "b": 2, "c": {}}}),
            vec!["b", "c.c.a"],
        ),
        (
            "additionalProperties with bool",
            json!({"a": 1, "b": 1, "c": {"a": 1, "b": 2, "c": {"a": 1}}}),
            json!({"properties": {"a": {}, "c": {"additionalProperties": false}}}),
            false,
            json!({"a": 1, "c": {"a": 1, "b": 2, "c": {}}}),
            vec!["b", "c.c.a"],
        ),
        (
            "x-kubernetes-embedded-resource, with root=true",
            json!({"apiVersion": "foo/v1", "kind": "Foo", "metadata": {"name": "instance", "unspecified": "bar"}, "unspecified": "bar",
                   "pruned": {"apiVersion": "foo/v1", "kind": "Foo", "unspecified": "bar", "metadata": {"name": "instance", "unspecified": "bar"}, "spec": {"unspecified": "bar"}},
                   "preserving": {"apiVersion": "foo/v1", "kind": "Foo", "unspecified": "bar", "metadata": {"name": "instance", "unspecified": "bar"}, "spec": {"unspecified": "bar"}}}),
            json!({"type": "object", "properties": {
                "pruned": {"type": "object", "x-kubernetes-embedded-resource": true, "properties": {"spec": {"type": "object"}}},
                "preserving": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true}}}),
            true,
            json!({"apiVersion": "foo/v1", "kind": "Foo", "metadata": {"name": "instance", "unspecified": "bar"},
                   "pruned": {"apiVersion": "foo/v1", "kind": "Foo", "metadata": {"name": "instance", "unspecified": "bar"}, "spec": {}},
                   "preserving": {"apiVersion": "foo/v1", "kind": "Foo", "unspecified": "bar", "metadata": {"name": "instance", "unspecified": "bar"}, "spec": {"unspecified": "bar"}}}),
            vec!["pruned.spec.unspecified", "pruned.unspecified", "unspecified"],
        ),
    ];
    for (name, mut obj, schema, root, want, want_paths) in cases {
        let s = raw(schema);
        let mut pruned = Vec::new();
        walk::prune(&mut obj, Some(&s), root, &mut String::new(), &mut pruned);
        pruned.sort();
        assert_eq!(obj, want, "{name}");
        assert_eq!(pruned, want_paths, "{name}");
    }
}

#[test]
fn prune_through_structural_reports_sorted_unknown_fields() {
    let s = structural(
        json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "ports": {"type": "array", "items": {"type": "object", "properties": {"port": {"type": "integer"}}}}}}}}),
    );
    let mut obj = json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a"}, "zzz": 1,
                         "spec": {"foo": 1, "ports": [{"port": 1, "bar": 2}]}});
    assert_eq!(
        s.prune(&mut obj),
        vec!["spec.foo", "spec.ports[0].bar", "zzz"]
    );
    assert_eq!(
        obj,
        json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a"}, "spec": {"ports": [{"port": 1}]}})
    );
}

#[test]
fn defaults_apply_like_upstream() {
    let schema = json!({"type": "object", "properties": {
        "a": {"type": "string", "default": "A"},
        "b": {"type": "object", "default": {"x": 1}, "properties": {"x": {"type": "integer"}, "y": {"type": "string", "default": "Y"}}},
        "c": {"type": "array", "items": {"type": "object", "properties": {"z": {"type": "integer", "default": 0}}}},
        "d": {"type": "object", "additionalProperties": {"type": "object", "properties": {"w": {"type": "boolean", "default": true}}}},
        "n": {"type": "string", "nullable": true, "default": "N"},
        "nonnull": {"type": "string", "default": "D"},
        "dropped": {"type": "string"},
        "kept": {"type": "string", "nullable": true}}});
    let s = structural(schema);
    let cases = vec![
        (
            json!({}),
            json!({"a": "A", "b": {"x": 1, "y": "Y"}, "n": "N", "nonnull": "D"}),
        ),
        (
            json!({"a": "set", "c": [{}, {"z": 5}], "d": {"k": {}}, "n": null, "nonnull": null, "dropped": null, "kept": null}),
            json!({"a": "set", "b": {"x": 1, "y": "Y"}, "c": [{"z": 0}, {"z": 5}], "d": {"k": {"w": true}}, "n": null, "nonnull": "D", "kept": null}),
        ),
    ];
    for (mut obj, want) in cases {
        s.apply_defaults(&mut obj);
        assert_eq!(obj, want);
    }
}

#[test]
fn defaults_fill_null_list_items_and_map_values() {
    let s = raw(json!({"type": "object", "properties": {
        "l": {"type": "array", "items": {"type": "string", "default": "x"}},
        "m": {"type": "object", "additionalProperties": {"type": "string", "default": "y"}}}}));
    let mut obj = json!({"l": [null, "a"], "m": {"k": null}});
    walk::apply_defaults(&mut obj, &s);
    assert_eq!(obj, json!({"l": ["x", "a"], "m": {"k": "y"}}));
}

#[test]
fn rule_sites_and_walk_correlate_old_values_like_upstream() {
    let s = structural(
        json!({"type": "object", "x-kubernetes-validations": [{"rule": "has(self.spec)"}], "properties": {
        "spec": {"type": "object", "properties": {
            "name": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "immutable"}]},
            "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["port"],
                "items": {"type": "object", "required": ["port"], "properties": {
                    "port": {"type": "integer"},
                    "weight": {"type": "integer", "x-kubernetes-validations": [{"rule": "self >= oldSelf"}]}}}},
            "tags": {"type": "array", "items": {"type": "string", "x-kubernetes-validations": [{"rule": "self != ''"}]}},
            "labels": {"type": "object", "additionalProperties": {"type": "string", "x-kubernetes-validations": [{"rule": "size(self) < 10"}]}},
            "atomic": {"type": "object", "x-kubernetes-map-type": "atomic", "properties": {
                "v": {"type": "string", "x-kubernetes-validations": [{"rule": "true"}]}}}}}}}),
    );
    let sites = s.rule_sites();
    let paths: Vec<(&str, Option<&str>)> = sites
        .iter()
        .map(|r| (r.schema_path.as_str(), r.uncorrelatable.as_deref()))
        .collect();
    assert_eq!(
        paths,
        vec![
            ("", None),
            (
                ".properties[spec].properties[atomic].properties[v]",
                Some(".properties[spec].properties[atomic]")
            ),
            (
                ".properties[spec].properties[labels].additionalProperties",
                None
            ),
            (".properties[spec].properties[name]", None),
            (
                ".properties[spec].properties[ports].items.properties[weight]",
                None
            ),
            (
                ".properties[spec].properties[tags].items",
                Some(".properties[spec].properties[tags]")
            ),
        ]
    );
    assert_eq!(sites[3].rules[0].message.as_deref(), Some("immutable"));
    assert!(sites[0].resource_root);

    let new = json!({"spec": {"name": "n", "ports": [{"port": 80, "weight": 2}, {"port": 443, "weight": 1}],
                              "tags": ["a"], "labels": {"k": "v"}, "atomic": {"v": "x"}}});
    let old = json!({"spec": {"name": "o", "ports": [{"port": 443, "weight": 5}], "tags": ["a"], "labels": {"k": "w"}, "atomic": {"v": "y"}}});
    let mut seen = Vec::new();
    s.walk_rules(&new, Some(&old), &mut |v| {
        seen.push((
            v.field_path.to_string(),
            v.value.clone(),
            v.old_value.cloned(),
        ))
    });
    assert_eq!(
        seen,
        vec![
            ("".to_string(), new.clone(), Some(old.clone())),
            ("spec.name".to_string(), json!("n"), Some(json!("o"))),
            ("spec.ports[0].weight".to_string(), json!(2), None),
            ("spec.ports[1].weight".to_string(), json!(1), Some(json!(5))),
            ("spec.tags[0]".to_string(), json!("a"), None),
            ("spec.labels[k]".to_string(), json!("v"), Some(json!("w"))),
            ("spec.atomic.v".to_string(), json!("x"), None),
        ]
    );
}

#[test]
fn embedded_resources_keep_meta_when_pruning_and_validate_kind() {
    let s = structural(json!({"type": "object", "properties": {"template": {
        "type": "object", "x-kubernetes-embedded-resource": true,
        "properties": {"spec": {"type": "object", "properties": {"a": {"type": "string"}}}}}}}));
    let mut obj = json!({"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x", "labels": {"a": "b"}}, "spec": {"a": "1", "b": 2}, "extra": 1}});
    assert_eq!(s.prune(&mut obj), vec!["template.extra", "template.spec.b"]);
    assert_eq!(sorted_messages(&s.validate(&obj)), Vec::<String>::new());
    let bad = json!({"template": {"kind": "Pod", "metadata": {"labels": {"a b": "c"}}}});
    assert_eq!(
        sorted_messages(&s.validate(&bad)),
        vec![
            "template.apiVersion: Required value".to_string(),
            r#"template.metadata.labels: Invalid value: "a b": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"#.to_string(),
        ]
    );
}

/// A tiny deterministic generator (xorshift) for the no-panic test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[(self.next() % xs.len() as u64) as usize]
    }

    fn value(&mut self, depth: u32) -> Value {
        let leaf = depth == 0 || self.next() % 3 == 0;
        match self.next() % if leaf { 6 } else { 8 } {
            0 => Value::Null,
            1 => Value::Bool(self.next() % 2 == 0),
            2 => json!((self.next() % 1000) as i64 - 500),
            3 => json!(((self.next() % 10000) as f64) / 7.0),
            4 => json!(self
                .pick(&[
                    "",
                    "a",
                    "abc",
                    "2024-01-01",
                    "10.0.0.1",
                    "x y",
                    "ünï",
                    "9223372036854775808"
                ])
                .to_string()),
            5 => json!(u64::MAX),
            6 => Value::Array(
                (0..self.next() % 4)
                    .map(|_| self.value(depth - 1))
                    .collect(),
            ),
            _ => {
                let mut m = serde_json::Map::new();
                for _ in 0..self.next() % 4 {
                    let k = self
                        .pick(&[
                            "a",
                            "b",
                            "spec",
                            "metadata",
                            "kind",
                            "apiVersion",
                            "name",
                            "x",
                        ])
                        .to_string();
                    m.insert(k, self.value(depth - 1));
                }
                Value::Object(m)
            }
        }
    }

    fn schema(&mut self, depth: u32) -> Value {
        let mut m = serde_json::Map::new();
        let ty = *self.pick(&[
            "object", "array", "string", "integer", "number", "boolean", "", "bogus",
        ]);
        if !ty.is_empty() {
            m.insert("type".into(), json!(ty));
        }
        let keys = [
            "nullable",
            "default",
            "enum",
            "maximum",
            "minimum",
            "maxLength",
            "minLength",
            "pattern",
            "format",
            "multipleOf",
            "required",
            "items",
            "properties",
            "additionalProperties",
            "allOf",
            "anyOf",
            "oneOf",
            "not",
            "x-kubernetes-int-or-string",
            "x-kubernetes-preserve-unknown-fields",
            "x-kubernetes-embedded-resource",
            "x-kubernetes-list-type",
            "x-kubernetes-list-map-keys",
            "x-kubernetes-map-type",
            "x-kubernetes-validations",
            "maxItems",
            "minProperties",
            "exclusiveMaximum",
        ];
        for _ in 0..self.next() % 5 {
            let k = *self.pick(&keys);
            let v = match k {
                "items" | "additionalProperties" | "not" if depth > 0 => self.schema(depth - 1),
                "properties" if depth > 0 => {
                    json!({"a": self.schema(depth - 1), "spec": self.schema(depth - 1)})
                }
                "allOf" | "anyOf" | "oneOf" if depth > 0 => {
                    json!([self.schema(depth - 1), self.schema(depth - 1)])
                }
                "pattern" => json!(self.pick(&["^a+$", "(", "\\d", "[[:alpha:]]"]).to_string()),
                "format" => json!(self
                    .pick(&["date-time", "uuid", "int32", "byte", "cidr", "duration"])
                    .to_string()),
                "multipleOf" => json!(self.pick(&[0.0, -1.0, 0.5, 3.0, 1e-300])),
                "x-kubernetes-list-type" => {
                    json!(self.pick(&["set", "map", "atomic", "bad"]).to_string())
                }
                "x-kubernetes-list-map-keys" | "required" => json!(["a", "name"]),
                "x-kubernetes-validations" => {
                    json!([{"rule": "self.a", "fieldPath": ".a['b'][0]"}])
                }
                _ => self.value(1),
            };
            m.insert(k.into(), v);
        }
        Value::Object(m)
    }
}

#[test]
fn random_schemas_and_objects_never_panic() {
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let mut accepted = 0;
    for _ in 0..3000 {
        let schema = rng.schema(3);
        let s = match Structural::new(&schema, "s") {
            Ok(s) => s,
            Err(_) => {
                // Walk the unchecked schema too: the object algorithms must not panic on any
                // parsed schema.
                let mut errs = Vec::new();
                let raw = schema::parse(&schema, "", &mut errs);
                let mut obj = rng.value(4);
                let _ = crate::openapi::validate(&raw, &obj, None);
                walk::prune_nulls(&mut obj, Some(&raw));
                walk::apply_defaults(&mut obj, &raw);
                walk::prune(
                    &mut obj,
                    Some(&raw),
                    true,
                    &mut String::new(),
                    &mut Vec::new(),
                );
                continue;
            }
        };
        accepted += 1;
        for _ in 0..5 {
            let mut obj = rng.value(4);
            let old = rng.value(4);
            let _ = s.validate(&obj);
            s.apply_defaults(&mut obj);
            let _ = s.prune(&mut obj);
            let _ = s.validate(&obj);
            s.walk_rules(&obj, Some(&old), &mut |v| {
                let _ = v.field_path.len();
            });
        }
    }
    assert!(accepted > 0, "some random schemas are valid");
}

#[test]
fn httproute_crd_schema_is_accepted_and_validates_an_object() {
    let crd: Value = serde_yaml::from_str(include_str!(
        "../testdata/gateway.networking.k8s.io_httproutes.yaml"
    ))
    .unwrap_or(Value::Null);
    let versions = crd["spec"]["versions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!versions.is_empty());
    for (i, v) in versions.iter().enumerate() {
        let base = format!("spec.versions[{i}].schema.openAPIV3Schema");
        let s = Structural::new(&v["schema"]["openAPIV3Schema"], &base)
            .unwrap_or_else(|e| panic!("{base}: {:?}", sorted_messages(&e)));
        assert!(!s.rule_sites().is_empty());
        let mut obj = crate::tests::httproute_object();
        let pruned = s.prune(&mut obj);
        assert_eq!(pruned, vec!["spec.unknownField"]);
        s.apply_defaults(&mut obj);
        assert_eq!(
            obj["spec"]["rules"][0]["matches"][0]["path"]["type"],
            json!("PathPrefix"),
            "defaulted"
        );
        assert_eq!(sorted_messages(&s.validate(&obj)), Vec::<String>::new());
        let mut bad = obj.clone();
        bad["spec"]["rules"][0]["backendRefs"][0]["port"] = json!(70000);
        assert_eq!(
            sorted_messages(&s.validate(&bad)),
            vec!["spec.rules[0].backendRefs[0].port: Invalid value: 70000: spec.rules[0].backendRefs[0].port in body should be less than or equal to 65535"]
        );
    }
}

/// A representative HTTPRoute (also used by the benchmark).
pub(crate) fn httproute_object() -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "parentRefs": [{"name": "gw", "sectionName": "http"}],
            "hostnames": ["example.com", "*.example.org"],
            "unknownField": true,
            "rules": [
                {
                    "matches": [{"path": {"value": "/api"}, "headers": [{"name": "x-env", "value": "prod"}]}],
                    "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x-a", "value": "b"}]}}],
                    "backendRefs": [{"name": "api", "port": 8080, "weight": 90}, {"name": "api-canary", "port": 8080, "weight": 10}]
                },
                {
                    "matches": [{"path": {"type": "Exact", "value": "/"}, "method": "GET"}],
                    "backendRefs": [{"name": "web", "port": 80}]
                }
            ]
        }
    })
}

#[test]
fn invalid_pattern_fails_validation_with_go_regexp_error() {
    // Upstream's "invalid regex" case: schemas stored before pattern checks still validate.
    let s =
        raw(json!({"type": "object", "properties": {"field": {"type": "string", "pattern": "+"}}}));
    let errs = crate::openapi::validate(&s, &json!({"field": "foo"}), None);
    assert_eq!(
        sorted_messages(&errs),
        vec!["field: Invalid value: \"foo\": field in body should match '+, but pattern is invalid: error parsing regexp: missing argument to repetition operator: `+`'"]
    );
}

/// Validation ratcheting (upstream's ratcheting_test.go ideas): an error is forgiven when a
/// node on its path, correlated with the old object, is unchanged; map-list items correlate
/// by key, other lists' items not at all.
#[test]
fn ratcheting_forgives_errors_in_values_an_update_left_unchanged() {
    let s = structural(
        json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "name": {"type": "string", "maxLength": 3},
        "other": {"type": "string"},
        "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["port"],
            "items": {"type": "object", "required": ["port"], "properties": {
                "port": {"type": "integer"}, "name": {"type": "string", "maxLength": 3}}}},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 3}},
        "labels": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 3}}}}}}),
    );
    let old = json!({"spec": {"name": "toolong", "other": "a",
        "ports": [{"port": 80, "name": "toolong"}, {"port": 81, "name": "ok"}],
        "tags": ["toolong"], "labels": {"k": "toolong"}}});
    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = old.clone();
        f(&mut v);
        v
    };
    let other_changed = with(&|v| v["spec"]["other"] = json!("b"));
    let name_changed = with(&|v| v["spec"]["name"] = json!("longer"));
    let reordered = with(&|v| {
        let ports = v["spec"]["ports"].as_array_mut().unwrap();
        ports.reverse();
    });
    let tag_added = with(&|v| v["spec"]["tags"] = json!(["new", "toolong"]));
    let cases: &[(&str, &Value, &str, bool)] = &[
        ("unchanged field", &other_changed, "spec.name", true),
        ("changed field", &name_changed, "spec.name", false),
        (
            "map-list item found by its key",
            &reordered,
            "spec.ports[1].name",
            true,
        ),
        ("map value", &other_changed, "spec.labels[k]", true),
        (
            "plain list unchanged as a whole",
            &other_changed,
            "spec.tags[0]",
            true,
        ),
        (
            "plain list changed: items do not correlate",
            &tag_added,
            "spec.tags[1]",
            false,
        ),
        (
            "a field that is not there",
            &other_changed,
            "spec.missing",
            false,
        ),
    ];
    for (name, new, field, want) in cases {
        assert_eq!(s.ratchets(field, new, &old), *want, "{name}");
    }
    // The errors themselves: only the changed name is reported after the change.
    let errs: Vec<String> = s
        .validate(&name_changed)
        .iter()
        .filter(|e| !s.ratchets(&e.field, &name_changed, &old))
        .map(|e| e.field.clone())
        .collect();
    assert_eq!(errs, ["spec.name"]);
}

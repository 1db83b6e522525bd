//! End-to-end with the real kubectl: a CRD's CEL validation rules (`x-kubernetes-validations`,
//! `messageExpression`, `fieldPath`, `reason`, transition rules on `oldSelf`) as upstream's
//! test/e2e/apimachinery/crd_validation_rules.go exercises them, and validation ratcheting
//! (CRDValidationRatcheting, GA in 1.33: an update may keep a value that the schema, since
//! tightened, no longer allows, as long as it does not change it).

mod common;

use common::Cluster;

/// A namespaced CRD `<plural>.cel.example.com`, kind `Cel<Plural>`-ish, with `schema`.
fn crd(plural: &str, kind: &str, schema: &str) -> String {
    format!(
        "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: {plural}.cel.example.com}}
spec:
  group: cel.example.com
  scope: Namespaced
  names: {{plural: {plural}, singular: {kind_lower}, kind: {kind}}}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {{status: {{}}}}
    schema:
      openAPIV3Schema:
{schema}",
        kind_lower = kind.to_lowercase(),
        schema = schema
            .lines()
            .map(|l| format!("        {l}\n"))
            .collect::<String>()
    )
}

fn install(c: &Cluster, plural: &str, kind: &str, schema: &str) {
    c.kubectl_in(&["apply", "-f", "-"], &crd(plural, kind, schema));
    c.kubectl(&[
        "wait",
        "--for=condition=established",
        &format!("crd/{plural}.cel.example.com"),
    ]);
}

/// crd_validation_rules.go's `schemaWithValidationExpression`.
const XY_SCHEMA: &str = "type: object
properties:
  spec:
    type: object
    x-kubernetes-validations:
    - rule: self.x + self.y > 0
    properties:
      x: {type: integer}
      # Quoted: a bare y is YAML 1.1's true to kubectl's decoder.
      'y': {type: integer}
  status:
    type: object
    x-kubernetes-validations:
    - rule: self.health == 'ok' || self.health == 'unhealthy'
    properties:
      health: {type: string}
";

fn sums(name: &str, x: i64, y: i64) -> String {
    format!(
        "apiVersion: cel.example.com/v1\nkind: Sum\nmetadata: {{name: {name}}}\nspec: {{x: {x}, \"y\": {y}}}\n"
    )
}

#[test]
fn validation_rules_hold_on_create_and_bad_rules_refuse_the_crd() {
    let c = Cluster::start();
    install(&c, "sums", "Sum", XY_SCHEMA);
    // "MUST NOT fail validation for create of a custom resource that satisfies the
    // x-kubernetes-validations rules".
    c.kubectl_in(&["create", "-f", "-"], &sums("cr-1", 1, 0));
    // "MUST fail validation for create of a custom resource that does not satisfy the
    // x-kubernetes-validations rules".
    let err = c.kubectl_err(&["create", "-f", "-"], Some(&sums("cr-2", 0, 0)));
    assert!(
        err.contains(r#"spec: Invalid value: "object": failed rule: self.x + self.y > 0"#),
        "{err}"
    );
    assert!(!c.kubectl(&["get", "sums", "-o", "name"]).contains("cr-2"));
    // The status is held to its own rule through the status subresource.
    let err = c.kubectl_err(
        &[
            "patch",
            "sum",
            "cr-1",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"health":"confused"}}"#,
        ],
        None,
    );
    assert!(
        err.contains("failed rule: self.health == 'ok' || self.health == 'unhealthy'"),
        "{err}"
    );

    // "MUST fail create of a custom resource definition that contains a
    // x-kubernetes-validations rule that refers to a property that do not exist".
    let undefined = crd(
        "zeds",
        "Zed",
        "type: object
properties:
  spec:
    type: object
    x-kubernetes-validations:
    - rule: self.z == 100
    properties:
      x: {type: integer}
",
    );
    let err = c.kubectl_err(&["apply", "-f", "-"], Some(&undefined));
    assert!(err.contains("undefined field 'z'"), "{err}");
    // "... that contains an x-kubernetes-validations rule that contains a syntax error".
    let syntax = undefined.replace("self.z == 100", "self = 42");
    let err = c.kubectl_err(&["apply", "-f", "-"], Some(&syntax));
    assert!(err.contains("compilation failed"), "{err}");
    // "... whose estimated cost exceeds the limit": every pair of an unbounded list of
    // unbounded strings.
    let costly = crd(
        "costlies",
        "Costly",
        "type: object
properties:
  spec:
    type: object
    properties:
      list:
        type: array
        items: {type: string}
        x-kubernetes-validations:
        - rule: self.all(x, self.all(y, x.contains(y)))
",
    );
    let err = c.kubectl_err(&["apply", "-f", "-"], Some(&costly));
    assert!(
        err.contains("estimated rule cost exceeds budget by factor of"),
        "{err}"
    );
    let crds = c.kubectl(&["get", "crd", "-o", "name"]);
    assert!(
        !crds.contains("zeds") && !crds.contains("costlies"),
        "{crds}"
    );
}

#[test]
fn message_expressions_field_paths_reasons_and_transition_rules() {
    let c = Cluster::start();
    install(
        &c,
        "quotas",
        "Quota",
        "type: object
properties:
  spec:
    type: object
    x-kubernetes-validations:
    - rule: self.min <= self.max
      messageExpression: \"'min ' + string(self.min) + ' exceeds max ' + string(self.max)\"
      fieldPath: .min
    - rule: self.max >= oldSelf.max
      message: max may not decrease
      reason: FieldValueForbidden
    properties:
      min: {type: integer}
      max: {type: integer}
      mode:
        type: string
        x-kubernetes-validations:
        - rule: self == oldSelf
          message: mode is immutable
",
    );
    let quota = |min: i64, max: i64, mode: &str| {
        format!(
            "apiVersion: cel.example.com/v1\nkind: Quota\nmetadata: {{name: q}}\nspec: {{min: {min}, max: {max}, mode: {mode}}}\n"
        )
    };
    let err = c.kubectl_err(&["apply", "-f", "-"], Some(&quota(5, 3, "fast")));
    assert!(
        err.contains(r#"spec.min: Invalid value: "object": min 5 exceeds max 3"#),
        "{err}"
    );
    // Transition rules do not run on create.
    c.kubectl_in(&["apply", "-f", "-"], &quota(1, 10, "fast"));
    let err = c.kubectl_err(&["apply", "-f", "-"], Some(&quota(1, 9, "fast")));
    assert!(
        err.contains("spec: Forbidden: max may not decrease"),
        "{err}"
    );
    let err = c.kubectl_err(&["apply", "-f", "-"], Some(&quota(1, 10, "slow")));
    assert!(
        err.contains(r#"spec.mode: Invalid value: "string": mode is immutable"#),
        "{err}"
    );
    c.kubectl_in(&["apply", "-f", "-"], &quota(2, 11, "fast"));
    let q = c.json(&["get", "quota", "q"]);
    assert_eq!(
        (q["spec"]["min"].as_i64(), q["spec"]["max"].as_i64()),
        (Some(2), Some(11))
    );
}

#[test]
fn ratcheting_keeps_unchanged_invalid_values_through_updates() {
    let c = Cluster::start();
    let loose = "type: object
properties:
  spec:
    type: object
    properties:
      name: {type: string}
      replicas: {type: integer}
      ports:
        type: array
        x-kubernetes-list-type: map
        x-kubernetes-list-map-keys: [port]
        items:
          type: object
          required: [port]
          properties:
            port: {type: integer}
            protocol: {type: string}
";
    install(&c, "backends", "Backend", loose);
    c.kubectl_in(
        &["apply", "-f", "-"],
        "apiVersion: cel.example.com/v1
kind: Backend
metadata: {name: s}
spec:
  name: far-too-long-a-name
  replicas: 1
  ports: [{port: 80, protocol: SCTP}, {port: 81, protocol: TCP}]
",
    );
    // The schema tightens: a short name, TCP or UDP only, and a rule on the name.
    let strict = loose
        .replace(
            "      name: {type: string}",
            "      name:\n        type: string\n        maxLength: 8\n        x-kubernetes-validations:\n        - rule: self.startsWith('svc-')\n          message: name must start with svc-",
        )
        .replace(
            "            protocol: {type: string}",
            "            protocol: {type: string, enum: [TCP, UDP]}",
        );
    c.kubectl_in(&["apply", "-f", "-"], &crd("backends", "Backend", &strict));
    // The served schema follows the CRD once its controller has it: until then a new
    // object with the long name is still accepted (checked by a server-side dry run).
    let too_long = "apiVersion: cel.example.com/v1
kind: Backend
metadata: {name: t}
spec: {name: far-too-long-a-name}
";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while c
        .kubectl_output(&["create", "--dry-run=server", "-f", "-"], Some(too_long))
        .status
        .success()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the tightened schema never took effect"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Ratcheting: changing other fields keeps the stored, now-invalid name and SCTP port
    // (the map-list item is found by its key even when the list is reordered).
    c.kubectl(&[
        "patch",
        "backend.cel.example.com",
        "s",
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":2}}"#,
    ]);
    c.kubectl(&[
        "patch",
        "backend.cel.example.com",
        "s",
        "--type=merge",
        "-p",
        r#"{"spec":{"ports":[{"port":81,"protocol":"UDP"},{"port":80,"protocol":"SCTP"}]}}"#,
    ]);
    let s = c.json(&["get", "backend.cel.example.com", "s"]);
    assert_eq!(s["spec"]["replicas"], 2);
    assert_eq!(s["spec"]["name"], "far-too-long-a-name");
    // Changing an invalid value is held to the new schema, rule and all.
    let err = c.kubectl_err(
        &[
            "patch",
            "backend.cel.example.com",
            "s",
            "--type=merge",
            "-p",
            r#"{"spec":{"name":"still-far-too-long"}}"#,
        ],
        None,
    );
    assert!(
        err.contains(r#"spec.name: Too long: may not be more than 8 bytes"#)
            && err.contains("name must start with svc-"),
        "{err}"
    );
    let err = c.kubectl_err(
        &[
            "patch",
            "backend.cel.example.com",
            "s",
            "--type=merge",
            "-p",
            r#"{"spec":{"ports":[{"port":81,"protocol":"SCTP"},{"port":80,"protocol":"SCTP"}]}}"#,
        ],
        None,
    );
    assert!(
        err.contains(r#"spec.ports[0].protocol: Unsupported value: "SCTP""#),
        "{err}"
    );
    // A new object gets no such grace.
    let err = c.kubectl_err(
        &["apply", "-f", "-"],
        Some(
            "apiVersion: cel.example.com/v1
kind: Backend
metadata: {name: t}
spec: {name: far-too-long-a-name}
",
        ),
    );
    assert!(err.contains("spec.name: Too long"), "{err}");
    c.kubectl(&[
        "patch",
        "backend.cel.example.com",
        "s",
        "--type=merge",
        "-p",
        r#"{"spec":{"name":"svc-a"}}"#,
    ]);
}

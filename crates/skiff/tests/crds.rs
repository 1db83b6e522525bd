//! End-to-end: CustomResourceDefinitions served as APIs, driven by the real `kubectl`.

mod common;

use common::Cluster;

const WIDGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names:
    plural: widgets
    singular: widget
    kind: Widget
    shortNames: [wd]
    categories: [all, gadgets]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
        labelSelectorPath: .status.selector
    additionalPrinterColumns:
    - name: Size
      type: string
      jsonPath: .spec.size
    - name: Replicas
      type: integer
      jsonPath: .spec.replicas
    - name: Age
      type: date
      jsonPath: .metadata.creationTimestamp
    schema:
      openAPIV3Schema:
        type: object
        description: A widget of the tests' own.
        properties:
          spec:
            type: object
            description: What the widget should be.
            properties:
              size:
                type: string
                description: How big the widget is.
                enum: [small, medium, large]
              replicas:
                type: integer
                minimum: 0
              color:
                type: string
                default: blue
                pattern: '^[a-z]+$'
            required: [size]
          status:
            type: object
            properties:
              replicas:
                type: integer
              selector:
                type: string
"#;

const WIDGET: &str = r#"
apiVersion: example.com/v1
kind: Widget
metadata:
  name: w1
spec:
  size: large
  replicas: 1
"#;

fn install_widgets(c: &Cluster) {
    let out = c.kubectl_in(&["apply", "-f", "-"], WIDGET_CRD);
    assert_eq!(
        out.trim(),
        "customresourcedefinition.apiextensions.k8s.io/widgets.example.com created"
    );
    c.kubectl(&[
        "wait",
        "--for=condition=established",
        "--timeout=20s",
        "crd/widgets.example.com",
    ]);
}

#[test]
fn a_crd_becomes_an_api_kubectl_can_use_end_to_end() {
    let c = Cluster::start();
    install_widgets(&c);
    let crd = c.json(&["get", "crd", "widgets.example.com"]);
    let conditions = crd["status"]["conditions"].as_array().unwrap();
    for (ty, reason) in [
        ("NamesAccepted", "NoConflicts"),
        ("Established", "InitialNamesAccepted"),
    ] {
        let cond = conditions.iter().find(|c| c["type"] == ty).unwrap();
        assert_eq!(cond["status"], "True", "{cond}");
        assert_eq!(cond["reason"], reason, "{cond}");
    }
    assert_eq!(crd["status"]["acceptedNames"]["shortNames"][0], "wd");
    assert_eq!(crd["status"]["storedVersions"][0], "v1");
    assert_eq!(
        crd["metadata"]["finalizers"][0],
        "customresourcecleanup.apiextensions.k8s.io"
    );

    let out = c.kubectl_in(&["apply", "-f", "-"], WIDGET);
    assert_eq!(out.trim(), "widget.example.com/w1 created");
    // Printer columns, short name and categories.
    let table = c.kubectl(&["get", "wd"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "SIZE", "REPLICAS", "AGE"], "{table}");
    assert!(table.contains("w1     large   1"), "{table}");
    let all = c.kubectl(&["get", "all", "-o", "name"]);
    assert!(all.contains("widget.example.com/w1"), "{all}");
    let gadgets = c.kubectl(&["get", "gadgets", "-o", "name"]);
    assert_eq!(gadgets.trim(), "widget.example.com/w1");
    // The scale subresource writes the CRD's spec path.
    c.kubectl(&["scale", "widget/w1", "--replicas=3"]);
    let w = c.json(&["get", "widget", "w1"]);
    assert_eq!(w["spec"]["replicas"], 3);
    assert_eq!(w["metadata"]["generation"], 2);
    // Merge patches work, strategic merge is refused as upstream refuses it for CRs.
    c.kubectl(&[
        "patch",
        "widget",
        "w1",
        "--type=merge",
        "-p",
        r#"{"spec":{"size":"small"}}"#,
    ]);
    let err = c.kubectl_err(
        &["patch", "widget", "w1", "-p", r#"{"spec":{"size":"tiny"}}"#],
        None,
    );
    assert!(
        err.contains("UnsupportedMediaType")
            || err.contains("415")
            || err.contains("unknown format"),
        "{err}"
    );
    // Server-side apply tracks ownership on custom resources too: the fields `kubectl
    // scale` and `kubectl patch` set are theirs, so taking them over needs force.
    let err = c.kubectl_err(
        &[
            "apply",
            "--server-side",
            "--field-manager=tester",
            "-f",
            "-",
        ],
        Some(&WIDGET.replace("large", "medium")),
    );
    assert!(err.contains("Apply failed with 2 conflicts"), "{err}");
    let applied = c.kubectl_in(
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=tester",
            "-f",
            "-",
        ],
        &WIDGET.replace("large", "medium"),
    );
    assert!(applied.contains("serverside-applied"), "{applied}");
    let w = c.json(&["get", "widget", "w1", "--show-managed-fields"]);
    let managers: Vec<&str> = w["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(managers.contains(&"tester"), "{managers:?}");
    // The status subresource is the only way to write status.
    c.kubectl(&[
        "patch",
        "widget",
        "w1",
        "--type=merge",
        "-p",
        r#"{"status":{"replicas":7}}"#,
    ]);
    assert!(c.json(&["get", "widget", "w1"])["status"]["replicas"].is_null());
    c.kubectl(&[
        "patch",
        "widget",
        "w1",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"replicas":7,"selector":"app=w"}}"#,
    ]);
    let scale: serde_json::Value = serde_json::from_str(&c.kubectl(&[
        "get",
        "--raw",
        "/apis/example.com/v1/namespaces/default/widgets/w1/scale",
    ]))
    .unwrap();
    assert_eq!(scale["status"]["replicas"], 7, "{scale}");
    assert_eq!(scale["status"]["selector"], "app=w", "{scale}");
    // kubectl explain reads the published schema.
    let explain = c.kubectl(&["explain", "widget.spec.size"]);
    assert!(explain.contains("How big the widget is."), "{explain}");
    // Watch and label selectors go through the generic path.
    c.kubectl(&["label", "widget", "w1", "tier=gold"]);
    let names = c.kubectl(&["get", "widgets", "-l", "tier=gold", "-o", "name"]);
    assert_eq!(names.trim(), "widget.example.com/w1");

    // Deleting the CRD deletes its objects first, then the API goes.
    c.kubectl(&["delete", "crd", "widgets.example.com", "--timeout=30s"]);
    let err = c.kubectl_err(&["get", "widgets"], None);
    // kubectl may still have the resource in its discovery cache; either way it is gone.
    assert!(
        err.contains("the server doesn't have a resource type \"widgets\"")
            || err.contains("the server could not find the requested resource"),
        "{err}"
    );
    let raw = c.kubectl_output(
        &[
            "get",
            "--raw",
            "/apis/example.com/v1/namespaces/default/widgets",
        ],
        None,
    );
    assert!(!raw.status.success());
}

#[test]
fn a_crd_that_breaks_the_rules_is_refused_with_upstreams_message() {
    let c = Cluster::start();
    let bad = WIDGET_CRD.replacen("name: widgets.example.com", "name: wrongname", 1);
    let err = c.kubectl_err(&["apply", "-f", "-"], Some(&bad));
    assert!(
        err.contains(
            r#"metadata.name: Invalid value: "wrongname": must be spec.names.plural+"."+spec.group"#
        ),
        "{err}"
    );
    let two_storage = WIDGET_CRD.replace("scope: Namespaced", "scope: Global");
    let err = c.kubectl_err(&["apply", "-f", "-"], Some(&two_storage));
    assert!(
        err.contains(
            r#"spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced""#
        ),
        "{err}"
    );
    let out = c.kubectl(&["get", "crd", "-o", "name"]);
    assert_eq!(out.trim(), "");
}

#[test]
fn custom_resources_survive_a_restart_and_are_served_at_once() {
    let mut c = Cluster::start();
    install_widgets(&c);
    c.kubectl_in(&["apply", "-f", "-"], WIDGET);
    c.crash();
    c.boot();
    let w = c.json(&["get", "widget", "w1"]);
    assert_eq!(w["spec"]["size"], "large");
}

#[test]
fn custom_resources_are_held_to_their_schema() {
    let c = Cluster::start();
    install_widgets(&c);
    // Types, enums, minimum, pattern and required fields: 422 with upstream's messages, and
    // nothing stored.
    let bad = WIDGET
        .replace("size: large", "size: huge")
        .replace("replicas: 1", "replicas: -1\n  color: Red");
    let err = c.kubectl_err(&["apply", "-f", "-"], Some(&bad));
    for want in [
        r#"spec.size: Unsupported value: "huge": supported values: "small", "medium", "large""#,
        "spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0",
        r#"spec.color: Invalid value: "Red": spec.color in body should match '^[a-z]+$'"#,
    ] {
        assert!(err.contains(want), "missing {want} in {err}");
    }
    let err = c.kubectl_err(
        &["apply", "-f", "-"],
        Some(&WIDGET.replace("  size: large\n", "")),
    );
    assert!(err.contains("spec.size: Required value"), "{err}");
    let err = c.kubectl_err(
        &["apply", "-f", "-"],
        Some(&WIDGET.replace("replicas: 1", "replicas: one")),
    );
    assert!(
        err.contains(r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#),
        "{err}"
    );
    assert_eq!(c.kubectl(&["get", "widgets", "-o", "name"]).trim(), "");
    // Defaults are applied; unknown fields are pruned with a warning, or refused under
    // strict field validation.
    let extra = WIDGET.replace("size: large", "size: large\n  shape: round");
    let out = c.kubectl_output(&["create", "--validate=warn", "-f", "-"], Some(&extra));
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(r#"unknown field "spec.shape""#), "{stderr}");
    let w = c.json(&["get", "widget", "w1"]);
    assert_eq!(w["spec"]["color"], "blue");
    assert!(w["spec"].get("shape").is_none(), "{w}");
    let strict = extra.replace("name: w1", "name: w2");
    let err = c.kubectl_err(&["create", "--validate=strict", "-f", "-"], Some(&strict));
    assert!(err.contains(r#"unknown field "spec.shape""#), "{err}");
}

#[test]
fn a_crd_whose_schema_is_not_structural_is_refused() {
    let c = Cluster::start();
    let bad = WIDGET_CRD.replace(
        "              replicas:\n                type: integer\n                minimum: 0",
        "              replicas:\n                minimum: 0",
    );
    assert_ne!(bad, WIDGET_CRD);
    let err = c.kubectl_err(&["apply", "-f", "-"], Some(&bad));
    assert!(
        err.contains("spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[replicas].type: Required value: must not be empty for specified object fields"),
        "{err}"
    );
}

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
    let names = c.kubectl(&[
        "get",
        "widgets",
        "--field-selector",
        "metadata.name=w1,metadata.namespace=default",
        "-o",
        "name",
    ]);
    assert_eq!(names.trim(), "widget.example.com/w1");
    // A watch sees the changes to a custom resource.
    let mut watch = c
        .kubectl_cmd(&["get", "widgets", "--watch-only", "-o", "name"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut round = 0;
    let seen = loop {
        round += 1;
        let touched = format!("touched={round}");
        c.kubectl(&["annotate", "--overwrite", "widget", "w1", &touched]);
        if let Ok(line) = rx.recv_timeout(std::time::Duration::from_millis(200)) {
            break line;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the watch saw nothing"
        );
    };
    let _ = watch.kill();
    let _ = watch.wait();
    assert_eq!(seen, "widget.example.com/w1");

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
    // Nothing of either was stored (the Gateway API's CRDs are built in, issue 16).
    let out = c.kubectl(&["get", "crd", "-o", "name"]);
    assert!(
        !out.contains("wrongname") && !out.contains("widgets.example.com"),
        "{out}"
    );
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

/// The upstream Gateway API standard channel (v1.6.1, vendored with its licence). skiff
/// installs it at start (issue 16); the tests apply it again as a user upgrading by hand
/// would, with `--force-conflicts`: the bundled policy's `matchConstraints` is an atomic
/// struct the server defaults, so an apply over the installer's write conflicts, as on
/// upstream.
fn gateway_api() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../vendor/gateway-api/standard-install.yaml")
}

const GATEWAY_EXAMPLES: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: nginx
spec:
  controllerName: skiff.dev/gateway-controller
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: main-gateway
spec:
  gatewayClassName: nginx
  listeners:
  - name: http
    protocol: HTTP
    port: 80
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: collector
spec:
  parentRefs:
  - name: main-gateway
  hostnames: ["collector.example.com"]
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /
    backendRefs:
    - name: collector
      port: 80
"#;

#[test]
fn the_gateway_api_installs_and_its_rules_hold() {
    let c = Cluster::start();
    let path = gateway_api();
    let out = c.kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        path.to_str().unwrap(),
    ]);
    assert!(
        out.contains("customresourcedefinition.apiextensions.k8s.io/httproutes.gateway.networking.k8s.io serverside-applied"),
        "{out}"
    );
    assert!(
        out.contains("validatingadmissionpolicy.admissionregistration.k8s.io/safe-upgrades.gateway.networking.k8s.io serverside-applied"),
        "{out}"
    );
    c.kubectl(&[
        "wait",
        "--for=condition=established",
        "--timeout=30s",
        "crd",
        "--all",
    ]);
    // A second apply of the same documents changes nothing.
    let again = c.kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        path.to_str().unwrap(),
    ]);
    assert!(
        again.contains("httproutes.gateway.networking.k8s.io serverside-applied"),
        "{again}"
    );
    let out = c.kubectl_in(&["apply", "-f", "-"], GATEWAY_EXAMPLES);
    for want in [
        "gatewayclass.gateway.networking.k8s.io/nginx created",
        "gateway.gateway.networking.k8s.io/main-gateway created",
        "httproute.gateway.networking.k8s.io/collector created",
    ] {
        assert!(out.contains(want), "{out}");
    }
    // Defaults from the schema are applied.
    let route = c.json(&["get", "httproute", "collector"]);
    assert_eq!(
        route["spec"]["parentRefs"][0]["group"],
        "gateway.networking.k8s.io"
    );
    assert_eq!(route["spec"]["rules"][0]["backendRefs"][0]["weight"], 1);
    // A CEL rule of the HTTPRoute schema refuses a relative path prefix.
    let bad = GATEWAY_EXAMPLES
        .split("---")
        .nth(2)
        .unwrap()
        .replace("name: collector\nspec", "name: bad\nspec")
        .replace("value: /", "value: relative");
    let err = c.kubectl_err(&["apply", "-f", "-"], Some(&bad));
    assert!(
        err.contains("value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']"),
        "{err}"
    );
    assert!(!c
        .kubectl_output(&["get", "httproute", "bad"], None)
        .status
        .success());
    // Printer columns of the upstream CRDs.
    let table = c.kubectl(&["get", "gateways"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "CLASS", "ADDRESS", "PROGRAMMED", "AGE"],
        "{table}"
    );
}

const POLICY: &str = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: small-configmaps
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - apiGroups: [""]
      apiVersions: ["v1"]
      operations: ["CREATE", "UPDATE"]
      resources: ["configmaps"]
  variables:
  - name: keys
    expression: "has(object.data) ? object.data.size() : 0"
  validations:
  - expression: "variables.keys <= 2"
    messageExpression: "'too many keys: ' + string(variables.keys)"
  - expression: "!has(object.data) || !('forbidden' in object.data)"
    message: "the key 'forbidden' is not allowed"
    reason: Forbidden
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: small-configmaps-deny
spec:
  policyName: small-configmaps
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels:
        policy: enforced
    resourceRules:
    - apiGroups: [""]
      apiVersions: ["v1"]
      operations: ["CREATE", "UPDATE"]
      resources: ["configmaps"]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: small-configmaps-warn
spec:
  policyName: small-configmaps
  validationActions: [Warn]
  matchResources:
    namespaceSelector:
      matchLabels:
        policy: warned
    resourceRules:
    - apiGroups: [""]
      apiVersions: ["v1"]
      operations: ["CREATE", "UPDATE"]
      resources: ["configmaps"]
"#;

/// Waits until a write is denied by the policies, which apply once their watch has them.
fn until_denied(c: &Cluster, args: &[&str]) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let out = c.kubectl_output(args, None);
        if !out.status.success() {
            return String::from_utf8_lossy(&out.stderr).into_owned();
        }
        let name = args
            .iter()
            .position(|a| *a == "configmap")
            .map(|i| args[i + 1]);
        if let Some(name) = name {
            c.kubectl(&["delete", "configmap", name, "-n", args[args.len() - 1]]);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{args:?} was never denied"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn validating_admission_policies_deny_and_warn_as_their_bindings_say() {
    let c = Cluster::start();
    c.kubectl(&["create", "namespace", "strict"]);
    c.kubectl(&["label", "namespace", "strict", "policy=enforced"]);
    c.kubectl(&["create", "namespace", "lenient"]);
    c.kubectl(&["label", "namespace", "lenient", "policy=warned"]);
    c.kubectl_in(&["apply", "-f", "-"], POLICY);
    let err = until_denied(
        &c,
        &[
            "create",
            "configmap",
            "big",
            "--from-literal=a=1",
            "--from-literal=b=2",
            "--from-literal=c=3",
            "-n",
            "strict",
        ],
    );
    assert!(
        err.contains(r#"configmaps "big" is forbidden: ValidatingAdmissionPolicy 'small-configmaps' with binding 'small-configmaps-deny' denied request: too many keys: 3"#),
        "{err}"
    );
    let err = c.kubectl_err(
        &[
            "create",
            "configmap",
            "f",
            "--from-literal=forbidden=1",
            "-n",
            "strict",
        ],
        None,
    );
    assert!(err.contains("the key 'forbidden' is not allowed"), "{err}");
    assert!(err.contains(r#"configmaps "f" is forbidden"#), "{err}");
    // The Warn binding admits and warns.
    let out = c.kubectl_output(
        &[
            "create",
            "configmap",
            "big",
            "--from-literal=a=1",
            "--from-literal=b=2",
            "--from-literal=c=3",
            "-n",
            "lenient",
        ],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Warning: Validation failed for ValidatingAdmissionPolicy 'small-configmaps' with binding 'small-configmaps-warn': too many keys: 3"),
        "{stderr}"
    );
    // Namespaces neither binding selects are untouched.
    c.kubectl(&[
        "create",
        "configmap",
        "big",
        "--from-literal=a=1",
        "--from-literal=b=2",
        "--from-literal=c=3",
    ]);
}

#[test]
fn the_gateway_api_safe_upgrades_policy_refuses_experimental_crds_over_standard() {
    let c = Cluster::start();
    let path = gateway_api();
    c.kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        path.to_str().unwrap(),
    ]);
    let crd = c.json(&["get", "crd", "gatewayclasses.gateway.networking.k8s.io"]);
    let mut experimental = crd.clone();
    experimental["metadata"]["annotations"]["gateway.networking.k8s.io/channel"] =
        serde_json::json!("experimental");
    for f in [
        "managedFields",
        "resourceVersion",
        "uid",
        "creationTimestamp",
        "generation",
    ] {
        experimental["metadata"].as_object_mut().unwrap().remove(f);
    }
    experimental.as_object_mut().unwrap().remove("status");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let err = loop {
        let out = c.kubectl_output(&["replace", "-f", "-"], Some(&experimental.to_string()));
        if !out.status.success() {
            break String::from_utf8_lossy(&out.stderr).into_owned();
        }
        assert!(std::time::Instant::now() < deadline, "never denied");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(
        err.contains(
            "Installing experimental CRDs on top of standard channel CRDs is prohibited by default"
        ),
        "{err}"
    );
}

/// The shirts of upstream's selectable-fields integration test
/// (apiextensions-apiserver test/integration/fieldselector_test.go), at one version: skiff
/// converts no versions (conversion `None`), so the `v1beta1` rename of `color` is left out.
const SHIRT_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: shirts.tests.example.com}
spec:
  group: tests.example.com
  scope: Cluster
  names: {plural: shirts, singular: shirt, kind: Shirt, listKind: ShirtList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              color: {type: string}
              quantity: {type: integer}
              size: {type: string, enum: [S, M, L, XL]}
              branded: {type: boolean}
    selectableFields:
    - jsonPath: .spec.color
    - jsonPath: .spec.quantity
    - jsonPath: .spec.size
    - jsonPath: .spec.branded
"#;

const SHIRTS: &str = "
kind: Shirt
apiVersion: tests.example.com/v1
metadata: {name: shirt1}
spec: {color: blue, quantity: 2, size: S, branded: true}
---
kind: Shirt
apiVersion: tests.example.com/v1
metadata: {name: shirt2}
spec: {color: blue, quantity: 3, size: M, branded: false}
---
kind: Shirt
apiVersion: tests.example.com/v1
metadata: {name: shirt3}
spec: {color: green, quantity: 2, branded: false}
";

/// Names of the shirts a field selector lists, sorted.
fn shirts(c: &Cluster, selector: &str) -> Vec<String> {
    let mut names: Vec<String> = c.json(&["get", "shirts", "--field-selector", selector])["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|s| s["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn selectable_fields_select_in_lists_watches_and_deletes_and_are_published() {
    let c = Cluster::start();
    c.kubectl_in(&["apply", "-f", "-"], SHIRT_CRD);
    c.kubectl(&[
        "wait",
        "--for=condition=established",
        "crd/shirts.tests.example.com",
    ]);
    // The API's own list (kubectl's `-o json` list has no resourceVersion of its own).
    let list: serde_json::Value =
        serde_json::from_str(&c.kubectl(&["get", "--raw", "/apis/tests.example.com/v1/shirts"]))
            .unwrap();
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .expect("list resourceVersion")
        .to_owned();
    c.kubectl_in(&["apply", "-f", "-"], SHIRTS);

    // The integration test's cases (list).
    let cases: &[(&str, &[&str])] = &[
        ("spec.color=blue", &["shirt1", "shirt2"]),
        ("spec.quantity=2", &["shirt1", "shirt3"]),
        ("spec.size=M", &["shirt2"]),
        ("spec.branded=false", &["shirt2", "shirt3"]),
        ("spec.color=blue,spec.quantity=2", &["shirt1"]),
        ("spec.color=blue,spec.branded=false", &["shirt2"]),
        ("spec.color!=blue", &["shirt3"]),
        ("metadata.name=shirt3", &["shirt3"]),
    ];
    for (selector, want) in cases {
        assert_eq!(shirts(&c, selector), *want, "{selector}");
    }
    let err = c.kubectl_err(
        &["get", "shirts", "--field-selector", "spec.nosuchfield=xyz"],
        None,
    );
    assert!(
        err.contains("field label not supported: spec.nosuchfield"),
        "{err}"
    );
    // A cluster-scoped kind has no namespace to select on, as upstream's converter says.
    let err = c.kubectl_err(
        &["get", "shirts", "--field-selector", "metadata.namespace=x"],
        None,
    );
    assert!(
        err.contains("field label not supported: metadata.namespace"),
        "{err}"
    );

    // Watch: shirt1 deleted and shirt2 turned green leave `spec.color=blue`. Replayed from
    // the resourceVersion before the creations; the server ends the watch after a second.
    c.kubectl(&["delete", "shirt", "shirt1"]);
    c.kubectl(&[
        "patch",
        "shirt",
        "shirt2",
        "--type=merge",
        "-p",
        r#"{"spec":{"color":"green"}}"#,
    ]);
    let events = c.kubectl(&[
        "get",
        "--raw",
        &format!(
            "/apis/tests.example.com/v1/shirts?watch=1&resourceVersion={rv}&timeoutSeconds=1&fieldSelector=spec.color%3Dblue"
        ),
    ]);
    let seen: Vec<(String, String)> = events
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a watch event"))
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_owned(),
                e["object"]["metadata"]["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    };
    assert_eq!(
        seen,
        pairs(&[
            ("ADDED", "shirt1"),
            ("ADDED", "shirt2"),
            ("DELETED", "shirt1"),
            ("DELETED", "shirt2"),
        ])
    );

    // deletecollection by a selectable field.
    c.kubectl_in(&["apply", "-f", "-"], SHIRTS);
    c.kubectl(&["delete", "shirts", "--field-selector", "spec.quantity=2"]);
    assert_eq!(shirts(&c, "metadata.name!=none"), ["shirt2"]);

    // Published in OpenAPI v3 and v2 as upstream's builder does.
    let want = serde_json::json!([{"fieldPath": "spec.color"}, {"fieldPath": "spec.quantity"},
        {"fieldPath": "spec.size"}, {"fieldPath": "spec.branded"}]);
    let v3: serde_json::Value = serde_json::from_str(&c.kubectl(&[
        "get",
        "--raw",
        "/openapi/v3/apis/tests.example.com/v1",
    ]))
    .unwrap();
    assert_eq!(
        v3["components"]["schemas"]["com.example.tests.v1.Shirt"]["x-kubernetes-selectable-fields"],
        want
    );
    let v2: serde_json::Value =
        serde_json::from_str(&c.kubectl(&["get", "--raw", "/openapi/v2"])).unwrap();
    assert_eq!(
        v2["definitions"]["com.example.tests.v1.Shirt"]["x-kubernetes-selectable-fields"],
        want
    );

    // A declaration that is no simple path to a scalar is refused, with upstream's message.
    let bad = SHIRT_CRD
        .replace("shirts.tests.example.com", "jackets.tests.example.com")
        .replace(
            "plural: shirts, singular: shirt, kind: Shirt, listKind: ShirtList",
            "plural: jackets, singular: jacket, kind: Jacket, listKind: JacketList",
        )
        .replace("jsonPath: .spec.quantity", "jsonPath: .spec.nosuch")
        .replace("jsonPath: .spec.size", "jsonPath: .spec");
    let err = c.kubectl_err(&["apply", "-f", "-"], Some(&bad));
    assert!(
        err.contains(r#"spec.versions[0].selectableFields[1].jsonPath: Invalid value: ".spec.nosuch": is an invalid path: does not refer to a valid field"#)
            && err.contains(r#"spec.versions[0].selectableFields[2].jsonPath: Invalid value: ".spec": must point to a field of type string, boolean or integer"#),
        "{err}"
    );
}

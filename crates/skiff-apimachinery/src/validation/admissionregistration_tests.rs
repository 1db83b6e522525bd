//! Table tests after upstream's `pkg/apis/admissionregistration/validation/validation_test.go`
//! and kube-aggregator's APIService validation, on defaulted wire-form objects.

use serde_json::{json, Value};

use crate::defaults::apply_defaults;
use crate::validation::validate;

const GROUP: &str = "admissionregistration.k8s.io";

fn errors(group: &str, kind: &str, mut obj: Value, old: Option<Value>) -> Vec<String> {
    apply_defaults(group, kind, &mut obj);
    let old = old.map(|mut o| {
        apply_defaults(group, kind, &mut o);
        o
    });
    validate(group, kind, &obj, old.as_ref())
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn hook() -> Value {
    json!({
        "name": "webhook.k8s.io",
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "clientConfig": {"service": {"namespace": "ns", "name": "svc"}},
        "rules": [{"operations": ["CREATE"], "apiGroups": ["a"], "apiVersions": ["a"],
                   "resources": ["a"]}]
    })
}

fn webhook_config(hooks: Vec<Value>) -> Value {
    json!({"metadata": {"name": "config"}, "webhooks": hooks})
}

fn hook_with(edit: impl FnOnce(&mut Value)) -> Value {
    let mut h = hook();
    edit(&mut h);
    webhook_config(vec![h])
}

#[test]
fn webhook_defaults_as_upstream() {
    let mut obj = webhook_config(vec![hook()]);
    apply_defaults(GROUP, "MutatingWebhookConfiguration", &mut obj);
    let h = &obj["webhooks"][0];
    assert_eq!(h["failurePolicy"], "Fail");
    assert_eq!(h["matchPolicy"], "Equivalent");
    assert_eq!(h["namespaceSelector"], json!({}));
    assert_eq!(h["objectSelector"], json!({}));
    assert_eq!(h["timeoutSeconds"], 10);
    assert_eq!(h["reinvocationPolicy"], "Never");
    assert_eq!(h["rules"][0]["scope"], "*");
    assert_eq!(h["clientConfig"]["service"]["port"], 443);
    assert!(h.get("sideEffects").is_some());
    let mut v = webhook_config(vec![hook()]);
    apply_defaults(GROUP, "ValidatingWebhookConfiguration", &mut v);
    assert!(v["webhooks"][0].get("reinvocationPolicy").is_none());
}

#[test]
fn webhook_configurations_validate_as_upstream() {
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        ("valid", webhook_config(vec![hook()]), vec![]),
        (
            "should fail on bad name",
            hook_with(|h| h["name"] = json!("webhook")),
            vec!["webhooks[0].name: Invalid value: \"webhook\": should be a domain with at least three segments separated by dots"],
        ),
        (
            "empty name",
            hook_with(|h| h["name"] = json!("")),
            vec!["webhooks[0].name: Required value"],
        ),
        (
            "should fail on duplicate names",
            webhook_config(vec![hook(), hook()]),
            vec!["webhooks[1].name: Duplicate value: \"webhook.k8s.io\""],
        ),
        (
            "sideEffects required",
            hook_with(|h| {
                h.as_object_mut().unwrap().remove("sideEffects");
            }),
            vec!["webhooks[0].sideEffects: Required value: must specify one of None, NoneOnDryRun"],
        ),
        (
            "an empty sideEffects (how typed clients send none) is missing",
            hook_with(|h| h["sideEffects"] = json!("")),
            vec!["webhooks[0].sideEffects: Required value: must specify one of None, NoneOnDryRun"],
        ),
        (
            "sideEffects Some not allowed in v1",
            hook_with(|h| h["sideEffects"] = json!("Some")),
            vec!["webhooks[0].sideEffects: Unsupported value: \"Some\": supported values: \"None\", \"NoneOnDryRun\""],
        ),
        (
            "admissionReviewVersions required",
            hook_with(|h| h["admissionReviewVersions"] = json!([])),
            vec!["webhooks[0].admissionReviewVersions: Required value: must specify one of v1, v1beta1"],
        ),
        (
            "admissionReviewVersions must include a recognized version",
            hook_with(|h| h["admissionReviewVersions"] = json!(["v2", "v2"])),
            vec![
                "webhooks[0].admissionReviewVersions[1]: Invalid value: \"v2\": duplicate version",
                "webhooks[0].admissionReviewVersions: Invalid value: []string{\"v2\", \"v2\"}: must include at least one of v1, v1beta1",
            ],
        ),
        (
            "invalid admissionReviewVersion",
            hook_with(|h| h["admissionReviewVersions"] = json!(["v1", "0v"])),
            vec!["webhooks[0].admissionReviewVersions[1]: Invalid value: \"0v\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"],
        ),
        (
            "operations must not be empty or nil",
            hook_with(|h| h["rules"][0]["operations"] = json!([])),
            vec!["webhooks[0].rules[0].operations: Required value"],
        ),
        (
            "\"*\" cannot mix with other operations",
            hook_with(|h| h["rules"][0]["operations"] = json!(["*", "CREATE"])),
            vec!["webhooks[0].rules[0].operations: Invalid value: []admissionregistration.OperationType{\"*\", \"CREATE\"}: if '*' is present, must not specify other operations"],
        ),
        (
            "operation must be either create/update/delete/connect",
            hook_with(|h| h["rules"][0]["operations"] = json!(["PATCH"])),
            vec!["webhooks[0].rules[0].operations[0]: Unsupported value: \"PATCH\": supported values: \"*\", \"CONNECT\", \"CREATE\", \"DELETE\", \"UPDATE\""],
        ),
        (
            "wildcard operation cannot be mixed with other strings",
            hook_with(|h| {
                h["rules"][0]["apiGroups"] = json!(["*", "a"]);
                h["rules"][0]["apiVersions"] = json!(["*", "a"]);
            }),
            vec![
                "webhooks[0].rules[0].apiGroups: Invalid value: []string{\"*\", \"a\"}: if '*' is present, must not specify other API groups",
                "webhooks[0].rules[0].apiVersions: Invalid value: []string{\"*\", \"a\"}: if '*' is present, must not specify other API versions",
            ],
        ),
        (
            "resource \"*\" can co-exist with resources that have subresources",
            hook_with(|h| h["rules"][0]["resources"] = json!(["*", "a/b", "a/*", "*/b"])),
            vec![],
        ),
        (
            "resource \"*\" cannot mix with resources that don't have subresources",
            hook_with(|h| h["rules"][0]["resources"] = json!(["*", "a"])),
            vec!["webhooks[0].rules[0].resources: Invalid value: []string{\"*\", \"a\"}: if '*' is present, must not specify other resources without subresources"],
        ),
        (
            "resource a/* cannot mix with a/x",
            hook_with(|h| h["rules"][0]["resources"] = json!(["a/*", "a/x"])),
            vec!["webhooks[0].rules[0].resources[1]: Invalid value: \"a/x\": if 'a/*' is present, must not specify a/x"],
        ),
        (
            "resource */* cannot mix with other resources",
            hook_with(|h| h["rules"][0]["resources"] = json!(["*/*", "a"])),
            vec!["webhooks[0].rules[0].resources: Invalid value: []string{\"*/*\", \"a\"}: if '*/*' is present, must not specify other resources"],
        ),
        (
            "invalid scope",
            hook_with(|h| h["rules"][0]["scope"] = json!("cluster")),
            vec!["webhooks[0].rules[0].scope: Unsupported value: \"cluster\": supported values: \"*\", \"Cluster\", \"Namespaced\""],
        ),
        (
            "FailurePolicy can only be \"Ignore\" or \"Fail\"",
            hook_with(|h| h["failurePolicy"] = json!("other")),
            vec!["webhooks[0].failurePolicy: Unsupported value: \"other\": supported values: \"Fail\", \"Ignore\""],
        ),
        (
            "MatchPolicy can only be \"Exact\" or \"Equivalent\"",
            hook_with(|h| h["matchPolicy"] = json!("other")),
            vec!["webhooks[0].matchPolicy: Unsupported value: \"other\": supported values: \"Equivalent\", \"Exact\""],
        ),
        (
            "both service and URL missing",
            hook_with(|h| h["clientConfig"] = json!({})),
            vec!["webhooks[0].clientConfig: Required value: exactly one of url or service is required"],
        ),
        (
            "both service and URL provided",
            hook_with(|h| h["clientConfig"]["url"] = json!("https://example.com")),
            vec!["webhooks[0].clientConfig: Required value: exactly one of url or service is required"],
        ),
        (
            "blank URL",
            hook_with(|h| h["clientConfig"] = json!({"url": ""})),
            vec![
                "webhooks[0].clientConfig.url: Invalid value: \"\": 'https' is the only allowed URL scheme; desired format: https://host[/path]",
                "webhooks[0].clientConfig.url: Invalid value: \"\": host must be provided; desired format: https://host[/path]",
            ],
        ),
        (
            "wrong scheme",
            hook_with(|h| h["clientConfig"] = json!({"url": "http://example.com"})),
            vec!["webhooks[0].clientConfig.url: Invalid value: \"http\": 'https' is the only allowed URL scheme; desired format: https://host[/path]"],
        ),
        (
            "missing host",
            hook_with(|h| h["clientConfig"] = json!({"url": "https:///fancy/webhook"})),
            vec!["webhooks[0].clientConfig.url: Invalid value: \"\": host must be provided; desired format: https://host[/path]"],
        ),
        (
            "fragment",
            hook_with(|h| h["clientConfig"] = json!({"url": "https://example.com/#bookmark"})),
            vec!["webhooks[0].clientConfig.url: Invalid value: \"bookmark\": fragments are not permitted in the URL"],
        ),
        (
            "query",
            hook_with(|h| h["clientConfig"] = json!({"url": "https://example.com?arg=value"})),
            vec!["webhooks[0].clientConfig.url: Invalid value: \"arg=value\": query parameters are not permitted in the URL"],
        ),
        (
            "user password",
            hook_with(|h| h["clientConfig"] = json!({"url": "https://Bob:pw@example.com/"})),
            vec!["webhooks[0].clientConfig.url: Invalid value: \"Bob:pw\": user information is not permitted in the URL"],
        ),
        (
            "path must start with slash",
            hook_with(|h| h["clientConfig"]["service"]["path"] = json!("foo/")),
            vec!["webhooks[0].clientConfig.service.path: Invalid value: \"foo/\": must start with a '/'"],
        ),
        (
            "path accepts slash",
            hook_with(|h| h["clientConfig"]["service"]["path"] = json!("/")),
            vec![],
        ),
        (
            "path fails //",
            hook_with(|h| h["clientConfig"]["service"]["path"] = json!("//")),
            vec!["webhooks[0].clientConfig.service.path: Invalid value: \"//\": segment[0] may not be empty"],
        ),
        (
            "path no empty step",
            hook_with(|h| h["clientConfig"]["service"]["path"] = json!("/foo//bar/")),
            vec!["webhooks[0].clientConfig.service.path: Invalid value: \"/foo//bar/\": segment[1] may not be empty"],
        ),
        (
            "path no non-subdomain",
            hook_with(|h| h["clientConfig"]["service"]["path"] = json!("/apis/foo.bar/v1alpha1/--bad")),
            vec!["webhooks[0].clientConfig.service.path: Invalid value: \"/apis/foo.bar/v1alpha1/--bad\": segment[3]: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"],
        ),
        (
            "invalid port 0",
            hook_with(|h| h["clientConfig"]["service"]["port"] = json!(0)),
            vec!["webhooks[0].clientConfig.service.port: Invalid value: 0: port is not valid: must be between 1 and 65535, inclusive"],
        ),
        (
            "timeout seconds cannot be greater than 30",
            hook_with(|h| h["timeoutSeconds"] = json!(31)),
            vec!["webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 seconds"],
        ),
        (
            "timeout seconds cannot be smaller than 1",
            hook_with(|h| h["timeoutSeconds"] = json!(0)),
            vec!["webhooks[0].timeoutSeconds: Invalid value: 0: the timeout value must be between 1 and 30 seconds"],
        ),
        (
            "invalid namespace selector",
            hook_with(|h| h["namespaceSelector"] = json!({"matchExpressions": [{"key": "a", "operator": "In"}]})),
            vec!["webhooks[0].namespaceSelector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"],
        ),
        (
            "match conditions: names required, unique and qualified",
            hook_with(|h| h["matchConditions"] = json!([
                {"name": "", "expression": "true"},
                {"name": "a b", "expression": "true"},
                {"name": "c", "expression": " "},
                {"name": "c", "expression": "true"}])),
            vec![
                "webhooks[0].matchConditions[0].name: Required value",
                "webhooks[0].matchConditions[1].name: Invalid value: \"a b\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
                "webhooks[0].matchConditions[2].expression: Required value",
                "webhooks[0].matchConditions[3].name: Duplicate value: \"c\"",
            ],
        ),
    ];
    for (name, obj, want) in cases {
        assert_eq!(
            errors(GROUP, "ValidatingWebhookConfiguration", obj, None),
            want,
            "{name}"
        );
    }
}

#[test]
fn mutating_webhook_reinvocation_policy() {
    let obj = hook_with(|h| h["reinvocationPolicy"] = json!("Sometimes"));
    assert_eq!(
        errors(GROUP, "MutatingWebhookConfiguration", obj, None),
        vec!["webhooks[0].reinvocationPolicy: Unsupported value: \"Sometimes\": supported values: \"IfNeeded\", \"Never\""]
    );
}

#[test]
fn webhook_updates_keep_what_the_old_object_had() {
    // Stored before v1 tightened the rules: side effects, unrecognized review versions and
    // duplicate names remain allowed while the old object had them.
    let mut old_hook = hook();
    old_hook["sideEffects"] = json!("Some");
    old_hook["admissionReviewVersions"] = json!(["v2"]);
    let old = webhook_config(vec![old_hook.clone(), old_hook.clone()]);
    let new = old.clone();
    assert_eq!(
        errors(
            GROUP,
            "ValidatingWebhookConfiguration",
            new,
            Some(old.clone())
        ),
        Vec::<String>::new()
    );
    let create = errors(GROUP, "ValidatingWebhookConfiguration", old, None);
    assert_eq!(create.len(), 5, "{create:?}");
}

fn policy() -> Value {
    json!({
        "metadata": {"name": "policy"},
        "spec": {
            "matchConstraints": {"resourceRules": [{"operations": ["CREATE"],
                "apiGroups": ["a"], "apiVersions": ["a"], "resources": ["a"]}]},
            "validations": [{"expression": "object.x < 100"}]
        }
    })
}

fn policy_with(edit: impl FnOnce(&mut Value)) -> Value {
    let mut p = policy();
    edit(&mut p["spec"]);
    p
}

#[test]
fn policy_defaults_as_upstream() {
    let mut p = policy();
    apply_defaults(GROUP, "ValidatingAdmissionPolicy", &mut p);
    let spec = &p["spec"];
    assert_eq!(spec["failurePolicy"], "Fail");
    let m = &spec["matchConstraints"];
    assert_eq!(m["matchPolicy"], "Equivalent");
    assert_eq!(m["namespaceSelector"], json!({}));
    assert_eq!(m["objectSelector"], json!({}));
    assert_eq!(m["resourceRules"][0]["scope"], "*");
}

#[test]
fn policies_validate_as_upstream() {
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        ("valid", policy(), vec![]),
        (
            "Validations is required",
            policy_with(|s| {
                s.as_object_mut().unwrap().remove("validations");
            }),
            vec![
                "spec.validations: Required value: validations or auditAnnotations must contain at least one item",
                "spec.auditAnnotations: Required value: validations or auditAnnotations must contain at least one item",
            ],
        ),
        (
            "Invalid Validations Reason",
            policy_with(|s| s["validations"][0]["reason"] = json!("other")),
            vec!["spec.validations[0].reason: Unsupported value: \"other\": supported values: \"Forbidden\", \"Invalid\", \"RequestEntityTooLarge\""],
        ),
        (
            "expression is required",
            policy_with(|s| s["validations"][0]["expression"] = json!("  ")),
            vec!["spec.validations[0].expression: Required value: expression is not specified"],
        ),
        (
            "messageExpression must be non-empty if specified",
            policy_with(|s| s["validations"][0]["messageExpression"] = json!(" ")),
            vec!["spec.validations[0].messageExpression: Invalid value: \" \": must be non-empty if specified"],
        ),
        (
            "message must not contain line breaks",
            policy_with(|s| s["validations"][0]["message"] = json!("a\nb")),
            vec!["spec.validations[0].message: Invalid value: \"a\\nb\": message must not contain line breaks"],
        ),
        (
            "invalid ParamKind",
            policy_with(|s| s["paramKind"] = json!({"apiVersion": "test.example.com/v1", "kind": "BadKind!"})),
            vec!["spec.paramKind.kind: Invalid value: \"BadKind!\": may have mixed case, but should otherwise match: a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"],
        ),
        (
            "paramKind apiVersion with too many slashes",
            policy_with(|s| s["paramKind"] = json!({"apiVersion": "a/b/c", "kind": "K"})),
            vec!["spec.paramKind.apiVersion: Invalid value: \"a/b/c\": unexpected GroupVersion string: a/b/c"],
        ),
        (
            "paramKind needs both fields",
            policy_with(|s| s["paramKind"] = json!({})),
            vec![
                "spec.paramKind.apiVersion: Required value",
                "spec.paramKind.kind: Required value",
            ],
        ),
        (
            "API version is required in ResourceRules",
            policy_with(|s| s["matchConstraints"]["resourceRules"][0]["apiVersions"] = json!([])),
            vec!["spec.matchConstraints.resourceRules[0].apiVersions: Required value"],
        ),
        (
            "matchConstraints is required",
            policy_with(|s| {
                s.as_object_mut().unwrap().remove("matchConstraints");
            }),
            vec!["spec.matchConstraints: Required value"],
        ),
        (
            "resourceRules is required",
            policy_with(|s| s["matchConstraints"] = json!({})),
            vec!["spec.matchConstraints.resourceRules: Required value"],
        ),
        (
            "resourceNames are path segments, unique",
            policy_with(|s| s["matchConstraints"]["resourceRules"][0]["resourceNames"] = json!(["a/b", "c", "c"])),
            vec![
                "spec.matchConstraints.resourceRules[0].resourceNames[0]: Invalid value: \"a/b\": may not contain '/'",
                "spec.matchConstraints.resourceRules[0].resourceNames[2]: Duplicate value: \"c\"",
            ],
        ),
        (
            "failurePolicy",
            policy_with(|s| s["failurePolicy"] = json!("other")),
            vec!["spec.failurePolicy: Unsupported value: \"other\": supported values: \"Fail\", \"Ignore\""],
        ),
        (
            "variables need names that are CEL identifiers and expressions",
            policy_with(|s| s["variables"] = json!([{"name": "in", "expression": ""}, {"name": "", "expression": "1"}])),
            vec![
                "spec.variables[0].name: Invalid value: \"in\": name is not a valid CEL identifier",
                "spec.variables[0].expression: Required value: expression is not specified",
                "spec.variables[1].name: Required value: name is not specified",
            ],
        ),
        (
            "auditAnnotations keys are qualified with the policy name, unique",
            policy_with(|s| s["auditAnnotations"] = json!([
                {"key": "a", "valueExpression": "'x'"},
                {"key": "a", "valueExpression": "'y'"},
                {"key": "b c", "valueExpression": " "}])),
            vec![
                "spec.auditAnnotations[1].key: Duplicate value: \"a\"",
                "spec.auditAnnotations[2].key: Invalid value: \"policy/b c\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
                "spec.auditAnnotations[2].valueExpression: Required value: valueExpression is not specified",
            ],
        ),
    ];
    for (name, obj, want) in cases {
        assert_eq!(
            errors(GROUP, "ValidatingAdmissionPolicy", obj, None),
            want,
            "{name}"
        );
    }
}

fn binding() -> Value {
    json!({
        "metadata": {"name": "binding"},
        "spec": {"policyName": "policy", "validationActions": ["Deny"]}
    })
}

fn binding_with(edit: impl FnOnce(&mut Value)) -> Value {
    let mut b = binding();
    edit(&mut b["spec"]);
    b
}

#[test]
fn bindings_validate_as_upstream() {
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        ("valid", binding(), vec![]),
        (
            "PolicyName is required",
            binding_with(|s| s["policyName"] = json!("")),
            vec!["spec.policyName: Required value"],
        ),
        (
            "validationActions must be unique",
            binding_with(|s| s["validationActions"] = json!(["Deny", "Deny"])),
            vec!["spec.validationActions[1]: Duplicate value: \"Deny\""],
        ),
        (
            "validationActions must contain supported values",
            binding_with(|s| s["validationActions"] = json!(["illegal"])),
            vec!["spec.validationActions[0]: Unsupported value: \"illegal\": supported values: \"Audit\", \"Deny\", \"Warn\""],
        ),
        (
            "validationActions must not contain both Deny and Warn",
            binding_with(|s| s["validationActions"] = json!(["Deny", "Warn"])),
            vec!["spec.validationActions: Invalid value: []admissionregistration.ValidationAction{\"Deny\", \"Warn\"}: must not contain both Deny and Warn (repeating the same validation failure information in the API response and headers serves no purpose)"],
        ),
        (
            "validationActions is required",
            binding_with(|s| s["validationActions"] = json!([])),
            vec!["spec.validationActions: Required value: at least one validation action is required"],
        ),
        (
            "paramRef name and selector are mutually exclusive",
            binding_with(|s| s["paramRef"] = json!({"name": "p", "selector": {}, "parameterNotFoundAction": "Deny"})),
            vec![
                "spec.paramRef.name: Forbidden: name and selector are mutually exclusive",
                "spec.paramRef.selector: Forbidden: name and selector are mutually exclusive",
            ],
        ),
        (
            "paramRef needs one of name or selector, and parameterNotFoundAction",
            binding_with(|s| s["paramRef"] = json!({})),
            vec![
                "spec.paramRef: Required value: one of name or selector must be specified",
                "spec.paramRef.parameterNotFoundAction: Required value",
            ],
        ),
        (
            "parameterNotFoundAction supported values",
            binding_with(|s| s["paramRef"] = json!({"name": "p", "parameterNotFoundAction": "Maybe"})),
            vec!["spec.paramRef.parameterNotFoundAction: Unsupported value: \"Maybe\": supported values: \"Deny\", \"Allow\""],
        ),
        (
            "matchResources are checked like the policy's",
            binding_with(|s| s["matchResources"] = json!({"matchPolicy": "other"})),
            vec!["spec.matchResources.matchPolicy: Unsupported value: \"other\": supported values: \"Equivalent\", \"Exact\""],
        ),
    ];
    for (name, obj, want) in cases {
        assert_eq!(
            errors(GROUP, "ValidatingAdmissionPolicyBinding", obj, None),
            want,
            "{name}"
        );
    }
}

fn api_service() -> Value {
    json!({
        "metadata": {"name": "v1beta1.metrics.k8s.io"},
        "spec": {"group": "metrics.k8s.io", "version": "v1beta1",
                 "groupPriorityMinimum": 100, "versionPriority": 100,
                 "service": {"namespace": "kube-system", "name": "metrics-server"}}
    })
}

fn api_service_with(edit: impl FnOnce(&mut Value)) -> Value {
    let mut a = api_service();
    edit(&mut a);
    a
}

#[test]
fn api_services_default_and_validate_as_upstream() {
    let mut a = api_service();
    apply_defaults("apiregistration.k8s.io", "APIService", &mut a);
    assert_eq!(a["spec"]["service"]["port"], 443);
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        ("valid", api_service(), vec![]),
        (
            "local",
            json!({"metadata": {"name": "v1.apps"}, "spec": {"group": "apps", "version": "v1",
                "groupPriorityMinimum": 17800, "versionPriority": 15}}),
            vec![],
        ),
        (
            "core group",
            json!({"metadata": {"name": "v1."}, "spec": {"version": "v1",
                "groupPriorityMinimum": 18000, "versionPriority": 1}}),
            vec![],
        ),
        (
            "name must be version.group",
            api_service_with(|a| a["metadata"]["name"] = json!("metrics")),
            vec!["metadata.name: Invalid value: \"metrics\": must be `spec.version+\".\"+spec.group`: \"v1beta1.metrics.k8s.io\""],
        ),
        (
            "empty group only for v1",
            json!({"metadata": {"name": "v2."}, "spec": {"version": "v2",
                "groupPriorityMinimum": 1, "versionPriority": 1}}),
            vec!["spec.group: Required value: only v1 may have an empty group and it better be legacy kube"],
        ),
        (
            "priorities",
            api_service_with(|a| {
                a["spec"]["groupPriorityMinimum"] = json!(20001);
                a["spec"]["versionPriority"] = json!(0);
            }),
            vec![
                "spec.groupPriorityMinimum: Invalid value: 20001: must be positive and less than 20000",
                "spec.versionPriority: Invalid value: 0: must be positive and less than 1000",
            ],
        ),
        (
            "service needs namespace, name and a valid port",
            api_service_with(|a| a["spec"]["service"] = json!({"port": 70000})),
            vec![
                "spec.service.namespace: Required value",
                "spec.service.name: Required value",
                "spec.service.port: Invalid value: 70000: port is not valid: must be between 1 and 65535, inclusive",
            ],
        ),
        (
            "insecureSkipTLSVerify with caBundle",
            api_service_with(|a| {
                a["spec"]["insecureSkipTLSVerify"] = json!(true);
                a["spec"]["caBundle"] = json!("Zm9v");
            }),
            vec!["spec.insecureSkipTLSVerify: Invalid value: true: may not be true if caBundle is present"],
        ),
        (
            "local with caBundle and insecureSkipTLSVerify",
            json!({"metadata": {"name": "v1.apps"}, "spec": {"group": "apps", "version": "v1",
                "groupPriorityMinimum": 1, "versionPriority": 1,
                "caBundle": "Zm9v", "insecureSkipTLSVerify": true}}),
            vec![
                "spec.caBundle: Invalid value: \"3 bytes\": local APIServices may not have a caBundle",
                "spec.insecureSkipTLSVerify: Invalid value: true: local APIServices may not have insecureSkipTLSVerify",
            ],
        ),
    ];
    for (name, obj, want) in cases {
        assert_eq!(
            errors("apiregistration.k8s.io", "APIService", obj, None),
            want,
            "{name}"
        );
    }
}

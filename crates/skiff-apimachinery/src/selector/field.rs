//! Field selectors: the `--field-selector` grammar, per-resource allowed fields, and matching
//! against wire-form objects the way upstream's `ToSelectableFields` projections do.

use std::fmt;

use serde_json::Value;

use super::SelectorError;

/// A field selector operator (upstream accepts only equality for fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldOp {
    /// `field=value` or `field==value`
    Eq,
    /// `field!=value`
    NotEq,
}

/// One `field op value` term; the value is already unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    /// The field label, e.g. `metadata.name`, `spec.nodeName`, `involvedObject.uid`.
    pub field: String,
    /// Equality or inequality.
    pub op: FieldOp,
    /// The unescaped value to compare with.
    pub value: String,
}

/// A parsed field selector: the AND of its requirements (empty = everything).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// The selector that matches every object.
    pub fn everything() -> Self {
        FieldSelector::default()
    }

    /// Parses `a=b,c!=d,e==f` with upstream's backslash escaping of `\`, `,` and `=` in values.
    /// Terms are sorted as upstream does, so `Display` is canonical.
    pub fn parse(s: &str) -> Result<FieldSelector, SelectorError> {
        let mut terms = split_terms(s);
        terms.sort();
        let mut requirements = Vec::new();
        for term in terms.into_iter().filter(|t| !t.is_empty()) {
            let Some((lhs, op, rhs)) = split_term(term) else {
                return Err(SelectorError::FieldSyntax {
                    selector: s.to_string(),
                    term: term.to_string(),
                });
            };
            requirements.push(FieldRequirement {
                field: lhs.to_string(),
                op,
                value: unescape_value(rhs)?,
            });
        }
        Ok(FieldSelector { requirements })
    }

    /// The requirements, in canonical (sorted) order.
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// True when nothing is restricted.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The value `field` must equal, if a requirement pins it (upstream
    /// `RequiresExactMatch`), for fast paths such as `metadata.name=x` on watch.
    pub fn single_value(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.op == FieldOp::Eq)
            .map(|r| r.value.as_str())
    }

    /// Checks every field against what upstream allows for this resource and rewrites legacy
    /// or version-specific aliases (`spec.host`, events.k8s.io's `regarding.*`) to the
    /// canonical label. The error carries upstream's message for a 400.
    pub fn validate_for(
        &self,
        group: &str,
        resource: &str,
    ) -> Result<FieldSelector, SelectorError> {
        let requirements = self
            .requirements
            .iter()
            .map(|r| {
                Ok(FieldRequirement {
                    field: canonical_field(group, resource, &r.field)?.to_string(),
                    op: r.op,
                    value: r.value.clone(),
                })
            })
            .collect::<Result<_, SelectorError>>()?;
        Ok(FieldSelector { requirements })
    }

    /// Whether a wire-form object satisfies every requirement. The object's `apiVersion` and
    /// `kind` pick upstream's per-kind projection (e.g. core Event `source`, Job
    /// `status.successful`); other fields are read by dotted path, a missing one reading as
    /// the empty string.
    pub fn matches(&self, obj: &Value) -> bool {
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
        let api_version = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let group = api_version
            .rsplit_once('/')
            .map(|(g, _)| g)
            .unwrap_or_default();
        self.matches_kind(group, kind, obj)
    }

    /// Like [`FieldSelector::matches`], for objects that may lack `apiVersion`/`kind` (the
    /// caller knows the API group, `""` for core, and the kind).
    pub fn matches_kind(&self, group: &str, kind: &str, obj: &Value) -> bool {
        self.requirements.iter().all(|r| {
            let actual = field_value(group, kind, obj, &r.field);
            match r.op {
                FieldOp::Eq => actual == r.value,
                FieldOp::NotEq => actual != r.value,
            }
        })
    }
}

impl std::str::FromStr for FieldSelector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FieldSelector::parse(s)
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = match r.op {
                FieldOp::Eq => "=",
                FieldOp::NotEq => "!=",
            };
            write!(f, "{}{op}{}", r.field, escape_value(&r.value))?;
        }
        Ok(())
    }
}

/// Escapes `\`, `,` and `=` so a value survives `FieldSelector::parse` (upstream `EscapeValue`).
pub fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Splits on commas not preceded by an escaping backslash.
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// Finds the first operator, trying `!=`, `==`, `=` at each position as upstream does.
fn split_term(term: &str) -> Option<(&str, FieldOp, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (op, kind) in [
            ("!=", FieldOp::NotEq),
            ("==", FieldOp::Eq),
            ("=", FieldOp::Eq),
        ] {
            if let Some(value) = rest.strip_prefix(op) {
                return Some((&term[..i], kind, value));
            }
        }
    }
    None
}

fn unescape_value(s: &str) -> Result<String, SelectorError> {
    let mut out = String::with_capacity(s.len());
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            match c {
                '\\' | ',' | '=' => out.push(c),
                _ => return Err(SelectorError::InvalidEscape(format!("\\{c}"))),
            }
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            ',' | '=' => return Err(SelectorError::UnescapedCharacter(c)),
            _ => out.push(c),
        }
    }
    if escaped {
        return Err(SelectorError::InvalidEscape("\\".to_string()));
    }
    Ok(out)
}

// ---- per-resource tables -----------------------------------------------------------------

const META: &[&str] = &["metadata.name", "metadata.namespace"];
const PODS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.podIPs",
    "status.nominatedNodeName",
];
const NODES: &[&str] = &["metadata.name", "spec.unschedulable"];
const REPLICATION_CONTROLLERS: &[&str] =
    &["metadata.name", "metadata.namespace", "status.replicas"];
const CORE_EVENTS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
    "metadata.namespace",
    "metadata.name",
];
const EVENTS_K8S_IO: &[&str] = &[
    "reason",
    "regarding.kind",
    "regarding.namespace",
    "regarding.name",
    "regarding.uid",
    "regarding.apiVersion",
    "regarding.resourceVersion",
    "regarding.fieldPath",
    "reportingController",
    "type",
    "metadata.namespace",
    "metadata.name",
];
const NAMESPACES: &[&str] = &["metadata.name", "status.phase"];
const SECRETS: &[&str] = &["type", "metadata.namespace", "metadata.name"];
const SERVICES: &[&str] = &[
    "metadata.namespace",
    "metadata.name",
    "spec.clusterIP",
    "spec.type",
];
const JOBS: &[&str] = &["metadata.name", "metadata.namespace", "status.successful"];
const CSRS: &[&str] = &["metadata.name", "spec.signerName"];

/// The field labels upstream accepts in `fieldSelector` for a resource (from the field-label
/// conversion functions in `pkg/apis/<group>/<version>/conversion.go`). Resources without a
/// registered function, CRDs and the whole apps group included, accept only
/// `metadata.name` and `metadata.namespace`. Legacy aliases (pods' `spec.host`) are accepted
/// too but not listed.
pub fn supported_fields(group: &str, resource: &str) -> &'static [&'static str] {
    match (group, resource) {
        ("", "pods") => PODS,
        ("", "nodes") => NODES,
        ("", "replicationcontrollers") => REPLICATION_CONTROLLERS,
        ("", "events") => CORE_EVENTS,
        ("events.k8s.io", "events") => EVENTS_K8S_IO,
        ("", "namespaces") => NAMESPACES,
        ("", "secrets") => SECRETS,
        ("", "services") => SERVICES,
        ("batch", "jobs") => JOBS,
        ("certificates.k8s.io", "certificatesigningrequests") => CSRS,
        _ => META,
    }
}

/// Maps a requested field label to the canonical one upstream's conversion function returns,
/// or the error it returns (whose wording differs per kind).
fn canonical_field<'a>(
    group: &str,
    resource: &str,
    field: &'a str,
) -> Result<&'a str, SelectorError> {
    let allowed = supported_fields(group, resource);
    if std::ptr::eq(allowed, META) {
        return if allowed.contains(&field) {
            Ok(field)
        } else {
            Err(SelectorError::UnsupportedField(format!(
                "{field:?} is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
            )))
        };
    }
    if (group, resource, field) == ("", "pods", "spec.host") {
        return Ok("spec.nodeName");
    }
    if !allowed.contains(&field) {
        return Err(SelectorError::UnsupportedField(match (group, resource) {
            ("batch", "jobs") => format!("field label {field:?} not supported for batchv1.Job"),
            _ => format!("field label not supported: {field}"),
        }));
    }
    if (group, resource) == ("events.k8s.io", "events") {
        if let Some(rest) = field.strip_prefix("regarding.") {
            return Ok(match rest {
                "kind" => "involvedObject.kind",
                "namespace" => "involvedObject.namespace",
                "name" => "involvedObject.name",
                "uid" => "involvedObject.uid",
                "apiVersion" => "involvedObject.apiVersion",
                "resourceVersion" => "involvedObject.resourceVersion",
                _ => "involvedObject.fieldPath",
            });
        }
        if field == "reportingController" {
            return Ok("reportingComponent");
        }
    }
    Ok(field)
}

// ---- matching ----------------------------------------------------------------------------

/// Reads a dotted path from a wire-form object.
fn lookup<'v>(obj: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(obj, |v, seg| v.get(seg))
}

/// Renders a scalar as upstream's field sets do (`strconv.FormatBool`, `Itoa`).
fn scalar(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn path_string(obj: &Value, path: &str) -> String {
    scalar(lookup(obj, path)).unwrap_or_default()
}

/// The value upstream's `ToSelectableFields` would give `field` for this object. Fields the
/// projection always sets from a bool or int read `false`/`0` when absent; fields it never sets
/// (pods' `status.podIPs`) read empty, so `status.podIPs=x` matches nothing, as upstream.
fn field_value(group: &str, kind: &str, obj: &Value, field: &str) -> String {
    let or_default = |path: &str, default: &str| {
        scalar(lookup(obj, path)).unwrap_or_else(|| default.to_string())
    };
    match (group, kind, field) {
        ("", "Pod", "spec.hostNetwork") => or_default("spec.hostNetwork", "false"),
        ("", "Pod", "status.podIP") => obj
            .pointer("/status/podIPs/0/ip")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| path_string(obj, "status.podIP")),
        ("", "Pod", "status.podIPs") => String::new(),
        ("", "Node", "spec.unschedulable") => or_default("spec.unschedulable", "false"),
        ("", "ReplicationController", "status.replicas") => or_default("status.replicas", "0"),
        ("batch", "Job", "status.successful") => or_default("status.succeeded", "0"),
        ("", "Event", "source") => {
            let component = path_string(obj, "source.component");
            if component.is_empty() {
                path_string(obj, "reportingComponent")
            } else {
                component
            }
        }
        ("events.k8s.io", "Event", _) => {
            let path = match field {
                "reportingComponent" => "reportingController".to_string(),
                "source" => {
                    let component = path_string(obj, "deprecatedSource.component");
                    return if component.is_empty() {
                        path_string(obj, "reportingController")
                    } else {
                        component
                    };
                }
                f => match f.strip_prefix("involvedObject.") {
                    Some(rest) => format!("regarding.{rest}"),
                    None => f.to_string(),
                },
            };
            path_string(obj, &path)
        }
        _ => path_string(obj, field),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parse_handles_operators_escapes_and_canonical_order() {
        let cases = [
            ("", ""),
            ("metadata.name=web", "metadata.name=web"),
            ("metadata.name==web", "metadata.name=web"),
            ("status.phase!=Running", "status.phase!=Running"),
            (
                "spec.nodeName=n1,metadata.name=a",
                "metadata.name=a,spec.nodeName=n1",
            ),
            ("metadata.name=a\\,b", "metadata.name=a\\,b"),
            ("metadata.name=a\\=b\\\\", "metadata.name=a\\=b\\\\"),
            ("metadata.name=", "metadata.name="),
            (",metadata.name=x,", "metadata.name=x"),
        ];
        for (input, want) in cases {
            let sel = FieldSelector::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(sel.to_string(), want, "input {input:?}");
        }
        let sel = FieldSelector::parse("metadata.name=a\\,b").expect("valid");
        assert_eq!(sel.requirements()[0].value, "a,b");
        assert_eq!(sel.single_value("metadata.name"), Some("a,b"));
    }

    #[test]
    fn parse_rejects_terms_without_operator_and_bad_escapes() {
        let err = FieldSelector::parse("metadata.name").expect_err("no operator");
        assert_eq!(
            err.to_string(),
            "invalid selector: 'metadata.name'; can't understand 'metadata.name'"
        );
        let err = FieldSelector::parse("a=b\\c").expect_err("bad escape");
        assert_eq!(
            err.to_string(),
            "invalid field selector: invalid escape sequence: \\c"
        );
        let err = FieldSelector::parse("a=b=c").expect_err("unescaped =");
        assert_eq!(
            err.to_string(),
            "invalid field selector: unescaped character in value: ="
        );
        assert!(FieldSelector::parse("a=b\\").is_err());
    }

    #[test]
    fn single_value_ignores_inequalities() {
        let sel = FieldSelector::parse("metadata.name!=a,spec.nodeName=n").expect("valid");
        assert_eq!(sel.single_value("metadata.name"), None);
        assert_eq!(sel.single_value("spec.nodeName"), Some("n"));
    }

    #[test]
    fn matches_reads_dotted_paths_and_missing_fields_as_empty() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "default"},
            "spec": {"nodeName": "node-a", "schedulerName": "default-scheduler"},
            "status": {"phase": "Running", "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}]}
        });
        let cases = [
            ("metadata.name=web-1", true),
            ("metadata.name=web-2", false),
            ("metadata.namespace=default,spec.nodeName=node-a", true),
            ("spec.nodeName!=node-a", false),
            ("status.phase=Running", true),
            ("status.podIP=10.0.0.5", true),
            ("status.nominatedNodeName=", true),
            ("spec.hostNetwork=false", true),
            ("spec.serviceAccountName!=x", true),
            ("status.podIPs=10.0.0.5", false),
        ];
        for (sel, want) in cases {
            let s = FieldSelector::parse(sel).expect("valid");
            assert_eq!(s.matches(&pod), want, "selector {sel:?}");
        }
    }

    #[test]
    fn matches_uses_kind_specific_projections() {
        let event = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "e1", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "default", "uid": "u-1"},
            "reason": "Scheduled", "type": "Normal", "reportingComponent": "default-scheduler",
            "source": {}
        });
        let describe = "involvedObject.name=web-1,involvedObject.namespace=default,involvedObject.kind=Pod,involvedObject.uid=u-1";
        assert!(FieldSelector::parse(describe)
            .expect("valid")
            .matches(&event));
        assert!(FieldSelector::parse("source=default-scheduler")
            .expect("valid")
            .matches(&event));
        assert!(FieldSelector::parse("type=Normal")
            .expect("valid")
            .matches(&event));

        let new_event = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e1", "namespace": "default"},
            "regarding": {"kind": "Pod", "name": "web-1"},
            "reportingController": "kubelet"
        });
        let sel = FieldSelector::parse("regarding.name=web-1,reportingController=kubelet")
            .and_then(|s| s.validate_for("events.k8s.io", "events"))
            .expect("valid");
        assert_eq!(
            sel.to_string(),
            "involvedObject.name=web-1,reportingComponent=kubelet"
        );
        assert!(sel.matches(&new_event));

        let job = json!({"apiVersion": "batch/v1", "kind": "Job", "status": {"succeeded": 1}});
        assert!(FieldSelector::parse("status.successful=1")
            .expect("valid")
            .matches(&job));
        let fresh_job = json!({"apiVersion": "batch/v1", "kind": "Job", "status": {}});
        assert!(FieldSelector::parse("status.successful=0")
            .expect("valid")
            .matches(&fresh_job));

        let node = json!({"apiVersion": "v1", "kind": "Node", "spec": {}});
        assert!(FieldSelector::parse("spec.unschedulable=false")
            .expect("valid")
            .matches(&node));
        let cordoned = json!({"apiVersion": "v1", "kind": "Node", "spec": {"unschedulable": true}});
        assert!(FieldSelector::parse("spec.unschedulable=true")
            .expect("valid")
            .matches(&cordoned));

        let bare_job = json!({"status": {"succeeded": 2}});
        let sel = FieldSelector::parse("status.successful=2").expect("valid");
        assert!(sel.matches_kind("batch", "Job", &bare_job));
        assert!(
            !sel.matches(&bare_job),
            "without kind the field is read by path"
        );

        let secret = json!({"apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1"});
        assert!(FieldSelector::parse("type=helm.sh/release.v1")
            .expect("valid")
            .matches(&secret));
    }

    #[test]
    fn validate_for_rejects_unsupported_fields_with_upstream_messages() {
        let cases = [
            ("", "pods", "spec.nodeName=x", Ok("spec.nodeName=x")),
            ("", "pods", "spec.host=x", Ok("spec.nodeName=x")),
            ("", "pods", "spec.containers=x", Err("field label not supported: spec.containers")),
            ("", "nodes", "metadata.namespace=x", Err("field label not supported: metadata.namespace")),
            ("", "nodes", "spec.unschedulable=false", Ok("spec.unschedulable=false")),
            ("", "secrets", "type=Opaque", Ok("type=Opaque")),
            ("", "events", "involvedObject.uid=u", Ok("involvedObject.uid=u")),
            ("", "namespaces", "status.phase=Active", Ok("status.phase=Active")),
            ("batch", "jobs", "status.successful=1", Ok("status.successful=1")),
            ("batch", "jobs", "spec.x=1", Err("field label \"spec.x\" not supported for batchv1.Job")),
            (
                "apps",
                "replicasets",
                "status.replicas=1",
                Err("\"status.replicas\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""),
            ),
            ("apps", "deployments", "metadata.name=web", Ok("metadata.name=web")),
            ("example.com", "widgets", "metadata.namespace=d", Ok("metadata.namespace=d")),
        ];
        for (group, resource, sel, want) in cases {
            let got = FieldSelector::parse(sel)
                .and_then(|s| s.validate_for(group, resource))
                .map(|s| s.to_string())
                .map_err(|e| e.to_string());
            assert_eq!(
                got,
                want.map(str::to_string).map_err(str::to_string),
                "{group}/{resource} {sel}"
            );
        }
    }

    #[test]
    fn supported_fields_lists_upstream_tables() {
        assert!(supported_fields("", "pods").contains(&"status.podIP"));
        assert!(supported_fields("", "events").contains(&"involvedObject.uid"));
        assert_eq!(supported_fields("apps", "deployments"), META);
        assert_eq!(supported_fields("", "nodes"), NODES);
    }
}

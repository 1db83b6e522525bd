//! Hand-encoded bodies for what kubectl's captured commands do not reach: custom JSON types,
//! inlined structs, pointer zeros, nested objects and malformed input.

use serde_json::{json, Value};
use skiff_protobuf::{decode, Error};

/// A protobuf message under construction, written field by field as the Go encoder would.
#[derive(Default, Clone)]
struct Msg(Vec<u8>);

impl Msg {
    fn new() -> Self {
        Self::default()
    }

    fn varint(mut self, number: u32, value: u64) -> Self {
        put_varint(&mut self.0, u64::from(number) << 3);
        put_varint(&mut self.0, value);
        self
    }

    fn bytes(mut self, number: u32, bytes: &[u8]) -> Self {
        put_varint(&mut self.0, u64::from(number) << 3 | 2);
        put_varint(&mut self.0, bytes.len() as u64);
        self.0.extend_from_slice(bytes);
        self
    }

    fn fixed64(mut self, number: u32, value: u64) -> Self {
        put_varint(&mut self.0, u64::from(number) << 3 | 1);
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }

    fn str(self, number: u32, text: &str) -> Self {
        self.bytes(number, text.as_bytes())
    }

    fn msg(self, number: u32, message: Msg) -> Self {
        self.bytes(number, &message.0)
    }

    /// A `map<string, V>` entry whose value is a message.
    fn entry(self, number: u32, key: &str, value: Msg) -> Self {
        self.msg(number, Msg::new().str(1, key).msg(2, value))
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// `k8s\0` + runtime.Unknown{typeMeta, raw}.
fn object(api_version: &str, kind: &str, body: Msg) -> Vec<u8> {
    let envelope = Msg::new()
        .msg(1, Msg::new().str(1, api_version).str(2, kind))
        .msg(2, body);
    [b"k8s\0".as_slice(), &envelope.0].concat()
}

fn quantity(text: &str) -> Msg {
    Msg::new().str(1, text)
}

fn decoded(api_version: &str, kind: &str, body: Msg) -> Value {
    decode(&object(api_version, kind, body)).expect("decode")
}

#[test]
fn delete_options_keep_a_zero_grace_period() {
    let body = Msg::new().varint(1, 0).str(4, "Background").str(5, "All");
    let want = |api_version: &str| {
        json!({
            "apiVersion": api_version, "kind": "DeleteOptions",
            "gracePeriodSeconds": 0, "propagationPolicy": "Background", "dryRun": ["All"]
        })
    };
    for api_version in ["v1", "meta.k8s.io/v1", "apps/v1"] {
        assert_eq!(
            decoded(api_version, "DeleteOptions", body.clone()),
            want(api_version)
        );
    }
}

#[test]
fn times_render_as_rfc3339_and_zero_times_as_null() {
    let event = Msg::new()
        .msg(1, Msg::new().str(1, "e").msg(8, Msg::new()))
        .msg(
            2,
            Msg::new().varint(1, 1_700_000_000).varint(2, 123_456_789),
        )
        .str(7, "Started")
        .msg(
            13,
            Msg::new().varint(1, 1_700_000_000).varint(2, 999_000_000),
        )
        .varint(15, 0);
    let want = json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "e", "creationTimestamp": null},
        "eventTime": "2023-11-14T22:13:20.123456Z",
        "reason": "Started",
        "deprecatedFirstTimestamp": "2023-11-14T22:13:20Z"
    });
    assert_eq!(decoded("events.k8s.io/v1", "Event", event), want);
}

#[test]
fn lease_keeps_pointer_zero_and_micro_time() {
    let lease = Msg::new().msg(1, Msg::new().str(1, "l")).msg(
        2,
        Msg::new()
            .str(1, "me")
            .varint(2, 0)
            .msg(4, Msg::new().varint(1, 0).varint(2, 0)),
    );
    let want = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "l"},
        "spec": {"holderIdentity": "me", "leaseDurationSeconds": 0, "renewTime": "1970-01-01T00:00:00.000000Z"}
    });
    assert_eq!(decoded("coordination.k8s.io/v1", "Lease", lease), want);
}

#[test]
fn pod_inlines_volume_source_and_probe_handler() {
    let container = Msg::new()
        .str(1, "c")
        .str(2, "nginx")
        .msg(
            8,
            Msg::new()
                .entry(1, "cpu", quantity("500m"))
                .entry(2, "memory", quantity("64Mi")),
        )
        .msg(
            10,
            Msg::new()
                .msg(
                    1,
                    Msg::new().msg(
                        2,
                        Msg::new()
                            .str(1, "/healthz")
                            .msg(2, Msg::new().varint(1, 1).str(3, "http")),
                    ),
                )
                .varint(2, 0),
        )
        .msg(15, Msg::new().varint(2, 0).varint(4, 0))
        .varint(16, 0);
    let spec = Msg::new()
        .msg(
            1,
            Msg::new().str(1, "scratch").msg(
                2,
                Msg::new().msg(2, Msg::new().str(1, "").msg(2, quantity("1Gi"))),
            ),
        )
        .msg(2, container)
        .varint(4, 0)
        .str(6, "")
        .msg(14, Msg::new().varint(4, 1).varint(4, 2).bytes(4, &[3, 4]));
    let pod = Msg::new()
        .msg(1, Msg::new().str(1, "p").str(3, ""))
        .msg(2, spec)
        .msg(3, Msg::new());
    let want = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {
            "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}}],
            "containers": [{
                "name": "c", "image": "nginx",
                "resources": {"limits": {"cpu": "500m"}, "requests": {"memory": "64Mi"}},
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
                "securityContext": {"privileged": false, "runAsUser": 0}
            }],
            "terminationGracePeriodSeconds": 0,
            "securityContext": {"supplementalGroups": [1, 2, 3, 4]}
        },
        "status": {}
    });
    assert_eq!(decoded("v1", "Pod", pod), want);
}

#[test]
fn crd_schema_uses_json_schema_names_and_raw_json() {
    let string_schema = Msg::new()
        .str(5, "string")
        .msg(8, Msg::new().bytes(1, br#""x""#));
    let schema = Msg::new()
        .str(3, "#/definitions/a")
        .str(5, "object")
        .fixed64(9, 10.5f64.to_bits())
        .varint(13, 0)
        .msg(20, Msg::new().bytes(1, b"1"))
        .msg(20, Msg::new().bytes(1, br#"{"a":[true]}"#))
        .msg(24, Msg::new().msg(1, Msg::new().str(5, "integer")))
        .entry(29, "name", string_schema)
        .msg(30, Msg::new().varint(1, 0))
        .varint(37, 0)
        .varint(38, 1)
        .varint(40, 1);
    let version = Msg::new()
        .str(1, "v1")
        .varint(2, 1)
        .varint(3, 1)
        .msg(4, Msg::new().msg(1, schema));
    let spec = Msg::new()
        .str(1, "example.com")
        .str(4, "Namespaced")
        .msg(7, version);
    let crd = Msg::new()
        .msg(1, Msg::new().str(1, "things.example.com"))
        .msg(2, spec);
    let want = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "things.example.com"},
        "spec": {
            "group": "example.com", "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {
                    "$ref": "#/definitions/a",
                    "type": "object",
                    "maximum": 10.5,
                    "maxLength": 0,
                    "enum": [1, {"a": [true]}],
                    "items": {"type": "integer"},
                    "properties": {"name": {"type": "string", "default": "x"}},
                    "additionalProperties": false,
                    "x-kubernetes-preserve-unknown-fields": true,
                    "x-kubernetes-int-or-string": true
                }}
            }]
        }
    });
    assert_eq!(
        decoded("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd),
        want
    );
}

#[test]
fn controller_revision_data_inlines_raw_json_and_nested_protobuf() {
    let raw = Msg::new()
        .msg(1, Msg::new().str(1, "r"))
        .msg(2, Msg::new().bytes(1, br#"{"spec":{"x":1}}"#))
        .varint(3, 2);
    assert_eq!(
        decoded("apps/v1", "ControllerRevision", raw),
        json!({"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": {"name": "r"}, "data": {"spec": {"x": 1}}, "revision": 2})
    );
    let nested = object("v1", "Namespace", Msg::new().msg(1, Msg::new().str(1, "n")));
    let revision = Msg::new().msg(2, Msg::new().bytes(1, &nested));
    assert_eq!(
        decoded("apps/v1", "ControllerRevision", revision)["data"],
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}})
    );
}

#[test]
fn named_slices_render_as_arrays() {
    let spec = Msg::new().str(3, "alice").msg(
        5,
        Msg::new()
            .str(1, "scopes")
            .msg(2, Msg::new().str(1, "a").str(1, "b")),
    );
    let review = Msg::new().msg(2, spec);
    assert_eq!(
        decoded("authorization.k8s.io/v1", "SubjectAccessReview", review)["spec"],
        json!({"user": "alice", "extra": {"scopes": ["a", "b"]}})
    );
}

#[test]
fn scale_drops_plain_zero_replicas_like_omitempty() {
    let scale = Msg::new()
        .msg(1, Msg::new().str(1, "d"))
        .msg(2, Msg::new().varint(1, 0))
        .msg(3, Msg::new().varint(1, 0));
    assert_eq!(
        decoded("autoscaling/v1", "Scale", scale),
        json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "d"}, "spec": {}, "status": {"replicas": 0}})
    );
}

#[test]
fn unknown_fields_are_skipped() {
    let namespace = Msg::new()
        .msg(1, Msg::new().str(1, "n").varint(999, 7))
        .fixed64(77, 1)
        .str(78, "future");
    assert_eq!(
        decoded("v1", "Namespace", namespace),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}})
    );
}

#[test]
fn json_body_is_refused_for_missing_magic() {
    assert!(matches!(
        decode(br#"{"kind":"Pod"}"#),
        Err(Error::MissingMagic)
    ));
}

#[test]
fn truncated_body_is_malformed() {
    let raw = Msg::new().msg(1, Msg::new().str(1, "n"));
    let body = object("v1", "Namespace", raw.clone());
    // From the raw field's length byte on, every cut leaves a length that overruns the body.
    for len in body.len() - raw.0.len() - 1..body.len() {
        assert!(
            decode(&body[..len]).is_err(),
            "prefix of {len} bytes decoded"
        );
    }
}

#[test]
fn custom_resource_groups_have_no_schema() {
    let body = object("apps.example.com/v1", "Deployment", Msg::new());
    assert!(matches!(decode(&body), Err(Error::UnknownKind { .. })));
}

#[test]
fn mismatched_wire_type_is_reported() {
    let body = object("v1", "Namespace", Msg::new().varint(1, 5));
    assert!(matches!(
        decode(&body),
        Err(Error::WireType { field: 1, .. })
    ));
}

#[test]
fn deep_nesting_is_refused() {
    let mut schema = Msg::new().str(5, "string");
    for _ in 0..200 {
        schema = Msg::new().msg(24, Msg::new().msg(1, schema));
    }
    let version = Msg::new().msg(4, Msg::new().msg(1, schema));
    let crd = Msg::new().msg(2, Msg::new().msg(7, version));
    let body = object("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd);
    assert!(matches!(decode(&body), Err(Error::TooDeep)));
}

#[test]
fn proto_names_that_differ_from_json_are_renamed() {
    let class = Msg::new().msg(
        2,
        Msg::new()
            .str(1, "c")
            .msg(2, Msg::new().str(1, "example.com").str(2, "P").str(3, "p")),
    );
    assert_eq!(
        decoded("networking.k8s.io/v1", "IngressClass", class)["spec"],
        // scope is a pointer without omitempty, so Go's JSON has null for it.
        json!({"controller": "c", "parameters": {"apiGroup": "example.com", "kind": "P", "name": "p", "scope": null}})
    );
    let hooks = Msg::new().msg(2, Msg::new().str(1, "w.example.com"));
    assert_eq!(
        decoded(
            "admissionregistration.k8s.io/v1",
            "ValidatingWebhookConfiguration",
            hooks
        ),
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "webhooks": [{"name": "w.example.com", "sideEffects": null, "admissionReviewVersions": null}]
        })
    );
}

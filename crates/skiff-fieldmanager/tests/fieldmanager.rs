//! The field manager's behaviour per verb, ported from upstream's merge/*_test.go and
//! kube-apiserver's fieldmanager_test.go cases.

use serde_json::{json, Value};
use skiff_fieldmanager::{Error, FieldManager, Request, Schema, Tracked};

const T0: &str = "2024-05-01T10:00:00Z";
const T1: &str = "2024-05-01T10:01:00Z";

fn req<'a>(manager: &'a str, av: &'a str, now: &'a str) -> Request<'a> {
    Request {
        manager,
        api_version: av,
        subresource: "",
        now,
    }
}

fn fm(av: &str, kind: &str) -> FieldManager {
    FieldManager::new(Schema::builtin(av, kind).unwrap(), Tracked::All)
}

fn managers(obj: &Value) -> Vec<(String, String, Value)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    (
                        e["manager"].as_str().unwrap_or("").to_owned(),
                        e["operation"].as_str().unwrap_or("").to_owned(),
                        e["fieldsV1"].clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn deployment(replicas: i64) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1",
                    "ports": [{"containerPort": 80}]}]}}}})
}

#[test]
fn create_gives_the_whole_object_to_the_writer_with_upstreams_fields_v1() {
    // Known difference: upstream's typed zero PodSpec has `containers: null`, so its set has
    // no "." under f:containers; we cannot tell non-omitempty lists from the schema.
    let out = fm("apps/v1", "Deployment")
        .update(None, deployment(1), &req("kubectl-create", "apps/v1", T0))
        .unwrap();
    let m = managers(&out);
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].0, "kubectl-create");
    assert_eq!(m[0].1, "Update");
    assert_eq!(
        m[0].2.to_string(),
        r#"{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:replicas":{},"f:selector":{},"f:template":{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:containers":{".":{},"k:{\"name\":\"nginx\"}":{".":{},"f:image":{},"f:name":{},"f:ports":{".":{},"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{}}}}}}}}}"#
    );
    let e = &out["metadata"]["managedFields"][0];
    assert_eq!(e["apiVersion"], "apps/v1");
    assert_eq!(e["time"], T0);
    assert_eq!(e["fieldsType"], "FieldsV1");
}

#[test]
fn update_moves_changed_fields_to_the_writer_and_drops_empty_managers() {
    let f = fm("apps/v1", "Deployment");
    let created = f
        .update(None, deployment(1), &req("creator", "apps/v1", T0))
        .unwrap();
    let scaled = f
        .update(
            Some(&created),
            {
                let mut d = created.clone();
                d["spec"]["replicas"] = json!(3);
                d
            },
            &req("scaler", "apps/v1", T1),
        )
        .unwrap();
    let m = managers(&scaled);
    assert_eq!(m.len(), 2);
    let scaler = m.iter().find(|e| e.0 == "scaler").unwrap();
    assert_eq!(scaler.2, json!({"f:spec": {"f:replicas": {}}}));
    let creator = m.iter().find(|e| e.0 == "creator").unwrap();
    assert!(creator.2["f:spec"].get("f:replicas").is_none());
    // A manager whose every field is taken disappears.
    let mut d = scaled.clone();
    d["spec"]["replicas"] = json!(5);
    let again = f
        .update(Some(&scaled), d, &req("scaler2", "apps/v1", T1))
        .unwrap();
    assert!(managers(&again).iter().all(|e| e.0 != "scaler"));
}

#[test]
fn update_that_omits_managed_fields_keeps_the_live_ones_and_reset_clears_them() {
    let f = fm("v1", "ConfigMap");
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
    let created = f.update(None, cm.clone(), &req("a", "v1", T0)).unwrap();
    let same = f
        .update(Some(&created), cm.clone(), &req("b", "v1", T1))
        .unwrap();
    assert_eq!(managers(&same).len(), 1, "no change: no entry for b");
    let mut reset = cm.clone();
    reset["metadata"]["managedFields"] = json!([{}]);
    let cleared = f
        .update(Some(&created), reset, &req("b", "v1", T1))
        .unwrap();
    assert!(cleared["metadata"].get("managedFields").is_none());
}

#[test]
fn apply_conflicts_with_an_updater_and_prints_upstreams_409() {
    let f = fm("apps/v1", "Deployment");
    let created = f
        .update(
            None,
            deployment(1),
            &req("kubectl-client-side-apply", "apps/v1", T0),
        )
        .unwrap();
    let applied = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"}, "spec": {"replicas": 2}});
    let err = f
        .apply(Some(&created), &applied, &req("helm", "apps/v1", T1), false)
        .unwrap_err();
    let Error::Conflict(c) = err else {
        panic!("{err}")
    };
    assert_eq!(
        c.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"
    );
    let cause = &c.causes()[0];
    assert_eq!(cause.reason, "FieldManagerConflict");
    assert_eq!(
        cause.message,
        "conflict with \"kubectl-client-side-apply\" using apps/v1"
    );
    assert_eq!(cause.field, ".spec.replicas");
    // Forced, the field changes hands.
    let out = f
        .apply(Some(&created), &applied, &req("helm", "apps/v1", T1), true)
        .unwrap();
    assert_eq!(out["spec"]["replicas"], 2);
    let helm = managers(&out).into_iter().find(|e| e.0 == "helm").unwrap();
    assert_eq!(helm.1, "Apply");
    assert_eq!(helm.2, json!({"f:spec": {"f:replicas": {}}}));
}

#[test]
fn conflicts_with_several_managers_list_each_path() {
    let f = fm("v1", "ConfigMap");
    let live = f
        .apply(
            None,
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
        "data": {"a": "1", "b": "1"}}),
            &req("one", "v1", T0),
            false,
        )
        .unwrap();
    let err = f
        .apply(
            Some(&live),
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
        "data": {"a": "2", "b": "2"}}),
            &req("two", "v1", T1),
            false,
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 2 conflicts: conflicts with \"one\":\n- .data.a\n- .data.b"
    );
}

#[test]
fn applying_the_same_value_shares_ownership_without_conflict() {
    let f = fm("v1", "ConfigMap");
    let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
    let live = f.apply(None, &cfg, &req("one", "v1", T0), false).unwrap();
    let out = f
        .apply(Some(&live), &cfg, &req("two", "v1", T1), false)
        .unwrap();
    let m = managers(&out);
    assert_eq!(m.len(), 2);
    assert!(
        m.iter().all(|e| e.2 == json!({"f:data": {"f:a": {}}})),
        "{m:?}"
    );
}

#[test]
fn a_key_dropped_from_the_applied_config_is_removed_unless_someone_else_owns_it() {
    let f = fm("v1", "ConfigMap");
    let v1 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}});
    let live = f.apply(None, &v1, &req("helm", "v1", T0), false).unwrap();
    let v2 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
    let out = f
        .apply(Some(&live), &v2, &req("helm", "v1", T1), false)
        .unwrap();
    assert_eq!(out["data"], json!({"a": "1"}));
    // Shared with another applier: it stays.
    let shared = f
        .apply(
            Some(&live),
            &json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c"}, "data": {"b": "2"}}),
            &req("other", "v1", T0),
            false,
        )
        .unwrap();
    let out = f
        .apply(Some(&shared), &v2, &req("helm", "v1", T1), false)
        .unwrap();
    assert_eq!(out["data"], json!({"a": "1", "b": "2"}));
}

#[test]
fn associative_list_items_merge_by_key_and_go_with_their_last_applier() {
    let f = fm("v1", "Pod");
    let pod = |containers: Value| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": containers}})
    };
    let live = f
        .apply(
            None,
            &pod(json!([{"name": "a", "image": "a:1"}])),
            &req("one", "v1", T0),
            false,
        )
        .unwrap();
    let live = f
        .apply(
            Some(&live),
            &pod(json!([{"name": "b", "image": "b:1"}])),
            &req("two", "v1", T0),
            false,
        )
        .unwrap();
    assert_eq!(
        live["spec"]["containers"],
        json!([{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}])
    );
    let out = f
        .apply(Some(&live), &pod(json!([])), &req("one", "v1", T1), false)
        .unwrap();
    assert_eq!(
        out["spec"]["containers"],
        json!([{"name": "b", "image": "b:1"}])
    );
}

#[test]
fn atomic_lists_are_replaced_and_conflict_as_a_whole() {
    let f = fm("v1", "Pod");
    let pod = |tol: Value| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"tolerations": tol}})
    };
    let live = f
        .apply(
            None,
            &pod(json!([{"key": "a"}])),
            &req("one", "v1", T0),
            false,
        )
        .unwrap();
    let err = f
        .apply(
            Some(&live),
            &pod(json!([{"key": "b"}])),
            &req("two", "v1", T1),
            false,
        )
        .unwrap_err();
    assert!(err.to_string().ends_with(": .spec.tolerations"), "{err}");
    let out = f
        .apply(
            Some(&live),
            &pod(json!([{"key": "b"}])),
            &req("two", "v1", T1),
            true,
        )
        .unwrap();
    assert_eq!(out["spec"]["tolerations"], json!([{"key": "b"}]));
}

#[test]
fn first_apply_over_an_unmanaged_object_credits_before_first_apply() {
    let f = fm("v1", "ConfigMap");
    let live = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"x": "1"}});
    let out = f
        .apply(
            Some(&live),
            &json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c"}, "data": {"y": "2"}}),
            &req("me", "v1", T0),
            false,
        )
        .unwrap();
    let m = managers(&out);
    assert!(
        m.iter().any(|e| e.0 == "before-first-apply"
            && e.1 == "Update"
            && e.2 == json!({"f:data": {".": {}, "f:x": {}}})),
        "{m:?}"
    );
}

#[test]
fn kubectl_server_side_apply_takes_over_client_side_apply_fields_without_conflict() {
    let f = fm("v1", "ConfigMap");
    let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
    let mut created = cfg.clone();
    created["metadata"]["annotations"] = json!({
        "kubectl.kubernetes.io/last-applied-configuration": serde_json::to_string(&cfg).unwrap() + "\n"});
    let live = f
        .update(None, created, &req("kubectl-client-side-apply", "v1", T0))
        .unwrap();
    let applied = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "2"}});
    assert!(matches!(
        f.apply(Some(&live), &applied, &req("other", "v1", T1), false),
        Err(Error::Conflict(_))
    ));
    let out = f
        .apply(Some(&live), &applied, &req("kubectl", "v1", T1), false)
        .unwrap();
    assert_eq!(out["data"]["a"], "2");
    assert_eq!(
        out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
        "{\"apiVersion\":\"v1\",\"data\":{\"a\":\"2\"},\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c\"}}\n"
    );
}

#[test]
fn update_managers_beyond_ten_merge_into_ancient_changes() {
    let f = fm("v1", "ConfigMap");
    let mut live = f
        .update(
            None,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
            &req("creator", "v1", T0),
        )
        .unwrap();
    for i in 0..12 {
        let mut next = live.clone();
        next["data"] = json!({});
        next["data"][format!("k{i}")] = json!("v");
        for j in 0..i {
            next["data"][format!("k{j}")] = live["data"][format!("k{j}")].clone();
        }
        let now = format!("2024-05-01T11:{i:02}:00Z");
        live = f
            .update(Some(&live), next, &req(&format!("m{i}"), "v1", &now))
            .unwrap();
    }
    let m = managers(&live);
    assert_eq!(m.len(), 10, "{m:?}");
    assert!(m.iter().any(|e| e.0 == "ancient-changes"));
}

#[test]
fn status_subresource_tracks_only_status_and_main_resource_ignores_it() {
    let schema = Schema::builtin("apps/v1", "Deployment").unwrap();
    let main = FieldManager::new(schema.clone(), Tracked::main_resource_with_status());
    let status = FieldManager::new(schema, Tracked::status_subresource());
    let mut d = deployment(1);
    d["status"] = json!({"replicas": 1});
    let created = main.update(None, d, &req("c", "apps/v1", T0)).unwrap();
    assert!(managers(&created)[0].2.get("f:status").is_none());
    let mut s = created.clone();
    s["status"]["replicas"] = json!(2);
    s["spec"]["replicas"] = json!(9);
    let r = Request {
        subresource: "status",
        ..req("ctrl", "apps/v1", T1)
    };
    let out = status.update(Some(&created), s, &r).unwrap();
    let ctrl = out["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "ctrl")
        .unwrap()
        .clone();
    assert_eq!(ctrl["fieldsV1"], json!({"f:status": {"f:replicas": {}}}));
    assert_eq!(ctrl["subresource"], "status");
}

#[test]
fn apply_of_another_api_version_or_with_managed_fields_is_refused() {
    let f = fm("v1", "ConfigMap");
    let bad = json!({"apiVersion": "v2", "kind": "ConfigMap", "metadata": {"name": "c"}});
    assert!(matches!(
        f.apply(None, &bad, &req("m", "v1", T0), false),
        Err(Error::InvalidApply(_))
    ));
    let bad = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "managedFields": []}});
    assert!(matches!(
        f.apply(None, &bad, &req("m", "v1", T0), false),
        Err(Error::InvalidApply(_))
    ));
}

#[test]
fn a_pod_with_ten_thousand_containers_is_handled_linearly() {
    let f = fm("v1", "Pod");
    let containers: Vec<Value> = (0..10_000)
        .map(|i| json!({"name": format!("c{i}"), "image": "x"}))
        .collect();
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": containers}});
    let live = f.apply(None, &pod, &req("m", "v1", T0), false).unwrap();
    let fields = &live["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["f:containers"];
    assert_eq!(fields.as_object().unwrap().len(), 10_000);
    assert!(fields.get("k:{\"name\":\"c9999\"}").is_some());
    let mut changed = pod.clone();
    changed["spec"]["containers"][5000]["image"] = json!("y");
    let out = f
        .apply(Some(&live), &changed, &req("m", "v1", T1), false)
        .unwrap();
    assert_eq!(out["spec"]["containers"][5000]["image"], "y");
}

#[test]
fn custom_resources_without_schema_are_deduced() {
    let f = FieldManager::new(Schema::deduced(), Tracked::All);
    let cr = json!({"apiVersion": "example.com/v1", "kind": "Foo", "metadata": {"name": "f"},
        "spec": {"list": [1, 2], "m": {"a": 1}}});
    let out = f.update(None, cr, &req("m", "example.com/v1", T0)).unwrap();
    assert_eq!(
        managers(&out)[0].2,
        json!({"f:spec": {".": {}, "f:list": {}, "f:m": {".": {}, "f:a": {}}}})
    );
}

//! CustomResourceDefinitions: `custom_resource_definition.go` (Simple CustomResourceDefinition,
//! defaulting) and `crd_watch.go`, re-created against CRDs served as APIs.

use super::*;

use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::core::WatchEvent as Ev;

/// custom_resource_definition.go "Simple CustomResourceDefinition creating/deleting custom
/// resource definition objects works" (Conformance): a random cluster-scoped CRD is created,
/// appears in discovery, and is deleted until it leaves discovery.
#[test]
fn crd_simple_creating_deleting_custom_resource_definition_objects_works() {
    run(|c| async move {
        let crd = new_random_name_crd("Cluster");
        create_crd(&c, &crd).await;
        delete_crd(&c, &crd).await;
    });
}

/// custom_resource_definition.go "Simple CustomResourceDefinition listing custom resource
/// definition objects works" (Conformance): ten labelled CRDs and one unlabelled; a label
/// selector lists exactly the ten with the specs they were created with, and a delete
/// collection by the same selector deletes only them.
#[test]
fn crd_simple_listing_custom_resource_definition_objects_works() {
    run(|c| async move {
        let test_uuid = generate_name("uuid-");
        let mut crds = Vec::new();
        for _ in 0..10 {
            let mut crd = new_random_name_crd("Cluster");
            crd["metadata"]["labels"] = json!({"e2e-list-test-uuid": test_uuid});
            crds.push(create_crd(&c, &crd).await);
        }
        let unlabelled = new_random_name_crd("Cluster");
        create_crd(&c, &unlabelled).await;

        let selector = format!("e2e-list-test-uuid%3D{test_uuid}");
        let base = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
        let list = ok(
            &get(&c, &format!("{base}?labelSelector={selector}")).await,
            "listing CustomResourceDefinitions",
        );
        let items = list["items"].as_array().cloned().unwrap_or_default();
        assert_eq!(items.len(), 10, "{list}");
        for actual in &items {
            let expected = crds
                .iter()
                .find(|e| e["metadata"]["name"] == actual["metadata"]["name"])
                .unwrap_or_else(|| panic!("unexpected CRD in list: {}", actual["metadata"]));
            assert_eq!(
                actual["spec"], expected["spec"],
                "Expected CustomResourceDefinition in list with name {} to match crd created with same name",
                actual["metadata"]["name"]
            );
        }

        let r = raw(
            &c,
            Method::DELETE,
            &format!("{base}?labelSelector={selector}"),
            &[],
            "",
        )
        .await;
        ok(&r, "deleting CustomResourceDefinitions");
        for crd in &crds {
            let version = crd["spec"]["versions"][0]["name"].as_str().unwrap();
            eventually(30, "a deleted CRD gone from discovery", || async {
                (!crd_in_discovery(&c, crd, version).await).then_some(())
            })
            .await;
        }
        let name = unlabelled["metadata"]["name"].as_str().unwrap();
        ok(
            &get(&c, &format!("{base}/{name}")).await,
            "getting remaining CustomResourceDefinition",
        );
        delete_crd(&c, &unlabelled).await;
    });
}

/// Whether `conditions` holds one equal to `expected` (Go's semantic equality: a condition
/// made of only a message has every other field empty).
fn has_condition(conditions: &Value, expected: &Value) -> bool {
    conditions.as_array().is_some_and(|cs| {
        cs.iter().any(|c| {
            let non_empty: serde_json::Map<String, Value> = c
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(_, v)| !(v.is_null() || *v == "" || **v == json!({})))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            Value::Object(non_empty) == *expected
        })
    })
}

/// custom_resource_definition.go "Simple CustomResourceDefinition getting/updating/patching
/// custom resource definition status sub-resource works" (Conformance): GET `/status` carries
/// the spec as created; an update of the status (retried on conflict) appends a condition, a
/// JSON patch of `/status` sets another, and each answer shows its change.
#[test]
fn crd_simple_getting_updating_patching_custom_resource_definition_status_sub_resource_works() {
    run(|c| async move {
        let crd = create_crd(&c, &new_random_name_crd("Cluster")).await;
        let name = crd["metadata"]["name"].as_str().unwrap().to_owned();
        let status_uri =
            format!("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}/status");
        let update_condition = json!({"message": "updated"});
        let mut updated = None;
        for _ in 0..5 {
            let mut status = ok(
                &get(&c, &status_uri).await,
                "getting CustomResourceDefinition status",
            );
            assert_eq!(
                status["spec"], crd["spec"],
                "Expected CustomResourceDefinition Spec to match status sub-resource Spec"
            );
            if !status["status"]["conditions"].is_array() {
                status["status"]["conditions"] = json!([]);
            }
            status["status"]["conditions"]
                .as_array_mut()
                .unwrap()
                .push(update_condition.clone());
            let r = raw(
                &c,
                Method::PUT,
                &status_uri,
                &[("content-type", "application/json")],
                &status.to_string(),
            )
            .await;
            if r.status == StatusCode::CONFLICT {
                continue;
            }
            updated = Some(ok(&r, "updating CustomResourceDefinition status"));
            break;
        }
        let updated = updated.expect("updating CustomResourceDefinition status: conflicts");
        assert!(
            has_condition(&updated["status"]["conditions"], &update_condition),
            "Condition {update_condition} not found in conditions {}",
            updated["status"]["conditions"]
        );

        let patch_condition = json!({"message": "patched"});
        let r = raw(
            &c,
            Method::PATCH,
            &status_uri,
            &[("content-type", "application/json-patch+json")],
            r#"[{"op": "add", "path": "/status/conditions", "value": [{"message": "patched"}]}]"#,
        )
        .await;
        let patched = ok(&r, "patching CustomResourceDefinition status");
        assert!(
            has_condition(&patched["status"]["conditions"], &patch_condition),
            "Condition {patch_condition} not found in conditions {}",
            patched["status"]["conditions"]
        );
        delete_crd(&c, &crd).await;
    });
}

/// custom_resource_definition.go "custom resource defaulting for requests and from storage
/// works" (Conformance): a default added to the schema shows on read of an object stored
/// without it and is applied on create; replacing it with a default of another field defaults
/// that field on read while the first stays as stored.
#[test]
fn crd_custom_resource_defaulting_for_requests_and_from_storage_works() {
    run(|c| async move {
        let mut crd = new_random_name_crd("Cluster");
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"] =
            json!({"a": {"type": "string"}, "b": {"type": "string"}});
        let crd = create_crd(&c, &crd).await;
        let crd_uri = format!(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{}",
            crd["metadata"]["name"].as_str().unwrap()
        );
        let api_version = format!("{}/{}", crd["spec"]["group"].as_str().unwrap(), "v1beta1");
        let kind = crd["spec"]["names"]["kind"].clone();
        let crs = cr_path(&crd, "v1beta1", None);
        let create = |name: String| {
            let body = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}});
            let (c, crs) = (c.clone(), crs.clone());
            async move {
                let r = raw(
                    &c,
                    Method::POST,
                    &crs,
                    &[("content-type", "application/json")],
                    &body.to_string(),
                )
                .await;
                ok(&r, "creating CR")
            }
        };

        // A CR without the default in storage.
        let name1 = generate_name("cr-1");
        create(name1.clone()).await;

        let r = raw(
            &c,
            Method::PATCH,
            &crd_uri,
            &[("content-type", "application/json-patch+json")],
            r#"[{"op":"add","path":"/spec/versions/0/schema/openAPIV3Schema/properties/a/default", "value": "A"}]"#,
        )
        .await;
        ok(&r, "setting default for a to \"A\" in schema");
        eventually(30, "CR to be defaulted on read", || async {
            let u1 = ok(&get(&c, &format!("{crs}/{name1}")).await, "get cr-1");
            match &u1["a"] {
                Value::Null => None,
                a => {
                    assert_eq!(a, "A", "expected a:\"A\"");
                    Some(())
                }
            }
        })
        .await;

        // A CR with the default in storage.
        let name2 = generate_name("cr-2");
        let u2 = create(name2.clone()).await;
        assert_eq!(u2["a"], "A", "\"a\" is defaulted to \"A\": {u2}");

        let r = raw(
            &c,
            Method::PATCH,
            &crd_uri,
            &[("content-type", "application/json-patch+json")],
            r#"[{"op":"remove","path":"/spec/versions/0/schema/openAPIV3Schema/properties/a/default"},
                {"op":"add","path":"/spec/versions/0/schema/openAPIV3Schema/properties/b/default", "value": "B"}]"#,
        )
        .await;
        ok(
            &r,
            "setting default for b to \"B\" and remove default for a",
        );
        eventually(
            30,
            "CR to be defaulted on read for b and a staying the same",
            || async {
                let u2 = ok(&get(&c, &format!("{crs}/{name2}")).await, "get cr-2");
                match &u2["b"] {
                    Value::Null => None,
                    b => {
                        assert_eq!(b, "B", "expected b:\"B\"");
                        assert_eq!(u2["a"], "A", "expected a:\"A\" to be unchanged: {u2}");
                        Some(())
                    }
                }
            },
        )
        .await;
        delete_crd(&c, &crd).await;
    });
}

type CrEvents = Pin<Box<dyn Stream<Item = kube::Result<Ev<DynamicObject>>> + Send>>;

/// `watchCRWithName`: a watch of one name by field selector.
async fn watch_cr_with_name(api: &Api<DynamicObject>, name: &str) -> CrEvents {
    let params = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(290);
    api.watch(&params, "0")
        .await
        .unwrap_or_else(|e| panic!("failed to watch custom resource: {name}: {e}"))
        .boxed()
}

/// `expectEvent`: the next notification (bookmarks skipped) is of this type, and when given,
/// of exactly this object.
async fn expect_cr_event(w: &mut CrEvents, kind: &str, want: Option<&DynamicObject>) {
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(60), w.next())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {kind}"))
            .expect("watch closed")
            .expect("watch error");
        let (got, obj) = match ev {
            Ev::Added(o) => ("ADDED", o),
            Ev::Modified(o) => ("MODIFIED", o),
            Ev::Deleted(o) => ("DELETED", o),
            Ev::Bookmark(_) => continue,
            Ev::Error(e) => panic!("watch error event: {e:?}"),
        };
        assert_eq!(
            got, kind,
            "unexpected event {got} of {:?}",
            obj.metadata.name
        );
        if let Some(want) = want {
            assert_eq!(
                serde_json::to_value(&obj).unwrap(),
                serde_json::to_value(want).unwrap(),
                "{kind}"
            );
        }
        return;
    }
}

/// crd_watch.go "CustomResourceDefinition Watch watch on custom resource definition objects"
/// (Conformance): two watches by name each see exactly the ADDED, MODIFIED and DELETED of
/// their own custom resource. The *next* event of the other watch must be its own object's,
/// which is upstream's `expectNoEvent` without the wait.
#[test]
fn crd_watch_watch_on_custom_resource_definition_objects() {
    run(|c| async move {
        // fixtures.NewNoxuV1CustomResourceDefinition(ClusterScoped)
        let noxu = json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "noxus.mygroup.example.com"},
            "spec": {
                "group": "mygroup.example.com",
                "versions": [{"name": "v1beta1", "served": true, "storage": true, "schema": allow_all_schema()}],
                "names": {"plural": "noxus", "singular": "nonenglishnoxu", "kind": "WishIHadChosenNoxu",
                          "shortNames": ["foo", "bar", "abc", "def"], "listKind": "NoxuItemList", "categories": ["all"]},
                "scope": "Cluster",
            }
        });
        create_crd(&c, &noxu).await;
        let ar = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("mygroup.example.com", "v1beta1", "WishIHadChosenNoxu"),
            "noxus",
        );
        let api: Api<DynamicObject> = Api::all_with(c.clone(), &ar);
        let mut watch_a = watch_cr_with_name(&api, "name1").await;
        let mut watch_b = watch_cr_with_name(&api, "name2").await;

        // fixtures.NewNoxuInstance, checked as instantiateCustomResource does.
        let instance = |name: &str| -> DynamicObject {
            obj(json!({
                "apiVersion": "mygroup.example.com/v1beta1",
                "kind": "WishIHadChosenNoxu",
                "metadata": {"name": name},
                "content": {"key": "value"},
                "num": {"num1": i64::MAX, "num2": 1_000_000},
            }))
        };
        let instantiate = |o: DynamicObject| {
            let api = api.clone();
            async move {
                let created = api
                    .create(&PostParams::default(), &o)
                    .await
                    .expect("failed to instantiate custom resource");
                assert!(
                    created
                        .metadata
                        .uid
                        .as_deref()
                        .is_some_and(|u| !u.is_empty()),
                    "missing uuid"
                );
                let types = created.types.clone().expect("typed");
                assert_eq!(types.api_version, "mygroup.example.com/v1beta1");
                assert_eq!(types.kind, "WishIHadChosenNoxu");
                assert_eq!(created.data["num"]["num1"], i64::MAX);
                created
            }
        };
        let patch = |name: &'static str| {
            let c = c.clone();
            async move {
                let r = raw(
                    &c,
                    Method::PATCH,
                    &format!("/apis/mygroup.example.com/v1beta1/noxus/{name}"),
                    &[("content-type", "application/json-patch+json")],
                    r#"[{ "op": "add", "path": "/dummy", "value": "test" }]"#,
                )
                .await;
                ok(&r, &format!("failed to patch custom resource: {name}"));
            }
        };
        let delete = |name: &'static str| {
            let api = api.clone();
            async move {
                api.delete(name, &DeleteParams::default())
                    .await
                    .unwrap_or_else(|e| panic!("failed to delete custom resource: {name}: {e}"));
            }
        };

        let a = instantiate(instance("name1")).await;
        expect_cr_event(&mut watch_a, "ADDED", Some(&a)).await;
        let b = instantiate(instance("name2")).await;
        expect_cr_event(&mut watch_b, "ADDED", Some(&b)).await;

        patch("name1").await;
        expect_cr_event(&mut watch_a, "MODIFIED", None).await;
        patch("name2").await;
        expect_cr_event(&mut watch_b, "MODIFIED", None).await;

        delete("name1").await;
        expect_cr_event(&mut watch_a, "DELETED", None).await;
        delete("name2").await;
        expect_cr_event(&mut watch_b, "DELETED", None).await;

        delete_crd(&c, &noxu).await;
    });
}

// ---------------------------------------------------------------------------------------------
// CustomResourcePublishOpenAPI (test/e2e/apimachinery/crd_publish_openapi.go)

/// `schemaFoo`.
fn schema_foo() -> Value {
    json!({"description": "Foo CRD for Testing", "type": "object", "properties": {
        "spec": {"type": "object", "description": "Specification of Foo", "properties": {
            "bars": {"description": "List of Bars and their specs.", "type": "array", "items": {
                "type": "object", "required": ["name"], "properties": {
                    "name": {"description": "Name of Bar.", "type": "string"},
                    "age": {"description": "Age of Bar.", "type": "string"},
                    "feeling": {"description": "Whether Bar is feeling great.", "type": "string", "enum": ["Great", "Down"]},
                    "bazs": {"description": "List of Bazs.", "items": {"type": "string"}, "type": "array"}
                }}}
        }},
        "status": {"description": "Status of Foo", "type": "object", "properties": {
            "bars": {"description": "List of Bars and their statuses.", "type": "array", "items": {
                "type": "object", "properties": {
                    "name": {"description": "Name of Bar.", "type": "string"},
                    "available": {"description": "Whether the Bar is installed.", "type": "boolean"},
                    "quxType": {"description": "Indicates to external qux type.", "pattern": "in-tree|out-of-tree", "type": "string"}
                }}}
        }}
    }})
}

/// `schemaWaldo`, and with `preserve` (`root` or `spec`) its preserve-unknown-fields twins
/// `schemaPreserveRoot` and `schemaPreserveNested`.
fn schema_waldo(preserve: Option<&str>) -> Value {
    let description = match preserve {
        None => "Waldo CRD for Testing",
        Some("root") => "preserve-unknown-properties at root for Testing",
        Some(_) => "preserve-unknown-properties in nested field for Testing",
    };
    let mut s = json!({"description": description, "type": "object", "properties": {
        "spec": {"description": "Specification of Waldo", "type": "object", "properties": {
            "dummy": {"description": "Dummy property.", "type": "object"}}},
        "status": {"description": "Status of Waldo", "type": "object", "properties": {
            "bars": {"description": "List of Bars and their statuses.", "type": "array", "items": {"type": "object"}}}}
    }});
    match preserve {
        Some("root") => s["x-kubernetes-preserve-unknown-fields"] = json!(true),
        Some(_) => s["properties"]["spec"]["x-kubernetes-preserve-unknown-fields"] = json!(true),
        None => {}
    }
    s
}

/// `openapiutil.ToRESTFriendlyName("group/version/kind")`: the group reversed.
fn definition_name(crd: &Value, version: &str) -> String {
    let group: Vec<&str> = crd["spec"]["group"]
        .as_str()
        .unwrap()
        .split('.')
        .rev()
        .collect();
    format!(
        "{}.{version}.{}",
        group.join("."),
        crd["spec"]["names"]["kind"].as_str().unwrap()
    )
}

/// `waitForOpenAPISchema`: polls `/openapi/v2` until `pred` holds for ten fetches in a row
/// (upstream's `mustSucceedMultipleTimes`), within a minute.
async fn wait_for_openapi_schema(
    c: &Client,
    what: &str,
    pred: impl Fn(&Value) -> Result<(), String>,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    loop {
        let mut all = true;
        for _ in 0..10 {
            let doc = ok(&get(c, "/openapi/v2").await, "/openapi/v2");
            if let Err(msg) = pred(&doc) {
                last = msg;
                all = false;
                break;
            }
        }
        if all {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "failed to wait for {what}; lastMsg: {last}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `waitForDefinition`: the definition is published and, when `schema` is given, equal to it
/// once the properties and extension the server adds are dropped (`dropDefaults`).
async fn wait_for_definition(c: &Client, name: &str, schema: Option<&Value>) {
    wait_for_openapi_schema(c, &format!("definition {name:?} to be served with the right OpenAPI schema"), |doc| {
        let Some(d) = doc["definitions"].get(name) else {
            return Err(format!("spec.SwaggerProps.Definitions[{name:?}] not found"));
        };
        if let Some(expect) = schema {
            let mut d = d.clone();
            if let Some(props) = d.get_mut("properties").and_then(Value::as_object_mut) {
                for p in ["metadata", "apiVersion", "kind"] {
                    props.remove(p);
                }
            }
            if let Some(o) = d.as_object_mut() {
                o.remove("x-kubernetes-group-version-kind");
            }
            if d != *expect {
                return Err(format!("spec.SwaggerProps.Definitions[{name:?}] not match; expect: {expect}, actual: {d}"));
            }
        }
        Ok(())
    })
    .await;
}

/// `waitForDefinitionCleanup`.
async fn wait_for_definition_cleanup(c: &Client, name: &str) {
    wait_for_openapi_schema(
        c,
        &format!("definition {name:?} not to be served anymore"),
        |doc| match doc["definitions"].get(name) {
            Some(_) => Err(format!(
                "spec.SwaggerProps.Definitions[{name:?}] still exists"
            )),
            None => Ok(()),
        },
    )
    .await;
}

fn served_versions(crd: &Value) -> Vec<String> {
    crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["name"].as_str().map(str::to_owned))
        .collect()
}

/// `setupCRDAndVerifySchema`: a namespaced test CRD (`crd.CreateMultiVersionTestCRD`) in
/// `crd-publish-openapi-test-<suffix>.example.com` with `versions` (the first stored), each
/// with `schema` or, without one, the allow-all schema; then every version's definition is
/// waited for, compared with `expect` when given.
async fn setup_crd(
    c: &Client,
    schema: Option<Value>,
    expect: Option<Value>,
    group_suffix: &str,
    versions: &[&str],
) -> Value {
    let name = format!("e2e-test-crd-publish-openapi-{}-crd", generate_name(""));
    let group = format!("crd-publish-openapi-test-{group_suffix}.example.com");
    let schema = schema.unwrap_or_else(|| allow_all_schema()["openAPIV3Schema"].clone());
    let versions: Vec<Value> = versions
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"name": v, "served": true, "storage": i == 0, "schema": {"openAPIV3Schema": schema}}))
        .collect();
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{name}s.{group}")},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": format!("{name}s"), "singular": name, "kind": name, "listKind": format!("{name}List")},
            "versions": versions,
        }
    });
    let crd = create_crd(c, &crd).await;
    for v in served_versions(&crd) {
        wait_for_definition(c, &definition_name(&crd, &v), expect.as_ref()).await;
    }
    crd
}

/// `setupCRD`: a CRD without a schema is expected to publish `type: object`.
async fn setup_crd_expecting_itself(
    c: &Client,
    schema: Option<Value>,
    group_suffix: &str,
    versions: &[&str],
) -> Value {
    let expect = schema.clone().unwrap_or_else(|| json!({"type": "object"}));
    setup_crd(c, schema, Some(expect), group_suffix, versions).await
}

/// `cleanupCRD`: deletes the CRD and waits for each version's definition to go.
async fn cleanup_crd(c: &Client, crd: &Value) {
    delete_crd(c, crd).await;
    for v in served_versions(crd) {
        wait_for_definition_cleanup(c, &definition_name(crd, &v)).await;
    }
}

fn kubectl_run(input: Option<&str>, args: &[&str]) -> Result<String, String> {
    use std::io::Write;
    let mut child = Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", &server().kubeconfig)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(input.unwrap_or_default().as_bytes())
        .expect("write kubectl's stdin");
    drop(stdin);
    let out = child.wait_with_output().expect("kubectl output");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn has_kubectl() -> bool {
    Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Upstream's `(?s)A.*B.*C` patterns: each piece in order.
fn matches_in_order(text: &str, pieces: &[&str]) -> bool {
    let mut rest = text;
    for p in pieces {
        match rest.find(p) {
            Some(i) => rest = &rest[i + p.len()..],
            None => return false,
        }
    }
    true
}

/// `verifyKubectlExplain`.
fn verify_kubectl_explain(ns: &str, name: &str, pieces: &[&str]) {
    verify_kubectl_explain_any(ns, name, &[pieces]);
}

/// `verifyKubectlExplain` with a pattern of alternatives (`(A|B):.*`): any one matches.
fn verify_kubectl_explain_any(ns: &str, name: &str, alternatives: &[&[&str]]) {
    let out = kubectl_run(None, &["explain", name, &format!("--namespace={ns}")])
        .unwrap_or_else(|e| panic!("failed to explain {name}: {e}"));
    assert!(
        alternatives
            .iter()
            .any(|pieces| matches_in_order(&out, pieces)),
        "kubectl explain {name} result {{{out}}} doesn't match pattern {alternatives:?}"
    );
}

/// `metaPattern`.
fn meta(crd: &Value, version: &str, name: &str) -> String {
    format!(
        r#""kind":"{}","apiVersion":"{}/{version}","metadata":{{"name":"{name}"}}"#,
        crd["spec"]["names"]["kind"].as_str().unwrap(),
        crd["spec"]["group"].as_str().unwrap()
    )
}

/// The create/delete/apply/delete round of kubectl validation each case starts with.
fn kubectl_create_and_apply(ns: &str, crd: &Value, cr: &str, name: &str) {
    let ns_flag = format!("--namespace={ns}");
    let plural = crd["spec"]["names"]["plural"].as_str().unwrap();
    for verb in ["create", "apply"] {
        kubectl_run(Some(cr), &[&ns_flag, verb, "-f", "-"])
            .unwrap_or_else(|e| panic!("failed to {verb} CR {cr}: {e}"));
        kubectl_run(None, &[&ns_flag, "delete", plural, name])
            .unwrap_or_else(|e| panic!("failed to delete CR: {e}"));
    }
}

/// crd_publish_openapi.go "works for CRD with validation schema" (Conformance).
#[test]
fn crd_publish_openapi_works_for_crd_with_validation_schema() {
    if skip_without(has_kubectl(), "kubectl on PATH") {
        return;
    }
    run(|c| async move {
        let ns = namespace(&c, "cf-crd-openapi-foo").await;
        let crd = setup_crd_expecting_itself(&c, Some(schema_foo()), "foo", &["v1"]).await;
        let valid = format!(
            r#"{{{},"spec":{{"bars":[{{"name":"test-bar"}}]}}}}"#,
            meta(&crd, "v1", "test-foo")
        );
        kubectl_create_and_apply(&ns, &crd, &valid, "test-foo");
        let plural = crd["spec"]["names"]["plural"].as_str().unwrap().to_owned();
        verify_kubectl_explain(
            &ns,
            &plural,
            &[
                "DESCRIPTION:",
                "Foo CRD for Testing",
                "FIELDS:",
                "apiVersion",
                "<string>",
                "APIVersion defines",
                "spec",
                "<Object>",
                "Specification of Foo",
            ],
        );
        verify_kubectl_explain(
            &ns,
            &format!("{plural}.metadata"),
            &[
                "DESCRIPTION:",
                "Standard object's metadata",
                "FIELDS:",
                "creationTimestamp",
                "<string>",
                "CreationTimestamp is a timestamp",
            ],
        );
        verify_kubectl_explain(
            &ns,
            &format!("{plural}.spec"),
            &[
                "DESCRIPTION:",
                "Specification of Foo",
                "FIELDS:",
                "bars",
                "<[]Object>",
                "List of Bars and their specs",
            ],
        );
        // Upstream's `(?s)(FIELD|RESOURCE):.*bars...`: kubectl's OpenAPI v3 explain says FIELD.
        let bars = |head| {
            [
                head,
                "bars",
                "<[]Object>",
                "DESCRIPTION:",
                "List of Bars and their specs",
                "FIELDS:",
                "bazs",
                "<[]string>",
                "List of Bazs",
                "name",
                "<string>",
                "Name of Bar",
            ]
        };
        verify_kubectl_explain_any(
            &ns,
            &format!("{plural}.spec.bars"),
            &[&bars("FIELD:"), &bars("RESOURCE:")],
        );
        let err = kubectl_run(None, &["explain", &format!("{plural}.spec.bars2")])
            .expect_err("explaining a property that doesn't exist");
        assert!(err.contains(r#"field "bars2" does not exist"#), "{err}");
        cleanup_crd(&c, &crd).await;
    });
}

/// crd_publish_openapi.go "works for CRD without validation schema" (Conformance).
#[test]
fn crd_publish_openapi_works_for_crd_without_validation_schema() {
    if skip_without(has_kubectl(), "kubectl on PATH") {
        return;
    }
    run(|c| async move {
        let ns = namespace(&c, "cf-crd-openapi-empty").await;
        let crd = setup_crd_expecting_itself(&c, None, "empty", &["v1"]).await;
        let random = format!(
            r#"{{{},"a":{{"b":[{{"c":"d"}}]}}}}"#,
            meta(&crd, "v1", "test-cr")
        );
        kubectl_create_and_apply(&ns, &crd, &random, "test-cr");
        let plural = crd["spec"]["names"]["plural"].as_str().unwrap().to_owned();
        verify_kubectl_explain(&ns, &plural, &["DESCRIPTION:", "<empty>"]);
        cleanup_crd(&c, &crd).await;
    });
}

/// crd_publish_openapi.go "works for CRD preserving unknown fields at the schema root"
/// (Conformance).
#[test]
fn crd_publish_openapi_works_for_crd_preserving_unknown_fields_at_the_schema_root() {
    if skip_without(has_kubectl(), "kubectl on PATH") {
        return;
    }
    run(|c| async move {
        let ns = namespace(&c, "cf-crd-openapi-root").await;
        let crd = setup_crd(
            &c,
            Some(schema_waldo(Some("root"))),
            None,
            "unknown-at-root",
            &["v1"],
        )
        .await;
        let random = format!(
            r#"{{{},"a":{{"b":[{{"c":"d"}}]}}}}"#,
            meta(&crd, "v1", "test-cr")
        );
        kubectl_create_and_apply(&ns, &crd, &random, "test-cr");
        let plural = crd["spec"]["names"]["plural"].as_str().unwrap().to_owned();
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap().to_owned();
        verify_kubectl_explain(&ns, &plural, &["KIND:", &kind]);
        cleanup_crd(&c, &crd).await;
    });
}

/// crd_publish_openapi.go "works for CRD preserving unknown fields in an embedded object"
/// (Conformance).
#[test]
fn crd_publish_openapi_works_for_crd_preserving_unknown_fields_in_an_embedded_object() {
    if skip_without(has_kubectl(), "kubectl on PATH") {
        return;
    }
    run(|c| async move {
        let ns = namespace(&c, "cf-crd-openapi-nested").await;
        let crd = setup_crd(
            &c,
            Some(schema_waldo(Some("spec"))),
            None,
            "unknown-in-nested",
            &["v1"],
        )
        .await;
        let random = format!(
            r#"{{{},"spec":{{"a":null,"b":[{{"c":"d"}}]}}}}"#,
            meta(&crd, "v1", "test-cr")
        );
        kubectl_create_and_apply(&ns, &crd, &random, "test-cr");
        let plural = crd["spec"]["names"]["plural"].as_str().unwrap().to_owned();
        verify_kubectl_explain(
            &ns,
            &plural,
            &[
                "DESCRIPTION:",
                "preserve-unknown-properties in nested field for Testing",
            ],
        );
        cleanup_crd(&c, &crd).await;
    });
}

/// crd_publish_openapi.go "works for multiple CRDs of different groups" (Conformance).
#[test]
fn crd_publish_openapi_works_for_multiple_crds_of_different_groups() {
    run(|c| async move {
        let foo = setup_crd_expecting_itself(&c, Some(schema_foo()), "foo", &["v1"]).await;
        let waldo =
            setup_crd_expecting_itself(&c, Some(schema_waldo(None)), "waldo", &["v1beta1"]).await;
        assert_ne!(
            foo["spec"]["group"], waldo["spec"]["group"],
            "CRDs should be of different group"
        );
        wait_for_definition(
            &c,
            &definition_name(&waldo, "v1beta1"),
            Some(&schema_waldo(None)),
        )
        .await;
        wait_for_definition(&c, &definition_name(&foo, "v1"), Some(&schema_foo())).await;
        cleanup_crd(&c, &foo).await;
        cleanup_crd(&c, &waldo).await;
    });
}

/// crd_publish_openapi.go "works for multiple CRDs of same group but different versions"
/// (Conformance).
#[test]
fn crd_publish_openapi_works_for_multiple_crds_of_same_group_but_different_versions() {
    run(|c| async move {
        let multi =
            setup_crd_expecting_itself(&c, Some(schema_foo()), "multi-ver", &["v2", "v3"]).await;
        wait_for_definition(&c, &definition_name(&multi, "v3"), Some(&schema_foo())).await;
        wait_for_definition(&c, &definition_name(&multi, "v2"), Some(&schema_foo())).await;
        cleanup_crd(&c, &multi).await;

        let foo = setup_crd_expecting_itself(&c, Some(schema_foo()), "common-group", &["v4"]).await;
        let waldo =
            setup_crd_expecting_itself(&c, Some(schema_waldo(None)), "common-group", &["v5"]).await;
        assert_eq!(
            foo["spec"]["group"], waldo["spec"]["group"],
            "CRDs should be of the same group"
        );
        wait_for_definition(
            &c,
            &definition_name(&waldo, "v5"),
            Some(&schema_waldo(None)),
        )
        .await;
        wait_for_definition(&c, &definition_name(&foo, "v4"), Some(&schema_foo())).await;
        cleanup_crd(&c, &foo).await;
        cleanup_crd(&c, &waldo).await;
    });
}

/// crd_publish_openapi.go "works for multiple CRDs of same group and version but different
/// kinds" (Conformance).
#[test]
fn crd_publish_openapi_works_for_multiple_crds_of_same_group_and_version_but_different_kinds() {
    run(|c| async move {
        let foo = setup_crd_expecting_itself(&c, Some(schema_foo()), "common-group", &["v6"]).await;
        let waldo =
            setup_crd_expecting_itself(&c, Some(schema_waldo(None)), "common-group", &["v6"]).await;
        assert_eq!(
            foo["spec"]["group"], waldo["spec"]["group"],
            "CRDs should be of the same group"
        );
        wait_for_definition(
            &c,
            &definition_name(&waldo, "v6"),
            Some(&schema_waldo(None)),
        )
        .await;
        wait_for_definition(&c, &definition_name(&foo, "v6"), Some(&schema_foo())).await;
        cleanup_crd(&c, &foo).await;
        cleanup_crd(&c, &waldo).await;
    });
}

/// crd_publish_openapi.go "updates the published spec when one version gets renamed"
/// (Conformance).
#[test]
fn crd_publish_openapi_updates_the_published_spec_when_one_version_gets_renamed() {
    run(|c| async move {
        let multi =
            setup_crd_expecting_itself(&c, Some(schema_foo()), "multi-ver", &["v2", "v3"]).await;
        wait_for_definition(&c, &definition_name(&multi, "v3"), Some(&schema_foo())).await;
        wait_for_definition(&c, &definition_name(&multi, "v2"), Some(&schema_foo())).await;
        let r = raw(
            &c,
            Method::PATCH,
            &format!(
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{}",
                multi["metadata"]["name"].as_str().unwrap()
            ),
            &[("content-type", "application/json-patch+json")],
            r#"[{"op":"test","path":"/spec/versions/1/name","value":"v3"},
                {"op": "replace", "path": "/spec/versions/1/name", "value": "v4"}]"#,
        )
        .await;
        let multi = ok(&r, "rename a version");
        wait_for_definition(&c, &definition_name(&multi, "v4"), Some(&schema_foo())).await;
        wait_for_definition_cleanup(&c, &definition_name(&multi, "v3")).await;
        wait_for_definition(&c, &definition_name(&multi, "v2"), Some(&schema_foo())).await;
        cleanup_crd(&c, &multi).await;
    });
}

/// crd_publish_openapi.go "removes definition from spec when one version gets changed to not
/// be served" (Conformance).
#[test]
fn crd_publish_openapi_removes_definition_from_spec_when_one_version_gets_changed_to_not_be_served()
{
    run(|c| async move {
        let crd = setup_crd_expecting_itself(
            &c,
            Some(schema_foo()),
            "multi-to-single-ver",
            &["v5", "v6alpha1"],
        )
        .await;
        wait_for_definition(&c, &definition_name(&crd, "v6alpha1"), Some(&schema_foo())).await;
        wait_for_definition(&c, &definition_name(&crd, "v5"), Some(&schema_foo())).await;
        let uri = format!(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{}",
            crd["metadata"]["name"].as_str().unwrap()
        );
        let mut current = ok(&get(&c, &uri).await, "get the CRD");
        current["spec"]["versions"][1]["served"] = json!(false);
        let r = raw(
            &c,
            Method::PUT,
            &uri,
            &[("content-type", "application/json")],
            &current.to_string(),
        )
        .await;
        let crd = ok(&r, "mark a version not served");
        wait_for_definition_cleanup(&c, &definition_name(&crd, "v6alpha1")).await;
        wait_for_definition(&c, &definition_name(&crd, "v5"), Some(&schema_foo())).await;
        delete_crd(&c, &crd).await;
        wait_for_definition_cleanup(&c, &definition_name(&crd, "v5")).await;
    });
}

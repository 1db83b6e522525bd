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

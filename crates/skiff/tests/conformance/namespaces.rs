//! Namespaces: `test/e2e/apimachinery/namespace.go`.

use super::*;

/// `WaitForDefaultServiceAccountInNamespace`, which the upstream namespace tests call.
async fn wait_for_default_service_account(c: &Client, ns: &str) {
    let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(c.clone(), ns);
    eventually(60, "the default service account", || async {
        sas.get_opt("default").await.ok().flatten()
    })
    .await;
}

async fn wait_namespace_gone(c: &Client, ns: &str, secs: u64) {
    let api: Api<Namespace> = Api::all(c.clone());
    eventually(secs, "the namespace to be removed", || async {
        api.get_opt(ns)
            .await
            .ok()
            .and_then(|o| o.is_none().then_some(()))
    })
    .await;
}

/// namespace.go "should ensure that all pods are removed when a namespace is deleted"
/// (Conformance). No node runs here, so the pod stays Pending rather than Running.
#[test]
fn namespaces_should_ensure_that_all_pods_are_removed_when_a_namespace_is_deleted() {
    run(|c| async move {
        let ns = namespace(&c, "nsdeletetest-pods").await;
        wait_for_default_service_account(&c, &ns).await;
        let pods: Api<Pod> = Api::namespaced(c.clone(), &ns);
        let pod: Pod = obj(json!({
            "metadata": {"name": "test-pod"},
            "spec": {"containers": [{"name": "nginx", "image": "registry.k8s.io/pause:3.10"}]}
        }));
        pods.create(&PostParams::default(), &pod).await.unwrap();
        Api::<Namespace>::all(c.clone())
            .delete(&ns, &DeleteParams::default())
            .await
            .unwrap();
        wait_namespace_gone(&c, &ns, 90).await;
        namespace(&c, &ns).await;
        assert!(
            pods.get_opt("test-pod").await.unwrap().is_none(),
            "the pod outlived its namespace"
        );
    });
}

/// namespace.go "should ensure that all services are removed when a namespace is deleted"
/// (Conformance).
#[test]
fn namespaces_should_ensure_that_all_services_are_removed_when_a_namespace_is_deleted() {
    run(|c| async move {
        let ns = namespace(&c, "nsdeletetest-svcs").await;
        wait_for_default_service_account(&c, &ns).await;
        let svcs: Api<Service> = Api::namespaced(c.clone(), &ns);
        let svc: Service = obj(json!({
            "metadata": {"name": "test-service"},
            "spec": {"selector": {"foo": "bar", "baz": "blah"}, "ports": [{"port": 80, "targetPort": 80}]}
        }));
        svcs.create(&PostParams::default(), &svc).await.unwrap();
        Api::<Namespace>::all(c.clone())
            .delete(&ns, &DeleteParams::default())
            .await
            .unwrap();
        wait_namespace_gone(&c, &ns, 60).await;
        namespace(&c, &ns).await;
        assert!(
            svcs.get_opt("test-service").await.unwrap().is_none(),
            "the service outlived its namespace"
        );
    });
}

/// namespace.go "should patch a Namespace" (Conformance).
#[test]
fn namespaces_should_patch_a_namespace() {
    run(|c| async move {
        let name = namespace(&c, "nspatchtest-cf").await;
        let api: Api<Namespace> = Api::all(c.clone());
        let created = api.get(&name).await.unwrap();
        let patch = json!({"metadata": {"labels": {"testLabel": "testValue"}}});
        let patched = api
            .patch(&name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
            .expect("patch Namespace");
        let rv = |n: &Namespace| -> u64 {
            n.metadata
                .resource_version
                .as_deref()
                .unwrap_or("")
                .parse()
                .expect("numeric resourceVersion")
        };
        assert!(
            rv(&created) < rv(&patched),
            "patched object should have a larger resource version"
        );
        let got = api.get(&name).await.unwrap();
        assert_eq!(
            got.metadata
                .labels
                .unwrap_or_default()
                .get("testLabel")
                .map(String::as_str),
            Some("testValue"),
            "namespace not patched"
        );
    });
}

/// namespace.go "should apply changes to a namespace status" (Conformance).
#[test]
fn namespaces_should_apply_changes_to_a_namespace_status() {
    run(|c| async move {
        let ns = namespace(&c, "cf-ns-status").await;
        let api: Api<Namespace> = Api::all(c.clone());
        let status = ok(
            &get(&c, &format!("/api/v1/namespaces/{ns}/status")).await,
            "read namespace status",
        );
        assert_eq!(status["status"]["phase"], "Active");

        let condition = json!({"type": "StatusPatch", "status": "True", "reason": "E2E", "message": "Patched by an e2e test"});
        let patch = json!({"metadata": {"annotations": {"e2e-patched-ns-status": ns}}, "status": {"conditions": [condition]}});
        let patched = api
            .patch_status(&ns, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("patch status");
        assert_eq!(
            patched
                .metadata
                .annotations
                .clone()
                .unwrap_or_default()
                .get("e2e-patched-ns-status"),
            Some(&ns),
            "patched object should have the applied annotation"
        );
        let conds = patched
            .status
            .clone()
            .unwrap()
            .conditions
            .unwrap_or_default();
        let last = conds.last().expect("a condition");
        assert_eq!(last.reason.as_deref(), Some("E2E"));
        assert_eq!(last.message.as_deref(), Some("Patched by an e2e test"));

        let mut current = api.get_status(&ns).await.unwrap();
        let mut conds = current
            .status
            .clone()
            .unwrap_or_default()
            .conditions
            .unwrap_or_default();
        conds.push(obj(json!({"type": "StatusUpdate", "status": "True", "reason": "E2E", "message": "Updated by an e2e test"})));
        current
            .status
            .get_or_insert_with(Default::default)
            .conditions = Some(conds);
        let updated = api
            .replace_status(&ns, &PostParams::default(), &current)
            .await
            .expect("update namespace status");
        let conds = updated.status.unwrap().conditions.unwrap_or_default();
        let last = conds.last().expect("a condition");
        assert_eq!(last.type_, "StatusUpdate");
        assert_eq!(last.message.as_deref(), Some("Updated by an e2e test"));
    });
}

/// namespace.go "should apply an update to a Namespace" (Conformance).
#[test]
fn namespaces_should_apply_an_update_to_a_namespace() {
    run(|c| async move {
        let ns = namespace(&c, "cf-ns-update").await;
        let api: Api<Namespace> = Api::all(c.clone());
        let mut got = api.get(&ns).await.unwrap();
        got.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(ns.clone(), "updated".into());
        let updated = api
            .replace(&ns, &PostParams::default(), &got)
            .await
            .expect("update Namespace");
        assert_eq!(
            updated
                .metadata
                .labels
                .unwrap_or_default()
                .get(&ns)
                .map(String::as_str),
            Some("updated")
        );
    });
}

/// namespace.go "should apply a finalizer to a Namespace" (Conformance): PUT
/// `namespaces/{name}/finalize` adds, then removes, a spec finalizer.
#[test]
fn namespaces_should_apply_a_finalizer_to_a_namespace() {
    run(|c| async move {
        let ns = namespace(&c, "e2e-ns-cffin").await;
        let api: Api<Namespace> = Api::all(c.clone());
        let fake = "e2e.example.com/fakeFinalizer";
        let finalize = |body: Namespace| {
            let c = c.clone();
            let ns = ns.clone();
            async move {
                let r = raw(
                    &c,
                    Method::PUT,
                    &format!("/api/v1/namespaces/{ns}/finalize"),
                    &[("content-type", "application/json")],
                    &serde_json::to_string(&body).unwrap(),
                )
                .await;
                let v = ok(&r, "finalize");
                serde_json::from_value::<Namespace>(v).expect("a Namespace")
            }
        };
        let finalizers = |n: &Namespace| -> Vec<String> {
            n.spec
                .clone()
                .unwrap_or_default()
                .finalizers
                .unwrap_or_default()
        };
        let mut got = api.get(&ns).await.unwrap();
        got.spec
            .get_or_insert_with(Default::default)
            .finalizers
            .get_or_insert_with(Vec::new)
            .push(fake.into());
        let updated = finalize(got).await;
        assert!(
            finalizers(&updated).iter().any(|f| f == fake),
            "Finalizer {fake} was not found: {:?}",
            finalizers(&updated)
        );

        let mut got = api.get(&ns).await.unwrap();
        let kept: Vec<String> = finalizers(&got).into_iter().filter(|f| f != fake).collect();
        got.spec.get_or_insert_with(Default::default).finalizers = Some(kept);
        let updated = finalize(got).await;
        assert!(
            !finalizers(&updated).iter().any(|f| f == fake),
            "Finalizer {fake} was found: {:?}",
            finalizers(&updated)
        );
    });
}

/// namespace.go "should delete fast enough (90 percent of 100 namespaces in 150 seconds)":
/// upstream's 10 s pause before the deletes is left out.
#[test]
fn namespaces_should_delete_fast_enough_90_percent_of_100_namespaces_in_150_seconds() {
    run(|c| async move {
        let api: Api<Namespace> = Api::all(c.clone());
        futures::stream::iter(0..100)
            .for_each_concurrent(10, |n| {
                let c = c.clone();
                async move {
                    namespace(&c, &format!("nslifetest-{n}")).await;
                }
            })
            .await;
        let all = api.list(&ListParams::default()).await.unwrap();
        let doomed: Vec<String> = all
            .items
            .iter()
            .filter_map(|n| n.metadata.name.clone())
            .filter(|n| n.contains("nslifetest"))
            .collect();
        assert_eq!(doomed.len(), 100);
        futures::stream::iter(doomed)
            .for_each_concurrent(10, |n| {
                let api = api.clone();
                async move {
                    api.delete(&n, &DeleteParams::default())
                        .await
                        .expect("delete namespace");
                }
            })
            .await;
        eventually(150, "at most 10 nslifetest namespaces left", || async {
            let left = api
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .iter()
                .filter(|n| {
                    n.metadata
                        .name
                        .as_deref()
                        .unwrap_or("")
                        .contains("nslifetest")
                })
                .count();
            (left <= 10).then_some(())
        })
        .await;
    });
}

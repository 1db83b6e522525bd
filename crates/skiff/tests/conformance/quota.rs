//! ResourceQuota: `test/e2e/apimachinery/resource_quota.go`, the cases that need no quota controller or admission.

use super::*;

fn hard(rq: &k8s_openapi::api::core::v1::ResourceQuota, resource: &str) -> Option<String> {
    rq.spec
        .as_ref()?
        .hard
        .as_ref()?
        .get(resource)
        .map(|q| q.0.clone())
}

/// resource_quota.go "should be able to update and delete ResourceQuota." (Conformance).
#[test]
fn resource_quota_should_be_able_to_update_and_delete_resource_quota() {
    run(|c| async move {
        use k8s_openapi::api::core::v1::ResourceQuota;
        let ns = namespace(&c, "cf-rq-update").await;
        let api: Api<ResourceQuota> = Api::namespaced(c, &ns);
        let mut rq: ResourceQuota = obj(json!({
            "metadata": {"name": "test-quota"},
            "spec": {"hard": {"cpu": "1", "memory": "500Mi"}}
        }));
        api.create(&PostParams::default(), &rq)
            .await
            .expect("create ResourceQuota");
        let got = api.get("test-quota").await.unwrap();
        assert_eq!(hard(&got, "cpu").as_deref(), Some("1"));
        assert_eq!(hard(&got, "memory").as_deref(), Some("500Mi"));

        // Upstream updates its original object (no resourceVersion): an unconditional update.
        rq.spec = Some(obj(json!({"hard": {"cpu": "2", "memory": "1Gi"}})));
        let updated = api
            .replace("test-quota", &PostParams::default(), &rq)
            .await
            .expect("update ResourceQuota");
        assert_eq!(hard(&updated, "cpu").as_deref(), Some("2"));
        assert_eq!(hard(&updated, "memory").as_deref(), Some("1Gi"));
        let got = api.get("test-quota").await.unwrap();
        assert_eq!(hard(&got, "cpu").as_deref(), Some("2"));
        assert_eq!(hard(&got, "memory").as_deref(), Some("1Gi"));

        api.delete("test-quota", &DeleteParams::default())
            .await
            .expect("delete ResourceQuota");
        match api.get("test-quota").await {
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            other => panic!("Expected `not found` error, got: {other:?}"),
        }
    });
}

/// resource_quota.go "should manage the lifecycle of a ResourceQuota" (Conformance): create,
/// list across namespaces by label, strategic merge patch, deletecollection by label.
#[test]
fn resource_quota_should_manage_the_lifecycle_of_a_resource_quota() {
    run(|c| async move {
        use k8s_openapi::api::core::v1::ResourceQuota;
        let ns = namespace(&c, "cf-rq-lifecycle").await;
        let name = "e2e-quota-cflif";
        let selector = format!("e2e-rq-label={name}");
        let api: Api<ResourceQuota> = Api::namespaced(c.clone(), &ns);
        let rq: ResourceQuota = obj(json!({
            "metadata": {"name": name, "labels": {"e2e-rq-label": name}},
            "spec": {"hard": {"cpu": "1", "memory": "500Mi"}}
        }));
        api.create(&PostParams::default(), &rq)
            .await
            .expect("create ResourceQuota");
        let got = api.get(name).await.unwrap();
        assert_eq!(hard(&got, "cpu").as_deref(), Some("1"));
        assert_eq!(hard(&got, "memory").as_deref(), Some("500Mi"));

        let all: Api<ResourceQuota> = Api::all(c.clone());
        let listed = all
            .list(&ListParams::default().labels(&selector))
            .await
            .unwrap();
        assert_eq!(listed.items.len(), 1, "Failed to find ResourceQuota {name}");

        let patch = json!({"metadata": {"labels": {name: "patched"}}, "spec": {"hard": {"memory": "750Mi"}}});
        let patched = api
            .patch(name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
            .expect("patch ResourceQuota");
        assert_eq!(
            patched
                .metadata
                .labels
                .clone()
                .unwrap_or_default()
                .get(name)
                .map(String::as_str),
            Some("patched")
        );
        assert_eq!(hard(&patched, "memory").as_deref(), Some("750Mi"));

        api.delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels(&selector),
        )
        .await
        .expect("delete a collection of ResourceQuotas");
        match api.get(name).await {
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            other => panic!("Expected `not found` error, got: {other:?}"),
        }
    });
}

//! ServerSideApply: `test/e2e/apimachinery/apply.go`.

use super::*;

fn nginx_deployment(
    name: &str,
    replicas: Option<i32>,
    extra_pod_spec: Value,
    ports: bool,
) -> String {
    let mut container =
        json!({"name": "nginx", "image": "registry.k8s.io/e2e-test-images/nginx:1.15-4"});
    if ports {
        container["ports"] = json!([{"containerPort": 80, "protocol": "TCP"}]);
    }
    let mut pod_spec = json!({"containers": [container]});
    if let (Some(p), Some(extra)) = (pod_spec.as_object_mut(), extra_pod_spec.as_object()) {
        p.extend(extra.clone());
    }
    let mut spec = json!({
        "selector": {"matchLabels": {"app": "nginx"}},
        "template": {"metadata": {"labels": {"app": "nginx"}}, "spec": pod_spec}
    });
    if let Some(r) = replicas {
        spec["replicas"] = json!(r);
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": "nginx"}},
        "spec": spec
    })
    .to_string()
}

/// apply.go "should create an applied object if it does not already exist": apply creates; a
/// second manager re-applies the same without conflict; both own exactly the applied fields.
#[test]
fn server_side_apply_should_create_an_applied_object_if_it_does_not_already_exist() {
    run(|c| async move {
        let ns = namespace(&c, "cf-ssa-create").await;
        let cases = [
            (
                "pods",
                "test-pod",
                r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "test-pod"},
                   "spec": {"containers": [{"name": "test-container", "image": "test-image"}]}}"#,
                json!({"f:spec":{"f:containers":{"k:{\"name\":\"test-container\"}":{".":{},"f:image":{},"f:name":{}}}}}),
            ),
            (
                "services",
                "test-svc",
                r#"{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "test-svc"},
                   "spec": {"ports": [{"port": 8080, "protocol": "UDP"}]}}"#,
                json!({"f:spec":{"f:ports":{"k:{\"port\":8080,\"protocol\":\"UDP\"}":{".":{},"f:port":{},"f:protocol":{}}}}}),
            ),
        ];
        for (resource, name, body, managed) in cases {
            let base = format!("/api/v1/namespaces/{ns}/{resource}/{name}");
            ok(
                &apply(&c, &format!("{base}?fieldManager=apply_test"), body).await,
                "create object using Apply patch",
            );
            ok(&get(&c, &base).await, "retrieve object");
            let obj = ok(
                &apply(&c, &format!("{base}?fieldManager=apply_test_2"), body).await,
                "re-apply object using Apply patch",
            );
            let entries = obj["metadata"]["managedFields"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for manager in ["apply_test", "apply_test_2"] {
                let entry = entries
                    .iter()
                    .find(|e| e["manager"] == manager)
                    .unwrap_or_else(|| panic!("no managedFields entry for {manager}: {entries:?}"));
                assert_eq!(entry["operation"], "Apply", "{entry}");
                assert_eq!(entry["fieldsV1"], managed, "managed fields of {manager}");
            }
        }
    });
}

/// apply.go "should work for subresources": an apply of status to the main resource leaves
/// status alone; the same apply to `/status` sets it.
#[test]
fn server_side_apply_should_work_for_subresources() {
    run(|c| async move {
        let ns = namespace(&c, "cf-ssa-sub").await;
        let base = format!("/api/v1/namespaces/{ns}/pods/test-pod");
        let body = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "test-pod"},
            "spec": {"containers": [{"name": "nginx", "image": "registry.k8s.io/e2e-test-images/nginx:1.15-4"}]}}"#;
        let status = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "test-pod"},
            "status": {"conditions": [{"type": "MyStatus", "status": "True"}]}}"#;
        ok(
            &apply(&c, &format!("{base}?fieldManager=apply_test"), body).await,
            "create",
        );
        ok(&get(&c, &base).await, "retrieve");
        ok(
            &apply(&c, &format!("{base}?fieldManager=apply_test2"), status).await,
            "apply status to the main resource",
        );
        let pods: Api<Pod> = Api::namespaced(c.clone(), &ns);
        let has_my_status = |p: &Pod| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "MyStatus"))
        };
        let pod = pods.get("test-pod").await.unwrap();
        assert!(
            !has_my_status(&pod),
            "Apply should not update subresources unless the endpoint is specifically specified"
        );
        ok(
            &apply(
                &c,
                &format!("{base}/status?fieldManager=apply_test2"),
                status,
            )
            .await,
            "apply status to /status",
        );
        let pod = pods.get("test-pod").await.unwrap();
        assert!(has_my_status(&pod), "Expected pod to have applied status");
    });
}

/// apply.go "should remove a field if it is owned but removed in the apply request".
#[test]
fn server_side_apply_should_remove_a_field_if_it_is_owned_but_removed_in_the_apply_request() {
    run(|c| async move {
        let ns = namespace(&c, "cf-ssa-remove").await;
        let uri =
            format!("/apis/apps/v1/namespaces/{ns}/deployments/deployment?fieldManager=apply_test");
        ok(
            &apply(
                &c,
                &uri,
                &nginx_deployment("deployment", Some(3), json!({}), true),
            )
            .await,
            "create object using Apply patch",
        );
        ok(
            &apply(
                &c,
                &uri,
                &nginx_deployment("deployment", Some(3), json!({}), false),
            )
            .await,
            "remove container port using Apply patch",
        );
        let d: Deployment = Api::namespaced(c, &ns).get("deployment").await.unwrap();
        let ports = d.spec.unwrap().template.spec.unwrap().containers[0]
            .ports
            .clone();
        assert!(
            ports.unwrap_or_default().is_empty(),
            "Expected no container ports"
        );
    });
}

/// apply.go "should not remove a field if an owner unsets the field but other managers still
/// have ownership of the field".
#[test]
fn server_side_apply_should_not_remove_a_field_if_an_owner_unsets_the_field_but_other_managers_still_have_ownership_of_the_field(
) {
    run(|c| async move {
        let ns = namespace(&c, "cf-ssa-shared").await;
        let name = "deployment-shared-unset";
        let base = format!("/apis/apps/v1/namespaces/{ns}/deployments/{name}");
        let full = nginx_deployment(name, Some(3), json!({"hostname": "test-hostname"}), false);
        for manager in ["shared_owner_1", "shared_owner_2"] {
            ok(
                &apply(&c, &format!("{base}?fieldManager={manager}"), &full).await,
                "create object using Apply patch",
            );
        }
        let patched = ok(
            &apply(
                &c,
                &format!("{base}?fieldManager=shared_owner_1"),
                &nginx_deployment(name, None, json!({}), false),
            )
            .await,
            "apply without replicas and hostname",
        );
        assert_eq!(patched["spec"]["replicas"], 3, "deployment.spec.replicas");
        assert_eq!(
            patched["spec"]["template"]["spec"]["hostname"], "test-hostname",
            "deployment.spec.template.spec.hostname"
        );
    });
}

/// apply.go "should ignore conflict errors if force apply is used": after another writer changes
/// `spec.replicas`, a re-apply conflicts (409 naming the field); with `force=true` it succeeds.
#[test]
fn server_side_apply_should_ignore_conflict_errors_if_force_apply_is_used() {
    run(|c| async move {
        let ns = namespace(&c, "cf-ssa-force").await;
        let base = format!("/apis/apps/v1/namespaces/{ns}/deployments/deployment");
        let body = nginx_deployment("deployment", Some(3), json!({}), false);
        ok(
            &apply(&c, &format!("{base}?fieldManager=apply_test"), &body).await,
            "create object using Apply patch",
        );
        let patched = raw(
            &c,
            Method::PATCH,
            &base,
            &[("content-type", "application/merge-patch+json")],
            r#"{"spec":{"replicas": 5}}"#,
        )
        .await;
        ok(&patched, "merge patch replicas");

        let conflict = apply(&c, &format!("{base}?fieldManager=apply_test"), &body).await;
        assert_eq!(
            conflict.status,
            StatusCode::CONFLICT,
            "Expecting to get conflicts when applying object: {}",
            conflict.body
        );
        let status = conflict.json();
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["reason"], "Conflict");
        let causes = status["details"]["causes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            !causes.is_empty(),
            "Expecting to get at least one conflict when applying object, got: {status}"
        );
        assert!(
            causes
                .iter()
                .any(|c| c["field"] == ".spec.replicas" && c["reason"] == "FieldManagerConflict"),
            "no conflict on .spec.replicas: {status}"
        );
        let message = status["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("Apply failed with 1 conflict: conflict with ")
                && message.ends_with("using apps/v1: .spec.replicas"),
            "conflict message: {message}"
        );

        let forced = apply(
            &c,
            &format!("{base}?force=true&fieldManager=apply_test"),
            &body,
        )
        .await;
        let forced = ok(&forced, "apply object with force");
        assert_eq!(forced["spec"]["replicas"], 3);
    });
}

/// apply.go "should give up ownership of a field if forced applied by a controller": after an
/// update takes `spec.replicas`, an apply that omits it leaves the controller's value.
#[test]
fn server_side_apply_should_give_up_ownership_of_a_field_if_forced_applied_by_a_controller() {
    run(|c| async move {
        let ns = namespace(&c, "cf-ssa-giveup").await;
        let name = "deployment-shared-map-item-removal";
        let base =
            format!("/apis/apps/v1/namespaces/{ns}/deployments/{name}?fieldManager=test_applier");
        ok(
            &apply(
                &c,
                &base,
                &nginx_deployment(name, Some(3), json!({}), false),
            )
            .await,
            "create object using Apply patch",
        );
        let api: Api<Deployment> = Api::namespaced(c.clone(), &ns);
        let mut d = api.get(name).await.unwrap();
        d.spec.as_mut().unwrap().replicas = Some(4);
        api.replace(name, &PostParams::default(), &d).await.unwrap();

        let patched = ok(
            &apply(&c, &base, &nginx_deployment(name, None, json!({}), false)).await,
            "apply without replicas",
        );
        assert_eq!(patched["spec"]["replicas"], 4, "deployment.spec.replicas");
    });
}

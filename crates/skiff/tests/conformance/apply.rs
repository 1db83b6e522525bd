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

/// apply.go `verifyNumFinalizers`, `verifyFinalizersIncludes`, `verifyReplicas`,
/// `verifyNumPorts`.
fn verify_cr(
    result: &Value,
    finalizers: Option<usize>,
    replicas: Option<i64>,
    ports: Option<usize>,
) {
    if let Some(n) = finalizers {
        let got = result["metadata"]["finalizers"]
            .as_array()
            .map_or(0, Vec::len);
        assert_eq!(got, n, "expected {n} finalizers: {result}");
    }
    if let Some(n) = replicas {
        assert_eq!(
            result["spec"]["replicas"], n,
            "expected replicas {n}: {result}"
        );
    }
    if let Some(n) = ports {
        let got = result["spec"]["ports"].as_array().map_or(0, Vec::len);
        assert_eq!(got, n, "expected {n} ports: {result}");
    }
}

fn has_finalizer(result: &Value, f: &str) -> bool {
    result["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|fs| fs.iter().any(|x| x == f))
}

/// apply.go "should work for CRDs": apply creates a custom resource, works in a second
/// version, keeps finalizers a merge patch added (a set list), conflicts on a field another
/// manager changed (one cause) until forced, conflicts when a second applier edits an
/// existing map-list item but not when it adds one; PUT never creates; an atomic list is
/// replaced whole by a forced apply.
#[test]
fn server_side_apply_should_work_for_crds() {
    run(|c| async move {
        let mut noxu = new_random_name_multiple_version_crd("Cluster");
        let schema = json!({"openAPIV3Schema": {"type": "object", "properties": {"spec": {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true,
            "properties": {
                "cronSpec": {"type": "string", "pattern": "^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){4}$"},
                "ports": {
                    "type": "array",
                    "x-kubernetes-list-map-keys": ["containerPort", "protocol"],
                    "x-kubernetes-list-type": "map",
                    "items": {
                        "properties": {
                            "containerPort": {"format": "int32", "type": "integer"},
                            "hostIP": {"type": "string"},
                            "hostPort": {"format": "int32", "type": "integer"},
                            "name": {"type": "string"},
                            "protocol": {"type": "string"}
                        },
                        "required": ["containerPort", "protocol"],
                        "type": "object"
                    }
                }
            }
        }}}});
        for v in noxu["spec"]["versions"].as_array_mut().unwrap() {
            v["schema"] = schema.clone();
        }
        let noxu = create_crd(&c, &noxu).await;
        let kind = noxu["spec"]["names"]["kind"].as_str().unwrap().to_owned();
        let group = noxu["spec"]["group"].as_str().unwrap().to_owned();
        let api_version = format!("{group}/v1beta1");
        let name = "mytest";
        let uri =
            |version: &str, query: &str| format!("{}/{name}{query}", cr_path(&noxu, version, None));
        let yaml = format!(
            r#"
apiVersion: {api_version}
kind: {kind}
metadata:
  name: {name}
  finalizers:
  - test-finalizer
spec:
  cronSpec: "* * * * */5"
  replicas: 1
  ports:
  - name: x
    containerPort: 80
    protocol: TCP"#
        );
        let result = ok(
            &apply(&c, &uri("v1beta1", "?fieldManager=apply_test"), &yaml).await,
            "failed to create custom resource with apply",
        );
        verify_cr(&result, Some(1), Some(1), Some(1));
        assert!(has_finalizer(&result, "test-finalizer"), "{result}");

        // Apply works with multiple versions.
        let yaml_beta = format!(
            r#"
apiVersion: {group}/v1
kind: {kind}
metadata:
  name: {name}
spec:
  cronSpec: "* * * * */5"
  replicas: 1
  ports:
  - name: x
    containerPort: 80
    protocol: TCP"#
        );
        let result = ok(
            &apply(&c, &uri("v1", "?fieldManager=apply_test"), &yaml_beta).await,
            "failed to create custom resource with apply",
        );
        verify_cr(&result, None, Some(1), Some(1));

        let merge = |body: &'static str| {
            let (c, u) = (c.clone(), uri("v1beta1", ""));
            async move {
                raw(
                    &c,
                    Method::PATCH,
                    &u,
                    &[("content-type", "application/merge-patch+json")],
                    body,
                )
                .await
            }
        };
        let result = ok(
            &merge(r#"{"metadata":{"finalizers":["test-finalizer","another-one"]}}"#).await,
            "failed to add finalizer with merge patch",
        );
        verify_cr(&result, Some(2), None, None);
        assert!(has_finalizer(&result, "test-finalizer") && has_finalizer(&result, "another-one"));

        // Re-applying the same config keeps both: finalizers is a set.
        let result = ok(
            &apply(&c, &uri("v1beta1", "?fieldManager=apply_test"), &yaml).await,
            "failed to apply same config after adding a finalizer",
        );
        verify_cr(&result, Some(2), None, None);
        assert!(has_finalizer(&result, "test-finalizer") && has_finalizer(&result, "another-one"));

        let result = ok(
            &merge(r#"{"spec":{"replicas": 5}}"#).await,
            "failed to update number of replicas with merge patch",
        );
        verify_cr(&result, None, Some(5), None);

        let r = apply(&c, &uri("v1beta1", "?fieldManager=apply_test"), &yaml).await;
        assert_eq!(
            r.status,
            StatusCode::CONFLICT,
            "Expecting to get conflicts when applying object after updating replicas: {}",
            r.body
        );
        let causes = r.json()["details"]["causes"].as_array().map_or(0, Vec::len);
        assert_eq!(causes, 1, "Expecting to get one conflict: {}", r.body);

        let result = ok(
            &apply(
                &c,
                &uri("v1beta1", "?force=true&fieldManager=apply_test"),
                &yaml,
            )
            .await,
            "failed to apply object with force after updating replicas",
        );
        verify_cr(&result, None, Some(1), None);

        // A new applier editing an existing list item conflicts.
        let r = apply(
            &c,
            &uri("v1beta1", "?fieldManager=apply_test_2"),
            &format!(
                r#"
apiVersion: {api_version}
kind: {kind}
metadata:
  name: {name}
spec:
  ports:
  - name: "y"
    containerPort: 80
    protocol: TCP"#
            ),
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::CONFLICT,
            "Expecting to get conflicts when a different applier updates existing list item: {}",
            r.body
        );
        let causes = r.json()["details"]["causes"].as_array().map_or(0, Vec::len);
        assert_eq!(causes, 1, "Expecting to get one conflict: {}", r.body);

        // Adding a new list item works.
        let result = ok(
            &apply(
                &c,
                &uri("v1beta1", "?fieldManager=apply_test_2"),
                &format!(
                    r#"
apiVersion: {api_version}
kind: {kind}
metadata:
  name: {name}
spec:
  ports:
  - name: "y"
    containerPort: 8080
    protocol: TCP"#
                ),
            )
            .await,
            "failed to add a new list item to the object as a different applier",
        );
        verify_cr(&result, None, None, Some(2));

        // UpdateOnCreate: PUT of a missing custom resource is NotFound.
        let body = json!({
            "apiVersion": api_version, "kind": kind,
            "metadata": {"name": "should-not-exist", "finalizers": ["test-finalizer"]},
            "spec": {"cronSpec": "* * * * */5", "replicas": 1, "ports": [{"name": "x", "containerPort": 80}]},
            "protocol": "TCP"
        });
        let r = raw(
            &c,
            Method::PUT,
            &format!(
                "{}/should-not-exist?fieldManager=apply_test",
                cr_path(&noxu, "v1beta1", None)
            ),
            &[("content-type", "application/json")],
            &body.to_string(),
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "create on update should fail with notFound: {}",
            r.body
        );

        // Atomic lists are replaced whole.
        let mut crd = new_random_name_crd("Cluster");
        crd["spec"]["versions"][0]["schema"] = json!({"openAPIV3Schema": {"type": "object", "properties": {"spec": {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true,
            "properties": {"atomicList": {"type": "array", "x-kubernetes-list-type": "atomic", "items": {"type": "string"}}}
        }}}});
        let crd = create_crd(&c, &crd).await;
        let crd_kind = crd["spec"]["names"]["kind"].as_str().unwrap().to_owned();
        let crd_uri = |q: &str| format!("{}/{name}{q}", cr_path(&crd, "v1beta1", None));
        let body = |item: &str| {
            format!(
                "\napiVersion: {group}/v1beta1\nkind: {crd_kind}\nmetadata:\n  name: {name}\nspec:\n  atomicList:\n  - \"{item}\""
            )
        };
        let result = ok(
            &apply(&c, &crd_uri("?fieldManager=apply_test"), &body("item1")).await,
            "failed to create custom resource with apply",
        );
        assert_eq!(result["spec"]["atomicList"], json!(["item1"]), "{result}");
        let result = ok(
            &apply(
                &c,
                &crd_uri("?fieldManager=apply_test_2&force=true"),
                &body("item2"),
            )
            .await,
            "failed to create custom resource with apply",
        );
        assert_eq!(result["spec"]["atomicList"], json!(["item2"]), "{result}");

        // Reset the finalizers so the objects can be deleted.
        ok(
            &merge(r#"{"metadata":{"finalizers":[]}}"#).await,
            "failed to reset finalizers",
        );
        delete_crd(&c, &crd).await;
        delete_crd(&c, &noxu).await;
    });
}

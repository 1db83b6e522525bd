//! Garbage collector: `test/e2e/apimachinery/garbage_collector.go`.

use super::*;

fn gc_pod_template(labels: &Value) -> Value {
    json!({
        "metadata": {"labels": labels},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "nginx", "image": "registry.k8s.io/e2e-test-images/agnhost:2.53"}]
        }
    })
}

/// `newOwnerRC`.
fn owner_rc(name: &str, replicas: i32, labels: Value) -> ReplicationController {
    obj(json!({
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": labels, "template": gc_pod_template(&labels)}
    }))
}

/// `getUniqLabel`.
fn uniq_labels(key: &str, value: &str) -> Value {
    json!({key: value})
}

/// `waitForReplicas`: the RC's status reports all its replicas.
async fn wait_for_replicas(rcs: &Api<ReplicationController>, name: &str) {
    eventually(60, "the rc to create its pods", || async {
        let rc = rcs.get(name).await.ok()?;
        let want = rc.spec.as_ref()?.replicas.unwrap_or(1);
        (rc.status.as_ref()?.replicas == want).then_some(())
    })
    .await;
}

fn uid_precondition(uid: &Option<String>) -> Preconditions {
    Preconditions {
        uid: uid.clone(),
        resource_version: None,
    }
}

async fn count<K>(api: &Api<K>) -> usize
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    api.list(&ListParams::default())
        .await
        .expect("list")
        .items
        .len()
}

/// garbage_collector.go "should delete pods created by rc when not orphaning" (Conformance).
#[test]
fn gc_should_delete_pods_created_by_rc_when_not_orphaning() {
    run(|c| async move {
        let ns = namespace(&c, "cf-gc-rc-delete").await;
        let rcs: Api<ReplicationController> = Api::namespaced(c.clone(), &ns);
        let pods: Api<Pod> = Api::namespaced(c.clone(), &ns);
        let rc = rcs
            .create(
                &PostParams::default(),
                &owner_rc("simpletest.rc", 2, uniq_labels("gctest", "delete_pods")),
            )
            .await
            .unwrap();
        eventually(30, "the rc to create some pods", || async {
            (count(&pods).await > 0).then_some(())
        })
        .await;
        let dp = DeleteParams::background().preconditions(uid_precondition(&rc.metadata.uid));
        rcs.delete("simpletest.rc", &dp)
            .await
            .expect("delete the rc");
        eventually(60, "all pods to be garbage collected", || async {
            (count(&rcs).await == 0 && count(&pods).await == 0).then_some(())
        })
        .await;
    });
}

/// garbage_collector.go "should orphan pods created by rc if delete options say so"
/// (Conformance). Upstream then waits 30 s to see the GC delete no pod; here the orphan
/// finalizer's work is checked directly: the RC is only gone after its pods were released.
#[test]
fn gc_should_orphan_pods_created_by_rc_if_delete_options_say_so() {
    run(|c| async move {
        let ns = namespace(&c, "cf-gc-rc-orphan").await;
        let rcs: Api<ReplicationController> = Api::namespaced(c.clone(), &ns);
        let pods: Api<Pod> = Api::namespaced(c.clone(), &ns);
        let rc = rcs
            .create(
                &PostParams::default(),
                &owner_rc("simpletest.rc", 10, uniq_labels("gctest", "orphan_pods")),
            )
            .await
            .unwrap();
        wait_for_replicas(&rcs, "simpletest.rc").await;
        let dp = DeleteParams::orphan().preconditions(uid_precondition(&rc.metadata.uid));
        rcs.delete("simpletest.rc", &dp)
            .await
            .expect("delete the rc");
        eventually(120, "the rc to be deleted", || async {
            (count(&rcs).await == 0).then_some(())
        })
        .await;
        let left = pods.list(&ListParams::default()).await.unwrap().items;
        assert_eq!(left.len(), 10, "expect 10 pods");
        for p in &left {
            assert!(
                p.metadata
                    .owner_references
                    .clone()
                    .unwrap_or_default()
                    .is_empty(),
                "pod still owned: {:?}",
                p.metadata
            );
            assert!(p.metadata.deletion_timestamp.is_none());
        }
    });
}

/// garbage_collector.go "should orphan pods created by rc if deleteOptions.OrphanDependents is
/// nil" (v1 ReplicationControllers orphan by default).
#[test]
fn gc_should_orphan_pods_created_by_rc_if_delete_options_orphan_dependents_is_nil() {
    run(|c| async move {
        let ns = namespace(&c, "cf-gc-rc-nil").await;
        let rcs: Api<ReplicationController> = Api::namespaced(c.clone(), &ns);
        let pods: Api<Pod> = Api::namespaced(c.clone(), &ns);
        let rc = rcs
            .create(
                &PostParams::default(),
                &owner_rc(
                    "simpletest.rc",
                    2,
                    uniq_labels("gctest", "orphan_pods_nil_option"),
                ),
            )
            .await
            .unwrap();
        wait_for_replicas(&rcs, "simpletest.rc").await;
        let dp = DeleteParams::default().preconditions(uid_precondition(&rc.metadata.uid));
        rcs.delete("simpletest.rc", &dp)
            .await
            .expect("delete the rc");
        eventually(60, "the rc to be deleted", || async {
            (count(&rcs).await == 0).then_some(())
        })
        .await;
        let left = pods.list(&ListParams::default()).await.unwrap().items;
        assert_eq!(left.len(), 2, "expect 2 pods");
        for p in &left {
            assert!(
                p.metadata
                    .owner_references
                    .clone()
                    .unwrap_or_default()
                    .is_empty(),
                "pod still owned: {:?}",
                p.metadata
            );
        }
    });
}

/// `newOwnerDeployment`.
fn owner_deployment(name: &str, labels: Value) -> Deployment {
    obj(json!({
        "metadata": {"name": name},
        "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": gc_pod_template(&labels)}
    }))
}

/// garbage_collector.go "should delete RS created by deployment when not orphaning"
/// (Conformance).
#[test]
fn gc_should_delete_rs_created_by_deployment_when_not_orphaning() {
    run(|c| async move {
        let ns = namespace(&c, "cf-gc-deploy-delete").await;
        let deploys: Api<Deployment> = Api::namespaced(c.clone(), &ns);
        let rss: Api<ReplicaSet> = Api::namespaced(c.clone(), &ns);
        let pods: Api<Pod> = Api::namespaced(c.clone(), &ns);
        let d = deploys
            .create(
                &PostParams::default(),
                &owner_deployment("simpletest.deployment", uniq_labels("gctest", "delete_rs")),
            )
            .await
            .unwrap();
        eventually(60, "the Deployment to create a ReplicaSet", || async {
            (count(&rss).await > 0).then_some(())
        })
        .await;
        let dp = DeleteParams::background().preconditions(uid_precondition(&d.metadata.uid));
        deploys
            .delete("simpletest.deployment", &dp)
            .await
            .expect("delete the deployment");
        eventually(60, "all rs and pods to be garbage collected", || async {
            (count(&deploys).await == 0 && count(&rss).await == 0 && count(&pods).await == 0)
                .then_some(())
        })
        .await;
    });
}

/// garbage_collector.go "should orphan RS created by deployment when
/// deleteOptions.PropagationPolicy is Orphan" (Conformance).
#[test]
fn gc_should_orphan_rs_created_by_deployment_when_delete_options_propagation_policy_is_orphan() {
    run(|c| async move {
        let ns = namespace(&c, "cf-gc-deploy-orphan").await;
        let deploys: Api<Deployment> = Api::namespaced(c.clone(), &ns);
        let rss: Api<ReplicaSet> = Api::namespaced(c.clone(), &ns);
        let pods: Api<Pod> = Api::namespaced(c.clone(), &ns);
        let d = deploys
            .create(
                &PostParams::default(),
                &owner_deployment("simpletest.deployment", uniq_labels("gctest", "orphan_rs")),
            )
            .await
            .unwrap();
        let rs = eventually(60, "the Deployment to create a ReplicaSet", || async {
            rss.list(&ListParams::default())
                .await
                .ok()?
                .items
                .into_iter()
                .next()
        })
        .await;
        let rs_name = rs.metadata.name.clone().unwrap();
        let generation = rs.metadata.generation.unwrap_or(0);
        let want = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        eventually(60, ".status.replicas to equal .spec.replicas", || async {
            let rs = rss.get(&rs_name).await.ok()?;
            let st = rs.status?;
            (st.observed_generation.unwrap_or(0) >= generation && st.replicas == want).then_some(())
        })
        .await;
        let dp = DeleteParams::orphan().preconditions(uid_precondition(&d.metadata.uid));
        deploys
            .delete("simpletest.deployment", &dp)
            .await
            .expect("delete the deployment");
        eventually(60, "the Deployment to be deleted", || async {
            (count(&deploys).await == 0).then_some(())
        })
        .await;
        assert_eq!(count(&rss).await, 1, "ReplicaSets left");
        assert_eq!(count(&pods).await, 2, "Pods left");
        for rs in rss.list(&ListParams::default()).await.unwrap().items {
            let controller = rs
                .metadata
                .owner_references
                .unwrap_or_default()
                .into_iter()
                .find(|o| o.controller == Some(true));
            assert!(
                controller.is_none(),
                "Found ReplicaSet with non nil ownerRef {controller:?}"
            );
        }
    });
}

/// garbage_collector.go "should keep the rc around until all its pods are deleted if the
/// deleteOptions says so" (Conformance): foreground deletion.
#[test]
fn gc_should_keep_the_rc_around_until_all_its_pods_are_deleted_if_the_delete_options_says_so() {
    run(|c| async move {
        let ns = namespace(&c, "cf-gc-rc-foreground").await;
        let rcs: Api<ReplicationController> = Api::namespaced(c.clone(), &ns);
        let pods: Api<Pod> = Api::namespaced(c.clone(), &ns);
        let rc = rcs
            .create(
                &PostParams::default(),
                &owner_rc(
                    "simpletest.rc",
                    10,
                    uniq_labels("gctest", "delete_pods_foreground"),
                ),
            )
            .await
            .unwrap();
        wait_for_replicas(&rcs, "simpletest.rc").await;
        let dp = DeleteParams::foreground().preconditions(uid_precondition(&rc.metadata.uid));
        rcs.delete("simpletest.rc", &dp)
            .await
            .expect("delete the rc");
        eventually(60, "the rc to be deleted", || async {
            rcs.get_opt("simpletest.rc")
                .await
                .ok()?
                .is_none()
                .then_some(())
        })
        .await;
        let left = pods.list(&ListParams::default()).await.unwrap().items;
        assert!(left.is_empty(), "expected no pods, got {}", left.len());
    });
}

/// garbage_collector.go "should not delete dependents that have both valid owner and owner
/// that's waiting for dependents to be deleted" (Conformance).
#[test]
fn gc_should_not_delete_dependents_that_have_both_valid_owner_and_owner_thats_waiting_for_dependents_to_be_deleted(
) {
    run(|c| async move {
        let ns = namespace(&c, "cf-gc-two-owners").await;
        let rcs: Api<ReplicationController> = Api::namespaced(c.clone(), &ns);
        let pods: Api<Pod> = Api::namespaced(c.clone(), &ns);
        let replicas = 10;
        let half = replicas as usize / 2;
        let rc1 = rcs
            .create(
                &PostParams::default(),
                &owner_rc(
                    "simpletest-rc-to-be-deleted",
                    replicas,
                    uniq_labels("gctest_d", "valid_and_pending_owners_d"),
                ),
            )
            .await
            .unwrap();
        let rc2 = rcs
            .create(
                &PostParams::default(),
                &owner_rc(
                    "simpletest-rc-to-stay",
                    0,
                    uniq_labels("gctest_s", "valid_and_pending_owners_s"),
                ),
            )
            .await
            .unwrap();
        wait_for_replicas(&rcs, "simpletest-rc-to-be-deleted").await;
        let all = pods.list(&ListParams::default()).await.unwrap().items;
        let patch = json!({"metadata": {"ownerReferences": [{
            "apiVersion": "v1", "kind": "ReplicationController",
            "name": rc2.metadata.name, "uid": rc2.metadata.uid
        }]}});
        for p in all.iter().take(half) {
            pods.patch(
                p.metadata.name.as_deref().unwrap(),
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )
            .await
            .expect("strategic merge patch of ownerReferences");
        }
        let dp = DeleteParams::foreground().preconditions(uid_precondition(&rc1.metadata.uid));
        rcs.delete("simpletest-rc-to-be-deleted", &dp)
            .await
            .expect("delete the rc");
        eventually(90, "the rc to be deleted", || async {
            rcs.get_opt("simpletest-rc-to-be-deleted")
                .await
                .ok()?
                .is_none()
                .then_some(())
        })
        .await;
        let left = pods.list(&ListParams::default()).await.unwrap().items;
        assert_eq!(left.len(), half, "expected {half} pods");
        for p in &left {
            assert!(p.metadata.deletion_timestamp.is_none(), "{:?}", p.metadata);
            assert_eq!(
                p.metadata.owner_references.as_ref().map(Vec::len),
                Some(1),
                "{:?}",
                p.metadata
            );
        }
    });
}

/// garbage_collector.go "should not be blocked by dependency circle" (Conformance).
#[test]
fn gc_should_not_be_blocked_by_dependency_circle() {
    run(|c| async move {
        let ns = namespace(&c, "cf-gc-circle").await;
        let pods: Api<Pod> = Api::namespaced(c.clone(), &ns);
        let mut uids = Vec::new();
        for name in ["pod1", "pod2", "pod3"] {
            let pod: Pod = obj(json!({
                "metadata": {"name": name},
                "spec": {"containers": [{"name": "nginx", "image": "registry.k8s.io/e2e-test-images/agnhost:2.53"}]}
            }));
            let p = pods.create(&PostParams::default(), &pod).await.unwrap();
            uids.push(p.metadata.uid.unwrap());
        }
        let add_ref = |name: &str, uid: &str| {
            json!({"metadata": {"ownerReferences": [{
                "apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid,
                "controller": true, "blockOwnerDeletion": true
            }]}})
        };
        let pp = PatchParams::default();
        pods.patch("pod1", &pp, &Patch::Strategic(&add_ref("pod3", &uids[2])))
            .await
            .unwrap();
        pods.patch("pod2", &pp, &Patch::Strategic(&add_ref("pod1", &uids[0])))
            .await
            .unwrap();
        pods.patch("pod3", &pp, &Patch::Strategic(&add_ref("pod2", &uids[1])))
            .await
            .unwrap();
        let dp = DeleteParams::foreground().preconditions(Preconditions {
            uid: Some(uids[0].clone()),
            resource_version: None,
        });
        pods.delete("pod1", &dp).await.expect("delete pod1");
        eventually(90, "all pods to be deleted", || async {
            (count(&pods).await == 0).then_some(())
        })
        .await;
    });
}

/// garbage_collector.go "should delete jobs and pods created by cronjob": upstream's
/// `newCronJob` (every minute, one busybox pod sleeping), deleted in the background once it
/// has a Job; the CronJob leaves neither Jobs nor pods behind.
#[test]
fn gc_should_delete_jobs_and_pods_created_by_cronjob() {
    use k8s_openapi::api::batch::v1::{CronJob, Job};
    run(|c| async move {
        let ns = namespace(&c, "cf-gc-cronjob").await;
        let cronjobs: Api<CronJob> = Api::namespaced(c.clone(), &ns);
        let jobs: Api<Job> = Api::namespaced(c.clone(), &ns);
        let pods: Api<Pod> = Api::namespaced(c.clone(), &ns);
        let cronjob: CronJob = obj(json!({
            "metadata": {"name": "simple"},
            "spec": {
                "schedule": "*/1 * * * ?",
                "jobTemplate": {"spec": {
                    "parallelism": 1, "completions": 1,
                    "template": {"spec": {
                        "restartPolicy": "OnFailure",
                        "terminationGracePeriodSeconds": 0,
                        "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "300"]}]
                    }}
                }}
            }
        }));
        cronjobs
            .create(&PostParams::default(), &cronjob)
            .await
            .expect("create the cronjob");
        // Upstream polls for two minutes: the first run is at the next whole minute.
        eventually(120, "the CronJob to create a Job", || async {
            (count(&jobs).await > 0).then_some(())
        })
        .await;
        cronjobs
            .delete("simple", &DeleteParams::background())
            .await
            .expect("delete the cronjob");
        eventually(30, "no CronJob, Job or pod left", || async {
            (count(&cronjobs).await == 0 && count(&jobs).await == 0 && count(&pods).await == 0)
                .then_some(())
        })
        .await;
    });
}

// ---------------------------------------------------------------------------------------------
// Custom resources

/// A custom resource of `crd` in its one version, owned by `owner` when given.
fn custom_resource(crd: &Value, name: &str, owner: Option<&Value>) -> String {
    let api_version = format!("{}/v1beta1", crd["spec"]["group"].as_str().unwrap());
    let kind = &crd["spec"]["names"]["kind"];
    let mut o = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}});
    if let Some(owner) = owner {
        o["metadata"]["ownerReferences"] = json!([{
            "uid": owner["metadata"]["uid"], "apiVersion": api_version, "kind": kind,
            "name": owner["metadata"]["name"],
        }]);
    }
    o.to_string()
}

async fn create_cr(c: &Client, crd: &Value, body: &str, what: &str) -> Value {
    let r = raw(
        c,
        Method::POST,
        &cr_path(crd, "v1beta1", None),
        &[("content-type", "application/json")],
        body,
    )
    .await;
    ok(&r, what)
}

async fn delete_cr(c: &Client, crd: &Value, name: &str, policy: &str) {
    let r = raw(
        c,
        Method::DELETE,
        &format!("{}/{name}", cr_path(crd, "v1beta1", None)),
        &[("content-type", "application/json")],
        &json!({"propagationPolicy": policy}).to_string(),
    )
    .await;
    ok(&r, &format!("failed to delete resource {name}"));
}

async fn cr_exists(c: &Client, crd: &Value, name: &str) -> bool {
    let r = get(c, &format!("{}/{name}", cr_path(crd, "v1beta1", None))).await;
    match r.status {
        StatusCode::NOT_FOUND => false,
        s if s.is_success() => true,
        s => panic!("unexpected error getting {name}: {s} {}", r.body),
    }
}

/// garbage_collector.go "should support cascading deletion of custom resources": a
/// background delete of a custom owner deletes its custom dependent. The canary deleted in
/// the foreground is upstream's signal that the collector knows the new kind.
#[test]
fn gc_should_support_cascading_deletion_of_custom_resources() {
    run(|c| async move {
        let definition = create_crd(&c, &new_random_name_crd("Cluster")).await;
        let owner_name = generate_name("owner");
        let owner = create_cr(
            &c,
            &definition,
            &custom_resource(&definition, &owner_name, None),
            "failed to create owner resource",
        )
        .await;
        let dependent_name = generate_name("dependent");
        create_cr(
            &c,
            &definition,
            &custom_resource(&definition, &dependent_name, Some(&owner)),
            "failed to create dependent resource",
        )
        .await;
        delete_cr(&c, &definition, &owner_name, "Background").await;

        let canary_name = generate_name("canary");
        create_cr(
            &c,
            &definition,
            &custom_resource(&definition, &canary_name, None),
            "failed to create canary resource",
        )
        .await;
        delete_cr(&c, &definition, &canary_name, "Foreground").await;
        eventually(180, "canary foreground finalization", || async {
            (!cr_exists(&c, &definition, &canary_name).await).then_some(())
        })
        .await;
        eventually(60, "the dependent resource to be deleted", || async {
            (!cr_exists(&c, &definition, &dependent_name).await).then_some(())
        })
        .await;
        assert!(
            !cr_exists(&c, &definition, &owner_name).await,
            "expected owner resource {owner_name} to be deleted"
        );
        delete_crd(&c, &definition).await;
    });
}

/// garbage_collector.go "should support orphan deletion of custom resources": an orphan
/// delete of a custom owner removes the owner and leaves its dependent. Instead of
/// upstream's 30 s of `Consistently`, the dependent must have lost its owner reference (the
/// orphan finalizer's work, which ends before the owner goes) and still exist after a
/// background-deleted sentinel owner's own dependent was collected (the collector has acted
/// since).
#[test]
fn gc_should_support_orphan_deletion_of_custom_resources() {
    run(|c| async move {
        let definition = create_crd(&c, &new_random_name_crd("Cluster")).await;
        let owner_name = generate_name("owner");
        let owner = create_cr(
            &c,
            &definition,
            &custom_resource(&definition, &owner_name, None),
            "failed to create owner resource",
        )
        .await;
        let dependent_name = generate_name("dependent");
        create_cr(
            &c,
            &definition,
            &custom_resource(&definition, &dependent_name, Some(&owner)),
            "failed to create dependent resource",
        )
        .await;
        delete_cr(&c, &definition, &owner_name, "Orphan").await;
        eventually(120, "the owner to be deleted", || async {
            (!cr_exists(&c, &definition, &owner_name).await).then_some(())
        })
        .await;

        // Sentinel: a background delete whose dependent the collector must remove.
        let sentinel_owner = create_cr(
            &c,
            &definition,
            &custom_resource(&definition, &generate_name("sentinel-owner"), None),
            "failed to create sentinel owner",
        )
        .await;
        let sentinel_dep = generate_name("sentinel-dependent");
        create_cr(
            &c,
            &definition,
            &custom_resource(&definition, &sentinel_dep, Some(&sentinel_owner)),
            "failed to create sentinel dependent",
        )
        .await;
        delete_cr(
            &c,
            &definition,
            sentinel_owner["metadata"]["name"].as_str().unwrap(),
            "Background",
        )
        .await;
        eventually(60, "the sentinel dependent to be collected", || async {
            (!cr_exists(&c, &definition, &sentinel_dep).await).then_some(())
        })
        .await;

        let dependent = ok(
            &get(
                &c,
                &format!("{}/{dependent_name}", cr_path(&definition, "v1beta1", None)),
            )
            .await,
            "the garbage collector mistakenly deleted the dependent crd",
        );
        assert!(
            dependent["metadata"]["ownerReferences"]
                .as_array()
                .is_none_or(|r| r.is_empty()),
            "the orphaned dependent still names its owner: {dependent}"
        );
        delete_crd(&c, &definition).await;
    });
}

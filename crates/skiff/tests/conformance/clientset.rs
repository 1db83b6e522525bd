//! Generated clientset: `test/e2e/apimachinery/generated_clientset.go`.

use super::*;

/// generated_clientset.go "should create v1 cronJobs, delete cronJobs, watch cronJobs".
#[test]
fn generated_clientset_should_create_v1_cronjobs_delete_cronjobs_watch_cronjobs() {
    run(|c| async move {
        use k8s_openapi::api::batch::v1::CronJob;
        let ns = namespace(&c, "cf-clientset-cronjob").await;
        let api: Api<CronJob> = Api::namespaced(c, &ns);
        let value = format!("{}", std::process::id());
        let selector = format!("time={value}");
        let cronjob: CronJob = obj(json!({
            "metadata": {"name": "cronjob-cf", "labels": {"time": value}},
            "spec": {
                "schedule": "*/1 * * * ?",
                "concurrencyPolicy": "Allow",
                "jobTemplate": {"spec": {
                    "parallelism": 1,
                    "completions": 1,
                    "template": {"spec": {
                        "restartPolicy": "OnFailure",
                        "volumes": [{"name": "data", "emptyDir": {}}],
                        "containers": [{
                            "name": "c",
                            "image": "registry.k8s.io/e2e-test-images/busybox:1.36.1-1",
                            "volumeMounts": [{"mountPath": "/data", "name": "data"}]
                        }]
                    }}
                }}
            }
        }));
        let list = api
            .list(&ListParams::default().labels(&selector))
            .await
            .unwrap();
        assert!(list.items.is_empty());
        let rv = list.metadata.resource_version.unwrap();
        let mut w = api
            .watch(&WatchParams::default().labels(&selector), &rv)
            .await
            .expect("set up watch")
            .boxed();
        let created = api
            .create(&PostParams::default(), &cronjob)
            .await
            .expect("create cronJob");
        let at = created.metadata.resource_version.clone().unwrap();
        let list = api
            .list(&ListParams::default().labels(&selector).at(&at))
            .await
            .unwrap();
        assert_eq!(list.items.len(), 1, "the cronJob is in kubernetes");
        loop {
            let ev = tokio::time::timeout(Duration::from_secs(30), w.next())
                .await
                .expect("observe cronJob creation")
                .expect("watch closed unexpectedly")
                .expect("watch error");
            match ev {
                WatchEvent::Added(_) => break,
                WatchEvent::Bookmark(_) => continue,
                other => panic!("expected ADDED, got {other:?}"),
            }
        }
        api.delete("cronjob-cf", &DeleteParams::background())
            .await
            .expect("delete cronJob");
        let list = api
            .list(&ListParams::default().labels(&selector))
            .await
            .unwrap();
        assert!(
            list.items.is_empty(),
            "the cronJob is still listed after its delete"
        );
    });
}

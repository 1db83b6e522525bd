//! Watchers: `test/e2e/apimachinery/watch.go`.

use super::*;

const WATCH_LABEL: &str = "watch-this-configmap";

type Events = Pin<Box<dyn Stream<Item = kube::Result<WatchEvent<ConfigMap>>> + Send>>;

/// `watchConfigMaps`: a watch on the namespace's configmaps whose label is one of `values`.
async fn watch_configmaps(api: &Api<ConfigMap>, rv: &str, values: &[&str]) -> Events {
    let selector = format!("{WATCH_LABEL} in ({})", values.join(","));
    let wp = WatchParams::default().labels(&selector).disable_bookmarks();
    api.watch(&wp, rv)
        .await
        .unwrap_or_else(|e| panic!("watch {selector} from {rv:?}: {e}"))
        .boxed()
}

#[derive(Debug, PartialEq, Clone, Copy)]
enum Kind {
    Added,
    Modified,
    Deleted,
}

/// The next event of the watch (bookmarks skipped), within a minute as upstream's `expectEvent`.
async fn next_event(w: &mut Events) -> (Kind, ConfigMap) {
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(60), w.next())
            .await
            .expect("timed out waiting for a watch notification")
            .expect("watch closed unexpectedly")
            .expect("watch stream error");
        return match ev {
            WatchEvent::Added(o) => (Kind::Added, o),
            WatchEvent::Modified(o) => (Kind::Modified, o),
            WatchEvent::Deleted(o) => (Kind::Deleted, o),
            WatchEvent::Bookmark(_) => continue,
            WatchEvent::Error(e) => panic!("watch error event: {e:?}"),
        };
    }
}

/// `expectEvent`: the next notification has this type and (when given) exactly this object.
/// Taking the *next* one rather than the next matching one also proves `expectNoEvent` for
/// everything in between.
async fn expect_event(w: &mut Events, kind: Kind, want: Option<&ConfigMap>) -> ConfigMap {
    let (got_kind, got) = next_event(w).await;
    assert_eq!(
        got_kind, kind,
        "unexpected notification: {got_kind:?} {got:?}"
    );
    if let Some(want) = want {
        assert_eq!(&got, want, "{kind:?} notification carries another object");
    }
    got
}

/// `updateConfigMap`: read, mutate, write back (retrying on conflict).
async fn update_configmap(
    api: &Api<ConfigMap>,
    name: &str,
    mutate: impl Fn(&mut ConfigMap),
) -> ConfigMap {
    for _ in 0..5 {
        let mut cm = api.get(name).await.expect("get configmap");
        mutate(&mut cm);
        match api.replace(name, &PostParams::default(), &cm).await {
            Ok(cm) => return cm,
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => panic!("update configmap {name}: {e}"),
        }
    }
    panic!("update configmap {name}: conflicts five times");
}

fn set_data(cm: &mut ConfigMap, key: &str, value: &str) {
    cm.data
        .get_or_insert_with(Default::default)
        .insert(key.into(), value.into());
}

fn labelled_configmap(name: &str, value: &str) -> ConfigMap {
    obj(json!({"metadata": {"name": name, "labels": {WATCH_LABEL: value}}}))
}

/// watch.go "should observe add, update, and delete watch notifications on configmaps"
/// (Conformance): three label-selected watchers each see exactly their configmaps' events.
#[test]
fn watch_should_observe_add_update_and_delete_watch_notifications_on_configmaps() {
    run(|c| async move {
        let ns = namespace(&c, "cf-watch-multi").await;
        let api: Api<ConfigMap> = Api::namespaced(c, &ns);
        let (a, b) = ("multiple-watchers-A", "multiple-watchers-B");
        let mut watch_a = watch_configmaps(&api, "", &[a]).await;
        let mut watch_b = watch_configmaps(&api, "", &[b]).await;
        let mut watch_ab = watch_configmaps(&api, "", &[a, b]).await;
        let pp = PostParams::default();

        let cm_a = api
            .create(&pp, &labelled_configmap("e2e-watch-test-configmap-a", a))
            .await
            .unwrap();
        expect_event(&mut watch_a, Kind::Added, Some(&cm_a)).await;
        expect_event(&mut watch_ab, Kind::Added, Some(&cm_a)).await;

        let cm_a = update_configmap(&api, "e2e-watch-test-configmap-a", |cm| {
            set_data(cm, "mutation", "1")
        })
        .await;
        expect_event(&mut watch_a, Kind::Modified, Some(&cm_a)).await;
        expect_event(&mut watch_ab, Kind::Modified, Some(&cm_a)).await;

        let cm_a = update_configmap(&api, "e2e-watch-test-configmap-a", |cm| {
            set_data(cm, "mutation", "2")
        })
        .await;
        expect_event(&mut watch_a, Kind::Modified, Some(&cm_a)).await;
        expect_event(&mut watch_ab, Kind::Modified, Some(&cm_a)).await;

        api.delete("e2e-watch-test-configmap-a", &DeleteParams::default())
            .await
            .unwrap();
        expect_event(&mut watch_a, Kind::Deleted, None).await;
        expect_event(&mut watch_ab, Kind::Deleted, None).await;

        let cm_b = api
            .create(&pp, &labelled_configmap("e2e-watch-test-configmap-b", b))
            .await
            .unwrap();
        // watch B saw nothing of A: its first notification is B's.
        expect_event(&mut watch_b, Kind::Added, Some(&cm_b)).await;
        expect_event(&mut watch_ab, Kind::Added, Some(&cm_b)).await;

        api.delete("e2e-watch-test-configmap-b", &DeleteParams::default())
            .await
            .unwrap();
        expect_event(&mut watch_b, Kind::Deleted, None).await;
        expect_event(&mut watch_ab, Kind::Deleted, None).await;

        // Sentinel for `expectNoEvent(watchA, ..., B)`: A's next notification is this one.
        let sentinel = api
            .create(&pp, &labelled_configmap("e2e-watch-test-sentinel", a))
            .await
            .unwrap();
        expect_event(&mut watch_a, Kind::Added, Some(&sentinel)).await;
    });
}

/// watch.go "should be able to start watching from a specific resource version" (Conformance):
/// a watch from the first update's resourceVersion sees only the later changes.
#[test]
fn watch_should_be_able_to_start_watching_from_a_specific_resource_version() {
    run(|c| async move {
        let ns = namespace(&c, "cf-watch-from-rv").await;
        let api: Api<ConfigMap> = Api::namespaced(c, &ns);
        let name = "e2e-watch-test-resource-version";
        let label = "from-resource-version";
        api.create(&PostParams::default(), &labelled_configmap(name, label))
            .await
            .unwrap();
        let first = update_configmap(&api, name, |cm| set_data(cm, "mutation", "1")).await;
        let second = update_configmap(&api, name, |cm| set_data(cm, "mutation", "2")).await;
        api.delete(name, &DeleteParams::default()).await.unwrap();

        let rv = first.metadata.resource_version.clone().unwrap();
        let mut w = watch_configmaps(&api, &rv, &[label]).await;
        expect_event(&mut w, Kind::Modified, Some(&second)).await;
        expect_event(&mut w, Kind::Deleted, None).await;
    });
}

/// watch.go "should be able to restart watching from the last resource version observed by the
/// previous watch" (Conformance).
#[test]
fn watch_should_be_able_to_restart_watching_from_the_last_resource_version_observed_by_the_previous_watch(
) {
    run(|c| async move {
        let ns = namespace(&c, "cf-watch-restart").await;
        let api: Api<ConfigMap> = Api::namespaced(c, &ns);
        let name = "e2e-watch-test-watch-closed";
        let label = "watch-closed-and-restarted";
        let mut broken = watch_configmaps(&api, "", &[label]).await;
        let created = api
            .create(&PostParams::default(), &labelled_configmap(name, label))
            .await
            .unwrap();
        update_configmap(&api, name, |cm| set_data(cm, "mutation", "1")).await;

        expect_event(&mut broken, Kind::Added, Some(&created)).await;
        let last = expect_event(&mut broken, Kind::Modified, None).await;
        drop(broken);

        let second = update_configmap(&api, name, |cm| set_data(cm, "mutation", "2")).await;
        let rv = last.metadata.resource_version.clone().unwrap();
        let mut restarted = watch_configmaps(&api, &rv, &[label]).await;
        api.delete(name, &DeleteParams::default()).await.unwrap();

        expect_event(&mut restarted, Kind::Modified, Some(&second)).await;
        expect_event(&mut restarted, Kind::Deleted, None).await;
    });
}

/// watch.go "should observe an object deletion if it stops meeting the requirements of the
/// selector" (Conformance).
#[test]
fn watch_should_observe_an_object_deletion_if_it_stops_meeting_the_requirements_of_the_selector() {
    run(|c| async move {
        let ns = namespace(&c, "cf-watch-label").await;
        let api: Api<ConfigMap> = Api::namespaced(c, &ns);
        let name = "e2e-watch-test-label-changed";
        let label = "label-changed-and-restored";
        let mut w = watch_configmaps(&api, "", &[label]).await;
        let created = api
            .create(&PostParams::default(), &labelled_configmap(name, label))
            .await
            .unwrap();
        let first = update_configmap(&api, name, |cm| set_data(cm, "mutation", "1")).await;
        update_configmap(&api, name, |cm| {
            cm.metadata
                .labels
                .get_or_insert_with(Default::default)
                .insert(WATCH_LABEL.into(), "wrong-value".into());
        })
        .await;
        expect_event(&mut w, Kind::Added, Some(&created)).await;
        expect_event(&mut w, Kind::Modified, Some(&first)).await;
        expect_event(&mut w, Kind::Deleted, None).await;

        // Not seen: the object no longer matches. The next notification must be the restore.
        update_configmap(&api, name, |cm| set_data(cm, "mutation", "2")).await;
        let restored = update_configmap(&api, name, |cm| {
            cm.metadata
                .labels
                .get_or_insert_with(Default::default)
                .insert(WATCH_LABEL.into(), label.into());
        })
        .await;
        let third = update_configmap(&api, name, |cm| set_data(cm, "mutation", "3")).await;
        api.delete(name, &DeleteParams::default()).await.unwrap();

        expect_event(&mut w, Kind::Added, Some(&restored)).await;
        expect_event(&mut w, Kind::Modified, Some(&third)).await;
        expect_event(&mut w, Kind::Deleted, None).await;
    });
}

/// watch.go "should receive events on concurrent watches in same order" (Conformance): 100
/// watches, each started at the resourceVersion of the previous event, agree on every event
/// while a writer creates, updates and deletes configmaps every 5 ms.
#[test]
fn watch_should_receive_events_on_concurrent_watches_in_same_order() {
    run(|c| async move {
        let ns = namespace(&c, "cf-watch-order").await;
        let api: Api<ConfigMap> = Api::namespaced(c, &ns);
        let list = api.list(&ListParams::default()).await.unwrap();
        let mut rv = list.metadata.resource_version.unwrap();

        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let producer = tokio::spawn(produce_configmap_events(api.clone(), stop.clone()));

        let wp = WatchParams::default().disable_bookmarks();
        let mut watches = Vec::new();
        for _ in 0..100 {
            watches.push(api.watch(&wp, &rv).await.expect("watch").boxed());
            rv = next_rv(&mut watches[0]).await;
            for w in &mut watches[1..] {
                let got = next_rv(w).await;
                assert_eq!(got, rv, "resource version mismatch");
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        producer.await.expect("producer");
    });
}

async fn next_rv(w: &mut Events) -> String {
    let (_, cm) = tokio::time::timeout(Duration::from_secs(10), next_event(w))
        .await
        .expect("timed out waiting for watch event");
    cm.metadata.resource_version.expect("resourceVersion")
}

/// `produceConfigMapEvents`: a random create, update or delete every 5 ms until stopped.
async fn produce_configmap_events(
    api: Api<ConfigMap>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut random = move |n: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % n as u64) as usize
    };
    let mut existing: Vec<usize> = Vec::new();
    let mut i = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        tick.tick().await;
        let op = if existing.is_empty() { 0 } else { random(3) };
        match op {
            0 => {
                let cm: ConfigMap = obj(json!({"metadata": {"name": format!("cm-{i}")}}));
                api.create(&PostParams::default(), &cm)
                    .await
                    .expect("create configmap");
                existing.push(i);
                i += 1;
            }
            1 => {
                let name = format!("cm-{}", existing[random(existing.len())]);
                let cm: ConfigMap = obj(json!({"metadata": {"name": name}}));
                api.replace(&name, &PostParams::default(), &cm)
                    .await
                    .expect("update configmap");
            }
            _ => {
                let idx = random(existing.len());
                let name = format!("cm-{}", existing.remove(idx));
                api.delete(&name, &DeleteParams::default())
                    .await
                    .expect("delete configmap");
            }
        }
    }
}

//! The harness against a fake API server (a tower service answering lists and holding
//! watches open): what gets reconciled at start, for absent objects, and at resync.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::client::Body;
use serde_json::json;
use skiff_reconcile::{Backoff, Config, Harness, ObjectKey, Outcome};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A client whose lists return `secrets` and `configmaps` (names in namespace `ns`) and
/// whose watches never send anything.
fn fake_client(secrets: &[&str], configmaps: &[&str]) -> kube::Client {
    let item = |kind: &str, name: &str| {
        json!({"apiVersion": "v1", "kind": kind,
               "metadata": {"name": name, "namespace": "ns", "uid": name, "resourceVersion": "1"}})
    };
    let secrets: Vec<_> = secrets.iter().map(|n| item("Secret", n)).collect();
    let configmaps: Vec<_> = configmaps.iter().map(|n| item("ConfigMap", n)).collect();
    let service = tower::service_fn(move |req: http::Request<Body>| {
        let query = req.uri().query().unwrap_or_default().to_string();
        let path = req.uri().path().to_string();
        let (secrets, configmaps) = (secrets.clone(), configmaps.clone());
        async move {
            if query.contains("watch=true") {
                // Held open: the watch has nothing to say.
                futures::future::pending::<()>().await;
            }
            let (kind, items) = if path.ends_with("/secrets") {
                ("SecretList", secrets)
            } else {
                ("ConfigMapList", configmaps)
            };
            let list = json!({"apiVersion": "v1", "kind": kind,
                              "metadata": {"resourceVersion": "1"}, "items": items});
            let body = serde_json::to_vec(&list).unwrap_or_default();
            Ok::<_, Infallible>(http::Response::new(Body::from(body)))
        }
    });
    kube::Client::new(service, "default")
}

type Seen = Arc<Mutex<BTreeMap<String, usize>>>;

fn count(seen: &Seen, key: &str) -> usize {
    seen.lock().unwrap().get(key).copied().unwrap_or(0)
}

fn config(resync: Option<Duration>) -> Config {
    Config {
        workers: 2,
        resync,
        backoff: Backoff::default(),
    }
}

#[tokio::test(start_paused = true)]
async fn run_keys_reconciles_the_key_of_an_absent_object_found_through_its_leftovers() {
    // The Secret "gone" was deleted while the controller was down; its ConfigMap is left.
    let client = fake_client(&["kept"], &["kept", "gone"]);
    let seen: Seen = Arc::default();
    let mut controller = Harness::new("test", client)
        .config(config(None))
        .watch::<Secret>();
    let secrets = controller.store();
    let controller = controller.watches(|cm: &ConfigMap| ObjectKey::of(&cm.metadata));
    let s = seen.clone();
    tokio::spawn(controller.run_keys(
        move |key: ObjectKey, _ctx: Arc<()>| {
            let present = secrets.get(&key.to_ref()).is_some();
            *s.lock()
                .unwrap()
                .entry(format!("{key} present={present}"))
                .or_default() += 1;
            async { Ok::<_, String>(Outcome::Done) }
        },
        Arc::new(()),
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(count(&seen, "ns/kept present=true"), 1);
    assert_eq!(count(&seen, "ns/gone present=false"), 1);
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn run_reconciles_present_objects_only_and_again_at_every_resync() {
    let client = fake_client(&["a", "b"], &["gone"]);
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let controller = Harness::new("test", client)
        .config(config(Some(Duration::from_secs(10))))
        .watch::<Secret>()
        .watches(|cm: &ConfigMap| ObjectKey::of(&cm.metadata));
    tokio::spawn(controller.run(
        move |secret: Arc<Secret>, _ctx: Arc<()>| {
            let name = secret.metadata.name.clone().unwrap_or_default();
            *s.lock().unwrap().entry(name).or_default() += 1;
            async { Ok::<_, String>(Outcome::Done) }
        },
        Arc::new(()),
    ));
    tokio::time::sleep(Duration::from_secs(25)).await;
    assert_eq!(count(&seen, "a"), 3, "start and two resyncs");
    assert_eq!(count(&seen, "b"), 3);
    assert_eq!(count(&seen, "gone"), 0);
}

#[tokio::test(start_paused = true)]
async fn an_object_less_key_is_reconciled_at_start_and_on_changes_of_its_triggers() {
    let client = fake_client(&["a"], &[]);
    let calls = Arc::new(Mutex::new(0));
    let c = calls.clone();
    let controller = Harness::new("test", client)
        .config(config(Some(Duration::from_secs(60))))
        .keys()
        .key(ObjectKey::named("everything"))
        .triggers::<Secret>();
    tokio::spawn(controller.run_keys(
        move |key: ObjectKey, _ctx: Arc<()>| {
            assert_eq!(key, ObjectKey::named("everything"));
            *c.lock().unwrap() += 1;
            async { Ok::<_, String>(Outcome::Done) }
        },
        Arc::new(()),
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The initial list's event and the start's full queueing coalesce into one reconcile
    // or two, never one per object.
    let first = *calls.lock().unwrap();
    assert!((1..=2).contains(&first), "{first}");
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(*calls.lock().unwrap(), first + 1, "resync");
}

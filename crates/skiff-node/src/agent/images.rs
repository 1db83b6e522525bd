//! The kubelet's image manager: makes a container's image present as its
//! `imagePullPolicy` says, pulling each image once however many pods ask for it at the same
//! time, and records the `Pulling`, `Pulled` and `Failed` events upstream records.

use super::events::{self, Recorder};
use super::plan::Waiting;
use crate::image::{
    auth, normalize_reference, Credentials, ImageRecord, ImageStore, PullError, Pulled, Puller,
    Reference,
};
use futures::future::{BoxFuture, FutureExt, Shared};
use k8s_openapi::api::core::v1::{Container, Pod, Secret};
use kube::api::Api;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `imagePullPolicy`, defaulted as the API server does when unset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Resolve the reference in the registry every time the container starts.
    Always,
    /// Pull only when the image is not in the store.
    IfNotPresent,
    /// Never pull; a missing image is `ErrImageNeverPull`.
    Never,
}

/// The container's pull policy: as written, else `Always` for `:latest` or untagged
/// references and `IfNotPresent` otherwise (upstream's defaulting).
pub fn pull_policy(c: &Container) -> PullPolicy {
    match c.image_pull_policy.as_deref() {
        Some("Always") => PullPolicy::Always,
        Some("Never") => PullPolicy::Never,
        Some("IfNotPresent") => PullPolicy::IfNotPresent,
        _ => {
            let image = c.image.as_deref().unwrap_or_default();
            let normalized = normalize_reference(image);
            if !normalized.contains('@') && normalized.ends_with(":latest") {
                PullPolicy::Always
            } else {
                PullPolicy::IfNotPresent
            }
        }
    }
}

/// Waiting reason of a failed pull.
pub const ERR_IMAGE_PULL: &str = "ErrImagePull";
/// Waiting reason while a failed pull backs off.
pub const IMAGE_PULL_BACK_OFF: &str = "ImagePullBackOff";
/// Waiting reason of a missing image under `Never`.
pub const ERR_IMAGE_NEVER_PULL: &str = "ErrImageNeverPull";
/// Waiting reason of a reference that cannot be parsed.
pub const INVALID_IMAGE_NAME: &str = "InvalidImageName";

type PullResult = Result<Pulled, Arc<PullError>>;

/// Images of the node: the store plus the registry puller, with pulls in flight shared.
pub(crate) struct ImageManager {
    pub(crate) store: ImageStore,
    puller: Puller,
    /// Pulls in flight by (normalized reference, user): a second pod asking for the same
    /// image awaits the first pod's pull instead of starting another.
    in_flight: Mutex<HashMap<String, Shared<BoxFuture<'static, PullResult>>>>,
}

impl ImageManager {
    pub(crate) fn new(store: ImageStore, puller: Puller) -> Self {
        Self {
            store,
            puller,
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    /// Makes the image of container `c` present according to its pull policy and returns
    /// it, or the waiting reason the container shows instead. Events go to `recorder` with
    /// upstream's reasons and wording.
    pub(crate) async fn ensure(
        &self,
        client: &kube::Client,
        pod: &Pod,
        c: &Container,
        recorder: &Recorder,
    ) -> Result<ImageRecord, Waiting> {
        let image = c.image.clone().unwrap_or_default();
        let object = events::container_ref(pod, Some(&c.name));
        let reference = match Reference::parse(&image) {
            Ok(r) => r,
            Err(e) => {
                let message =
                    format!("Failed to apply default image tag {image:?}: couldn't parse image name {image:?}: {e}");
                recorder.event(object, events::WARNING, "InspectFailed", message.clone());
                return Err(waiting(INVALID_IMAGE_NAME, message));
            }
        };
        let policy = pull_policy(c);
        let present = self.store.get(&image).ok();
        match (policy, present) {
            (PullPolicy::IfNotPresent | PullPolicy::Never, Some(record)) => {
                recorder.event(
                    object,
                    events::NORMAL,
                    "Pulled",
                    format!("Container image {image:?} already present on machine"),
                );
                return Ok(record);
            }
            (PullPolicy::Never, None) => {
                let message =
                    format!("Container image {image:?} is not present with pull policy of Never");
                recorder.event(
                    object,
                    events::WARNING,
                    ERR_IMAGE_NEVER_PULL,
                    message.clone(),
                );
                return Err(waiting(ERR_IMAGE_NEVER_PULL, message));
            }
            _ => {}
        }
        recorder.event(
            object.clone(),
            events::NORMAL,
            "Pulling",
            format!("Pulling image {image:?}"),
        );
        let credentials =
            auth::credentials_for(&reference.registry, &pull_secrets(client, pod).await);
        let started = Instant::now();
        match self.pull_once(&reference, credentials).await {
            Ok(pulled) => {
                recorder.event(
                    object,
                    events::NORMAL,
                    "Pulled",
                    format!(
                        "Successfully pulled image {image:?} in {} ({} including waiting). \
                         Image size: {} bytes.",
                        go_duration(pulled.duration),
                        go_duration(started.elapsed()),
                        pulled.record.size
                    ),
                );
                Ok(pulled.record)
            }
            Err(e) => {
                let message = format!("failed to pull and unpack image \"{reference}\": {e}");
                tracing::warn!(%image, error = %e, "image pull failed");
                recorder.event(
                    object.clone(),
                    events::WARNING,
                    "Failed",
                    format!("Failed to pull image {image:?}: {message}"),
                );
                recorder.event(
                    object,
                    events::WARNING,
                    "Failed",
                    format!("Error: {ERR_IMAGE_PULL}"),
                );
                Err(waiting(ERR_IMAGE_PULL, message))
            }
        }
    }

    /// Joins the pull of the same image already under way, or starts one. The pull runs
    /// in a task of its own, so a pod deleted meanwhile does not abort it for the others.
    async fn pull_once(
        &self,
        reference: &Reference,
        credentials: Option<Credentials>,
    ) -> PullResult {
        let key = format!(
            "{reference}\x00{}",
            credentials
                .as_ref()
                .map(|c| c.username.as_str())
                .unwrap_or_default()
        );
        let pull = {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            in_flight
                .entry(key.clone())
                .or_insert_with(|| {
                    let (puller, store) = (self.puller.clone(), self.store.clone());
                    let name = reference.to_string();
                    let task = tokio::spawn(async move {
                        puller
                            .pull(&store, &name, credentials)
                            .await
                            .map_err(Arc::new)
                    });
                    async move {
                        task.await
                            .unwrap_or_else(|e| Err(Arc::new(PullError::Aborted(e.to_string()))))
                    }
                    .boxed()
                    .shared()
                })
                .clone()
        };
        let result = pull.clone().await;
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if in_flight.get(&key).is_some_and(|p| p.ptr_eq(&pull)) {
            in_flight.remove(&key);
        }
        result
    }
}

/// The `.dockerconfigjson` documents of the pod's `imagePullSecrets`. A secret that is
/// missing or of another type is skipped with a warning, as the kubelet does: the pull
/// may not need it.
async fn pull_secrets(client: &kube::Client, pod: &Pod) -> Vec<Vec<u8>> {
    let names: Vec<String> = pod
        .spec
        .iter()
        .flat_map(|s| s.image_pull_secrets.iter().flatten())
        .map(|r| r.name.clone())
        .collect();
    if names.is_empty() {
        return Vec::new();
    }
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut out = Vec::new();
    for name in names {
        let secret = match api.get_opt(&name).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                tracing::warn!(secret = %name, "imagePullSecret not found; pulling without it");
                continue;
            }
            Err(e) => {
                tracing::warn!(secret = %name, error = %e, "imagePullSecret unreadable");
                continue;
            }
        };
        let data = secret.data.unwrap_or_default();
        match secret.type_.as_deref() {
            Some("kubernetes.io/dockerconfigjson") => {
                out.extend(data.get(".dockerconfigjson").map(|b| b.0.clone()));
            }
            // The legacy form is the `auths` map on its own.
            Some("kubernetes.io/dockercfg") => {
                if let Some(b) = data.get(".dockercfg") {
                    let mut doc = br#"{"auths":"#.to_vec();
                    doc.extend_from_slice(&b.0);
                    doc.push(b'}');
                    out.push(doc);
                }
            }
            other => {
                tracing::warn!(secret = %name, r#type = ?other, "imagePullSecret of another type ignored")
            }
        }
    }
    out
}

fn waiting(reason: &str, message: String) -> Waiting {
    Waiting {
        reason: reason.into(),
        message: Some(message),
    }
}

/// Go's `Duration.String()` of a duration truncated to milliseconds (`1.234s`, `523ms`,
/// `1m2.5s`), as the kubelet's `Pulled` message prints it.
pub fn go_duration(d: Duration) -> String {
    use skiff_apimachinery::duration;
    duration::go_string(duration::truncated(d, Duration::from_millis(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(image: &str, policy: Option<&str>) -> Container {
        Container {
            name: "c".into(),
            image: Some(image.into()),
            image_pull_policy: policy.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn unset_pull_policy_defaults_by_tag_as_the_api_server_does() {
        let d = format!("sha256:{}", "0".repeat(64));
        for (image, policy, want) in [
            ("busybox", None, PullPolicy::Always),
            ("busybox:latest", None, PullPolicy::Always),
            ("busybox:1.36", None, PullPolicy::IfNotPresent),
            (&*format!("busybox@{d}"), None, PullPolicy::IfNotPresent),
            ("127.0.0.1:5000/a:v1", None, PullPolicy::IfNotPresent),
            ("busybox:1.36", Some("Always"), PullPolicy::Always),
            ("busybox", Some("Never"), PullPolicy::Never),
            ("busybox", Some("IfNotPresent"), PullPolicy::IfNotPresent),
        ] {
            assert_eq!(
                pull_policy(&container(image, policy)),
                want,
                "{image} {policy:?}"
            );
        }
    }

    fn pod(name: &str, image: &str, policy: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "default", "uid": name},
            "spec": {"containers": [
                {"name": "app", "image": image, "imagePullPolicy": policy}
            ]}
        }))
        .unwrap()
    }

    /// A client that is never called: pods without imagePullSecrets need no API.
    fn client() -> kube::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap()
    }

    fn reasons(rx: &mut tokio::sync::mpsc::UnboundedReceiver<events::PendingEvent>) -> Vec<String> {
        std::iter::from_fn(|| rx.try_recv().ok())
            .map(|e| format!("{}: {}", e.reason, e.message))
            .collect()
    }

    #[tokio::test]
    async fn pods_asking_for_the_same_image_at_once_share_one_pull() {
        use crate::image::pull::registry_tests::{base, hits, publish, start, Fake};
        let (fake, addr) = start(Fake::default()).await;
        publish(&fake, "v1", &[base()], "run");
        let dir = tempfile::tempdir().unwrap();
        let manager = ImageManager::new(
            ImageStore::open(dir.path()).unwrap(),
            Puller::new(crate::image::RegistryConfig::default()).unwrap(),
        );
        let image = format!("{addr}/lib/app:v1");
        let pods: Vec<Pod> = (0..3)
            .map(|i| pod(&format!("p{i}"), &image, "Always"))
            .collect();
        let (recorder, mut rx) = Recorder::channel();
        let client = client();
        let results = futures::future::join_all(pods.iter().map(|p| {
            let c = &p.spec.as_ref().unwrap().containers[0];
            manager.ensure(&client, p, c, &recorder)
        }))
        .await;
        let ids: Vec<String> = results.into_iter().map(|r| r.unwrap().id).collect();
        assert!(ids.iter().all(|id| *id == ids[0]));
        assert_eq!(
            hits(&fake, "/v2/lib/app/manifests/v1"),
            1,
            "one pull for three pods"
        );
        let events = reasons(&mut rx);
        assert_eq!(
            events.iter().filter(|e| e.starts_with("Pulling: ")).count(),
            3
        );
        let pulled: Vec<_> = events
            .iter()
            .filter(|e| e.starts_with("Pulled: "))
            .collect();
        assert_eq!(pulled.len(), 3, "{events:#?}");
        assert!(pulled[0].starts_with(&format!(
            "Pulled: Successfully pulled image \"{image}\" in "
        )));
        assert!(manager.in_flight.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn policies_decide_whether_the_registry_is_asked() {
        use crate::image::pull::registry_tests::{base, hits, publish, start, Fake};
        let (fake, addr) = start(Fake::default()).await;
        publish(&fake, "v1", &[base()], "run");
        let dir = tempfile::tempdir().unwrap();
        let manager = ImageManager::new(
            ImageStore::open(dir.path()).unwrap(),
            Puller::new(crate::image::RegistryConfig::default()).unwrap(),
        );
        let (recorder, mut rx) = Recorder::channel();
        let client = client();
        let ensure = |p: Pod| {
            let (manager, client, recorder) = (&manager, &client, &recorder);
            async move {
                let c = p.spec.as_ref().unwrap().containers[0].clone();
                manager.ensure(client, &p, &c, recorder).await
            }
        };
        let image = format!("{addr}/lib/app:v1");
        let w = ensure(pod("n", &image, "Never")).await.unwrap_err();
        assert_eq!(w.reason, ERR_IMAGE_NEVER_PULL);
        assert_eq!(
            w.message.unwrap(),
            format!("Container image \"{image}\" is not present with pull policy of Never")
        );
        assert_eq!(hits(&fake, "/v2/"), 0);

        ensure(pod("i", &image, "IfNotPresent")).await.unwrap();
        ensure(pod("i2", &image, "IfNotPresent")).await.unwrap();
        ensure(pod("n2", &image, "Never")).await.unwrap();
        assert_eq!(hits(&fake, "/v2/lib/app/manifests/v1"), 1);
        ensure(pod("a", &image, "Always")).await.unwrap();
        assert_eq!(hits(&fake, "/v2/lib/app/manifests/v1"), 2);

        let w = ensure(pod("m", &format!("{addr}/lib/app:nope"), "IfNotPresent"))
            .await
            .unwrap_err();
        assert_eq!(w.reason, ERR_IMAGE_PULL);
        assert!(w.message.unwrap().ends_with("/lib/app:nope: not found"));
        let w = ensure(pod("bad", "UPPER/case", "Always"))
            .await
            .unwrap_err();
        assert_eq!(w.reason, INVALID_IMAGE_NAME);

        let events = reasons(&mut rx);
        assert!(
            events.contains(&format!(
                "Pulled: Container image \"{image}\" already present on machine"
            )),
            "{events:#?}"
        );
        assert!(events.iter().any(|e| e.starts_with(&format!(
            "Failed: Failed to pull image \"{addr}/lib/app:nope\": failed to pull and unpack image"
        ))));
        assert!(events.contains(&"Failed: Error: ErrImagePull".to_string()));
    }

    #[test]
    fn pull_durations_print_like_go() {
        assert_eq!(go_duration(Duration::from_micros(1_234_567)), "1.234s");
        assert_eq!(go_duration(Duration::from_millis(523)), "523ms");
        assert_eq!(go_duration(Duration::from_millis(2000)), "2s");
        assert_eq!(go_duration(Duration::from_millis(62_500)), "1m2.5s");
        assert_eq!(go_duration(Duration::from_micros(10)), "0s");
    }
}

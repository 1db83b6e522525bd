//! Container lifecycle hooks (`postStart`, `preStop`: `exec`, `httpGet`, `sleep`) and
//! stopping a container the kubelet's way (`killContainer`): a `Killing` event, the
//! preStop hook inside the grace period, then SIGTERM with whatever the hook left (at
//! least [`MIN_GRACE`]), then SIGKILL.

use super::events::{container_ref, Recorder, NORMAL, WARNING};
use super::probes::{http_get, resolve_port};
use crate::runtime::{self, ContainerState, ContainerStatus, Runtime};
use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Pod};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The least time a container gets between SIGTERM and SIGKILL, whatever the grace
/// period and the preStop hook left of it (the kubelet's `minimumGracePeriodInSeconds`),
/// so a slow hook does not turn every stop into a SIGKILL.
pub const MIN_GRACE: Duration = Duration::from_secs(2);

/// A lifecycle hook that failed; the texts are the kubelet's, since they become the
/// container's waiting message after a failed postStart.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The exec'd command exited non-zero or could not run.
    #[error(
        "Exec lifecycle hook ([{command}]) for Container {container:?} in Pod {pod:?} failed - \
         error: {error}, message: {output:?}"
    )]
    Exec {
        /// The command, space-joined.
        command: String,
        /// Container name.
        container: String,
        /// `name_namespace(uid)`.
        pod: String,
        /// Why it failed.
        error: String,
        /// Its stdout and stderr.
        output: String,
    },
    /// The GET could not be made (any HTTP answer, whatever its code, is a success).
    #[error(
        "HTTP lifecycle hook ({path}) for Container {container:?} in Pod {pod:?} failed - \
         error: {error}"
    )]
    Http {
        /// Request path.
        path: String,
        /// Container name.
        container: String,
        /// `name_namespace(uid)`.
        pod: String,
        /// Why it failed.
        error: String,
    },
    /// The handler sets no action the kubelet runs (`tcpSocket` is accepted by the API
    /// for compatibility but never run).
    #[error("invalid handler for Container {container:?} in Pod {pod:?}")]
    Invalid {
        /// Container name.
        container: String,
        /// `name_namespace(uid)`.
        pod: String,
    },
}

/// What a hook runs against.
pub struct HookTarget<'a> {
    /// The pod.
    pub pod: &'a Pod,
    /// The container spec.
    pub container: &'a Container,
    /// Runtime id of the container.
    pub container_id: &'a str,
    /// Pod IP, the default host of `httpGet`.
    pub pod_ip: Option<&'a str>,
    /// The runtime, for `exec`.
    pub runtime: &'a Arc<dyn Runtime>,
}

/// `name_namespace(uid)`, how the kubelet names a pod in messages.
fn pod_text(pod: &Pod) -> String {
    format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.uid.as_deref().unwrap_or_default()
    )
}

/// Runs one handler to completion. Exec runs without a timeout and HTTP without one, as
/// upstream: preStop is bounded by the grace period, postStart by pod deletion.
pub async fn run_handler(handler: &LifecycleHandler, t: &HookTarget<'_>) -> Result<(), HookError> {
    let container = t.container.name.clone();
    let pod = pod_text(t.pod);
    if let Some(e) = &handler.exec {
        let argv = e.command.clone().unwrap_or_default();
        let command = argv.join(" ");
        let rt = t.runtime.clone();
        let id = t.container_id.to_string();
        let result = tokio::task::spawn_blocking(move || rt.exec(&id, &argv, None)).await;
        let (error, output) = match result {
            Ok(Ok(out)) if out.exit_code == 0 => return Ok(()),
            Ok(Ok(out)) => (
                format!(
                    "command '{command}' exited with {}: {}",
                    out.exit_code,
                    String::from_utf8_lossy(&out.stderr)
                ),
                out.combined(),
            ),
            Ok(Err(e)) => (e.to_string(), String::new()),
            Err(e) => (e.to_string(), String::new()),
        };
        return Err(HookError::Exec {
            command,
            container,
            pod,
            error,
            output,
        });
    }
    if let Some(h) = &handler.http_get {
        let path = h.path.clone().unwrap_or_default();
        let fail = |error: String| HookError::Http {
            path: path.clone(),
            container: container.clone(),
            pod: pod.clone(),
            error,
        };
        let host = h
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .or(t.pod_ip.map(str::to_string))
            .ok_or_else(|| fail("pod has no IP".into()))?;
        let port = resolve_port(&h.port, t.container).map_err(fail)?;
        let headers = h.http_headers.clone().unwrap_or_default();
        // Upstream fails a hook only when no HTTP answer came; a 500 still "succeeds".
        let tls = h.scheme.as_deref() == Some("HTTPS");
        return http_get(tls, &host, port, &path, &headers, "kube-lifecycle/1.33")
            .await
            .map(|_| ())
            .map_err(fail);
    }
    if let Some(s) = &handler.sleep {
        tokio::time::sleep(Duration::from_secs(s.seconds.max(0) as u64)).await;
        return Ok(());
    }
    Err(HookError::Invalid { container, pod })
}

/// Runs the container's postStart hook, if any. The caller keeps the container out of
/// Running until this returns and kills it on `Err`, as the kubelet's `startContainer`.
pub async fn post_start(t: &HookTarget<'_>, recorder: &Recorder) -> Result<(), HookError> {
    let Some(handler) = t
        .container
        .lifecycle
        .as_ref()
        .and_then(|l| l.post_start.as_ref())
    else {
        return Ok(());
    };
    tracing::info!(container = %t.container.name, "running postStart hook");
    let result = run_handler(handler, t).await;
    if let Err(e) = &result {
        tracing::warn!(container = %t.container.name, error = %e, "postStart hook failed");
        // Only a fixed text: hook output may carry secrets (upstream does the same).
        recorder.event(
            container_ref(t.pod, Some(&t.container.name)),
            WARNING,
            "FailedPostStartHook",
            "PostStartHook failed",
        );
    }
    result
}

/// SIGTERM-to-SIGKILL time once a preStop hook ran for `hook` out of `grace`: the
/// kubelet subtracts the hook's whole seconds and never goes below [`MIN_GRACE`].
pub fn grace_after_pre_stop(grace: Duration, hook: Duration) -> Duration {
    let left = grace.as_secs().saturating_sub(hook.as_secs());
    Duration::from_secs(left).max(MIN_GRACE)
}

/// Why a container is being killed; decides the `Killing` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillReason {
    /// Pod deletion: "Stopping container NAME".
    PodDeleted,
    /// The liveness probe gave up.
    Liveness,
    /// The startup probe gave up.
    Startup,
    /// The postStart hook failed.
    FailedPostStart,
    /// Graceful node shutdown: "Stopping container NAME", as a deletion.
    NodeShutdown,
}

/// The `Killing` event message, as upstream words it; `restarts` says whether the
/// container will run again (any restart policy but `Never`).
pub fn killing_message(reason: &KillReason, name: &str, restarts: bool) -> String {
    let base = match reason {
        KillReason::PodDeleted | KillReason::NodeShutdown => {
            return format!("Stopping container {name}")
        }
        KillReason::FailedPostStart => return "FailedPostStartHook".to_string(),
        KillReason::Liveness => format!("Container {name} failed liveness probe"),
        KillReason::Startup => format!("Container {name} failed startup probe"),
    };
    if restarts {
        format!("{base}, will be restarted")
    } else {
        base
    }
}

/// Stops a container as the kubelet's `killContainer`: `Killing` event; the preStop hook,
/// if the container runs, has one and `grace` is not zero, cut off when `grace` runs out;
/// then SIGTERM and SIGKILL after what is left of `grace`, at least [`MIN_GRACE`].
pub async fn kill_container(
    t: &HookTarget<'_>,
    reason: KillReason,
    grace: Duration,
    recorder: &Recorder,
) -> runtime::Result<ContainerStatus> {
    let rt = t.runtime.clone();
    let id = t.container_id.to_string();
    let status = tokio::task::spawn_blocking(move || rt.state(&id))
        .await
        .map_err(|e| runtime::Error::Runc(e.to_string()))??;
    if matches!(status.state, ContainerState::Exited(_)) {
        return Ok(status);
    }
    let name = &t.container.name;
    let restarts = t
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        != Some("Never");
    recorder.event(
        container_ref(t.pod, Some(name)),
        NORMAL,
        "Killing",
        killing_message(&reason, name, restarts),
    );
    let pre_stop = t
        .container
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.as_ref());
    let mut term_grace = grace.max(MIN_GRACE);
    if let (Some(handler), ContainerState::Running, false) =
        (pre_stop, &status.state, grace.is_zero())
    {
        tracing::info!(container = %name, grace_s = grace.as_secs(), "running preStop hook");
        let started = Instant::now();
        match tokio::time::timeout(grace, run_handler(handler, t)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(container = %name, error = %e, "preStop hook failed");
                recorder.event(
                    container_ref(t.pod, Some(name)),
                    WARNING,
                    "FailedPreStopHook",
                    "PreStopHook failed",
                );
            }
            Err(_) => {
                tracing::info!(container = %name, "preStop hook not completed in grace period")
            }
        }
        term_grace = grace_after_pre_stop(grace, started.elapsed());
    }
    tracing::info!(container = %name, grace_s = term_grace.as_secs(), ?reason, "stopping container");
    runtime::stop(t.runtime, t.container_id, term_grace).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::events::PendingEvent;
    use crate::runtime::fake::{Call, FakeExec, FakeRuntime};

    #[test]
    fn pre_stop_time_is_taken_from_the_grace_period_in_whole_seconds() {
        let s = Duration::from_secs;
        assert_eq!(
            grace_after_pre_stop(s(30), Duration::from_millis(5_900)),
            s(25)
        );
        assert_eq!(grace_after_pre_stop(s(30), Duration::ZERO), s(30));
        // An overrunning hook still leaves the minimum window for SIGTERM.
        assert_eq!(grace_after_pre_stop(s(5), s(5)), MIN_GRACE);
        assert_eq!(grace_after_pre_stop(s(5), s(60)), MIN_GRACE);
        assert_eq!(grace_after_pre_stop(s(3), s(2)), MIN_GRACE);
    }

    #[test]
    fn killing_messages_match_upstream() {
        assert_eq!(
            killing_message(&KillReason::PodDeleted, "app", true),
            "Stopping container app"
        );
        assert_eq!(
            killing_message(&KillReason::Liveness, "app", true),
            "Container app failed liveness probe, will be restarted"
        );
        assert_eq!(
            killing_message(&KillReason::Startup, "app", false),
            "Container app failed startup probe"
        );
        assert_eq!(
            killing_message(&KillReason::FailedPostStart, "app", true),
            "FailedPostStartHook"
        );
    }

    fn pod(lifecycle: serde_json::Value) -> (Pod, Container) {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
            "spec": {"containers": [{"name": "app", "image": "busybox", "lifecycle": lifecycle}]}
        }))
        .unwrap();
        let c = pod.spec.as_ref().unwrap().containers[0].clone();
        (pod, c)
    }

    fn running(rt: &FakeRuntime) {
        rt.create(&crate::runtime::fake::minimal_spec("c")).unwrap();
        rt.start("c").unwrap();
    }

    fn reasons(rx: &mut tokio::sync::mpsc::UnboundedReceiver<PendingEvent>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(e) = rx.try_recv() {
            out.push(format!("{} {}", e.reason, e.message));
        }
        out
    }

    /// Times of SIGTERM and SIGKILL relative to the start of the kill, for a container
    /// that ignores SIGTERM.
    async fn kill_times(
        lifecycle: serde_json::Value,
        grace: u64,
        script: &[(&str, FakeExec)],
    ) -> (Duration, Duration, Vec<String>) {
        let (pod, c) = pod(lifecycle);
        let fake = Arc::new(FakeRuntime::new());
        running(&fake);
        for (command, result) in script {
            fake.on_exec(command, result.clone());
        }
        let rt: Arc<dyn Runtime> = fake.clone();
        let (recorder, mut rx) = Recorder::channel();
        let t = HookTarget {
            pod: &pod,
            container: &c,
            container_id: "c",
            pod_ip: Some("127.0.0.1"),
            runtime: &rt,
        };
        let start = Instant::now();
        let watcher = fake.clone();
        let sigterm_at = tokio::spawn(async move {
            loop {
                if watcher
                    .calls()
                    .contains(&Call::Kill("c".into(), libc::SIGTERM))
                {
                    return start.elapsed();
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        let status = kill_container(
            &t,
            KillReason::PodDeleted,
            Duration::from_secs(grace),
            &recorder,
        )
        .await
        .unwrap();
        assert!(matches!(status.state, ContainerState::Exited(ref e) if e.exit_code == 137));
        let killed = start.elapsed();
        (sigterm_at.await.unwrap(), killed, reasons(&mut rx))
    }

    #[tokio::test(start_paused = true)]
    async fn pre_stop_sleep_delays_sigterm_and_counts_against_the_grace_period() {
        let (term, kill, events) = kill_times(
            serde_json::json!({"preStop": {"sleep": {"seconds": 3}}}),
            10,
            &[],
        )
        .await;
        assert!(
            term >= Duration::from_secs(3) && term < Duration::from_secs(4),
            "{term:?}"
        );
        // 10 s grace - 3 s hook = 7 s between SIGTERM and SIGKILL.
        assert!(
            kill >= Duration::from_secs(10) && kill < Duration::from_secs(11),
            "{kill:?}"
        );
        assert_eq!(events, ["Killing Stopping container app"]);
    }

    #[tokio::test(start_paused = true)]
    async fn overrunning_pre_stop_is_cut_off_and_sigterm_still_gets_two_seconds() {
        let (term, kill, _) = kill_times(
            serde_json::json!({"preStop": {"sleep": {"seconds": 60}}}),
            5,
            &[],
        )
        .await;
        assert!(
            term >= Duration::from_secs(5) && term < Duration::from_secs(6),
            "{term:?}"
        );
        assert!(
            kill >= Duration::from_secs(7) && kill < Duration::from_secs(8),
            "{kill:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn failed_pre_stop_exec_is_an_event_and_sigterm_follows_at_once() {
        let (term, kill, events) = kill_times(
            serde_json::json!({"preStop": {"exec": {"command": ["/bin/false"]}}}),
            4,
            &[("/bin/false", FakeExec::Exit(1, String::new()))],
        )
        .await;
        assert!(term < Duration::from_secs(1), "{term:?}");
        assert!(
            kill >= Duration::from_secs(4) && kill < Duration::from_secs(5),
            "{kill:?}"
        );
        assert_eq!(
            events,
            [
                "Killing Stopping container app",
                "FailedPreStopHook PreStopHook failed"
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn zero_grace_skips_pre_stop_but_keeps_the_minimum_sigterm_window() {
        let (term, kill, _) = kill_times(
            serde_json::json!({"preStop": {"sleep": {"seconds": 60}}}),
            0,
            &[],
        )
        .await;
        assert!(term < Duration::from_secs(1), "{term:?}");
        assert!(
            kill >= MIN_GRACE && kill < Duration::from_secs(3),
            "{kill:?}"
        );
    }

    #[tokio::test]
    async fn exec_hook_failure_carries_upstreams_message() {
        let (pod, c) =
            pod(serde_json::json!({"postStart": {"exec": {"command": ["sh", "-c", "exit 3"]}}}));
        let fake = Arc::new(FakeRuntime::new());
        running(&fake);
        fake.on_exec("sh -c exit 3", FakeExec::Exit(3, "oops".into()));
        let rt: Arc<dyn Runtime> = fake.clone();
        let (recorder, mut rx) = Recorder::channel();
        let t = HookTarget {
            pod: &pod,
            container: &c,
            container_id: "c",
            pod_ip: None,
            runtime: &rt,
        };
        let err = post_start(&t, &recorder).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "Exec lifecycle hook ([sh -c exit 3]) for Container \"app\" in Pod \
             \"web_default(u1)\" failed - error: command 'sh -c exit 3' exited with 3: , \
             message: \"oops\""
        );
        assert_eq!(
            reasons(&mut rx),
            ["FailedPostStartHook PostStartHook failed"]
        );
    }

    #[tokio::test]
    async fn http_hook_succeeds_on_any_answer_and_fails_without_one() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(b"HTTP/1.0 500 Oops\r\n\r\n").await;
            }
        });
        let fake = Arc::new(FakeRuntime::new());
        let rt: Arc<dyn Runtime> = fake;
        let (pod, c) =
            pod(serde_json::json!({"postStart": {"httpGet": {"port": port, "path": "/hook"}}}));
        let t = HookTarget {
            pod: &pod,
            container: &c,
            container_id: "c",
            pod_ip: Some("127.0.0.1"),
            runtime: &rt,
        };
        let (recorder, _rx) = Recorder::channel();
        post_start(&t, &recorder).await.unwrap();
        let (pod, c) = pod_refused();
        let t = HookTarget {
            pod: &pod,
            container: &c,
            ..t
        };
        let err = post_start(&t, &recorder).await.unwrap_err();
        assert!(
            err.to_string()
                .starts_with("HTTP lifecycle hook (/x) for Container \"app\""),
            "{err}"
        );
        assert!(err.to_string().contains("connection refused"), "{err}");
    }

    fn pod_refused() -> (Pod, Container) {
        // Port 1 on loopback: nothing listens there.
        pod(serde_json::json!({"postStart": {"httpGet": {"port": 1, "path": "/x"}}}))
    }
}

//! Creating a controller's pods, as upstream's `PodControl` with `slowStartBatch`: the one
//! place ReplicaSet, DaemonSet and Job send pod creates and record their Events.

use futures::future::join_all;
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::api::{Api, PostParams};

use crate::events::{Recorder, NORMAL, WARNING};

/// Batch sizes for creating `n` pods: 1, 2, 4, ... as upstream's `slowStartBatch`.
pub fn slow_start_batches(n: usize) -> Vec<usize> {
    let mut batches = Vec::new();
    let (mut left, mut size) = (n, 1usize);
    while left > 0 {
        let b = size.min(left);
        batches.push(b);
        left -= b;
        size = size.saturating_mul(2);
    }
    batches
}

/// Creates `pods` in slow-start batches, recording `SuccessfulCreate` or `FailedCreate` on
/// `owner` for each. A batch with a failure stops the rest, so a quota or admission refusal
/// costs one request and one Event rather than one per pod; the caller's reconcile then
/// fails and is retried with backoff. `created` hears each created pod's name (for the
/// controller's expectations).
pub async fn create_pods(
    api: &Api<Pod>,
    pods: &[Pod],
    recorder: &Recorder,
    owner: &ObjectReference,
    mut created: impl FnMut(String),
) -> Result<(), kube::Error> {
    let pp = PostParams::default();
    let mut rest = pods;
    for batch in slow_start_batches(pods.len()) {
        let (now, later) = rest.split_at(batch);
        rest = later;
        let mut failed = None;
        for result in join_all(now.iter().map(|p| api.create(&pp, p))).await {
            match result {
                Ok(pod) => {
                    let name = pod.metadata.name.unwrap_or_default();
                    let msg = format!("Created pod: {name}");
                    created(name);
                    recorder
                        .publish(owner, NORMAL, "SuccessfulCreate", &msg)
                        .await;
                }
                Err(error) => {
                    let msg = failed_create_message(&error);
                    recorder.publish(owner, WARNING, "FailedCreate", &msg).await;
                    failed = Some(error);
                }
            }
        }
        if let Some(error) = failed {
            return Err(error);
        }
    }
    Ok(())
}

/// `Error creating: <the API's message>`, as upstream's FailedCreate Events read (`pods
/// "web-x" is forbidden: exceeded quota: ...`); kube's own rendering of an API error would
/// add its debug form.
pub fn failed_create_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!("Error creating: {}", status.message),
        other => format!("Error creating: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::{failed_create_message, slow_start_batches};

    #[test]
    fn failed_create_events_carry_the_apis_message() {
        let status = kube::core::Status {
            code: 403,
            reason: "Forbidden".into(),
            message: "pods \"web-1\" is forbidden: exceeded quota: q, requested: pods=1, used: pods=4, limited: pods=4".into(),
            ..Default::default()
        };
        assert_eq!(
            failed_create_message(&kube::Error::Api(status.boxed())),
            "Error creating: pods \"web-1\" is forbidden: exceeded quota: q, requested: pods=1, used: pods=4, limited: pods=4"
        );
    }

    #[test]
    fn slow_start_batches_double_until_done() {
        let cases: &[(usize, &[usize])] = &[
            (0, &[]),
            (1, &[1]),
            (3, &[1, 2]),
            (10, &[1, 2, 4, 3]),
            (16, &[1, 2, 4, 8, 1]),
        ];
        for (n, want) in cases {
            assert_eq!(slow_start_batches(*n), want.to_vec(), "n={n}");
        }
    }
}

//! End to end: Jobs and CronJobs run real pods on the server's node, driven by real kubectl
//! (root only; skipped with a message otherwise).

#[allow(unused)]
mod common;
#[path = "common/node.rs"]
mod node;

use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

fn condition(job: &Value, type_: &str) -> Option<Value> {
    job["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_ && c["status"] == "True")
        .cloned()
}

fn pods_of(c: &node::NodeCluster, job: &str) -> Vec<Value> {
    c.json(&[
        "get",
        "pods",
        "-l",
        &format!("batch.kubernetes.io/job-name={job}"),
    ])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn wait(c: &node::NodeCluster, what: &str, job: &str) {
    let out = c.kubectl_output(
        &[
            "wait",
            &format!("--for=condition={what}"),
            &format!("job/{job}"),
            "--timeout=90s",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "kubectl wait {what} job/{job}: {}\njob: {:#}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        c.json(&["get", "job", job]),
        c.log_text()
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("condition met"), "{text}");
}

const INDEXED: &str = r#"
apiVersion: batch/v1
kind: Job
metadata:
  name: idx
spec:
  completions: 3
  parallelism: 2
  completionMode: Indexed
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: work
        image: busybox:test
        command: ["sh", "-c", "echo index=$JOB_COMPLETION_INDEX host=$(hostname)"]
"#;

const THREE: &str = r#"
apiVersion: batch/v1
kind: Job
metadata:
  name: three
spec:
  completions: 3
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: work
        image: busybox:test
        command: ["sh", "-c", "echo done"]
"#;

#[test]
fn jobs_run_to_complete_and_kubectl_waits_and_reads_logs() {
    let c = node_cluster_or_skip!();
    c.load_busybox("busybox:test");
    c.kubectl(&[
        "create",
        "job",
        "hello",
        "--image=busybox:test",
        "--",
        "sh",
        "-c",
        "echo hello-from-job",
    ]);
    wait(&c, "complete", "hello");
    let logs = c.kubectl(&["logs", "job/hello"]);
    assert!(logs.contains("hello-from-job"), "{logs}");
    let job = c.json(&["get", "job", "hello"]);
    assert_eq!(job["status"]["succeeded"], 1);
    assert!(condition(&job, "SuccessCriteriaMet").is_some(), "{job:#}");
    assert_eq!(
        condition(&job, "Complete").map(|c| c["reason"].clone()),
        Some(Value::from("CompletionsReached"))
    );
    assert!(job["status"]["completionTime"].is_string());
    for pod in pods_of(&c, "hello") {
        assert!(
            pod["metadata"]["finalizers"].is_null(),
            "tracking finalizer removed once counted: {pod:#}"
        );
    }

    c.kubectl_in(&["apply", "-f", "-"], THREE);
    c.kubectl_in(&["apply", "-f", "-"], INDEXED);
    wait(&c, "complete", "three");
    wait(&c, "complete", "idx");
    let three = c.json(&["get", "job", "three"]);
    assert_eq!(three["status"]["succeeded"], 3);
    assert_eq!(pods_of(&c, "three").len(), 3, "no extra pods");
    let idx = c.json(&["get", "job", "idx"]);
    assert_eq!(idx["status"]["completedIndexes"], "0-2");
    let mut seen = BTreeSet::new();
    for pod in pods_of(&c, "idx") {
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        let ix = pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let logs = c.kubectl(&["logs", name]);
        assert!(
            logs.contains(&format!("index={ix} host=idx-{ix}")),
            "{name}: {logs}"
        );
        seen.insert(ix);
    }
    assert_eq!(seen.len(), 3, "one pod per index");
}

const FAILING: &str = r#"
apiVersion: batch/v1
kind: Job
metadata:
  name: broken
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: work
        image: busybox:test
        command: ["sh", "-c", "echo failing; exit 3"]
"#;

#[test]
fn failing_job_reaches_its_backoff_limit() {
    let c = node_cluster_or_skip!();
    c.load_busybox("busybox:test");
    c.kubectl_in(&["apply", "-f", "-"], FAILING);
    wait(&c, "failed", "broken");
    let job = c.json(&["get", "job", "broken"]);
    assert_eq!(job["status"]["failed"], 2, "{job:#}");
    assert_eq!(
        condition(&job, "Failed").map(|c| c["reason"].clone()),
        Some(Value::from("BackoffLimitExceeded"))
    );
    assert!(condition(&job, "FailureTarget").is_some());
    let pods = pods_of(&c, "broken");
    assert_eq!(pods.len(), 2, "one retry, after the pod backoff");
    let events = c.kubectl(&[
        "get",
        "events",
        "--field-selector=involvedObject.name=broken",
    ]);
    assert!(events.contains("BackoffLimitExceeded"), "{events}");
}

#[test]
fn helm_style_hook_job_completes_and_is_deleted_with_its_pods() {
    let c = node_cluster_or_skip!();
    c.load_busybox("busybox:test");
    c.kubectl(&[
        "create",
        "job",
        "pre-install",
        "--image=busybox:test",
        "--",
        "sh",
        "-c",
        "echo migrated",
    ]);
    wait(&c, "complete", "pre-install");
    c.kubectl(&[
        "delete",
        "job",
        "pre-install",
        "--wait=true",
        "--timeout=60s",
    ]);
    c.wait_for("the hook's pods to go", Duration::from_secs(60), || {
        pods_of(&c, "pre-install").is_empty().then_some(())
    });
}

const CRON: &str = r#"
apiVersion: batch/v1
kind: CronJob
metadata:
  name: tick
spec:
  schedule: "*/1 * * * *"
  successfulJobsHistoryLimit: 1
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: tick
            image: busybox:test
            command: ["sh", "-c", "echo tick"]
"#;

#[test]
fn cronjob_runs_every_minute_keeps_its_history_limit_and_instantiates() {
    let c = node_cluster_or_skip!();
    c.load_busybox("busybox:test");
    let bad = c.kubectl_output(
        &[
            "create",
            "cronjob",
            "bad",
            "--image=busybox:test",
            "--schedule=bogus",
        ],
        None,
    );
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains(r#"spec.schedule: Invalid value: "bogus": expected exactly 5 fields"#),
        "{err}"
    );

    c.kubectl_in(&["apply", "-f", "-"], CRON);
    c.kubectl(&["create", "job", "by-hand", "--from=cronjob/tick"]);
    wait(&c, "complete", "by-hand");
    let by_hand = c.json(&["get", "job", "by-hand"]);
    assert_eq!(
        by_hand["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"],
        "manual"
    );

    // Two scheduled runs: at most two minute boundaries plus the run itself.
    let names = std::cell::RefCell::new(BTreeSet::new());
    c.wait_for("two scheduled runs", Duration::from_secs(150), || {
        let jobs = c.json(&["get", "jobs"]);
        for j in jobs["items"].as_array().into_iter().flatten() {
            // `by-hand` is owned by the CronJob too (kubectl sets the reference).
            let scheduled = j["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("tick-"));
            let done = condition(j, "Complete").is_some();
            if scheduled && done {
                names.borrow_mut().insert(
                    j["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                );
            }
        }
        (names.borrow().len() >= 2).then_some(())
    });
    let names = names.into_inner();
    for n in &names {
        let minutes: i64 = n.trim_start_matches("tick-").parse().unwrap_or(0);
        assert!(minutes > 28_000_000, "named by scheduled minute: {n}");
    }
    // History limit 1: only the newest scheduled run stays once the next completed.
    c.wait_for("history trimmed to one", Duration::from_secs(30), || {
        let jobs = c.json(&["get", "jobs"]);
        let scheduled: Vec<&Value> = jobs["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|j| j["metadata"]["ownerReferences"][0]["kind"] == "CronJob")
            .filter(|j| condition(j, "Complete").is_some())
            .collect();
        (scheduled.len() == 1).then_some(())
    });
    let cj = c.json(&["get", "cronjob", "tick"]);
    assert!(cj["status"]["lastScheduleTime"].is_string(), "{cj:#}");
    assert!(cj["status"]["lastSuccessfulTime"].is_string(), "{cj:#}");
    let any = c.json(&["get", "jobs"]);
    let stamped = any["items"].as_array().into_iter().flatten().any(|j| {
        j["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"].is_string()
    });
    assert!(stamped, "{any:#}");
}

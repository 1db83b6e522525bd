//! The reconcile timeline, pure: one line per controller action, from an Event or from the
//! change an object went through, naming the controller, the object and the gap it closed
//! ("replicaset-controller created pod web-7d9-xk2 — desired 3, actual 2").

use crate::model::{controller_owner_kind, pod_state, workload_gap, Kind};
use serde_json::Value;

/// One line of the timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// When it happened, RFC 3339 (the Event's or the managedFields entry's time), or empty.
    pub time: String,
    pub namespace: String,
    /// Who acted: the controller or the client (field manager) that wrote the change.
    pub actor: String,
    /// What it did, to what, and the gap.
    pub text: String,
    /// A Warning Event or a failure.
    pub warning: bool,
}

/// The counts around a pod's change, from the model: its owner's desired replicas and how
/// many of the owner's pods counted before the change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OwnerGap {
    pub desired: i64,
    pub actual_before: i64,
}

/// The managedFields entry a write added or refreshed: `(manager, subresource, time)`.
/// Between `old` and `new`, the entry whose time moved (or that is new) is the writer; when
/// none moved (times have a second's resolution, and a manager rewriting the fields it owns
/// to the same set may keep its time), the newest entry of the part that changed: the
/// status subresource's when only the status did, else the main resource's.
pub fn writer(
    old: Option<&Value>,
    new: &Value,
    status_only: bool,
) -> Option<(String, String, String)> {
    let entries = |obj: &Value| -> Vec<(String, String, String, String)> {
        obj["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                let s = |f: &str| e[f].as_str().unwrap_or_default().to_owned();
                (s("manager"), s("operation"), s("subresource"), s("time"))
            })
            .collect()
    };
    let now = entries(new);
    let before = old.map(entries).unwrap_or_default();
    let moved = now.iter().filter(|(m, o, s, t)| {
        !before
            .iter()
            .any(|(bm, bo, bs, bt)| bm == m && bo == o && bs == s && bt == t)
    });
    // RFC 3339 times in UTC sort as strings; the last of equal times wins.
    let newest = |it: &mut dyn Iterator<Item = &(String, String, String, String)>| {
        it.fold(
            None,
            |best: Option<&(String, String, String, String)>, e| match best {
                Some(b) if b.3 > e.3 => Some(b),
                _ => Some(e),
            },
        )
        .cloned()
    };
    let chosen = newest(&mut moved.into_iter())
        .or_else(|| {
            newest(
                &mut now
                    .iter()
                    .filter(|(_, _, sub, _)| (sub == "status") == status_only),
            )
        })
        .or_else(|| newest(&mut now.iter()))?;
    Some((chosen.0, chosen.2, chosen.3))
}

/// The controller behind a field manager. skiff's controllers share one manager,
/// `kube-controller-manager`, as upstream's do; which controller wrote is then said by what
/// was written: a status by the kind's own controller, an object by its owner's controller.
pub fn controller_name(
    manager: &str,
    kind: Kind,
    owner_kind: Option<&str>,
    subresource: &str,
) -> String {
    if manager != "kube-controller-manager" {
        return manager.to_owned();
    }
    let by_owner = |owner: &str| match owner {
        "ReplicaSet" | "ReplicationController" => Some("replicaset-controller"),
        "Deployment" => Some("deployment-controller"),
        "StatefulSet" => Some("statefulset-controller"),
        "DaemonSet" => Some("daemonset-controller"),
        "Job" => Some("job-controller"),
        "CronJob" => Some("cronjob-controller"),
        "Service" => Some("endpointslice-controller"),
        _ => None,
    };
    let named = if subresource == "status" {
        kind.controller()
    } else {
        owner_kind.and_then(by_owner).or(kind.controller())
    };
    named.unwrap_or(manager).to_owned()
}

fn name_of(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or_default()
}

fn lower(kind: Kind) -> String {
    kind.name().to_ascii_lowercase()
}

/// A line for an Event: its controller (`reportingController`, else `source.component`),
/// its reason, the object it is about and its message.
pub fn event_line(event: &Value) -> Option<Line> {
    let reason = event["reason"].as_str().unwrap_or_default();
    let message = event["message"].as_str().unwrap_or_default();
    if reason.is_empty() && message.is_empty() {
        return None;
    }
    let actor = event["reportingController"]
        .as_str()
        .filter(|s| !s.is_empty())
        .or_else(|| event["source"]["component"].as_str())
        .unwrap_or("unknown")
        .to_owned();
    let involved = &event["involvedObject"];
    let count = event["count"].as_i64().unwrap_or(1);
    let times = if count > 1 {
        format!(" (×{count})")
    } else {
        String::new()
    };
    let time = ["lastTimestamp", "eventTime", "firstTimestamp"]
        .iter()
        .find_map(|f| event[*f].as_str())
        .or_else(|| event["metadata"]["creationTimestamp"].as_str())
        .unwrap_or_default()
        .to_owned();
    Some(Line {
        time,
        namespace: event["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        actor,
        text: format!(
            "{reason} {}/{}: {message}{times}",
            involved["kind"]
                .as_str()
                .unwrap_or_default()
                .to_ascii_lowercase(),
            involved["name"].as_str().unwrap_or_default(),
        ),
        warning: event["type"].as_str() == Some("Warning"),
    })
}

/// A line for a change of a watched object (`old` → `new`; `new` None when deleted), or
/// None when nothing a controller reconciles changed (labels, annotations, timestamps).
/// `owner` is the owner's gap for pods and ReplicaSets.
pub fn change_line(
    kind: Kind,
    old: Option<&Value>,
    new: Option<&Value>,
    owner: Option<OwnerGap>,
) -> Option<Line> {
    let obj = new.or(old)?;
    let name = name_of(obj);
    let namespace = obj["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let status_only = old.is_some_and(|o| new.is_some_and(|n| o["spec"] == n["spec"]));
    let who = new.and_then(|n| writer(old, n, status_only));
    let actor = who
        .as_ref()
        .map(|(manager, sub, _)| controller_name(manager, kind, controller_owner_kind(obj), sub))
        .unwrap_or_default();
    let time = who.map(|(_, _, t)| t).unwrap_or_default();
    let owner_gap = owner
        .map(|g| format!(" — desired {}, actual {}", g.desired, g.actual_before))
        .unwrap_or_default();
    let line = |actor: String, text: String, warning: bool| Line {
        time: time.clone(),
        namespace: namespace.clone(),
        actor,
        text,
        warning,
    };
    let kind_word = lower(kind);
    match (old, new) {
        (None, Some(_)) => Some(line(
            actor,
            format!("created {kind_word} {name}{owner_gap}"),
            false,
        )),
        (Some(_), None) => Some(line(
            String::new(),
            format!("{kind_word} {name} deleted{owner_gap}"),
            false,
        )),
        (Some(old), Some(new)) => {
            if !old["metadata"]["deletionTimestamp"].is_string()
                && new["metadata"]["deletionTimestamp"].is_string()
            {
                return Some(line(
                    String::new(),
                    format!("{kind_word} {name} terminating{owner_gap}"),
                    false,
                ));
            }
            if kind == Kind::Pod {
                let (was, was_word) = pod_state(old);
                let (is, is_word) = pod_state(new);
                return (was_word != is_word).then(|| {
                    line(
                        actor,
                        format!("pod {name} {was_word} → {is_word}"),
                        is == crate::model::State::Failed && was != is,
                    )
                });
            }
            if !kind.is_workload() {
                return None;
            }
            let (a, b) = (workload_gap(kind, old)?, workload_gap(kind, new)?);
            if a.generation != b.generation {
                let mut what = Vec::new();
                if a.desired != b.desired {
                    what.push(format!("{} {} → {}", a.unit, a.desired, b.desired));
                }
                if a.images != b.images {
                    what.push(format!(
                        "images {} → {}",
                        a.images.join(", "),
                        b.images.join(", ")
                    ));
                }
                if what.is_empty() {
                    what.push(format!("generation {} → {}", a.generation, b.generation));
                }
                let verb = if what.len() == 1 && a.desired != b.desired {
                    "scaled"
                } else {
                    "changed"
                };
                return Some(line(
                    actor,
                    format!("{verb} {kind_word} {name}: {}", what.join("; ")),
                    false,
                ));
            }
            let counts = |g: &crate::model::Gap| (g.current, g.ready, g.updated, g.available);
            if counts(&a) == counts(&b) && a.state == b.state {
                return None;
            }
            let mut moved = vec![format!("desired {}", b.desired)];
            let mut diff = |label: &str, x: Option<i64>, y: Option<i64>| {
                if let (Some(x), Some(y)) = (x, y) {
                    if x != y {
                        moved.push(format!("{label} {x} → {y}"));
                    }
                }
            };
            diff("existing", Some(a.current), Some(b.current));
            diff("ready", Some(a.ready), Some(b.ready));
            diff("updated", a.updated, b.updated);
            diff("available", a.available, b.available);
            let state = if a.state != b.state {
                format!(" ({})", b.state.word())
            } else {
                String::new()
            };
            Some(line(
                actor,
                format!(
                    "updated {kind_word} {name} status — {}{state}",
                    moved.join(", ")
                ),
                b.state == crate::model::State::Failed && a.state != b.state,
            ))
        }
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(entries: &[(&str, &str, &str)]) -> Value {
        Value::Array(
            entries
                .iter()
                .map(|(m, s, t)| {
                    json!({"manager": m, "operation": "Update", "subresource": s, "time": t})
                })
                .collect(),
        )
    }

    fn pod(owner: &str, managed: Value, status: Value) -> Value {
        json!({"metadata": {"name": "web-7d9-xk2", "namespace": "default", "managedFields": managed,
            "ownerReferences": [{"kind": owner, "name": "web-7d9", "controller": true}]},
            "spec": {"containers": [{"name": "c", "image": "x"}]}, "status": status})
    }

    fn deploy(generation: i64, replicas: i64, image: &str, managed: Value, status: Value) -> Value {
        json!({"metadata": {"name": "web", "namespace": "default", "generation": generation,
            "managedFields": managed},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [
                {"name": "c", "image": image}]}}},
            "status": status})
    }

    #[test]
    fn writer_is_the_entry_whose_time_moved() {
        let old = json!({"metadata": {"managedFields": fields(&[
            ("kubectl-create", "", "2026-01-01T00:00:01Z"),
            ("kube-controller-manager", "status", "2026-01-01T00:00:05Z")])}});
        let new = json!({"metadata": {"managedFields": fields(&[
            ("kubectl-create", "", "2026-01-01T00:00:01Z"),
            ("kubectl-scale", "", "2026-01-01T00:00:03Z"),
            ("kube-controller-manager", "status", "2026-01-01T00:00:05Z")])}});
        // A newer entry exists, but the one that moved is kubectl-scale's.
        assert_eq!(
            writer(Some(&old), &new, false).map(|w| w.0),
            Some("kubectl-scale".into())
        );
        // Nothing moved: the newest entry of the part that changed.
        assert_eq!(
            writer(Some(&new), &new, true).map(|w| (w.0, w.1)),
            Some(("kube-controller-manager".into(), "status".into()))
        );
        assert_eq!(
            writer(Some(&new), &new, false).map(|w| (w.0, w.1)),
            Some(("kubectl-scale".into(), "".into()))
        );
        // The main resource changed: its newest entry, though a status entry is newer.
        assert_eq!(
            writer(Some(&old), &old, false).map(|w| w.0),
            Some("kubectl-create".into())
        );
        assert_eq!(writer(None, &json!({"metadata": {}}), false), None);
    }

    #[test]
    fn controller_name_from_manager_kind_and_owner() {
        let cases = [
            (
                "kube-controller-manager",
                Kind::Pod,
                Some("ReplicaSet"),
                "",
                "replicaset-controller",
            ),
            (
                "kube-controller-manager",
                Kind::ReplicaSet,
                Some("Deployment"),
                "",
                "deployment-controller",
            ),
            (
                "kube-controller-manager",
                Kind::ReplicaSet,
                Some("Deployment"),
                "status",
                "replicaset-controller",
            ),
            (
                "kube-controller-manager",
                Kind::Deployment,
                None,
                "status",
                "deployment-controller",
            ),
            (
                "kube-controller-manager",
                Kind::Pod,
                Some("StatefulSet"),
                "",
                "statefulset-controller",
            ),
            (
                "kube-controller-manager",
                Kind::Job,
                Some("CronJob"),
                "",
                "cronjob-controller",
            ),
            (
                "kube-controller-manager",
                Kind::Pod,
                None,
                "",
                "kube-controller-manager",
            ),
            ("kubectl-scale", Kind::Deployment, None, "", "kubectl-scale"),
            (
                "skiff-node",
                Kind::Pod,
                Some("ReplicaSet"),
                "status",
                "skiff-node",
            ),
        ];
        for (manager, kind, owner, sub, want) in cases {
            assert_eq!(
                controller_name(manager, kind, owner, sub),
                want,
                "{manager} {kind:?} {owner:?} {sub}"
            );
        }
    }

    /// Name, kind, old, new, owner's gap, and the expected (actor, text).
    type Case = (
        &'static str,
        Kind,
        Option<Value>,
        Option<Value>,
        Option<OwnerGap>,
        Option<(&'static str, &'static str)>,
    );

    #[test]
    fn change_lines_name_controller_object_and_gap() {
        let kcm = fields(&[("kube-controller-manager", "", "2026-01-01T00:00:09Z")]);
        let created = pod("ReplicaSet", kcm.clone(), json!({"phase": "Pending"}));
        let ready = pod(
            "ReplicaSet",
            fields(&[
                ("kube-controller-manager", "", "2026-01-01T00:00:09Z"),
                ("skiff-node", "status", "2026-01-01T00:00:12Z"),
            ]),
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}),
        );
        let mut terminating = ready.clone();
        terminating["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:01:00Z");
        let gap = Some(OwnerGap {
            desired: 3,
            actual_before: 2,
        });
        let status = |ready: i64| {
            json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3,
                "readyReplicas": ready, "availableReplicas": ready})
        };
        let user = fields(&[("kubectl-scale", "", "2026-01-01T00:00:01Z")]);
        let ctl = fields(&[
            ("kubectl-scale", "", "2026-01-01T00:00:01Z"),
            ("kube-controller-manager", "status", "2026-01-01T00:00:20Z"),
        ]);
        let same_second = fields(&[
            ("kube-controller-manager", "status", "2026-01-01T00:00:01Z"),
            ("kubectl-set", "", "2026-01-01T00:00:01Z"),
        ]);
        let cases: Vec<Case> = vec![
            ("pod created", Kind::Pod, None, Some(created.clone()), gap,
                Some(("replicaset-controller", "created pod web-7d9-xk2 — desired 3, actual 2"))),
            ("pod became ready", Kind::Pod, Some(created.clone()), Some(ready.clone()), None,
                Some(("skiff-node", "pod web-7d9-xk2 Pending (unscheduled) → Running, ready"))),
            ("pod terminating", Kind::Pod, Some(ready.clone()), Some(terminating.clone()), gap,
                Some(("", "pod web-7d9-xk2 terminating — desired 3, actual 2"))),
            ("pod deleted", Kind::Pod, Some(terminating), None, gap,
                Some(("", "pod web-7d9-xk2 deleted — desired 3, actual 2"))),
            ("pod unchanged but for a label", Kind::Pod, Some(ready.clone()), Some(ready), None, None),
            ("scaled by the user", Kind::Deployment,
                Some(deploy(1, 3, "a", user.clone(), status(3))),
                Some(deploy(2, 5, "a", fields(&[("kubectl-scale", "", "2026-01-01T00:00:04Z")]), status(3))),
                None, Some(("kubectl-scale", "scaled deployment web: replicas 3 → 5"))),
            ("new image", Kind::Deployment,
                Some(deploy(1, 3, "a", user.clone(), status(3))),
                Some(deploy(2, 3, "b", fields(&[("kubectl-set", "", "2026-01-01T00:00:04Z")]), status(3))),
                None, Some(("kubectl-set", "changed deployment web: images a → b"))),
            ("status caught up", Kind::Deployment,
                Some(deploy(2, 3, "a", user.clone(), status(2))),
                Some(deploy(2, 3, "a", ctl.clone(), status(3))),
                None, Some(("deployment-controller",
                    "updated deployment web status — desired 3, ready 2 → 3, available 2 → 3 (converged)"))),
            ("status written in the second of the user's write", Kind::Deployment,
                Some(deploy(2, 3, "a", same_second.clone(), status(2))),
                Some(deploy(2, 3, "a", same_second, status(3))),
                None, Some(("deployment-controller",
                    "updated deployment web status — desired 3, ready 2 → 3, available 2 → 3 (converged)"))),
            ("status unchanged", Kind::Deployment,
                Some(deploy(2, 3, "a", user, status(3))),
                Some(deploy(2, 3, "a", ctl, status(3))),
                None, None),
        ];
        for (name, kind, old, new, owner, want) in cases {
            let got = change_line(kind, old.as_ref(), new.as_ref(), owner);
            let got = got.as_ref().map(|l| (l.actor.as_str(), l.text.as_str()));
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn event_lines_name_the_reporting_controller() {
        let new_style = json!({"metadata": {"namespace": "default", "name": "e"},
            "reportingController": "replicaset-controller", "reason": "SuccessfulCreate",
            "message": "Created pod: web-1", "type": "Normal",
            "involvedObject": {"kind": "ReplicaSet", "name": "web-7d9"},
            "lastTimestamp": "2026-01-01T00:00:01Z"});
        let line = event_line(&new_style).unwrap();
        assert_eq!(line.actor, "replicaset-controller");
        assert_eq!(
            line.text,
            "SuccessfulCreate replicaset/web-7d9: Created pod: web-1"
        );
        assert!(!line.warning);
        let old_style = json!({"metadata": {"namespace": "default", "name": "e"},
            "source": {"component": "default-scheduler"}, "reason": "FailedScheduling",
            "message": "0/0 nodes are available", "type": "Warning", "count": 4,
            "involvedObject": {"kind": "Pod", "name": "web-1"}});
        let line = event_line(&old_style).unwrap();
        assert_eq!(line.actor, "default-scheduler");
        assert_eq!(
            line.text,
            "FailedScheduling pod/web-1: 0/0 nodes are available (×4)"
        );
        assert!(line.warning);
        assert_eq!(event_line(&json!({"metadata": {}})), None);
    }
}

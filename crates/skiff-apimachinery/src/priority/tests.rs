//! Upstream's `plugin/pkg/admission/priority/admission_test.go`, case by case.

use super::*;

fn class(name: &str, value: i64, global_default: bool, policy: Option<&str>) -> Value {
    let mut c = json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
        "metadata": {"name": name}, "value": value, "globalDefault": global_default});
    if let Some(p) = policy {
        c["preemptionPolicy"] = json!(p);
    }
    c
}

fn default_class1() -> Value {
    class("default1", 1000, true, None)
}
fn default_class2() -> Value {
    class("default2", 2000, true, None)
}
fn nondefault_class1() -> Value {
    class("nondefault1", 2000, false, None)
}
fn system_cluster_critical() -> Value {
    class(
        "system-cluster-critical",
        SYSTEM_CRITICAL_PRIORITY,
        true,
        None,
    )
}
fn never_preemption_policy_class() -> Value {
    class("nopreemptionpolicy", 2000, true, Some("Never"))
}
fn preemption_policy_class() -> Value {
    class(
        "nopreemptionpolicy",
        2000,
        true,
        Some(PREEMPT_LOWER_PRIORITY),
    )
}

/// `TestPriorityClassAdmission`.
#[test]
fn priority_class_admission() {
    let system_class = class(
        "system-test",
        HIGHEST_USER_DEFINABLE_PRIORITY + 1,
        false,
        None,
    );
    let cases = [
        ("one default class", vec![], default_class1(), None),
        (
            "more than one default classes",
            vec![default_class1()],
            default_class2(),
            Some("PriorityClass default1 is already marked as default. Only one default can exist"),
        ),
        // The name and value are validation's to refuse, not the plugin's.
        (
            "system name and value are allowed by admission controller",
            vec![],
            system_class,
            None,
        ),
    ];
    for (name, existing, new, want) in cases {
        let got = validate_class(&new, &existing, false);
        assert_eq!(got.err().as_deref(), want, "{name}");
    }
}

/// The update half of `validatePriorityClass`: the default itself may be saved again, and
/// another class may not become default while one is.
#[test]
fn priority_class_update_admission() {
    let existing = vec![default_class1(), nondefault_class1()];
    assert_eq!(validate_class(&default_class1(), &existing, true), Ok(()));
    let mut promoted = nondefault_class1();
    promoted["globalDefault"] = json!(true);
    assert_eq!(
        validate_class(&promoted, &existing, true).unwrap_err(),
        "PriorityClass default1 is already marked as default. Only one default can exist"
    );
    let mut demoted = default_class1();
    demoted["globalDefault"] = json!(false);
    assert_eq!(validate_class(&demoted, &existing, true), Ok(()));
}

/// `TestDefaultPriority`: the default before and after the classes change.
#[test]
fn default_priority_follows_the_classes() {
    let mut updated_default1 = default_class1();
    updated_default1["globalDefault"] = json!(false);
    let cases = [
        (
            "simple resolution with a default class",
            vec![default_class1()],
            vec![default_class1()],
            (1000, "default1"),
            (1000, "default1"),
        ),
        (
            "add a default class",
            vec![nondefault_class1()],
            vec![nondefault_class1(), default_class1()],
            (DEFAULT_PRIORITY, ""),
            (1000, "default1"),
        ),
        (
            "multiple default classes resolves to the minimum value among them",
            vec![default_class1(), default_class2()],
            vec![default_class2()],
            (1000, "default1"),
            (2000, "default2"),
        ),
        (
            "delete default priority class",
            vec![default_class1()],
            vec![],
            (1000, "default1"),
            (DEFAULT_PRIORITY, ""),
        ),
        (
            "update default class and remove its global default",
            vec![default_class1()],
            vec![updated_default1.clone()],
            (1000, "default1"),
            (DEFAULT_PRIORITY, ""),
        ),
    ];
    for (name, before, after, want_before, want_after) in cases {
        let got = default_priority(&before);
        assert_eq!(
            (got.priority, got.class_name.as_str()),
            want_before,
            "{name}: before"
        );
        let got = default_priority(&after);
        assert_eq!(
            (got.priority, got.class_name.as_str()),
            want_after,
            "{name}: after"
        );
    }
    // With no default class, a pod preempts lower priorities.
    assert_eq!(
        default_priority(&[]).preemption_policy.as_deref(),
        Some(PREEMPT_LOWER_PRIORITY)
    );
}

fn pod(
    namespace: &str,
    class: Option<&str>,
    priority: Option<i64>,
    policy: Option<&str>,
    mirror: bool,
) -> Value {
    let mut p = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "pod", "namespace": namespace},
        "spec": {"containers": [{"name": "container"}]}});
    if let Some(c) = class {
        p["spec"]["priorityClassName"] = json!(c);
    }
    if let Some(v) = priority {
        p["spec"]["priority"] = json!(v);
    }
    if let Some(v) = policy {
        p["spec"]["preemptionPolicy"] = json!(v);
    }
    if mirror {
        p["metadata"]["annotations"] = json!({"kubernetes.io/config.mirror": ""});
    }
    p
}

/// `TestPodAdmission`, its pods (`pods[i]`) and cases in upstream's order; the errors are
/// upstream's words.
#[test]
fn pod_admission() {
    let pods = [
        pod("namespace", Some("default1"), None, None, false),
        pod("namespace", None, None, None, false),
        pod("namespace", Some("non-existing"), None, None, false),
        pod("namespace", Some("default1"), Some(1000), None, false),
        pod(
            "kube-system",
            Some("system-cluster-critical"),
            None,
            None,
            false,
        ),
        pod(
            "kube-system",
            Some("system-cluster-critical"),
            None,
            None,
            true,
        ),
        pod("namespace", Some("default1"), Some(1000), None, true),
        pod(
            "non-system-namespace",
            Some("system-cluster-critical"),
            None,
            None,
            false,
        ),
        pod("non-system-namespace", None, Some(0), None, false),
        pod("non-system-namespace", None, Some(2000), None, false),
        pod(
            "kube-system",
            Some("system-cluster-critical"),
            Some(SYSTEM_CRITICAL_PRIORITY),
            None,
            false,
        ),
        pod(
            "kube-system",
            Some("nopreemptionpolicy"),
            Some(2000),
            None,
            false,
        ),
        pod(
            "kube-system",
            Some("nopreemptionpolicy"),
            Some(2000),
            Some(PREEMPT_LOWER_PRIORITY),
            false,
        ),
        pod(
            "kube-system",
            Some("nopreemptionpolicy"),
            Some(2000),
            Some("Never"),
            false,
        ),
    ];
    type Want = Result<(i64, Option<&'static str>), &'static str>;
    let cases: Vec<(&str, Vec<Value>, usize, Want)> = vec![
        (
            "Pod with priority class",
            vec![default_class1(), nondefault_class1()],
            0,
            Ok((1000, None)),
        ),
        (
            "Pod without priority class",
            vec![default_class1()],
            1,
            Ok((1000, None)),
        ),
        (
            "pod without priority class and no existing priority class",
            vec![],
            1,
            Ok((DEFAULT_PRIORITY, Some(PREEMPT_LOWER_PRIORITY))),
        ),
        (
            "pod without priority class and no default class",
            vec![nondefault_class1()],
            1,
            Ok((DEFAULT_PRIORITY, Some(PREEMPT_LOWER_PRIORITY))),
        ),
        (
            "pod with a system priority class",
            vec![system_cluster_critical()],
            4,
            Ok((SYSTEM_CRITICAL_PRIORITY, None)),
        ),
        (
            "Pod with non-existing priority class",
            vec![default_class1(), nondefault_class1()],
            2,
            Err("no PriorityClass with name non-existing was found"),
        ),
        (
            "pod with integer priority",
            vec![],
            3,
            Err("no PriorityClass with name default1 was found"),
        ),
        (
            "mirror pod with system priority class",
            vec![system_cluster_critical()],
            5,
            Ok((SYSTEM_CRITICAL_PRIORITY, None)),
        ),
        (
            "mirror pod with integer priority",
            vec![],
            6,
            Err("no PriorityClass with name default1 was found"),
        ),
        (
            "pod with system critical priority in non-system namespace",
            vec![system_cluster_critical()],
            7,
            Ok((SYSTEM_CRITICAL_PRIORITY, None)),
        ),
        (
            "pod with priority that matches computed priority",
            vec![nondefault_class1()],
            8,
            Ok((0, None)),
        ),
        (
            "pod with priority that matches default priority",
            vec![default_class2()],
            9,
            Ok((2000, None)),
        ),
        (
            "pod with priority that matches resolved priority",
            vec![system_cluster_critical()],
            10,
            Ok((SYSTEM_CRITICAL_PRIORITY, None)),
        ),
        (
            "pod with nil preemtpion policy",
            vec![preemption_policy_class()],
            11,
            Ok((2000, Some(PREEMPT_LOWER_PRIORITY))),
        ),
        (
            "pod with preemtpion policy that matches resolved preemtpion policy",
            vec![preemption_policy_class()],
            12,
            Ok((2000, Some(PREEMPT_LOWER_PRIORITY))),
        ),
        (
            "pod with preemtpion policy that does't matches resolved preemtpion policy",
            vec![preemption_policy_class()],
            13,
            Err("the string value of PreemptionPolicy (Never) must not be provided in pod spec; priority admission controller computed PreemptLowerPriority from the given PriorityClass name"),
        ),
    ];
    for (name, classes, i, want) in cases {
        let mut p = pods[i].clone();
        match (admit_pod_create(&mut p, &classes), want) {
            (Ok(()), Ok((priority, policy))) => {
                assert_eq!(p["spec"]["priority"], priority, "{name}: {p}");
                if let Some(policy) = policy {
                    assert_eq!(p["spec"]["preemptionPolicy"], policy, "{name}: {p}");
                }
                // Admitting again (upstream's reinvocation test) changes nothing.
                let again = p.clone();
                admit_pod_create(&mut p, &classes).unwrap();
                assert_eq!(p, again, "{name}: reinvoked");
            }
            (Err(got), Err(want)) => assert_eq!(got, want, "{name}"),
            (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
        }
    }
}

/// A priority differing from the class's value is refused with upstream's message; a
/// global default class's policy is taken by a pod naming nothing, and its name recorded.
#[test]
fn pod_admission_messages_and_defaults() {
    let mut p = pod("default", Some("default1"), Some(5), None, false);
    assert_eq!(
        admit_pod_create(&mut p, &[default_class1()]).unwrap_err(),
        "the integer value of priority (5) must not be provided in pod spec; priority admission controller computed 1000 from the given PriorityClass name"
    );
    let mut p = pod("default", None, None, None, false);
    admit_pod_create(&mut p, &[never_preemption_policy_class()]).unwrap();
    assert_eq!(p["spec"]["priorityClassName"], "nopreemptionpolicy");
    assert_eq!(p["spec"]["priority"], 2000);
    assert_eq!(p["spec"]["preemptionPolicy"], "Never");
    // No default class: no class name is recorded.
    let mut p = pod("default", None, None, None, false);
    admit_pod_create(&mut p, &[nondefault_class1()]).unwrap();
    assert!(p["spec"].get("priorityClassName").is_none(), "{p}");
    // The built-in classes resolve as any other.
    let system: Vec<Value> = SYSTEM_CLASSES.iter().map(SystemClass::object).collect();
    let mut p = pod("default", Some("system-node-critical"), None, None, false);
    admit_pod_create(&mut p, &system).unwrap();
    assert_eq!(p["spec"]["priority"], 2_000_001_000);
}

/// The update half of `admitPod`: what the update leaves out is kept from the stored pod,
/// what it says stays for validation to judge.
#[test]
fn pod_update_keeps_the_priority_set_at_create() {
    let old = pod(
        "default",
        None,
        Some(1000),
        Some(PREEMPT_LOWER_PRIORITY),
        false,
    );
    let mut new = pod("default", None, None, None, false);
    admit_pod_update(&mut new, &old);
    assert_eq!(new["spec"]["priority"], 1000);
    assert_eq!(new["spec"]["preemptionPolicy"], PREEMPT_LOWER_PRIORITY);
    let mut changed = pod("default", None, Some(7), Some("Never"), false);
    admit_pod_update(&mut changed, &old);
    assert_eq!(changed["spec"]["priority"], 7);
    assert_eq!(changed["spec"]["preemptionPolicy"], "Never");
}

/// `IsKnownSystemPriorityClass`.
#[test]
fn known_system_classes() {
    assert_eq!(
        is_known_system_class("system-node-critical", 2_000_001_000, false),
        Ok(())
    );
    assert_eq!(
        is_known_system_class("system-node-critical", 0, false).unwrap_err(),
        "value of system-node-critical PriorityClass must be 2000001000"
    );
    assert_eq!(
        is_known_system_class("system-cluster-critical", SYSTEM_CRITICAL_PRIORITY, true)
            .unwrap_err(),
        "globalDefault of system-cluster-critical PriorityClass must be false"
    );
    assert_eq!(
        is_known_system_class("system-something", 1, false).unwrap_err(),
        "system-something is not a known system priority class"
    );
}

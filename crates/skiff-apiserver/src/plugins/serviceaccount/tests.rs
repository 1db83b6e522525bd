//! Cases of upstream's plugin/pkg/admission/serviceaccount/admission_test.go, on the pure
//! steps of the plugin.

use super::*;

fn token_volume(name: &str) -> Value {
    json!({"name": name, "projected": token_volume_source()})
}

fn token_mount(name: &str) -> Value {
    json!({"name": name, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH})
}

#[test]
fn the_account_defaults_to_default_and_the_deprecated_field_follows() {
    let cases = [
        ("none named", json!({}), "default"),
        ("named", json!({"serviceAccountName": "builder"}), "builder"),
        (
            "only the deprecated field",
            json!({"serviceAccount": "old"}),
            "old",
        ),
        (
            "both: the name wins",
            json!({"serviceAccountName": "new", "serviceAccount": "old"}),
            "new",
        ),
        ("empty name", json!({"serviceAccountName": ""}), "default"),
    ];
    for (what, spec, want) in cases {
        let mut pod = json!({"spec": spec});
        default_account(&mut pod);
        assert_eq!(pod["spec"]["serviceAccountName"], want, "{what}");
        assert_eq!(pod["spec"]["serviceAccount"], want, "{what}");
    }
}

#[test]
fn automount_follows_the_pod_then_the_account_then_defaults_to_yes() {
    // TestAutomount...: pod setting wins, then the service account's, then true.
    let setting =
        |v: Option<bool>| v.map_or(json!({}), |b| json!({"automountServiceAccountToken": b}));
    let cases = [
        (None, None, true),
        (Some(false), None, false),
        (Some(true), None, true),
        (None, Some(false), false),
        (Some(true), Some(false), false),
        (Some(false), Some(true), true),
        (None, Some(true), true),
    ];
    for (sa, pod, want) in cases {
        let account = setting(sa);
        let pod = json!({"spec": setting(pod)});
        assert_eq!(
            should_automount(&account, &pod),
            want,
            "sa {sa:?} pod {pod}"
        );
    }
}

#[test]
fn the_token_volume_is_upstreams() {
    let v = token_volume_source();
    assert_eq!(v["defaultMode"], 420);
    assert_eq!(
        v["sources"][0]["serviceAccountToken"],
        json!({"expirationSeconds": 3607, "path": "token"})
    );
    assert_eq!(
        v["sources"][1]["configMap"],
        json!({"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]})
    );
    assert_eq!(
        v["sources"][2]["downwardAPI"]["items"][0],
        json!({"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}})
    );
}

#[test]
fn every_container_without_a_mount_there_gets_the_token() {
    let name = "kube-api-access-abcde";
    let other = json!({"name": "blah-other-token", "mountPath": TOKEN_MOUNT_PATH});
    let cases = [
        (
            // TestAssignsDefaultServiceAccountAndBoundTokenWithNoSecretTokens
            "the container with a mount there keeps it",
            json!({"containers": [{"name": "a"}, {"name": "b", "volumeMounts": [other.clone()]}]}),
            json!({"containers": [{"name": "a", "volumeMounts": [token_mount(name)]},
                                  {"name": "b", "volumeMounts": [other.clone()]}],
                   "volumes": [token_volume(name)]}),
        ),
        (
            // TestAutomountsAPIToken, with init containers
            "init containers too",
            json!({"initContainers": [{"name": "i"}], "containers": [{"name": "a"}]}),
            json!({"initContainers": [{"name": "i", "volumeMounts": [token_mount(name)]}],
                   "containers": [{"name": "a", "volumeMounts": [token_mount(name)]}],
                   "volumes": [token_volume(name)]}),
        ),
        (
            // TestRespectsExistingMount
            "every container has a mount there: no volume",
            json!({"containers": [{"name": "a", "volumeMounts": [other.clone()]}]}),
            json!({"containers": [{"name": "a", "volumeMounts": [other.clone()]}]}),
        ),
        (
            "an existing kube-api-access volume is reused, not added again",
            json!({"containers": [{"name": "a"}],
                   "volumes": [{"name": "data", "emptyDir": {}}, token_volume("kube-api-access-xyz12")]}),
            json!({"containers": [{"name": "a", "volumeMounts": [token_mount("kube-api-access-xyz12")]}],
                   "volumes": [{"name": "data", "emptyDir": {}}, token_volume("kube-api-access-xyz12")]}),
        ),
        (
            "other volumes and mounts stay, the new volume goes last",
            json!({"containers": [{"name": "a", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                   "volumes": [{"name": "data", "emptyDir": {}}]}),
            json!({"containers": [{"name": "a", "volumeMounts": [
                       {"name": "data", "mountPath": "/data"}, token_mount(name)]}],
                   "volumes": [{"name": "data", "emptyDir": {}}, token_volume(name)]}),
        ),
    ];
    for (what, spec, want) in cases {
        let mut pod = json!({"spec": spec});
        mount_token(&mut pod, "abcde");
        assert_eq!(pod["spec"], want, "{what}");
    }
}

#[test]
fn pull_secrets_come_from_the_account_unless_the_pod_names_some() {
    let account = json!({"imagePullSecrets": [{"name": "foo"}, {"name": "bar"}]});
    // TestSetsImagePullSecrets
    let mut pod = json!({"spec": {}});
    inherit_pull_secrets(&account, &mut pod);
    assert_eq!(
        pod["spec"]["imagePullSecrets"],
        json!([{"name": "foo"}, {"name": "bar"}])
    );
    // TestDoNotSetImagePullSecrets
    let mut pod = json!({"spec": {"imagePullSecrets": [{"name": "mine"}]}});
    inherit_pull_secrets(&account, &mut pod);
    assert_eq!(pod["spec"]["imagePullSecrets"], json!([{"name": "mine"}]));
    // An account with none changes nothing.
    let mut pod = json!({"spec": {}});
    inherit_pull_secrets(&json!({}), &mut pod);
    assert_eq!(pod["spec"], json!({}));
}

#[test]
fn mirror_pods_are_recognized_by_their_annotation() {
    assert!(is_mirror_pod(
        &json!({"metadata": {"annotations": {"kubernetes.io/config.mirror": "x"}}})
    ));
    assert!(!is_mirror_pod(
        &json!({"metadata": {"annotations": {"a": "b"}}})
    ));
}

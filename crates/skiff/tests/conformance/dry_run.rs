//! Dry-run: kubectl's conformance case and the DeleteOptions body.

use super::*;

fn kubectl(args: &[&str]) -> std::process::Output {
    Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", &server().kubeconfig)
        .output()
        .expect("run kubectl")
}

fn kubectl_ok(args: &[&str]) -> String {
    let out = kubectl(args);
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn has_kubectl() -> bool {
    Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// test/e2e/kubectl/kubectl.go "Kubectl server-side dry-run should check if kubectl can dry-run
/// update Pods" (Conformance, sig-cli): `kubectl patch --dry-run=server` changes nothing.
#[test]
fn kubectl_server_side_dry_run_should_check_if_kubectl_can_dry_run_update_pods() {
    if skip_without(has_kubectl(), "kubectl on PATH") {
        return;
    }
    run(|c| async move {
        let ns = namespace(&c, "cf-dryrun-kubectl").await;
        let pod = "e2e-test-httpd-pod";
        let httpd = "registry.k8s.io/e2e-test-images/httpd:2.4.38-4";
        kubectl_ok(&[
            "-n",
            &ns,
            "run",
            pod,
            &format!("--image={httpd}"),
            &format!("--labels=run={pod}"),
        ]);
        let patch = format!(
            r#"{{"spec":{{"containers":[{{"name": "{pod}","image": "registry.k8s.io/e2e-test-images/busybox:1.36.1-1"}}]}}}}"#
        );
        kubectl_ok(&[
            "-n",
            &ns,
            "patch",
            "pod",
            pod,
            "-p",
            &patch,
            "--dry-run=server",
        ]);
        let got: Pod = Api::namespaced(c, &ns).get(pod).await.unwrap();
        assert_eq!(
            got.spec.unwrap().containers[0].image.as_deref(),
            Some(httpd),
            "the pod's image changed"
        );
        kubectl_ok(&["-n", &ns, "delete", "pods", pod]);
    });
}

/// Not an upstream e2e case (upstream covers it in integration tests): kubectl sends `dryRun`
/// in the DeleteOptions body of `kubectl delete --dry-run=server`; nothing may be deleted.
#[test]
fn dry_run_delete_from_the_delete_options_body_deletes_nothing() {
    run(|c| async move {
        let ns = namespace(&c, "cf-dryrun-delete").await;
        let cms: Api<ConfigMap> = Api::namespaced(c.clone(), &ns);
        cms.create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "keep"}})),
        )
        .await
        .unwrap();
        let r = raw(
            &c,
            Method::DELETE,
            &format!("/api/v1/namespaces/{ns}/configmaps/keep"),
            &[("content-type", "application/json")],
            r#"{"kind":"DeleteOptions","apiVersion":"v1","propagationPolicy":"Background","dryRun":["All"]}"#,
        )
        .await;
        ok(&r, "dry-run delete");
        assert!(
            cms.get_opt("keep").await.unwrap().is_some(),
            "a dry-run delete deleted the configmap"
        );
        let r = raw(
            &c,
            Method::DELETE,
            &format!("/api/v1/namespaces/{ns}"),
            &[("content-type", "application/json")],
            r#"{"kind":"DeleteOptions","apiVersion":"v1","dryRun":["All"]}"#,
        )
        .await;
        ok(&r, "dry-run delete of the namespace");
        let nsobj: Namespace = Api::all(c.clone()).get(&ns).await.unwrap();
        assert!(
            nsobj.metadata.deletion_timestamp.is_none(),
            "a dry-run delete marked the namespace for deletion"
        );
    });
}

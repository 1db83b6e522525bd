//! End-to-end: acknowledged writes and allocations survive a `kill -9` of the server.

mod common;

use std::time::Duration;

use common::{acknowledged_creates, Cluster};

#[test]
fn kill_9_mid_write_loses_nothing_acknowledged() {
    let mut c = Cluster::start();
    let apply = c.apply_configmaps(400);
    // Let some creates land, then crash the server in the middle of the stream.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while c.kubectl(&["get", "cm", "-o", "name"]).lines().count() < 50 {
        assert!(
            std::time::Instant::now() < deadline,
            "creates did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    c.crash();
    let acknowledged = acknowledged_creates(apply);

    c.boot();
    let stored = c.kubectl(&["get", "cm", "-o", "name"]);
    for name in &acknowledged {
        assert!(
            stored.contains(&format!("configmap/{name}\n")),
            "acknowledged {name} lost after kill -9"
        );
    }
}

#[test]
fn service_ips_survive_restart_without_duplicates() {
    let mut c = Cluster::start();
    let mut docs = String::new();
    for i in 0..20 {
        docs.push_str(&format!(
            "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: s{i}\nspec:\n  ports:\n  - port: 80\n"
        ));
    }
    c.kubectl_in(&["apply", "-f", "-"], &docs);
    let before = c.kubectl(&["get", "svc", "-o", "jsonpath={.items[*].spec.clusterIP}"]);
    c.crash();
    c.boot();
    let mut more = String::new();
    for i in 20..40 {
        more.push_str(&format!(
            "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: s{i}\nspec:\n  ports:\n  - port: 80\n"
        ));
    }
    c.kubectl_in(&["apply", "-f", "-"], &more);
    let after = c.kubectl(&["get", "svc", "-o", "jsonpath={.items[*].spec.clusterIP}"]);
    let ips: Vec<&str> = after.split_whitespace().collect();
    let unique: std::collections::HashSet<&str> = ips.iter().copied().collect();
    // 40 of ours and the cluster's own `kubernetes` Service.
    assert_eq!(ips.len(), 41);
    assert_eq!(unique.len(), 41, "duplicate service IPs: {after}");
    for ip in before.split_whitespace() {
        assert!(unique.contains(ip), "{ip} changed across the restart");
    }
}

#[test]
fn sigterm_stops_the_server_with_exit_code_zero_and_state_stays() {
    let mut c = Cluster::start();
    c.kubectl_in(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kept\n",
    );
    let exit = c.terminate();
    assert!(exit.success(), "{exit:?}");
    c.boot();
    assert_eq!(
        c.kubectl(&["get", "cm", "kept", "-o", "name"]).trim(),
        "configmap/kept"
    );
}

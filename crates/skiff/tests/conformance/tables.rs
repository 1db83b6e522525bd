//! Servers with support for Table transformation: `test/e2e/apimachinery/table_conversion.go`.

use super::*;

const TABLE_V1BETA1: &str = "application/json;as=Table;v=v1beta1;g=meta.k8s.io";

/// `printTable`: kubectl's table printer for the columns of priority 0.
fn print_table(table: &Value) -> String {
    let cols = table["columnDefinitions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let shown: Vec<usize> = (0..cols.len())
        .filter(|i| cols[*i]["priority"].as_i64().unwrap_or(0) == 0)
        .collect();
    let mut out = shown
        .iter()
        .map(|i| cols[*i]["name"].as_str().unwrap_or_default().to_uppercase())
        .collect::<Vec<_>>()
        .join("   ");
    for row in table["rows"].as_array().cloned().unwrap_or_default() {
        out.push('\n');
        let cells: Vec<String> = shown
            .iter()
            .map(|i| match &row["cells"][*i] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        out.push_str(&cells.join("   "));
    }
    out
}

/// table_conversion.go "should return pod details".
#[test]
fn table_should_return_pod_details() {
    run(|c| async move {
        let ns = namespace(&c, "cf-table-pod").await;
        let pod: Pod = obj(json!({
            "metadata": {"name": "pod-1"},
            "spec": {
                "restartPolicy": "Never",
                "containers": [{
                    "name": "agnhost-container",
                    "image": "registry.k8s.io/e2e-test-images/agnhost:2.53",
                    "args": ["porter"],
                    "ports": [{"containerPort": 8080}],
                    "env": [{"name": "SERVE_PORT_8080", "value": "foo"}]
                }]
            }
        }));
        Api::<Pod>::namespaced(c.clone(), &ns)
            .create(&PostParams::default(), &pod)
            .await
            .unwrap();
        let r = raw(
            &c,
            Method::GET,
            &format!("/api/v1/namespaces/{ns}/pods/pod-1"),
            &[("accept", TABLE_V1BETA1)],
            "",
        )
        .await;
        let table = ok(&r, "get pod in Table form");
        let cols = table["columnDefinitions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(cols.len() > 2, "{table}");
        let rows = table["rows"].as_array().cloned().unwrap_or_default();
        assert_eq!(rows.len(), 1, "{table}");
        assert_eq!(rows[0]["cells"].as_array().map(Vec::len), Some(cols.len()));
        assert_eq!(cols[0]["name"], "Name");
        assert_eq!(rows[0]["cells"][0], "pod-1");
        let out = print_table(&table);
        assert!(
            out.starts_with("NAME ") || out.starts_with("NAME\t"),
            "{out}"
        );
        assert!(out.contains("\npod-1 "), "{out}");
    });
}

/// table_conversion.go "should return chunks of table results for list calls".
#[test]
fn table_should_return_chunks_of_table_results_for_list_calls() {
    run(|c| async move {
        let ns = namespace(&c, "cf-table-chunks").await;
        create_pod_templates(&c, &ns, 20, 5).await;
        let uri = format!("/api/v1/namespaces/{ns}/podtemplates");
        let r = raw(
            &c,
            Method::GET,
            &format!("{uri}?limit=2"),
            &[("accept", TABLE_V1BETA1)],
            "",
        )
        .await;
        let page = ok(&r, "get pod templates in Table form");
        let rows = page["rows"].as_array().cloned().unwrap_or_default();
        assert_eq!(rows.len(), 2, "{page}");
        assert_ne!(
            page["metadata"]["resourceVersion"].as_str().unwrap_or(""),
            ""
        );
        let token = page["metadata"]["continue"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        assert_ne!(token, "", "{page}");
        assert_eq!(rows[0]["cells"][0], "template-0000");
        assert_eq!(rows[1]["cells"][0], "template-0001");

        let r = raw(
            &c,
            Method::GET,
            &format!("{uri}?continue={token}"),
            &[("accept", TABLE_V1BETA1)],
            "",
        )
        .await;
        let page = ok(&r, "get the next page in Table form");
        let rows = page["rows"].as_array().cloned().unwrap_or_default();
        assert!(!rows.is_empty(), "{page}");
        assert_eq!(rows[0]["cells"][0], "template-0002");
    });
}

/// table_conversion.go "should return generic metadata details across all namespaces for
/// nodes". Upstream's clusters have nodes; this server runs none, so the test registers one
/// that nothing can be scheduled on (unschedulable and tainted NoSchedule).
#[test]
fn table_should_return_generic_metadata_details_across_all_namespaces_for_nodes() {
    run(|c| async move {
        let nodes: Api<Node> = Api::all(c.clone());
        let node: Node = obj(json!({
            "metadata": {"name": "cf-table-node"},
            "spec": {
                "unschedulable": true,
                "taints": [{"key": "conformance.skiff/no-pods", "effect": "NoSchedule"}]
            }
        }));
        nodes.create(&PostParams::default(), &node).await.unwrap();
        let r = raw(
            &c,
            Method::GET,
            "/api/v1/nodes",
            &[("accept", TABLE_V1BETA1)],
            "",
        )
        .await;
        let table = ok(&r, "get nodes in Table form across all namespaces");
        let cols = table["columnDefinitions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(cols.len() >= 2, "{table}");
        let rows = table["rows"].as_array().cloned().unwrap_or_default();
        assert!(!rows.is_empty(), "{table}");
        assert_eq!(rows[0]["cells"].as_array().map(Vec::len), Some(cols.len()));
        assert_eq!(cols[0]["name"], "Name");
        assert_ne!(
            table["metadata"]["resourceVersion"].as_str().unwrap_or(""),
            ""
        );
        assert!(
            print_table(&table).starts_with("NAME "),
            "{}",
            print_table(&table)
        );
        nodes
            .delete("cf-table-node", &DeleteParams::default())
            .await
            .unwrap();
    });
}

/// table_conversion.go "should return a 406 for a backend which does not implement metadata"
/// (Conformance): a SelfSubjectAccessReview asked for as a Table answers 406.
#[test]
fn table_should_return_a_406_for_a_backend_which_does_not_implement_metadata() {
    run(|c| async move {
        let sar = r#"{"apiVersion":"authorization.k8s.io/v1","kind":"SelfSubjectAccessReview",
            "spec":{"nonResourceAttributes":{"path":"/","verb":"get"}}}"#;
        let r = raw(
            &c,
            Method::POST,
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            &[
                ("content-type", "application/json"),
                ("accept", "application/json;as=Table;v=v1;g=meta.k8s.io"),
            ],
            sar,
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE, "{}", r.body);
        assert_eq!(r.json()["code"], 406, "{}", r.body);
    });
}

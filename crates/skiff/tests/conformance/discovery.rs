//! Discovery: `discovery.go`, `aggregated_discovery.go`, the CRD group in discovery and the OpenAPI v3 documents.

use super::*;

/// The group-version-resources upstream's discovery tests require of every cluster.
const EXPECTED_GVR: &[(&str, &str, &str)] = &[
    (
        "admissionregistration.k8s.io",
        "v1",
        "validatingwebhookconfigurations",
    ),
    ("apiextensions.k8s.io", "v1", "customresourcedefinitions"),
    ("apiregistration.k8s.io", "v1", "apiservices"),
    ("apps", "v1", "deployments"),
    ("authentication.k8s.io", "v1", "tokenreviews"),
    ("authorization.k8s.io", "v1", "selfsubjectaccessreviews"),
    ("autoscaling", "v1", "horizontalpodautoscalers"),
    ("autoscaling", "v2", "horizontalpodautoscalers"),
    ("batch", "v1", "jobs"),
    ("certificates.k8s.io", "v1", "certificatesigningrequests"),
    ("coordination.k8s.io", "v1", "leases"),
    ("discovery.k8s.io", "v1", "endpointslices"),
    ("events.k8s.io", "v1", "events"),
    ("networking.k8s.io", "v1", "ingresses"),
    ("node.k8s.io", "v1", "runtimeclasses"),
    ("policy", "v1", "poddisruptionbudgets"),
    ("scheduling.k8s.io", "v1", "priorityclasses"),
    ("storage.k8s.io", "v1", "csinodes"),
];

const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// discovery.go "should accurately determine present and missing resources"
/// (`IsResourceEnabled`: a 404 group-version means not enabled, not an error).
#[test]
fn discovery_should_accurately_determine_present_and_missing_resources() {
    run(|c| async move {
        let enabled = |list: &Value, resource: &str| {
            list["resources"]
                .as_array()
                .is_some_and(|rs| rs.iter().any(|r| r["name"] == resource))
        };
        let core = ok(&get(&c, "/api/v1").await, "/api/v1");
        assert!(
            enabled(&core, "namespaces"),
            "namespace.v1 should always be present"
        );
        let apps = ok(&get(&c, "/apis/apps/v1").await, "/apis/apps/v1");
        assert!(
            enabled(&apps, "deployments"),
            "deployments.v1.apps should always be present"
        );
        assert!(
            !enabled(&apps, "please-dont-ever-create-this"),
            "please-dont-ever-create-this.v1.apps should never be present"
        );
        let missing = get(&c, "/apis/not-these-apps/v1").await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.body);
    });
}

/// discovery.go "should validate PreferredVersion for each APIGroup" (Conformance).
#[test]
fn discovery_should_validate_preferred_version_for_each_api_group() {
    run(|c| async move {
        let list = ok(&get(&c, "/apis/").await, "/apis/");
        assert_eq!(list["kind"], "APIGroupList");
        let groups = list["groups"].as_array().cloned().unwrap_or_default();
        assert!(!groups.is_empty(), "Missing APIGroups");
        for group in groups {
            let name = group["name"].as_str().unwrap_or_default();
            if name.ends_with(".example.com") {
                continue;
            }
            let path = format!("/apis/{name}/");
            let check = ok(&get(&c, &path).await, &path);
            assert_eq!(check["kind"], "APIGroup", "{check}");
            let versions = check["versions"].as_array().cloned().unwrap_or_default();
            assert!(!versions.is_empty(), "No version found for {name}");
            let preferred = &check["preferredVersion"]["groupVersion"];
            assert!(
                versions.iter().any(|v| &v["groupVersion"] == preferred),
                "Failed to find a valid version for PreferredVersion {preferred} in {versions:?}"
            );
        }
    });
}

/// discovery.go "should locate the groupVersion and a resource within each APIGroup"
/// (Conformance).
#[test]
fn discovery_should_locate_the_group_version_and_a_resource_within_each_api_group() {
    run(|c| async move {
        let mut missing = Vec::new();
        let mut cases = vec![("", "v1", "namespaces")];
        cases.extend(
            EXPECTED_GVR
                .iter()
                .copied()
                .filter(|(g, _, _)| !g.is_empty()),
        );
        for (group, version, resource) in cases {
            let path = if group.is_empty() {
                format!("/api/{version}")
            } else {
                format!("/apis/{group}/{version}")
            };
            let r = get(&c, &path).await;
            if !r.status.is_success() {
                missing.push(format!("{path}: {}", r.status));
                continue;
            }
            let list = r.json();
            let gv = if group.is_empty() {
                version.to_owned()
            } else {
                format!("{group}/{version}")
            };
            assert_eq!(list["groupVersion"], gv.as_str(), "{path}");
            let found = list["resources"]
                .as_array()
                .is_some_and(|rs| rs.iter().any(|r| r["name"] == resource));
            if !found {
                missing.push(format!("{path}: no {resource}"));
            }
        }
        assert!(missing.is_empty(), "Fail to access: {missing:#?}");
    });
}

fn gvr_present_aggregated(list: &Value, group: &str, version: &str, resource: &str) -> bool {
    list["items"].as_array().is_some_and(|groups| {
        groups.iter().any(|g| {
            g["metadata"]["name"].as_str().unwrap_or("") == group
                && g["versions"].as_array().is_some_and(|vs| {
                    vs.iter().any(|v| {
                        v["version"] == version
                            && v["resources"]
                                .as_array()
                                .is_some_and(|rs| rs.iter().any(|r| r["resource"] == resource))
                    })
                })
        })
    })
}

/// aggregated_discovery.go "should support raw aggregated discovery endpoint Accept headers"
/// (Conformance).
#[test]
fn aggregated_discovery_should_support_raw_aggregated_discovery_endpoint_accept_headers() {
    run(|c| async move {
        let r = raw(&c, Method::GET, "/apis", &[("accept", AGGREGATED)], "").await;
        let list = ok(&r, "raw aggregated discovery document");
        assert_eq!(list["kind"], "APIGroupDiscoveryList", "{}", r.content_type);
        let missing: Vec<_> = EXPECTED_GVR
            .iter()
            .filter(|(g, v, res)| !gvr_present_aggregated(&list, g, v, res))
            .collect();
        assert!(
            missing.is_empty(),
            "Expected gvrs to exist in discovery: {missing:?}"
        );
        let r = raw(&c, Method::GET, "/api", &[("accept", AGGREGATED)], "").await;
        let legacy = ok(&r, "raw aggregated discovery document of /api");
        assert!(
            gvr_present_aggregated(&legacy, "", "v1", "namespaces"),
            "Expected legacy gvr api v1 namespaces to exist in discovery"
        );
    });
}

/// aggregated_discovery.go "should support aggregated discovery interface" (Conformance):
/// client-go's `GroupsAndMaybeResources` (aggregated first, with its legacy fallback).
#[test]
fn aggregated_discovery_should_support_aggregated_discovery_interface() {
    run(|c| async move {
        let accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        let mut resources: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for root in ["/api", "/apis"] {
            let r = raw(&c, Method::GET, root, &[("accept", accept)], "").await;
            let doc = ok(&r, root);
            assert!(
                r.content_type.contains("as=APIGroupDiscoveryList"),
                "{root} did not answer aggregated discovery: {}",
                r.content_type
            );
            for g in doc["items"].as_array().cloned().unwrap_or_default() {
                for v in g["versions"].as_array().cloned().unwrap_or_default() {
                    let key = (
                        g["metadata"]["name"].as_str().unwrap_or("").to_owned(),
                        v["version"].as_str().unwrap_or("").to_owned(),
                    );
                    let names = v["resources"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|r| r["resource"].as_str().map(str::to_owned))
                        .collect();
                    resources.insert(key, names);
                }
            }
        }
        let mut expected = EXPECTED_GVR.to_vec();
        expected.push(("", "v1", "namespaces"));
        let missing: Vec<_> = expected
            .iter()
            .filter(|(g, v, res)| {
                !resources
                    .get(&(g.to_string(), v.to_string()))
                    .is_some_and(|rs| rs.iter().any(|r| r == res))
            })
            .collect();
        assert!(missing.is_empty(), "Expected to be present: {missing:?}");
    });
}

// ---------------------------------------------------------------------------------------------
// CustomResourceDefinition resources (test/e2e/apimachinery/custom_resource_definition.go)

/// custom_resource_definition.go "should include custom resource definition resources in
/// discovery documents" (Conformance): the apiextensions.k8s.io group, its v1 version as the
/// preferred one, and `customresourcedefinitions` in its resource list.
#[test]
fn crd_should_include_custom_resource_definition_resources_in_discovery_documents() {
    run(|c| async move {
        let list = ok(&get(&c, "/apis").await, "/apis");
        let group = list["groups"]
            .as_array()
            .and_then(|gs| gs.iter().find(|g| g["name"] == "apiextensions.k8s.io"))
            .cloned()
            .expect("apiextensions.k8s.io API group in /apis");
        assert!(
            group["versions"]
                .as_array()
                .is_some_and(|vs| vs.iter().any(|v| v["version"] == "v1")),
            "apiextensions.k8s.io/v1 in /apis: {group}"
        );
        assert_eq!(group["preferredVersion"]["version"], "v1", "{group}");

        let group = ok(
            &get(&c, "/apis/apiextensions.k8s.io").await,
            "/apis/apiextensions.k8s.io",
        );
        assert!(
            group["versions"]
                .as_array()
                .is_some_and(|vs| vs.iter().any(|v| v["version"] == "v1")),
            "{group}"
        );
        assert_eq!(group["preferredVersion"]["version"], "v1", "{group}");

        let resources = ok(
            &get(&c, "/apis/apiextensions.k8s.io/v1").await,
            "/apis/apiextensions.k8s.io/v1",
        );
        assert!(
            resources["resources"]
                .as_array()
                .is_some_and(|rs| rs.iter().any(|r| r["name"] == "customresourcedefinitions")),
            "customresourcedefinitions in /apis/apiextensions.k8s.io/v1: {resources}"
        );
    });
}

// ---------------------------------------------------------------------------------------------
// OpenAPIV3 (test/e2e/apimachinery/openapiv3.go)

/// openapiv3.go "should round trip OpenAPI V3 for all built-in group versions": every built-in
/// group-version's document (groups ending in k8s.io, and apps, autoscaling, batch, policy)
/// is fetched from the `/openapi/v3` root and decodes as an OpenAPI 3.0 document. Upstream
/// decodes into kube-openapi's Go types and re-encodes; here the document must decode as
/// JSON with the shape those types require and survive the same round trip.
#[test]
fn openapiv3_should_round_trip_openapi_v3_for_all_built_in_group_versions() {
    run(|c| async move {
        let root = ok(&get(&c, "/openapi/v3").await, "/openapi/v3");
        let paths = root["paths"]
            .as_object()
            .cloned()
            .expect("paths in the /openapi/v3 root");
        let builtin = ["apps", "autoscaling", "batch", "policy"];
        let mut checked = 0;
        for (path, entry) in paths {
            // "apis/<group>/<version>"; the core group ("api/v1") is skipped as upstream does.
            let Some(rest) = path.strip_prefix("apis/") else {
                continue;
            };
            let Some((group, _version)) = rest.split_once('/') else {
                continue;
            };
            if !group.ends_with("k8s.io") && !builtin.contains(&group) {
                continue;
            }
            let url = entry["serverRelativeURL"]
                .as_str()
                .expect("serverRelativeURL")
                .to_owned();
            let r = raw(&c, Method::GET, &url, &[("accept", "application/json")], "").await;
            let spec = ok(&r, &url);
            assert!(
                spec["openapi"]
                    .as_str()
                    .is_some_and(|v| v.starts_with("3.")),
                "{url}: openapi version {}",
                spec["openapi"]
            );
            assert!(spec["paths"].is_object(), "{url}: paths");
            assert!(
                spec["components"]["schemas"].is_object(),
                "{url}: components.schemas"
            );
            let again: Value =
                serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
            assert_eq!(again, spec, "{url} does not round trip");
            checked += 1;
        }
        assert!(checked > 0, "no built-in group version in /openapi/v3");
    });
}

// ---------------------------------------------------------------------------------------------
// Custom resources in discovery

/// `discovery.StorageVersionHash(group, version, kind)`: the first 8 bytes of the SHA-256 of
/// `group/version/kind`, base64. (Upstream's test computes it the same way, warning that the
/// algorithm is an implementation detail.)
fn storage_version_hash(group: &str, version: &str, kind: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{group}/{version}/{kind}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(&digest[..8])
}

/// discovery.go "Custom resource should have storage version hash": a test CRD
/// (`crd.CreateTestCRD`: group `<base>.example.com`, version v1) lists its resource with the
/// hash of its storage version.
#[test]
fn discovery_custom_resource_should_have_storage_version_hash() {
    run(|c| async move {
        let suffix = generate_name("");
        let name = format!("e2e-test-discovery-{suffix}-crd");
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("{name}s.discovery.example.com")},
            "spec": {
                "group": "discovery.example.com",
                "scope": "Namespaced",
                "names": {"plural": format!("{name}s"), "singular": name, "kind": name, "listKind": format!("{name}List")},
                "versions": [{"name": "v1", "served": true, "storage": true, "schema": allow_all_schema()}],
            }
        });
        create_crd(&c, &crd).await;
        let resources = ok(
            &get(&c, "/apis/discovery.example.com/v1").await,
            "the discovery doc for discovery.example.com/v1",
        );
        let expected = storage_version_hash("discovery.example.com", "v1", &name);
        let r = resources["resources"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["name"] == format!("{name}s")))
            .cloned()
            .unwrap_or_else(|| {
                panic!("didn't find resource {name}s in the discovery doc: {resources}")
            });
        assert_eq!(
            r["storageVersionHash"], expected,
            "expected storageVersionHash of discovery.example.com/v1/{name}s to be {expected}"
        );
        delete_crd(&c, &crd).await;
    });
}

/// The CRD upstream's aggregated discovery CRD cases create: `testcrds` in a random group.
fn testcrd() -> Value {
    let group = format!("{}.example.com", generate_name("group"));
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("testcrds.{group}")},
        "spec": {
            "group": group,
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": allow_all_schema()}],
            "names": {"plural": "testcrds", "singular": "testcrd", "kind": "testcrd", "listKind": "testcrdList"},
            "scope": "Namespaced",
        }
    })
}

/// aggregated_discovery.go "should support raw aggregated discovery request for CRDs"
/// (Conformance).
#[test]
fn aggregated_discovery_should_support_raw_aggregated_discovery_request_for_crds() {
    run(|c| async move {
        let crd = testcrd();
        create_crd(&c, &crd).await;
        let group = crd["spec"]["group"].as_str().unwrap().to_owned();
        eventually(
            30,
            "CustomResourceDefinition GVR to appear in Discovery",
            || async {
                let r = raw(&c, Method::GET, "/apis", &[("accept", AGGREGATED)], "").await;
                let list = ok(&r, "raw aggregated discovery document");
                gvr_present_aggregated(&list, &group, "v1", "testcrds").then_some(())
            },
        )
        .await;
        delete_crd(&c, &crd).await;
    });
}

/// aggregated_discovery.go "should support aggregated discovery interface for CRDs"
/// (Conformance): client-go's `GroupsAndMaybeResources` asks with its full Accept list.
#[test]
fn aggregated_discovery_should_support_aggregated_discovery_interface_for_crds() {
    run(|c| async move {
        let crd = testcrd();
        create_crd(&c, &crd).await;
        let group = crd["spec"]["group"].as_str().unwrap().to_owned();
        let accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        eventually(
            30,
            "CustomResourceDefinition GVR to appear in Discovery",
            || async {
                let r = raw(&c, Method::GET, "/apis", &[("accept", accept)], "").await;
                let doc = ok(&r, "/apis");
                assert!(
                    r.content_type.contains("as=APIGroupDiscoveryList"),
                    "{}",
                    r.content_type
                );
                gvr_present_aggregated(&doc, &group, "v1", "testcrds").then_some(())
            },
        )
        .await;
        delete_crd(&c, &crd).await;
    });
}

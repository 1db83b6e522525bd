//! The `Available` condition of an APIService, decided as kube-aggregator's availability
//! controllers do (local: always available; remote: service, port, endpoints, then a
//! discovery GET), from objects and a probe result passed in: no I/O here.

use serde_json::Value;

/// The condition the controllers write: status, reason and message (the transition time is
/// the writer's business).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub status: &'static str,
    pub reason: &'static str,
    pub message: String,
}

impl Condition {
    fn falsy(reason: &'static str, message: String) -> Condition {
        Condition {
            status: "False",
            reason,
            message,
        }
    }
}

/// The Service an APIService names (`spec.service`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServiceRef {
    pub namespace: String,
    pub name: String,
    pub port: i64,
}

impl ServiceRef {
    /// `spec.service` of an APIService; `None` for a Local one. The port defaults to 443.
    pub fn of(api_service: &Value) -> Option<ServiceRef> {
        let service = api_service["spec"]["service"].as_object()?;
        Some(ServiceRef {
            namespace: service.get("namespace")?.as_str()?.to_owned(),
            name: service.get("name")?.as_str()?.to_owned(),
            port: service.get("port").and_then(Value::as_i64).unwrap_or(443),
        })
    }

    /// The name the backend's serving certificate must carry, as upstream dials it.
    pub fn server_name(&self) -> String {
        format!("{}.{}.svc", self.name, self.namespace)
    }
}

/// Where requests for a remote APIService go: a host (an endpoint address, or an
/// ExternalName) and port, spoken to over HTTPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub host: String,
    pub port: i64,
}

impl Backend {
    /// `https://host:port`, with IPv6 addresses bracketed.
    pub fn base_url(&self) -> String {
        if self.host.contains(':') {
            format!("https://[{}]:{}", self.host, self.port)
        } else {
            format!("https://{}:{}", self.host, self.port)
        }
    }
}

/// Upstream's `NewLocalAvailableAPIServiceCondition`.
pub fn local() -> Condition {
    Condition {
        status: "True",
        reason: "Local",
        message: "Local APIServices are always available".into(),
    }
}

/// The checks before the discovery GET (the remote controller's first half): the Service
/// must exist and, for a ClusterIP Service, listen on the port and have endpoints with an
/// address for that port's name. `Ok` carries the backend to probe and proxy to.
///
/// `pick` chooses among the ready addresses (a counter, so load spreads); it is passed in
/// to keep this function deterministic under test.
pub fn check_service(
    svc: &ServiceRef,
    service: Option<&Value>,
    endpoints: Option<&Value>,
    pick: usize,
) -> Result<Backend, Condition> {
    let Some(service) = service else {
        return Err(Condition::falsy(
            "ServiceNotFound",
            format!("service/{} in {:?} is not present", svc.name, svc.namespace),
        ));
    };
    let service_type = service["spec"]["type"].as_str().unwrap_or("ClusterIP");
    if service_type == "ExternalName" {
        let host = service["spec"]["externalName"].as_str().unwrap_or("");
        return Ok(Backend {
            host: host.to_owned(),
            port: svc.port,
        });
    }
    let port = service["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["port"].as_i64() == Some(svc.port));
    let Some(port) = port else {
        return Err(Condition::falsy(
            "ServicePortError",
            format!(
                "service/{} in {:?} is not listening on port {}",
                svc.name, svc.namespace, svc.port
            ),
        ));
    };
    let port_name = port["name"].as_str().unwrap_or("");
    let Some(endpoints) = endpoints else {
        return Err(Condition::falsy(
            "EndpointsNotFound",
            format!(
                "cannot find endpoints for service/{} in {:?}",
                svc.name, svc.namespace
            ),
        ));
    };
    // Every (address, port) the Service's port name reaches, as upstream's resolver picks
    // from.
    let mut candidates: Vec<Backend> = Vec::new();
    for subset in endpoints["subsets"].as_array().into_iter().flatten() {
        let Some(port) = subset["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"].as_str().unwrap_or("") == port_name)
            .and_then(|p| p["port"].as_i64())
        else {
            continue;
        };
        for address in subset["addresses"].as_array().into_iter().flatten() {
            if let Some(ip) = address["ip"].as_str() {
                candidates.push(Backend {
                    host: ip.to_owned(),
                    port,
                });
            }
        }
    }
    if candidates.is_empty() {
        return Err(Condition::falsy(
            "MissingEndpoints",
            format!(
                "endpoints for service/{} in {:?} have no addresses with port name {:?}",
                svc.name, svc.namespace, port_name
            ),
        ));
    }
    let n = candidates.len();
    Ok(candidates.swap_remove(pick % n))
}

/// The condition after the discovery GET of `url`: any 2xx passes; anything else (a
/// status, or no response) is upstream's FailedDiscoveryCheck with its message.
pub fn probe_result(url: &str, result: Result<u16, String>) -> Condition {
    match result {
        Ok(code) if (200..300).contains(&code) => Condition {
            status: "True",
            reason: "Passed",
            message: "all checks passed".into(),
        },
        Ok(code) => Condition::falsy(
            "FailedDiscoveryCheck",
            format!("failing or missing response from {url}: bad status from {url}: {code}"),
        ),
        Err(e) => Condition::falsy(
            "FailedDiscoveryCheck",
            format!("failing or missing response from {url}: {e}"),
        ),
    }
}

/// Whether an APIService's `Available` condition is True (the proxy serves only then).
pub fn is_available(api_service: &Value) -> bool {
    api_service["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Available" && c["status"] == "True")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // Ported from kube-aggregator's available_controller_test.go (TestSync).
    const PORT: i64 = 1234;
    const PORT_NAME: &str = "testPort";

    fn svc_ref() -> ServiceRef {
        ServiceRef {
            namespace: "foo".into(),
            name: "bar".into(),
            port: PORT,
        }
    }

    fn service(name: &str, port: i64, port_name: &str) -> Value {
        json!({"metadata": {"namespace": "foo", "name": name},
               "spec": {"type": "ClusterIP", "ports": [{"port": port, "name": port_name}]}})
    }

    fn endpoints_with_address(port: i64, port_name: &str) -> Value {
        json!({"metadata": {"namespace": "foo", "name": "bar"},
               "subsets": [{"addresses": [{"ip": "val"}], "ports": [{"name": port_name, "port": port}]}]})
    }

    fn check(service: Option<Value>, endpoints: Option<Value>) -> Result<Backend, Condition> {
        check_service(&svc_ref(), service.as_ref(), endpoints.as_ref(), 0)
    }

    #[test]
    fn local_apiservices_are_always_available() {
        let c = local();
        assert_eq!(
            (c.status, c.reason, c.message.as_str()),
            ("True", "Local", "Local APIServices are always available")
        );
    }

    #[test]
    fn a_missing_service_is_service_not_found() {
        let c = check(None, None).unwrap_err();
        assert_eq!(c.reason, "ServiceNotFound");
        assert_eq!(c.status, "False");
        assert_eq!(c.message, r#"service/bar in "foo" is not present"#);
    }

    #[test]
    fn a_service_on_another_port_is_a_service_port_error() {
        let svc = json!({"spec": {"type": "ClusterIP", "ports": [{"port": 6443}]}});
        let c = check(Some(svc), Some(endpoints_with_address(PORT, PORT_NAME))).unwrap_err();
        assert_eq!(c.reason, "ServicePortError");
        assert_eq!(
            c.message,
            format!(r#"service/bar in "foo" is not listening on port {PORT}"#)
        );
    }

    #[test]
    fn no_endpoints_object_is_endpoints_not_found() {
        let c = check(Some(service("bar", PORT, PORT_NAME)), None).unwrap_err();
        assert_eq!(c.reason, "EndpointsNotFound");
        assert_eq!(
            c.message,
            r#"cannot find endpoints for service/bar in "foo""#
        );
    }

    #[test]
    fn endpoints_without_addresses_are_missing_endpoints() {
        let empty = json!({"metadata": {"namespace": "foo", "name": "bar"}});
        let c = check(Some(service("bar", PORT, PORT_NAME)), Some(empty)).unwrap_err();
        assert_eq!(c.reason, "MissingEndpoints");
        assert_eq!(
            c.message,
            r#"endpoints for service/bar in "foo" have no addresses with port name "testPort""#
        );
    }

    #[test]
    fn endpoints_with_another_port_name_are_missing_endpoints() {
        let c = check(
            Some(service("bar", PORT, PORT_NAME)),
            Some(endpoints_with_address(PORT, "wrongName")),
        )
        .unwrap_err();
        assert_eq!(c.reason, "MissingEndpoints");
        assert_eq!(
            c.message,
            r#"endpoints for service/bar in "foo" have no addresses with port name "testPort""#
        );
    }

    #[test]
    fn a_ready_endpoint_is_the_backend_at_the_endpoint_port() {
        let backend = check(
            Some(service("bar", PORT, PORT_NAME)),
            Some(endpoints_with_address(8443, PORT_NAME)),
        )
        .unwrap();
        assert_eq!(
            backend,
            Backend {
                host: "val".into(),
                port: 8443
            }
        );
    }

    #[test]
    fn unnamed_ports_match_unnamed_endpoint_ports() {
        let svc = json!({"spec": {"ports": [{"port": 443, "targetPort": 8443}]}});
        let eps = json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
                                      "ports": [{"port": 8443}]}]});
        let svc_ref = ServiceRef {
            port: 443,
            ..svc_ref()
        };
        let first = check_service(&svc_ref, Some(&svc), Some(&eps), 0).unwrap();
        let second = check_service(&svc_ref, Some(&svc), Some(&eps), 1).unwrap();
        assert_eq!(first.base_url(), "https://10.0.0.1:8443");
        assert_eq!(second.base_url(), "https://10.0.0.2:8443");
    }

    #[test]
    fn external_name_services_go_straight_to_the_probe() {
        let svc = json!({"spec": {"type": "ExternalName", "externalName": "metrics.example.com"}});
        let backend = check(Some(svc), None).unwrap();
        assert_eq!(backend.base_url(), "https://metrics.example.com:1234");
    }

    #[test]
    fn a_2xx_discovery_answer_passes() {
        let c = probe_result("https://val:1234/apis/remote/group", Ok(200));
        assert_eq!(
            (c.status, c.reason, c.message.as_str()),
            ("True", "Passed", "all checks passed")
        );
    }

    #[test]
    fn a_bad_status_or_no_answer_fails_the_discovery_check() {
        let url = "https://val:1234/apis/remote/group";
        let c = probe_result(url, Ok(403));
        assert_eq!((c.status, c.reason), ("False", "FailedDiscoveryCheck"));
        assert!(c.message.starts_with("failing or missing response from"));
        assert!(c.message.ends_with(": 403"), "{}", c.message);
        let c = probe_result(url, Err("connection refused".into()));
        assert_eq!(
            c.message,
            format!("failing or missing response from {url}: connection refused")
        );
    }

    #[test]
    fn service_refs_default_their_port_to_443() {
        let s =
            json!({"spec": {"service": {"namespace": "kube-system", "name": "metrics-server"}}});
        let r = ServiceRef::of(&s).unwrap();
        assert_eq!(r.port, 443);
        assert_eq!(r.server_name(), "metrics-server.kube-system.svc");
        assert_eq!(ServiceRef::of(&json!({"spec": {}})), None);
    }
}

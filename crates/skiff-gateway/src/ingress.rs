//! Pure: `networking.k8s.io/v1` Ingresses of skiff's IngressClass, served by the same data
//! plane as HTTPRoutes (most Helm charts still ship Ingresses). An Ingress is skiff's when
//! its `ingressClassName` names a class whose controller is [`INGRESS_CONTROLLER`], or when
//! it names none and such a class is marked default (as upstream's admission defaults it).
//! Rules become entries of port 80's hostname-less listener: Exact before Prefix, longest
//! prefix first (`ImplementationSpecific` is Prefix here), exact hosts before wildcards,
//! `defaultBackend` last.
//!
//! An Ingress with `tls` is served on port 443 too, as k3s's Traefik does: the same rules,
//! behind the certificates of its `tls[].secretName` Secrets (in its namespace), each
//! picked by SNI for its `hosts` (none: any name). Plain HTTP on port 80 still serves
//! it (no redirect, Traefik's default). A Secret missing or unparsable leaves its hosts
//! without a certificate (nginx would serve a fake default one; skiff fails the
//! handshake rather than present a certificate for another name), and the Ingress's other
//! certificates still serve.

use crate::config::{self, Inputs, Order, Table};
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressClass};
use std::sync::Arc;

/// The controller of skiff's IngressClass.
pub const INGRESS_CONTROLLER: &str = "skiff.dev/ingress-controller";
/// The port Ingresses are served on.
pub const HTTP_PORT: u16 = 80;
/// The port Ingresses with `tls` are also served on, in HTTPS.
pub const HTTPS_PORT: u16 = 443;
/// The annotation marking the default IngressClass.
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";

/// Whether `ingress` is served by skiff.
pub fn is_ours(ingress: &Ingress, classes: &[&IngressClass]) -> bool {
    let ours = |c: &&&IngressClass| {
        c.spec.as_ref().and_then(|s| s.controller.as_deref()) == Some(INGRESS_CONTROLLER)
    };
    let class_name = ingress
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.as_deref());
    match class_name {
        Some(name) => classes
            .iter()
            .filter(ours)
            .any(|c| c.metadata.name.as_deref() == Some(name)),
        None => classes.iter().filter(ours).any(|c| {
            c.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
                .is_some_and(|v| v == "true")
        }),
    }
}

/// An Ingress backend as a Gateway API backendRef (a named port resolved to its number).
fn backend_ref(ns: &str, b: &IngressBackend, inputs: &Inputs<'_>) -> crate::api::BackendRef {
    let Some(svc) = &b.service else {
        // A resource backend: not a Service, so it resolves to InvalidKind (500).
        return crate::api::BackendRef {
            group: Some("resource".into()),
            kind: b.resource.as_ref().map(|r| r.kind.clone()),
            name: b
                .resource
                .as_ref()
                .map(|r| r.name.clone())
                .unwrap_or_default(),
            ..Default::default()
        };
    };
    let port = svc.port.as_ref().and_then(|p| match (&p.number, &p.name) {
        (Some(n), _) => Some(*n),
        (None, Some(name)) => inputs
            .services
            .iter()
            .find(|s| {
                s.metadata.namespace.as_deref() == Some(ns)
                    && s.metadata.name.as_deref() == Some(svc.name.as_str())
            })
            .and_then(|s| s.spec.as_ref()?.ports.as_ref())
            .and_then(|ps| ps.iter().find(|p| p.name.as_deref() == Some(name)))
            .map(|p| p.port),
        (None, None) => None,
    });
    crate::api::BackendRef {
        name: svc.name.clone(),
        port: port.or(Some(0)),
        ..Default::default()
    }
}

/// Adds every served Ingress to `table`; returns the served ones as `(namespace, name)`.
pub fn add(inputs: &Inputs<'_>, table: &mut Table) -> Vec<(String, String)> {
    let mut served = Vec::new();
    let mut ingresses: Vec<&Ingress> = inputs
        .ingresses
        .iter()
        .copied()
        .filter(|i| i.metadata.deletion_timestamp.is_none())
        .filter(|i| is_ours(i, &inputs.ingress_classes))
        .collect();
    ingresses.sort_by_key(|i| {
        (
            config::created(&i.metadata),
            i.metadata.namespace.clone(),
            i.metadata.name.clone(),
        )
    });
    for ing in ingresses {
        let ns = ing.metadata.namespace.as_deref().unwrap_or("default");
        let name = ing.metadata.name.as_deref().unwrap_or_default();
        let key: Arc<str> = format!("{ns}/{name}").into();
        let Some(spec) = &ing.spec else { continue };
        let mut added = false;
        // Port 80 unless it is an HTTPS listener's (Ingresses are plain HTTP there).
        if table.ports.get(&HTTP_PORT).is_none_or(|p| p.tls.is_none()) {
            let index = table.ports.entry(HTTP_PORT).or_default().listener(None);
            add_rules(ing, ns, &key, inputs, index);
            added = true;
        }
        // Port 443 with its certificates, unless it is a plain HTTP listener's.
        let tls = spec.tls.as_deref().unwrap_or_default();
        if !tls.is_empty() && table.ports.get(&HTTPS_PORT).is_none_or(|p| p.tls.is_some()) {
            let port = table.ports.entry(HTTPS_PORT).or_default();
            let certs = port.tls.get_or_insert_with(Default::default);
            for t in tls {
                let secret = t.secret_name.as_deref().and_then(|n| {
                    inputs.secrets.iter().find(|s| {
                        s.metadata.namespace.as_deref() == Some(ns)
                            && s.metadata.name.as_deref() == Some(n)
                    })
                });
                let Some(Ok(cert)) = secret.map(|s| config::certified_key(s)) else {
                    continue;
                };
                match t.hosts.as_deref() {
                    None | Some([]) => certs.add(None, cert),
                    Some(hosts) => {
                        for h in hosts {
                            certs.add(Some(h.to_ascii_lowercase()), cert.clone());
                        }
                    }
                }
            }
            add_rules(ing, ns, &key, inputs, port.listener(None));
            added = true;
        }
        if added {
            served.push((ns.to_string(), name.to_string()));
        }
    }
    served
}

/// One Ingress's rules and defaultBackend as entries of a port's hostname-less listener.
fn add_rules(
    ing: &Ingress,
    ns: &str,
    key: &Arc<str>,
    inputs: &Inputs<'_>,
    index: &mut config::HostIndex,
) {
    let Some(spec) = &ing.spec else { return };
    for (rule_index, rule) in spec.rules.iter().flatten().enumerate() {
        let host = rule.host.as_deref().map(str::to_ascii_lowercase);
        for (i, path) in rule.http.iter().flat_map(|h| h.paths.iter()).enumerate() {
            let value = path.path.as_deref().unwrap_or("/");
            let exact = path.path_type == "Exact";
            let b = backend_ref(ns, &path.backend, inputs);
            let entry = config::single_backend_entry(
                exact,
                value,
                config::resolve_backend(ns, config::RouteKind::Http, &b, inputs)
                    .map_err(|(_, m)| m),
                key.clone(),
                Order::ingress(
                    exact,
                    value,
                    config::created(&ing.metadata),
                    key,
                    rule_index,
                    i,
                ),
            );
            index.push(host.as_deref(), entry);
        }
    }
    if let Some(default) = &spec.default_backend {
        let b = backend_ref(ns, default, inputs);
        let entry = config::single_backend_entry(
            false,
            "/",
            config::resolve_backend(ns, config::RouteKind::Http, &b, inputs).map_err(|(_, m)| m),
            key.clone(),
            // After every rule of every Ingress: the catch-all of last resort.
            Order::ingress(false, "", "~".into(), key, usize::MAX, 0),
        );
        index.push(None, entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn ingresses_route_by_host_and_path() {
        let classes: Vec<IngressClass> = vec![
            obj(
                json!({"metadata": {"name": "skiff", "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}},
                       "spec": {"controller": INGRESS_CONTROLLER}}),
            ),
            obj(
                json!({"metadata": {"name": "traefik"}, "spec": {"controller": "traefik.io/ingress-controller"}}),
            ),
        ];
        let services: Vec<k8s_openapi::api::core::v1::Service> = ["podinfo", "api", "fallback"]
            .iter()
            .map(|n| {
                obj(json!({"metadata": {"name": n, "namespace": "apps"},
                                "spec": {"ports": [{"name": "http", "port": 9898}]}}))
            })
            .collect();
        let ingresses: Vec<Ingress> = vec![
            obj(
                json!({"metadata": {"name": "podinfo", "namespace": "apps"}, "spec": {
                "defaultBackend": {"service": {"name": "fallback", "port": {"number": 9898}}},
                "rules": [{"host": "podinfo.local", "http": {"paths": [
                    {"path": "/", "pathType": "ImplementationSpecific", "backend": {"service": {"name": "podinfo", "port": {"name": "http"}}}},
                    {"path": "/api", "pathType": "Prefix", "backend": {"service": {"name": "api", "port": {"number": 9898}}}},
                    {"path": "/exact", "pathType": "Exact", "backend": {"service": {"name": "gone", "port": {"number": 80}}}},
                ]}}]}}),
            ),
            obj(
                json!({"metadata": {"name": "theirs", "namespace": "apps"}, "spec": {
                "ingressClassName": "traefik",
                "rules": [{"host": "theirs.local", "http": {"paths": [
                    {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "api", "port": {"number": 9898}}}}]}}]}}),
            ),
        ];
        let inputs = Inputs {
            controller_name: "skiff.dev/gateway-controller",
            services: services.iter().collect(),
            ingresses: ingresses.iter().collect(),
            ingress_classes: classes.iter().collect(),
            ..Default::default()
        };
        let (table, report) = config::build(&inputs);
        assert_eq!(
            report.ingresses,
            [("apps".to_string(), "podinfo".to_string())]
        );
        let map = hyper::HeaderMap::new();
        let to = |host: &str, path: &str| {
            let view = config::RequestView {
                host,
                path,
                query: None,
                method: "GET",
                headers: &map,
            };
            match table.ports[&80].route(&view) {
                None => "404".to_string(),
                Some(e) => match &e.action.backends[0].target {
                    Ok(u) => u.name.to_string(),
                    Err(why) => format!("500 {why}"),
                },
            }
        };
        assert_eq!(to("podinfo.local", "/"), "apps/podinfo:9898");
        assert_eq!(to("podinfo.local", "/api/x"), "apps/api:9898");
        assert_eq!(to("podinfo.local", "/apix"), "apps/podinfo:9898");
        assert_eq!(
            to("podinfo.local", "/exact"),
            "500 Service apps/gone not found"
        );
        assert_eq!(to("other.local", "/"), "apps/fallback:9898");
        assert_eq!(to("theirs.local", "/"), "apps/fallback:9898");
    }
}

//! Service networking of a skiff node, as upstream splits it between kube-proxy and
//! CoreDNS: [`proxy`] turns Services and EndpointSlices into kernel NAT rules, [`dns`]
//! answers cluster names from the same objects. Both are API clients only (kube-rs):
//! they watch, keep an in-memory index, and never touch the store. [`routes`] sends
//! traffic for other nodes' pods to those nodes.

pub mod cmd;
pub mod dns;
pub mod metrics;
pub mod proxy;
pub mod routes;

//! Service networking of a skiff node, as upstream splits it between kube-proxy and
//! CoreDNS: [`proxy`] turns Services and EndpointSlices into kernel NAT rules, [`dns`]
//! answers cluster names from the same objects. Both are API clients only (kube-rs):
//! they watch, keep an in-memory index, and never touch the store.

pub mod dns;
pub mod proxy;

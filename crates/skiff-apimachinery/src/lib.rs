//! Kubernetes API machinery that needs no I/O: the rules the apiserver applies to objects
//! (defaulting, validation, selectors, strategic merge patch, table printing), and the node
//! affinity and taint rules pods are placed by. Kept apart from the HTTP server so every rule
//! is a pure function with table-driven unit tests.
//!
//! Objects are handled as `serde_json::Value` in their wire (JSON) form, because that is what
//! the store keeps and what patches operate on; typed k8s-openapi structs are used inside
//! where they make a rule clearer.

pub mod cel;
pub mod cron;
pub mod defaults;
pub mod duration;
pub mod limitrange;
pub mod network;
pub mod podsecurity;
pub mod priority;
pub mod quantity;
pub mod quota;
pub mod scheduling;
pub mod selector;
pub mod strategic;
pub mod table;
pub mod user;
pub mod validation;

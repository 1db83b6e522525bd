//! The event collector: other services POST events, anyone GETs recent events back.

pub mod cache;
pub mod client;
pub mod config;
pub mod event;
pub mod http;
pub mod image;
pub mod metrics;
pub mod nats;
pub mod server;
pub mod store;

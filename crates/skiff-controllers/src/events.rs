//! Core v1 Events for controller actions, so `kubectl describe` lists them: the project's
//! one recorder (with client-go's aggregation of repeats) lives in `skiff-reconcile`.

pub use skiff_reconcile::events::{reference, Recorder, NORMAL, WARNING};

//! TODO: defaults (being written).

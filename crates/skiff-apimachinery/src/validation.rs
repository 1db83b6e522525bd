//! TODO: validation (being written).

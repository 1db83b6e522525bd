//! TODO: selector (being written).

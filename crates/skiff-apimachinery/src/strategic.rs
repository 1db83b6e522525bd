//! TODO: strategic (being written).

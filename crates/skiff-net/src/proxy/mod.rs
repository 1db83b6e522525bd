//! Service proxy (work in progress).

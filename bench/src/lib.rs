//! Shared helpers for skiff load tools.

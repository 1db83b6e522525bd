//! The event collector: other services POST events, anyone GETs recent events back.

//! exec crate (work in progress).

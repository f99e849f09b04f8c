//! shared-manifest crate (work in progress).

//! Shared-ring layouts of xen/include/public/io/: pure data, no hypercalls.
#![forbid(unsafe_code)]

pub mod console;
pub mod xs_wire;

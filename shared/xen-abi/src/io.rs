//! Shared-ring layouts of xen/include/public/io/: pure data, no hypercalls.

pub mod console;
pub mod xs_wire;

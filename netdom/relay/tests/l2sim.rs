//! L2 simulation (placeholder).

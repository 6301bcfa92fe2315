//! stordom's pure parts: its command line from dom0. The PV kernel
//! (`main.rs`) only wires them to the runtime and virtio-drivers.
//!
//! Read first: stordom/DESIGN.md.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod args;

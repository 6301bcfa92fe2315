//! stordom's pure parts: its command line from dom0, its end of the
//! storage channel (the SR behind dom0's requests) and the blkback board
//! serving guests' VBDs from that SR. The PV kernel
//! (`main.rs`) only wires them to the runtime and virtio-drivers.
//!
//! Read first: stordom/DESIGN.md.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod args;
pub mod multipage;
pub mod repo;
pub mod server;
pub mod transfer;
pub mod vbds;
#[cfg(test)]
mod vbds_tests;

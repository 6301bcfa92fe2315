//! netdom's pure parts: its command line from dom0, the ARP exchange it
//! uses to prove the NIC works and the MSI-X routing of virtio's queues. The PV kernel (`main.rs`) only wires them to
//! the runtime and virtio-drivers.
//!
//! Read first: netdom/DESIGN.md.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod args;
pub mod arp;
pub mod csum;
pub mod msix;
pub mod switch;
pub mod vifstats;

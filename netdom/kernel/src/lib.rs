//! netdom's pure parts: its command line from dom0, the ARP exchange it
//! uses to prove the NIC works, the MSI-X routing of virtio's queues, the
//! switch (bridge + netback VIFs) and what it reports to dom0. The PV
//! kernel (`main.rs`, `platform.rs`) only wires them to the runtime and
//! virtio-drivers.
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
#[cfg(test)]
mod switch_tests;
pub mod vifstats;

//! toolstack-dom0: the thin PV dom0 of xcp-rs.
//!
//! Boots as Xen's initial domain, finds the single multiboot module Xen passes
//! (the platform bundle), checks it and prints a banner. The domain builder,
//! console relay and XenAPI toolstack grow here in later steps.
//!
//! On the host this crate builds a stub that says how to build the kernel, so
//! `cargo build --workspace` and `cargo test --workspace` work everywhere.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![cfg_attr(target_os = "none", forbid(unsafe_code))]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod build;
#[cfg(target_os = "none")]
mod dom0;
#[cfg(target_os = "none")]
mod memory;
#[cfg(target_os = "none")]
mod nic;
#[cfg(target_os = "none")]
mod platform;
#[cfg(target_os = "none")]
mod relay;
#[cfg(all(target_os = "none", feature = "selftest"))]
mod selftest;
#[cfg(target_os = "none")]
mod shell;
#[cfg(target_os = "none")]
mod toolstack;
#[cfg(target_os = "none")]
mod xs;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "toolstack-dom0 is a Xen PV kernel: build it with `cargo xtask build` \
         (target x86_64-unknown-none)"
    );
    std::process::exit(2);
}

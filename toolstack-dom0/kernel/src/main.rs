//! toolstack-dom0: the thin PV dom0 of xcp-rs.
//!
//! Boots as Xen's initial domain, finds the single multiboot module Xen passes
//! (the platform bundle), checks it and runs the service domains. The state
//! machine (build, NIC hand-over, lifecycle) is the `xcp-dom0-board` crate,
//! tested on the host; this crate wires it to Xen (`xen.rs`, the board's
//! `Platform`), runs the event loop, the XenAPI toolstack and the operator
//! console.
//!
//! On the host this crate builds a stub that says how to build the kernel, so
//! `cargo build --workspace` and `cargo test --workspace` work everywhere.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![cfg_attr(target_os = "none", forbid(unsafe_code))]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod dom0;
#[cfg(target_os = "none")]
mod memory;
#[cfg(target_os = "none")]
mod relay;
#[cfg(all(target_os = "none", feature = "selftest"))]
mod selftest;
#[cfg(target_os = "none")]
mod shell;
#[cfg(target_os = "none")]
mod storage;
#[cfg(target_os = "none")]
mod toolstack;
#[cfg(target_os = "none")]
mod xen;
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

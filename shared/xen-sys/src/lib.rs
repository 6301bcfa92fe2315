//! Xen 4.17 public ABI and hypercalls for 64-bit x86 guests, written by us.
//!
//! Read first: Xen's `xen/include/public/` (Debian `libxen-dev`: /usr/include/xen).
//! One module per public header; structs are `#[repr(C)]` with the C field
//! names, and `tests/abi_layout.rs` checks every size, alignment, field
//! offset and constant against a C program compiled against the installed
//! headers.
//!
//! The constants and layouts themselves live in `xen-abi` (no `unsafe`): the
//! modules here re-export them and add the hypercalls.
//!
//! The crates.io `xen-sys` 0.0.0-pre2 has a wrong hypercall ABI; this crate
//! replaces it and must never depend on it.
//!
//! `unsafe` is allowed here (and in the runtime) only: every hypercall wrapper
//! is an `unsafe fn` whose `# Safety` section says what the caller promises.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod console;
pub mod domctl;
pub mod domctl_payloads;
pub mod event_channel;
pub mod grant_table;
pub mod hvm;
pub mod hvm_start_info;
pub mod hypercall;
pub mod memory;
pub mod mm;
pub mod physdev;
pub mod sched;
pub mod sysctl;
pub mod vcpu;
pub mod version;
pub mod xen;

pub use hypercall::Errno;

/// Pure-data modules that live in `xen-abi`, re-exported under their old paths.
pub use xen_abi::{elfnote, hvm_save, hvm_vcpu, io, PAGE_SHIFT, PAGE_SIZE};

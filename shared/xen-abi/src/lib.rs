//! The Xen 4.17 public ABI as plain data, written by us: constants and
//! `#[repr(C)]` layouts, with the byte offsets that code writing pages as
//! bytes needs derived from the layouts (`offset_of!`) and the sizes pinned
//! by const assertions. No `unsafe` and no hypercalls: those stay in
//! `xen-sys`, which re-exports everything here under its old paths
//! (`xen_sys::xen::StartInfo`, `xen_sys::io::xs_wire::...`).
//!
//! Read first: Xen's `xen/include/public/` (Debian `libxen-dev`:
//! /usr/include/xen). `tests/headers.rs` pins every size, offset and value
//! to the 4.17 headers' numbers (hard-coded, so it runs without them);
//! xen-sys's `tests/abi_layout.rs` also compiles C against the installed
//! headers and covers this crate's items too.
//!
//! Why this crate exists (issue #12 item 6): before it, these were defined
//! more than once —
//! - `struct start_info` (offsets, size 1168, magic, `SIF_*`, and
//!   `MAX_GUEST_CMDLINE`): xen-sys's struct and the builder's byte offsets;
//! - `shared_info`/`vcpu_info` sizes, `XEN_LEGACY_MAX_VCPUS`: xen-sys and the
//!   builder;
//! - `XEN_ELFNOTE_*`: xen-sys and the builder's ELF-note reader;
//! - the console ring (`xencons_interface`: `in` 1024, `out` 2048, the four
//!   indexes at 3072..3088): xen-sys, dom0's console relay and the runtime's
//!   console writer;
//! - the xenstore ring (`xenstore_domain_interface`: `req`/`rsp` 1024,
//!   indexes at 2048.., `server_features`, `connection`, `error`) and
//!   `XENSTORE_SERVER_FEATURE_*`: xen-sys and xs-wire;
//! - XS message codes: xen-sys (`XS_*` and an unused `XsdSockmsgType`
//!   enum) and xs-wire's `MsgType`; the payload and path limits (4096, 3072,
//!   2048) and the header size: xen-sys and xs-wire;
//! - the permission letters (`n`, `r`, `w`, `b`): the xenbus client and the
//!   xenstore engine; XS_ERROR names: xs-wire only (now from here);
//! - `XEN_DOMINF_*` and the `SHUTDOWN_*` codes: xen-sys and the domain
//!   table (`xcp-domains`);
//! - `grant_entry_v1`, `GTF_permit_access`, `GNTTAB_RESERVED_*`: xen-sys and
//!   the builder;
//! - `VGCF_*` and the flat kernel selectors: xen-sys and the builder;
//! - the page size: the builder, the ring crate's fake page, the runtime.
//!
//! - the PVH boot ABI (`hvm_start_info`), the HVM parameter indices, the
//!   e820 entry and the createdomain flags: xen-sys only, which the pure
//!   PVH planner cannot use; moved here, xen-sys re-exports them.
//!
//! The page abstraction was also doubled: xs-wire's `RingPage` beside
//! `xcp_ring::SharedPage` (same four operations), now one trait,
//! `xcp_ring::SharedPage`.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod domctl;
pub mod elfnote;
pub mod event_channel;
pub mod grant_table;
pub mod hvm;
pub mod hvm_save;
pub mod hvm_start_info;
pub mod hvm_vcpu;
pub mod io;
pub mod memory;
pub mod sched;
pub mod vcpu;
pub mod xen;

/// `PAGE_SHIFT` of x86 (Xen's pages and every ring page are 4 KiB).
pub const PAGE_SHIFT: u32 = 12;
/// Bytes in a page (`XEN_PAGE_SIZE`).
pub const PAGE_SIZE: usize = 1 << PAGE_SHIFT;

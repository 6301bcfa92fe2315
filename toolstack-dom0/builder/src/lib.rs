//! Pure domain-build planner: ELF image + request -> a validated plan and
//! the bytes of every boot page of a 64-bit PV guest.
//!
//! Read first: xen/include/public/xen.h (`start_info`, "Start-of-day memory
//! layout"), xen/include/public/elfnote.h, tools/libs/guest/xg_dom_x86.c,
//! xg_dom_core.c, xg_dom_elfloader.c and xen/arch/x86/pv/dom0_build.c.
//!
//! This crate does what libxenguest does for `xl create type="pv"` minus the
//! hypercalls. The executor (dom0) calls, in order:
//! 1. [`PvPlan::new`] (or [`Plan::new`]) with the image and a
//!    [`BuildRequest`]: every check on the image happens here, before a
//!    domain exists;
//! 2. creates the domain, sets max memory, populates `nr_pages` frames
//!    (pfns `0..nr_pages`) and builds the p2m (`p2m[pfn] = mfn`);
//! 3. for each `(pfn, kind)` of [`PvPlan::pages`], maps `p2m[pfn]` and calls
//!    [`PvPlan::write_page`] (kernel, module, p2m list, start_info, xenstore
//!    and console rings, page tables, stack);
//! 4. initialises shared_info ([`write_shared_info`]) and seeds the grant
//!    table ([`gnttab_seed`]) as libxc does;
//! 5. `XEN_DOMCTL_hypercall_init` with [`PvPlan::hypercall_page_mfn`];
//! 6. `MMUEXT_PIN_L4_TABLE` on [`PvVcpuContext::l4_mfn`], then
//!    `XEN_DOMCTL_setvcpucontext` from [`PvPlan::vcpu_context`], then unpause.
//!
//! For a PVH guest, [`PvhPlan::new`] takes a [`PvhRequest`] describing the
//! kernel another crate already loaded and plans the rest: memory map,
//! hvm_start_info, ACPI tables, HVM params and the 32-bit boot vCPU.
//!
//! See DESIGN.md for the layouts and for what a hostile image can do.

#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

pub mod acpi;
mod elf;
mod error;
mod hvm_context;
mod layout;
mod notes;
mod pagetable;
mod plan;
mod pvh;
mod shared;
mod start_info;
mod vcpu;

pub use elf::{ElfImage, LoadSegment, MAX_LOAD_SEGMENTS, MAX_PROGRAM_HEADERS, MAX_SEGMENT_ALIGN};
pub use error::Error;
pub use hvm_context::{boot_records, MAX_HVM_CONTEXT};
pub use layout::{
    BuildRequest, PfnRange, PtCounts, PvLayout, SegmentCopy, BOOT_PADDING, MAPPING_ALIGN,
    MAX_GUEST_CMDLINE, MAX_MEMORY_PAGES, MAX_PV_VCPUS, PAGE_SIZE, XEN_HOLE_END, XEN_HOLE_START,
};
pub use notes::*;
pub use pagetable::{
    MAX_MFN, PTE_ACCESSED, PTE_ADDR_MASK, PTE_DIRTY, PTE_PRESENT, PTE_RO_FLAGS, PTE_RW,
    PTE_RW_FLAGS, PTE_USER,
};
pub use plan::{GuestKind, PageKind, PageSources, Plan, PvPlan};
pub use pvh::*;
pub use shared::*;
pub use start_info::*;
pub use vcpu::*;

/// A 4 KiB page of guest content.
pub type Page = [u8; xen_abi::PAGE_SIZE];

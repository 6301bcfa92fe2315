//! Pure domain-build planner: ELF image + request -> a validated plan and
//! the bytes of every boot page of a 64-bit PV guest.
//!
//! Read first: xen/include/public/xen.h (`start_info`, "Start-of-day memory
//! layout"), xen/include/public/elfnote.h, tools/libs/guest/xg_dom_x86.c,
//! xg_dom_core.c, xg_dom_elfloader.c and xen/arch/x86/pv/dom0_build.c.
//!
//! This crate does what libxenguest does for `xl create type="pv"` minus the
//! hypercalls. The executor (dom0) calls, in order:
//! 1. [`Plan::new`] with the image and a [`BuildRequest`] — all checks on
//!    the image happen here, before a domain exists;
//! 2. creates the domain, populates `nr_pages` frames and reads the p2m;
//! 3. for each pfn of [`PvPlan::pages`], maps it and calls
//!    [`PvPlan::write_page`] (kernel, module, p2m, start_info, xenstore and
//!    console rings, page tables, stack);
//! 4. `XEN_DOMCTL_hypercall_init` at [`PvLayout::hypercall_page_gpfn`];
//! 5. pins the L4 ([`PvVcpuContext::l4_mfn`]), sets the vCPU context from
//!    [`PvPlan::vcpu_context`] and unpauses.
//!
//! See DESIGN.md for the layout and for what a hostile image can do.

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod elf;
mod error;
mod layout;
mod notes;
mod pagetable;
mod plan;
mod start_info;
mod vcpu;

pub use elf::{ElfImage, LoadSegment, MAX_LOAD_SEGMENTS, MAX_PROGRAM_HEADERS, MAX_SEGMENT_ALIGN};
pub use error::Error;
pub use layout::{
    BuildRequest, PfnRange, PtCounts, PvLayout, SegmentCopy, BOOT_PADDING, MAPPING_ALIGN,
    MAX_GUEST_CMDLINE, MAX_MEMORY_PAGES, PAGE_SIZE, XEN_HOLE_END, XEN_HOLE_START,
};
pub use notes::*;
pub use pagetable::{
    MAX_MFN, PTE_ACCESSED, PTE_ADDR_MASK, PTE_DIRTY, PTE_PRESENT, PTE_RO_FLAGS, PTE_RW,
    PTE_RW_FLAGS, PTE_USER,
};
pub use plan::{GuestKind, PageKind, PageSources, Plan, PvPlan};
pub use start_info::*;
pub use vcpu::*;

/// A 4 KiB page of guest content.
pub type Page = [u8; 4096];

//! dom0's board: the service domains' lifecycle over a [`Platform`] trait.
//!
//! Read first: ../../shared/house-style.md ("A board is a library too"),
//! ../builder/DESIGN.md, netdom/DESIGN.md ("Config space", "Interrupts").
//!
//! dom0's state machine lives here, free of hypercalls, so the host tests
//! drive it with a fake platform (`fake`, behind the `fake` feature; the
//! tests are in `tests/`) that tracks every live resource and can fail the Nth
//! call. The kernel (`toolstack-dom0/kernel`) implements [`Platform`] over
//! the runtime and runs the event loop; it holds no state of its own about
//! the domains.
//!
//! - [`build`]: the PV domain build (an ELF kernel, or a bzImage streamed
//!   through `xcp_kimage`), a plan whose every acquired resource goes into
//!   an [`undo::UndoLog`]; a failure at any step gives all of them back,
//!   in reverse.
//! - [`pvh`]: the PVH domain build, on the same kind of undo log: the
//!   kernel streamed through `xcp_kimage` into guest memory, then the
//!   `xcp_builder::PvhPlan`'s pages, e820, HVM params and boot vCPU.
//! - [`nic`]: the NIC hand-over to netdom, on the same undo log as the
//!   build of the domain that receives it, and its reclaim.
//! - [`guest_tree`]: the xenstore tree of a XenAPI VM's domain (paths,
//!   values, permissions as xl writes them) and what its destroy removes.
//! - [`vif_tree`]: a guest VIF's backend (netdom's) and frontend xenstore
//!   directories, written in one transaction, closed and removed.
//! - [`vbd_tree`]: the same for a guest VBD (the storage domain's blkback
//!   and the guest's blkfront directories).
//! - [`sched`]: the CPU share (credit weight and cap) dom0 gives itself
//!   and the service domains.
//! - [`board`]: the managed domains (built from the bundle, consoles
//!   relayed, watched through VIRQ_DOM_EXC / `@releaseDomain`, restarted by
//!   policy, the xenstore domain checked on a timer).
//!
//! No `String` errors: [`BoardError`] names the step and carries the
//! platform's error.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod board;
pub mod build;
mod error;
#[cfg(feature = "fake")]
pub mod fake;
#[cfg(feature = "fake")]
pub mod fake_store;
pub mod guest_tree;
pub mod nic;
mod platform;
pub mod pvh;
pub mod sched;
pub mod undo;
pub mod vbd_tree;
pub mod vif_tree;

pub use board::{Board, Live, Notice};
pub use error::{BoardError, DeviceError, Step};
pub use platform::{CpuShare, DomainInfo, Platform};

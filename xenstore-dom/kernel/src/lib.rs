//! xenstore-dom's board: the xenstore engine served over rings and channels.
//!
//! Read first: ../DESIGN.md ("For the kernel", "The domain"), xs_wire.h,
//! docs/misc/xenstore-ring.txt.
//!
//! [`Board`] owns the engine and one ring per connection (dom0's, then one
//! per introduced guest). It does what DESIGN.md's loop says and nothing
//! more: copy requests out of a ring once, feed the engine while it
//! `wants_input`, copy output back, notify only when bytes moved, and act on
//! the engine's effects (map a ring and bind its channel, unmap and unbind,
//! flag a ring error). What it needs from Xen — map a grant, bind, unbind,
//! notify — comes through the [`Platform`] trait, so the whole board runs
//! on the host in tests; `main.rs` implements it with the runtime.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

pub mod args;
pub mod board;
pub mod budget;

pub use board::{Board, Failure, GuestState, Platform, Refused, GNTTAB_RESERVED_XENSTORE};

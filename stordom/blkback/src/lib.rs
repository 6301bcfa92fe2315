//! stordom's blkback engine: blkif VBDs as a pure, sans-IO state machine.
//!
//! read first: xen/include/public/io/blkif.h, io/ring.h, io/xenbus.h;
//! DESIGN.md (state machine, bounds, what a frontend can make us
//! hold).
//!
//! One [`Vbd`] per frontend device. The board feeds it what it saw on
//! xenstore (the frontend's `state`, its keys), the mapped ring pages of
//! each queue, fetched indirect pages and completed disk work; it gives
//! back [`Action`]s (keys to write, states to switch to, keys to read,
//! rings to map or unmap, channels to bind), [`Work`] ([`DiskIo`] the board
//! grant-copies and runs against the storage repository, or an
//! [`IndirectFetch`]) and `notify` flags for the event channels. No
//! hypercall, no clock, no unsafe, no panic on frontend input: a frontend
//! breaking the protocol disconnects its own VBD ([`Fault`]) and nothing
//! else; a bad request only gets an error response (`request.rs` says
//! which is which).
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

pub mod budget;
#[cfg(any(test, feature = "fake"))]
pub mod fake;
pub mod handshake;
pub mod io;
pub mod request;
pub mod vbd;
pub mod wire;

pub use budget::{MAX_VBDS, REQUESTS_PER_POLL, VBD_MEMORY};
pub use handshake::{DeviceType, DiscardOffer, DiskInfo, Features, KeyError, HEADER_KEYS};
pub use io::{DiskIo, Fetched, IndirectFetch, IoOp, IoStatus, Poll, Segment, Token, Work};
pub use vbd::{Action, Config, Fault, State, Stats, Vbd};
pub use xcp_xenbus::XenbusState;

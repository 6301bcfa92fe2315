//! netdom's XenAPI relay: client TCP connections to dom0's toolstack.
//!
//! read first: `shared/relay/src/lib.rs` (the protocol), `DESIGN.md`.
//!
//! netdom terminates TCP on port 80 and relays each HTTP connection's bytes
//! to the toolstack in dom0 over an inter-domain channel, and the replies
//! back. [`engine::Relay`] is the sans-IO heart (bounded buffers, fairness,
//! deadlines); [`link::Link`] moves its messages over an
//! [`xcp_channel::Channel`]; with feature `smoltcp`, `listener` drives the
//! engine from a pool of smoltcp TCP sockets and `ipconfig` sets the
//! interface address (static or DHCPv4).
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

pub mod budget;
pub mod chunks;
pub mod engine;
mod head;
#[cfg(feature = "smoltcp")]
pub mod ipconfig;
pub mod link;
#[cfg(feature = "smoltcp")]
pub mod listener;

pub use engine::{CloseKind, Config, ConnId, Refused, Relay, Source, Stats};
pub use link::{Link, LinkError, Pumped};

//! netdom's netback engine: netif VIFs as a pure, sans-IO state machine.
//!
//! read first: xen/include/public/io/netif.h, io/ring.h, io/xenbus.h;
//! DESIGN.md (state machine, bounds, what a frontend can make us hold).
//!
//! One [`Vif`] per frontend. The board feeds it what it saw on xenstore
//! (the frontend's `state`, its keys), the mapped ring pages, packets from
//! the bridge and completed grant-copy plans; it gives back [`Action`]s
//! (keys to write, states to switch to, rings to map or unmap, channels to
//! bind), [`TxPlan`]/[`RxPlan`] grant copies for `GNTTABOP_copy`, guest
//! packets for the bridge, and `notify` flags for the event channels. No
//! hypercall, no clock, no unsafe, no panic on frontend input: a frontend
//! breaking the protocol disconnects its own VIF ([`Fault`]) and nothing
//! else.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

pub mod budget;
#[cfg(any(test, feature = "fake"))]
pub mod fake;
pub mod handshake;
pub mod plan;
pub mod tx;
pub mod vif;
pub mod wire;

pub use budget::{Budget, BudgetTooSmall, Rate, MIN_BUDGET};
pub use handshake::{Features, FrontendConfig, KeyError, FRONTEND_KEYS};
pub use plan::{GrantCopy, RxMeta, RxPlan, TxPacket, TxPlan};
pub use tx::{TxDrop, TxFault};
pub use vif::{Action, Config, Fault, RxDrop, State, Stats, TxDone, TxPoll, Vif};
pub use wire::{Gso, MAX_PACKET_LEN, MAX_SLOTS};
pub use xcp_xenbus::XenbusState;

//! xenstore client for xcp-rs domains: requests, replies, watches, transactions.
//!
//! Read first: xs_wire.h, docs/misc/xenstore.txt, docs/misc/xenstore-ring.txt,
//! io/xenbus.h.
//!
//! Every domain talks to xenstored over one ring page (`start_info.store_mfn`,
//! `store_evtchn`; dom0's comes from its own setup). This crate is the pure
//! core of that client, `no_std` + alloc and free of `unsafe`:
//!
//! * [`Client`] (sans-IO): request methods (`read`, `write`, `directory`,
//!   `watch`, `transaction_start`, ...) queue a message and return its
//!   [`RequestId`]; [`Client::poll`] moves bytes through a [`SharedPage`] and
//!   sorts replies ([`Client::take_reply`] -> [`Reply`] or [`Error`]) from
//!   watch events ([`Client::next_event`]). The caller kicks the event
//!   channel when [`Progress::notify`] says so and polls again when it fires.
//! * [`Xenbus`] (blocking): the client plus the ring and a [`Wait`] (kick,
//!   wait for the channel); one call per request, typed results,
//!   [`Xenbus::transaction`] retries on EAGAIN, DIRECTORY falls back to
//!   DIRECTORY_PART on E2BIG.
//! * [`XenbusState`] and the `<dir>/state` helpers for split drivers.
//!
//! Nothing a server sends can make the client panic or grow without bound
//! (see `client.rs`; proptests in `tests/props.rs`). The tests run the
//! client against the real `xenstore-engine` through an in-memory ring page.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

pub mod blocking;
pub mod client;
pub mod error;
pub mod perms;
pub mod reply;
pub mod ring;
pub mod state;
pub mod wire;

pub use blocking::{RingIndexes, Wait, Xenbus, TRANSACTION_ATTEMPTS};
pub use client::{check_path, Client, Limits, Progress, RequestId, WatchEvent};
pub use error::{Error, Malformed, XsErrno};
pub use perms::{Access, Perm};
pub use reply::{Reply, TxId};
pub use ring::SharedPage;
pub use state::XenbusState;
pub use wire::MsgType;

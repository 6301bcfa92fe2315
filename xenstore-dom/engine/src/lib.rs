//! xenstore engine: the Xen 4.17 xenstore protocol as a pure state machine.
//!
//! Read first: xs_wire.h, docs/misc/xenstore.txt, docs/misc/xenstore-ring.txt.
//!
//! Sans-IO [smoltcp, ocaml-xenstore]: [`Engine::receive`] takes bytes from a
//! connection (a domain's ring or a host socket), whole messages are handled
//! and their replies and watch events queued per connection
//! ([`Engine::output`], [`Engine::consume_output`]); what the board must do
//! (map a ring, unmap it, flag a protocol error) comes back as [`Effect`]s.
//! No clock, no I/O, no unsafe, no panics on peer input. See DESIGN.md.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

pub mod conn;
mod dispatch;
pub mod domain;
pub mod engine;
pub mod error;
pub mod memory;
pub mod ops;
pub mod path;
pub mod perms;
pub mod quota;
pub mod ring;
pub mod store;
pub mod txn;
pub mod watch;
pub mod wire;

pub use engine::{Config, Effect, Engine, SUPPORTED_FEATURES};
pub use error::{XsError, XsResult};
pub use memory::Notice;
pub use quota::Quotas;
pub use watch::ConnId;
pub use wire::{parse, BadReason, Header, MsgType, Parse, ReceiveError};

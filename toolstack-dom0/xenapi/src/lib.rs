//! XenAPI toolstack engine: xapi's object model and wire protocols, sans-IO.
//!
//! Read first: toolstack-dom0/XENAPI.md, protocol-notes.md "XenAPI wire
//! protocol", xapi's `xenapi.json`. The [`engine::Engine`] takes request bytes
//! and the time, and returns response bytes; storage and the hypervisor are
//! traits ([`wal::Storage`], [`hypervisor::Hypervisor`]) so the same engine
//! runs in the host simulator and in the no_std dom0.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod auth;
pub mod body;
pub mod budget;
pub mod console;
pub mod db;
pub mod dispatch;
pub mod engine;
pub mod error;
pub mod event_api;
pub mod events;
pub mod guest_metrics;
pub mod http;
pub mod hypervisor;
pub mod jsonrpc;
pub mod lifecycle;
pub mod metrics;
pub mod power;
pub mod relayed;
pub mod reply;
pub mod rng;
pub mod rrd;
pub mod schema;
#[allow(missing_docs)] // reason: generated tables, documented at the statics
#[rustfmt::skip] // reason: kept byte-identical to gen/gen_schema.py output
pub mod schema_gen;
pub mod seed;
pub mod session;
pub mod snapshots;
pub mod storage;
pub mod tasks;
pub mod templates;
pub mod transfer;
pub mod value;
pub mod vbd;
pub mod vcpu_params;
pub mod vif;
pub mod vm_ops;
pub mod wal;
pub mod xmlrpc;

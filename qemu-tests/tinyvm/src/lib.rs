//! tinyvm's logic: the console ring and the xenstore conversation.
//!
//! The guest itself (`main.rs`, `hw.rs`) only boots, installs hypercalls and
//! wires real pages and event channels into what is here: the console
//! line writer ([`console`]), a xenstore client over the ring page
//! ([`store`]) and what the guest says to xenstore and how it obeys
//! `control/shutdown` ([`guest`]). All of it is pure and tested on the
//! host against in-memory pages and a scripted xenstore.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

pub mod console;
pub mod guest;
pub mod store;

/// The guest's name: its `XEN_ELFNOTE_GUEST_OS`, its `data/os_name`.
pub const NAME: &str = "tinyvm";

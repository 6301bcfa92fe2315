//! netdom's L2 bridge: learn, age, flood, and refuse spoofed VIF frames.
//!
//! read first: `DESIGN.md` (rules, bounds, what a hostile guest can do),
//! xapi's VIF `locking_mode` (`ocaml/xapi/xapi_vif_helpers.ml`, the
//! `setup-vif-rules` script), Linux `net/bridge/br_fdb.c`.
//!
//! Sans-IO [smoltcp]: ports are numbers ([`PortId`]); the caller hands
//! [`Bridge::receive`] a frame that arrived on a port, with the time in
//! nanoseconds, and gets a [`Verdict`] back: forward to one port, flood to
//! every other port ([`Bridge::egress`] lists them), or drop with a
//! [`DropReason`]. No clock, no I/O, no unsafe, no panics on frame bytes;
//! headers are read with `smoltcp::wire`. The MAC table is allocated once
//! from a byte budget ([`Config::table_bytes`]) and never grows.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

pub mod bridge;
pub mod filter;
pub mod mac_table;
pub mod port;

pub use bridge::{Bridge, BridgeCounters, Config, Egress, EgressPorts, PortError, Verdict};
pub use filter::{DropReason, Spoof};
pub use mac_table::{Entry, MacTable, ENTRY_BYTES};
pub use port::{
    Locking, PortConfig, PortCounters, PortId, PortKind, VifConfig, DEFAULT_MTU, ETH_HEADER,
    MAX_ALLOWED_ADDRESSES, MAX_MTU, VLAN_TAG,
};

/// A MAC address, as on the wire.
pub type Mac = [u8; 6];

/// True for a group (multicast or broadcast) address: the I/G bit, the
/// least significant bit of the first octet (IEEE 802-2014 §8.2).
pub const fn is_group(mac: &Mac) -> bool {
    mac[0] & 1 != 0
}

/// True for an address a station may send from: not a group address and
/// not all zeroes (Linux `is_valid_ether_addr`).
pub fn is_valid_source(mac: &Mac) -> bool {
    !is_group(mac) && *mac != [0; 6]
}

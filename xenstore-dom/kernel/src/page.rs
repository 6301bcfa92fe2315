//! The engine's `RingPage` over a mapped page (`xcp_ring::SharedPage`):
//! `SharedRing` from `xcp-xs-wire`, shared with the xenbus client.
//!
//! The runtime's `GrantMapping` implements `SharedPage` with volatile byte
//! copies and acquire loads / release stores of the indexes: a producer
//! index is loaded (acquire) before the bytes it covers are read, and bytes
//! are written before the index that publishes them is stored (release),
//! which is the ordering docs/misc/xenstore-ring.txt asks for.

pub use xcp_xs_wire::ring::SharedRing;

//! The XenAPI relay protocol: how the domain that terminates HTTP (netdom)
//! hands client byte streams to the toolstack in dom0 over an inter-domain
//! channel, and gets replies back. The toolstack never sees raw network
//! traffic: only per-connection byte streams, which the relay domain bounds.
//!
//! Messages travel as postcard over `xcp-channel`. A connection is a number
//! the relay picks; the toolstack keeps a bounded buffer per connection.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// Largest `bytes` in one message (the relay splits larger reads).
pub const MAX_CHUNK: usize = 16 * 1024;
/// Most connections the toolstack serves for one relay at once.
pub const MAX_CONNECTIONS: usize = 256;

/// Relay → toolstack.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToToolstack {
    /// Bytes a client sent on connection `conn` (a new number opens one).
    Data {
        /// Connection number.
        conn: u32,
        /// At most [`MAX_CHUNK`] bytes.
        bytes: Vec<u8>,
    },
    /// The client went away.
    Closed {
        /// Connection number.
        conn: u32,
    },
}

/// Toolstack → relay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FromToolstack {
    /// Bytes to send to the client of `conn`.
    Data {
        /// Connection number.
        conn: u32,
        /// At most [`MAX_CHUNK`] bytes.
        bytes: Vec<u8>,
    },
    /// Close `conn` after the data sent before this message.
    Close {
        /// Connection number.
        conn: u32,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_through_postcard() {
        let to = ToToolstack::Data {
            conn: 7,
            bytes: alloc::vec![1, 2, 3],
        };
        let bytes = postcard::to_allocvec(&to).unwrap();
        assert_eq!(postcard::from_bytes::<ToToolstack>(&bytes).unwrap(), to);
        let from = FromToolstack::Close { conn: 9 };
        let bytes = postcard::to_allocvec(&from).unwrap();
        assert_eq!(postcard::from_bytes::<FromToolstack>(&bytes).unwrap(), from);
        assert!(postcard::from_bytes::<ToToolstack>(&[9, 9, 9]).is_err());
    }
}

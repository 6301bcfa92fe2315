//! XenbusState: the front/back handshake state kept in `<dir>/state`.
//!
//! Read first: xen/include/public/io/xenbus.h (`enum xenbus_state`). Each
//! side of a split driver writes its state as a decimal number into its
//! own directory's `state` node and watches the other side's. The value is
//! peer-written, so decoding is total: anything else is `Invalid`.

use alloc::string::String;
use alloc::vec::Vec;

use crate::client::{Client, RequestId};
use crate::error::Error;
use crate::perms::{parse_decimal, push_decimal};
use crate::reply::{Reply, TxId};

/// `enum xenbus_state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XenbusState {
    /// XenbusStateUnknown (0).
    Unknown,
    /// XenbusStateInitialising (1).
    Initialising,
    /// XenbusStateInitWait (2): waiting for information from the peer.
    InitWait,
    /// XenbusStateInitialised (3): ready, waiting for the peer to connect.
    Initialised,
    /// XenbusStateConnected (4).
    Connected,
    /// XenbusStateClosing (5): the device is being closed.
    Closing,
    /// XenbusStateClosed (6).
    Closed,
    /// XenbusStateReconfiguring (7).
    Reconfiguring,
    /// XenbusStateReconfigured (8).
    Reconfigured,
    /// A value outside xenbus.h (or not a number at all: `u32::MAX`).
    Invalid(u32),
}

impl XenbusState {
    /// The number written to `state`.
    pub const fn code(self) -> u32 {
        match self {
            XenbusState::Unknown => 0,
            XenbusState::Initialising => 1,
            XenbusState::InitWait => 2,
            XenbusState::Initialised => 3,
            XenbusState::Connected => 4,
            XenbusState::Closing => 5,
            XenbusState::Closed => 6,
            XenbusState::Reconfiguring => 7,
            XenbusState::Reconfigured => 8,
            XenbusState::Invalid(n) => n,
        }
    }

    /// Decode a number; never fails.
    pub const fn from_code(code: u32) -> XenbusState {
        match code {
            0 => XenbusState::Unknown,
            1 => XenbusState::Initialising,
            2 => XenbusState::InitWait,
            3 => XenbusState::Initialised,
            4 => XenbusState::Connected,
            5 => XenbusState::Closing,
            6 => XenbusState::Closed,
            7 => XenbusState::Reconfiguring,
            8 => XenbusState::Reconfigured,
            n => XenbusState::Invalid(n),
        }
    }

    /// Decode a `state` node's value: decimal digits, optionally followed
    /// by a nul or newline (written by C tools with `%d`).
    pub fn parse(value: &[u8]) -> XenbusState {
        let digits = value
            .strip_suffix(&[0])
            .or_else(|| value.strip_suffix(b"\n"))
            .unwrap_or(value);
        match parse_decimal(digits)
            .ok()
            .and_then(|n| u32::try_from(n).ok())
        {
            Some(n) => XenbusState::from_code(n),
            None => XenbusState::Invalid(u32::MAX),
        }
    }

    /// The value to write (`"4"`).
    pub fn to_value(self) -> Vec<u8> {
        let mut v = Vec::new();
        push_decimal(&mut v, u64::from(self.code()));
        v
    }
}

/// `<dir>/state`.
pub fn state_path(dir: &str) -> String {
    let mut p = String::from(dir.trim_end_matches('/'));
    p.push_str("/state");
    p
}

/// Queue a READ of `<dir>/state`; decode the reply with [`state_of`].
pub fn read_state(client: &mut Client, tx: TxId, dir: &str) -> Result<RequestId, Error> {
    client.read(tx, &state_path(dir))
}

/// Queue a WRITE of `state` into `<dir>/state`.
pub fn write_state(
    client: &mut Client,
    tx: TxId,
    dir: &str,
    state: XenbusState,
) -> Result<RequestId, Error> {
    client.write(tx, &state_path(dir), &state.to_value())
}

/// The state in a READ reply of `<dir>/state` (anything else: `Invalid`).
pub fn state_of(reply: &Reply) -> XenbusState {
    match reply {
        Reply::Value(v) => XenbusState::parse(v),
        _ => XenbusState::Invalid(u32::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for n in 0..12 {
            assert_eq!(XenbusState::from_code(n).code(), n);
            assert_eq!(
                XenbusState::parse(&XenbusState::from_code(n).to_value()).code(),
                n
            );
        }
        assert_eq!(XenbusState::Connected.to_value(), b"4");
    }

    #[test]
    fn peer_values_are_total() {
        assert_eq!(XenbusState::parse(b"4\0"), XenbusState::Connected);
        assert_eq!(XenbusState::parse(b"6\n"), XenbusState::Closed);
        assert_eq!(XenbusState::parse(b""), XenbusState::Invalid(u32::MAX));
        assert_eq!(XenbusState::parse(b"x"), XenbusState::Invalid(u32::MAX));
        assert_eq!(
            XenbusState::parse(b"99999999999"),
            XenbusState::Invalid(u32::MAX)
        );
        assert_eq!(XenbusState::parse(b"42"), XenbusState::Invalid(42));
    }

    #[test]
    fn paths() {
        assert_eq!(state_path("device/vif/0"), "device/vif/0/state");
        assert_eq!(state_path("/a/"), "/a/state");
    }
}

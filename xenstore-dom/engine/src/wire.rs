//! xs_wire for the server side: replies, request arguments, refused input.
//!
//! Read first: xs_wire.h (`struct xsd_sockmsg`), docs/misc/xenstore.txt.
//! Every message in either direction is `{type, req_id, tx_id, len}` as
//! little-endian u32s followed by `len` payload bytes, `len <= 4096`
//! (XENSTORE_PAYLOAD_MAX). A longer `len` is a protocol violation: the
//! connection is dropped (and a ring gets `error = XENSTORE_ERROR_PROTO`).
//!
//! The header, message types and the stream parser ([`parse`]) come from
//! `xcp-xs-wire`, shared with the xenbus client.

use alloc::vec::Vec;

pub use xcp_xs_wire::{
    parse, BadReason, Header, MsgType, Parse, ABS_PATH_MAX, HEADER_LEN, PAYLOAD_MAX, REL_PATH_MAX,
};

/// Why [`crate::Engine::receive`] refused a connection's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReceiveError {
    /// The bytes broke the protocol (a payload over XENSTORE_PAYLOAD_MAX,
    /// XSA-325): the connection is dropped, a ring gets error PROTO.
    Bad(BadReason),
    /// The connection already broke the protocol; nothing more is read.
    Broken,
}

/// Build a whole wire message (header + payload). Callers keep `payload`
/// within PAYLOAD_MAX; this is checked by the engine before queuing.
pub fn encode(ty: MsgType, req_id: u32, tx_id: u32, payload: &[u8]) -> Vec<u8> {
    let header = Header {
        ty,
        req_id,
        tx_id,
        len: u32::try_from(payload.len()).expect("payloads are bounded by PAYLOAD_MAX"),
    };
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&header.emit());
    out.extend_from_slice(payload);
    out
}

/// Split a payload into its nul-terminated strings. A trailing part without
/// a nul is returned last (some requests, like WRITE, end in binary data).
pub fn split_args(payload: &[u8]) -> impl Iterator<Item = &[u8]> {
    let trimmed = payload.strip_suffix(&[0]).unwrap_or(payload);
    let empty = payload.is_empty();
    trimmed.split(|b| *b == 0).filter(move |_| !empty)
}

/// Count the nul-terminated strings in `payload` (`xenstore_count_strings`).
pub fn count_strings(payload: &[u8]) -> usize {
    payload.iter().filter(|b| **b == 0).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn encode_round_trips() {
        let m = encode(MsgType::WatchEvent, 0, 0, b"/a\0tok\0");
        let Parse::Message { header, total } = parse(&m) else {
            panic!()
        };
        assert_eq!(header.ty, MsgType::WatchEvent);
        assert_eq!(total, m.len());
        assert_eq!(&m[16..], b"/a\0tok\0");
    }

    #[test]
    fn split_args_forms() {
        let v: Vec<&[u8]> = split_args(b"/a\0value").collect();
        assert_eq!(v, vec![&b"/a"[..], &b"value"[..]]);
        let v: Vec<&[u8]> = split_args(b"a\0b\0").collect();
        assert_eq!(v, vec![&b"a"[..], &b"b"[..]]);
        assert_eq!(split_args(b"").count(), 0);
        assert_eq!(count_strings(b"a\0b\0"), 2);
    }
}

//! xs_wire for the client side: the 16-byte header, message types, framing.
//!
//! Read first: xs_wire.h (`struct xsd_sockmsg`, `enum xsd_sockmsg_type`),
//! docs/misc/xenstore.txt. Every message either way is `{type, req_id,
//! tx_id, len}` as little-endian u32s, then `len` payload bytes with
//! `len <= XENSTORE_PAYLOAD_MAX` (4096). A reply with a longer `len` is a
//! broken server: the client stops reading instead of buffering it.
//!
//! The header and message types come from `xcp-xs-wire`, shared with the
//! engine; framing and encoding for the client side live here.

use alloc::vec::Vec;

pub use xcp_xs_wire::{Header, MsgType, HEADER_LEN};
pub use xcp_xs_wire::{
    ABS_PATH_MAX as XENSTORE_ABS_PATH_MAX, PAYLOAD_MAX as XENSTORE_PAYLOAD_MAX,
    REL_PATH_MAX as XENSTORE_REL_PATH_MAX,
};

/// Outcome of looking at the start of a byte stream (ocaml-xenstore's
/// `Need_more_data` style).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// At least this many more bytes are needed.
    NeedMore(usize),
    /// A whole message: its header and its total length in the buffer.
    Message {
        /// The decoded header.
        header: Header,
        /// Header + payload bytes at the start of the buffer.
        total: usize,
    },
    /// `len` exceeds XENSTORE_PAYLOAD_MAX: the stream cannot be trusted.
    TooLong(u32),
}

/// Look at the start of `buf`. The header is judged as soon as it is
/// complete, so an impossible length is refused before any payload is
/// buffered.
pub fn frame(buf: &[u8]) -> Frame {
    let Some(header) = Header::parse(buf) else {
        return Frame::NeedMore(HEADER_LEN - buf.len());
    };
    if header.len as usize > XENSTORE_PAYLOAD_MAX {
        return Frame::TooLong(header.len);
    }
    let total = HEADER_LEN + header.len as usize;
    if buf.len() < total {
        Frame::NeedMore(total - buf.len())
    } else {
        Frame::Message { header, total }
    }
}

/// Build a whole message. `None` if the payload exceeds
/// XENSTORE_PAYLOAD_MAX (the server would drop our connection).
pub fn encode(ty: MsgType, req_id: u32, tx_id: u32, payload: &[u8]) -> Option<Vec<u8>> {
    if payload.len() > XENSTORE_PAYLOAD_MAX {
        return None;
    }
    let header = Header {
        ty,
        req_id,
        tx_id,
        len: u32::try_from(payload.len()).ok()?,
    };
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&header.emit());
    out.extend_from_slice(payload);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(ty: u32, req: u32, tx: u32, len: u32) -> Vec<u8> {
        let mut v = Vec::new();
        for w in [ty, req, tx, len] {
            v.extend_from_slice(&w.to_le_bytes());
        }
        v
    }

    #[test]
    fn read_reply_fixture() {
        // XS_READ reply, req_id 7, tx_id 0, "abc" (READ replies carry no nul).
        let mut buf = hdr(2, 7, 0, 3);
        buf.extend_from_slice(b"abc");
        assert_eq!(
            frame(&buf),
            Frame::Message {
                header: Header {
                    ty: MsgType::Read,
                    req_id: 7,
                    tx_id: 0,
                    len: 3
                },
                total: 19
            }
        );
    }

    #[test]
    fn partial_headers_and_payloads_ask_for_the_rest() {
        let mut buf = hdr(16, 1, 0, 7);
        buf.extend_from_slice(b"ENOENT\0");
        for cut in 0..buf.len() {
            assert_eq!(
                frame(&buf[..cut]),
                Frame::NeedMore(if cut < 16 { 16 - cut } else { 23 - cut })
            );
        }
    }

    #[test]
    fn impossible_lengths_are_refused_at_the_header() {
        assert_eq!(frame(&hdr(2, 0, 0, 4097)), Frame::TooLong(4097));
        assert_eq!(frame(&hdr(2, 0, 0, u32::MAX)), Frame::TooLong(u32::MAX));
        assert_eq!(frame(&hdr(2, 0, 0, 4096)), Frame::NeedMore(4096));
    }

    #[test]
    fn types_are_total_and_round_trip() {
        for code in (0..40).chain([0xffff, u32::MAX]) {
            assert_eq!(MsgType::from_code(code).code(), code);
        }
        assert_eq!(MsgType::from_code(20), MsgType::Unknown(20));
        assert_eq!(MsgType::from_code(26), MsgType::SetQuota);
    }

    #[test]
    fn encode_refuses_oversize_payloads() {
        assert!(encode(MsgType::Write, 1, 0, &[b'x'; 4097]).is_none());
        let m = encode(MsgType::Write, 1, 2, &[b'x'; 4096]).expect("fits");
        assert_eq!(m.len(), 16 + 4096);
        assert_eq!(
            Header::parse(&m).map(|h| (h.req_id, h.tx_id, h.len)),
            Some((1, 2, 4096))
        );
    }
}

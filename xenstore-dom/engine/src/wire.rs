//! xs_wire: the 16-byte message header, message types and a stream parser.
//!
//! Read first: xs_wire.h (`struct xsd_sockmsg`), docs/misc/xenstore.txt.
//! Every message in either direction is `{type, req_id, tx_id, len}` as
//! little-endian u32s followed by `len` payload bytes, `len <= 4096`
//! (XENSTORE_PAYLOAD_MAX). A longer `len` is a protocol violation: the
//! connection is dropped (and a ring gets `error = XENSTORE_ERROR_PROTO`).

use alloc::vec::Vec;

pub use xcp_xs_wire::{Header, MsgType, ABS_PATH_MAX, HEADER_LEN, PAYLOAD_MAX, REL_PATH_MAX};

/// Why a byte stream is not a xenstore message stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadReason {
    /// `len` exceeds XENSTORE_PAYLOAD_MAX (the XSA-325 case: drop the
    /// connection, set ring error PROTO).
    PayloadTooLong(u32),
    /// The connection already broke the protocol; nothing more is read.
    Broken,
}

/// Outcome of looking at the start of a byte stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parse {
    /// At least this many more bytes are needed before a message is whole.
    NeedMore(usize),
    /// A whole message: its header and total length (header + payload) in
    /// the buffer; the payload is `buf[HEADER_LEN..total]`.
    Message {
        /// The decoded header.
        header: Header,
        /// Bytes this message occupies at the start of the buffer.
        total: usize,
    },
    /// The stream is broken; the connection must be dropped.
    Bad(BadReason),
}

/// Look at the start of `buf` and say whether it holds a whole message.
///
/// Incremental: call again with more bytes after `NeedMore(n)`. The header
/// is validated as soon as it is complete, before any payload is awaited,
/// so an impossible length is refused without buffering it.
pub fn parse(buf: &[u8]) -> Parse {
    let Some(header) = Header::parse(buf) else {
        return Parse::NeedMore(HEADER_LEN - buf.len());
    };
    if header.len as usize > PAYLOAD_MAX {
        return Parse::Bad(BadReason::PayloadTooLong(header.len));
    }
    let total = HEADER_LEN + header.len as usize;
    if buf.len() < total {
        Parse::NeedMore(total - buf.len())
    } else {
        Parse::Message { header, total }
    }
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

    fn hdr(ty: u32, req: u32, tx: u32, len: u32) -> Vec<u8> {
        let mut v = Vec::new();
        for w in [ty, req, tx, len] {
            v.extend_from_slice(&w.to_le_bytes());
        }
        v
    }

    #[test]
    fn read_request_fixture() {
        // XS_READ, req_id 7, tx_id 0, "/a\0".
        let mut buf = hdr(2, 7, 0, 3);
        buf.extend_from_slice(b"/a\0");
        match parse(&buf) {
            Parse::Message { header, total } => {
                assert_eq!(header.ty, MsgType::Read);
                assert_eq!(header.req_id, 7);
                assert_eq!(total, 19);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn need_more_counts_down() {
        let mut buf = hdr(11, 1, 0, 4);
        buf.extend_from_slice(b"/x\0v");
        for cut in 0..buf.len() {
            // First the header is awaited, then the payload.
            let want = if cut < HEADER_LEN {
                HEADER_LEN - cut
            } else {
                buf.len() - cut
            };
            assert_eq!(parse(&buf[..cut]), Parse::NeedMore(want), "cut {cut}");
        }
    }

    #[test]
    fn impossible_lengths_are_bad_before_payload() {
        for len in [4097u32, 8192, 0x8000_0000, u32::MAX] {
            assert_eq!(
                parse(&hdr(2, 0, 0, len)),
                Parse::Bad(BadReason::PayloadTooLong(len))
            );
        }
        // Exactly PAYLOAD_MAX is fine.
        assert_eq!(parse(&hdr(2, 0, 0, 4096)), Parse::NeedMore(4096));
        // Zero-length payload is a whole message.
        assert!(matches!(
            parse(&hdr(21, 0, 0, 0)),
            Parse::Message { total: 16, .. }
        ));
    }

    #[test]
    fn unknown_types_keep_their_code() {
        assert_eq!(MsgType::from_code(20), MsgType::Unknown(20));
        assert_eq!(MsgType::from_code(0xffff), MsgType::Unknown(0xffff));
        for code in 0..40u32 {
            assert_eq!(MsgType::from_code(code).code(), code);
        }
    }

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

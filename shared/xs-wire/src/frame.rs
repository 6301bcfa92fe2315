//! Stream framing: where a whole xenstore message ends in a byte stream.
//!
//! Read first: xs_wire.h `struct xsd_sockmsg`, docs/misc/xenstore.txt. A
//! `len` above XENSTORE_PAYLOAD_MAX is a protocol violation, whichever end
//! sends it: the engine drops the connection (a ring gets `error =
//! XENSTORE_ERROR_PROTO`, XSA-325), the client stops reading. Incremental
//! in ocaml-xenstore's `Need_more_data` style: `NeedMore(n) | Message |
//! Bad(reason)`.

use crate::{Header, HEADER_LEN, PAYLOAD_MAX};

/// Why a byte stream is not a xenstore message stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadReason {
    /// `len` exceeds XENSTORE_PAYLOAD_MAX: the stream cannot be trusted
    /// (the XSA-325 case).
    PayloadTooLong(u32),
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
    /// The stream is broken; stop reading it.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MsgType;
    use alloc::vec::Vec;

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
    fn read_reply_fixture() {
        // XS_READ reply, req_id 7, tx_id 0, "abc" (READ replies carry no nul).
        let mut buf = hdr(2, 7, 0, 3);
        buf.extend_from_slice(b"abc");
        assert_eq!(
            parse(&buf),
            Parse::Message {
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
    fn partial_error_replies_ask_for_the_rest() {
        let mut buf = hdr(16, 1, 0, 7);
        buf.extend_from_slice(b"ENOENT\0");
        for cut in 0..buf.len() {
            assert_eq!(
                parse(&buf[..cut]),
                Parse::NeedMore(if cut < 16 { 16 - cut } else { 23 - cut })
            );
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
}

//! xs_wire for the client side: the 16-byte header, message types, framing.
//!
//! Read first: xs_wire.h (`struct xsd_sockmsg`, `enum xsd_sockmsg_type`),
//! docs/misc/xenstore.txt. Every message either way is `{type, req_id,
//! tx_id, len}` as little-endian u32s, then `len` payload bytes with
//! `len <= XENSTORE_PAYLOAD_MAX` (4096). A reply with a longer `len` is a
//! broken server: the client stops reading instead of buffering it.
//!
//! This mirrors the engine's `wire` module rather than depending on it:
//! shared crates never depend on a domain's crates.

use alloc::vec::Vec;

/// Size of `struct xsd_sockmsg`.
pub const HEADER_LEN: usize = 16;
/// XENSTORE_PAYLOAD_MAX: the largest payload either side may send.
pub const XENSTORE_PAYLOAD_MAX: usize = 4096;
/// XENSTORE_ABS_PATH_MAX.
pub const XENSTORE_ABS_PATH_MAX: usize = 3072;
/// XENSTORE_REL_PATH_MAX.
pub const XENSTORE_REL_PATH_MAX: usize = 2048;

macro_rules! msg_types {
    ($($(#[$doc:meta])* $name:ident = $val:expr,)*) => {
        /// `enum xsd_sockmsg_type`, total: unknown codes keep their value.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum MsgType {
            $($(#[$doc])* $name,)*
            /// A code this client does not know.
            Unknown(u32),
        }

        impl MsgType {
            /// The wire code of this type.
            pub const fn code(self) -> u32 {
                match self {
                    $(MsgType::$name => $val,)*
                    MsgType::Unknown(n) => n,
                }
            }

            /// Decode a wire code; never fails.
            pub const fn from_code(code: u32) -> MsgType {
                match code {
                    $($val => MsgType::$name,)*
                    n => MsgType::Unknown(n),
                }
            }
        }
    };
}

msg_types! {
    /// XS_CONTROL (0).
    Control = 0,
    /// XS_DIRECTORY (1).
    Directory = 1,
    /// XS_READ (2).
    Read = 2,
    /// XS_GET_PERMS (3).
    GetPerms = 3,
    /// XS_WATCH (4).
    Watch = 4,
    /// XS_UNWATCH (5).
    Unwatch = 5,
    /// XS_TRANSACTION_START (6).
    TransactionStart = 6,
    /// XS_TRANSACTION_END (7).
    TransactionEnd = 7,
    /// XS_INTRODUCE (8).
    Introduce = 8,
    /// XS_RELEASE (9).
    Release = 9,
    /// XS_GET_DOMAIN_PATH (10).
    GetDomainPath = 10,
    /// XS_WRITE (11).
    Write = 11,
    /// XS_MKDIR (12).
    Mkdir = 12,
    /// XS_RM (13).
    Rm = 13,
    /// XS_SET_PERMS (14).
    SetPerms = 14,
    /// XS_WATCH_EVENT (15): server to client only.
    WatchEvent = 15,
    /// XS_ERROR (16): server to client only.
    Error = 16,
    /// XS_IS_DOMAIN_INTRODUCED (17).
    IsDomainIntroduced = 17,
    /// XS_RESUME (18).
    Resume = 18,
    /// XS_SET_TARGET (19).
    SetTarget = 19,
    /// XS_RESET_WATCHES (21); 20 (RESTRICT) was removed.
    ResetWatches = 21,
    /// XS_DIRECTORY_PART (22).
    DirectoryPart = 22,
    /// XS_GET_FEATURE (23).
    GetFeature = 23,
    /// XS_SET_FEATURE (24).
    SetFeature = 24,
    /// XS_GET_QUOTA (25).
    GetQuota = 25,
    /// XS_SET_QUOTA (26).
    SetQuota = 26,
}

/// `struct xsd_sockmsg`, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// `type`.
    pub ty: MsgType,
    /// `req_id`, echoed in the reply.
    pub req_id: u32,
    /// `tx_id`, 0 outside a transaction.
    pub tx_id: u32,
    /// `len`: payload bytes that follow.
    pub len: u32,
}

impl Header {
    /// Decode the first 16 bytes of `buf`; `None` if shorter.
    pub fn parse(buf: &[u8]) -> Option<Header> {
        let word = |i: usize| -> Option<u32> {
            let b = buf.get(i * 4..i * 4 + 4)?;
            Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        Some(Header {
            ty: MsgType::from_code(word(0)?),
            req_id: word(1)?,
            tx_id: word(2)?,
            len: word(3)?,
        })
    }

    /// Encode as the 16 wire bytes.
    pub fn emit(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..4].copy_from_slice(&self.ty.code().to_le_bytes());
        out[4..8].copy_from_slice(&self.req_id.to_le_bytes());
        out[8..12].copy_from_slice(&self.tx_id.to_le_bytes());
        out[12..16].copy_from_slice(&self.len.to_le_bytes());
        out
    }
}

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

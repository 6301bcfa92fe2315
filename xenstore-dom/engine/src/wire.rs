//! xs_wire: the 16-byte message header, message types and a stream parser.
//!
//! Read first: xs_wire.h (`struct xsd_sockmsg`), docs/misc/xenstore.txt.
//! Every message in either direction is `{type, req_id, tx_id, len}` as
//! little-endian u32s followed by `len` payload bytes, `len <= 4096`
//! (XENSTORE_PAYLOAD_MAX). A longer `len` is a protocol violation: the
//! connection is dropped (and a ring gets `error = XENSTORE_ERROR_PROTO`).

use alloc::vec::Vec;

/// Size of `struct xsd_sockmsg`.
pub const HEADER_LEN: usize = 16;
/// XENSTORE_PAYLOAD_MAX: the largest payload either side may send.
pub const PAYLOAD_MAX: usize = 4096;
/// XENSTORE_ABS_PATH_MAX.
pub const ABS_PATH_MAX: usize = 3072;
/// XENSTORE_REL_PATH_MAX.
pub const REL_PATH_MAX: usize = 2048;

macro_rules! msg_types {
    ($($(#[$doc:meta])* $name:ident = $val:expr,)*) => {
        /// `enum xsd_sockmsg_type`, total: unknown codes keep their value.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum MsgType {
            $($(#[$doc])* $name,)*
            /// A code this server does not implement (answered ENOSYS).
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
    /// XS_CONTROL (0): implementation-specific commands.
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
    /// Message type.
    pub ty: MsgType,
    /// Request id, echoed in the reply.
    pub req_id: u32,
    /// Transaction id, 0 outside a transaction.
    pub tx_id: u32,
    /// Payload length that follows the header.
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

//! xs_wire, the part both ends of xenstore share: header, types, framing.
//!
//! The 16-byte message header, the message types, the protocol's size
//! limits, the errno names ([`Errno`]), the stream framing ([`parse`]) and
//! the ring page with its byte copies ([`ring`]). Used by the xenstore
//! engine (the server) and the xenbus client, each adding only its own side.
//!
//! Read first: xs_wire.h (`struct xsd_sockmsg`, `enum xsd_sockmsg_type`),
//! docs/misc/xenstore.txt. Every message in either direction is `{type,
//! req_id, tx_id, len}` as little-endian u32s followed by `len` payload
//! bytes, `len <= 4096` (XENSTORE_PAYLOAD_MAX).
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

mod errno;
mod frame;
mod perms;
pub mod ring;

pub use errno::Errno;
pub use frame::{parse, BadReason, Parse};
pub use perms::Access;

use xen_abi::io::xs_wire as abi;

/// Size of `struct xsd_sockmsg`.
pub const HEADER_LEN: usize = abi::XSD_SOCKMSG_SIZE;
/// XENSTORE_PAYLOAD_MAX: the largest payload either side may send.
pub const PAYLOAD_MAX: usize = abi::XENSTORE_PAYLOAD_MAX;
/// XENSTORE_ABS_PATH_MAX.
pub const ABS_PATH_MAX: usize = abi::XENSTORE_ABS_PATH_MAX;
/// XENSTORE_REL_PATH_MAX.
pub const REL_PATH_MAX: usize = abi::XENSTORE_REL_PATH_MAX;

macro_rules! msg_types {
    ($($(#[$doc:meta])* $name:ident = $val:path,)*) => {
        /// `enum xsd_sockmsg_type`, total: unknown codes keep their value.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum MsgType {
            $($(#[$doc])* $name,)*
            /// A code this crate does not know (a server answers ENOSYS).
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
    Control = abi::XS_CONTROL,
    /// XS_DIRECTORY (1).
    Directory = abi::XS_DIRECTORY,
    /// XS_READ (2).
    Read = abi::XS_READ,
    /// XS_GET_PERMS (3).
    GetPerms = abi::XS_GET_PERMS,
    /// XS_WATCH (4).
    Watch = abi::XS_WATCH,
    /// XS_UNWATCH (5).
    Unwatch = abi::XS_UNWATCH,
    /// XS_TRANSACTION_START (6).
    TransactionStart = abi::XS_TRANSACTION_START,
    /// XS_TRANSACTION_END (7).
    TransactionEnd = abi::XS_TRANSACTION_END,
    /// XS_INTRODUCE (8).
    Introduce = abi::XS_INTRODUCE,
    /// XS_RELEASE (9).
    Release = abi::XS_RELEASE,
    /// XS_GET_DOMAIN_PATH (10).
    GetDomainPath = abi::XS_GET_DOMAIN_PATH,
    /// XS_WRITE (11).
    Write = abi::XS_WRITE,
    /// XS_MKDIR (12).
    Mkdir = abi::XS_MKDIR,
    /// XS_RM (13).
    Rm = abi::XS_RM,
    /// XS_SET_PERMS (14).
    SetPerms = abi::XS_SET_PERMS,
    /// XS_WATCH_EVENT (15): server to client only.
    WatchEvent = abi::XS_WATCH_EVENT,
    /// XS_ERROR (16): server to client only.
    Error = abi::XS_ERROR,
    /// XS_IS_DOMAIN_INTRODUCED (17).
    IsDomainIntroduced = abi::XS_IS_DOMAIN_INTRODUCED,
    /// XS_RESUME (18).
    Resume = abi::XS_RESUME,
    /// XS_SET_TARGET (19).
    SetTarget = abi::XS_SET_TARGET,
    /// XS_RESET_WATCHES (21); 20 (RESTRICT) was removed.
    ResetWatches = abi::XS_RESET_WATCHES,
    /// XS_DIRECTORY_PART (22).
    DirectoryPart = abi::XS_DIRECTORY_PART,
    /// XS_GET_FEATURE (23).
    GetFeature = abi::XS_GET_FEATURE,
    /// XS_SET_FEATURE (24).
    SetFeature = abi::XS_SET_FEATURE,
    /// XS_GET_QUOTA (25).
    GetQuota = abi::XS_GET_QUOTA,
    /// XS_SET_QUOTA (26).
    SetQuota = abi::XS_SET_QUOTA,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_unknown_codes_survive() {
        let h = Header {
            ty: MsgType::from_code(999),
            req_id: 7,
            tx_id: 3,
            len: 12,
        };
        let bytes = h.emit();
        assert_eq!(Header::parse(&bytes), Some(h));
        assert_eq!(h.ty.code(), 999);
        assert_eq!(MsgType::from_code(2), MsgType::Read);
        assert_eq!(Header::parse(&bytes[..15]), None);
    }

    #[test]
    fn types_are_total_and_round_trip() {
        for code in (0..40).chain([0xffff, u32::MAX]) {
            assert_eq!(MsgType::from_code(code).code(), code);
        }
        assert_eq!(MsgType::from_code(20), MsgType::Unknown(20));
        assert_eq!(MsgType::from_code(0xffff), MsgType::Unknown(0xffff));
        assert_eq!(MsgType::from_code(26), MsgType::SetQuota);
    }
}

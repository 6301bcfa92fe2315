//! The xenstore wire format and ring page (xen/include/public/io/xs_wire.h).
//!
//! Read first: io/xs_wire.h, docs/misc/xenstore.txt and
//! docs/misc/xenstore-ring.txt. Every message is a 16-byte `xsd_sockmsg`
//! header followed by `len` bytes (at most `XENSTORE_PAYLOAD_MAX`). Pure data:
//! parsing and the ring engine live outside xen-sys.

/// `XS_CONTROL` (alias `XS_DEBUG`)
pub const XS_CONTROL: u32 = 0;
/// `XS_DIRECTORY`
pub const XS_DIRECTORY: u32 = 1;
/// `XS_READ`
pub const XS_READ: u32 = 2;
/// `XS_GET_PERMS`
pub const XS_GET_PERMS: u32 = 3;
/// `XS_WATCH`
pub const XS_WATCH: u32 = 4;
/// `XS_UNWATCH`
pub const XS_UNWATCH: u32 = 5;
/// `XS_TRANSACTION_START`
pub const XS_TRANSACTION_START: u32 = 6;
/// `XS_TRANSACTION_END`
pub const XS_TRANSACTION_END: u32 = 7;
/// `XS_INTRODUCE`
pub const XS_INTRODUCE: u32 = 8;
/// `XS_RELEASE`
pub const XS_RELEASE: u32 = 9;
/// `XS_GET_DOMAIN_PATH`
pub const XS_GET_DOMAIN_PATH: u32 = 10;
/// `XS_WRITE`
pub const XS_WRITE: u32 = 11;
/// `XS_MKDIR`
pub const XS_MKDIR: u32 = 12;
/// `XS_RM`
pub const XS_RM: u32 = 13;
/// `XS_SET_PERMS`
pub const XS_SET_PERMS: u32 = 14;
/// `XS_WATCH_EVENT`
pub const XS_WATCH_EVENT: u32 = 15;
/// `XS_ERROR`
pub const XS_ERROR: u32 = 16;
/// `XS_IS_DOMAIN_INTRODUCED`
pub const XS_IS_DOMAIN_INTRODUCED: u32 = 17;
/// `XS_RESUME`
pub const XS_RESUME: u32 = 18;
/// `XS_SET_TARGET`
pub const XS_SET_TARGET: u32 = 19;
/// `XS_RESET_WATCHES` (20 was `XS_RESTRICT`, removed)
pub const XS_RESET_WATCHES: u32 = 21;
/// `XS_DIRECTORY_PART`
pub const XS_DIRECTORY_PART: u32 = 22;
/// `XS_TYPE_COUNT`: number of valid types.
pub const XS_TYPE_COUNT: u32 = 23;
/// `XS_INVALID`: guaranteed to remain invalid.
pub const XS_INVALID: u32 = 0xffff;

/// `XS_WATCH_PATH`: index of the path in a watch event's payload.
pub const XS_WATCH_PATH: u32 = 0;
/// `XS_WATCH_TOKEN`: index of the token in a watch event's payload.
pub const XS_WATCH_TOKEN: u32 = 1;

/// `XENSTORE_RING_SIZE`: bytes in each of `req` and `rsp`.
pub const XENSTORE_RING_SIZE: usize = 1024;
/// `XENSTORE_PAYLOAD_MAX`: largest `len` of a message.
pub const XENSTORE_PAYLOAD_MAX: usize = 4096;
/// `XENSTORE_ABS_PATH_MAX`
pub const XENSTORE_ABS_PATH_MAX: usize = 3072;
/// `XENSTORE_REL_PATH_MAX`
pub const XENSTORE_REL_PATH_MAX: usize = 2048;

/// `XENSTORE_SERVER_FEATURE_RECONNECTION`
pub const XENSTORE_SERVER_FEATURE_RECONNECTION: u32 = 1;
/// `XENSTORE_SERVER_FEATURE_ERROR`
pub const XENSTORE_SERVER_FEATURE_ERROR: u32 = 2;
/// `XENSTORE_CONNECTED`: the steady state.
pub const XENSTORE_CONNECTED: u32 = 0;
/// `XENSTORE_RECONNECT`: reconnection in progress.
pub const XENSTORE_RECONNECT: u32 = 1;
/// `XENSTORE_ERROR_NONE`
pub const XENSTORE_ERROR_NONE: u32 = 0;
/// `XENSTORE_ERROR_COMM`: communication problem.
pub const XENSTORE_ERROR_COMM: u32 = 1;
/// `XENSTORE_ERROR_RINGIDX`: invalid ring index.
pub const XENSTORE_ERROR_RINGIDX: u32 = 2;
/// `XENSTORE_ERROR_PROTO`: protocol violation (payload too long).
pub const XENSTORE_ERROR_PROTO: u32 = 3;

/// `XS_WRITE_NONE` (legacy write flags)
pub const XS_WRITE_NONE: &str = "NONE";
/// `XS_WRITE_CREATE`
pub const XS_WRITE_CREATE: &str = "CREATE";
/// `XS_WRITE_CREATE_EXCL`
pub const XS_WRITE_CREATE_EXCL: &str = "CREATE|EXCL";

/// `XENSTORE_RING_IDX`
pub type XenstoreRingIdx = u32;

/// `struct xsd_sockmsg`: the header of every xenstore message.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XsdSockmsg {
    /// `XS_*`.
    pub r#type: u32,
    /// Request id, echoed in the reply.
    pub req_id: u32,
    /// Transaction id (0: none).
    pub tx_id: u32,
    /// Bytes of payload that follow.
    pub len: u32,
}

/// Size of [`XsdSockmsg`] on the wire.
pub const XSD_SOCKMSG_SIZE: usize = 16;

/// `struct xenstore_domain_interface`: the xenstore ring page.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenstoreDomainInterface {
    /// Requests to the xenstore daemon.
    pub req: [u8; XENSTORE_RING_SIZE],
    /// Replies and watch events.
    pub rsp: [u8; XENSTORE_RING_SIZE],
    /// Daemon's consumer index into `req`.
    pub req_cons: XenstoreRingIdx,
    /// Guest's producer index into `req`.
    pub req_prod: XenstoreRingIdx,
    /// Guest's consumer index into `rsp`.
    pub rsp_cons: XenstoreRingIdx,
    /// Daemon's producer index into `rsp`.
    pub rsp_prod: XenstoreRingIdx,
    /// `XENSTORE_SERVER_FEATURE_*` the server supports.
    pub server_features: u32,
    /// `XENSTORE_CONNECTED` or `XENSTORE_RECONNECT`.
    pub connection: u32,
    /// `XENSTORE_ERROR_*`.
    pub error: u32,
}

impl Default for XenstoreDomainInterface {
    fn default() -> Self {
        XenstoreDomainInterface {
            req: [0; XENSTORE_RING_SIZE],
            rsp: [0; XENSTORE_RING_SIZE],
            req_cons: 0,
            req_prod: 0,
            rsp_cons: 0,
            rsp_prod: 0,
            server_features: 0,
            connection: XENSTORE_CONNECTED,
            error: XENSTORE_ERROR_NONE,
        }
    }
}

// sizeof(struct xenstore_domain_interface); see tests/abi_layout.rs.
const _: () = assert!(core::mem::size_of::<XenstoreDomainInterface>() == 2076);

/// `MASK_XENSTORE_IDX(idx)`
pub const fn mask_xenstore_idx(idx: XenstoreRingIdx) -> usize {
    (idx as usize) & (XENSTORE_RING_SIZE - 1)
}

/// `enum xsd_sockmsg_type`, total over the wire's `u32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XsdSockmsgType {
    /// `XS_CONTROL`
    Control,
    /// `XS_DIRECTORY`
    Directory,
    /// `XS_READ`
    Read,
    /// `XS_GET_PERMS`
    GetPerms,
    /// `XS_WATCH`
    Watch,
    /// `XS_UNWATCH`
    Unwatch,
    /// `XS_TRANSACTION_START`
    TransactionStart,
    /// `XS_TRANSACTION_END`
    TransactionEnd,
    /// `XS_INTRODUCE`
    Introduce,
    /// `XS_RELEASE`
    Release,
    /// `XS_GET_DOMAIN_PATH`
    GetDomainPath,
    /// `XS_WRITE`
    Write,
    /// `XS_MKDIR`
    Mkdir,
    /// `XS_RM`
    Rm,
    /// `XS_SET_PERMS`
    SetPerms,
    /// `XS_WATCH_EVENT`
    WatchEvent,
    /// `XS_ERROR`
    Error,
    /// `XS_IS_DOMAIN_INTRODUCED`
    IsDomainIntroduced,
    /// `XS_RESUME`
    Resume,
    /// `XS_SET_TARGET`
    SetTarget,
    /// `XS_RESET_WATCHES`
    ResetWatches,
    /// `XS_DIRECTORY_PART`
    DirectoryPart,
    /// Any other value (including `XS_INVALID` and the removed 20).
    Unknown(u32),
}

/// Every known type with its wire value, in wire order.
const KNOWN: [(XsdSockmsgType, u32); 22] = [
    (XsdSockmsgType::Control, XS_CONTROL),
    (XsdSockmsgType::Directory, XS_DIRECTORY),
    (XsdSockmsgType::Read, XS_READ),
    (XsdSockmsgType::GetPerms, XS_GET_PERMS),
    (XsdSockmsgType::Watch, XS_WATCH),
    (XsdSockmsgType::Unwatch, XS_UNWATCH),
    (XsdSockmsgType::TransactionStart, XS_TRANSACTION_START),
    (XsdSockmsgType::TransactionEnd, XS_TRANSACTION_END),
    (XsdSockmsgType::Introduce, XS_INTRODUCE),
    (XsdSockmsgType::Release, XS_RELEASE),
    (XsdSockmsgType::GetDomainPath, XS_GET_DOMAIN_PATH),
    (XsdSockmsgType::Write, XS_WRITE),
    (XsdSockmsgType::Mkdir, XS_MKDIR),
    (XsdSockmsgType::Rm, XS_RM),
    (XsdSockmsgType::SetPerms, XS_SET_PERMS),
    (XsdSockmsgType::WatchEvent, XS_WATCH_EVENT),
    (XsdSockmsgType::Error, XS_ERROR),
    (XsdSockmsgType::IsDomainIntroduced, XS_IS_DOMAIN_INTRODUCED),
    (XsdSockmsgType::Resume, XS_RESUME),
    (XsdSockmsgType::SetTarget, XS_SET_TARGET),
    (XsdSockmsgType::ResetWatches, XS_RESET_WATCHES),
    (XsdSockmsgType::DirectoryPart, XS_DIRECTORY_PART),
];

impl From<u32> for XsdSockmsgType {
    fn from(value: u32) -> Self {
        KNOWN
            .iter()
            .find(|(_, v)| *v == value)
            .map_or(XsdSockmsgType::Unknown(value), |(t, _)| *t)
    }
}

impl From<XsdSockmsgType> for u32 {
    fn from(t: XsdSockmsgType) -> u32 {
        match t {
            XsdSockmsgType::Unknown(v) => v,
            known => KNOWN
                .iter()
                .find(|(k, _)| *k == known)
                .map(|(_, v)| *v)
                .expect("every known variant is in KNOWN"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_round_trip_and_unknowns_stay_unknown() {
        for v in 0..=0x1_0000u32 {
            let t = XsdSockmsgType::from(v);
            assert_eq!(u32::from(t), v);
        }
        assert_eq!(XsdSockmsgType::from(20), XsdSockmsgType::Unknown(20));
        assert_eq!(
            XsdSockmsgType::from(XS_INVALID),
            XsdSockmsgType::Unknown(0xffff)
        );
        assert_eq!(XsdSockmsgType::from(21), XsdSockmsgType::ResetWatches);
    }

    #[test]
    fn ring_index_masks() {
        assert_eq!(mask_xenstore_idx(1024), 0);
        assert_eq!(mask_xenstore_idx(1025), 1);
        assert_eq!(core::mem::size_of::<XsdSockmsg>(), XSD_SOCKMSG_SIZE);
    }
}

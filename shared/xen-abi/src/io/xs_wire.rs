//! The xenstore wire format and ring page (xen/include/public/io/xs_wire.h).
//!
//! Read first: io/xs_wire.h, docs/misc/xenstore.txt and
//! docs/misc/xenstore-ring.txt. Every message is a 16-byte `xsd_sockmsg`
//! header followed by `len` bytes (at most `XENSTORE_PAYLOAD_MAX`). Pure data:
//! the typed message enum, parsing and the ring copies live in `xcp-xs-wire`.

use core::mem::{offset_of, size_of};

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
/// `XS_GET_FEATURE`: from Xen 4.18's xs_wire.h (not in 4.17's); our
/// xenstored serves it.
pub const XS_GET_FEATURE: u32 = 23;
/// `XS_SET_FEATURE` (Xen 4.18's xs_wire.h).
pub const XS_SET_FEATURE: u32 = 24;
/// `XS_GET_QUOTA` (Xen 4.18's xs_wire.h).
pub const XS_GET_QUOTA: u32 = 25;
/// `XS_SET_QUOTA` (Xen 4.18's xs_wire.h).
pub const XS_SET_QUOTA: u32 = 26;
/// `XS_TYPE_COUNT` of the 4.17 header: number of valid 4.17 types (the
/// 4.18 additions above come after it).
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

/// The errno names an `XS_ERROR` reply carries, in `xsd_errors[]` order
/// (errors go on the wire as these strings, NUL-terminated, never numbers).
pub const XSD_ERRORS: [&str; 16] = [
    "EINVAL",
    "EACCES",
    "EEXIST",
    "EISDIR",
    "ENOENT",
    "ENOMEM",
    "ENOSPC",
    "EIO",
    "ENOTEMPTY",
    "ENOSYS",
    "EROFS",
    "EBUSY",
    "EAGAIN",
    "EISCONN",
    "E2BIG",
    "EPERM",
];

/// Permission letter `n`: no access (docs/misc/xenstore.txt, "Permissions").
/// A permission goes on the wire as the letter then the domid in decimal
/// (`r0`, `b1`, `n0`); the first one names the owner, its letter the
/// access of every domain not listed.
pub const XS_PERM_NONE: u8 = b'n';
/// Permission letter `r`: read.
pub const XS_PERM_READ: u8 = b'r';
/// Permission letter `w`: write.
pub const XS_PERM_WRITE: u8 = b'w';
/// Permission letter `b`: both read and write.
pub const XS_PERM_BOTH: u8 = b'b';

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

// sizeof(struct xenstore_domain_interface); see tests/headers.rs.
const _: () = assert!(size_of::<XenstoreDomainInterface>() == 2076);
const _: () = assert!(size_of::<XsdSockmsg>() == XSD_SOCKMSG_SIZE);

/// Byte offset of `req[]` in the ring page.
pub const OFF_REQ: usize = offset_of!(XenstoreDomainInterface, req);
/// Byte offset of `rsp[]`.
pub const OFF_RSP: usize = offset_of!(XenstoreDomainInterface, rsp);
/// Byte offset of `req_cons`.
pub const OFF_REQ_CONS: usize = offset_of!(XenstoreDomainInterface, req_cons);
/// Byte offset of `req_prod`.
pub const OFF_REQ_PROD: usize = offset_of!(XenstoreDomainInterface, req_prod);
/// Byte offset of `rsp_cons`.
pub const OFF_RSP_CONS: usize = offset_of!(XenstoreDomainInterface, rsp_cons);
/// Byte offset of `rsp_prod`.
pub const OFF_RSP_PROD: usize = offset_of!(XenstoreDomainInterface, rsp_prod);
/// Byte offset of `server_features`.
pub const OFF_SERVER_FEATURES: usize = offset_of!(XenstoreDomainInterface, server_features);
/// Byte offset of `connection`.
pub const OFF_CONNECTION: usize = offset_of!(XenstoreDomainInterface, connection);
/// Byte offset of `error`.
pub const OFF_ERROR: usize = offset_of!(XenstoreDomainInterface, error);

/// `MASK_XENSTORE_IDX(idx)`
pub const fn mask_xenstore_idx(idx: XenstoreRingIdx) -> usize {
    (idx as usize) & (XENSTORE_RING_SIZE - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_index_masks() {
        assert_eq!(mask_xenstore_idx(1024), 0);
        assert_eq!(mask_xenstore_idx(1025), 1);
        assert_eq!(core::mem::size_of::<XsdSockmsg>(), XSD_SOCKMSG_SIZE);
    }
}

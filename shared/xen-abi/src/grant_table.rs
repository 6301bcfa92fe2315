//! Grant references and the version-1 grant entry
//! (xen/include/public/grant_table.h): what a granting domain (or the
//! domain builder, for the reserved console and xenstore entries) writes in
//! its grant table. The `GNTTABOP_*` hypercalls are xen-sys's.

use core::mem::{offset_of, size_of};

use crate::xen::DomId;

/// `grant_ref_t`
pub type GrantRef = u32;
/// `grant_handle_t`: what a map returns and an unmap takes.
pub type GrantHandle = u32;

/// `GNTTAB_NR_RESERVED_ENTRIES`: entries 0..8 are the toolstack's.
pub const GNTTAB_NR_RESERVED_ENTRIES: u32 = 8;
/// `GNTTAB_RESERVED_CONSOLE`: the console ring's grant.
pub const GNTTAB_RESERVED_CONSOLE: u32 = 0;
/// `GNTTAB_RESERVED_XENSTORE`: the xenstore ring's grant.
pub const GNTTAB_RESERVED_XENSTORE: u32 = 1;

/// `GTF_invalid`
pub const GTF_INVALID: u16 = 0;
/// `GTF_permit_access`: the peer may map or copy the frame.
pub const GTF_PERMIT_ACCESS: u16 = 1;
/// `GTF_accept_transfer`
pub const GTF_ACCEPT_TRANSFER: u16 = 2;
/// `GTF_transitive` (v2 only)
pub const GTF_TRANSITIVE: u16 = 3;
/// `GTF_type_mask`
pub const GTF_TYPE_MASK: u16 = 3;
/// `GTF_readonly`: the peer may only read.
pub const GTF_READONLY: u16 = 1 << 2;
/// `GTF_reading`: set by Xen while the peer has it mapped or is copying.
pub const GTF_READING: u16 = 1 << 3;
/// `GTF_writing`: set by Xen while the peer has it mapped writable.
pub const GTF_WRITING: u16 = 1 << 4;
/// `GTF_PWT`
pub const GTF_PWT: u16 = 1 << 5;
/// `GTF_PCD`
pub const GTF_PCD: u16 = 1 << 6;
/// `GTF_PAT`
pub const GTF_PAT: u16 = 1 << 7;
/// `GTF_sub_page` (v2 only)
pub const GTF_SUB_PAGE: u16 = 1 << 8;
/// `GTF_transfer_committed`
pub const GTF_TRANSFER_COMMITTED: u16 = 1 << 2;
/// `GTF_transfer_completed`
pub const GTF_TRANSFER_COMPLETED: u16 = 1 << 3;

/// `struct grant_entry_v1`: one entry of a version-1 grant table (8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantEntryV1 {
    /// `GTF_*`; write it last, after `domid` and `frame` (with a barrier).
    pub flags: u16,
    /// The domain being granted access.
    pub domid: DomId,
    /// The frame (gfn) granted.
    pub frame: u32,
}

// sizeof(grant_entry_v1_t); see tests/headers.rs.
const _: () = assert!(size_of::<GrantEntryV1>() == 8);

/// Byte offset of `flags` in a `grant_entry_v1`.
pub const OFF_GRANT_FLAGS: usize = offset_of!(GrantEntryV1, flags);
/// Byte offset of `domid`.
pub const OFF_GRANT_DOMID: usize = offset_of!(GrantEntryV1, domid);
/// Byte offset of `frame`.
pub const OFF_GRANT_FRAME: usize = offset_of!(GrantEntryV1, frame);

//! `grant_table_op` (xen/include/public/grant_table.h): sharing pages between
//! domains by grant reference.
//!
//! Read first: xen/include/public/grant_table.h. A granting domain writes a
//! `grant_entry_v1` in its table (`GTF_permit_access`, the peer's domid and
//! the frame); the peer maps or copies the page with `GNTTABOP_*`. Every
//! operation has two error channels: the hypercall's errno (the batch failed
//! as a whole) and a per-operation `GNTST_*` status in the structure.

#[cfg(target_arch = "x86_64")]
use crate::hypercall;
use crate::xen::{DomId, XenPfn};

pub use xen_abi::grant_table::*;

/// `GNTTABOP_map_grant_ref`
pub const GNTTABOP_MAP_GRANT_REF: u32 = 0;
/// `GNTTABOP_unmap_grant_ref`
pub const GNTTABOP_UNMAP_GRANT_REF: u32 = 1;
/// `GNTTABOP_setup_table`
pub const GNTTABOP_SETUP_TABLE: u32 = 2;
/// `GNTTABOP_dump_table`
pub const GNTTABOP_DUMP_TABLE: u32 = 3;
/// `GNTTABOP_transfer`
pub const GNTTABOP_TRANSFER: u32 = 4;
/// `GNTTABOP_copy`
pub const GNTTABOP_COPY: u32 = 5;
/// `GNTTABOP_query_size`
pub const GNTTABOP_QUERY_SIZE: u32 = 6;
/// `GNTTABOP_unmap_and_replace`
pub const GNTTABOP_UNMAP_AND_REPLACE: u32 = 7;
/// `GNTTABOP_set_version`
pub const GNTTABOP_SET_VERSION: u32 = 8;
/// `GNTTABOP_get_status_frames`
pub const GNTTABOP_GET_STATUS_FRAMES: u32 = 9;
/// `GNTTABOP_get_version`
pub const GNTTABOP_GET_VERSION: u32 = 10;

/// `GNTMAP_device_map`
pub const GNTMAP_DEVICE_MAP: u32 = 1 << 0;
/// `GNTMAP_host_map`
pub const GNTMAP_HOST_MAP: u32 = 1 << 1;
/// `GNTMAP_readonly`
pub const GNTMAP_READONLY: u32 = 1 << 2;
/// `GNTMAP_application_map`
pub const GNTMAP_APPLICATION_MAP: u32 = 1 << 3;
/// `GNTMAP_contains_pte`: `host_addr` is the machine address of a PTE.
pub const GNTMAP_CONTAINS_PTE: u32 = 1 << 4;

/// `GNTCOPY_source_gref`: `source.u` is a grant reference.
pub const GNTCOPY_SOURCE_GREF: u16 = 1 << 0;
/// `GNTCOPY_dest_gref`: `dest.u` is a grant reference.
pub const GNTCOPY_DEST_GREF: u16 = 1 << 1;

/// `GNTST_okay`
pub const GNTST_OKAY: i16 = 0;
/// `GNTST_general_error`
pub const GNTST_GENERAL_ERROR: i16 = -1;
/// `GNTST_bad_domain`
pub const GNTST_BAD_DOMAIN: i16 = -2;
/// `GNTST_bad_gntref`
pub const GNTST_BAD_GNTREF: i16 = -3;
/// `GNTST_bad_handle`
pub const GNTST_BAD_HANDLE: i16 = -4;
/// `GNTST_bad_virt_addr`
pub const GNTST_BAD_VIRT_ADDR: i16 = -5;
/// `GNTST_bad_dev_addr`
pub const GNTST_BAD_DEV_ADDR: i16 = -6;
/// `GNTST_no_device_space`
pub const GNTST_NO_DEVICE_SPACE: i16 = -7;
/// `GNTST_permission_denied`
pub const GNTST_PERMISSION_DENIED: i16 = -8;
/// `GNTST_bad_page`
pub const GNTST_BAD_PAGE: i16 = -9;
/// `GNTST_bad_copy_arg`
pub const GNTST_BAD_COPY_ARG: i16 = -10;
/// `GNTST_address_too_big`
pub const GNTST_ADDRESS_TOO_BIG: i16 = -11;
/// `GNTST_eagain`
pub const GNTST_EAGAIN: i16 = -12;
/// `GNTST_no_space`
pub const GNTST_NO_SPACE: i16 = -13;

/// `struct gnttab_map_grant_ref`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabMapGrantRef {
    /// IN: virtual address (or PTE machine address) to map at.
    pub host_addr: u64,
    /// IN: `GNTMAP_*`.
    pub flags: u32,
    /// IN: the grant reference.
    pub r#ref: GrantRef,
    /// IN: the granting domain.
    pub dom: DomId,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// OUT: handle for the unmap.
    pub handle: GrantHandle,
    /// OUT: bus address with `GNTMAP_device_map`.
    pub dev_bus_addr: u64,
}

/// `struct gnttab_unmap_grant_ref`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabUnmapGrantRef {
    /// IN: the address given to the map (0 if not host-mapped).
    pub host_addr: u64,
    /// IN: the bus address returned by the map (0 if not device-mapped).
    pub dev_bus_addr: u64,
    /// IN: the handle returned by the map.
    pub handle: GrantHandle,
    /// OUT: `GNTST_*`.
    pub status: i16,
}

/// `struct gnttab_setup_table`: the frames of a domain's grant table.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct GnttabSetupTable {
    /// IN: the domain.
    pub dom: DomId,
    /// IN: how many frames.
    pub nr_frames: u32,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Guest handle, OUT: the frames' numbers.
    pub frame_list: *mut XenPfn,
}

/// `struct gnttab_copy_ptr`'s union: a grant reference or a frame.
#[repr(C)]
#[derive(Clone, Copy)]
pub union GnttabCopyPtrU {
    /// With `GNTCOPY_*_gref`: a grant reference of `domid`.
    pub r#ref: GrantRef,
    /// Otherwise: a frame of the calling domain.
    pub gmfn: XenPfn,
}

impl Default for GnttabCopyPtrU {
    fn default() -> Self {
        GnttabCopyPtrU { gmfn: 0 }
    }
}

/// `struct gnttab_copy_ptr`: one end of a copy.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct GnttabCopyPtr {
    /// A grant reference or a frame.
    pub u: GnttabCopyPtrU,
    /// The domain owning the grant (`DOMID_SELF` for a frame).
    pub domid: DomId,
    /// Offset in the page.
    pub offset: u16,
}

/// `struct gnttab_copy`: copy bytes between granted pages.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct GnttabCopy {
    /// IN: where from.
    pub source: GnttabCopyPtr,
    /// IN: where to.
    pub dest: GnttabCopyPtr,
    /// IN: bytes to copy (may not cross a page boundary).
    pub len: u16,
    /// IN: `GNTCOPY_*`.
    pub flags: u16,
    /// OUT: `GNTST_*`.
    pub status: i16,
}

/// `struct gnttab_query_size`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabQuerySize {
    /// IN: the domain.
    pub dom: DomId,
    /// OUT: current frames.
    pub nr_frames: u32,
    /// OUT: maximum frames.
    pub max_nr_frames: u32,
    /// OUT: `GNTST_*`.
    pub status: i16,
}

/// `struct gnttab_set_version`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabSetVersion {
    /// IN: 1 or 2; OUT: the version now in force.
    pub version: u32,
}

/// A grant-table failure: the whole call, or this operation's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GnttabError {
    /// The hypercall failed (`-errno`).
    Errno(crate::Errno),
    /// The hypercall ran but the operation failed with `GNTST_*`.
    Status(i16),
}

/// Maps the per-operation status to a result.
pub fn check_status(status: i16) -> Result<(), GnttabError> {
    if status == GNTST_OKAY {
        Ok(())
    } else {
        Err(GnttabError::Status(status))
    }
}

/// Calls `grant_table_op(cmd, uop, count)`.
///
/// # Safety
/// `uop` must point to `count` structures of the kind `cmd` expects, valid for
/// reads and writes across the call; maps must target addresses the program
/// manages itself and unmaps must not remove pages still referenced.
#[cfg(target_arch = "x86_64")]
pub unsafe fn grant_table_op<T>(cmd: u32, uop: *mut T, count: u32) -> Result<u64, crate::Errno> {
    // SAFETY: forwarded contract.
    crate::Errno::check(unsafe {
        hypercall::hypercall3(
            hypercall::GRANT_TABLE_OP,
            cmd as u64,
            uop as u64,
            count as u64,
        )
    })
}

/// Asks for `frames.len()` frames of `dom`'s grant table and fills `frames`
/// with their numbers.
///
/// # Safety
/// Must run in a Xen guest whose hypercall page is set up.
#[cfg(target_arch = "x86_64")]
pub unsafe fn setup_table(dom: DomId, frames: &mut [XenPfn]) -> Result<(), GnttabError> {
    let mut arg = GnttabSetupTable {
        dom,
        nr_frames: frames.len() as u32,
        status: 0,
        frame_list: frames.as_mut_ptr(),
    };
    // SAFETY: `arg` and the frame buffer (nr_frames long) live across the call.
    unsafe { grant_table_op(GNTTABOP_SETUP_TABLE, &mut arg, 1) }.map_err(GnttabError::Errno)?;
    check_status(arg.status)
}

/// Returns `(nr_frames, max_nr_frames)` of `dom`'s grant table.
///
/// # Safety
/// Must run in a Xen guest whose hypercall page is set up.
#[cfg(target_arch = "x86_64")]
pub unsafe fn query_size(dom: DomId) -> Result<(u32, u32), GnttabError> {
    let mut arg = GnttabQuerySize {
        dom,
        ..GnttabQuerySize::default()
    };
    // SAFETY: `arg` lives across the call.
    unsafe { grant_table_op(GNTTABOP_QUERY_SIZE, &mut arg, 1) }.map_err(GnttabError::Errno)?;
    check_status(arg.status)?;
    Ok((arg.nr_frames, arg.max_nr_frames))
}

/// Switches this domain's grant table to `version`; returns the version in force.
///
/// # Safety
/// No grant of the current version may be live.
#[cfg(target_arch = "x86_64")]
pub unsafe fn set_version(version: u32) -> Result<u32, crate::Errno> {
    let mut arg = GnttabSetVersion { version };
    // SAFETY: `arg` lives across the call; the caller has no live grants.
    unsafe { grant_table_op(GNTTABOP_SET_VERSION, &mut arg, 1) }?;
    Ok(arg.version)
}

/// Runs a batch of maps; check each entry's `status` afterwards.
///
/// # Safety
/// Every `host_addr` must be an address (or PTE) the program manages itself
/// and no live reference may point into the pages being replaced.
#[cfg(target_arch = "x86_64")]
pub unsafe fn map_grant_refs(ops: &mut [GnttabMapGrantRef]) -> Result<(), crate::Errno> {
    // SAFETY: the batch lives across the call; the caller vouches for the addresses.
    unsafe { grant_table_op(GNTTABOP_MAP_GRANT_REF, ops.as_mut_ptr(), ops.len() as u32) }?;
    Ok(())
}

/// Runs a batch of unmaps; check each entry's `status` afterwards.
///
/// # Safety
/// No live reference may point into the pages being unmapped.
#[cfg(target_arch = "x86_64")]
pub unsafe fn unmap_grant_refs(ops: &mut [GnttabUnmapGrantRef]) -> Result<(), crate::Errno> {
    // SAFETY: the batch lives across the call; the caller dropped every reference.
    unsafe { grant_table_op(GNTTABOP_UNMAP_GRANT_REF, ops.as_mut_ptr(), ops.len() as u32) }?;
    Ok(())
}

/// Runs a batch of copies; check each entry's `status` afterwards.
///
/// # Safety
/// Local frames named by `gmfn` must be ours and not aliased by live
/// references while Xen writes them.
#[cfg(target_arch = "x86_64")]
pub unsafe fn copy(ops: &mut [GnttabCopy]) -> Result<(), crate::Errno> {
    // SAFETY: the batch lives across the call; the caller vouches for the frames.
    unsafe { grant_table_op(GNTTABOP_COPY, ops.as_mut_ptr(), ops.len() as u32) }?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_maps_to_result() {
        assert_eq!(check_status(GNTST_OKAY), Ok(()));
        assert_eq!(
            check_status(GNTST_BAD_GNTREF),
            Err(GnttabError::Status(GNTST_BAD_GNTREF))
        );
    }
}

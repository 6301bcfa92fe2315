//! The two other pages libxc writes for a PV domU: shared_info and the
//! reserved grant entries for the console and xenstore rings.
//!
//! Read first: xen/include/public/xen.h (`struct shared_info`, `struct
//! vcpu_info`, `XEN_LEGACY_MAX_VCPUS`), xen/include/public/grant_table.h
//! (`grant_entry_v1_t`, `GTF_permit_access`, `GNTTAB_RESERVED_*`) and
//! tools/libs/guest/xg_dom_x86.c (`shared_info_x86_64`) and
//! xg_dom_boot.c (`xc_dom_gnttab_seed`). Offsets are checked against the C
//! headers by tests/start_info_c.rs.

use crate::layout::PvLayout;
use crate::{Error, Page};

pub use xen_abi::grant_table::{
    GNTTAB_RESERVED_CONSOLE, GNTTAB_RESERVED_XENSTORE, GTF_PERMIT_ACCESS,
};
pub use xen_abi::xen::shared_info::OFF_EVTCHN_UPCALL_MASK;
pub use xen_abi::xen::XEN_LEGACY_MAX_VCPUS;
/// `sizeof(struct vcpu_info)` on x86_64.
pub const VCPU_INFO_SIZE: usize = xen_abi::xen::shared_info::OFF_VCPU_INFO_STRIDE;
/// `sizeof(struct shared_info)` on x86_64.
pub const SHARED_INFO_SIZE: usize = xen_abi::xen::shared_info::OFF_END;
/// `sizeof(grant_entry_v1_t)`.
pub const GRANT_ENTRY_V1_SIZE: usize = core::mem::size_of::<xen_abi::grant_table::GrantEntryV1>();

/// Writes a fresh shared_info page as libxc does: all zero, with every
/// legacy vCPU's `evtchn_upcall_mask` set (events masked until the guest
/// unmasks them). `dst` is a mapping of the domain's shared_info mfn.
pub fn write_shared_info(dst: &mut Page) {
    dst.fill(0);
    for vcpu in 0..XEN_LEGACY_MAX_VCPUS {
        dst[vcpu * VCPU_INFO_SIZE + OFF_EVTCHN_UPCALL_MASK] = 1;
    }
}

/// One `grant_entry_v1_t` as bytes: `{ flags: u16, domid: u16, frame: u32 }`.
pub fn grant_entry_v1(flags: u16, domid: u16, frame: u32) -> [u8; GRANT_ENTRY_V1_SIZE] {
    use xen_abi::grant_table::{OFF_GRANT_DOMID, OFF_GRANT_FLAGS, OFF_GRANT_FRAME};
    let mut e = [0u8; GRANT_ENTRY_V1_SIZE];
    e[OFF_GRANT_FLAGS..OFF_GRANT_FLAGS + 2].copy_from_slice(&flags.to_le_bytes());
    e[OFF_GRANT_DOMID..OFF_GRANT_DOMID + 2].copy_from_slice(&domid.to_le_bytes());
    e[OFF_GRANT_FRAME..OFF_GRANT_FRAME + 4].copy_from_slice(&frame.to_le_bytes());
    e
}

/// The reserved grant entries libxc seeds (`xc_dom_gnttab_seed`): ref 0
/// grants the console ring to `console_domid`, ref 1 the xenstore ring to
/// `xenstore_domid`. For a PV guest `frame` is the mfn. Write each entry at
/// `ref * 8` of grant-table frame 0.
pub fn gnttab_seed(
    layout: &PvLayout,
    p2m: &[u64],
    console_domid: u16,
    xenstore_domid: u16,
) -> Result<[(u32, [u8; GRANT_ENTRY_V1_SIZE]); 2], Error> {
    let frame = |pfn: u64| -> Result<u32, Error> {
        let mfn = *p2m.get(pfn as usize).ok_or(Error::P2mTooShort)?;
        u32::try_from(mfn).map_err(|_| Error::MfnTooLarge)
    };
    Ok([
        (
            GNTTAB_RESERVED_CONSOLE,
            grant_entry_v1(GTF_PERMIT_ACCESS, console_domid, frame(layout.console_pfn)?),
        ),
        (
            GNTTAB_RESERVED_XENSTORE,
            grant_entry_v1(
                GTF_PERMIT_ACCESS,
                xenstore_domid,
                frame(layout.xenstore_pfn)?,
            ),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_info_masks_every_vcpu() {
        let mut page = [0xaau8; 4096];
        write_shared_info(&mut page);
        let set: usize = page.iter().map(|&b| b as usize).sum();
        assert_eq!(set, XEN_LEGACY_MAX_VCPUS);
        assert_eq!(page[1], 1);
        assert_eq!(page[31 * 64 + 1], 1);
    }

    #[test]
    fn grant_entry_bytes() {
        assert_eq!(
            grant_entry_v1(1, 0, 0x1234_5678),
            [1, 0, 0, 0, 0x78, 0x56, 0x34, 0x12]
        );
    }
}

//! `struct start_info` for x86_64, as bytes.
//!
//! Read first: xen/include/public/xen.h (`struct start_info`, `SIF_*`,
//! `MAX_GUEST_CMDLINE`). Offsets are for x86_64 (`unsigned long` and
//! `xen_pfn_t` are 8 bytes); `tests/start_info_c.rs` checks them against
//! the installed C header.

use crate::layout::{PvLayout, MAX_GUEST_CMDLINE};
use crate::Error;

/// `magic`: "xen-3.0-x86_64", NUL padded to 32 bytes.
pub const OFF_MAGIC: usize = 0;
/// `nr_pages`.
pub const OFF_NR_PAGES: usize = 32;
/// `shared_info` (machine address).
pub const OFF_SHARED_INFO: usize = 40;
/// `flags` (u32).
pub const OFF_FLAGS: usize = 48;
/// `store_mfn`.
pub const OFF_STORE_MFN: usize = 56;
/// `store_evtchn` (u32).
pub const OFF_STORE_EVTCHN: usize = 64;
/// `console.domU.mfn`.
pub const OFF_CONSOLE_MFN: usize = 72;
/// `console.domU.evtchn` (u32).
pub const OFF_CONSOLE_EVTCHN: usize = 80;
/// `pt_base` (virtual).
pub const OFF_PT_BASE: usize = 88;
/// `nr_pt_frames`.
pub const OFF_NR_PT_FRAMES: usize = 96;
/// `mfn_list` (virtual).
pub const OFF_MFN_LIST: usize = 104;
/// `mod_start`.
pub const OFF_MOD_START: usize = 112;
/// `mod_len`.
pub const OFF_MOD_LEN: usize = 120;
/// `cmd_line[MAX_GUEST_CMDLINE]`.
pub const OFF_CMD_LINE: usize = 128;
/// `first_p2m_pfn` (0 in our plans: the p2m is in the initial mapping).
pub const OFF_FIRST_P2M_PFN: usize = 1152;
/// `nr_p2m_frames`.
pub const OFF_NR_P2M_FRAMES: usize = 1160;
/// `sizeof(struct start_info)`.
pub const START_INFO_SIZE: usize = 1168;
/// The x86_64 magic.
pub const START_INFO_MAGIC: &[u8] = b"xen-3.0-x86_64";

/// `SIF_PRIVILEGED`.
pub const SIF_PRIVILEGED: u32 = 1 << 0;
/// `SIF_INITDOMAIN`.
pub const SIF_INITDOMAIN: u32 = 1 << 1;
/// `SIF_MULTIBOOT_MOD`.
pub const SIF_MULTIBOOT_MOD: u32 = 1 << 2;
/// `SIF_MOD_START_PFN`: `mod_start` is a pfn, not a virtual address.
pub const SIF_MOD_START_PFN: u32 = 1 << 3;

/// What only the executor knows, for start_info.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StartInfoArgs {
    /// Machine address of the domain's shared_info page.
    pub shared_info_maddr: u64,
    /// Event channel of the xenstore ring (unbound port allocated for xenstored's domain).
    pub store_evtchn: u32,
    /// Event channel of the console ring.
    pub console_evtchn: u32,
    /// `SIF_*` flags (0 for an ordinary domU).
    pub flags: u32,
}

fn put_u64(page: &mut [u8; 4096], off: usize, v: u64) {
    page[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

fn put_u32(page: &mut [u8; 4096], off: usize, v: u32) {
    page[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

/// Writes the start_info page. `store_mfn`/`console_mfn` come from the p2m.
pub(crate) fn write(
    layout: &PvLayout,
    cmdline: &[u8],
    p2m: &[u64],
    args: &StartInfoArgs,
    page: &mut [u8; 4096],
) -> Result<(), Error> {
    if (p2m.len() as u64) < layout.nr_pages {
        return Err(Error::P2mTooShort);
    }
    if cmdline.len() >= MAX_GUEST_CMDLINE {
        return Err(Error::BadCmdline);
    }
    let mfn = |pfn: u64| p2m.get(pfn as usize).copied().ok_or(Error::P2mTooShort);
    page.fill(0);
    page[OFF_MAGIC..OFF_MAGIC + START_INFO_MAGIC.len()].copy_from_slice(START_INFO_MAGIC);
    put_u64(page, OFF_NR_PAGES, layout.nr_pages);
    put_u64(page, OFF_SHARED_INFO, args.shared_info_maddr);
    let mut flags = args.flags & !SIF_MOD_START_PFN;
    let (mod_start, mod_len) = if layout.module.count == 0 {
        (0, 0)
    } else if args.flags & SIF_MOD_START_PFN != 0 {
        flags |= SIF_MOD_START_PFN;
        (layout.module.start, layout.module_len)
    } else {
        (layout.pfn_to_va(layout.module.start), layout.module_len)
    };
    put_u32(page, OFF_FLAGS, flags);
    put_u64(page, OFF_STORE_MFN, mfn(layout.xenstore_pfn)?);
    put_u32(page, OFF_STORE_EVTCHN, args.store_evtchn);
    put_u64(page, OFF_CONSOLE_MFN, mfn(layout.console_pfn)?);
    put_u32(page, OFF_CONSOLE_EVTCHN, args.console_evtchn);
    put_u64(page, OFF_PT_BASE, layout.pt_base());
    put_u64(page, OFF_NR_PT_FRAMES, layout.page_tables.count);
    put_u64(page, OFF_MFN_LIST, layout.mfn_list());
    put_u64(page, OFF_MOD_START, mod_start);
    put_u64(page, OFF_MOD_LEN, mod_len);
    // cmd_line stays NUL terminated: len < MAX_GUEST_CMDLINE and the page is zeroed.
    page[OFF_CMD_LINE..OFF_CMD_LINE + cmdline.len()].copy_from_slice(cmdline);
    // first_p2m_pfn / nr_p2m_frames describe a p2m mapped apart from the
    // initial mapping (XEN_ELFNOTE_INIT_P2M); libxc leaves them 0 otherwise,
    // and Linux frees those frames when they are set, so they stay 0.
    Ok(())
}

//! `struct start_info` for x86_64, as bytes.
//!
//! Read first: xen/include/public/xen.h (`struct start_info`, `SIF_*`,
//! `MAX_GUEST_CMDLINE`). The offsets are xen-abi's, derived from its
//! `StartInfo` layout (x86_64: `unsigned long` and `xen_pfn_t` are 8
//! bytes); `tests/start_info_c.rs` checks the page we write against the
//! installed C header.

use crate::layout::{PvLayout, MAX_GUEST_CMDLINE};
use crate::Error;

pub use xen_abi::xen::start_info::{
    OFF_CMD_LINE, OFF_CONSOLE_EVTCHN, OFF_CONSOLE_MFN, OFF_FIRST_P2M_PFN, OFF_FLAGS, OFF_MAGIC,
    OFF_MFN_LIST, OFF_MOD_LEN, OFF_MOD_START, OFF_NR_P2M_FRAMES, OFF_NR_PAGES, OFF_NR_PT_FRAMES,
    OFF_PT_BASE, OFF_SHARED_INFO, OFF_STORE_EVTCHN, OFF_STORE_MFN,
};
pub use xen_abi::xen::{
    SIF_INITDOMAIN, SIF_MOD_START_PFN, SIF_MULTIBOOT_MOD, SIF_PRIVILEGED,
    START_INFO_MAGIC_PREFIX as START_INFO_MAGIC,
};
/// `sizeof(struct start_info)`.
pub const START_INFO_SIZE: usize = xen_abi::xen::start_info::OFF_END;

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
    } else if layout.module_by_pfn || args.flags & SIF_MOD_START_PFN != 0 {
        // As libxc for a kernel with a MOD_START_PFN note (Linux): the
        // module's pfn, which the kernel reads without a mapping. Ours
        // stays mapped too (libxc leaves it out of the initial mapping).
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

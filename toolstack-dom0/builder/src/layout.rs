//! The 64-bit PV start-of-day layout: which pfn holds what, and how much of
//! the guest's address space the initial page tables map.
//!
//! Read first: the "Start-of-day memory layout" comment in
//! xen/include/public/xen.h, tools/libs/guest/xg_dom_x86.c
//! (`alloc_pgtables_x86_64`, `alloc_magic_pages_pv`) and
//! xen/arch/x86/pv/dom0_build.c (the same layout for dom0).
//!
//! From `virt_base` upwards, pfn = (va - virt_base) / 4096:
//! kernel image · optional module · p2m list · start_info · xenstore ring ·
//! console ring · page tables (L4, L3s, L2s, L1s) · boot stack · padding.
//! The initial mapping covers `[virt_base, virt_end)`, where `virt_end` is
//! the end of the 4 MiB-aligned block holding the first byte 512 KiB past
//! the boot stack (libxc's `round_up(.., bits_to_mask(22))`). The number
//! of page tables depends on `virt_end` and `virt_end` on that number, so it
//! is iterated to a fixed point as dom0_build.c does.

use alloc::vec::Vec;

use crate::elf::ElfImage;
use crate::Error;

/// Bytes in a page.
pub const PAGE_SIZE: u64 = xen_abi::PAGE_SIZE as u64;
/// The mapping ends on this boundary (4 MiB, as libxc and Xen do).
pub const MAPPING_ALIGN: u64 = 4 << 20;
/// Mapped padding after the boot stack (the runtime takes its first page
/// tables from it).
pub const BOOT_PADDING: u64 = 512 << 10;
/// `MAX_GUEST_CMDLINE` from xen.h: the command line plus its NUL.
pub use xen_abi::xen::MAX_GUEST_CMDLINE;
/// Largest `memory_pages` a request may ask for (256 GiB).
pub const MAX_MEMORY_PAGES: u64 = 1 << 26;
/// Most vCPUs a PV plan gives a domain (as many as a PVH plan, whose
/// limit is the MADT's). Above `XEN_LEGACY_MAX_VCPUS` (32) a guest must
/// register each vCPU's `vcpu_info` itself (Linux does).
pub const MAX_PV_VCPUS: u32 = 128;
/// Most rounds of the page-table fixed point before giving up.
const MAX_LAYOUT_STEPS: u32 = 16;
/// Start of Xen's reserved part of the 64-bit address space (L4 slot 256).
pub const XEN_HOLE_START: u64 = xen_abi::xen::HYPERVISOR_VIRT_START;
/// End (exclusive) of Xen's reserved part (L4 slot 272).
pub const XEN_HOLE_END: u64 = xen_abi::xen::HYPERVISOR_VIRT_END;
/// End (exclusive) of the lower canonical half.
const LOWER_HALF_END: u64 = 0x0000_8000_0000_0000;

/// What the caller asks for. Event channels and frames that exist only once
/// the domain does are passed later, to the content generators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuildRequest<'a> {
    /// Pages of RAM the domain gets (`nr_pages` in start_info).
    pub memory_pages: u64,
    /// Kernel command line, without NUL, at most `MAX_GUEST_CMDLINE - 1` bytes.
    pub cmdline: &'a [u8],
    /// Length in bytes of a module (initrd) placed after the kernel; 0 for none.
    pub module_len: u64,
    /// vCPUs the domain gets (`XEN_DOMCTL_max_vcpus`), 1..=[`MAX_PV_VCPUS`].
    /// vCPU 0 starts from [`crate::PvPlan::vcpu_context`]; a kernel brings
    /// up the others itself (Linux: `VCPUOP_initialise`, `VCPUOP_up`).
    pub vcpus: u32,
}

/// A run of consecutive pfns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PfnRange {
    /// First pfn.
    pub start: u64,
    /// Number of pages.
    pub count: u64,
}

impl PfnRange {
    /// One past the last pfn.
    pub fn end(&self) -> u64 {
        self.start + self.count
    }
    /// Whether `pfn` is in the range.
    pub fn contains(&self, pfn: u64) -> bool {
        pfn >= self.start && pfn < self.end()
    }
}

/// One `PT_LOAD` segment placed in the guest: copy `file_len` bytes from
/// `file_offset` of the image to guest-pseudo-physical byte address
/// `gpaddr`, then zero up to `mem_len` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentCopy {
    /// Offset of the bytes in the image.
    pub file_offset: u64,
    /// Bytes to copy from the image.
    pub file_len: u64,
    /// Guest pseudo-physical byte address: `pfn * 4096 + offset`.
    pub gpaddr: u64,
    /// Bytes in memory (`file_len` of copy, the rest zero).
    pub mem_len: u64,
}

impl SegmentCopy {
    /// First guest pfn touched.
    pub fn gpfn(&self) -> u64 {
        self.gpaddr / PAGE_SIZE
    }
    /// Offset within the first page.
    pub fn page_offset(&self) -> u64 {
        self.gpaddr % PAGE_SIZE
    }
}

/// Page-table frames per level, in pfn order L4, L3s, L2s, L1s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PtCounts {
    /// L3 tables (one per 512 GiB slot touched).
    pub l3: u64,
    /// L2 tables (one per 1 GiB touched).
    pub l2: u64,
    /// L1 tables (one per 2 MiB touched).
    pub l1: u64,
}

impl PtCounts {
    /// Tables needed to map `[start, end)` (`end > start`).
    pub fn for_range(start: u64, end: u64) -> Self {
        let last = end - 1;
        PtCounts {
            l3: (last >> 39) - (start >> 39) + 1,
            l2: (last >> 30) - (start >> 30) + 1,
            l1: (last >> 21) - (start >> 21) + 1,
        }
    }
    /// All frames including the single L4.
    pub fn total(&self) -> u64 {
        1 + self.l3 + self.l2 + self.l1
    }
}

/// The PV layout: every number the executor and the generators need.
/// Pfns are guest pseudo-physical frame numbers; pfn `p` is mapped at
/// `virt_base + p * 4096`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PvLayout {
    /// Pages of RAM (`start_info.nr_pages`; the p2m has this many entries).
    pub nr_pages: u64,
    /// `XEN_ELFNOTE_VIRT_BASE`.
    pub virt_base: u64,
    /// Added to ELF paddrs to get virtual addresses (virt_base - PADDR_OFFSET).
    pub virt_offset: u64,
    /// Virtual entry point (`ENTRY` note, else `e_entry`).
    pub entry: u64,
    /// First byte of the loaded image (page aligned).
    pub virt_kstart: u64,
    /// End of the loaded image (page aligned, exclusive).
    pub virt_kend: u64,
    /// The kernel image's pages.
    pub kernel: PfnRange,
    /// The module's pages (count 0 without one).
    pub module: PfnRange,
    /// Module length in bytes.
    pub module_len: u64,
    /// `start_info.mod_start` is the module's first pfn with
    /// `SIF_MOD_START_PFN` (the kernel's `MOD_START_PFN` note is non-zero),
    /// not its virtual address.
    pub module_by_pfn: bool,
    /// vCPUs the domain gets.
    pub vcpus: u32,
    /// The p2m list (8 bytes per pfn): `start_info.mfn_list` = its VA.
    pub p2m: PfnRange,
    /// The start_info page.
    pub start_info_pfn: u64,
    /// The xenstore ring page.
    pub xenstore_pfn: u64,
    /// The console ring page.
    pub console_pfn: u64,
    /// The page-table frames; the L4 is the first (`pt_base`).
    pub page_tables: PfnRange,
    /// Page tables per level.
    pub pt_counts: PtCounts,
    /// The boot stack page.
    pub stack_pfn: u64,
    /// Pfn the kernel's hypercall page lives at (fill it with
    /// `XEN_DOMCTL_hypercall_init`), if it declared one.
    pub hypercall_page_gpfn: Option<u64>,
    /// Pages mapped by the initial page tables: pfns `0..mapped_pages`.
    pub mapped_pages: u64,
    /// End of the initial mapping (exclusive, 4 MiB aligned).
    pub virt_end: u64,
}

impl PvLayout {
    /// The virtual address of `pfn` in the initial mapping.
    pub fn pfn_to_va(&self, pfn: u64) -> u64 {
        self.virt_base + pfn * PAGE_SIZE
    }
    /// `start_info.pt_base`: the L4's virtual address.
    pub fn pt_base(&self) -> u64 {
        self.pfn_to_va(self.page_tables.start)
    }
    /// `start_info.mfn_list`: the p2m's virtual address.
    pub fn mfn_list(&self) -> u64 {
        self.pfn_to_va(self.p2m.start)
    }
    /// The initial `%rsp`: the top of the boot stack page.
    pub fn stack_top(&self) -> u64 {
        self.pfn_to_va(self.stack_pfn + 1)
    }
    /// `%rsi`: the start_info page's virtual address.
    pub fn start_info_va(&self) -> u64 {
        self.pfn_to_va(self.start_info_pfn)
    }
}

/// Places the image's segments and computes the whole layout.
pub(crate) fn place(
    image: &ElfImage,
    req: &BuildRequest<'_>,
) -> Result<(PvLayout, Vec<SegmentCopy>), Error> {
    if req.cmdline.len() >= MAX_GUEST_CMDLINE || req.cmdline.contains(&0) {
        return Err(Error::BadCmdline);
    }
    if req.memory_pages > MAX_MEMORY_PAGES {
        return Err(Error::MemoryTooLarge);
    }
    if req.vcpus == 0 || req.vcpus > MAX_PV_VCPUS {
        return Err(Error::BadVcpuCount);
    }
    image.notes.check_pv()?;
    // libelf: VIRT_BASE unset means 0 for PV.
    let virt_base = image.notes.virt_base.unwrap_or(0);
    if !virt_base.is_multiple_of(PAGE_SIZE) || !canonical(virt_base) || in_hole(virt_base) {
        return Err(Error::BadVirtBase);
    }
    // libelf: without PADDR_OFFSET an image with notes has offset 0, so
    // virt = paddr + virt_base; with it, virt = paddr + virt_base - offset.
    let paddr_offset = image.notes.paddr_offset.unwrap_or(0);
    let virt_offset = virt_base.wrapping_sub(paddr_offset);

    let mut copies = Vec::with_capacity(image.segments.len());
    for seg in &image.segments {
        let va = seg.paddr.wrapping_add(virt_offset);
        if va < virt_base {
            return Err(Error::SegmentBelowVirtBase);
        }
        va.checked_add(seg.memsz).ok_or(Error::AddressOverflow)?;
        copies.push(SegmentCopy {
            file_offset: seg.offset,
            file_len: seg.filesz,
            gpaddr: va - virt_base,
            mem_len: seg.memsz,
        });
    }
    copies.sort_unstable_by_key(|c| c.gpaddr);
    for pair in copies.windows(2) {
        if pair[0].gpaddr + pair[0].mem_len > pair[1].gpaddr {
            return Err(Error::OverlappingSegments);
        }
    }
    let first = copies.first().ok_or(Error::NoLoadSegments)?;
    let last = copies.last().ok_or(Error::NoLoadSegments)?;
    let kstart_pfn = first.gpaddr / PAGE_SIZE;
    let kend_bytes = last.gpaddr + last.mem_len;
    let kend_pfn = kend_bytes.div_ceil(PAGE_SIZE);
    // Every later step is bounded by nr_pages, so refuse a huge image first.
    let nr_pages = req.memory_pages;
    if kend_pfn > nr_pages {
        return Err(Error::MemoryTooSmall);
    }
    let virt_kstart = virt_base + kstart_pfn * PAGE_SIZE;
    let virt_kend = virt_base
        .checked_add(kend_pfn * PAGE_SIZE)
        .ok_or(Error::AddressOverflow)?;

    let entry = image.notes.entry.unwrap_or(image.e_entry);
    if entry < virt_kstart || entry >= virt_kend {
        return Err(Error::EntryOutsideImage);
    }
    let hypercall_page_gpfn = match image.notes.hypercall_page {
        None => None,
        Some(hp) => {
            if !hp.is_multiple_of(PAGE_SIZE) || hp < virt_kstart || hp >= virt_kend {
                return Err(Error::HypercallPageOutsideImage);
            }
            Some((hp - virt_base) / PAGE_SIZE)
        }
    };

    let module_pages = req.module_len.div_ceil(PAGE_SIZE);
    if module_pages > nr_pages - kend_pfn {
        return Err(Error::MemoryTooSmall);
    }
    let module = PfnRange {
        start: kend_pfn,
        count: module_pages,
    };
    let p2m = PfnRange {
        start: module.end(),
        count: (nr_pages * 8).div_ceil(PAGE_SIZE),
    };
    let start_info_pfn = p2m.end();
    let xenstore_pfn = start_info_pfn + 1;
    let console_pfn = start_info_pfn + 2;
    let pt_pfn = start_info_pfn + 3;
    if pt_pfn > nr_pages {
        return Err(Error::MemoryTooSmall);
    }

    // Fixed point: tables for [virt_base, virt_end) where virt_end depends
    // on how many tables there are. Monotone, so it converges in a few steps.
    let mut counts = PtCounts::default();
    let mut steps = 0;
    let (stack_pfn, mapped_pages, virt_end) = loop {
        // Table counts only grow and are bounded, so this settles in a few
        // steps; the bound keeps that a checked fact, not a hope.
        steps += 1;
        if steps > MAX_LAYOUT_STEPS {
            return Err(Error::AddressOverflow);
        }
        let stack_pfn = pt_pfn + counts.total();
        if stack_pfn >= nr_pages {
            return Err(Error::MemoryTooSmall);
        }
        // As libxc: the 4 MiB block holding the first byte after the
        // padding is the last one mapped (so the padding after the stack
        // is more than BOOT_PADDING and at most BOOT_PADDING + 4 MiB).
        let after_padding = virt_base
            .checked_add((stack_pfn + 1) * PAGE_SIZE + BOOT_PADDING)
            .ok_or(Error::AddressOverflow)?;
        let virt_end = (after_padding | (MAPPING_ALIGN - 1))
            .checked_add(1)
            .ok_or(Error::AddressOverflow)?;
        let mapped_pages = (virt_end - virt_base) / PAGE_SIZE;
        if mapped_pages > nr_pages {
            return Err(Error::MemoryTooSmall);
        }
        let need = PtCounts::for_range(virt_base, virt_end);
        if need.total() <= counts.total() {
            break (stack_pfn, mapped_pages, virt_end);
        }
        counts = need;
    };
    if !canonical(virt_end - 1) || (virt_base < LOWER_HALF_END) != (virt_end - 1 < LOWER_HALF_END) {
        return Err(Error::MappingInXenHole);
    }
    if virt_base < XEN_HOLE_END && virt_end > XEN_HOLE_START {
        return Err(Error::MappingInXenHole);
    }

    let layout = PvLayout {
        nr_pages,
        virt_base,
        virt_offset,
        entry,
        virt_kstart,
        virt_kend,
        kernel: PfnRange {
            start: kstart_pfn,
            count: kend_pfn - kstart_pfn,
        },
        module,
        module_len: req.module_len,
        module_by_pfn: image.notes.mod_start_pfn.is_some_and(|v| v != 0),
        vcpus: req.vcpus,
        p2m,
        start_info_pfn,
        xenstore_pfn,
        console_pfn,
        page_tables: PfnRange {
            start: pt_pfn,
            count: counts.total(),
        },
        pt_counts: counts,
        stack_pfn,
        hypercall_page_gpfn,
        mapped_pages,
        virt_end,
    };
    Ok((layout, copies))
}

/// Whether `va` is a canonical 48-bit address.
fn canonical(va: u64) -> bool {
    !(LOWER_HALF_END..XEN_HOLE_START).contains(&va)
}

/// Whether `va` lies in Xen's reserved range.
fn in_hole(va: u64) -> bool {
    (XEN_HOLE_START..XEN_HOLE_END).contains(&va)
}

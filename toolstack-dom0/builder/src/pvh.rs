//! The PVH plan: guest-physical layout, e820, hvm_start_info, ACPI tables,
//! HVM params, the boot vCPU's 32-bit state and the createdomain flags.
//!
//! Read first: xen/include/public/arch-x86/hvm/start_info.h,
//! docs/misc/pvh.pandoc, hvm/params.h, hvm/hvm_vcpu.h, hvm/e820.h, and to
//! learn what libxl/libxc do: tools/libs/light/libxl_x86.c
//! (`libxl__arch_domain_construct_memmap`), libxl_x86_acpi.c,
//! tools/libs/guest/xg_dom_x86.c (`alloc_magic_pages_hvm`,
//! `bootlate_hvm`, `vcpu_hvm`). See DESIGN.md ("PVH") for the map.
//!
//! The kernel is loaded by someone else (`kimage` streams its `PT_LOAD`
//! segments): the plan takes where it went and its `PHYS32_ENTRY`, checks
//! it against the layout, and places everything else around it.

use alloc::vec::Vec;
use core::fmt;

use crate::acpi;
use crate::Page;
use xen_abi::domctl::{XEN_DOMCTL_CDF_HAP, XEN_DOMCTL_CDF_HVM, XEN_X86_EMU_LAPIC};
use xen_abi::hvm::{
    HVM_PARAM_CONSOLE_EVTCHN, HVM_PARAM_CONSOLE_PFN, HVM_PARAM_STORE_EVTCHN, HVM_PARAM_STORE_PFN,
};
use xen_abi::hvm_start_info::offsets as si;
use xen_abi::hvm_start_info::{
    XEN_HVM_MEMMAP_TYPE_ACPI, XEN_HVM_MEMMAP_TYPE_RAM, XEN_HVM_MEMMAP_TYPE_RESERVED,
    XEN_HVM_START_MAGIC_VALUE,
};
use xen_abi::hvm_vcpu::{offsets as vo, VCPU_HVM_MODE_32B};
use xen_abi::memory::e820 as e8;

const PAGE: u64 = 4096;
const GIB: u64 = 1 << 30;

/// Most vCPUs a plan accepts: Xen 4.17's `HVM_MAX_VCPUS`. APIC IDs are
/// `2 * vcpu`, so 128 keeps every ID below 255 (broadcast) and in a
/// one-byte MADT Local APIC entry.
pub const MAX_PVH_VCPUS: u32 = 128;
/// Least memory a plan accepts (2 MiB).
pub const MIN_PVH_MEMORY: u64 = 2 << 20;
/// Most memory a plan accepts (1 TiB): keeps every address far from overflow.
pub const MAX_PVH_MEMORY: u64 = 1 << 40;
/// Longest command line, NUL included (Linux's x86 `COMMAND_LINE_SIZE`).
pub const MAX_PVH_CMDLINE: usize = 2048;
/// Largest initrd (1 GiB).
pub const MAX_PVH_INITRD: u64 = GIB;
/// Where low RAM must end: `HVM_BELOW_4G_RAM_END` (hvm/e820.h), the start
/// of the MMIO hole below 4 GiB. RAM above it goes to 4 GiB and up.
pub const LOW_RAM_END: u64 = 0xf000_0000;
/// Where RAM resumes above the hole.
pub const HIGH_RAM_START: u64 = 4 * GIB;
/// The ACPI tables' page, in the hole (libxl's `ACPI_INFO_PHYSICAL_ADDRESS`).
pub const ACPI_BASE: u64 = 0xfc00_0000;
/// Pages of ACPI tables (one holds the tables for 128 vCPUs).
pub const ACPI_PAGES: u64 = 1;
/// End of the special pages, in the hole (libxc's
/// `X86_HVM_END_SPECIAL_REGION` pfn 0xff000): they sit just below it.
pub const SPECIAL_END: u64 = 0xff00_0000;
/// Fewest special pages: the xenstore ring and the console ring.
pub const MIN_SPECIAL_PAGES: u32 = 2;
/// Most special pages (libxc's `X86_HVM_NR_SPECIAL_PAGES`).
pub const MAX_SPECIAL_PAGES: u32 = 8;
/// Most e820 entries a plan makes: low RAM, ACPI, special, high RAM.
pub const MAX_E820: usize = 4;

/// Offsets inside the start-info page.
const OFF_MODLIST: u64 = 64;
const OFF_MEMMAP: u64 = 128;
const OFF_CMDLINE: u64 = 512;
const _: () = assert!(OFF_MEMMAP as usize + MAX_E820 * si::OFF_MEMMAP_END <= OFF_CMDLINE as usize);
const _: () = assert!(OFF_CMDLINE as usize + MAX_PVH_CMDLINE <= 4096);
const _: () = assert!(acpi::OFF_MADT + MADT_MAX <= (ACPI_PAGES * PAGE) as usize);
const MADT_MAX: usize = acpi::MADT_FIXED_LEN + acpi::MADT_LAPIC_LEN * MAX_PVH_VCPUS as usize;

/// Why a PVH plan was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PvhError {
    /// Less than [`MIN_PVH_MEMORY`], or too little RAM for the kernel,
    /// initrd and start-info page.
    MemoryTooSmall,
    /// More than [`MAX_PVH_MEMORY`].
    MemoryTooLarge,
    /// Zero vCPUs or more than [`MAX_PVH_VCPUS`].
    BadVcpuCount,
    /// The command line has [`MAX_PVH_CMDLINE`] bytes or more, or a NUL.
    BadCmdline,
    /// The kernel's range is empty or wraps.
    BadKernelRange,
    /// The entry point is not inside the kernel's range.
    EntryOutsideKernel,
    /// The kernel does not lie inside low RAM.
    KernelOutsideRam,
    /// The initrd is empty or larger than [`MAX_PVH_INITRD`].
    BadInitrdSize,
    /// A stated initrd address is not page aligned.
    InitrdMisaligned,
    /// The initrd does not lie inside low RAM.
    InitrdOutsideRam,
    /// The initrd overlaps the kernel.
    Overlap,
    /// Fewer than [`MIN_SPECIAL_PAGES`] or more than [`MAX_SPECIAL_PAGES`].
    BadSpecialPages,
    /// A generator was asked for a page it does not write.
    NotThisKind,
    /// Xen's HVM save records are not as `hvm/save.h` says (no leading
    /// HEADER, no MTRR record for vCPU 0, a record past the end).
    BadHvmContext,
}

impl fmt::Display for PvhError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PvhError::MemoryTooSmall => "memory too small for kernel, initrd and boot page",
            PvhError::MemoryTooLarge => "memory too large",
            PvhError::BadVcpuCount => "vCPU count out of range",
            PvhError::BadCmdline => "command line too long or contains NUL",
            PvhError::BadKernelRange => "empty or wrapping kernel range",
            PvhError::EntryOutsideKernel => "PHYS32 entry outside the kernel",
            PvhError::KernelOutsideRam => "kernel outside low RAM",
            PvhError::BadInitrdSize => "initrd empty or too large",
            PvhError::InitrdMisaligned => "initrd address not page aligned",
            PvhError::InitrdOutsideRam => "initrd outside low RAM",
            PvhError::Overlap => "initrd overlaps the kernel",
            PvhError::BadSpecialPages => "special page count out of range",
            PvhError::NotThisKind => "page is not one this plan writes",
            PvhError::BadHvmContext => "malformed HVM save records",
        })
    }
}

impl core::error::Error for PvhError {}

/// A guest-physical byte range `[start, start + len)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysRange {
    /// First byte.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
}

impl PhysRange {
    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.start + self.len
    }
    /// Whether the two ranges share a byte.
    pub fn overlaps(&self, other: &PhysRange) -> bool {
        self.start < other.end() && other.start < self.end()
    }
    /// Whether `other` lies wholly inside `self`.
    pub fn contains(&self, other: &PhysRange) -> bool {
        self.start <= other.start && other.end() <= self.end()
    }
    /// The pages it touches, as `(first gpfn, count)`.
    pub fn pages(&self) -> (u64, u64) {
        let first = self.start / PAGE;
        (first, self.end().div_ceil(PAGE) - first)
    }
}

/// Where `kimage` put the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadedKernel {
    /// First guest-physical byte of its `PT_LOAD` segments.
    pub start: u64,
    /// One past the last byte (bss included).
    pub end: u64,
    /// The `XEN_ELFNOTE_PHYS32_ENTRY` address.
    pub entry: u64,
}

/// The initrd: its length, and where it goes (page aligned) or `None` to
/// let the plan put it on the first page after the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InitrdRequest {
    /// Bytes.
    pub len: u64,
    /// Guest-physical address, or `None`.
    pub at: Option<u64>,
}

/// What the toolstack asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PvhRequest<'a> {
    /// Guest RAM in bytes (rounded down to pages).
    pub memory_bytes: u64,
    /// vCPUs, 1..=[`MAX_PVH_VCPUS`]; all are listed, enabled, in the MADT.
    pub vcpus: u32,
    /// The loaded kernel.
    pub kernel: LoadedKernel,
    /// The command line, no NUL.
    pub cmdline: &'a [u8],
    /// The initrd, if any (module 0 of hvm_start_info).
    pub initrd: Option<InitrdRequest>,
    /// Special pages: 0 is the xenstore ring, 1 the console ring, the rest
    /// are spare (zeroed, reserved); 2..=[`MAX_SPECIAL_PAGES`].
    pub special_pages: u32,
}

/// One e820 / `hvm_memmap_table_entry` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct E820 {
    /// Base address.
    pub addr: u64,
    /// Bytes.
    pub size: u64,
    /// `XEN_HVM_MEMMAP_TYPE_*` (= e820 type).
    pub kind: u32,
}

/// Every address of a checked plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PvhLayout {
    /// vCPUs.
    pub vcpus: u32,
    /// RAM below the hole: `[0, min(memory, LOW_RAM_END))`.
    pub low_ram: PhysRange,
    /// RAM from 4 GiB, for memory beyond [`LOW_RAM_END`].
    pub high_ram: Option<PhysRange>,
    /// The kernel, as given.
    pub kernel: PhysRange,
    /// `PHYS32_ENTRY`: the boot vCPU's `eip`.
    pub entry: u64,
    /// The initrd, exact length.
    pub initrd: Option<PhysRange>,
    /// The start-info page (hvm_start_info, modlist, memmap, cmdline):
    /// the boot vCPU's `ebx`.
    pub start_info: u64,
    /// The ACPI tables' pages (e820 ACPI).
    pub acpi: PhysRange,
    /// The RSDP (`hvm_start_info.rsdp_paddr`).
    pub rsdp: u64,
    /// The special pages (e820 reserved).
    pub special: PhysRange,
}

impl PvhLayout {
    /// `HVM_PARAM_STORE_PFN`: special page 0.
    pub fn xenstore_pfn(&self) -> u64 {
        self.special.start / PAGE
    }
    /// `HVM_PARAM_CONSOLE_PFN`: special page 1.
    pub fn console_pfn(&self) -> u64 {
        self.special.start / PAGE + 1
    }
    /// `hvm_start_info.modlist_paddr`.
    pub fn modlist_paddr(&self) -> u64 {
        self.start_info + OFF_MODLIST
    }
    /// `hvm_start_info.memmap_paddr`.
    pub fn memmap_paddr(&self) -> u64 {
        self.start_info + OFF_MEMMAP
    }
    /// `hvm_start_info.cmdline_paddr`.
    pub fn cmdline_paddr(&self) -> u64 {
        self.start_info + OFF_CMDLINE
    }
}

/// What a page the executor writes holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PvhPageKind {
    /// Part of the initrd.
    Initrd,
    /// The start-info page.
    StartInfo,
    /// Part of the ACPI tables.
    Acpi,
    /// The xenstore ring (zeroed).
    Xenstore,
    /// The console ring (zeroed).
    Console,
    /// A spare special page (zeroed).
    Spare,
}

/// `XEN_DOMCTL_createdomain` parameters for a PVH guest, as plain data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PvhDomainConfig {
    /// `flags`: `XEN_DOMCTL_CDF_hvm | XEN_DOMCTL_CDF_hap`.
    pub flags: u32,
    /// `arch.emulation_flags`: `XEN_X86_EMU_LAPIC`.
    pub emulation_flags: u32,
    /// `max_vcpus`.
    pub max_vcpus: u32,
}

/// A flat 32-bit segment register's hidden part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Base.
    pub base: u32,
    /// Limit (bytes - 1, after granularity).
    pub limit: u32,
    /// Attributes in hvm_vcpu.h's 12-bit `_ar` format.
    pub ar: u16,
}

/// Flat code: base 0, limit 4 GiB, present, DPL 0, execute/read accessed,
/// 32-bit, 4 KiB granular (`0xc9b`).
pub const FLAT_CODE32: Segment = Segment {
    base: 0,
    limit: !0,
    ar: 0xc9b,
};
/// Flat data: as code but read/write accessed (`0xc93`).
pub const FLAT_DATA32: Segment = Segment {
    base: 0,
    limit: !0,
    ar: 0xc93,
};
/// The task register: a present busy 32-bit TSS (`0x8b`) of 104 bytes at 0.
pub const BOOT_TR: Segment = Segment {
    base: 0,
    limit: 0x67,
    ar: 0x8b,
};
/// `X86_CR0_PE | X86_CR0_ET`, what libxc's `vcpu_hvm` sets.
pub const BOOT_CR0: u32 = 0x11;
/// EFLAGS with only the always-one bit 1.
pub const BOOT_EFLAGS: u32 = 0x2;

/// The boot vCPU in 32-bit flat protected mode, paging off (pvh.pandoc):
/// `eip` = `PHYS32_ENTRY`, `ebx` = hvm_start_info, everything else 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PvhVcpuContext {
    /// `eip`.
    pub eip: u32,
    /// `ebx`.
    pub ebx: u32,
    /// `eflags`.
    pub eflags: u32,
    /// `cr0`.
    pub cr0: u32,
    /// `cs`.
    pub cs: Segment,
    /// `ds`, `es`, `ss`.
    pub data: Segment,
    /// `tr`.
    pub tr: Segment,
}

impl PvhVcpuContext {
    /// As `struct vcpu_hvm_context` (`VCPU_HVM_MODE_32B`) bytes, 128 of them.
    pub fn vcpu_hvm_context_bytes(&self) -> [u8; vo::OFF_END] {
        let mut b = [0u8; vo::OFF_END];
        let mut put32 = |off: usize, v: u32| b[off..off + 4].copy_from_slice(&v.to_le_bytes());
        put32(vo::OFF_MODE, VCPU_HVM_MODE_32B);
        put32(vo::OFF_EBX, self.ebx);
        put32(vo::OFF_EIP, self.eip);
        put32(vo::OFF_EFLAGS, self.eflags);
        put32(vo::OFF_CR0, self.cr0);
        // cs, ds, ss, es, tr: the header's order for bases, limits and ars.
        let segs = [self.cs, self.data, self.data, self.data, self.tr];
        for (i, s) in segs.iter().enumerate() {
            put32(vo::OFF_CS_BASE + 4 * i, s.base);
            put32(vo::OFF_CS_LIMIT + 4 * i, s.limit);
        }
        for (i, s) in segs.iter().enumerate() {
            let off = vo::OFF_CS_AR + 2 * i;
            b[off..off + 2].copy_from_slice(&s.ar.to_le_bytes());
        }
        b
    }
}

/// A checked PVH plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PvhPlan {
    layout: PvhLayout,
    cmdline: Vec<u8>,
    e820: Vec<E820>,
    special_pages: u32,
}

fn range(start: u64, len: u64) -> PhysRange {
    PhysRange { start, len }
}

impl PvhPlan {
    /// Checks `req` and lays the guest out.
    pub fn new(req: &PvhRequest<'_>) -> Result<Self, PvhError> {
        let memory = req.memory_bytes & !(PAGE - 1);
        if memory < MIN_PVH_MEMORY {
            return Err(PvhError::MemoryTooSmall);
        }
        if memory > MAX_PVH_MEMORY {
            return Err(PvhError::MemoryTooLarge);
        }
        if req.vcpus == 0 || req.vcpus > MAX_PVH_VCPUS {
            return Err(PvhError::BadVcpuCount);
        }
        if req.cmdline.len() >= MAX_PVH_CMDLINE || req.cmdline.contains(&0) {
            return Err(PvhError::BadCmdline);
        }
        if !(MIN_SPECIAL_PAGES..=MAX_SPECIAL_PAGES).contains(&req.special_pages) {
            return Err(PvhError::BadSpecialPages);
        }
        let low_ram = range(0, memory.min(LOW_RAM_END));
        let high_ram = (memory > LOW_RAM_END).then(|| range(HIGH_RAM_START, memory - LOW_RAM_END));

        let k = req.kernel;
        if k.start >= k.end {
            return Err(PvhError::BadKernelRange);
        }
        if !(k.start..k.end).contains(&k.entry) {
            return Err(PvhError::EntryOutsideKernel);
        }
        let kernel = range(k.start, k.end - k.start);
        if !low_ram.contains(&kernel) {
            return Err(PvhError::KernelOutsideRam);
        }
        // Everything below stays below LOW_RAM_END + a few GiB: no overflow.
        let mut next = kernel.end().next_multiple_of(PAGE);
        let initrd = match req.initrd {
            None => None,
            Some(i) => {
                if i.len == 0 || i.len > MAX_PVH_INITRD {
                    return Err(PvhError::BadInitrdSize);
                }
                let start = match i.at {
                    Some(at) if at % PAGE != 0 => return Err(PvhError::InitrdMisaligned),
                    Some(at) if at > LOW_RAM_END => return Err(PvhError::InitrdOutsideRam),
                    Some(at) => at,
                    None => next,
                };
                let r = range(start, i.len);
                if r.overlaps(&kernel) {
                    return Err(PvhError::Overlap);
                }
                if !low_ram.contains(&r) {
                    return Err(if i.at.is_some() {
                        PvhError::InitrdOutsideRam
                    } else {
                        PvhError::MemoryTooSmall
                    });
                }
                next = next.max(r.end().next_multiple_of(PAGE));
                Some(r)
            }
        };
        // The start-info page follows whatever ends last, as libxc's
        // start_info segment follows the kernel and modules.
        let start_info = next;
        if !low_ram.contains(&range(start_info, PAGE)) {
            return Err(PvhError::MemoryTooSmall);
        }
        let acpi = range(ACPI_BASE, ACPI_PAGES * PAGE);
        let special_len = u64::from(req.special_pages) * PAGE;
        let special = range(SPECIAL_END - special_len, special_len);
        let layout = PvhLayout {
            vcpus: req.vcpus,
            low_ram,
            high_ram,
            kernel,
            entry: k.entry,
            initrd,
            start_info,
            acpi,
            rsdp: ACPI_BASE + acpi::OFF_RSDP as u64,
            special,
        };
        let mut e820 = Vec::with_capacity(MAX_E820);
        e820.push(E820 {
            addr: 0,
            size: low_ram.len,
            kind: XEN_HVM_MEMMAP_TYPE_RAM,
        });
        e820.push(E820 {
            addr: acpi.start,
            size: acpi.len,
            kind: XEN_HVM_MEMMAP_TYPE_ACPI,
        });
        e820.push(E820 {
            addr: special.start,
            size: special.len,
            kind: XEN_HVM_MEMMAP_TYPE_RESERVED,
        });
        if let Some(h) = high_ram {
            e820.push(E820 {
                addr: h.start,
                size: h.len,
                kind: XEN_HVM_MEMMAP_TYPE_RAM,
            });
        }
        Ok(PvhPlan {
            layout,
            cmdline: req.cmdline.to_vec(),
            e820,
            special_pages: req.special_pages,
        })
    }

    /// The layout.
    pub fn layout(&self) -> &PvhLayout {
        &self.layout
    }

    /// The command line (no NUL).
    pub fn cmdline(&self) -> &[u8] {
        &self.cmdline
    }

    /// `XEN_DOMCTL_createdomain` parameters.
    pub fn domain_config(&self) -> PvhDomainConfig {
        PvhDomainConfig {
            flags: XEN_DOMCTL_CDF_HVM | XEN_DOMCTL_CDF_HAP,
            emulation_flags: XEN_X86_EMU_LAPIC,
            max_vcpus: self.layout.vcpus,
        }
    }

    /// What to populate, as `(first gpfn, count)` runs in address order:
    /// low RAM, the ACPI page(s), the special pages, high RAM.
    pub fn populate(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let l = &self.layout;
        [Some(l.low_ram), Some(l.acpi), Some(l.special), l.high_ram]
            .into_iter()
            .flatten()
            .map(|r| r.pages())
    }

    /// Pages populated in all (`XEN_DOMCTL_max_mem` must allow them).
    pub fn populated_pages(&self) -> u64 {
        self.populate().map(|(_, n)| n).sum()
    }

    /// The e820, sorted and non-overlapping: for `XENMEM_set_memory_map`
    /// and the start-info memmap.
    pub fn e820(&self) -> &[E820] {
        &self.e820
    }

    /// The e820 in the 20-byte BIOS format `XENMEM_set_memory_map` copies.
    pub fn e820_bytes(&self) -> Vec<u8> {
        let mut out = alloc::vec![0u8; self.e820.len() * e8::OFF_END];
        for (e, b) in self.e820.iter().zip(out.chunks_exact_mut(e8::OFF_END)) {
            b[e8::OFF_ADDR..e8::OFF_ADDR + 8].copy_from_slice(&e.addr.to_le_bytes());
            b[e8::OFF_SIZE..e8::OFF_SIZE + 8].copy_from_slice(&e.size.to_le_bytes());
            b[e8::OFF_TYPE..e8::OFF_TYPE + 4].copy_from_slice(&e.kind.to_le_bytes());
        }
        out
    }

    /// `HVMOP_set_param` pairs: store and console pfns, and the event
    /// channels the executor allocated.
    pub fn hvm_params(&self, store_evtchn: u32, console_evtchn: u32) -> [(u32, u64); 4] {
        [
            (HVM_PARAM_STORE_PFN, self.layout.xenstore_pfn()),
            (HVM_PARAM_STORE_EVTCHN, u64::from(store_evtchn)),
            (HVM_PARAM_CONSOLE_PFN, self.layout.console_pfn()),
            (HVM_PARAM_CONSOLE_EVTCHN, u64::from(console_evtchn)),
        ]
    }

    /// Where the executor maps the guest's grant-table frame 0 to seed it
    /// (`XENMEM_add_to_physmap`, then `XENMEM_remove_from_physmap`): the
    /// first frame past the special pages, a hole in the e820 (libxc takes
    /// the frame past the highest gfn; any unpopulated one will do).
    pub fn grant_scratch_gfn(&self) -> u64 {
        SPECIAL_END / PAGE
    }

    /// The reserved grant entries libxc seeds for an HVM guest
    /// (`xc_dom_gnttab_hvm_seed`): ref 0 grants the console ring to
    /// `console_domid`; ref 1 the xenstore ring to `xenstore_domid`, if the
    /// guest has one. Frames are gfns. Write each entry at `ref * 8` of
    /// grant-table frame 0.
    pub fn gnttab_seed(
        &self,
        console_domid: u16,
        xenstore_domid: Option<u16>,
    ) -> Vec<(u32, [u8; crate::shared::GRANT_ENTRY_V1_SIZE])> {
        use crate::shared::{
            grant_entry_v1, GNTTAB_RESERVED_CONSOLE, GNTTAB_RESERVED_XENSTORE, GTF_PERMIT_ACCESS,
        };
        // Both lie below SPECIAL_END (4 GiB): their gfns fit in 32 bits.
        let gfn = |pfn: u64| pfn as u32;
        let mut v = Vec::with_capacity(2);
        v.push((
            GNTTAB_RESERVED_CONSOLE,
            grant_entry_v1(
                GTF_PERMIT_ACCESS,
                console_domid,
                gfn(self.layout.console_pfn()),
            ),
        ));
        if let Some(xs) = xenstore_domid {
            v.push((
                GNTTAB_RESERVED_XENSTORE,
                grant_entry_v1(GTF_PERMIT_ACCESS, xs, gfn(self.layout.xenstore_pfn())),
            ));
        }
        v
    }

    /// The boot vCPU's state.
    pub fn vcpu_context(&self) -> PvhVcpuContext {
        // Both fit in 32 bits: they lie in low RAM, below LOW_RAM_END.
        PvhVcpuContext {
            eip: self.layout.entry as u32,
            ebx: self.layout.start_info as u32,
            eflags: BOOT_EFLAGS,
            cr0: BOOT_CR0,
            cs: FLAT_CODE32,
            data: FLAT_DATA32,
            tr: BOOT_TR,
        }
    }

    /// The ACPI tables, to copy to `layout().acpi.start`.
    pub fn acpi_tables(&self) -> Vec<u8> {
        acpi::build(self.layout.acpi.start, self.layout.vcpus)
    }

    /// The start-info page: hvm_start_info (version 1) at 0, the module
    /// list at 64, the memmap at 128, the command line at 512.
    pub fn start_info_page(&self) -> Page {
        let l = &self.layout;
        let mut p = [0u8; 4096];
        let put = |p: &mut Page, off: usize, b: &[u8]| p[off..off + b.len()].copy_from_slice(b);
        put(
            &mut p,
            si::OFF_MAGIC,
            &XEN_HVM_START_MAGIC_VALUE.to_le_bytes(),
        );
        put(&mut p, si::OFF_VERSION, &1u32.to_le_bytes());
        let nr_modules = u32::from(l.initrd.is_some());
        put(&mut p, si::OFF_NR_MODULES, &nr_modules.to_le_bytes());
        if nr_modules != 0 {
            put(
                &mut p,
                si::OFF_MODLIST_PADDR,
                &l.modlist_paddr().to_le_bytes(),
            );
        }
        put(
            &mut p,
            si::OFF_CMDLINE_PADDR,
            &l.cmdline_paddr().to_le_bytes(),
        );
        put(&mut p, si::OFF_RSDP_PADDR, &l.rsdp.to_le_bytes());
        put(
            &mut p,
            si::OFF_MEMMAP_PADDR,
            &l.memmap_paddr().to_le_bytes(),
        );
        put(
            &mut p,
            si::OFF_MEMMAP_ENTRIES,
            &(self.e820.len() as u32).to_le_bytes(),
        );
        if let Some(r) = l.initrd {
            let m = OFF_MODLIST as usize;
            put(&mut p, m + si::OFF_MOD_PADDR, &r.start.to_le_bytes());
            put(&mut p, m + si::OFF_MOD_SIZE, &r.len.to_le_bytes());
            // cmdline_paddr 0: the module has no command line.
        }
        for (i, e) in self.e820.iter().enumerate() {
            let m = OFF_MEMMAP as usize + i * si::OFF_MEMMAP_END;
            put(&mut p, m + si::OFF_MEMMAP_ADDR, &e.addr.to_le_bytes());
            put(&mut p, m + si::OFF_MEMMAP_SIZE, &e.size.to_le_bytes());
            put(&mut p, m + si::OFF_MEMMAP_TYPE, &e.kind.to_le_bytes());
        }
        // NUL terminated: shorter than MAX_PVH_CMDLINE and the page is zeroed.
        put(&mut p, OFF_CMDLINE as usize, &self.cmdline);
        p
    }

    /// Every page the executor writes (besides the kernel's, which kimage
    /// writes), in gpfn order, with its kind.
    pub fn pages(&self) -> impl Iterator<Item = (u64, PvhPageKind)> + '_ {
        let l = &self.layout;
        let run = |r: Option<PhysRange>, kind| {
            r.map(|r| r.pages())
                .into_iter()
                .flat_map(move |(s, n)| (s..s + n).map(move |p| (p, kind)))
        };
        let (sp, _) = l.special.pages();
        run(l.initrd, PvhPageKind::Initrd)
            .chain(core::iter::once((
                l.start_info / PAGE,
                PvhPageKind::StartInfo,
            )))
            .chain(run(Some(l.acpi), PvhPageKind::Acpi))
            .chain((0..u64::from(self.special_pages)).map(move |i| {
                let kind = match i {
                    0 => PvhPageKind::Xenstore,
                    1 => PvhPageKind::Console,
                    _ => PvhPageKind::Spare,
                };
                (sp + i, kind)
            }))
    }

    /// The kind of page `gpfn` is, if the executor writes it.
    pub fn page_kind(&self, gpfn: u64) -> Option<PvhPageKind> {
        let l = &self.layout;
        // Past MAX_PVH_MEMORY + 4 GiB nothing is written; this also keeps
        // `at.end()` from wrapping for a wild gpfn.
        if gpfn >= (MAX_PVH_MEMORY + HIGH_RAM_START) / PAGE {
            return None;
        }
        let at = range(gpfn * PAGE, PAGE);
        if l.initrd.is_some_and(|r| r.overlaps(&at)) {
            Some(PvhPageKind::Initrd)
        } else if gpfn == l.start_info / PAGE {
            Some(PvhPageKind::StartInfo)
        } else if l.acpi.overlaps(&at) {
            Some(PvhPageKind::Acpi)
        } else if l.special.overlaps(&at) {
            Some(match gpfn - l.special.start / PAGE {
                0 => PvhPageKind::Xenstore,
                1 => PvhPageKind::Console,
                _ => PvhPageKind::Spare,
            })
        } else {
            None
        }
    }

    /// Writes page `gpfn` into `dst` (a mapping of it) and says what it
    /// was. `initrd` must be the initrd's bytes (`len` of them; a short
    /// slice leaves zeros).
    pub fn write_page(
        &self,
        gpfn: u64,
        initrd: &[u8],
        dst: &mut Page,
    ) -> Result<PvhPageKind, PvhError> {
        let kind = self.page_kind(gpfn).ok_or(PvhError::NotThisKind)?;
        dst.fill(0);
        let lo = gpfn * PAGE;
        match kind {
            PvhPageKind::Initrd => {
                let r = self.layout.initrd.expect("page_kind said initrd");
                // The page may start before the initrd (a stated address
                // is page aligned, so only a placed one could; it is too).
                let from = lo.saturating_sub(r.start) as usize;
                let at = r.start.saturating_sub(lo) as usize;
                let n = (PAGE as usize - at).min(initrd.len().saturating_sub(from));
                let n = n.min((r.len as usize).saturating_sub(from));
                if n > 0 {
                    dst[at..at + n].copy_from_slice(&initrd[from..from + n]);
                }
            }
            PvhPageKind::StartInfo => *dst = self.start_info_page(),
            PvhPageKind::Acpi => {
                let t = self.acpi_tables();
                let from = (lo - self.layout.acpi.start) as usize;
                let n = t.len().saturating_sub(from).min(PAGE as usize);
                dst[..n].copy_from_slice(&t[from..from + n]);
            }
            PvhPageKind::Xenstore | PvhPageKind::Console | PvhPageKind::Spare => {}
        }
        Ok(kind)
    }
}

//! Core types of xen/include/public/xen.h for x86_64: start_info, shared_info,
//! vcpu_info, time info, mmu_update, mmuext_op and the domain-id constants.
//!
//! Read first: xen/include/public/xen.h, arch-x86/xen.h, arch-x86/xen-x86_64.h.
//! Reading Xen's machine-to-phys table needs `unsafe` and stays in xen-sys
//! (`xen_sys::xen::machine_to_phys`).

use core::mem::{offset_of, size_of};

/// `domid_t`
pub type DomId = u16;
/// `xen_pfn_t` on x86_64
pub type XenPfn = u64;
/// `evtchn_port_t`
pub type EvtchnPort = u32;

/// `DOMID_SELF`
pub const DOMID_SELF: DomId = 0x7FF0;
/// `DOMID_IO`
pub const DOMID_IO: DomId = 0x7FF1;
/// `DOMID_XEN`
pub const DOMID_XEN: DomId = 0x7FF2;
/// `DOMID_INVALID`
pub const DOMID_INVALID: DomId = 0x7FF4;
/// `DOMID_FIRST_RESERVED`
pub const DOMID_FIRST_RESERVED: DomId = 0x7FF0;

/// `__HYPERVISOR_VIRT_START` for 64-bit PV guests: the hole Xen reserves.
pub const HYPERVISOR_VIRT_START: u64 = 0xFFFF_8000_0000_0000;
/// `__HYPERVISOR_VIRT_END`
pub const HYPERVISOR_VIRT_END: u64 = 0xFFFF_8800_0000_0000;
/// `__MACH2PHYS_VIRT_START`: Xen's read-only machine-to-phys table.
pub const MACH2PHYS_VIRT_START: u64 = 0xFFFF_8000_0000_0000;
/// `__MACH2PHYS_VIRT_END`
pub const MACH2PHYS_VIRT_END: u64 = 0xFFFF_8040_0000_0000;

/// `XEN_LEGACY_MAX_VCPUS` on x86
pub const XEN_LEGACY_MAX_VCPUS: usize = 32;
/// `MAX_GUEST_CMDLINE`
pub const MAX_GUEST_CMDLINE: usize = 1024;

/// `SIF_PRIVILEGED`
pub const SIF_PRIVILEGED: u32 = 1 << 0;
/// `SIF_INITDOMAIN`
pub const SIF_INITDOMAIN: u32 = 1 << 1;
/// `SIF_MULTIBOOT_MOD`
pub const SIF_MULTIBOOT_MOD: u32 = 1 << 2;
/// `SIF_MOD_START_PFN`
pub const SIF_MOD_START_PFN: u32 = 1 << 3;
/// `SIF_VIRT_P2M_4TOOLS`
pub const SIF_VIRT_P2M_4TOOLS: u32 = 1 << 4;

/// `struct start_info`'s console union, domU view.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct StartInfoConsoleDomU {
    /// MACHINE page number of the console page.
    pub mfn: XenPfn,
    /// Event channel for the console page.
    pub evtchn: u32,
}

/// `struct start_info`'s console union, dom0 view.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct StartInfoConsoleDom0 {
    /// Offset of the `dom0_vga_console_info` struct.
    pub info_off: u32,
    /// Size of that struct.
    pub info_size: u32,
}

/// The console union of `struct start_info`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union StartInfoConsole {
    /// Unprivileged domains: their PV console ring.
    pub domu: StartInfoConsoleDomU,
    /// The initial domain: the VGA console info.
    pub dom0: StartInfoConsoleDom0,
}

/// `struct start_info`: what Xen hands a PV guest in %rsi at entry.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct StartInfo {
    /// "xen-<version>-<platform>".
    pub magic: [u8; 32],
    /// Total pages allocated to this domain.
    pub nr_pages: u64,
    /// MACHINE address of the shared info struct.
    pub shared_info: u64,
    /// `SIF_*` flags.
    pub flags: u32,
    /// MACHINE page number of the xenstore ring page.
    pub store_mfn: XenPfn,
    /// Event channel of the xenstore ring.
    pub store_evtchn: u32,
    /// Console: a ring for domUs, VGA info for dom0.
    pub console: StartInfoConsole,
    /// VIRTUAL address of the top-level page table.
    pub pt_base: u64,
    /// Number of bootstrap page-table frames.
    pub nr_pt_frames: u64,
    /// VIRTUAL address of the P2M list.
    pub mfn_list: u64,
    /// VIRTUAL address (or PFN with `SIF_MOD_START_PFN`) of the module.
    pub mod_start: u64,
    /// Size in bytes of the module.
    pub mod_len: u64,
    /// The guest's command line, NUL-terminated.
    pub cmd_line: [u8; MAX_GUEST_CMDLINE],
    /// First pfn forming the initial P2M table.
    pub first_p2m_pfn: u64,
    /// Number of pfns forming the initial P2M table.
    pub nr_p2m_frames: u64,
}

/// The magic prefix of `StartInfo::magic`.
pub const START_INFO_MAGIC_PREFIX: &[u8] = b"xen-3.0-x86_64";

/// Byte offsets of `struct start_info`'s fields (x86_64), for code that
/// writes the page as bytes (the domain builder). Derived from [`StartInfo`],
/// so they cannot drift from the layout; `tests/headers.rs` pins them to the
/// values of the 4.17 header.
pub mod start_info {
    use super::*;

    /// `magic`
    pub const OFF_MAGIC: usize = offset_of!(StartInfo, magic);
    /// `nr_pages`
    pub const OFF_NR_PAGES: usize = offset_of!(StartInfo, nr_pages);
    /// `shared_info`
    pub const OFF_SHARED_INFO: usize = offset_of!(StartInfo, shared_info);
    /// `flags`
    pub const OFF_FLAGS: usize = offset_of!(StartInfo, flags);
    /// `store_mfn`
    pub const OFF_STORE_MFN: usize = offset_of!(StartInfo, store_mfn);
    /// `store_evtchn`
    pub const OFF_STORE_EVTCHN: usize = offset_of!(StartInfo, store_evtchn);
    /// `console.domU.mfn`
    pub const OFF_CONSOLE_MFN: usize =
        offset_of!(StartInfo, console) + offset_of!(StartInfoConsoleDomU, mfn);
    /// `console.domU.evtchn`
    pub const OFF_CONSOLE_EVTCHN: usize =
        offset_of!(StartInfo, console) + offset_of!(StartInfoConsoleDomU, evtchn);
    /// `pt_base`
    pub const OFF_PT_BASE: usize = offset_of!(StartInfo, pt_base);
    /// `nr_pt_frames`
    pub const OFF_NR_PT_FRAMES: usize = offset_of!(StartInfo, nr_pt_frames);
    /// `mfn_list`
    pub const OFF_MFN_LIST: usize = offset_of!(StartInfo, mfn_list);
    /// `mod_start`
    pub const OFF_MOD_START: usize = offset_of!(StartInfo, mod_start);
    /// `mod_len`
    pub const OFF_MOD_LEN: usize = offset_of!(StartInfo, mod_len);
    /// `cmd_line`
    pub const OFF_CMD_LINE: usize = offset_of!(StartInfo, cmd_line);
    /// `first_p2m_pfn`
    pub const OFF_FIRST_P2M_PFN: usize = offset_of!(StartInfo, first_p2m_pfn);
    /// `nr_p2m_frames`
    pub const OFF_NR_P2M_FRAMES: usize = offset_of!(StartInfo, nr_p2m_frames);
    /// `sizeof(struct start_info)`
    pub const OFF_END: usize = size_of::<StartInfo>();
}

/// Byte offsets in `struct shared_info` / `struct vcpu_info`, for code that
/// writes the page as bytes.
pub mod shared_info {
    use super::*;

    /// `sizeof(struct vcpu_info)`
    pub const OFF_VCPU_INFO_STRIDE: usize = size_of::<VcpuInfo>();
    /// `offsetof(struct vcpu_info, evtchn_upcall_mask)`
    pub const OFF_EVTCHN_UPCALL_MASK: usize = offset_of!(VcpuInfo, evtchn_upcall_mask);
    /// `sizeof(struct shared_info)`
    pub const OFF_END: usize = size_of::<SharedInfo>();
}

// The x86_64 sizes of xen.h's structures (checked against the header values
// in tests/headers.rs; these keep a wrong edit from compiling at all).
const _: () = assert!(size_of::<StartInfo>() == 1168);
const _: () = assert!(size_of::<VcpuTimeInfo>() == 32);
const _: () = assert!(size_of::<VcpuInfo>() == 64);
const _: () = assert!(size_of::<SharedInfo>() == 3136);
const _: () = assert!(size_of::<MmuUpdate>() == 16);
const _: () = assert!(size_of::<MmuextOp>() == 24);

/// `struct vcpu_time_info` (32 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct VcpuTimeInfo {
    /// Odd while Xen updates the record (a seqlock).
    pub version: u32,
    /// Padding.
    pub pad0: u32,
    /// TSC at the last update.
    pub tsc_timestamp: u64,
    /// System time (ns since boot) at the last update.
    pub system_time: u64,
    /// TSC-to-ns multiplier, a 32.32 fixed-point fraction.
    pub tsc_to_system_mul: u32,
    /// Shift applied to the TSC delta before multiplying.
    pub tsc_shift: i8,
    /// `XEN_PVCLOCK_*` flags.
    pub flags: u8,
    /// Padding.
    pub pad1: [u8; 2],
}

/// `struct arch_vcpu_info` (x86_64).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ArchVcpuInfo {
    /// Faulting address of the last page fault.
    pub cr2: u64,
    /// Padding so that `vcpu_info` is 64 bytes.
    pub pad: u64,
}

/// `struct vcpu_info` (64 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct VcpuInfo {
    /// An event is pending for this vCPU.
    pub evtchn_upcall_pending: u8,
    /// Events are masked for this vCPU.
    pub evtchn_upcall_mask: u8,
    /// Padding.
    pub pad0: [u8; 6],
    /// Which words of `evtchn_pending` to scan.
    pub evtchn_pending_sel: u64,
    /// Architecture part.
    pub arch: ArchVcpuInfo,
    /// Time info.
    pub time: VcpuTimeInfo,
}

/// `struct arch_shared_info` (x86_64).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ArchSharedInfo {
    /// Number of valid P2M entries.
    pub max_pfn: u64,
    /// Frame of the P2M frame-list list.
    pub pfn_to_mfn_frame_list_list: XenPfn,
    /// NMI reason bits.
    pub nmi_reason: u64,
    /// cr3 of the address space where `p2m_vaddr` is valid.
    pub p2m_cr3: u64,
    /// Virtual address of the linear P2M list.
    pub p2m_vaddr: u64,
    /// Generation count of the P2M mapping.
    pub p2m_generation: u64,
}

/// `struct shared_info`: the page Xen shares with every guest.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SharedInfo {
    /// Per-vCPU info.
    pub vcpu_info: [VcpuInfo; XEN_LEGACY_MAX_VCPUS],
    /// 2-level event channel pending bits.
    pub evtchn_pending: [u64; 64],
    /// 2-level event channel mask bits.
    pub evtchn_mask: [u64; 64],
    /// Version counter of the `wc_*` fields: odd while Xen updates them
    /// (a seqlock, as `vcpu_time_info.version`).
    pub wc_version: u32,
    /// Wallclock seconds at system time 0 (low 32 bits).
    pub wc_sec: u32,
    /// Wallclock nanoseconds at system time 0.
    pub wc_nsec: u32,
    /// High 32 bits of `wc_sec`.
    pub wc_sec_hi: u32,
    /// Architecture part.
    pub arch: ArchSharedInfo,
}

/// `struct mmu_update`: one checked page-table write.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MmuUpdate {
    /// Machine address of the entry, low 2 bits = `MMU_*` command.
    pub ptr: u64,
    /// New contents.
    pub val: u64,
}

/// `MMU_NORMAL_PT_UPDATE`
pub const MMU_NORMAL_PT_UPDATE: u64 = 0;
/// `MMU_MACHPHYS_UPDATE`
pub const MMU_MACHPHYS_UPDATE: u64 = 1;
/// `MMU_PT_UPDATE_PRESERVE_AD`
pub const MMU_PT_UPDATE_PRESERVE_AD: u64 = 2;
/// `MMU_PT_UPDATE_NO_TRANSLATE`
pub const MMU_PT_UPDATE_NO_TRANSLATE: u64 = 3;

/// `struct mmuext_op`: an extended MMU operation.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct MmuextOp {
    /// `MMUEXT_*`
    pub cmd: u32,
    /// Padding the C compiler inserts before the 8-byte union.
    pub pad: u32,
    /// `mfn` or `linear_addr`.
    pub arg1: u64,
    /// `nr_ents`, `vcpumask` or `src_mfn`.
    pub arg2: u64,
}

/// `MMUEXT_PIN_L1_TABLE`
pub const MMUEXT_PIN_L1_TABLE: u32 = 0;
/// `MMUEXT_PIN_L2_TABLE`
pub const MMUEXT_PIN_L2_TABLE: u32 = 1;
/// `MMUEXT_PIN_L3_TABLE`
pub const MMUEXT_PIN_L3_TABLE: u32 = 2;
/// `MMUEXT_PIN_L4_TABLE`
pub const MMUEXT_PIN_L4_TABLE: u32 = 3;
/// `MMUEXT_UNPIN_TABLE`
pub const MMUEXT_UNPIN_TABLE: u32 = 4;
/// `MMUEXT_NEW_BASEPTR`
pub const MMUEXT_NEW_BASEPTR: u32 = 5;
/// `MMUEXT_TLB_FLUSH_LOCAL`
pub const MMUEXT_TLB_FLUSH_LOCAL: u32 = 6;
/// `MMUEXT_INVLPG_LOCAL`
pub const MMUEXT_INVLPG_LOCAL: u32 = 7;
/// `MMUEXT_TLB_FLUSH_ALL`
pub const MMUEXT_TLB_FLUSH_ALL: u32 = 10;
/// `MMUEXT_INVLPG_ALL`
pub const MMUEXT_INVLPG_ALL: u32 = 11;
/// `MMUEXT_NEW_USER_BASEPTR`
pub const MMUEXT_NEW_USER_BASEPTR: u32 = 15;
/// `MMUEXT_CLEAR_PAGE`
pub const MMUEXT_CLEAR_PAGE: u32 = 16;
/// `MMUEXT_COPY_PAGE`
pub const MMUEXT_COPY_PAGE: u32 = 17;

/// `UVMF_NONE`
pub const UVMF_NONE: u64 = 0;
/// `UVMF_TLB_FLUSH`
pub const UVMF_TLB_FLUSH: u64 = 1;
/// `UVMF_INVLPG`
pub const UVMF_INVLPG: u64 = 2;
/// `UVMF_ALL`
pub const UVMF_ALL: u64 = 1 << 2;

/// x86 page-table entry: present.
pub const PTE_PRESENT: u64 = 1 << 0;
/// x86 page-table entry: writable.
pub const PTE_RW: u64 = 1 << 1;
/// x86 page-table entry: user-accessible (PV kernels run in ring 3).
pub const PTE_USER: u64 = 1 << 2;
/// x86 page-table entry: accessed.
pub const PTE_ACCESSED: u64 = 1 << 5;
/// x86 page-table entry: dirty.
pub const PTE_DIRTY: u64 = 1 << 6;
/// x86 page-table entry: no-execute.
pub const PTE_NX: u64 = 1 << 63;
/// Mask of the frame number bits of a page-table entry.
pub const PTE_ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;

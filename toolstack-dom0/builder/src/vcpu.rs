//! The boot vCPU's registers for a 64-bit PV guest, as plain values.
//!
//! Read first: xen/include/public/arch-x86/xen.h (`struct
//! vcpu_guest_context`, `VGCF_*`), arch-x86/xen-x86_64.h (`FLAT_KERNEL_*`)
//! and tools/libs/guest/xg_dom_x86.c (`vcpu_x86_64`). The executor copies
//! these into Xen's `vcpu_guest_context` for `XEN_DOMCTL_setvcpucontext`.

pub use xen_abi::vcpu::{VGCF_IN_KERNEL, VGCF_ONLINE};
/// `FLAT_KERNEL_CS64` = `FLAT_RING3_CS64`.
pub const FLAT_KERNEL_CS: u16 = xen_abi::vcpu::FLAT_KERNEL_CS64;
/// `FLAT_KERNEL_SS64` = `FLAT_RING3_SS64`.
pub const FLAT_KERNEL_SS: u16 = xen_abi::vcpu::FLAT_KERNEL_SS64;
/// `FLAT_KERNEL_DS64` = `FLAT_RING3_DS64`: the NULL selector.
pub const FLAT_KERNEL_DS: u16 = xen_abi::vcpu::FLAT_KERNEL_DS64;
/// `debugreg[6]` default (`X86_DR6_DEFAULT`).
pub const DR6_DEFAULT: u64 = 0xffff_0ff0;
/// `debugreg[7]` default (`X86_DR7_DEFAULT`).
pub const DR7_DEFAULT: u64 = 0x400;
/// `X86_EFLAGS_IF`: libxc starts PV guests with interrupts (events) enabled
/// in rflags; event delivery itself is masked until the guest unmasks it.
pub const RFLAGS_IF: u64 = 1 << 9;

/// Register values for vCPU 0 of a 64-bit PV guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PvVcpuContext {
    /// `flags`: `VGCF_in_kernel | VGCF_online`.
    pub flags: u64,
    /// `user_regs.rip`: the entry point.
    pub rip: u64,
    /// `user_regs.rsp`: top of the boot stack.
    pub rsp: u64,
    /// `user_regs.rsi`: virtual address of start_info.
    pub rsi: u64,
    /// `user_regs.rflags`.
    pub rflags: u64,
    /// `user_regs.cs`.
    pub cs: u16,
    /// `user_regs.ss`.
    pub ss: u16,
    /// `user_regs.ds` (`FLAT_KERNEL_DS` = 0, as libxc sets ds/es/fs/gs).
    pub ds: u16,
    /// `user_regs.es`.
    pub es: u16,
    /// `user_regs.fs`.
    pub fs: u16,
    /// `user_regs.gs`.
    pub gs: u16,
    /// `kernel_ss`.
    pub kernel_ss: u64,
    /// `kernel_sp`.
    pub kernel_sp: u64,
    /// `debugreg[6]`.
    pub dr6: u64,
    /// `debugreg[7]`.
    pub dr7: u64,
    /// `ctrlreg[3]`: `xen_pfn_to_cr3(l4_mfn)` = `l4_mfn << 12` on x86_64.
    pub cr3: u64,
    /// The L4's mfn (what `MMUEXT_PIN_L4_TABLE` pins before the context is set).
    pub l4_mfn: u64,
}

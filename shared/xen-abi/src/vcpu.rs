//! The flags and selectors of a 64-bit PV vCPU's boot context
//! (`struct vcpu_guest_context`, xen/include/public/arch-x86/xen.h and
//! arch-x86/xen-x86_64.h). The structure itself, with the hypercalls that
//! take it, is xen-sys's.

/// `VGCF_i387_valid`
pub const VGCF_I387_VALID: u64 = 1 << 0;
/// `VGCF_in_kernel`: the vCPU starts in (guest) kernel mode.
pub const VGCF_IN_KERNEL: u64 = 1 << 2;
/// `VGCF_failsafe_disables_events`
pub const VGCF_FAILSAFE_DISABLES_EVENTS: u64 = 1 << 3;
/// `VGCF_syscall_disables_events`
pub const VGCF_SYSCALL_DISABLES_EVENTS: u64 = 1 << 4;
/// `VGCF_online`: bring the vCPU up (domctl setvcpucontext).
pub const VGCF_ONLINE: u64 = 1 << 5;
/// `VGCF_in_syscall` (arch-x86/xen-x86_64.h)
pub const VGCF_IN_SYSCALL: u64 = 1 << 8;

/// `FLAT_KERNEL_CS64` (= `FLAT_RING3_CS64`: 64-bit PV kernels run in ring 3).
pub const FLAT_KERNEL_CS64: u16 = 0xe033;
/// `FLAT_KERNEL_SS64` (= `FLAT_RING3_SS64`).
pub const FLAT_KERNEL_SS64: u16 = 0xe02b;
/// `FLAT_KERNEL_DS64` (= `FLAT_RING3_DS64`): the NULL selector.
pub const FLAT_KERNEL_DS64: u16 = 0;

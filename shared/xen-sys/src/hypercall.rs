//! The hypercall page and the raw 64-bit PV hypercall calling convention.
//!
//! Read first: xen/include/public/xen.h (hypercall numbers) and
//! xen/include/public/arch-x86/xen-x86_64.h. A PV guest names a page in its
//! `XEN_ELFNOTE_HYPERCALL_PAGE` note; Xen fills it with one 32-byte stub per
//! hypercall. Arguments go in rdi, rsi, rdx, r10, r8; the result comes back in
//! rax (negative errno on failure). Xen may clobber the argument registers
//! (debug builds do), and the stubs use `syscall`, which clobbers rcx and r11.

/// `__HYPERVISOR_set_trap_table`
pub const SET_TRAP_TABLE: u32 = 0;
/// `__HYPERVISOR_mmu_update`
pub const MMU_UPDATE: u32 = 1;
/// `__HYPERVISOR_set_gdt`
pub const SET_GDT: u32 = 2;
/// `__HYPERVISOR_stack_switch`
pub const STACK_SWITCH: u32 = 3;
/// `__HYPERVISOR_set_callbacks`
pub const SET_CALLBACKS: u32 = 4;
/// `__HYPERVISOR_fpu_taskswitch`
pub const FPU_TASKSWITCH: u32 = 5;
/// `__HYPERVISOR_platform_op`
pub const PLATFORM_OP: u32 = 7;
/// `__HYPERVISOR_memory_op`
pub const MEMORY_OP: u32 = 12;
/// `__HYPERVISOR_multicall`
pub const MULTICALL: u32 = 13;
/// `__HYPERVISOR_update_va_mapping`
pub const UPDATE_VA_MAPPING: u32 = 14;
/// `__HYPERVISOR_set_timer_op`
pub const SET_TIMER_OP: u32 = 15;
/// `__HYPERVISOR_xen_version`
pub const XEN_VERSION: u32 = 17;
/// `__HYPERVISOR_console_io`
pub const CONSOLE_IO: u32 = 18;
/// `__HYPERVISOR_grant_table_op`
pub const GRANT_TABLE_OP: u32 = 20;
/// `__HYPERVISOR_vm_assist`
pub const VM_ASSIST: u32 = 21;
/// `__HYPERVISOR_update_va_mapping_otherdomain`
pub const UPDATE_VA_MAPPING_OTHERDOMAIN: u32 = 22;
/// `__HYPERVISOR_iret`
pub const IRET: u32 = 23;
/// `__HYPERVISOR_vcpu_op`
pub const VCPU_OP: u32 = 24;
/// `__HYPERVISOR_set_segment_base`
pub const SET_SEGMENT_BASE: u32 = 25;
/// `__HYPERVISOR_mmuext_op`
pub const MMUEXT_OP: u32 = 26;
/// `__HYPERVISOR_xsm_op`
pub const XSM_OP: u32 = 27;
/// `__HYPERVISOR_nmi_op`
pub const NMI_OP: u32 = 28;
/// `__HYPERVISOR_sched_op`
pub const SCHED_OP: u32 = 29;
/// `__HYPERVISOR_callback_op`
pub const CALLBACK_OP: u32 = 30;
/// `__HYPERVISOR_event_channel_op`
pub const EVENT_CHANNEL_OP: u32 = 32;
/// `__HYPERVISOR_physdev_op`
pub const PHYSDEV_OP: u32 = 33;
/// `__HYPERVISOR_hvm_op`
pub const HVM_OP: u32 = 34;
/// `__HYPERVISOR_sysctl`
pub const SYSCTL: u32 = 35;
/// `__HYPERVISOR_domctl`
pub const DOMCTL: u32 = 36;
/// `__HYPERVISOR_dm_op`
pub const DM_OP: u32 = 41;

/// A failed hypercall: the positive errno value Xen returned negated
/// (xen/include/public/errno.h, which follows Linux's numbering).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i64);

impl Errno {
    /// `EPERM`
    pub const EPERM: Errno = Errno(1);
    /// `ENOENT`
    pub const ENOENT: Errno = Errno(2);
    /// `ESRCH`
    pub const ESRCH: Errno = Errno(3);
    /// `EAGAIN`
    pub const EAGAIN: Errno = Errno(11);
    /// `ENOMEM`
    pub const ENOMEM: Errno = Errno(12);
    /// `EFAULT`
    pub const EFAULT: Errno = Errno(14);
    /// `EBUSY`
    pub const EBUSY: Errno = Errno(16);
    /// `EEXIST`
    pub const EEXIST: Errno = Errno(17);
    /// `EINVAL`
    pub const EINVAL: Errno = Errno(22);
    /// `ENOSPC`
    pub const ENOSPC: Errno = Errno(28);
    /// `ENOSYS`
    pub const ENOSYS: Errno = Errno(38);

    /// Turns a raw hypercall return value into `Ok(value)` or `Err(errno)`.
    pub fn check(ret: i64) -> Result<u64, Errno> {
        if ret < 0 {
            Err(Errno(-ret))
        } else {
            Ok(ret as u64)
        }
    }
}

impl core::fmt::Display for Errno {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let name = match self.0 {
            1 => "EPERM",
            2 => "ENOENT",
            3 => "ESRCH",
            11 => "EAGAIN",
            12 => "ENOMEM",
            14 => "EFAULT",
            16 => "EBUSY",
            17 => "EEXIST",
            22 => "EINVAL",
            28 => "ENOSPC",
            38 => "ENOSYS",
            _ => return write!(f, "errno {}", self.0),
        };
        f.write_str(name)
    }
}

// The hypercall page itself: one page of text that Xen overwrites with the
// stubs when it loads the image (the ELF note in the runtime points here).
// It is filled with `int3` so a call before Xen wrote it traps loudly.
#[cfg(target_arch = "x86_64")]
core::arch::global_asm!(
    ".pushsection .text.hypercall_page, \"ax\", @progbits",
    ".balign 4096",
    ".globl hypercall_page",
    "hypercall_page:",
    ".fill 4096, 1, 0xcc",
    ".popsection",
);

#[cfg(target_arch = "x86_64")]
extern "C" {
    /// The page Xen filled with hypercall stubs.
    static hypercall_page: [u8; 4096];
}

/// Address of the stub for hypercall `nr`.
#[cfg(target_arch = "x86_64")]
fn stub(nr: u32) -> usize {
    debug_assert!(nr < 128, "hypercall numbers fit in one page");
    // Only the address of the extern static is taken, never its bytes.
    let page = core::ptr::addr_of!(hypercall_page) as usize;
    page + (nr as usize) * 32
}

/// Calls hypercall `nr` with five arguments.
///
/// # Safety
/// The caller guarantees the arguments are what Xen expects for `nr`: every
/// pointer argument names memory that is valid for the access Xen makes, for
/// the duration of the call, and the call cannot break an invariant the rest
/// of the program relies on (page tables, mappings, event channels).
#[cfg(target_arch = "x86_64")]
#[inline]
pub unsafe fn hypercall5(nr: u32, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> i64 {
    let ret: i64;
    // SAFETY: the stub is Xen's; the caller vouches for the arguments. All
    // argument registers and the syscall-clobbered rcx/r11 are declared
    // clobbered, and the red zone is disabled on our kernel target.
    unsafe {
        core::arch::asm!(
            "call {stub}",
            stub = in(reg) stub(nr),
            inlateout("rdi") a1 => _,
            inlateout("rsi") a2 => _,
            inlateout("rdx") a3 => _,
            inlateout("r10") a4 => _,
            inlateout("r8") a5 => _,
            lateout("rax") ret,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    ret
}

/// Calls hypercall `nr` with no argument. See [`hypercall5`].
///
/// # Safety
/// As for [`hypercall5`].
#[cfg(target_arch = "x86_64")]
#[inline]
pub unsafe fn hypercall0(nr: u32) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { hypercall5(nr, 0, 0, 0, 0, 0) }
}

/// Calls hypercall `nr` with one argument. See [`hypercall5`].
///
/// # Safety
/// As for [`hypercall5`].
#[cfg(target_arch = "x86_64")]
#[inline]
pub unsafe fn hypercall1(nr: u32, a1: u64) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { hypercall5(nr, a1, 0, 0, 0, 0) }
}

/// Calls hypercall `nr` with two arguments. See [`hypercall5`].
///
/// # Safety
/// As for [`hypercall5`].
#[cfg(target_arch = "x86_64")]
#[inline]
pub unsafe fn hypercall2(nr: u32, a1: u64, a2: u64) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { hypercall5(nr, a1, a2, 0, 0, 0) }
}

/// Calls hypercall `nr` with three arguments. See [`hypercall5`].
///
/// # Safety
/// As for [`hypercall5`].
#[cfg(target_arch = "x86_64")]
#[inline]
pub unsafe fn hypercall3(nr: u32, a1: u64, a2: u64, a3: u64) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { hypercall5(nr, a1, a2, a3, 0, 0) }
}

/// Calls hypercall `nr` with four arguments. See [`hypercall5`].
///
/// # Safety
/// As for [`hypercall5`].
#[cfg(target_arch = "x86_64")]
#[inline]
pub unsafe fn hypercall4(nr: u32, a1: u64, a2: u64, a3: u64, a4: u64) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { hypercall5(nr, a1, a2, a3, a4, 0) }
}

//! `vcpu_op` (xen/include/public/vcpu.h) and the x86_64 PV vCPU context
//! (xen/include/public/arch-x86/xen.h, arch-x86/xen-x86_64.h).
//!
//! Read first: xen/include/public/vcpu.h. `VcpuGuestContext` is what the
//! domain builder hands to `XEN_DOMCTL_setvcpucontext` (or `VCPUOP_initialise`)
//! to start a PV vCPU: entry point in `user_regs.rip`, start_info in
//! `user_regs.rsi`, top-level page table in `ctrlreg[3]`.

#[cfg(target_arch = "x86_64")]
use crate::hypercall;

pub use xen_abi::vcpu::*;

/// `VCPUOP_initialise`: arg is a `vcpu_guest_context` (PV).
pub const VCPUOP_INITIALISE: u32 = 0;
/// `VCPUOP_up`
pub const VCPUOP_UP: u32 = 1;
/// `VCPUOP_down`
pub const VCPUOP_DOWN: u32 = 2;
/// `VCPUOP_is_up`
pub const VCPUOP_IS_UP: u32 = 3;
/// `VCPUOP_get_runstate_info`
pub const VCPUOP_GET_RUNSTATE_INFO: u32 = 4;
/// `VCPUOP_register_runstate_memory_area`
pub const VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA: u32 = 5;
/// `VCPUOP_set_periodic_timer`
pub const VCPUOP_SET_PERIODIC_TIMER: u32 = 6;
/// `VCPUOP_stop_periodic_timer`
pub const VCPUOP_STOP_PERIODIC_TIMER: u32 = 7;
/// `VCPUOP_set_singleshot_timer`
pub const VCPUOP_SET_SINGLESHOT_TIMER: u32 = 8;
/// `VCPUOP_stop_singleshot_timer`
pub const VCPUOP_STOP_SINGLESHOT_TIMER: u32 = 9;
/// `VCPUOP_register_vcpu_info`
pub const VCPUOP_REGISTER_VCPU_INFO: u32 = 10;
/// `VCPUOP_send_nmi`
pub const VCPUOP_SEND_NMI: u32 = 11;
/// `VCPUOP_get_physid`
pub const VCPUOP_GET_PHYSID: u32 = 12;
/// `VCPUOP_register_vcpu_time_memory_area`
pub const VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA: u32 = 13;

/// `RUNSTATE_running`
pub const RUNSTATE_RUNNING: i32 = 0;
/// `RUNSTATE_runnable`
pub const RUNSTATE_RUNNABLE: i32 = 1;
/// `RUNSTATE_blocked`
pub const RUNSTATE_BLOCKED: i32 = 2;
/// `RUNSTATE_offline`
pub const RUNSTATE_OFFLINE: i32 = 3;
/// `XEN_RUNSTATE_UPDATE`: set in `state_entry_time` while Xen updates it.
pub const XEN_RUNSTATE_UPDATE: u64 = 1 << 63;

/// `VCPU_SSHOTTMR_future`: fail with `-ETIME` if the deadline has passed.
pub const VCPU_SSHOTTMR_FUTURE: u32 = 1 << 0;

/// `struct vcpu_runstate_info`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuRunstateInfo {
    /// `RUNSTATE_*`.
    pub state: i32,
    /// System time (ns) the state was entered; `XEN_RUNSTATE_UPDATE` while
    /// being written.
    pub state_entry_time: u64,
    /// Time (ns) spent in each `RUNSTATE_*`.
    pub time: [u64; 4],
}

/// `struct vcpu_set_periodic_timer`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuSetPeriodicTimer {
    /// Period in ns.
    pub period_ns: u64,
}

/// `struct vcpu_set_singleshot_timer`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuSetSingleshotTimer {
    /// Absolute system time (ns).
    pub timeout_abs_ns: u64,
    /// `VCPU_SSHOTTMR_*`.
    pub flags: u32,
}

/// `struct vcpu_register_vcpu_info`: move the vCPU's `vcpu_info` out of
/// shared_info (needed beyond 32 vCPUs).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuRegisterVcpuInfo {
    /// Frame of the page holding the `vcpu_info`.
    pub mfn: u64,
    /// Offset in that page.
    pub offset: u32,
    /// Unused.
    pub rsvd: u32,
}

/// `struct vcpu_register_runstate_memory_area` (the guest-virtual address form).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuRegisterRunstateMemoryArea {
    /// `addr.p`: where Xen keeps a `vcpu_runstate_info` up to date.
    pub addr: u64,
}

/// `struct vcpu_get_physid`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuGetPhysid {
    /// APIC id (low 32 bits) and ACPI id (high 32 bits).
    pub phys_id: u64,
}

/// `struct trap_info`: one entry of a PV guest's virtual IDT.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrapInfo {
    /// Exception vector.
    pub vector: u8,
    /// Bits 0-1: DPL; bit 2: clear the event mask on entry.
    pub flags: u8,
    /// Code selector.
    pub cs: u16,
    /// Handler address.
    pub address: u64,
}

/// `struct cpu_user_regs` (x86_64), using the 64-bit register names.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuUserRegs {
    /// r15
    pub r15: u64,
    /// r14
    pub r14: u64,
    /// r13
    pub r13: u64,
    /// r12
    pub r12: u64,
    /// rbp
    pub rbp: u64,
    /// rbx
    pub rbx: u64,
    /// r11
    pub r11: u64,
    /// r10
    pub r10: u64,
    /// r9
    pub r9: u64,
    /// r8
    pub r8: u64,
    /// rax
    pub rax: u64,
    /// rcx
    pub rcx: u64,
    /// rdx
    pub rdx: u64,
    /// rsi (a PV guest's start_info at entry)
    pub rsi: u64,
    /// rdi
    pub rdi: u64,
    /// Private to Xen.
    pub error_code: u32,
    /// Private to Xen.
    pub entry_vector: u32,
    /// rip
    pub rip: u64,
    /// cs
    pub cs: u16,
    /// Padding.
    pub _pad0: [u16; 1],
    /// Event mask saved on upcall (`rflags.IF == !saved_upcall_mask`).
    pub saved_upcall_mask: u8,
    /// Padding.
    pub _pad1: [u8; 3],
    /// rflags
    pub rflags: u64,
    /// rsp
    pub rsp: u64,
    /// ss
    pub ss: u16,
    /// Padding.
    pub _pad2: [u16; 3],
    /// es
    pub es: u16,
    /// Padding.
    pub _pad3: [u16; 3],
    /// ds
    pub ds: u16,
    /// Padding.
    pub _pad4: [u16; 3],
    /// fs
    pub fs: u16,
    /// Padding.
    pub _pad5: [u16; 3],
    /// gs
    pub gs: u16,
    /// Padding.
    pub _pad6: [u16; 3],
}

/// `vcpu_guest_context.fpu_ctxt`: the FXSAVE image.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FpuCtxt {
    /// 512 bytes of FXSAVE area.
    pub x: [u8; 512],
}

impl Default for FpuCtxt {
    fn default() -> Self {
        FpuCtxt { x: [0; 512] }
    }
}

/// `struct vcpu_guest_context` (x86_64 PV).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuGuestContext {
    /// User-level FPU registers.
    pub fpu_ctxt: FpuCtxt,
    /// `VGCF_*`.
    pub flags: u64,
    /// General-purpose registers.
    pub user_regs: CpuUserRegs,
    /// Virtual IDT.
    pub trap_ctxt: [TrapInfo; 256],
    /// LDT linear address.
    pub ldt_base: u64,
    /// LDT entries.
    pub ldt_ents: u64,
    /// GDT machine frames.
    pub gdt_frames: [u64; 16],
    /// GDT entries.
    pub gdt_ents: u64,
    /// Virtual TSS: SS1.
    pub kernel_ss: u64,
    /// Virtual TSS: SP1.
    pub kernel_sp: u64,
    /// CR0-CR7; on x86_64 `ctrlreg[1]` is the user page table.
    pub ctrlreg: [u64; 8],
    /// DB0-DB7.
    pub debugreg: [u64; 8],
    /// Event upcall entry point.
    pub event_callback_eip: u64,
    /// Failsafe callback entry point.
    pub failsafe_callback_eip: u64,
    /// syscall entry point.
    pub syscall_callback_eip: u64,
    /// `VMASST_TYPE_*` bitmap.
    pub vm_assist: u64,
    /// FS base.
    pub fs_base: u64,
    /// Kernel GS base.
    pub gs_base_kernel: u64,
    /// User GS base.
    pub gs_base_user: u64,
}

impl Default for VcpuGuestContext {
    fn default() -> Self {
        VcpuGuestContext {
            fpu_ctxt: FpuCtxt::default(),
            flags: 0,
            user_regs: CpuUserRegs::default(),
            trap_ctxt: [TrapInfo::default(); 256],
            ldt_base: 0,
            ldt_ents: 0,
            gdt_frames: [0; 16],
            gdt_ents: 0,
            kernel_ss: 0,
            kernel_sp: 0,
            ctrlreg: [0; 8],
            debugreg: [0; 8],
            event_callback_eip: 0,
            failsafe_callback_eip: 0,
            syscall_callback_eip: 0,
            vm_assist: 0,
            fs_base: 0,
            gs_base_kernel: 0,
            gs_base_user: 0,
        }
    }
}

// sizeof(struct vcpu_guest_context) on x86_64; see tests/abi_layout.rs.
const _: () = assert!(core::mem::size_of::<VcpuGuestContext>() == 5168);

/// Calls `vcpu_op(cmd, vcpu, arg)`.
///
/// # Safety
/// `arg` must point to the structure `cmd` expects (or be null where the
/// header says `arg == NULL`), valid across the call; registered areas must
/// stay valid for as long as Xen may write them.
#[cfg(target_arch = "x86_64")]
pub unsafe fn vcpu_op<T>(cmd: u32, vcpu: u32, arg: *mut T) -> Result<u64, crate::Errno> {
    // SAFETY: forwarded contract.
    crate::Errno::check(unsafe {
        hypercall::hypercall3(hypercall::VCPU_OP, cmd as u64, vcpu as u64, arg as u64)
    })
}

/// Asks for one VIRQ_TIMER on `vcpu` at system time `timeout_abs_ns`.
///
/// # Safety
/// Must run in a Xen guest whose hypercall page is set up.
#[cfg(target_arch = "x86_64")]
pub unsafe fn set_singleshot_timer(
    vcpu: u32,
    timeout_abs_ns: u64,
    flags: u32,
) -> Result<(), crate::Errno> {
    let mut arg = VcpuSetSingleshotTimer {
        timeout_abs_ns,
        flags,
    };
    // SAFETY: `arg` is the VCPUOP_set_singleshot_timer structure and lives across the call.
    unsafe { vcpu_op(VCPUOP_SET_SINGLESHOT_TIMER, vcpu, &mut arg) }?;
    Ok(())
}

/// Cancels the single-shot timer of `vcpu`.
///
/// # Safety
/// Must run in a Xen guest whose hypercall page is set up.
#[cfg(target_arch = "x86_64")]
pub unsafe fn stop_singleshot_timer(vcpu: u32) -> Result<(), crate::Errno> {
    // SAFETY: VCPUOP_stop_singleshot_timer takes a null argument.
    unsafe { vcpu_op::<u8>(VCPUOP_STOP_SINGLESHOT_TIMER, vcpu, core::ptr::null_mut()) }?;
    Ok(())
}

/// Sets a periodic VIRQ_TIMER of `period_ns` on `vcpu`.
///
/// # Safety
/// Must run in a Xen guest whose hypercall page is set up.
#[cfg(target_arch = "x86_64")]
pub unsafe fn set_periodic_timer(vcpu: u32, period_ns: u64) -> Result<(), crate::Errno> {
    let mut arg = VcpuSetPeriodicTimer { period_ns };
    // SAFETY: `arg` is the VCPUOP_set_periodic_timer structure and lives across the call.
    unsafe { vcpu_op(VCPUOP_SET_PERIODIC_TIMER, vcpu, &mut arg) }?;
    Ok(())
}

/// Stops the periodic timer of `vcpu` (Xen starts a 10 ms one by default).
///
/// # Safety
/// Must run in a Xen guest whose hypercall page is set up.
#[cfg(target_arch = "x86_64")]
pub unsafe fn stop_periodic_timer(vcpu: u32) -> Result<(), crate::Errno> {
    // SAFETY: VCPUOP_stop_periodic_timer takes a null argument.
    unsafe { vcpu_op::<u8>(VCPUOP_STOP_PERIODIC_TIMER, vcpu, core::ptr::null_mut()) }?;
    Ok(())
}

/// Moves `vcpu`'s `vcpu_info` to `offset` in frame `mfn`.
///
/// # Safety
/// The frame must be ours and stay allocated and unaliased by other data for
/// the life of the domain: Xen writes it from then on.
#[cfg(target_arch = "x86_64")]
pub unsafe fn register_vcpu_info(vcpu: u32, mfn: u64, offset: u32) -> Result<(), crate::Errno> {
    let mut arg = VcpuRegisterVcpuInfo {
        mfn,
        offset,
        rsvd: 0,
    };
    // SAFETY: `arg` lives across the call; the caller dedicates the frame.
    unsafe { vcpu_op(VCPUOP_REGISTER_VCPU_INFO, vcpu, &mut arg) }?;
    Ok(())
}

/// Returns `vcpu`'s runstate.
///
/// # Safety
/// Must run in a Xen guest whose hypercall page is set up.
#[cfg(target_arch = "x86_64")]
pub unsafe fn get_runstate_info(vcpu: u32) -> Result<VcpuRunstateInfo, crate::Errno> {
    let mut arg = VcpuRunstateInfo::default();
    // SAFETY: `arg` is the VCPUOP_get_runstate_info structure and lives across the call.
    unsafe { vcpu_op(VCPUOP_GET_RUNSTATE_INFO, vcpu, &mut arg) }?;
    Ok(arg)
}

/// Returns whether `vcpu` is up.
///
/// # Safety
/// Must run in a Xen guest whose hypercall page is set up.
#[cfg(target_arch = "x86_64")]
pub unsafe fn is_up(vcpu: u32) -> Result<bool, crate::Errno> {
    // SAFETY: VCPUOP_is_up takes a null argument.
    let up = unsafe { vcpu_op::<u8>(VCPUOP_IS_UP, vcpu, core::ptr::null_mut()) }?;
    Ok(up != 0)
}

/// Brings `vcpu` up (after `VCPUOP_initialise`).
///
/// # Safety
/// The vCPU's context must be initialised with code and stack it may run.
#[cfg(target_arch = "x86_64")]
pub unsafe fn up(vcpu: u32) -> Result<(), crate::Errno> {
    // SAFETY: VCPUOP_up takes a null argument; the caller vouches for the context.
    unsafe { vcpu_op::<u8>(VCPUOP_UP, vcpu, core::ptr::null_mut()) }?;
    Ok(())
}

/// Takes `vcpu` down.
///
/// # Safety
/// Nothing may wait on work that `vcpu` is doing.
#[cfg(target_arch = "x86_64")]
pub unsafe fn down(vcpu: u32) -> Result<(), crate::Errno> {
    // SAFETY: VCPUOP_down takes a null argument.
    unsafe { vcpu_op::<u8>(VCPUOP_DOWN, vcpu, core::ptr::null_mut()) }?;
    Ok(())
}

/// Sets up `vcpu`'s initial PV context (it stays down until [`up`]).
///
/// # Safety
/// The context must name code, stack and page tables the vCPU may use.
#[cfg(target_arch = "x86_64")]
pub unsafe fn initialise(vcpu: u32, ctxt: &mut VcpuGuestContext) -> Result<(), crate::Errno> {
    // SAFETY: `ctxt` lives across the call; the caller vouches for its contents.
    unsafe { vcpu_op(VCPUOP_INITIALISE, vcpu, ctxt) }?;
    Ok(())
}

//! HVM save records (xen/include/public/hvm/save.h, arch-x86/hvm/save.h):
//! what `XEN_DOMCTL_gethvmcontext` returns and `XEN_DOMCTL_sethvmcontext`
//! loads, for a toolstack setting a PVH guest's boot vCPU.
//!
//! Read first: hvm/save.h (each record is a [`HvmSaveDescriptor`] then
//! `length` bytes; the stream opens with a HEADER record and ends with a
//! zero-type, zero-length END descriptor) and arch-x86/hvm/save.h
//! (`struct hvm_hw_cpu`, `struct hvm_hw_mtrr`). `HVM_SAVE_CODE(x)` is the
//! number each `DECLARE_HVM_SAVE_TYPE` gives.

use core::mem::{offset_of, size_of};

/// `HVM_SAVE_CODE(END)`
pub const HVM_SAVE_CODE_END: u16 = 0;
/// `HVM_SAVE_CODE(HEADER)`
pub const HVM_SAVE_CODE_HEADER: u16 = 1;
/// `HVM_SAVE_CODE(CPU)`
pub const HVM_SAVE_CODE_CPU: u16 = 2;
/// `HVM_SAVE_CODE(MTRR)`
pub const HVM_SAVE_CODE_MTRR: u16 = 14;

/// `struct hvm_save_descriptor`: precedes each record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HvmSaveDescriptor {
    /// `HVM_SAVE_CODE(...)`.
    pub typecode: u16,
    /// Which one (the vCPU for CPU and MTRR records).
    pub instance: u16,
    /// Bytes of the record, not counting the descriptor.
    pub length: u32,
}

/// `struct hvm_hw_cpu` (`HVM_SAVE_TYPE(CPU)`), with runs of same-typed
/// fields as arrays in the header's order.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct HvmHwCpu {
    /// `fpu_regs`: the FXSAVE image.
    pub fpu_regs: [u8; 512],
    /// `rax rbx rcx rdx rbp rsi rdi rsp r8..r15`.
    pub gprs: [u64; 16],
    /// `rip`
    pub rip: u64,
    /// `rflags`
    pub rflags: u64,
    /// `cr0 cr2 cr3 cr4`
    pub cr: [u64; 4],
    /// `dr0 dr1 dr2 dr3 dr6 dr7`
    pub dr: [u64; 6],
    /// `cs ds es fs gs ss tr ldtr` selectors.
    pub sel: [u32; 8],
    /// `cs ds es fs gs ss tr ldtr idtr gdtr` limits.
    pub limit: [u32; 10],
    /// `cs ds es fs gs ss tr ldtr idtr gdtr` bases.
    pub base: [u64; 10],
    /// `cs ds es fs gs ss tr ldtr` attributes (`_arbytes`, the 12-bit
    /// format of hvm_vcpu.h).
    pub arbytes: [u32; 8],
    /// `sysenter_cs sysenter_esp sysenter_eip`
    pub sysenter: [u64; 3],
    /// `shadow_gs`
    pub shadow_gs: u64,
    /// `msr_flags` (obsolete, ignored) `msr_lstar msr_star msr_cstar
    /// msr_syscall_mask msr_efer msr_tsc_aux`
    pub msrs: [u64; 7],
    /// `tsc`
    pub tsc: u64,
    /// `pending_event`
    pub pending_event: u32,
    /// `error_code`
    pub error_code: u32,
    /// `flags` (`XEN_X86_FPU_INITIALISED`)
    pub flags: u32,
    /// `pad0`
    pub pad0: u32,
}

/// `struct hvm_hw_mtrr` (`HVM_SAVE_TYPE(MTRR)`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HvmHwMtrr {
    /// `msr_pat_cr`
    pub msr_pat_cr: u64,
    /// `msr_mtrr_var[MTRR_VCNT * 2]`
    pub msr_mtrr_var: [u64; 16],
    /// `msr_mtrr_fixed[NUM_FIXED_MSR]`
    pub msr_mtrr_fixed: [u64; 11],
    /// `msr_mtrr_cap`
    pub msr_mtrr_cap: u64,
    /// `msr_mtrr_def_type`
    pub msr_mtrr_def_type: u64,
}

/// Segment indexes into [`HvmHwCpu`]'s `sel`, `limit`, `base`, `arbytes`.
pub mod seg {
    /// `cs`
    pub const CS: usize = 0;
    /// `ds`
    pub const DS: usize = 1;
    /// `es`
    pub const ES: usize = 2;
    /// `fs`
    pub const FS: usize = 3;
    /// `gs`
    pub const GS: usize = 4;
    /// `ss`
    pub const SS: usize = 5;
    /// `tr`
    pub const TR: usize = 6;
    /// `ldtr`
    pub const LDTR: usize = 7;
}

/// Byte offsets, for code that reads and writes records as bytes.
pub mod offsets {
    use super::*;

    /// `sizeof(struct hvm_save_descriptor)`
    pub const DESCRIPTOR_LEN: usize = size_of::<HvmSaveDescriptor>();
    /// `HVM_SAVE_LENGTH(CPU)`
    pub const CPU_LEN: usize = size_of::<HvmHwCpu>();
    /// `HVM_SAVE_LENGTH(MTRR)`
    pub const MTRR_LEN: usize = size_of::<HvmHwMtrr>();
    /// `hvm_hw_cpu.rbx`
    pub const CPU_RBX: usize = offset_of!(HvmHwCpu, gprs) + 8;
    /// `hvm_hw_cpu.rip`
    pub const CPU_RIP: usize = offset_of!(HvmHwCpu, rip);
    /// `hvm_hw_cpu.rflags`
    pub const CPU_RFLAGS: usize = offset_of!(HvmHwCpu, rflags);
    /// `hvm_hw_cpu.cr0`
    pub const CPU_CR0: usize = offset_of!(HvmHwCpu, cr);
    /// `hvm_hw_cpu.dr6`
    pub const CPU_DR6: usize = offset_of!(HvmHwCpu, dr) + 4 * 8;
    /// `hvm_hw_cpu.dr7`
    pub const CPU_DR7: usize = offset_of!(HvmHwCpu, dr) + 5 * 8;
    /// `hvm_hw_cpu.cs_limit` (then the other limits, 4 bytes apart).
    pub const CPU_LIMITS: usize = offset_of!(HvmHwCpu, limit);
    /// `hvm_hw_cpu.cs_base` (then the other bases, 8 bytes apart).
    pub const CPU_BASES: usize = offset_of!(HvmHwCpu, base);
    /// `hvm_hw_cpu.cs_arbytes` (then the others, 4 bytes apart).
    pub const CPU_ARBYTES: usize = offset_of!(HvmHwCpu, arbytes);
    /// `hvm_hw_cpu.msr_efer`
    pub const CPU_EFER: usize = offset_of!(HvmHwCpu, msrs) + 5 * 8;
    /// `hvm_hw_mtrr.msr_mtrr_def_type`
    pub const MTRR_DEF_TYPE: usize = offset_of!(HvmHwMtrr, msr_mtrr_def_type);
}

/// `X86_DR6_DEFAULT`: DR6's reset value.
pub const X86_DR6_DEFAULT: u64 = 0xffff_0ff0;
/// `X86_DR7_DEFAULT`: DR7's reset value.
pub const X86_DR7_DEFAULT: u64 = 0x400;
/// `MTRR_TYPE_WRBACK`
pub const MTRR_TYPE_WRBACK: u64 = 6;
/// `MTRR_DEF_TYPE_ENABLE` (bit 11 of `MTRRdefType`, "E").
pub const MTRR_DEF_TYPE_ENABLE: u64 = 1 << 11;

const _: () = assert!(size_of::<HvmSaveDescriptor>() == 8);
const _: () = assert!(size_of::<HvmHwCpu>() == 1032);
const _: () = assert!(size_of::<HvmHwMtrr>() == 240);
const _: () = assert!(offset_of!(HvmHwCpu, rip) == 640);
const _: () = assert!(offset_of!(HvmHwCpu, arbytes) == 888);
const _: () = assert!(offset_of!(HvmHwCpu, pending_event) == 1016);

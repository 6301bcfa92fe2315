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

/// `struct hvm_hw_cpu` (`HVM_SAVE_TYPE(CPU)`), field for field.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct HvmHwCpu {
    /// `fpu_regs`
    pub fpu_regs: [u8; 512],
    /// `rax`
    pub rax: u64,
    /// `rbx`
    pub rbx: u64,
    /// `rcx`
    pub rcx: u64,
    /// `rdx`
    pub rdx: u64,
    /// `rbp`
    pub rbp: u64,
    /// `rsi`
    pub rsi: u64,
    /// `rdi`
    pub rdi: u64,
    /// `rsp`
    pub rsp: u64,
    /// `r8`
    pub r8: u64,
    /// `r9`
    pub r9: u64,
    /// `r10`
    pub r10: u64,
    /// `r11`
    pub r11: u64,
    /// `r12`
    pub r12: u64,
    /// `r13`
    pub r13: u64,
    /// `r14`
    pub r14: u64,
    /// `r15`
    pub r15: u64,
    /// `rip`
    pub rip: u64,
    /// `rflags`
    pub rflags: u64,
    /// `cr0`
    pub cr0: u64,
    /// `cr2`
    pub cr2: u64,
    /// `cr3`
    pub cr3: u64,
    /// `cr4`
    pub cr4: u64,
    /// `dr0`
    pub dr0: u64,
    /// `dr1`
    pub dr1: u64,
    /// `dr2`
    pub dr2: u64,
    /// `dr3`
    pub dr3: u64,
    /// `dr6`
    pub dr6: u64,
    /// `dr7`
    pub dr7: u64,
    /// `cs_sel`
    pub cs_sel: u32,
    /// `ds_sel`
    pub ds_sel: u32,
    /// `es_sel`
    pub es_sel: u32,
    /// `fs_sel`
    pub fs_sel: u32,
    /// `gs_sel`
    pub gs_sel: u32,
    /// `ss_sel`
    pub ss_sel: u32,
    /// `tr_sel`
    pub tr_sel: u32,
    /// `ldtr_sel`
    pub ldtr_sel: u32,
    /// `cs_limit`
    pub cs_limit: u32,
    /// `ds_limit`
    pub ds_limit: u32,
    /// `es_limit`
    pub es_limit: u32,
    /// `fs_limit`
    pub fs_limit: u32,
    /// `gs_limit`
    pub gs_limit: u32,
    /// `ss_limit`
    pub ss_limit: u32,
    /// `tr_limit`
    pub tr_limit: u32,
    /// `ldtr_limit`
    pub ldtr_limit: u32,
    /// `idtr_limit`
    pub idtr_limit: u32,
    /// `gdtr_limit`
    pub gdtr_limit: u32,
    /// `cs_base`
    pub cs_base: u64,
    /// `ds_base`
    pub ds_base: u64,
    /// `es_base`
    pub es_base: u64,
    /// `fs_base`
    pub fs_base: u64,
    /// `gs_base`
    pub gs_base: u64,
    /// `ss_base`
    pub ss_base: u64,
    /// `tr_base`
    pub tr_base: u64,
    /// `ldtr_base`
    pub ldtr_base: u64,
    /// `idtr_base`
    pub idtr_base: u64,
    /// `gdtr_base`
    pub gdtr_base: u64,
    /// `cs_arbytes`
    pub cs_arbytes: u32,
    /// `ds_arbytes`
    pub ds_arbytes: u32,
    /// `es_arbytes`
    pub es_arbytes: u32,
    /// `fs_arbytes`
    pub fs_arbytes: u32,
    /// `gs_arbytes`
    pub gs_arbytes: u32,
    /// `ss_arbytes`
    pub ss_arbytes: u32,
    /// `tr_arbytes`
    pub tr_arbytes: u32,
    /// `ldtr_arbytes`
    pub ldtr_arbytes: u32,
    /// `sysenter_cs`
    pub sysenter_cs: u64,
    /// `sysenter_esp`
    pub sysenter_esp: u64,
    /// `sysenter_eip`
    pub sysenter_eip: u64,
    /// `shadow_gs`
    pub shadow_gs: u64,
    /// `msr_flags`
    pub msr_flags: u64,
    /// `msr_lstar`
    pub msr_lstar: u64,
    /// `msr_star`
    pub msr_star: u64,
    /// `msr_cstar`
    pub msr_cstar: u64,
    /// `msr_syscall_mask`
    pub msr_syscall_mask: u64,
    /// `msr_efer`
    pub msr_efer: u64,
    /// `msr_tsc_aux`
    pub msr_tsc_aux: u64,
    /// `tsc`
    pub tsc: u64,
    /// `pending_event`
    pub pending_event: u32,
    /// `error_code`
    pub error_code: u32,
    /// `flags`
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

/// Segment indexes: the order of [`HvmHwCpu`]'s `*_sel`, `*_limit`,
/// `*_base` and `*_arbytes` runs (4, 4, 8 and 4 bytes apart).
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
    pub const OFF_DESCRIPTOR_END: usize = size_of::<HvmSaveDescriptor>();
    /// `HVM_SAVE_LENGTH(CPU)`
    pub const OFF_CPU_END: usize = size_of::<HvmHwCpu>();
    /// `HVM_SAVE_LENGTH(MTRR)`
    pub const OFF_MTRR_END: usize = size_of::<HvmHwMtrr>();
    /// `hvm_hw_cpu.rbx`
    pub const OFF_CPU_RBX: usize = offset_of!(HvmHwCpu, rbx);
    /// `hvm_hw_cpu.rip`
    pub const OFF_CPU_RIP: usize = offset_of!(HvmHwCpu, rip);
    /// `hvm_hw_cpu.rflags`
    pub const OFF_CPU_RFLAGS: usize = offset_of!(HvmHwCpu, rflags);
    /// `hvm_hw_cpu.cr0`
    pub const OFF_CPU_CR0: usize = offset_of!(HvmHwCpu, cr0);
    /// `hvm_hw_cpu.dr6`
    pub const OFF_CPU_DR6: usize = offset_of!(HvmHwCpu, dr6);
    /// `hvm_hw_cpu.dr7`
    pub const OFF_CPU_DR7: usize = offset_of!(HvmHwCpu, dr7);
    /// `hvm_hw_cpu.cs_limit` (then the other limits, 4 bytes apart).
    pub const OFF_CPU_LIMITS: usize = offset_of!(HvmHwCpu, cs_limit);
    /// `hvm_hw_cpu.cs_base` (then the other bases, 8 bytes apart).
    pub const OFF_CPU_BASES: usize = offset_of!(HvmHwCpu, cs_base);
    /// `hvm_hw_cpu.cs_arbytes` (then the others, 4 bytes apart).
    pub const OFF_CPU_ARBYTES: usize = offset_of!(HvmHwCpu, cs_arbytes);
    /// `hvm_hw_cpu.msr_efer`
    pub const OFF_CPU_EFER: usize = offset_of!(HvmHwCpu, msr_efer);
    /// `hvm_hw_mtrr.msr_mtrr_def_type`
    pub const OFF_MTRR_DEF_TYPE: usize = offset_of!(HvmHwMtrr, msr_mtrr_def_type);
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
const _: () = assert!(offset_of!(HvmHwCpu, cs_arbytes) == 888);
const _: () = assert!(offset_of!(HvmHwCpu, pending_event) == 1016);

//! `struct vcpu_hvm_context` (xen/include/public/hvm/hvm_vcpu.h): the
//! register state `VCPUOP_initialise` takes for a vCPU of an HVM or PVH
//! guest, in 32-bit or 64-bit form.
//!
//! Read first: hvm/hvm_vcpu.h. `VCPUOP_initialise` acts on the *calling*
//! domain's vCPUs (a PVH guest bringing up its secondaries); a toolstack
//! starting another domain's boot vCPU sets the same state through
//! `XEN_DOMCTL_sethvmcontext` (libxc's `vcpu_hvm`). The `*_ar` fields use the
//! 12-bit attribute format described in the header: bits 0..3 type, 4 s,
//! 5..6 dpl, 7 p, 8 avl, 9 l, 10 db, 11 g.

use core::mem::{offset_of, size_of};

/// `VCPU_HVM_MODE_32B`: the `x86_32` registers are used.
pub const VCPU_HVM_MODE_32B: u32 = 0;
/// `VCPU_HVM_MODE_64B`: the `x86_64` registers are used.
pub const VCPU_HVM_MODE_64B: u32 = 1;

/// `struct vcpu_hvm_x86_32`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuHvmX86_32 {
    /// `eax`
    pub eax: u32,
    /// `ecx`
    pub ecx: u32,
    /// `edx`
    pub edx: u32,
    /// `ebx`
    pub ebx: u32,
    /// `esp`
    pub esp: u32,
    /// `ebp`
    pub ebp: u32,
    /// `esi`
    pub esi: u32,
    /// `edi`
    pub edi: u32,
    /// `eip`
    pub eip: u32,
    /// `eflags`
    pub eflags: u32,
    /// `cr0`
    pub cr0: u32,
    /// `cr3`
    pub cr3: u32,
    /// `cr4`
    pub cr4: u32,
    /// Padding.
    pub pad1: u32,
    /// `efer` (only NXE, or LME/LMA for compatibility mode).
    pub efer: u64,
    /// `cs_base`
    pub cs_base: u32,
    /// `ds_base`
    pub ds_base: u32,
    /// `ss_base`
    pub ss_base: u32,
    /// `es_base`
    pub es_base: u32,
    /// `tr_base`
    pub tr_base: u32,
    /// `cs_limit`
    pub cs_limit: u32,
    /// `ds_limit`
    pub ds_limit: u32,
    /// `ss_limit`
    pub ss_limit: u32,
    /// `es_limit`
    pub es_limit: u32,
    /// `tr_limit`
    pub tr_limit: u32,
    /// `cs_ar`
    pub cs_ar: u16,
    /// `ds_ar`
    pub ds_ar: u16,
    /// `ss_ar`
    pub ss_ar: u16,
    /// `es_ar`
    pub es_ar: u16,
    /// `tr_ar`
    pub tr_ar: u16,
    /// Padding.
    pub pad2: [u16; 3],
}

/// `struct vcpu_hvm_x86_64`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuHvmX86_64 {
    /// `rax`
    pub rax: u64,
    /// `rcx`
    pub rcx: u64,
    /// `rdx`
    pub rdx: u64,
    /// `rbx`
    pub rbx: u64,
    /// `rsp`
    pub rsp: u64,
    /// `rbp`
    pub rbp: u64,
    /// `rsi`
    pub rsi: u64,
    /// `rdi`
    pub rdi: u64,
    /// `rip`
    pub rip: u64,
    /// `rflags`
    pub rflags: u64,
    /// `cr0`
    pub cr0: u64,
    /// `cr3`
    pub cr3: u64,
    /// `cr4`
    pub cr4: u64,
    /// `efer`
    pub efer: u64,
}

/// The `cpu_regs` union of `struct vcpu_hvm_context`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union VcpuHvmCpuRegs {
    /// `VCPU_HVM_MODE_32B`
    pub x86_32: VcpuHvmX86_32,
    /// `VCPU_HVM_MODE_64B`
    pub x86_64: VcpuHvmX86_64,
}

/// `struct vcpu_hvm_context`
#[repr(C)]
#[derive(Clone, Copy)]
pub struct VcpuHvmContext {
    /// `VCPU_HVM_MODE_*`.
    pub mode: u32,
    /// Padding.
    pub pad: u32,
    /// The registers, by `mode`.
    pub cpu_regs: VcpuHvmCpuRegs,
}

/// Byte offsets in `struct vcpu_hvm_context` of the 32-bit registers, for
/// code that writes it as bytes. Derived from the layouts above.
pub mod offsets {
    use super::*;

    const R: usize = offset_of!(VcpuHvmContext, cpu_regs);
    /// `mode`
    pub const OFF_MODE: usize = offset_of!(VcpuHvmContext, mode);
    /// `cpu_regs.x86_32.ebx`
    pub const OFF_EBX: usize = R + offset_of!(VcpuHvmX86_32, ebx);
    /// `cpu_regs.x86_32.eip`
    pub const OFF_EIP: usize = R + offset_of!(VcpuHvmX86_32, eip);
    /// `cpu_regs.x86_32.eflags`
    pub const OFF_EFLAGS: usize = R + offset_of!(VcpuHvmX86_32, eflags);
    /// `cpu_regs.x86_32.cr0`
    pub const OFF_CR0: usize = R + offset_of!(VcpuHvmX86_32, cr0);
    /// `cpu_regs.x86_32.cr4`
    pub const OFF_CR4: usize = R + offset_of!(VcpuHvmX86_32, cr4);
    /// `cpu_regs.x86_32.cs_base` (then ds, ss, es, tr, 4 bytes each)
    pub const OFF_CS_BASE: usize = R + offset_of!(VcpuHvmX86_32, cs_base);
    /// `cpu_regs.x86_32.cs_limit` (then ds, ss, es, tr, 4 bytes each)
    pub const OFF_CS_LIMIT: usize = R + offset_of!(VcpuHvmX86_32, cs_limit);
    /// `cpu_regs.x86_32.cs_ar` (then ds, ss, es, tr, 2 bytes each)
    pub const OFF_CS_AR: usize = R + offset_of!(VcpuHvmX86_32, cs_ar);
    /// `sizeof(struct vcpu_hvm_context)`
    pub const OFF_END: usize = size_of::<VcpuHvmContext>();
}

const _: () = assert!(size_of::<VcpuHvmX86_32>() == 120);
const _: () = assert!(size_of::<VcpuHvmX86_64>() == 112);
const _: () = assert!(size_of::<VcpuHvmContext>() == 128);

//! `domctl` (xen/include/public/domctl.h): the toolstack's per-domain control
//! hypercall (create, destroy, pause, memory and vCPU setup, device access).
//!
//! Read first: xen/include/public/domctl.h. This ABI is tools-only and
//! versioned: Xen 4.17 accepts only `XEN_DOMCTL_INTERFACE_VERSION` 0x15, which
//! [`XenDomctl::new`] sets. The payloads live in [`crate::domctl_payloads`].

pub use crate::domctl_payloads::*;
#[cfg(target_arch = "x86_64")]
use crate::hypercall;
use crate::xen::DomId;

/// `XEN_DOMCTL_INTERFACE_VERSION` of Xen 4.17.
pub const XEN_DOMCTL_INTERFACE_VERSION: u32 = 0x15;

/// `XEN_DOMCTL_createdomain`
pub const XEN_DOMCTL_CREATEDOMAIN: u32 = 1;
/// `XEN_DOMCTL_destroydomain`
pub const XEN_DOMCTL_DESTROYDOMAIN: u32 = 2;
/// `XEN_DOMCTL_pausedomain`
pub const XEN_DOMCTL_PAUSEDOMAIN: u32 = 3;
/// `XEN_DOMCTL_unpausedomain`
pub const XEN_DOMCTL_UNPAUSEDOMAIN: u32 = 4;
/// `XEN_DOMCTL_getdomaininfo`
pub const XEN_DOMCTL_GETDOMAININFO: u32 = 5;
/// `XEN_DOMCTL_setvcpuaffinity`
pub const XEN_DOMCTL_SETVCPUAFFINITY: u32 = 9;
/// `XEN_DOMCTL_shadow_op`
pub const XEN_DOMCTL_SHADOW_OP: u32 = 10;
/// `XEN_DOMCTL_max_mem`
pub const XEN_DOMCTL_MAX_MEM: u32 = 11;
/// `XEN_DOMCTL_setvcpucontext`
pub const XEN_DOMCTL_SETVCPUCONTEXT: u32 = 12;
/// `XEN_DOMCTL_getvcpucontext`
pub const XEN_DOMCTL_GETVCPUCONTEXT: u32 = 13;
/// `XEN_DOMCTL_getvcpuinfo`
pub const XEN_DOMCTL_GETVCPUINFO: u32 = 14;
/// `XEN_DOMCTL_max_vcpus`
pub const XEN_DOMCTL_MAX_VCPUS: u32 = 15;
/// `XEN_DOMCTL_scheduler_op`
pub const XEN_DOMCTL_SCHEDULER_OP: u32 = 16;
/// `XEN_DOMCTL_setdomainhandle`
pub const XEN_DOMCTL_SETDOMAINHANDLE: u32 = 17;
/// `XEN_DOMCTL_setdebugging`
pub const XEN_DOMCTL_SETDEBUGGING: u32 = 18;
/// `XEN_DOMCTL_irq_permission`
pub const XEN_DOMCTL_IRQ_PERMISSION: u32 = 19;
/// `XEN_DOMCTL_iomem_permission`
pub const XEN_DOMCTL_IOMEM_PERMISSION: u32 = 20;
/// `XEN_DOMCTL_ioport_permission`
pub const XEN_DOMCTL_IOPORT_PERMISSION: u32 = 21;
/// `XEN_DOMCTL_hypercall_init`
pub const XEN_DOMCTL_HYPERCALL_INIT: u32 = 22;
/// `XEN_DOMCTL_settimeoffset`
pub const XEN_DOMCTL_SETTIMEOFFSET: u32 = 24;
/// `XEN_DOMCTL_getvcpuaffinity`
pub const XEN_DOMCTL_GETVCPUAFFINITY: u32 = 25;
/// `XEN_DOMCTL_resumedomain`
pub const XEN_DOMCTL_RESUMEDOMAIN: u32 = 27;
/// `XEN_DOMCTL_sendtrigger`
pub const XEN_DOMCTL_SENDTRIGGER: u32 = 28;
/// `XEN_DOMCTL_subscribe`
pub const XEN_DOMCTL_SUBSCRIBE: u32 = 29;
/// `XEN_DOMCTL_gethvmcontext`
pub const XEN_DOMCTL_GETHVMCONTEXT: u32 = 33;
/// `XEN_DOMCTL_sethvmcontext`
pub const XEN_DOMCTL_SETHVMCONTEXT: u32 = 34;
/// `XEN_DOMCTL_set_address_size`
pub const XEN_DOMCTL_SET_ADDRESS_SIZE: u32 = 35;
/// `XEN_DOMCTL_get_address_size`
pub const XEN_DOMCTL_GET_ADDRESS_SIZE: u32 = 36;
/// `XEN_DOMCTL_assign_device`
pub const XEN_DOMCTL_ASSIGN_DEVICE: u32 = 37;
/// `XEN_DOMCTL_bind_pt_irq`
pub const XEN_DOMCTL_BIND_PT_IRQ: u32 = 38;
/// `XEN_DOMCTL_memory_mapping`
pub const XEN_DOMCTL_MEMORY_MAPPING: u32 = 39;
/// `XEN_DOMCTL_ioport_mapping`
pub const XEN_DOMCTL_IOPORT_MAPPING: u32 = 40;
/// `XEN_DOMCTL_set_ext_vcpucontext`
pub const XEN_DOMCTL_SET_EXT_VCPUCONTEXT: u32 = 42;
/// `XEN_DOMCTL_get_ext_vcpucontext`
pub const XEN_DOMCTL_GET_EXT_VCPUCONTEXT: u32 = 43;
/// `XEN_DOMCTL_test_assign_device`
pub const XEN_DOMCTL_TEST_ASSIGN_DEVICE: u32 = 45;
/// `XEN_DOMCTL_set_target`
pub const XEN_DOMCTL_SET_TARGET: u32 = 46;
/// `XEN_DOMCTL_deassign_device`
pub const XEN_DOMCTL_DEASSIGN_DEVICE: u32 = 47;
/// `XEN_DOMCTL_unbind_pt_irq`
pub const XEN_DOMCTL_UNBIND_PT_IRQ: u32 = 48;
/// `XEN_DOMCTL_get_device_group`
pub const XEN_DOMCTL_GET_DEVICE_GROUP: u32 = 50;
/// `XEN_DOMCTL_gettscinfo`
pub const XEN_DOMCTL_GETTSCINFO: u32 = 59;
/// `XEN_DOMCTL_settscinfo`
pub const XEN_DOMCTL_SETTSCINFO: u32 = 60;
/// `XEN_DOMCTL_set_virq_handler`
pub const XEN_DOMCTL_SET_VIRQ_HANDLER: u32 = 66;
/// `XEN_DOMCTL_soft_reset`
pub const XEN_DOMCTL_SOFT_RESET: u32 = 79;
/// `XEN_DOMCTL_get_cpu_policy`
pub const XEN_DOMCTL_GET_CPU_POLICY: u32 = 82;
/// `XEN_DOMCTL_set_cpu_policy`
pub const XEN_DOMCTL_SET_CPU_POLICY: u32 = 83;
/// `XEN_DOMCTL_get_paging_mempool_size`
pub const XEN_DOMCTL_GET_PAGING_MEMPOOL_SIZE: u32 = 85;
/// `XEN_DOMCTL_set_paging_mempool_size`
pub const XEN_DOMCTL_SET_PAGING_MEMPOOL_SIZE: u32 = 86;

/// `xen_domctl.u`: the payload of each command, 128 bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub union DomctlU {
    /// `XEN_DOMCTL_createdomain`
    pub createdomain: XenDomctlCreatedomain,
    /// `XEN_DOMCTL_getdomaininfo`
    pub getdomaininfo: XenDomctlGetdomaininfo,
    /// `XEN_DOMCTL_max_mem`
    pub max_mem: XenDomctlMaxMem,
    /// `XEN_DOMCTL_setvcpucontext`, `XEN_DOMCTL_getvcpucontext`
    pub vcpucontext: XenDomctlVcpucontext,
    /// `XEN_DOMCTL_getvcpuinfo`
    pub getvcpuinfo: XenDomctlGetvcpuinfo,
    /// `XEN_DOMCTL_max_vcpus`
    pub max_vcpus: XenDomctlMaxVcpus,
    /// `XEN_DOMCTL_scheduler_op`
    pub scheduler_op: XenDomctlSchedulerOp,
    /// `XEN_DOMCTL_setdomainhandle`
    pub setdomainhandle: XenDomctlSetdomainhandle,
    /// `XEN_DOMCTL_irq_permission`
    pub irq_permission: XenDomctlIrqPermission,
    /// `XEN_DOMCTL_iomem_permission`
    pub iomem_permission: XenDomctlIomemPermission,
    /// `XEN_DOMCTL_ioport_permission`
    pub ioport_permission: XenDomctlIoportPermission,
    /// `XEN_DOMCTL_hypercall_init`
    pub hypercall_init: XenDomctlHypercallInit,
    /// `XEN_DOMCTL_settimeoffset`
    pub settimeoffset: XenDomctlSettimeoffset,
    /// `XEN_DOMCTL_gettscinfo`, `XEN_DOMCTL_settscinfo`
    pub tsc_info: XenDomctlTscInfo,
    /// `XEN_DOMCTL_set_address_size`, `XEN_DOMCTL_get_address_size`
    pub address_size: XenDomctlAddressSize,
    /// `XEN_DOMCTL_assign_device`, `_test_assign_device`, `_deassign_device`
    pub assign_device: XenDomctlAssignDevice,
    /// `XEN_DOMCTL_bind_pt_irq`, `XEN_DOMCTL_unbind_pt_irq`
    pub bind_pt_irq: XenDomctlBindPtIrq,
    /// `XEN_DOMCTL_memory_mapping`
    pub memory_mapping: XenDomctlMemoryMapping,
    /// `XEN_DOMCTL_set_target`
    pub set_target: XenDomctlSetTarget,
    /// `XEN_DOMCTL_set_virq_handler`
    pub set_virq_handler: XenDomctlSetVirqHandler,
    /// `XEN_DOMCTL_get/set_paging_mempool_size`
    pub paging_mempool: XenDomctlPagingMempool,
    /// `XEN_DOMCTL_gethvmcontext`, `XEN_DOMCTL_sethvmcontext`
    pub hvmcontext: XenDomctlHvmcontext,
    /// Every other payload, as raw bytes.
    pub pad: [u8; 128],
    /// Forces the 8-byte alignment the C union has (`uint64_aligned_t`).
    pub align: [u64; 16],
}

/// `struct xen_domctl` (144 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct XenDomctl {
    /// `XEN_DOMCTL_*`.
    pub cmd: u32,
    /// `XEN_DOMCTL_INTERFACE_VERSION`.
    pub interface_version: u32,
    /// The target domain.
    pub domain: DomId,
    /// Padding.
    pub _pad: [u16; 3],
    /// The payload.
    pub u: DomctlU,
}

impl XenDomctl {
    /// A zeroed domctl for `cmd` on `domain`, with the interface version set.
    pub fn new(cmd: u32, domain: DomId) -> Self {
        XenDomctl {
            cmd,
            interface_version: XEN_DOMCTL_INTERFACE_VERSION,
            domain,
            _pad: [0; 3],
            u: DomctlU { pad: [0; 128] },
        }
    }
}

// Xen rejects a domctl of any other size; tests/abi_layout.rs checks every
// field against domctl.h, this keeps the no_std build honest on its own.
const _: () = assert!(core::mem::size_of::<XenDomctl>() == 144);

/// Issues `domctl`. Returns Xen's non-negative result.
///
/// # Safety
/// The caller must be privileged over `op.domain` and accept the command's
/// effect; every guest handle in the payload must point to memory valid for
/// the access Xen makes, for the duration of the call.
#[cfg(target_arch = "x86_64")]
pub unsafe fn domctl(op: &mut XenDomctl) -> Result<u64, crate::Errno> {
    let arg: *mut XenDomctl = op;
    // SAFETY: `op` lives across the call; the caller vouches for its handles.
    crate::Errno::check(unsafe { hypercall::hypercall1(hypercall::DOMCTL, arg as u64) })
}

/// Creates a domain; `domid` 0 lets Xen choose. Returns the new domid.
///
/// # Safety
/// The caller must be privileged (dom0 or the toolstack domain).
#[cfg(target_arch = "x86_64")]
pub unsafe fn createdomain(
    domid: DomId,
    config: &XenDomctlCreatedomain,
) -> Result<DomId, crate::Errno> {
    let mut op = XenDomctl::new(XEN_DOMCTL_CREATEDOMAIN, domid);
    op.u.createdomain = *config;
    // SAFETY: the createdomain payload has no guest handle.
    unsafe { domctl(&mut op) }?;
    Ok(op.domain)
}

/// Issues a domctl that has no payload (destroy, pause, unpause...).
///
/// # Safety
/// The caller must be privileged over `domid`, and nothing it relies on may
/// depend on the domain staying as it is.
#[cfg(target_arch = "x86_64")]
unsafe fn simple(cmd: u32, domid: DomId) -> Result<(), crate::Errno> {
    let mut op = XenDomctl::new(cmd, domid);
    // SAFETY: no payload, no guest handle; the caller vouches for the effect.
    unsafe { domctl(&mut op) }?;
    Ok(())
}

/// Destroys `domid` (may return `EAGAIN`: call again until it succeeds).
///
/// # Safety
/// Nothing may still use the domain's grants, event channels or pages.
#[cfg(target_arch = "x86_64")]
pub unsafe fn destroydomain(domid: DomId) -> Result<(), crate::Errno> {
    // SAFETY: forwarded contract.
    unsafe { simple(XEN_DOMCTL_DESTROYDOMAIN, domid) }
}

/// Pauses `domid`.
///
/// # Safety
/// The caller must be privileged over `domid`.
#[cfg(target_arch = "x86_64")]
pub unsafe fn pausedomain(domid: DomId) -> Result<(), crate::Errno> {
    // SAFETY: forwarded contract.
    unsafe { simple(XEN_DOMCTL_PAUSEDOMAIN, domid) }
}

/// Unpauses `domid` (a new domain starts paused).
///
/// # Safety
/// The domain's memory and vCPU context must be ready to run.
#[cfg(target_arch = "x86_64")]
pub unsafe fn unpausedomain(domid: DomId) -> Result<(), crate::Errno> {
    // SAFETY: forwarded contract.
    unsafe { simple(XEN_DOMCTL_UNPAUSEDOMAIN, domid) }
}

/// Returns `domid`'s info; `ESRCH` if it does not exist. (Xen 4.17 answers
/// with the next existing domain, so the answer's domid is checked.)
///
/// # Safety
/// The caller must be privileged.
#[cfg(target_arch = "x86_64")]
pub unsafe fn getdomaininfo(domid: DomId) -> Result<XenDomctlGetdomaininfo, crate::Errno> {
    let mut op = XenDomctl::new(XEN_DOMCTL_GETDOMAININFO, domid);
    // SAFETY: the getdomaininfo payload has no guest handle.
    unsafe { domctl(&mut op) }?;
    // SAFETY: Xen filled the getdomaininfo member, all of whose bit patterns are valid.
    let info = unsafe { op.u.getdomaininfo };
    if info.domain != domid {
        return Err(crate::Errno::ESRCH);
    }
    Ok(info)
}

/// Sets `domid`'s memory limit in KiB.
///
/// # Safety
/// The caller must be privileged over `domid`.
#[cfg(target_arch = "x86_64")]
pub unsafe fn max_mem(domid: DomId, max_memkb: u64) -> Result<(), crate::Errno> {
    let mut op = XenDomctl::new(XEN_DOMCTL_MAX_MEM, domid);
    op.u.max_mem = XenDomctlMaxMem { max_memkb };
    // SAFETY: no guest handle in the payload.
    unsafe { domctl(&mut op) }?;
    Ok(())
}

/// Sets `domid`'s vCPU count (once, before setvcpucontext).
///
/// # Safety
/// The caller must be privileged over `domid`.
#[cfg(target_arch = "x86_64")]
pub unsafe fn max_vcpus(domid: DomId, max: u32) -> Result<(), crate::Errno> {
    let mut op = XenDomctl::new(XEN_DOMCTL_MAX_VCPUS, domid);
    op.u.max_vcpus = XenDomctlMaxVcpus { max };
    // SAFETY: no guest handle in the payload.
    unsafe { domctl(&mut op) }?;
    Ok(())
}

/// Sets `vcpu`'s initial context in `domid` (a PV guest's entry state).
///
/// # Safety
/// The context must name frames of `domid` laid out as it claims (page
/// tables pinned, start_info written).
#[cfg(target_arch = "x86_64")]
pub unsafe fn setvcpucontext(
    domid: DomId,
    vcpu: u32,
    ctxt: &mut crate::vcpu::VcpuGuestContext,
) -> Result<(), crate::Errno> {
    let mut op = XenDomctl::new(XEN_DOMCTL_SETVCPUCONTEXT, domid);
    op.u.vcpucontext = XenDomctlVcpucontext { vcpu, ctxt };
    // SAFETY: the handle points to `ctxt`, alive across the call.
    unsafe { domctl(&mut op) }?;
    Ok(())
}

/// Reads `domid`'s HVM save records into `buf` (null: only asks the size);
/// returns the bytes written (or needed).
///
/// # Safety
/// The caller must be privileged over `domid`, an HVM or PVH domain.
#[cfg(target_arch = "x86_64")]
pub unsafe fn gethvmcontext(domid: DomId, buf: Option<&mut [u8]>) -> Result<u32, crate::Errno> {
    let mut op = XenDomctl::new(XEN_DOMCTL_GETHVMCONTEXT, domid);
    let (buffer, size) = match buf {
        Some(b) => (
            b.as_mut_ptr(),
            u32::try_from(b.len()).map_err(|_| crate::Errno::EINVAL)?,
        ),
        None => (core::ptr::null_mut(), 0),
    };
    op.u.hvmcontext = XenDomctlHvmcontext {
        size,
        pad: 0,
        buffer,
    };
    // SAFETY: the handle is null or points to `size` bytes alive across the call.
    unsafe { domctl(&mut op) }?;
    // SAFETY: the command wrote the hvmcontext member back.
    Ok(unsafe { op.u.hvmcontext }.size)
}

/// Loads HVM save records `records` (header first, END last) into `domid`.
///
/// # Safety
/// The caller must be privileged over `domid` and the records must be the
/// state the domain is meant to start from.
#[cfg(target_arch = "x86_64")]
pub unsafe fn sethvmcontext(domid: DomId, records: &mut [u8]) -> Result<(), crate::Errno> {
    let mut op = XenDomctl::new(XEN_DOMCTL_SETHVMCONTEXT, domid);
    op.u.hvmcontext = XenDomctlHvmcontext {
        size: u32::try_from(records.len()).map_err(|_| crate::Errno::EINVAL)?,
        pad: 0,
        buffer: records.as_mut_ptr(),
    };
    // SAFETY: the handle points to `records`, alive across the call; Xen reads it.
    unsafe { domctl(&mut op) }?;
    Ok(())
}

/// Sets `domid`'s paging (HAP) memory pool to `bytes`.
///
/// # Safety
/// The caller must be privileged over `domid`.
#[cfg(target_arch = "x86_64")]
pub unsafe fn set_paging_mempool_size(domid: DomId, bytes: u64) -> Result<(), crate::Errno> {
    let mut op = XenDomctl::new(XEN_DOMCTL_SET_PAGING_MEMPOOL_SIZE, domid);
    op.u.paging_mempool = XenDomctlPagingMempool { size: bytes };
    // SAFETY: no guest handle in the payload.
    unsafe { domctl(&mut op) }?;
    Ok(())
}

/// Reads `vcpu`'s context in `domid` into `ctxt`.
///
/// # Safety
/// The caller must be privileged over `domid`.
#[cfg(target_arch = "x86_64")]
pub unsafe fn getvcpucontext(
    domid: DomId,
    vcpu: u32,
    ctxt: &mut crate::vcpu::VcpuGuestContext,
) -> Result<(), crate::Errno> {
    let mut op = XenDomctl::new(XEN_DOMCTL_GETVCPUCONTEXT, domid);
    op.u.vcpucontext = XenDomctlVcpucontext { vcpu, ctxt };
    // SAFETY: the handle points to `ctxt`, writable and alive across the call.
    unsafe { domctl(&mut op) }?;
    Ok(())
}

/// Sets the guest address size (32 or 64) of PV `domid`.
///
/// # Safety
/// The caller must be privileged over `domid`, before memory is set up.
#[cfg(target_arch = "x86_64")]
pub unsafe fn set_address_size(domid: DomId, size: u32) -> Result<(), crate::Errno> {
    let mut op = XenDomctl::new(XEN_DOMCTL_SET_ADDRESS_SIZE, domid);
    op.u.address_size = XenDomctlAddressSize { size };
    // SAFETY: no guest handle in the payload.
    unsafe { domctl(&mut op) }?;
    Ok(())
}

/// Grants or revokes `domid`'s access to machine frames
/// `first_mfn..first_mfn + nr_mfns`.
///
/// # Safety
/// Granting device memory hands the domain that device.
#[cfg(target_arch = "x86_64")]
pub unsafe fn iomem_permission(
    domid: DomId,
    first_mfn: u64,
    nr_mfns: u64,
    allow: bool,
) -> Result<(), crate::Errno> {
    let mut op = XenDomctl::new(XEN_DOMCTL_IOMEM_PERMISSION, domid);
    op.u.iomem_permission = XenDomctlIomemPermission {
        first_mfn,
        nr_mfns,
        allow_access: allow.into(),
    };
    // SAFETY: no guest handle in the payload; the caller vouches for the grant.
    unsafe { domctl(&mut op) }?;
    Ok(())
}

/// Grants or revokes `domid`'s access to ports `first_port..first_port + nr_ports`.
///
/// # Safety
/// Granting ports hands the domain the devices behind them.
#[cfg(target_arch = "x86_64")]
pub unsafe fn ioport_permission(
    domid: DomId,
    first_port: u32,
    nr_ports: u32,
    allow: bool,
) -> Result<(), crate::Errno> {
    let mut op = XenDomctl::new(XEN_DOMCTL_IOPORT_PERMISSION, domid);
    op.u.ioport_permission = XenDomctlIoportPermission {
        first_port,
        nr_ports,
        allow_access: allow.into(),
    };
    // SAFETY: no guest handle in the payload; the caller vouches for the grant.
    unsafe { domctl(&mut op) }?;
    Ok(())
}

/// Grants or revokes `domid`'s access to `pirq`.
///
/// # Safety
/// Granting an IRQ hands the domain the device behind it.
#[cfg(target_arch = "x86_64")]
pub unsafe fn irq_permission(domid: DomId, pirq: u32, allow: bool) -> Result<(), crate::Errno> {
    let mut op = XenDomctl::new(XEN_DOMCTL_IRQ_PERMISSION, domid);
    op.u.irq_permission = XenDomctlIrqPermission {
        pirq,
        allow_access: allow.into(),
        pad: [0; 3],
    };
    // SAFETY: no guest handle in the payload; the caller vouches for the grant.
    unsafe { domctl(&mut op) }?;
    Ok(())
}

/// Assigns (`XEN_DOMCTL_assign_device`), tests or deassigns a PCI device.
///
/// # Safety
/// No other domain may be using the device; a deassigned device must be idle.
#[cfg(target_arch = "x86_64")]
pub unsafe fn pci_device_op(
    cmd: u32,
    domid: DomId,
    seg: u16,
    bus: u8,
    devfn: u8,
) -> Result<(), crate::Errno> {
    let mut op = XenDomctl::new(cmd, domid);
    op.u.assign_device = XenDomctlAssignDevice::pci(seg, bus, devfn);
    // SAFETY: the PCI member has no guest handle; the caller vouches for the device.
    unsafe { domctl(&mut op) }?;
    Ok(())
}

/// Assigns PCI device `seg:bus:devfn` to `domid`.
///
/// # Safety
/// As for [`pci_device_op`].
#[cfg(target_arch = "x86_64")]
pub unsafe fn assign_pci_device(
    domid: DomId,
    seg: u16,
    bus: u8,
    devfn: u8,
) -> Result<(), crate::Errno> {
    // SAFETY: forwarded contract.
    unsafe { pci_device_op(XEN_DOMCTL_ASSIGN_DEVICE, domid, seg, bus, devfn) }
}

/// Takes PCI device `seg:bus:devfn` back from `domid`.
///
/// # Safety
/// As for [`pci_device_op`].
#[cfg(target_arch = "x86_64")]
pub unsafe fn deassign_pci_device(
    domid: DomId,
    seg: u16,
    bus: u8,
    devfn: u8,
) -> Result<(), crate::Errno> {
    // SAFETY: forwarded contract.
    unsafe { pci_device_op(XEN_DOMCTL_DEASSIGN_DEVICE, domid, seg, bus, devfn) }
}

/// Routes global `virq` to `domid` instead of dom0.
///
/// # Safety
/// The caller must be privileged; the domain must handle the VIRQ.
#[cfg(target_arch = "x86_64")]
pub unsafe fn set_virq_handler(domid: DomId, virq: u32) -> Result<(), crate::Errno> {
    let mut op = XenDomctl::new(XEN_DOMCTL_SET_VIRQ_HANDLER, domid);
    op.u.set_virq_handler = XenDomctlSetVirqHandler { virq };
    // SAFETY: no guest handle in the payload.
    unsafe { domctl(&mut op) }?;
    Ok(())
}

/// Sets `domid`'s UUID.
///
/// # Safety
/// The caller must be privileged over `domid`.
#[cfg(target_arch = "x86_64")]
pub unsafe fn setdomainhandle(domid: DomId, handle: XenDomainHandle) -> Result<(), crate::Errno> {
    let mut op = XenDomctl::new(XEN_DOMCTL_SETDOMAINHANDLE, domid);
    op.u.setdomainhandle = XenDomctlSetdomainhandle { handle };
    // SAFETY: no guest handle in the payload.
    unsafe { domctl(&mut op) }?;
    Ok(())
}

/// Sets `domid`'s TSC mode and frequency.
///
/// # Safety
/// The caller must be privileged over `domid`.
#[cfg(target_arch = "x86_64")]
pub unsafe fn settscinfo(domid: DomId, info: &XenDomctlTscInfo) -> Result<(), crate::Errno> {
    let mut op = XenDomctl::new(XEN_DOMCTL_SETTSCINFO, domid);
    op.u.tsc_info = *info;
    // SAFETY: no guest handle in the payload.
    unsafe { domctl(&mut op) }?;
    Ok(())
}

/// Has Xen write hypercall stubs into frame `gmfn` of `domid` (the page a PV
/// guest names in its `XEN_ELFNOTE_HYPERCALL_PAGE` note).
///
/// # Safety
/// The frame must belong to `domid` and hold nothing else.
#[cfg(target_arch = "x86_64")]
pub unsafe fn hypercall_init(domid: DomId, gmfn: u64) -> Result<(), crate::Errno> {
    let mut op = XenDomctl::new(XEN_DOMCTL_HYPERCALL_INIT, domid);
    op.u.hypercall_init = XenDomctlHypercallInit { gmfn };
    // SAFETY: no guest handle in the payload; the caller vouches for the frame.
    unsafe { domctl(&mut op) }?;
    Ok(())
}

/// Returns the state of `vcpu` of `domid`.
///
/// # Safety
/// The caller must be privileged over `domid`.
#[cfg(target_arch = "x86_64")]
pub unsafe fn getvcpuinfo(domid: DomId, vcpu: u32) -> Result<XenDomctlGetvcpuinfo, crate::Errno> {
    let mut op = XenDomctl::new(XEN_DOMCTL_GETVCPUINFO, domid);
    op.u.getvcpuinfo = XenDomctlGetvcpuinfo {
        vcpu,
        ..XenDomctlGetvcpuinfo::default()
    };
    // SAFETY: no guest handle in the payload.
    unsafe { domctl(&mut op) }?;
    // SAFETY: Xen filled the getvcpuinfo member, all of whose bit patterns are valid.
    Ok(unsafe { op.u.getvcpuinfo })
}

/// Lets `domid` control `target` (a device model or driver domain's guest).
///
/// # Safety
/// Grants `domid` privilege over `target`.
#[cfg(target_arch = "x86_64")]
pub unsafe fn set_target(domid: DomId, target: DomId) -> Result<(), crate::Errno> {
    let mut op = XenDomctl::new(XEN_DOMCTL_SET_TARGET, domid);
    op.u.set_target = XenDomctlSetTarget { target };
    // SAFETY: no guest handle in the payload; the caller vouches for the grant.
    unsafe { domctl(&mut op) }?;
    Ok(())
}

/// A credit or credit2 scheduler's parameters of a domain: (weight, cap).
/// `sched_id` must be the running scheduler's ([`crate::sysctl::sched_id`]);
/// other schedulers have no weight (EINVAL here).
fn credit_member(sched_id: u32) -> Result<(), crate::Errno> {
    match sched_id {
        XEN_SCHEDULER_CREDIT | XEN_SCHEDULER_CREDIT2 => Ok(()),
        _ => Err(crate::Errno::EINVAL),
    }
}

/// Sets `domid`'s weight and cap under credit or credit2 `sched_id`
/// (`XEN_DOMCTL_SCHEDOP_putinfo`; credit2 checks `cap` ≤ 100 × vCPUs).
///
/// # Safety
/// The caller must be privileged over `domid`.
#[cfg(target_arch = "x86_64")]
pub unsafe fn sched_credit_putinfo(
    domid: DomId,
    sched_id: u32,
    weight: u16,
    cap: u16,
) -> Result<(), crate::Errno> {
    credit_member(sched_id)?;
    let mut op = XenDomctl::new(XEN_DOMCTL_SCHEDULER_OP, domid);
    // credit and credit2 share one layout; the member follows `sched_id`.
    let u = if sched_id == XEN_SCHEDULER_CREDIT {
        XenDomctlSchedulerOpU {
            credit: XenDomctlSchedCredit { weight, cap },
        }
    } else {
        XenDomctlSchedulerOpU {
            credit2: XenDomctlSchedCredit2 { weight, cap },
        }
    };
    op.u.scheduler_op = XenDomctlSchedulerOp {
        sched_id,
        cmd: XEN_DOMCTL_SCHEDOP_PUTINFO,
        u,
    };
    // SAFETY: no guest handle in the credit/credit2 members.
    unsafe { domctl(&mut op) }?;
    Ok(())
}

/// Reads `domid`'s (weight, cap) under credit or credit2 `sched_id`
/// (`XEN_DOMCTL_SCHEDOP_getinfo`).
///
/// # Safety
/// The caller must be privileged over `domid`.
#[cfg(target_arch = "x86_64")]
pub unsafe fn sched_credit_getinfo(
    domid: DomId,
    sched_id: u32,
) -> Result<(u16, u16), crate::Errno> {
    credit_member(sched_id)?;
    let mut op = XenDomctl::new(XEN_DOMCTL_SCHEDULER_OP, domid);
    op.u.scheduler_op = XenDomctlSchedulerOp {
        sched_id,
        cmd: XEN_DOMCTL_SCHEDOP_GETINFO,
        u: XenDomctlSchedulerOpU { pad: [0; 2] },
    };
    // SAFETY: no guest handle in the credit/credit2 members.
    unsafe { domctl(&mut op) }?;
    // SAFETY: Xen wrote the scheduler_op member; both credit members are
    // two u16s, valid for any bits.
    let got = unsafe { op.u.scheduler_op.u.credit2 };
    Ok((got.weight, got.cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_sets_the_interface_version_and_zeroes_the_payload() {
        let op = XenDomctl::new(XEN_DOMCTL_GETDOMAININFO, 7);
        assert_eq!(op.cmd, XEN_DOMCTL_GETDOMAININFO);
        assert_eq!(op.interface_version, 0x15);
        assert_eq!(op.domain, 7);
        // SAFETY: `pad` covers the whole union, initialised by `new`.
        assert!(unsafe { op.u.pad }.iter().all(|b| *b == 0));
    }

    #[test]
    fn only_the_credit_schedulers_have_weights() {
        assert!(credit_member(XEN_SCHEDULER_CREDIT).is_ok());
        assert!(credit_member(XEN_SCHEDULER_CREDIT2).is_ok());
        assert_eq!(credit_member(XEN_SCHEDULER_RTDS), Err(crate::Errno::EINVAL));
        assert_eq!(credit_member(XEN_SCHEDULER_NULL), Err(crate::Errno::EINVAL));
    }
}

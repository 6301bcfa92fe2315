//! The payload structs of `struct xen_domctl`'s union (xen/include/public/domctl.h).
//!
//! Read first: xen/include/public/domctl.h and arch-x86/xen.h
//! (`xen_arch_domainconfig`). Only the payloads the toolstack uses are
//! defined; [`crate::domctl::DomctlU::pad`] reaches the others as raw bytes.
//! `XEN_GUEST_HANDLE_64(T)` is an 8-byte, 8-aligned pointer on x86_64, so it
//! is a raw pointer here.

use crate::vcpu::VcpuGuestContext;
use crate::xen::DomId;

pub use xen_abi::domctl::*;

/// `xen_domain_handle_t`: the domain's 16-byte UUID.
pub type XenDomainHandle = [u8; 16];

/// `XEN_INVALID_MAX_VCPU_ID`: the domain has no vCPU.
pub const XEN_INVALID_MAX_VCPU_ID: u32 = !0;

/// `XEN_DOMCTL_DEV_PCI`
pub const XEN_DOMCTL_DEV_PCI: u32 = 0;
/// `XEN_DOMCTL_DEV_DT`
pub const XEN_DOMCTL_DEV_DT: u32 = 1;
/// `XEN_DOMCTL_DEV_RDM_RELAXED`
pub const XEN_DOMCTL_DEV_RDM_RELAXED: u32 = 1;

/// `PT_IRQ_TYPE_PCI` (`enum pt_irq_type`)
pub const PT_IRQ_TYPE_PCI: u32 = 0;
/// `PT_IRQ_TYPE_ISA`
pub const PT_IRQ_TYPE_ISA: u32 = 1;
/// `PT_IRQ_TYPE_MSI`
pub const PT_IRQ_TYPE_MSI: u32 = 2;
/// `PT_IRQ_TYPE_MSI_TRANSLATE`
pub const PT_IRQ_TYPE_MSI_TRANSLATE: u32 = 3;
/// `PT_IRQ_TYPE_SPI` (Arm)
pub const PT_IRQ_TYPE_SPI: u32 = 4;

/// `DPCI_ADD_MAPPING`
pub const DPCI_ADD_MAPPING: u32 = 1;
/// `DPCI_REMOVE_MAPPING`
pub const DPCI_REMOVE_MAPPING: u32 = 0;

/// `struct xen_arch_domainconfig` (x86, arch-x86/xen.h).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenArchDomainconfig {
    /// `XEN_X86_EMU_*`: 0 for PV, `XEN_X86_EMU_LAPIC` for PVH.
    pub emulation_flags: u32,
    /// `XEN_X86_MSR_RELAXED`.
    pub misc_flags: u32,
}

/// `struct xen_domctl_createdomain`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlCreatedomain {
    /// XSM security id (0 without XSM).
    pub ssidref: u32,
    /// The domain's UUID.
    pub handle: XenDomainHandle,
    /// `XEN_DOMCTL_CDF_*`.
    pub flags: u32,
    /// `XEN_DOMCTL_IOMMU_*`.
    pub iommu_opts: u32,
    /// Maximum vCPUs.
    pub max_vcpus: u32,
    /// Highest event channel port.
    pub max_evtchn_port: u32,
    /// Grant table frames (-1: Xen's default).
    pub max_grant_frames: i32,
    /// Maptrack frames (-1: Xen's default).
    pub max_maptrack_frames: i32,
    /// `XEN_DOMCTL_GRANT_version(v)`: the highest grant version allowed.
    pub grant_opts: u32,
    /// Per-vCPU trace buffer bytes (0: none).
    pub vmtrace_size: u32,
    /// CPU pool (0: the default).
    pub cpupool_id: u32,
    /// x86 configuration.
    pub arch: XenArchDomainconfig,
}

/// `XEN_DOMCTL_GRANT_version(v)`: `grant_opts` allowing grant versions up to `v`.
pub const fn xen_domctl_grant_version(v: u32) -> u32 {
    v & XEN_DOMCTL_GRANT_VERSION_MASK
}

impl XenDomctlCreatedomain {
    /// A PV domain: no emulated devices, grant v1 at most, Xen's default
    /// grant and maptrack limits (-1), event channels 0..=1023 (xl's default).
    /// Add `XEN_DOMCTL_CDF_iommu` to `flags` for a domain that gets devices.
    pub fn pv(max_vcpus: u32) -> Self {
        XenDomctlCreatedomain {
            max_vcpus,
            max_evtchn_port: 1023,
            max_grant_frames: -1,
            max_maptrack_frames: -1,
            grant_opts: xen_domctl_grant_version(1),
            ..XenDomctlCreatedomain::default()
        }
    }

    /// A PVH domain: HVM container with hardware paging and only the local
    /// APIC emulated (`XEN_X86_EMU_LAPIC`); other limits as [`Self::pv`].
    pub fn pvh(max_vcpus: u32) -> Self {
        XenDomctlCreatedomain {
            flags: XEN_DOMCTL_CDF_HVM | XEN_DOMCTL_CDF_HAP,
            arch: XenArchDomainconfig {
                emulation_flags: XEN_X86_EMU_LAPIC,
                misc_flags: 0,
            },
            ..Self::pv(max_vcpus)
        }
    }
}

/// `struct xen_domctl_getdomaininfo`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlGetdomaininfo {
    /// The domain (also in `xen_domctl.domain`).
    pub domain: DomId,
    /// Padding.
    pub pad1: u16,
    /// `XEN_DOMINF_*`.
    pub flags: u32,
    /// Pages allocated.
    pub tot_pages: u64,
    /// Page limit.
    pub max_pages: u64,
    /// Outstanding claim.
    pub outstanding_pages: u64,
    /// Shared pages.
    pub shr_pages: u64,
    /// Paged-out pages.
    pub paged_pages: u64,
    /// GMFN of the shared_info page.
    pub shared_info_frame: u64,
    /// CPU time used (ns).
    pub cpu_time: u64,
    /// vCPUs online.
    pub nr_online_vcpus: u32,
    /// Highest vCPU id (`XEN_INVALID_MAX_VCPU_ID` if none).
    pub max_vcpu_id: u32,
    /// XSM security id.
    pub ssidref: u32,
    /// UUID.
    pub handle: XenDomainHandle,
    /// CPU pool.
    pub cpupool: u32,
    /// Guest physical address bits.
    pub gpaddr_bits: u8,
    /// Padding.
    pub pad2: [u8; 7],
    /// x86 configuration.
    pub arch_config: XenArchDomainconfig,
}

/// `struct xen_domctl_max_mem`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlMaxMem {
    /// Limit in KiB.
    pub max_memkb: u64,
}

/// `struct xen_domctl_vcpucontext` (set/getvcpucontext).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct XenDomctlVcpucontext {
    /// The vCPU.
    pub vcpu: u32,
    /// Guest handle, IN/OUT: the context (null on set: reset the vCPU).
    pub ctxt: *mut VcpuGuestContext,
}

/// `struct xen_domctl_getvcpuinfo`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlGetvcpuinfo {
    /// IN: the vCPU.
    pub vcpu: u32,
    /// OUT: online.
    pub online: u8,
    /// OUT: blocked on an event.
    pub blocked: u8,
    /// OUT: running now.
    pub running: u8,
    /// OUT: CPU time (ns).
    pub cpu_time: u64,
    /// OUT: the physical CPU.
    pub cpu: u32,
}

/// `struct xen_domctl_max_vcpus`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlMaxVcpus {
    /// Maximum vCPUs.
    pub max: u32,
}

/// `struct xen_domctl_setdomainhandle`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlSetdomainhandle {
    /// The new UUID.
    pub handle: XenDomainHandle,
}

/// `struct xen_domctl_irq_permission`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlIrqPermission {
    /// The pirq.
    pub pirq: u32,
    /// Non-zero grants, zero revokes.
    pub allow_access: u8,
    /// Padding.
    pub pad: [u8; 3],
}

/// `struct xen_domctl_iomem_permission`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlIomemPermission {
    /// First machine frame.
    pub first_mfn: u64,
    /// Number of frames (> 0).
    pub nr_mfns: u64,
    /// Non-zero grants, zero revokes.
    pub allow_access: u8,
}

/// `struct xen_domctl_ioport_permission`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlIoportPermission {
    /// First port.
    pub first_port: u32,
    /// Number of ports.
    pub nr_ports: u32,
    /// Non-zero grants, zero revokes.
    pub allow_access: u8,
}

/// `struct xen_domctl_hypercall_init`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlHypercallInit {
    /// GMFN Xen fills with hypercall stubs.
    pub gmfn: u64,
}

/// `struct xen_domctl_settimeoffset`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlSettimeoffset {
    /// Seconds added to the domain's wallclock.
    pub time_offset_seconds: i64,
}

/// `struct xen_domctl_address_size` (set/get_address_size)
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlAddressSize {
    /// 32 or 64 (a 64-bit PV guest is 64 by default).
    pub size: u32,
}

/// `xen_domctl_assign_device.u.pci`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlAssignDevicePci {
    /// Machine SBDF: `seg << 16 | bus << 8 | devfn`.
    pub machine_sbdf: u32,
}

/// `xen_domctl_assign_device.u.dt`
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct XenDomctlAssignDeviceDt {
    /// Length of the path.
    pub size: u32,
    /// Guest handle: the device-tree path.
    pub path: *const u8,
}

/// `xen_domctl_assign_device.u`
#[repr(C)]
#[derive(Clone, Copy)]
pub union XenDomctlAssignDeviceU {
    /// `XEN_DOMCTL_DEV_PCI`
    pub pci: XenDomctlAssignDevicePci,
    /// `XEN_DOMCTL_DEV_DT`
    pub dt: XenDomctlAssignDeviceDt,
}

/// `struct xen_domctl_assign_device` (assign, test_assign, deassign)
#[repr(C)]
#[derive(Clone, Copy)]
pub struct XenDomctlAssignDevice {
    /// `XEN_DOMCTL_DEV_*`.
    pub dev: u32,
    /// `XEN_DOMCTL_DEV_RDM_RELAXED`.
    pub flags: u32,
    /// The device.
    pub u: XenDomctlAssignDeviceU,
}

impl XenDomctlAssignDevice {
    /// A PCI device by segment, bus, device and function.
    pub fn pci(seg: u16, bus: u8, devfn: u8) -> Self {
        XenDomctlAssignDevice {
            dev: XEN_DOMCTL_DEV_PCI,
            flags: 0,
            u: XenDomctlAssignDeviceU {
                pci: XenDomctlAssignDevicePci {
                    machine_sbdf: u32::from(seg) << 16 | u32::from(bus) << 8 | u32::from(devfn),
                },
            },
        }
    }
}

/// `xen_domctl_bind_pt_irq.u.isa`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlBindPtIrqIsa {
    /// ISA IRQ.
    pub isa_irq: u8,
}

/// `xen_domctl_bind_pt_irq.u.pci`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlBindPtIrqPci {
    /// Guest bus.
    pub bus: u8,
    /// Guest device.
    pub device: u8,
    /// INTx pin.
    pub intx: u8,
}

/// `xen_domctl_bind_pt_irq.u.msi`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlBindPtIrqMsi {
    /// Guest vector.
    pub gvec: u8,
    /// `XEN_DOMCTL_VMSI_X86_*`.
    pub gflags: u32,
    /// Guest MSI-X table address.
    pub gtable: u64,
}

/// `xen_domctl_bind_pt_irq.u.spi`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlBindPtIrqSpi {
    /// Arm SPI.
    pub spi: u16,
}

/// `xen_domctl_bind_pt_irq.u`
#[repr(C)]
#[derive(Clone, Copy)]
pub union XenDomctlBindPtIrqU {
    /// `PT_IRQ_TYPE_ISA`
    pub isa: XenDomctlBindPtIrqIsa,
    /// `PT_IRQ_TYPE_PCI`
    pub pci: XenDomctlBindPtIrqPci,
    /// `PT_IRQ_TYPE_MSI`
    pub msi: XenDomctlBindPtIrqMsi,
    /// `PT_IRQ_TYPE_SPI`
    pub spi: XenDomctlBindPtIrqSpi,
}

/// `struct xen_domctl_bind_pt_irq` (bind/unbind_pt_irq; HVM guests)
#[repr(C)]
#[derive(Clone, Copy)]
pub struct XenDomctlBindPtIrq {
    /// Machine IRQ (pirq).
    pub machine_irq: u32,
    /// `PT_IRQ_TYPE_*`.
    pub irq_type: u32,
    /// Per-type guest routing.
    pub u: XenDomctlBindPtIrqU,
}

/// `struct xen_domctl_memory_mapping`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlMemoryMapping {
    /// First guest frame.
    pub first_gfn: u64,
    /// First machine frame.
    pub first_mfn: u64,
    /// Number of frames.
    pub nr_mfns: u64,
    /// `DPCI_ADD_MAPPING` or `DPCI_REMOVE_MAPPING`.
    pub add_mapping: u32,
    /// Padding.
    pub padding: u32,
}

/// `struct xen_domctl_set_target`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlSetTarget {
    /// The domain this one may control (a device model's guest).
    pub target: DomId,
}

/// `struct xen_domctl_tsc_info` (get/settscinfo)
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlTscInfo {
    /// `XEN_CPUID_TSC_MODE_*` (0 default, 1 always emulate, 2 never emulate).
    pub tsc_mode: u32,
    /// Guest TSC frequency (kHz).
    pub gtsc_khz: u32,
    /// Incarnation (migrations).
    pub incarnation: u32,
    /// Padding.
    pub pad: u32,
    /// Elapsed ns.
    pub elapsed_nsec: u64,
}

/// `struct xen_domctl_set_virq_handler`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlSetVirqHandler {
    /// The global `VIRQ_*` this domain will receive.
    pub virq: u32,
}

/// `struct xen_domctl_paging_mempool` (get/set_paging_mempool_size)
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlPagingMempool {
    /// Size in bytes.
    pub size: u64,
}

/// `struct xen_domctl_hvmcontext` (get/sethvmcontext): a buffer of HVM
/// save records.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct XenDomctlHvmcontext {
    /// IN: the buffer's size; OUT (get): bytes filled, or needed when
    /// `buffer` is null.
    pub size: u32,
    /// Padding (the handle is 8-byte aligned).
    pub pad: u32,
    /// Guest handle (`XEN_GUEST_HANDLE_64(uint8)`): the records.
    pub buffer: *mut u8,
}

/// `XEN_SCHEDULER_CREDIT`: the credit (credit1) scheduler.
pub const XEN_SCHEDULER_CREDIT: u32 = 5;
/// `XEN_SCHEDULER_CREDIT2`: the credit2 scheduler (Xen 4.17's default).
pub const XEN_SCHEDULER_CREDIT2: u32 = 6;
/// `XEN_SCHEDULER_ARINC653`
pub const XEN_SCHEDULER_ARINC653: u32 = 7;
/// `XEN_SCHEDULER_RTDS`
pub const XEN_SCHEDULER_RTDS: u32 = 8;
/// `XEN_SCHEDULER_NULL`
pub const XEN_SCHEDULER_NULL: u32 = 9;

/// `XEN_DOMCTL_SCHEDOP_putinfo`: sets the domain's parameters (all vCPUs).
pub const XEN_DOMCTL_SCHEDOP_PUTINFO: u32 = 0;
/// `XEN_DOMCTL_SCHEDOP_getinfo`: reads the domain's parameters.
pub const XEN_DOMCTL_SCHEDOP_GETINFO: u32 = 1;
/// `XEN_DOMCTL_SCHEDOP_putvcpuinfo`
pub const XEN_DOMCTL_SCHEDOP_PUTVCPUINFO: u32 = 2;
/// `XEN_DOMCTL_SCHEDOP_getvcpuinfo`
pub const XEN_DOMCTL_SCHEDOP_GETVCPUINFO: u32 = 3;

/// `struct xen_domctl_sched_credit` (credit1): a domain's share.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlSchedCredit {
    /// Relative weight (1..=65535; Xen's default 256). 0 in putinfo
    /// leaves it unchanged.
    pub weight: u16,
    /// Cap in percent of one physical CPU (0: no cap).
    pub cap: u16,
}

/// `struct xen_domctl_sched_credit2`: the same two fields as credit1's.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlSchedCredit2 {
    /// Relative weight (1..=65535; Xen's default 256). 0 in putinfo
    /// leaves it unchanged.
    pub weight: u16,
    /// Cap in percent of one physical CPU, at most 100 × vCPUs (0: no cap).
    pub cap: u16,
}

/// `xen_domctl_scheduler_op.u`: the parameters of the scheduler named by
/// `sched_id` (16 bytes: the largest member is the per-vCPU handle form).
#[repr(C)]
#[derive(Clone, Copy)]
pub union XenDomctlSchedulerOpU {
    /// `XEN_SCHEDULER_CREDIT`
    pub credit: XenDomctlSchedCredit,
    /// `XEN_SCHEDULER_CREDIT2`
    pub credit2: XenDomctlSchedCredit2,
    /// The other members (rtds, the per-vCPU array), as raw bytes.
    pub pad: [u64; 2],
}

/// `struct xen_domctl_scheduler_op` (`XEN_DOMCTL_scheduler_op`). Xen
/// refuses (EINVAL) a `sched_id` other than the domain's scheduler's.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct XenDomctlSchedulerOp {
    /// `XEN_SCHEDULER_*` of the domain's cpupool.
    pub sched_id: u32,
    /// `XEN_DOMCTL_SCHEDOP_*`.
    pub cmd: u32,
    /// IN (put) / OUT (get): the parameters.
    pub u: XenDomctlSchedulerOpU,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn createdomain_presets() {
        let pv = XenDomctlCreatedomain::pv(2);
        assert_eq!(pv.flags, 0);
        assert_eq!(pv.max_vcpus, 2);
        assert_eq!(pv.grant_opts, 1);
        assert_eq!(pv.arch.emulation_flags, 0);
        let pvh = XenDomctlCreatedomain::pvh(1);
        assert_eq!(pvh.flags, XEN_DOMCTL_CDF_HVM | XEN_DOMCTL_CDF_HAP);
        assert_eq!(pvh.arch.emulation_flags, XEN_X86_EMU_LAPIC);
        assert_eq!(pvh.max_grant_frames, -1);
    }

    #[test]
    fn pci_sbdf_packs_segment_bus_devfn() {
        let dev = XenDomctlAssignDevice::pci(0x0001, 0x02, 0x28);
        assert_eq!(dev.dev, XEN_DOMCTL_DEV_PCI);
        // SAFETY: `pci` is the member the constructor wrote.
        assert_eq!(unsafe { dev.u.pci.machine_sbdf }, 0x0001_0228);
    }
}

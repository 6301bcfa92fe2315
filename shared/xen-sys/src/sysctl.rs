//! `sysctl` (xen/include/public/sysctl.h): host-wide queries of the toolstack
//! (physical info, the domain list, Xen's console ring).
//!
//! Read first: xen/include/public/sysctl.h. Tools-only and versioned like
//! domctl: Xen 4.17 accepts only `XEN_SYSCTL_INTERFACE_VERSION` 0x15.

use crate::domctl_payloads::XenDomctlGetdomaininfo;
#[cfg(target_arch = "x86_64")]
use crate::hypercall;
use crate::xen::DomId;

/// `XEN_SYSCTL_INTERFACE_VERSION` of Xen 4.17.
pub const XEN_SYSCTL_INTERFACE_VERSION: u32 = 0x15;

/// `XEN_SYSCTL_readconsole`
pub const XEN_SYSCTL_READCONSOLE: u32 = 1;
/// `XEN_SYSCTL_tbuf_op`
pub const XEN_SYSCTL_TBUF_OP: u32 = 2;
/// `XEN_SYSCTL_physinfo`
pub const XEN_SYSCTL_PHYSINFO: u32 = 3;
/// `XEN_SYSCTL_sched_id`
pub const XEN_SYSCTL_SCHED_ID: u32 = 4;
/// `XEN_SYSCTL_perfc_op`
pub const XEN_SYSCTL_PERFC_OP: u32 = 5;
/// `XEN_SYSCTL_getdomaininfolist`
pub const XEN_SYSCTL_GETDOMAININFOLIST: u32 = 6;
/// `XEN_SYSCTL_debug_keys`
pub const XEN_SYSCTL_DEBUG_KEYS: u32 = 7;
/// `XEN_SYSCTL_getcpuinfo`
pub const XEN_SYSCTL_GETCPUINFO: u32 = 8;
/// `XEN_SYSCTL_availheap`
pub const XEN_SYSCTL_AVAILHEAP: u32 = 9;
/// `XEN_SYSCTL_cputopoinfo`
pub const XEN_SYSCTL_CPUTOPOINFO: u32 = 16;
/// `XEN_SYSCTL_numainfo`
pub const XEN_SYSCTL_NUMAINFO: u32 = 17;
/// `XEN_SYSCTL_cpupool_op`
pub const XEN_SYSCTL_CPUPOOL_OP: u32 = 18;
/// `XEN_SYSCTL_scheduler_op`
pub const XEN_SYSCTL_SCHEDULER_OP: u32 = 19;
/// `XEN_SYSCTL_pcitopoinfo`
pub const XEN_SYSCTL_PCITOPOINFO: u32 = 22;
/// `XEN_SYSCTL_get_cpu_featureset`
pub const XEN_SYSCTL_GET_CPU_FEATURESET: u32 = 26;
/// `XEN_SYSCTL_get_cpu_policy`
pub const XEN_SYSCTL_GET_CPU_POLICY: u32 = 29;

/// `XEN_SYSCTL_PHYSCAP_hvm`
pub const XEN_SYSCTL_PHYSCAP_HVM: u32 = 1 << 0;
/// `XEN_SYSCTL_PHYSCAP_pv`
pub const XEN_SYSCTL_PHYSCAP_PV: u32 = 1 << 1;
/// `XEN_SYSCTL_PHYSCAP_directio`
pub const XEN_SYSCTL_PHYSCAP_DIRECTIO: u32 = 1 << 2;
/// `XEN_SYSCTL_PHYSCAP_hap`
pub const XEN_SYSCTL_PHYSCAP_HAP: u32 = 1 << 3;
/// `XEN_SYSCTL_PHYSCAP_shadow`
pub const XEN_SYSCTL_PHYSCAP_SHADOW: u32 = 1 << 4;
/// `XEN_SYSCTL_PHYSCAP_iommu_hap_pt_share`
pub const XEN_SYSCTL_PHYSCAP_IOMMU_HAP_PT_SHARE: u32 = 1 << 5;
/// `XEN_SYSCTL_PHYSCAP_vmtrace`
pub const XEN_SYSCTL_PHYSCAP_VMTRACE: u32 = 1 << 6;
/// `XEN_SYSCTL_PHYSCAP_vpmu`
pub const XEN_SYSCTL_PHYSCAP_VPMU: u32 = 1 << 7;
/// `XEN_SYSCTL_PHYSCAP_gnttab_v1`
pub const XEN_SYSCTL_PHYSCAP_GNTTAB_V1: u32 = 1 << 8;
/// `XEN_SYSCTL_PHYSCAP_gnttab_v2`
pub const XEN_SYSCTL_PHYSCAP_GNTTAB_V2: u32 = 1 << 9;

/// `struct xen_sysctl_readconsole`: read (and optionally clear) Xen's console ring.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct XenSysctlReadconsole {
    /// IN: non-zero clears the ring after reading.
    pub clear: u8,
    /// IN: non-zero starts at `index`.
    pub incremental: u8,
    /// Padding.
    pub pad0: u8,
    /// Padding.
    pub pad1: u8,
    /// IN: start index (with `incremental`); OUT: the next index.
    pub index: u32,
    /// Guest handle, IN: where Xen writes the bytes.
    pub buffer: *mut u8,
    /// IN: buffer size; OUT: bytes written.
    pub count: u32,
}

/// `struct xen_sysctl_physinfo`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenSysctlPhysinfo {
    /// Threads per core.
    pub threads_per_core: u32,
    /// Cores per socket.
    pub cores_per_socket: u32,
    /// CPUs online.
    pub nr_cpus: u32,
    /// Largest possible CPU id.
    pub max_cpu_id: u32,
    /// NUMA nodes online.
    pub nr_nodes: u32,
    /// Largest possible node id.
    pub max_node_id: u32,
    /// CPU frequency (kHz).
    pub cpu_khz: u32,
    /// `XEN_SYSCTL_PHYSCAP_*`.
    pub capabilities: u32,
    /// Architecture-specific capabilities.
    pub arch_capabilities: u32,
    /// Padding.
    pub pad: u32,
    /// Pages of RAM.
    pub total_pages: u64,
    /// Free pages.
    pub free_pages: u64,
    /// Pages waiting to be scrubbed.
    pub scrub_pages: u64,
    /// Outstanding claims.
    pub outstanding_pages: u64,
    /// Largest possible MFN.
    pub max_mfn: u64,
    /// CPU feature words.
    pub hw_cap: [u32; 8],
}

/// `struct xen_sysctl_getdomaininfolist`
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct XenSysctlGetdomaininfolist {
    /// IN: first domid to report.
    pub first_domain: DomId,
    /// IN: capacity of `buffer`.
    pub max_domains: u32,
    /// Guest handle, OUT: the entries.
    pub buffer: *mut XenDomctlGetdomaininfo,
    /// OUT: entries written.
    pub num_domains: u32,
}

/// `struct xen_sysctl_sched_id`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenSysctlSchedId {
    /// OUT: `XEN_SCHEDULER_*`.
    pub sched_id: u32,
}

/// `struct xen_sysctl_cpuinfo`: one physical CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenSysctlCpuinfo {
    /// OUT: the time the CPU spent idle since boot, ns.
    pub idletime: u64,
}

/// `struct xen_sysctl_getcpuinfo`
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct XenSysctlGetcpuinfo {
    /// IN: capacity of `info`.
    pub max_cpus: u32,
    /// Guest handle, OUT: one entry per CPU.
    pub info: *mut XenSysctlCpuinfo,
    /// OUT: entries written.
    pub nr_cpus: u32,
}

/// `xen_sysctl.u`: the payload of each command, 128 bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub union SysctlU {
    /// `XEN_SYSCTL_readconsole`
    pub readconsole: XenSysctlReadconsole,
    /// `XEN_SYSCTL_physinfo`
    pub physinfo: XenSysctlPhysinfo,
    /// `XEN_SYSCTL_getdomaininfolist`
    pub getdomaininfolist: XenSysctlGetdomaininfolist,
    /// `XEN_SYSCTL_sched_id`
    pub sched_id: XenSysctlSchedId,
    /// `XEN_SYSCTL_getcpuinfo`
    pub getcpuinfo: XenSysctlGetcpuinfo,
    /// Every other payload, as raw bytes.
    pub pad: [u8; 128],
    /// Forces the 8-byte alignment the C union has (`uint64_aligned_t`).
    pub align: [u64; 16],
}

/// `struct xen_sysctl` (136 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct XenSysctl {
    /// `XEN_SYSCTL_*`.
    pub cmd: u32,
    /// `XEN_SYSCTL_INTERFACE_VERSION`.
    pub interface_version: u32,
    /// The payload.
    pub u: SysctlU,
}

impl XenSysctl {
    /// A zeroed sysctl for `cmd`, with the interface version set.
    pub fn new(cmd: u32) -> Self {
        XenSysctl {
            cmd,
            interface_version: XEN_SYSCTL_INTERFACE_VERSION,
            u: SysctlU { pad: [0; 128] },
        }
    }
}

// As for `XenDomctl`: the full check is tests/abi_layout.rs.
const _: () = assert!(core::mem::size_of::<XenSysctl>() == 136);

/// Issues `sysctl`. Returns Xen's non-negative result.
///
/// # Safety
/// The caller must be privileged; every guest handle in the payload must
/// point to memory valid for the access Xen makes, for the duration of the call.
#[cfg(target_arch = "x86_64")]
pub unsafe fn sysctl(op: &mut XenSysctl) -> Result<u64, crate::Errno> {
    let arg: *mut XenSysctl = op;
    // SAFETY: `op` lives across the call; the caller vouches for its handles.
    crate::Errno::check(unsafe { hypercall::hypercall1(hypercall::SYSCTL, arg as u64) })
}

/// Returns the host's physical info.
///
/// # Safety
/// The caller must be privileged.
#[cfg(target_arch = "x86_64")]
pub unsafe fn physinfo() -> Result<XenSysctlPhysinfo, crate::Errno> {
    let mut op = XenSysctl::new(XEN_SYSCTL_PHYSINFO);
    // SAFETY: the physinfo payload has no guest handle.
    unsafe { sysctl(&mut op) }?;
    // SAFETY: Xen filled the physinfo member, all of whose bit patterns are valid.
    Ok(unsafe { op.u.physinfo })
}

/// Fills `buf` with info on domains from `first_domain` up; returns how many.
///
/// # Safety
/// The caller must be privileged.
#[cfg(target_arch = "x86_64")]
pub unsafe fn getdomaininfolist(
    first_domain: DomId,
    buf: &mut [XenDomctlGetdomaininfo],
) -> Result<usize, crate::Errno> {
    let mut op = XenSysctl::new(XEN_SYSCTL_GETDOMAININFOLIST);
    op.u.getdomaininfolist = XenSysctlGetdomaininfolist {
        first_domain,
        max_domains: buf.len() as u32,
        buffer: buf.as_mut_ptr(),
        num_domains: 0,
    };
    // SAFETY: the handle points to `buf` (max_domains entries), alive across the call.
    unsafe { sysctl(&mut op) }?;
    // SAFETY: Xen wrote num_domains in the member we filled.
    let n = unsafe { op.u.getdomaininfolist.num_domains };
    Ok((n as usize).min(buf.len()))
}

/// Fills `buf` with each physical CPU's idle time; returns how many CPUs
/// Xen reported (at most `buf.len()`).
///
/// # Safety
/// The caller must be privileged.
#[cfg(target_arch = "x86_64")]
pub unsafe fn getcpuinfo(buf: &mut [XenSysctlCpuinfo]) -> Result<usize, crate::Errno> {
    let mut op = XenSysctl::new(XEN_SYSCTL_GETCPUINFO);
    op.u.getcpuinfo = XenSysctlGetcpuinfo {
        max_cpus: buf.len() as u32,
        info: buf.as_mut_ptr(),
        nr_cpus: 0,
    };
    // SAFETY: the handle points to `buf` (max_cpus entries), alive across the call.
    unsafe { sysctl(&mut op) }?;
    // SAFETY: Xen wrote nr_cpus in the member we filled.
    let n = unsafe { op.u.getcpuinfo.nr_cpus };
    Ok((n as usize).min(buf.len()))
}

/// The id (`XEN_SCHEDULER_*`) of the scheduler of the default cpupool
/// (`XEN_SYSCTL_sched_id`): what `XEN_DOMCTL_scheduler_op` must name.
///
/// # Safety
/// The caller must be privileged.
#[cfg(target_arch = "x86_64")]
pub unsafe fn sched_id() -> Result<u32, crate::Errno> {
    let mut op = XenSysctl::new(XEN_SYSCTL_SCHED_ID);
    // SAFETY: the sched_id payload has no guest handle.
    unsafe { sysctl(&mut op) }?;
    // SAFETY: Xen filled the sched_id member, a u32.
    Ok(unsafe { op.u.sched_id }.sched_id)
}

/// Copies Xen's console ring from `*index` into `buf`; updates `*index` and
/// returns the bytes written.
///
/// # Safety
/// The caller must be privileged.
#[cfg(target_arch = "x86_64")]
pub unsafe fn readconsole(index: &mut u32, buf: &mut [u8]) -> Result<usize, crate::Errno> {
    let mut op = XenSysctl::new(XEN_SYSCTL_READCONSOLE);
    op.u.readconsole = XenSysctlReadconsole {
        clear: 0,
        incremental: 1,
        pad0: 0,
        pad1: 0,
        index: *index,
        buffer: buf.as_mut_ptr(),
        count: buf.len() as u32,
    };
    // SAFETY: the handle points to `buf` (count bytes), alive across the call.
    unsafe { sysctl(&mut op) }?;
    // SAFETY: Xen updated the readconsole member we filled.
    let out = unsafe { op.u.readconsole };
    *index = out.index;
    Ok((out.count as usize).min(buf.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_sets_the_interface_version_and_zeroes_the_payload() {
        let op = XenSysctl::new(XEN_SYSCTL_PHYSINFO);
        assert_eq!(op.interface_version, 0x15);
        // SAFETY: `pad` covers the whole union, initialised by `new`.
        assert!(unsafe { op.u.pad }.iter().all(|b| *b == 0));
    }
}

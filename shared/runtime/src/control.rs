//! Privileged control of other domains (dom0's toolstack): safe wrappers over
//! domctl, sysctl, memory_op and mmuext_op for a foreign domain.
//!
//! Read first: xen/include/public/domctl.h, sysctl.h, memory.h. These calls
//! change other domains, never our own memory: every buffer Xen reads or
//! writes is owned here for the duration of the call, so they are safe to
//! expose. Xen refuses them (EPERM) to an unprivileged caller.

use alloc::boxed::Box;
use alloc::vec::Vec;

use xen_sys::domctl::{self, XenDomctl};
use xen_sys::domctl_payloads::{
    XenDomctlCreatedomain, XenDomctlGetdomaininfo, XenDomctlGetvcpuinfo, XenDomctlHypercallInit,
};
use xen_sys::vcpu::VcpuGuestContext;
use xen_sys::xen::{DomId, MmuextOp};
use xen_sys::Errno;

/// Creates a domain with `config` as `domid`, or with the domid Xen picks
/// when `domid` is 0 (EEXIST while that domid is in use, a dying domain's
/// included).
pub fn create_domain(domid: DomId, config: &XenDomctlCreatedomain) -> Result<DomId, Errno> {
    // SAFETY: the payload carries no guest handle.
    unsafe { domctl::createdomain(domid, config) }
}

/// Destroys `domid`, retrying while Xen reports EAGAIN (it frees memory in
/// steps). Its pages go back to Xen.
pub fn destroy_domain(domid: DomId) -> Result<(), Errno> {
    loop {
        // SAFETY: affects only `domid`, which the caller owns.
        match unsafe { domctl::destroydomain(domid) } {
            Err(Errno::EAGAIN) => continue,
            other => return other,
        }
    }
}

/// Shuts `domid` down with `reason` (`SHUTDOWN_*`) as if it had asked.
pub fn remote_shutdown(domid: DomId, reason: u32) -> Result<(), Errno> {
    let arg = xen_sys::sched::SchedRemoteShutdown {
        domain_id: domid,
        reason,
    };
    // SAFETY: `arg` lives across the call; affects only `domid`.
    let ret = unsafe {
        xen_sys::hypercall::hypercall2(
            xen_sys::hypercall::SCHED_OP,
            u64::from(xen_sys::sched::SCHEDOP_REMOTE_SHUTDOWN),
            core::ptr::addr_of!(arg) as u64,
        )
    };
    Errno::check(ret).map(|_| ())
}

/// The machine frame of grant-table frame 0 of `domid` (setting the table
/// up if needed), for seeding its reserved entries.
pub fn grant_table_frame(domid: DomId) -> Result<u64, xen_sys::grant_table::GnttabError> {
    let mut frames = [0u64; 1];
    // SAFETY: `frames` lives across the call; affects only `domid`'s table.
    unsafe { xen_sys::grant_table::setup_table(domid, &mut frames) }?;
    Ok(frames[0])
}

/// Maps grant-table frame 0 of HVM domain `domid` at its guest frame
/// `gfn` (an unpopulated one), so the builder can seed the table through
/// an ordinary foreign mapping of `gfn`. Undo with [`remove_gfn`].
pub fn map_grant_table_at(domid: DomId, gfn: u64) -> Result<(), Errno> {
    // SAFETY: changes only `domid`'s physmap, at a frame the caller keeps
    // empty; no mapping of ours references it yet.
    unsafe {
        xen_sys::memory::add_to_physmap(domid, xen_sys::memory::XENMAPSPACE_GRANT_TABLE, 0, gfn)
    }
}

/// Empties guest frame `gfn` of HVM domain `domid`.
pub fn remove_gfn(domid: DomId, gfn: u64) -> Result<(), Errno> {
    // SAFETY: changes only `domid`'s physmap; the caller no longer maps
    // `gfn` (foreign mappings of ours are dropped before this).
    unsafe { xen_sys::memory::remove_from_physmap(domid, gfn) }
}

/// Assigns PCI device `bdf` to `domid` through the IOMMU (it leaves dom0,
/// or the quarantine, and can DMA only into `domid`'s memory).
pub fn assign_pci(domid: DomId, bdf: xcp_pci::Bdf) -> Result<(), Errno> {
    // SAFETY: affects only the device's IOMMU context and `domid`.
    unsafe { domctl::assign_pci_device(domid, 0, bdf.bus, bdf.devfn()) }
}

/// Takes PCI device `bdf` back from `domid`.
pub fn deassign_pci(domid: DomId, bdf: xcp_pci::Bdf) -> Result<(), Errno> {
    // SAFETY: affects only the device's IOMMU context and `domid`.
    unsafe { domctl::deassign_pci_device(domid, 0, bdf.bus, bdf.devfn()) }
}

/// Lets (or stops) `domid` map machine frames `first..first + count`
/// (a device's memory BAR).
pub fn iomem_permission(domid: DomId, first: u64, count: u64, allow: bool) -> Result<(), Errno> {
    // SAFETY: changes `domid`'s I/O-memory rights only.
    unsafe { domctl::iomem_permission(domid, first, count, allow) }
}

/// Lets (or stops) `domid` use I/O ports `first..first + count`.
pub fn ioport_permission(domid: DomId, first: u32, count: u32, allow: bool) -> Result<(), Errno> {
    // SAFETY: changes `domid`'s I/O-port rights only.
    unsafe { domctl::ioport_permission(domid, first, count, allow) }
}

/// Lets Xen locate `bdf`'s MSI-X table while dom0 still owns the device
/// (see `xen_sys::physdev::prepare_msix`); needed once before MSI-X
/// entries are mapped for another domain.
pub fn prepare_msix(bdf: xcp_pci::Bdf) -> Result<(), Errno> {
    // SAFETY: changes only Xen's bookkeeping of the device's MSI-X table.
    unsafe { xen_sys::physdev::prepare_msix(bdf.bus, bdf.devfn()) }
}

/// Undoes [`prepare_msix`] once no MSI-X entry of `bdf` is mapped.
pub fn release_msix(bdf: xcp_pci::Bdf) -> Result<(), Errno> {
    // SAFETY: changes only Xen's bookkeeping of the device's MSI-X table.
    unsafe { xen_sys::physdev::release_msix(bdf.bus, bdf.devfn()) }
}

/// Maps MSI-X table entry `entry` of `bdf` (whose table sits in the BAR
/// at machine address `table_base`) to a new pirq of `domid`, which must
/// own the device; returns the pirq. Xen sets the entry up masked and
/// grants `domid` the IRQ, so `domid` can bind the pirq to an event
/// channel (binding unmasks the entry).
pub fn map_msix_pirq(
    domid: DomId,
    bdf: xcp_pci::Bdf,
    entry: u16,
    table_base: u64,
) -> Result<u32, Errno> {
    let mut map = xen_sys::physdev::PhysdevMapPirq {
        domid,
        r#type: xen_sys::physdev::MAP_PIRQ_TYPE_MSI_SEG,
        // -1: Xen allocates the IRQ and picks the pirq.
        index: -1,
        pirq: -1,
        // Segment 0 in bits 16..32.
        bus: i32::from(bdf.bus),
        devfn: i32::from(bdf.devfn()),
        entry_nr: i32::from(entry),
        table_base,
    };
    // SAFETY: `map` lives across the call; affects only the device, which
    // `domid` owns, and `domid`'s pirq space.
    let pirq = unsafe { xen_sys::physdev::map_pirq(&mut map) }?;
    u32::try_from(pirq).map_err(|_| Errno::EINVAL)
}

/// Unmaps `pirq` of `domid` (unbinding it if `domid` bound it).
pub fn unmap_pirq(domid: DomId, pirq: u32) -> Result<(), Errno> {
    let pirq = i32::try_from(pirq).map_err(|_| Errno::EINVAL)?;
    // SAFETY: affects only `domid`'s pirq; Xen force-unbinds an event
    // channel still bound to it (`unmap_domain_pirq`).
    unsafe { xen_sys::physdev::unmap_pirq(domid, pirq) }
}

/// Pauses `domid`.
pub fn pause_domain(domid: DomId) -> Result<(), Errno> {
    // SAFETY: affects only `domid`.
    unsafe { domctl::pausedomain(domid) }
}

/// Unpauses `domid`.
pub fn unpause_domain(domid: DomId) -> Result<(), Errno> {
    // SAFETY: affects only `domid`.
    unsafe { domctl::unpausedomain(domid) }
}

/// `XEN_DOMCTL_getdomaininfo` for `domid` (Xen returns the next existing
/// domain at or after `domid`: check the `domain` field).
pub fn domain_info(domid: DomId) -> Result<XenDomctlGetdomaininfo, Errno> {
    // SAFETY: the result is copied into a value we own.
    unsafe { domctl::getdomaininfo(domid) }
}

/// `XEN_DOMCTL_getvcpuinfo`: vCPU `vcpu` of `domid` (online, its run
/// time in ns).
pub fn vcpu_info(domid: DomId, vcpu: u32) -> Result<XenDomctlGetvcpuinfo, Errno> {
    // SAFETY: the result is copied into a value we own; nothing changes.
    unsafe { domctl::getvcpuinfo(domid, vcpu) }
}

/// Makes `domid` the handler of the global VIRQ `virq`
/// (`XEN_DOMCTL_set_virq_handler`): Xen then signals it there instead of
/// to dom0, until that domain is destroyed.
pub fn set_virq_handler(domid: DomId, virq: u32) -> Result<(), Errno> {
    // SAFETY: only redirects a notification; dom0 (the caller) is
    // privileged and `domid` binds the VIRQ itself.
    unsafe { domctl::set_virq_handler(domid, virq) }
}

/// Creates vCPUs `0..max` of `domid` (createdomain only sizes the array).
pub fn set_max_vcpus(domid: DomId, max: u32) -> Result<(), Errno> {
    // SAFETY: affects only `domid`.
    unsafe { domctl::max_vcpus(domid, max) }
}

/// Caps `domid`'s memory at `kib`.
pub fn set_max_mem(domid: DomId, kib: u64) -> Result<(), Errno> {
    // SAFETY: affects only `domid`.
    unsafe { domctl::max_mem(domid, kib) }
}

/// Populates pfns `0..nr_pages` of a PV `domid` and returns their machine
/// frames (the new domain's P2M).
pub fn populate_physmap(domid: DomId, nr_pages: u64) -> Result<Vec<u64>, Errno> {
    // The p2m is 8 bytes per guest page (8 MiB for a 4 GiB guest): a heap
    // without room refuses the build (ENOMEM), it does not abort dom0.
    let len = usize::try_from(nr_pages).map_err(|_| Errno::ENOMEM)?;
    let mut frames: Vec<u64> = Vec::new();
    frames.try_reserve_exact(len).map_err(|_| Errno::ENOMEM)?;
    frames.extend(0..nr_pages);
    for chunk in frames.chunks_mut(512) {
        let want = chunk.len() as u64;
        // SAFETY: the extent list is ours; for a PV domain Xen overwrites
        // each gpfn with the machine frame it allocated.
        let done = unsafe { xen_sys::memory::populate_physmap(domid, 0, 0, chunk) }?;
        if done != want {
            return Err(Errno::ENOMEM);
        }
    }
    Ok(frames)
}

/// Populates guest frames `first..first + count` of a translated (PVH)
/// `domid`: Xen backs each gfn with a fresh page in the domain's p2m.
pub fn populate_gfns(domid: DomId, first: u64, count: u64) -> Result<(), Errno> {
    let mut chunk = [0u64; 512];
    let mut done = 0;
    while done < count {
        let n = (count - done).min(chunk.len() as u64) as usize;
        for (i, gfn) in chunk[..n].iter_mut().enumerate() {
            *gfn = first + done + i as u64;
        }
        // SAFETY: the extent list is ours and lives across the call; the
        // gfns are holes of a domain being built.
        let got = unsafe { xen_sys::memory::populate_physmap(domid, 0, 0, &mut chunk[..n]) }?;
        if got != n as u64 {
            return Err(Errno::ENOMEM);
        }
        done += n as u64;
    }
    Ok(())
}

/// Sets `domid`'s paging (HAP/shadow) pool to `bytes`.
pub fn set_paging_pool(domid: DomId, bytes: u64) -> Result<(), Errno> {
    // SAFETY: affects only `domid`.
    unsafe { domctl::set_paging_mempool_size(domid, bytes) }
}

/// Sets `domid`'s e820 to `e820`, 20-byte BIOS entries.
pub fn set_memory_map(domid: DomId, e820: &[u8]) -> Result<(), Errno> {
    use xen_abi::memory::e820 as e8;
    if !e820.len().is_multiple_of(e8::OFF_END) {
        return Err(Errno::EINVAL);
    }
    let field = |b: &[u8], off: usize| {
        u64::from_le_bytes(
            b[off..off + 8]
                .try_into()
                .expect("8 bytes inside the entry"),
        )
    };
    let mut entries: Vec<xen_sys::memory::E820Entry> = e820
        .chunks_exact(e8::OFF_END)
        .map(|b| xen_sys::memory::E820Entry {
            addr: field(b, e8::OFF_ADDR),
            size: field(b, e8::OFF_SIZE),
            kind: u32::from_le_bytes(
                b[e8::OFF_TYPE..e8::OFF_TYPE + 4]
                    .try_into()
                    .expect("4 bytes inside the entry"),
            ),
        })
        .collect();
    // SAFETY: affects only `domid`; `entries` lives across the call.
    unsafe { xen_sys::memory::set_memory_map(domid, &mut entries) }
}

/// Sets HVM parameter `index` of `domid`.
pub fn set_hvm_param(domid: DomId, index: u32, value: u64) -> Result<(), Errno> {
    // SAFETY: affects only `domid`, a domain the caller builds.
    unsafe { xen_sys::hvm::set_param(domid, index, value) }
}

/// `domid`'s HVM save records (header, CPUs, devices, END).
pub fn hvm_context(domid: DomId) -> Result<Vec<u8>, Errno> {
    // SAFETY: a null buffer only asks the size.
    let size = unsafe { domctl::gethvmcontext(domid, None) }? as usize;
    let mut buf = alloc::vec![0u8; size];
    // SAFETY: `buf` is ours and `size` bytes long, alive across the call.
    let got = unsafe { domctl::gethvmcontext(domid, Some(&mut buf)) }? as usize;
    buf.truncate(got);
    Ok(buf)
}

/// Loads save records into `domid` (its boot vCPU state).
pub fn set_hvm_context(domid: DomId, records: &[u8]) -> Result<(), Errno> {
    let mut copy = records.to_vec();
    // SAFETY: affects only `domid`, which is paused and being built; `copy`
    // lives across the call.
    unsafe { domctl::sethvmcontext(domid, &mut copy) }
}

/// Asks Xen to write its hypercall stubs into `gmfn` of `domid`.
pub fn hypercall_init(domid: DomId, gmfn: u64) -> Result<(), Errno> {
    let mut op = XenDomctl::new(domctl::XEN_DOMCTL_HYPERCALL_INIT, domid);
    op.u.hypercall_init = XenDomctlHypercallInit { gmfn };
    // SAFETY: no guest handle in the payload.
    unsafe { domctl::domctl(&mut op) }.map(|_| ())
}

/// Pins machine frame `mfn` of `domid` as a top-level (L4) page table.
pub fn pin_l4(domid: DomId, mfn: u64) -> Result<(), Errno> {
    let op = [MmuextOp {
        cmd: xen_sys::xen::MMUEXT_PIN_L4_TABLE,
        pad: 0,
        arg1: mfn,
        arg2: 0,
    }];
    // SAFETY: pins a frame of another domain; our own mappings are untouched.
    unsafe { xen_sys::mm::mmuext_op(&op, domid) }.map(|_| ())
}

/// A zeroed vCPU context to fill in (5 KiB, so boxed).
pub fn new_vcpu_context() -> Box<VcpuGuestContext> {
    // SAFETY: VcpuGuestContext is plain old data for which all-zeroes is
    // valid (integers and arrays of integers only).
    Box::new(unsafe { core::mem::zeroed() })
}

/// Sets vCPU `vcpu`'s initial state in `domid`.
pub fn set_vcpu_context(domid: DomId, vcpu: u32, ctxt: &mut VcpuGuestContext) -> Result<(), Errno> {
    // SAFETY: the context is ours and lives across the call; what it names
    // belongs to `domid`.
    unsafe { domctl::setvcpucontext(domid, vcpu, ctxt) }
}

/// Xen's free and total memory, in pages.
pub fn physinfo() -> Result<(u64, u64), Errno> {
    // SAFETY: the result is copied into a value we own.
    let info = unsafe { xen_sys::sysctl::physinfo() }?;
    Ok((info.free_pages, info.total_pages))
}

/// Physical CPUs whose idle time [`cpu_idle_ns`] reads at most.
pub const MAX_HOST_CPUS: usize = 256;

/// Each physical CPU's idle time since boot, ns, in CPU order (at most
/// [`MAX_HOST_CPUS`]).
pub fn cpu_idle_ns() -> Result<Vec<u64>, Errno> {
    let mut buf = alloc::vec![xen_sys::sysctl::XenSysctlCpuinfo::default(); MAX_HOST_CPUS];
    // SAFETY: `buf` is ours and alive across the call; Xen writes at most
    // its length of entries.
    let n = unsafe { xen_sys::sysctl::getcpuinfo(&mut buf) }?;
    Ok(buf[..n].iter().map(|c| c.idletime).collect())
}

/// The running scheduler's id (`XEN_SCHEDULER_*`, `XEN_SYSCTL_sched_id`).
pub fn sched_id() -> Result<u32, Errno> {
    // SAFETY: the result is copied into a value we own; nothing changes.
    unsafe { xen_sys::sysctl::sched_id() }
}

/// Sets `domid`'s (weight, cap) under credit or credit2 scheduler
/// `sched_id` (EINVAL under any other).
pub fn set_sched_credit(domid: DomId, sched_id: u32, weight: u16, cap: u16) -> Result<(), Errno> {
    // SAFETY: changes only `domid`'s CPU share.
    unsafe { domctl::sched_credit_putinfo(domid, sched_id, weight, cap) }
}

/// `domid`'s (weight, cap) under credit or credit2 scheduler `sched_id`.
pub fn sched_credit(domid: DomId, sched_id: u32) -> Result<(u16, u16), Errno> {
    // SAFETY: the result is copied into a value we own; nothing changes.
    unsafe { domctl::sched_credit_getinfo(domid, sched_id) }
}

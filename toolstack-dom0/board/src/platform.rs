//! What the board needs from Xen, the devices and the runtime.
//!
//! The kernel implements [`Platform`] with hypercalls (`toolstack-dom0/
//! kernel/src/xen.rs`); the host tests with [`crate::fake`]. The seams are
//! chosen so every resource that can leak passes through the trait: a
//! domain, a dom0 event channel, a grant, a page, a pirq, a prepared MSI-X
//! table, a device assignment, an I/O permission, a console link, the
//! xenstore link and a run of guest frames mapped into dom0. What the trait hands out as a handle (a page, a console,
//! the xenstore link) is an associated type, so the fake's can be simple.

use alloc::vec::Vec;
use core::fmt;

use xcp_builder::PvVcpuContext;
use xcp_pci::Bdf;
use xen_sys::domctl_payloads::XenDomctlCreatedomain;

/// What `XEN_DOMCTL_getdomaininfo` says about a domain (the fields dom0
/// reads).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DomainInfo {
    /// The domain Xen answered for (the first at or above the one asked
    /// for: compare it).
    pub domain: u16,
    /// `XEN_DOMINF_*`.
    pub flags: u32,
    /// Pages allocated.
    pub tot_pages: u64,
    /// Page limit.
    pub max_pages: u64,
    /// Machine frame of its shared_info page.
    pub shared_info_frame: u64,
}

/// A domain's CPU share under Xen's credit and credit2 schedulers
/// (`struct xen_domctl_sched_credit2`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuShare {
    /// Relative weight, 1..=65535 (Xen's default 256).
    pub weight: u16,
    /// Ceiling in percent of one physical CPU, at most 100 × vCPUs (0: none).
    pub cap: u16,
}

/// The hypercalls, device access, channels and clock dom0 uses. Every
/// method that acquires something has its release beside it.
pub trait Platform {
    /// The platform's error (Xen's errno, a grant-table status ...).
    type Error: Clone + fmt::Debug + fmt::Display;
    /// A page of dom0's own (the snapshot, relay and xenstore ring pages);
    /// freed when dropped.
    type Page;
    /// dom0's link to a domain's console ring: the mapping and the bound
    /// port.
    type Console;
    /// dom0's connection to the xenstore domain.
    type Xs;
    /// A run of a guest's frames mapped into dom0 at consecutive
    /// addresses; unmapped when dropped.
    type GuestRun;

    /// Xen system time, ns.
    fn now_ns(&mut self) -> u64;

    // Domains.

    /// Creates a domain (paused).
    fn create_domain(
        &mut self,
        domid: u16,
        config: &XenDomctlCreatedomain,
    ) -> Result<u16, Self::Error>;
    /// Destroys `domid`: its memory, its event channels, its device
    /// assignments and I/O permissions go back to Xen (its pirqs only at
    /// the domain's final, deferred teardown: unmap them before).
    fn destroy_domain(&mut self, domid: u16) -> Result<(), Self::Error>;
    /// Pauses `domid`.
    fn pause_domain(&mut self, domid: u16) -> Result<(), Self::Error>;
    /// Unpauses `domid`.
    fn unpause_domain(&mut self, domid: u16) -> Result<(), Self::Error>;
    /// Asks Xen about `domid`.
    fn domain_info(&mut self, domid: u16) -> Result<DomainInfo, Self::Error>;
    /// Shuts `domid` down with `SHUTDOWN_*` `reason`.
    fn remote_shutdown(&mut self, domid: u16, reason: u32) -> Result<(), Self::Error>;
    /// Sets `domid`'s (dom0's own too) weight and cap
    /// (`XEN_DOMCTL_scheduler_op` putinfo, under the running scheduler;
    /// refused under one without weights).
    fn set_cpu_share(&mut self, domid: u16, share: CpuShare) -> Result<(), Self::Error>;
    /// `domid`'s weight and cap as Xen holds them (getinfo).
    fn cpu_share(&mut self, domid: u16) -> Result<CpuShare, Self::Error>;
    /// Sends virtual IRQ `virq` to `domid` instead of dom0.
    fn set_virq_handler(&mut self, domid: u16, virq: u32) -> Result<(), Self::Error>;

    // The build.

    /// `XEN_DOMCTL_max_vcpus`.
    fn set_max_vcpus(&mut self, domid: u16, max: u32) -> Result<(), Self::Error>;
    /// `XEN_DOMCTL_max_mem`.
    fn set_max_mem(&mut self, domid: u16, kib: u64) -> Result<(), Self::Error>;
    /// Gives `domid` `nr_pages` of memory; returns its p2m.
    fn populate_physmap(&mut self, domid: u16, nr_pages: u64) -> Result<Vec<u64>, Self::Error>;
    /// Maps frame `mfn` of `domid` and lets `fill` write it: a machine
    /// frame for a PV domain, a guest frame (gfn) for a PVH one (Xen
    /// translates it through the domain's p2m).
    fn write_foreign(
        &mut self,
        domid: u16,
        mfn: u64,
        fill: &mut dyn FnMut(&mut [u8; 4096]),
    ) -> Result<(), Self::Error>;
    /// Maps guest frames `first..first + count` of a PVH `domid` (gfns,
    /// populated) into dom0, writable, as one contiguous run of bytes
    /// ([`Platform::guest_run_bytes`]); unmapped when the handle drops.
    /// Drop it before destroying `domid`: Xen cannot free a domain whose
    /// frames dom0 still maps. One run at a time.
    fn map_guest_run(
        &mut self,
        domid: u16,
        first: u64,
        count: u64,
    ) -> Result<Self::GuestRun, Self::Error>;
    /// Maps machine frames `frames` of a PV `domid` (its p2m's, in
    /// order) into dom0 as one contiguous run, as
    /// [`Platform::map_guest_run`] does for a PVH domain's gfns.
    fn map_guest_frames(
        &mut self,
        domid: u16,
        frames: &[u64],
    ) -> Result<Self::GuestRun, Self::Error>;
    /// The bytes of a mapped run.
    fn guest_run_bytes(run: &mut Self::GuestRun) -> &mut [u8];
    /// Backs guest frames `first..first + count` of a PVH `domid` with
    /// memory (`XENMEM_populate_physmap`; they go with the domain).
    fn populate_gfns(&mut self, domid: u16, first: u64, count: u64) -> Result<(), Self::Error>;
    /// Sets `domid`'s paging (HAP) memory pool to `bytes`.
    fn set_paging_pool(&mut self, domid: u16, bytes: u64) -> Result<(), Self::Error>;
    /// Sets `domid`'s e820 (`XENMEM_set_memory_map`) to `e820`, 20-byte
    /// BIOS entries.
    fn set_memory_map(&mut self, domid: u16, e820: &[u8]) -> Result<(), Self::Error>;
    /// `HVMOP_set_param`.
    fn set_hvm_param(&mut self, domid: u16, index: u32, value: u64) -> Result<(), Self::Error>;
    /// `XEN_DOMCTL_gethvmcontext`: `domid`'s HVM save records.
    fn hvm_context(&mut self, domid: u16) -> Result<Vec<u8>, Self::Error>;
    /// `XEN_DOMCTL_sethvmcontext`: loads save records into `domid`.
    fn set_hvm_context(&mut self, domid: u16, records: &[u8]) -> Result<(), Self::Error>;
    /// Maps grant-table frame 0 of HVM domain `domid` at its empty guest
    /// frame `gfn` (`XENMEM_add_to_physmap`), for seeding.
    fn map_grant_table_at(&mut self, domid: u16, gfn: u64) -> Result<(), Self::Error>;
    /// Empties guest frame `gfn` of HVM domain `domid`
    /// (`XENMEM_remove_from_physmap`).
    fn remove_gfn(&mut self, domid: u16, gfn: u64) -> Result<(), Self::Error>;
    /// The machine frame of `domid`'s first grant-table frame.
    fn grant_table_frame(&mut self, domid: u16) -> Result<u64, Self::Error>;
    /// Has Xen write the hypercall page at `mfn` of `domid`.
    fn hypercall_init(&mut self, domid: u16, mfn: u64) -> Result<(), Self::Error>;
    /// Pins `domid`'s top-level page table at `mfn`.
    fn pin_l4(&mut self, domid: u16, mfn: u64) -> Result<(), Self::Error>;
    /// Sets vCPU 0 of `domid` to `regs`.
    fn set_vcpu_context(&mut self, domid: u16, regs: &PvVcpuContext) -> Result<(), Self::Error>;

    // Event channels.

    /// A dom0 port `remote` may bind to (close it with
    /// [`Platform::close_port`]).
    fn alloc_unbound(&mut self, remote: u16) -> Result<u32, Self::Error>;
    /// A port of `domid` that `remote` may bind to (it goes with `domid`).
    fn alloc_unbound_for(&mut self, domid: u16, remote: u16) -> Result<u32, Self::Error>;
    /// Closes a dom0 port.
    fn close_port(&mut self, port: u32) -> Result<(), Self::Error>;
    /// dom0's event loop starts delivering `port`.
    fn watch(&mut self, port: u32);
    /// dom0's event loop stops delivering `port`.
    fn unwatch(&mut self, port: u32);

    // Pages and grants.

    /// A zeroed page of dom0's.
    fn alloc_page(&mut self) -> Result<Self::Page, Self::Error>;
    /// Copies `bytes` into `page` at `offset`.
    fn write_page(&mut self, page: &mut Self::Page, offset: usize, bytes: &[u8]);
    /// Grants `domid` access to `page`.
    fn grant_access(
        &mut self,
        domid: u16,
        page: &Self::Page,
        readonly: bool,
    ) -> Result<u32, Self::Error>;
    /// Ends grant `gref` (refused while the peer maps it).
    fn end_access(&mut self, gref: u32) -> Result<(), Self::Error>;

    // PCI devices.

    /// Reads a config-space dword.
    fn pci_read32(&mut self, bdf: Bdf, offset: u8) -> u32;
    /// Writes a config-space dword.
    fn pci_write32(&mut self, bdf: Bdf, offset: u8, value: u32);
    /// Writes a config-space word.
    fn pci_write16(&mut self, bdf: Bdf, offset: u8, value: u16);
    /// The virtio reset: writes 0 to the `device_status` byte at bus
    /// address `status_at` and waits for it to read 0. Returns the status
    /// before and after.
    fn virtio_reset(&mut self, status_at: u64) -> Result<(u8, u8), Self::Error>;
    /// Assigns `bdf` to `domid` through the IOMMU.
    fn assign_pci(&mut self, domid: u16, bdf: Bdf) -> Result<(), Self::Error>;
    /// Takes `bdf` back from `domid` (destroying `domid` does it too).
    fn deassign_pci(&mut self, domid: u16, bdf: Bdf) -> Result<(), Self::Error>;
    /// Lets (`allow`) or stops `domid` mapping frames `first..first+count`.
    fn iomem_permission(
        &mut self,
        domid: u16,
        first: u64,
        count: u64,
        allow: bool,
    ) -> Result<(), Self::Error>;
    /// Lets (`allow`) or stops `domid` using ports `first..first+count`.
    fn ioport_permission(
        &mut self,
        domid: u16,
        first: u32,
        count: u32,
        allow: bool,
    ) -> Result<(), Self::Error>;
    /// Has Xen locate `bdf`'s MSI-X table (while dom0 owns it).
    fn prepare_msix(&mut self, bdf: Bdf) -> Result<(), Self::Error>;
    /// Has Xen forget `bdf`'s MSI-X table (EBUSY while a pirq is mapped).
    fn release_msix(&mut self, bdf: Bdf) -> Result<(), Self::Error>;
    /// Maps MSI-X entry `entry` of `bdf` (table at `table_base`) to a pirq
    /// of `domid`.
    fn map_msix_pirq(
        &mut self,
        domid: u16,
        bdf: Bdf,
        entry: u16,
        table_base: u64,
    ) -> Result<u32, Self::Error>;
    /// Unmaps pirq `pirq` of `domid` (which must still exist).
    fn unmap_pirq(&mut self, domid: u16, pirq: u32) -> Result<(), Self::Error>;

    // Console links.

    /// Maps `domid`'s console ring at `mfn` and binds to its
    /// `remote_port`.
    fn console_connect(
        &mut self,
        name: &str,
        domid: u16,
        mfn: u64,
        remote_port: u32,
    ) -> Result<Self::Console, Self::Error>;
    /// dom0's port of a console link.
    fn console_port(console: &Self::Console) -> u32;
    /// Prints what the domain wrote; returns how many lines.
    fn console_drain(&mut self, console: &mut Self::Console) -> usize;
    /// Unmaps the ring and closes the port.
    fn console_close(&mut self, console: Self::Console);

    // The xenstore link.

    /// dom0's connection to xenstore domain `xs_domid` over `ring` (granted
    /// to it) and dom0's `port`.
    fn xs_connect(&mut self, xs_domid: u16, ring: Self::Page, port: u32) -> Self::Xs;
    /// Gives `domid` its home and introduces it to xenstored.
    fn xs_introduce(
        &mut self,
        xs: &mut Self::Xs,
        domid: u16,
        name: &str,
        store_mfn: u64,
        store_port: u32,
    ) -> Result<bool, Self::Error>;
    /// Releases a dead domain and removes its home.
    fn xs_release(&mut self, xs: &mut Self::Xs, domid: u16) -> Result<(), Self::Error>;
    /// Watches `@releaseDomain`.
    fn xs_watch_lifecycle(&mut self, xs: &mut Self::Xs) -> Result<(), Self::Error>;
    /// Whether `@releaseDomain` fired since the last call.
    fn xs_lifecycle_fired(&mut self, xs: &mut Self::Xs) -> bool;
}

/// The platform as a config-space accessor, for `xcp_pci::caps`.
pub(crate) struct Config<'a, P: Platform>(pub &'a mut P);

impl<P: Platform> xcp_pci::ConfigAccess for Config<'_, P> {
    fn read32(&mut self, bdf: Bdf, offset: u8) -> u32 {
        self.0.pci_read32(bdf, offset)
    }

    fn write32(&mut self, bdf: Bdf, offset: u8, value: u32) {
        self.0.pci_write32(bdf, offset, value);
    }
}

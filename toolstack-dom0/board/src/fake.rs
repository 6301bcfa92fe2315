//! An in-memory [`Platform`] for host tests: it tracks every live
//! resource (domains, dom0 ports, watched ports, grants, pages, pirqs,
//! prepared MSI-X tables, device assignments, I/O permissions, consoles,
//! xenstore introductions, runs of guest frames mapped into dom0) and can fail the Nth fallible call, or the Nth
//! call of one operation. [`Fake::leftovers`] lists what is still held.
//!
//! It models the Xen behaviour the board depends on: destroying a domain
//! frees its memory, ports, assignments and permissions but not its
//! pirqs (Xen keeps them until the domain's final teardown), so
//! `release_msix` answers EBUSY and `unmap_pirq` of a destroyed domain
//! fails; destroying a domain while dom0 maps a run of its frames leaves
//! it a zombie (Xen frees it only when the last mapping goes), which the
//! fake records as a leftover.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::fmt;

use xcp_builder::PvVcpuContext;
use xcp_pci::{Bar, Bdf, Device};
use xen_sys::domctl_payloads::XenDomctlCreatedomain;

use crate::{DomainInfo, Platform};

/// Why a fake call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FakeError {
    /// The test asked for this call to fail.
    Injected(&'static str),
    /// No such domain (ESRCH).
    NoDomain,
    /// Busy (EBUSY).
    Busy,
    /// Invalid argument (EINVAL).
    Invalid,
}

impl fmt::Display for FakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FakeError::Injected(op) => write!(f, "{op}: injected failure"),
            FakeError::NoDomain => f.write_str("ESRCH"),
            FakeError::Busy => f.write_str("EBUSY"),
            FakeError::Invalid => f.write_str("EINVAL"),
        }
    }
}

/// A fake domain.
#[derive(Clone, Debug, Default)]
pub struct FakeDomain {
    /// `XEN_DOMINF_*` (the tests set shutdown flags).
    pub flags: u32,
    /// Paused (created paused, unpaused by the board).
    pub paused: bool,
    /// Ports allocated in it.
    pub ports: u32,
    /// Devices assigned to it.
    pub assigned: Vec<Bdf>,
    /// Frame ranges it may map.
    pub iomem: Vec<(u64, u64)>,
    /// Port ranges it may use.
    pub ioports: Vec<(u32, u32)>,
    /// Its memory, pages.
    pub pages: u64,
    /// The handle it was created with (`xen_domain_handle_t`).
    pub handle: [u8; 16],
    /// Created as an HVM (PVH) domain: frames are gfns, written only once
    /// populated.
    pub hvm: bool,
    /// Guest frame runs populated (PVH).
    pub populated: Vec<(u64, u64)>,
    /// Pages written through `write_foreign`, by frame.
    pub memory: BTreeMap<u64, Vec<u8>>,
    /// The e820 set (PVH).
    pub e820: Vec<u8>,
    /// HVM params set.
    pub hvm_params: BTreeMap<u32, u64>,
    /// The save records loaded (PVH).
    pub hvm_context: Option<Vec<u8>>,
    /// The paging pool, bytes.
    pub paging_pool: u64,
    /// vCPUs created (`set_max_vcpus`).
    pub vcpus: u32,
    /// Where its grant-table frame 0 is mapped in its physmap (PVH).
    pub grant_table_gfn: Option<u64>,
    /// Its grant-table frame 0 as written (empty: never written).
    pub grant_frame: Vec<u8>,
    /// The `max_vcpus` it was created with: `set_max_vcpus` may not ask
    /// more (Xen answers EINVAL).
    pub max_vcpus: u32,
}

impl FakeDomain {
    /// Whether guest frame `gfn` is populated.
    pub fn is_populated(&self, gfn: u64) -> bool {
        self.populated
            .iter()
            .any(|&(first, count)| (first..first + count).contains(&gfn))
    }

    /// Guest-physical bytes `paddr..paddr + len` as written (zeros where
    /// nothing was).
    pub fn read(&self, paddr: u64, len: usize) -> Vec<u8> {
        (0..len as u64)
            .map(|i| {
                let at = paddr + i;
                self.memory
                    .get(&(at / 4096))
                    .map_or(0, |p| p[(at % 4096) as usize])
            })
            .collect()
    }
}

/// The save records the fake's `hvm_context` returns for a new PVH domain:
/// HEADER, CPU 0, MTRR 0, END (in hvm/save.h's shape).
pub fn fake_hvm_context() -> Vec<u8> {
    use xen_abi::hvm_save::offsets as o;
    let mut v = Vec::new();
    let mut record = |code: u16, len: usize, fill: u8| {
        v.extend_from_slice(&code.to_le_bytes());
        v.extend_from_slice(&0u16.to_le_bytes());
        v.extend_from_slice(&(len as u32).to_le_bytes());
        v.extend(core::iter::repeat_n(fill, len));
    };
    record(xen_abi::hvm_save::HVM_SAVE_CODE_HEADER, 24, 0x48);
    record(xen_abi::hvm_save::HVM_SAVE_CODE_CPU, o::OFF_CPU_END, 0);
    record(xen_abi::hvm_save::HVM_SAVE_CODE_MTRR, o::OFF_MTRR_END, 0);
    record(xen_abi::hvm_save::HVM_SAVE_CODE_END, 0, 0);
    v
}

/// A page of dom0's: counted live until dropped.
#[derive(Debug)]
pub struct FakePage {
    /// Its identity (what grants name).
    pub id: u64,
    /// Its bytes.
    pub bytes: Vec<u8>,
    live: Rc<Cell<usize>>,
}

impl Drop for FakePage {
    fn drop(&mut self) {
        self.live.set(self.live.get() - 1);
    }
}

/// Runs of guest frames dom0 maps, shared with their handles.
#[derive(Debug, Default)]
pub struct FakeRuns {
    /// Live runs: id -> (domid, first gfn or pfn, count).
    pub live: BTreeMap<u64, (u16, u64, u64)>,
    /// Runs given back with bytes not zero (a dictionary left in the
    /// guest's RAM).
    pub returned_dirty: usize,
    next: u64,
}

/// A run of guest frames mapped into dom0: live until dropped.
#[derive(Debug)]
pub struct FakeGuestRun {
    id: u64,
    /// Its bytes (a copy: the fake's guest memory is not behind it).
    pub bytes: Vec<u8>,
    runs: Rc<RefCell<FakeRuns>>,
}

impl Drop for FakeGuestRun {
    fn drop(&mut self) {
        let mut runs = self.runs.borrow_mut();
        runs.live.remove(&self.id);
        if self.bytes.iter().any(|&b| b != 0) {
            runs.returned_dirty += 1;
        }
    }
}

/// A console link.
#[derive(Debug)]
pub struct FakeConsole {
    /// dom0's port.
    pub port: u32,
    /// The domain.
    pub domid: u16,
}

/// The xenstore link.
#[derive(Debug)]
pub struct FakeXs {
    /// The xenstore domain.
    pub domid: u16,
    /// dom0's ring page.
    pub ring: FakePage,
}

/// A mapped pirq.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FakePirq {
    /// The domain it was mapped for.
    pub domid: u16,
    /// The device.
    pub bdf: Bdf,
    /// The domain was destroyed with the pirq mapped (Xen keeps it until
    /// the domain's final teardown).
    pub orphaned: bool,
}

/// The fake platform. Fields are public for the tests to look at and set.
#[derive(Debug)]
pub struct Fake {
    /// Xen system time, ns (the tests move it).
    pub now: u64,
    /// Fallible calls made.
    pub calls: u64,
    /// Fail the fallible call with this number (1-based).
    pub fail_at: Option<u64>,
    /// Fail the Nth (1-based) call of this operation.
    pub fail_op: Option<(&'static str, u64)>,
    /// Calls per operation.
    pub op_calls: BTreeMap<&'static str, u64>,
    /// Every call in order, e.g. `"destroy_domain 3"`.
    pub journal: Vec<String>,
    /// Live domains.
    pub domains: BTreeMap<u16, FakeDomain>,
    next_domid: u16,
    /// dom0's open ports.
    pub ports: BTreeSet<u32>,
    next_port: u32,
    /// Ports dom0's loop watches.
    pub watched: BTreeSet<u32>,
    /// Live grants: gref -> (domid, page id).
    pub grants: BTreeMap<u32, (u16, u64)>,
    next_gref: u32,
    pages_live: Rc<Cell<usize>>,
    next_page: u64,
    /// Mapped pirqs.
    pub pirqs: BTreeMap<u32, FakePirq>,
    next_pirq: u32,
    /// Prepared MSI-X tables.
    pub msix: BTreeSet<Bdf>,
    /// Config spaces.
    pub config: BTreeMap<Bdf, [u8; 256]>,
    /// `device_status` bytes by bus address.
    pub device_status: BTreeMap<u64, u8>,
    /// Virtio resets done.
    pub resets: u32,
    /// Open console links (dom0 ports).
    pub consoles: BTreeSet<u32>,
    /// Domains introduced to xenstore.
    pub introduced: BTreeSet<u16>,
    /// Whether `@releaseDomain` is watched.
    pub lifecycle_watched: bool,
    /// `@releaseDomain` fired (the tests set it).
    pub release_fired: bool,
    /// Who gets VIRQ_DOM_EXC.
    pub virq_handler: Option<u16>,
    /// The xenstore domain dom0 connected to.
    pub xs_domid: Option<u16>,
    /// Runs of guest frames mapped into dom0.
    pub runs: Rc<RefCell<FakeRuns>>,
    /// Domains destroyed while dom0 mapped a run of their frames.
    pub zombies: Vec<u16>,
    /// Each domain's CPU share as set (dom0, domid 0, included); a domain
    /// absent here has Xen's default (weight 256, cap 0).
    pub shares: BTreeMap<u16, crate::CpuShare>,
    /// Most bytes `map_guest_run` maps (a test's stand-in for dom0's
    /// run region; 64 MiB by default, as the runtime's).
    pub max_run_bytes: u64,
}

impl Default for Fake {
    fn default() -> Self {
        Fake {
            now: 1_000_000_000,
            calls: 0,
            fail_at: None,
            fail_op: None,
            op_calls: BTreeMap::new(),
            journal: Vec::new(),
            domains: BTreeMap::new(),
            next_domid: 1,
            ports: BTreeSet::new(),
            next_port: 10,
            watched: BTreeSet::new(),
            grants: BTreeMap::new(),
            next_gref: 8,
            pages_live: Rc::new(Cell::new(0)),
            next_page: 1,
            pirqs: BTreeMap::new(),
            next_pirq: 100,
            msix: BTreeSet::new(),
            config: BTreeMap::new(),
            device_status: BTreeMap::new(),
            resets: 0,
            consoles: BTreeSet::new(),
            introduced: BTreeSet::new(),
            lifecycle_watched: false,
            release_fired: false,
            virq_handler: None,
            xs_domid: None,
            runs: Rc::new(RefCell::new(FakeRuns::default())),
            zombies: Vec::new(),
            max_run_bytes: 64 << 20,
            shares: BTreeMap::new(),
        }
    }
}

/// The share of a domain no one set: Xen's default.
pub const FAKE_DEFAULT_SHARE: crate::CpuShare = crate::CpuShare {
    weight: crate::sched::GUEST_DEFAULT_WEIGHT,
    cap: 0,
};

/// Where the fake NIC's BAR4 (MSI-X table, virtio structures) lives.
pub const NIC_BAR4: u64 = 0xfe00_0000;
/// Offset of the virtio common configuration in BAR4.
pub const NIC_COMMON: u64 = 0x1000;
/// The NIC's `device_status` bus address.
pub const NIC_STATUS: u64 = NIC_BAR4 + NIC_COMMON + crate::nic::COMMON_DEVICE_STATUS;
/// The NIC's MSI-X capability offset.
pub const NIC_MSIX_CAP: u8 = 0x40;
/// Where the fake disk's BAR4 lives (its layout is the NIC's).
pub const DISK_BAR4: u64 = 0xfd00_0000;
/// The disk's `device_status` bus address.
pub const DISK_STATUS: u64 = DISK_BAR4 + NIC_COMMON + crate::nic::COMMON_DEVICE_STATUS;

impl Fake {
    /// A fake with no domains.
    pub fn new() -> Self {
        Fake::default()
    }

    /// Counts a fallible call and fails it if the test asked.
    fn call(&mut self, op: &'static str, args: core::fmt::Arguments<'_>) -> Result<(), FakeError> {
        self.calls += 1;
        let n = self.op_calls.entry(op).or_insert(0);
        *n += 1;
        let nth = *n;
        self.journal.push(format!("{op} {args}"));
        if self.fail_at == Some(self.calls) || self.fail_op == Some((op, nth)) {
            self.journal.push(format!("{op} failed"));
            return Err(FakeError::Injected(op));
        }
        Ok(())
    }

    fn domain(&mut self, domid: u16) -> Result<&mut FakeDomain, FakeError> {
        self.domains.get_mut(&domid).ok_or(FakeError::NoDomain)
    }

    /// The machine frame `populate_physmap` gives pfn `pfn` of PV domain
    /// `domid` (written pages are in [`FakeDomain::memory`] by it).
    pub fn mfn_of(domid: u16, pfn: u64) -> u64 {
        (u64::from(domid) << 20) + pfn
    }

    /// Pages of dom0's alive.
    pub fn pages_live(&self) -> usize {
        self.pages_live.get()
    }

    /// Shuts `domid` down with `SHUTDOWN_*` `reason` (as if it crashed or
    /// powered off).
    pub fn shut_down(&mut self, domid: u16, reason: u32) {
        if let Some(d) = self.domains.get_mut(&domid) {
            d.flags = xcp_domains::DOMINF_SHUTDOWN
                | ((reason & xcp_domains::DOMINF_SHUTDOWN_MASK)
                    << xcp_domains::DOMINF_SHUTDOWN_SHIFT);
        }
    }

    /// The position of the first journal line starting with `prefix`.
    pub fn position(&self, prefix: &str) -> Option<usize> {
        self.journal.iter().position(|l| l.starts_with(prefix))
    }

    /// Adds a modern virtio-net function at `bdf` (an I/O BAR0, a 64-bit
    /// memory BAR4 with the MSI-X table and the virtio common
    /// configuration, MSI-X with 3 entries); returns it as enumeration
    /// would.
    pub fn add_virtio_nic(&mut self, bdf: Bdf) -> Device {
        self.add_virtio(bdf, 0x1041, 0x02, NIC_BAR4, 0xc000)
    }

    /// Adds a modern virtio-blk disk at `bdf`, laid out as the NIC of
    /// [`Fake::add_virtio_nic`] with its BAR4 at [`DISK_BAR4`].
    pub fn add_virtio_disk(&mut self, bdf: Bdf) -> Device {
        self.add_virtio(bdf, 0x1042, 0x01, DISK_BAR4, 0xc040)
    }

    fn add_virtio(&mut self, bdf: Bdf, id: u16, class: u8, bar4: u64, io: u32) -> Device {
        let mut c = [0u8; 256];
        c[0..2].copy_from_slice(&xcp_pci::VIRTIO_VENDOR.to_le_bytes());
        c[2..4].copy_from_slice(&id.to_le_bytes());
        c[6] = 1 << 4; // status: capability list
        c[0x0b] = class;
        c[0x34] = NIC_MSIX_CAP;
        // MSI-X: id, next, control (3 entries), table in BAR4 at 0,
        // PBA in BAR4 at 0x800.
        let m = usize::from(NIC_MSIX_CAP);
        c[m] = xcp_pci::CAP_MSIX;
        c[m + 1] = 0x50;
        c[m + 2..m + 4].copy_from_slice(&2u16.to_le_bytes());
        c[m + 4..m + 8].copy_from_slice(&4u32.to_le_bytes());
        c[m + 8..m + 12].copy_from_slice(&(0x800u32 | 4).to_le_bytes());
        // virtio common configuration: BAR4 at NIC_COMMON.
        c[0x50] = xcp_pci::CAP_VENDOR;
        c[0x51] = 0;
        c[0x52] = 16;
        c[0x53] = xcp_pci::caps::VIRTIO_PCI_CAP_COMMON_CFG;
        c[0x54] = 4;
        c[0x58..0x5c].copy_from_slice(&(NIC_COMMON as u32).to_le_bytes());
        c[0x5c..0x60].copy_from_slice(&0x38u32.to_le_bytes());
        self.config.insert(bdf, c);
        self.device_status
            .insert(bar4 + NIC_COMMON + crate::nic::COMMON_DEVICE_STATUS, 0);
        Device {
            bdf,
            vendor: xcp_pci::VIRTIO_VENDOR,
            device: id,
            class: [class, 0, 0],
            bars: [
                Some(Bar::Io {
                    base: io,
                    size: 0x20,
                }),
                None,
                None,
                None,
                Some(Bar::Memory {
                    base: bar4,
                    size: 0x4000,
                    wide: true,
                }),
                None,
            ],
            capabilities: vec![(xcp_pci::CAP_MSIX, 0x40), (xcp_pci::CAP_VENDOR, 0x50)],
        }
    }

    /// The command register of `bdf`.
    pub fn command(&self, bdf: Bdf) -> u16 {
        self.config
            .get(&bdf)
            .map_or(0, |c| u16::from_le_bytes([c[4], c[5]]))
    }

    /// Message Control of the fake NIC's MSI-X capability.
    pub fn msix_control(&self, bdf: Bdf) -> u16 {
        let m = usize::from(NIC_MSIX_CAP) + 2;
        self.config
            .get(&bdf)
            .map_or(0, |c| u16::from_le_bytes([c[m], c[m + 1]]))
    }

    /// Everything still held, one line each; empty when nothing leaked.
    /// Device state counts: bus mastering or MSI-X left on, a device
    /// status not reset.
    pub fn leftovers(&self) -> Vec<String> {
        let mut out = Vec::new();
        for domid in self.domains.keys() {
            out.push(format!("domain {domid}"));
        }
        for port in &self.ports {
            out.push(format!("dom0 port {port}"));
        }
        for port in &self.watched {
            out.push(format!("watched port {port}"));
        }
        for (gref, (domid, page)) in &self.grants {
            out.push(format!("grant {gref} of page {page} to domid {domid}"));
        }
        if self.pages_live() > 0 {
            out.push(format!("{} pages", self.pages_live()));
        }
        for (pirq, p) in &self.pirqs {
            out.push(format!("pirq {pirq} {p:?}"));
        }
        for bdf in &self.msix {
            out.push(format!("MSI-X table of {bdf}"));
        }
        for port in &self.consoles {
            out.push(format!("console on port {port}"));
        }
        for domid in &self.introduced {
            out.push(format!("domid {domid} introduced"));
        }
        for bdf in self.config.keys() {
            if self.command(*bdf) & crate::nic::BUS_MASTER != 0 {
                out.push(format!("{bdf}: bus mastering on"));
            }
            if self.msix_control(*bdf) & xcp_pci::caps::MSIX_ENABLE != 0 {
                out.push(format!("{bdf}: MSI-X enabled"));
            }
        }
        for (at, status) in &self.device_status {
            if *status != 0 {
                out.push(format!("device status {status:#x} at {at:#x}"));
            }
        }
        for (domid, first, count) in self.runs.borrow().live.values() {
            out.push(format!(
                "run of {count} frames from {first:#x} of domid {domid}"
            ));
        }
        for domid in &self.zombies {
            out.push(format!("domid {domid} destroyed while mapped"));
        }
        out
    }

    fn new_page(&mut self) -> FakePage {
        self.pages_live.set(self.pages_live.get() + 1);
        self.next_page += 1;
        FakePage {
            id: self.next_page,
            bytes: vec![0; 4096],
            live: self.pages_live.clone(),
        }
    }

    fn new_port(&mut self) -> u32 {
        self.next_port += 1;
        self.ports.insert(self.next_port);
        self.next_port
    }
}

impl Platform for Fake {
    type Error = FakeError;
    type Page = FakePage;
    type Console = FakeConsole;
    type Xs = FakeXs;
    type GuestRun = FakeGuestRun;

    fn now_ns(&mut self) -> u64 {
        self.now
    }

    fn create_domain(
        &mut self,
        want: u16,
        config: &XenDomctlCreatedomain,
    ) -> Result<u16, FakeError> {
        self.call("create_domain", format_args!(""))?;
        let domid = if want != 0 {
            // A destroyed domain whose pages are still mapped keeps its
            // domid (Xen: a dying domain).
            if self.domains.contains_key(&want) || self.zombies.contains(&want) {
                return Err(FakeError::Busy);
            }
            want
        } else {
            self.next_domid += 1;
            self.next_domid - 1
        };
        self.domains.insert(
            domid,
            FakeDomain {
                paused: true,
                handle: config.handle,
                max_vcpus: config.max_vcpus,
                hvm: config.flags & xen_abi::domctl::XEN_DOMCTL_CDF_HVM != 0,
                ..FakeDomain::default()
            },
        );
        Ok(domid)
    }

    fn destroy_domain(&mut self, domid: u16) -> Result<(), FakeError> {
        self.call("destroy_domain", format_args!("{domid}"))?;
        self.domains.remove(&domid).ok_or(FakeError::NoDomain)?;
        self.shares.remove(&domid);
        if self.runs.borrow().live.values().any(|r| r.0 == domid) {
            self.zombies.push(domid);
        }
        for p in self.pirqs.values_mut() {
            if p.domid == domid {
                p.orphaned = true;
            }
        }
        if self.virq_handler == Some(domid) {
            self.virq_handler = None;
        }
        if self.xs_domid == Some(domid) {
            // The introductions lived in the xenstore domain.
            self.xs_domid = None;
            self.introduced.clear();
        }
        Ok(())
    }

    fn pause_domain(&mut self, domid: u16) -> Result<(), FakeError> {
        self.call("pause_domain", format_args!("{domid}"))?;
        self.domain(domid)?.paused = true;
        Ok(())
    }

    fn unpause_domain(&mut self, domid: u16) -> Result<(), FakeError> {
        self.call("unpause_domain", format_args!("{domid}"))?;
        self.domain(domid)?.paused = false;
        Ok(())
    }

    fn domain_info(&mut self, domid: u16) -> Result<DomainInfo, FakeError> {
        self.call("domain_info", format_args!("{domid}"))?;
        let d = self.domain(domid)?;
        Ok(DomainInfo {
            domain: domid,
            flags: d.flags,
            tot_pages: d.pages,
            max_pages: d.pages,
            shared_info_frame: 0xf0000 + u64::from(domid),
        })
    }

    fn remote_shutdown(&mut self, domid: u16, reason: u32) -> Result<(), FakeError> {
        self.call("remote_shutdown", format_args!("{domid} {reason}"))?;
        self.domain(domid)?;
        self.shut_down(domid, reason);
        Ok(())
    }

    fn set_cpu_share(&mut self, domid: u16, share: crate::CpuShare) -> Result<(), FakeError> {
        self.call(
            "set_cpu_share",
            format_args!("{domid} {} {}", share.weight, share.cap),
        )?;
        // As credit2: dom0 always exists; the cap is at most 100 per vCPU;
        // weight 0 leaves the weight as it was.
        let vcpus = if domid == 0 {
            1
        } else {
            self.domain(domid)?.max_vcpus.max(1)
        };
        if u32::from(share.cap) > 100 * vcpus {
            return Err(FakeError::Invalid);
        }
        let old = self
            .shares
            .get(&domid)
            .copied()
            .unwrap_or(FAKE_DEFAULT_SHARE);
        let weight = if share.weight == 0 {
            old.weight
        } else {
            share.weight
        };
        self.shares.insert(
            domid,
            crate::CpuShare {
                weight,
                cap: share.cap,
            },
        );
        Ok(())
    }

    fn cpu_share(&mut self, domid: u16) -> Result<crate::CpuShare, FakeError> {
        self.call("cpu_share", format_args!("{domid}"))?;
        if domid != 0 {
            self.domain(domid)?;
        }
        Ok(self
            .shares
            .get(&domid)
            .copied()
            .unwrap_or(FAKE_DEFAULT_SHARE))
    }

    fn set_virq_handler(&mut self, domid: u16, _virq: u32) -> Result<(), FakeError> {
        self.call("set_virq_handler", format_args!("{domid}"))?;
        self.domain(domid)?;
        self.virq_handler = Some(domid);
        Ok(())
    }

    fn set_max_vcpus(&mut self, domid: u16, max: u32) -> Result<(), FakeError> {
        self.call("set_max_vcpus", format_args!("{domid}"))?;
        let d = self.domain(domid)?;
        if max == 0 || max > d.max_vcpus {
            return Err(FakeError::Invalid);
        }
        d.vcpus = max;
        Ok(())
    }

    fn set_max_mem(&mut self, domid: u16, _kib: u64) -> Result<(), FakeError> {
        self.call("set_max_mem", format_args!("{domid}"))?;
        self.domain(domid).map(|_| ())
    }

    fn populate_physmap(&mut self, domid: u16, nr_pages: u64) -> Result<Vec<u64>, FakeError> {
        self.call("populate_physmap", format_args!("{domid} {nr_pages}"))?;
        self.domain(domid)?.pages = nr_pages;
        Ok((0..nr_pages).map(|pfn| Fake::mfn_of(domid, pfn)).collect())
    }

    fn write_foreign(
        &mut self,
        domid: u16,
        mfn: u64,
        fill: &mut dyn FnMut(&mut [u8; 4096]),
    ) -> Result<(), FakeError> {
        self.call("write_foreign", format_args!("{domid} {mfn:#x}"))?;
        let d = self.domain(domid)?;
        if d.hvm && d.grant_table_gfn == Some(mfn) {
            d.grant_frame.resize(4096, 0);
            let page: &mut [u8; 4096] = d.grant_frame.as_mut_slice().try_into().expect("a page");
            fill(page);
            return Ok(());
        }
        // Xen refuses to map a gfn with nothing behind it.
        if d.hvm && !d.is_populated(mfn) {
            return Err(FakeError::Invalid);
        }
        let mut page = [0u8; 4096];
        if let Some(old) = d.memory.get(&mfn) {
            page.copy_from_slice(old);
        }
        fill(&mut page);
        d.memory.insert(mfn, page.to_vec());
        Ok(())
    }

    fn map_guest_run(
        &mut self,
        domid: u16,
        first: u64,
        count: u64,
    ) -> Result<FakeGuestRun, FakeError> {
        self.call("map_guest_run", format_args!("{domid} {first:#x} {count}"))?;
        let max = self.max_run_bytes;
        let d = self.domain(domid)?;
        let bytes = count.checked_mul(4096).ok_or(FakeError::Invalid)?;
        // Xen refuses a gfn with nothing behind it; the runtime a run
        // longer than its region.
        if !d.hvm || count == 0 || bytes > max || (first..first + count).any(|g| !d.is_populated(g))
        {
            return Err(FakeError::Invalid);
        }
        let mut runs = self.runs.borrow_mut();
        runs.next += 1;
        let id = runs.next;
        runs.live.insert(id, (domid, first, count));
        Ok(FakeGuestRun {
            id,
            // Guest RAM comes zeroed (and the fake does not copy what was
            // written to it).
            bytes: vec![0; bytes as usize],
            runs: self.runs.clone(),
        })
    }

    fn map_guest_frames(&mut self, domid: u16, frames: &[u64]) -> Result<FakeGuestRun, FakeError> {
        self.call("map_guest_frames", format_args!("{domid} {}", frames.len()))?;
        let max = self.max_run_bytes;
        let d = self.domain(domid)?;
        let bytes = frames.len() as u64 * 4096;
        // Xen refuses a frame the domain does not own.
        let owned = |&mfn: &u64| mfn >> 20 == u64::from(domid) && (mfn & 0xf_ffff) < d.pages;
        if d.hvm || frames.is_empty() || bytes > max || !frames.iter().all(owned) {
            return Err(FakeError::Invalid);
        }
        let mut runs = self.runs.borrow_mut();
        runs.next += 1;
        let id = runs.next;
        runs.live
            .insert(id, (domid, frames[0] & 0xf_ffff, frames.len() as u64));
        Ok(FakeGuestRun {
            id,
            bytes: vec![0; bytes as usize],
            runs: self.runs.clone(),
        })
    }

    fn guest_run_bytes(run: &mut FakeGuestRun) -> &mut [u8] {
        &mut run.bytes
    }

    fn populate_gfns(&mut self, domid: u16, first: u64, count: u64) -> Result<(), FakeError> {
        self.call("populate_gfns", format_args!("{domid} {first:#x} {count}"))?;
        let d = self.domain(domid)?;
        if !d.hvm || (first..first + count).any(|g| d.is_populated(g)) {
            return Err(FakeError::Invalid);
        }
        d.populated.push((first, count));
        d.pages += count;
        Ok(())
    }

    fn set_paging_pool(&mut self, domid: u16, bytes: u64) -> Result<(), FakeError> {
        self.call("set_paging_pool", format_args!("{domid} {bytes}"))?;
        self.domain(domid)?.paging_pool = bytes;
        Ok(())
    }

    fn set_memory_map(&mut self, domid: u16, e820: &[u8]) -> Result<(), FakeError> {
        self.call("set_memory_map", format_args!("{domid} {}", e820.len()))?;
        self.domain(domid)?.e820 = e820.to_vec();
        Ok(())
    }

    fn set_hvm_param(&mut self, domid: u16, index: u32, value: u64) -> Result<(), FakeError> {
        self.call("set_hvm_param", format_args!("{domid} {index} {value:#x}"))?;
        let d = self.domain(domid)?;
        if !d.hvm {
            return Err(FakeError::Invalid);
        }
        d.hvm_params.insert(index, value);
        Ok(())
    }

    fn hvm_context(&mut self, domid: u16) -> Result<Vec<u8>, FakeError> {
        self.call("hvm_context", format_args!("{domid}"))?;
        let d = self.domain(domid)?;
        // Xen 4.17 panics on a domain without vCPUs; the fake refuses.
        if !d.hvm || d.vcpus == 0 {
            return Err(FakeError::Invalid);
        }
        Ok(fake_hvm_context())
    }

    fn set_hvm_context(&mut self, domid: u16, records: &[u8]) -> Result<(), FakeError> {
        self.call("set_hvm_context", format_args!("{domid} {}", records.len()))?;
        let d = self.domain(domid)?;
        if !d.hvm {
            return Err(FakeError::Invalid);
        }
        d.hvm_context = Some(records.to_vec());
        Ok(())
    }

    fn map_grant_table_at(&mut self, domid: u16, gfn: u64) -> Result<(), FakeError> {
        self.call("map_grant_table_at", format_args!("{domid} {gfn:#x}"))?;
        let d = self.domain(domid)?;
        if !d.hvm || d.is_populated(gfn) || d.grant_table_gfn.is_some() {
            return Err(FakeError::Invalid);
        }
        d.grant_table_gfn = Some(gfn);
        Ok(())
    }

    fn remove_gfn(&mut self, domid: u16, gfn: u64) -> Result<(), FakeError> {
        self.call("remove_gfn", format_args!("{domid} {gfn:#x}"))?;
        let d = self.domain(domid)?;
        if !d.hvm || d.grant_table_gfn != Some(gfn) {
            return Err(FakeError::Invalid);
        }
        d.grant_table_gfn = None;
        Ok(())
    }

    fn grant_table_frame(&mut self, domid: u16) -> Result<u64, FakeError> {
        self.call("grant_table_frame", format_args!("{domid}"))?;
        self.domain(domid)?;
        Ok(0xe0000 + u64::from(domid))
    }

    fn hypercall_init(&mut self, domid: u16, _mfn: u64) -> Result<(), FakeError> {
        self.call("hypercall_init", format_args!("{domid}"))?;
        self.domain(domid).map(|_| ())
    }

    fn pin_l4(&mut self, domid: u16, _mfn: u64) -> Result<(), FakeError> {
        self.call("pin_l4", format_args!("{domid}"))?;
        self.domain(domid).map(|_| ())
    }

    fn set_vcpu_context(&mut self, domid: u16, _regs: &PvVcpuContext) -> Result<(), FakeError> {
        self.call("set_vcpu_context", format_args!("{domid}"))?;
        self.domain(domid).map(|_| ())
    }

    fn alloc_unbound(&mut self, remote: u16) -> Result<u32, FakeError> {
        self.call("alloc_unbound", format_args!("{remote}"))?;
        Ok(self.new_port())
    }

    fn alloc_unbound_for(&mut self, domid: u16, remote: u16) -> Result<u32, FakeError> {
        self.call("alloc_unbound_for", format_args!("{domid} {remote}"))?;
        let d = self.domain(domid)?;
        d.ports += 1;
        Ok(d.ports)
    }

    fn close_port(&mut self, port: u32) -> Result<(), FakeError> {
        self.call("close_port", format_args!("{port}"))?;
        if self.watched.contains(&port) {
            // The loop would poll a closed port.
            return Err(FakeError::Busy);
        }
        self.ports
            .remove(&port)
            .then_some(())
            .ok_or(FakeError::Invalid)
    }

    fn watch(&mut self, port: u32) {
        self.journal.push(format!("watch {port}"));
        self.watched.insert(port);
    }

    fn unwatch(&mut self, port: u32) {
        self.journal.push(format!("unwatch {port}"));
        self.watched.remove(&port);
    }

    fn alloc_page(&mut self) -> Result<FakePage, FakeError> {
        self.call("alloc_page", format_args!(""))?;
        Ok(self.new_page())
    }

    fn write_page(&mut self, page: &mut FakePage, offset: usize, bytes: &[u8]) {
        page.bytes[offset..offset + bytes.len()].copy_from_slice(bytes);
    }

    fn grant_access(&mut self, domid: u16, page: &FakePage, _ro: bool) -> Result<u32, FakeError> {
        self.call("grant_access", format_args!("{domid} page {}", page.id))?;
        self.next_gref += 1;
        self.grants.insert(self.next_gref, (domid, page.id));
        Ok(self.next_gref)
    }

    fn end_access(&mut self, gref: u32) -> Result<(), FakeError> {
        self.call("end_access", format_args!("{gref}"))?;
        self.grants
            .remove(&gref)
            .map(|_| ())
            .ok_or(FakeError::Invalid)
    }

    fn pci_read32(&mut self, bdf: Bdf, offset: u8) -> u32 {
        let at = usize::from(offset & !3);
        self.config.get(&bdf).map_or(0xffff_ffff, |c| {
            u32::from_le_bytes([c[at], c[at + 1], c[at + 2], c[at + 3]])
        })
    }

    fn pci_write32(&mut self, bdf: Bdf, offset: u8, value: u32) {
        self.journal
            .push(format!("pci_write32 {bdf} {offset:#x} {value:#x}"));
        let at = usize::from(offset & !3);
        if let Some(c) = self.config.get_mut(&bdf) {
            // The status half of the command dword is write-one-to-clear:
            // keep it.
            let mut bytes = value.to_le_bytes();
            if at == 4 {
                bytes[2] = c[6];
                bytes[3] = c[7];
            }
            c[at..at + 4].copy_from_slice(&bytes);
        }
    }

    fn pci_write16(&mut self, bdf: Bdf, offset: u8, value: u16) {
        self.journal
            .push(format!("pci_write16 {bdf} {offset:#x} {value:#x}"));
        let at = usize::from(offset & !1);
        if let Some(c) = self.config.get_mut(&bdf) {
            c[at..at + 2].copy_from_slice(&value.to_le_bytes());
        }
    }

    fn virtio_reset(&mut self, status_at: u64) -> Result<(u8, u8), FakeError> {
        self.call("virtio_reset", format_args!("{status_at:#x}"))?;
        let status = self
            .device_status
            .get_mut(&status_at)
            .ok_or(FakeError::Invalid)?;
        let before = *status;
        *status = 0;
        self.resets += 1;
        Ok((before, 0))
    }

    fn assign_pci(&mut self, domid: u16, bdf: Bdf) -> Result<(), FakeError> {
        self.call("assign_pci", format_args!("{domid} {bdf}"))?;
        if self.domains.values().any(|d| d.assigned.contains(&bdf)) {
            return Err(FakeError::Busy);
        }
        self.domain(domid)?.assigned.push(bdf);
        Ok(())
    }

    fn deassign_pci(&mut self, domid: u16, bdf: Bdf) -> Result<(), FakeError> {
        self.call("deassign_pci", format_args!("{domid} {bdf}"))?;
        let d = self.domain(domid)?;
        let before = d.assigned.len();
        d.assigned.retain(|&b| b != bdf);
        (d.assigned.len() < before)
            .then_some(())
            .ok_or(FakeError::Invalid)
    }

    fn iomem_permission(
        &mut self,
        domid: u16,
        first: u64,
        count: u64,
        allow: bool,
    ) -> Result<(), FakeError> {
        self.call(
            "iomem_permission",
            format_args!("{domid} {first:#x} {count} {allow}"),
        )?;
        let d = self.domain(domid)?;
        if allow {
            d.iomem.push((first, count));
        } else {
            d.iomem.retain(|&r| r != (first, count));
        }
        Ok(())
    }

    fn ioport_permission(
        &mut self,
        domid: u16,
        first: u32,
        count: u32,
        allow: bool,
    ) -> Result<(), FakeError> {
        self.call(
            "ioport_permission",
            format_args!("{domid} {first:#x} {count} {allow}"),
        )?;
        let d = self.domain(domid)?;
        if allow {
            d.ioports.push((first, count));
        } else {
            d.ioports.retain(|&r| r != (first, count));
        }
        Ok(())
    }

    fn prepare_msix(&mut self, bdf: Bdf) -> Result<(), FakeError> {
        self.call("prepare_msix", format_args!("{bdf}"))?;
        if !self.msix.insert(bdf) {
            return Err(FakeError::Busy);
        }
        Ok(())
    }

    fn release_msix(&mut self, bdf: Bdf) -> Result<(), FakeError> {
        self.call("release_msix", format_args!("{bdf}"))?;
        if self.pirqs.values().any(|p| p.bdf == bdf) {
            return Err(FakeError::Busy);
        }
        self.msix
            .remove(&bdf)
            .then_some(())
            .ok_or(FakeError::Invalid)
    }

    fn map_msix_pirq(
        &mut self,
        domid: u16,
        bdf: Bdf,
        entry: u16,
        _table_base: u64,
    ) -> Result<u32, FakeError> {
        self.call("map_msix_pirq", format_args!("{domid} {bdf} {entry}"))?;
        self.domain(domid)?;
        if !self.msix.contains(&bdf) {
            return Err(FakeError::Invalid);
        }
        self.next_pirq += 1;
        self.pirqs.insert(
            self.next_pirq,
            FakePirq {
                domid,
                bdf,
                orphaned: false,
            },
        );
        Ok(self.next_pirq)
    }

    fn unmap_pirq(&mut self, domid: u16, pirq: u32) -> Result<(), FakeError> {
        self.call("unmap_pirq", format_args!("{domid} {pirq}"))?;
        self.domain(domid)?;
        match self.pirqs.get(&pirq) {
            Some(p) if p.domid == domid => {
                self.pirqs.remove(&pirq);
                Ok(())
            }
            _ => Err(FakeError::Invalid),
        }
    }

    fn console_connect(
        &mut self,
        _name: &str,
        domid: u16,
        _mfn: u64,
        _remote_port: u32,
    ) -> Result<FakeConsole, FakeError> {
        self.call("console_connect", format_args!("{domid}"))?;
        self.domain(domid)?;
        let port = self.new_port();
        self.consoles.insert(port);
        Ok(FakeConsole { port, domid })
    }

    fn console_port(console: &FakeConsole) -> u32 {
        console.port
    }

    fn console_drain(&mut self, _console: &mut FakeConsole) -> usize {
        0
    }

    fn console_close(&mut self, console: FakeConsole) {
        self.journal.push(format!("console_close {}", console.port));
        self.consoles.remove(&console.port);
        self.ports.remove(&console.port);
    }

    fn xs_connect(&mut self, xs_domid: u16, ring: FakePage, _port: u32) -> FakeXs {
        self.xs_domid = Some(xs_domid);
        FakeXs {
            domid: xs_domid,
            ring,
        }
    }

    fn xs_introduce(
        &mut self,
        _xs: &mut FakeXs,
        domid: u16,
        _name: &str,
        _store_mfn: u64,
        _store_port: u32,
    ) -> Result<bool, FakeError> {
        self.call("xs_introduce", format_args!("{domid}"))?;
        self.introduced.insert(domid);
        Ok(true)
    }

    fn xs_release(&mut self, _xs: &mut FakeXs, domid: u16) -> Result<(), FakeError> {
        self.call("xs_release", format_args!("{domid}"))?;
        self.introduced.remove(&domid);
        Ok(())
    }

    fn xs_watch_lifecycle(&mut self, _xs: &mut FakeXs) -> Result<(), FakeError> {
        self.call("xs_watch_lifecycle", format_args!(""))?;
        self.lifecycle_watched = true;
        Ok(())
    }

    fn xs_lifecycle_fired(&mut self, _xs: &mut FakeXs) -> bool {
        core::mem::take(&mut self.release_fired)
    }
}

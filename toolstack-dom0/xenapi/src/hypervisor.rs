//! The seam between the toolstack and Xen: what a VM power operation needs
//! from the hypervisor. The host simulator and tests use [`FakeHypervisor`];
//! in dom0 (issue 5 item 7) the implementation sends these requests over the
//! inter-domain channel to the domain builder.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::storage::{FakeSr, SrBackend};
use crate::vbd::VbdDevice;

/// What to build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainSpec {
    /// The VM's uuid (becomes the domain handle).
    pub uuid: String,
    /// The VM's name_label.
    pub name: String,
    /// Memory in bytes (memory_static_max).
    pub memory: u64,
    /// vCPUs at startup (`VCPUs_at_startup`): online when the guest boots.
    pub vcpus: u32,
    /// vCPUs the domain has (`VCPUs_max`, at least `vcpus`): those past
    /// `vcpus` start offline, for the guest to bring up when asked.
    pub vcpus_max: u32,
    /// The VM's `PV_bootloader`: empty to boot `kernel` directly, or
    /// `pygrub` (as xapi spells it) to boot GRUB, which reads the guest's
    /// own `/boot/grub/grub.cfg` from its disk and loads its kernel; then
    /// `kernel` and `ramdisk` are not used (xapi's rule: a bootloader wins).
    pub bootloader: String,
    /// PV kernel path.
    pub kernel: String,
    /// PV ramdisk path.
    pub ramdisk: String,
    /// Kernel command line.
    pub cmdline: String,
    /// The VM's `domain_type` as set (`pv`, `pvh`, `hvm`, `pv_in_pvh`,
    /// `unspecified`): the hypervisor picks the builder by it and refuses
    /// what it cannot build.
    pub domain_type: String,
    /// The domain's credit-scheduler weight (`VCPUs_params` `weight`,
    /// 1..=65535; 256 when unset: `crate::vcpu_params`).
    pub weight: u16,
    /// Its cap, percent of one CPU (`VCPUs_params` `cap`; 0: none).
    pub cap: u16,
}

/// Why a clean shutdown was requested.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownReason {
    /// Power off.
    Poweroff,
    /// Reboot.
    Reboot,
}

impl ShutdownReason {
    /// What `control/shutdown` says for it.
    pub fn control_word(self) -> &'static str {
        match self {
            ShutdownReason::Poweroff => "poweroff",
            ShutdownReason::Reboot => "reboot",
        }
    }
}

/// A hypervisor failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HypervisorError(pub String);

/// A guest network interface (a XenAPI VIF) as the network backend serves
/// it: what dom0 writes to the backend's and the frontend's xenstore
/// directories (`xcp_dom0_board::vif_tree`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VifDevice {
    /// The device number (the VIF's `device`): `N` in `device/vif/N`.
    pub devid: u32,
    /// Its MAC address.
    pub mac: [u8; 6],
    /// Its MTU, bytes.
    pub mtu: u32,
    /// The locking mode the backend enforces, `network_default` resolved
    /// to the network's `default_locking_mode`: `unlocked`, `locked` or
    /// `disabled`.
    pub locking: String,
    /// Addresses a `locked` VIF may send from (IPv4).
    pub ipv4_allowed: Vec<String>,
    /// Addresses a `locked` VIF may send from (IPv6).
    pub ipv6_allowed: Vec<String>,
}

/// What Xen says of a running domain, for `VM_metrics` and `/rrd_updates`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DomainStats {
    /// The memory the domain has, bytes (its pages).
    pub memory_bytes: u64,
    /// Each vCPU's run time since the domain started, ns (vCPU 0 first;
    /// at most [`crate::rrd::MAX_VCPUS`] are looked at).
    pub vcpu_time_ns: Vec<u64>,
}

/// What a hypervisor without a network backend answers a VIF operation.
pub const NO_NETWORK_BACKEND: &str = "no network backend";

/// What a hypervisor without a storage backend answers a VBD operation.
pub const NO_STORAGE_BACKEND: &str = "no storage backend";

/// The operations power management needs. Domains are built paused.
pub trait Hypervisor {
    /// Builds a paused domain; returns its domid.
    fn build(&mut self, spec: &DomainSpec) -> Result<u32, HypervisorError>;
    /// Builds `spec`'s paused domain a bounded step at a time: the first
    /// call begins it, each later one (same VM) carries it on, until
    /// `Built`. The engine has at most one such build at a time
    /// (`power.rs`) and serves other calls between steps. Default: the
    /// whole build at once.
    fn build_step(&mut self, spec: &DomainSpec) -> Result<BuildStep, HypervisorError> {
        self.build(spec).map(BuildStep::Built)
    }
    /// Gives up VM `uuid`'s build begun by [`Hypervisor::build_step`], if
    /// one is in progress: nothing of it is left.
    fn build_abort(&mut self, _uuid: &str) {}
    /// Gives domain `domid` its CPU share (`VCPUs_params` `weight` and
    /// `cap`, already checked: [`crate::vcpu_params`]), before it first
    /// runs and when changed live. Default: nothing to set.
    fn set_cpu_share(
        &mut self,
        _domid: u32,
        _weight: u16,
        _cap: u16,
    ) -> Result<(), HypervisorError> {
        Ok(())
    }
    /// Unpauses a domain.
    fn unpause(&mut self, domid: u32) -> Result<(), HypervisorError>;
    /// Pauses a domain.
    fn pause(&mut self, domid: u32) -> Result<(), HypervisorError>;
    /// Asks the guest to shut down and waits until it has.
    fn shutdown(&mut self, domid: u32, reason: ShutdownReason) -> Result<(), HypervisorError>;
    /// Destroys a domain, releasing its memory (and the relay of its
    /// console).
    fn destroy(&mut self, domid: u32) -> Result<(), HypervisorError>;
    /// Asks the guest to shut down as xapi does: writes `poweroff` or
    /// `reboot` to its xenstore `control/shutdown`, which the guest's
    /// kernel watches and acknowledges by clearing. `Ok(false)` when the
    /// domain has no xenstore tree to ask through (the caller then shuts
    /// it down from outside, [`Hypervisor::shutdown`]).
    fn request_shutdown(
        &mut self,
        _domid: u32,
        _reason: ShutdownReason,
    ) -> Result<bool, HypervisorError> {
        Ok(false)
    }
    /// The host's memory as Xen counts it: (total, free) bytes; `None`
    /// when unknown (the engine then keeps what host_metrics says and
    /// refuses no start for memory).
    fn host_memory(&mut self) -> Option<(u64, u64)> {
        None
    }
    /// Whether the guest acknowledged a [`Hypervisor::request_shutdown`]
    /// (cleared `control/shutdown`); `None` when it cannot be read.
    fn shutdown_acked(&mut self, _domid: u32) -> Option<bool> {
        None
    }
    /// At most `max` bytes domain `domid` wrote to its console from
    /// position `from` on (a position before the kept history reads from
    /// its start), and the position after them; `None` when no console of
    /// `domid` is relayed (it is gone, or was past the cap).
    fn console_read(&mut self, _domid: u32, _from: u64, _max: usize) -> Option<(Vec<u8>, u64)> {
        None
    }
    /// Connects VIF `vif` to domain `domid`: writes the backend's and
    /// the frontend's directories (state Initialising) for the network
    /// domain's netback to serve.
    fn vif_attach(&mut self, _domid: u32, _vif: &VifDevice) -> Result<(), HypervisorError> {
        Err(HypervisorError(String::from(NO_NETWORK_BACKEND)))
    }
    /// Disconnects VIF `devid` of domain `domid`. `force`: removes both
    /// directories at once (a dead domain, `VIF.unplug_force`, or a
    /// backend that closed or ran out of time). Otherwise asks the
    /// backend to close (`online` 0, `state` Closing); the caller then
    /// polls [`Hypervisor::vif_closed`] and calls again with `force`.
    fn vif_detach(
        &mut self,
        _domid: u32,
        _devid: u32,
        _force: bool,
    ) -> Result<(), HypervisorError> {
        Err(HypervisorError(String::from(NO_NETWORK_BACKEND)))
    }
    /// Whether the backend of VIF `devid` of domain `domid` reached
    /// Closed (or is gone) after a [`Hypervisor::vif_detach`] without
    /// `force`; `None` when it cannot be read.
    fn vif_closed(&mut self, _domid: u32, _devid: u32) -> Option<bool> {
        None
    }
    /// Gives the backend of attached VIF `vif.devid` of domain `domid`
    /// its new rules (`locking`, `ipv4_allowed`, `ipv6_allowed`), which
    /// apply at once, as xapi's do.
    fn vif_rules(&mut self, _domid: u32, _vif: &VifDevice) -> Result<(), HypervisorError> {
        Err(HypervisorError(String::from(NO_NETWORK_BACKEND)))
    }
    /// The backend of the SR whose uuid is `sr_uuid` (the storage
    /// domain's SR engine); `None` when no backend serves it (every SR
    /// operation then fails SR_HAS_NO_PBDS).
    fn sr(&mut self, _sr_uuid: &str) -> Option<&mut dyn SrBackend> {
        None
    }
    /// Connects VBD `vbd` to domain `domid`: writes the backend's and the
    /// frontend's directories (state Initialising) for the storage
    /// domain's blkback to serve (`xcp_dom0_board::vbd_tree`).
    fn vbd_attach(&mut self, _domid: u32, _vbd: &VbdDevice) -> Result<(), HypervisorError> {
        Err(HypervisorError(String::from(NO_STORAGE_BACKEND)))
    }
    /// Disconnects VBD `devid` of domain `domid`, as
    /// [`Hypervisor::vif_detach`] does VIFs: `force` removes both
    /// directories at once, else the backend is asked to close and the
    /// caller polls [`Hypervisor::vbd_closed`].
    fn vbd_detach(
        &mut self,
        _domid: u32,
        _devid: u32,
        _force: bool,
    ) -> Result<(), HypervisorError> {
        Err(HypervisorError(String::from(NO_STORAGE_BACKEND)))
    }
    /// Changes the medium of attached CD VBD `vbd.devid` of `domid` to
    /// `vbd.vdi` (None: ejected), for `VBD.insert` / `VBD.eject` on a
    /// running guest. Default: refused (no media change).
    fn vbd_change_media(&mut self, _domid: u32, _vbd: &VbdDevice) -> Result<(), HypervisorError> {
        Err(HypervisorError(
            "changing a CD on a running guest is not supported".into(),
        ))
    }
    /// Whether the backend of VBD `devid` of domain `domid` reached
    /// Closed (or is gone) after a graceful [`Hypervisor::vbd_detach`];
    /// `None` when it cannot be read.
    fn vbd_closed(&mut self, _domid: u32, _devid: u32) -> Option<bool> {
        None
    }
    /// Puts client input into domain `domid`'s console: how many bytes
    /// went in (0 when its input ring is full); `None` when no console of
    /// `domid` is relayed.
    fn console_write(&mut self, _domid: u32, _bytes: &[u8]) -> Option<usize> {
        None
    }
    /// The value of `path` (relative to the domain's home,
    /// `/local/domain/<domid>`) in domain `domid`'s xenstore tree; `None`
    /// when it is absent or cannot be read. What a guest writes there is
    /// its own claim: `guest_metrics.rs` bounds and checks it.
    fn guest_read(&mut self, _domid: u32, _path: &str) -> Option<Vec<u8>> {
        None
    }
    /// The children of `path` (relative to the domain's home) in domain
    /// `domid`'s xenstore tree; `None` when absent or unreadable.
    fn guest_list(&mut self, _domid: u32, _path: &str) -> Option<Vec<String>> {
        None
    }
    /// What Xen says of domain `domid` now; `None` when unknown.
    fn domain_stats(&mut self, _domid: u32) -> Option<DomainStats> {
        None
    }
    /// Each physical CPU's idle time since boot, ns, in CPU order; `None`
    /// when unknown.
    fn host_cpu_idle_ns(&mut self) -> Option<Vec<u64>> {
        None
    }
}

/// What [`Hypervisor::build_step`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildStep {
    /// The domain is built (paused): its domid.
    Built(u32),
    /// More steps to go.
    Pending,
}

/// State of a fake domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FakeState {
    /// Built or paused.
    Paused,
    /// Running.
    Running,
    /// Shut down, awaiting destroy.
    Shutdown,
}

/// An in-memory hypervisor: domids from 1, optional injected failure. By
/// default a network backend runs and closes VIFs when asked.
#[derive(Clone, Debug)]
pub struct FakeHypervisor {
    /// Live domains.
    pub domains: BTreeMap<u32, FakeState>,
    next: u32,
    /// When set, the next build fails with this message.
    pub fail_next_build: Option<String>,
    /// Each domain's console: what it wrote, and the input it has not
    /// read (at most [`FAKE_INPUT_ROOM`] bytes).
    pub consoles: BTreeMap<u32, (Vec<u8>, Vec<u8>)>,
    /// Domains with a xenstore tree: their `control/shutdown` (empty when
    /// nothing is asked or the guest acknowledged). Others are shut down
    /// from outside.
    pub control: BTreeMap<u32, String>,
    /// Whether built domains get a xenstore tree (a guest with PV drivers).
    pub with_xenstore: bool,
    /// The host's (total, free) memory, bytes, if the test sets it; each
    /// build takes the domain's memory from it and each destroy gives it
    /// back.
    pub memory: Option<(u64, u64)>,
    /// Memory of each live domain, bytes.
    pub domain_memory: BTreeMap<u32, u64>,
    /// The spec of every domain built, by domid.
    pub specs: BTreeMap<u32, DomainSpec>,
    /// Whether a network backend runs (else VIF calls fail as the
    /// default methods do).
    pub network_backend: bool,
    /// Every VIF call, in order.
    pub vif_calls: Vec<FakeVifCall>,
    /// The VIFs connected now: (domid, devid) to the device, and whether
    /// its backend was asked to close.
    pub vifs: BTreeMap<(u32, u32), (VifDevice, bool)>,
    /// Whether the fake backend closes when asked (else it ignores the
    /// request, and a graceful detach runs out of time).
    pub vif_backend_closes: bool,
    /// When set, `vif_attach` of this device fails (once) with this
    /// message.
    pub fail_vif_attach: Option<(u32, String)>,
    /// The SR every SR uuid reaches (one fake SR of 100 GiB, thin); `None`
    /// for no storage backend.
    pub storage: Option<FakeSr>,
    /// Every VBD call, in order.
    pub vbd_calls: Vec<FakeVbdCall>,
    /// The VBDs connected now: (domid, devid) to the device, and whether
    /// its backend was asked to close.
    pub vbds: BTreeMap<(u32, u32), (VbdDevice, bool)>,
    /// Whether the fake blkback closes when asked.
    pub vbd_backend_closes: bool,
    /// When set, `vbd_attach` of this devid fails (once) with this
    /// message.
    pub fail_vbd_attach: Option<(u32, String)>,
    /// Each domain's xenstore nodes below its home, by domid (what its
    /// guest agent wrote: `data/os_name`, `attr/vif/0/ipv4/0`...).
    pub guest_nodes: BTreeMap<u32, BTreeMap<String, Vec<u8>>>,
    /// Guest reads and lists made, all domains (tests bound them).
    pub guest_ops: u64,
    /// Each domain's vCPU times, ns, if the test sets them (else every
    /// running domain's vCPUs count 0).
    pub vcpu_time_ns: BTreeMap<u32, Vec<u64>>,
    /// Each physical CPU's idle time, ns, if the test sets it.
    pub cpu_idle_ns: Option<Vec<u64>>,
    /// Steps a [`Hypervisor::build_step`] build answers `Pending` before
    /// it builds (0: at once, as `build`).
    pub build_steps: u32,
    /// The build in progress: the VM's uuid and the steps left.
    pub stepping: Option<(String, u32)>,
    /// Every `build_step` call, by VM uuid, in order.
    pub build_step_calls: Vec<String>,
    /// Builds given up (`build_abort` of a build in progress), by uuid.
    pub aborted_builds: Vec<String>,
    /// Each live domain's CPU share as set: (weight, cap).
    pub cpu_shares: BTreeMap<u32, (u16, u16)>,
    /// When set, the next `set_cpu_share` fails with this message.
    pub fail_cpu_share: Option<String>,
}

/// A VBD call [`FakeHypervisor`] saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FakeVbdCall {
    /// `vbd_attach(domid, device)`.
    Attach(u32, VbdDevice),
    /// `vbd_detach(domid, devid, force)`.
    Detach(u32, u32, bool),
    /// `vbd_change_media(domid, device)`.
    Media(u32, VbdDevice),
}

/// A VIF call [`FakeHypervisor`] saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FakeVifCall {
    /// `vif_attach(domid, device)`.
    Attach(u32, VifDevice),
    /// `vif_detach(domid, devid, force)`.
    Detach(u32, u32, bool),
    /// `vif_rules(domid, device)`.
    Rules(u32, VifDevice),
}

impl Default for FakeHypervisor {
    fn default() -> Self {
        FakeHypervisor {
            domains: BTreeMap::new(),
            next: 0,
            fail_next_build: None,
            consoles: BTreeMap::new(),
            control: BTreeMap::new(),
            with_xenstore: false,
            memory: None,
            domain_memory: BTreeMap::new(),
            specs: BTreeMap::new(),
            network_backend: true,
            vif_calls: Vec::new(),
            vifs: BTreeMap::new(),
            vif_backend_closes: true,
            fail_vif_attach: None,
            storage: Some(FakeSr::new(100 << 30)),
            vbd_calls: Vec::new(),
            vbds: BTreeMap::new(),
            vbd_backend_closes: true,
            fail_vbd_attach: None,
            guest_nodes: BTreeMap::new(),
            guest_ops: 0,
            vcpu_time_ns: BTreeMap::new(),
            cpu_idle_ns: None,
            build_steps: 0,
            stepping: None,
            build_step_calls: Vec::new(),
            aborted_builds: Vec::new(),
            cpu_shares: BTreeMap::new(),
            fail_cpu_share: None,
        }
    }
}

/// Input a fake console holds before it is full.
pub const FAKE_INPUT_ROOM: usize = 16;

impl FakeHypervisor {
    fn get(&mut self, domid: u32) -> Result<&mut FakeState, HypervisorError> {
        self.domains
            .get_mut(&domid)
            .ok_or_else(|| HypervisorError(alloc::format!("no domain {domid}")))
    }
}

impl Hypervisor for FakeHypervisor {
    fn build(&mut self, spec: &DomainSpec) -> Result<u32, HypervisorError> {
        if let Some(m) = self.fail_next_build.take() {
            return Err(HypervisorError(m));
        }
        if let Some((_, free)) = self.memory.as_mut() {
            *free = free
                .checked_sub(spec.memory)
                .ok_or_else(|| HypervisorError(String::from("out of memory")))?;
        }
        self.next = self.next.max(1);
        let id = self.next;
        self.next += 1;
        self.domains.insert(id, FakeState::Paused);
        self.consoles.insert(id, (Vec::new(), Vec::new()));
        if self.with_xenstore {
            self.control.insert(id, String::new());
        }
        self.domain_memory.insert(id, spec.memory);
        self.specs.insert(id, spec.clone());
        Ok(id)
    }
    fn set_cpu_share(&mut self, domid: u32, weight: u16, cap: u16) -> Result<(), HypervisorError> {
        if let Some(m) = self.fail_cpu_share.take() {
            return Err(HypervisorError(m));
        }
        self.get(domid)?;
        self.cpu_shares.insert(domid, (weight, cap));
        Ok(())
    }
    fn unpause(&mut self, domid: u32) -> Result<(), HypervisorError> {
        *self.get(domid)? = FakeState::Running;
        Ok(())
    }
    fn pause(&mut self, domid: u32) -> Result<(), HypervisorError> {
        *self.get(domid)? = FakeState::Paused;
        Ok(())
    }
    fn shutdown(&mut self, domid: u32, _reason: ShutdownReason) -> Result<(), HypervisorError> {
        *self.get(domid)? = FakeState::Shutdown;
        Ok(())
    }
    fn destroy(&mut self, domid: u32) -> Result<(), HypervisorError> {
        self.consoles.remove(&domid);
        self.control.remove(&domid);
        self.guest_nodes.remove(&domid);
        self.vcpu_time_ns.remove(&domid);
        self.cpu_shares.remove(&domid);
        if let (Some((_, free)), Some(m)) =
            (self.memory.as_mut(), self.domain_memory.remove(&domid))
        {
            *free += m;
        }
        self.domains
            .remove(&domid)
            .map(|_| ())
            .ok_or_else(|| HypervisorError(alloc::format!("no domain {domid}")))
    }
    fn request_shutdown(
        &mut self,
        domid: u32,
        reason: ShutdownReason,
    ) -> Result<bool, HypervisorError> {
        self.get(domid)?;
        let Some(control) = self.control.get_mut(&domid) else {
            return Ok(false);
        };
        *control = String::from(reason.control_word());
        Ok(true)
    }
    fn shutdown_acked(&mut self, domid: u32) -> Option<bool> {
        self.control.get(&domid).map(String::is_empty)
    }
    fn host_memory(&mut self) -> Option<(u64, u64)> {
        self.memory
    }
    fn console_read(&mut self, domid: u32, from: u64, max: usize) -> Option<(Vec<u8>, u64)> {
        let (out, _) = self.consoles.get(&domid)?;
        let from = (from as usize).min(out.len());
        let end = out.len().min(from + max);
        Some((out[from..end].to_vec(), end as u64))
    }
    fn vif_attach(&mut self, domid: u32, vif: &VifDevice) -> Result<(), HypervisorError> {
        if !self.network_backend {
            return Err(HypervisorError(String::from(NO_NETWORK_BACKEND)));
        }
        self.vif_calls.push(FakeVifCall::Attach(domid, vif.clone()));
        if self.fail_vif_attach.as_ref().map(|f| f.0) == Some(vif.devid) {
            let (_, m) = self.fail_vif_attach.take().expect("checked");
            return Err(HypervisorError(m));
        }
        self.get(domid)?;
        if self.vifs.contains_key(&(domid, vif.devid)) {
            return Err(HypervisorError(alloc::format!(
                "vif {} of domain {domid} exists",
                vif.devid
            )));
        }
        self.vifs.insert((domid, vif.devid), (vif.clone(), false));
        Ok(())
    }
    fn vif_detach(&mut self, domid: u32, devid: u32, force: bool) -> Result<(), HypervisorError> {
        if !self.network_backend {
            return Err(HypervisorError(String::from(NO_NETWORK_BACKEND)));
        }
        self.vif_calls
            .push(FakeVifCall::Detach(domid, devid, force));
        if force {
            self.vifs.remove(&(domid, devid));
        } else if let Some((_, closing)) = self.vifs.get_mut(&(domid, devid)) {
            *closing = true;
        }
        Ok(())
    }
    fn vif_closed(&mut self, domid: u32, devid: u32) -> Option<bool> {
        match self.vifs.get(&(domid, devid)) {
            None => Some(true),
            Some((_, closing)) => Some(*closing && self.vif_backend_closes),
        }
    }
    fn vif_rules(&mut self, domid: u32, vif: &VifDevice) -> Result<(), HypervisorError> {
        if !self.network_backend {
            return Err(HypervisorError(String::from(NO_NETWORK_BACKEND)));
        }
        self.vif_calls.push(FakeVifCall::Rules(domid, vif.clone()));
        match self.vifs.get_mut(&(domid, vif.devid)) {
            Some((dev, _)) => {
                *dev = vif.clone();
                Ok(())
            }
            None => Err(HypervisorError(alloc::format!(
                "vif {} of domain {domid} is not attached",
                vif.devid
            ))),
        }
    }
    fn sr(&mut self, _sr_uuid: &str) -> Option<&mut dyn SrBackend> {
        self.storage.as_mut().map(|s| s as &mut dyn SrBackend)
    }
    fn vbd_attach(&mut self, domid: u32, vbd: &VbdDevice) -> Result<(), HypervisorError> {
        if self.storage.is_none() {
            return Err(HypervisorError(String::from(NO_STORAGE_BACKEND)));
        }
        self.vbd_calls.push(FakeVbdCall::Attach(domid, vbd.clone()));
        if self.fail_vbd_attach.as_ref().map(|f| f.0) == Some(vbd.devid) {
            let (_, m) = self.fail_vbd_attach.take().expect("checked");
            return Err(HypervisorError(m));
        }
        self.get(domid)?;
        if self.vbds.contains_key(&(domid, vbd.devid)) {
            return Err(HypervisorError(alloc::format!(
                "vbd {} of domain {domid} exists",
                vbd.devid
            )));
        }
        self.vbds.insert((domid, vbd.devid), (vbd.clone(), false));
        Ok(())
    }
    fn vbd_detach(&mut self, domid: u32, devid: u32, force: bool) -> Result<(), HypervisorError> {
        if self.storage.is_none() {
            return Err(HypervisorError(String::from(NO_STORAGE_BACKEND)));
        }
        self.vbd_calls
            .push(FakeVbdCall::Detach(domid, devid, force));
        if force {
            self.vbds.remove(&(domid, devid));
        } else if let Some((_, closing)) = self.vbds.get_mut(&(domid, devid)) {
            *closing = true;
        }
        Ok(())
    }
    fn vbd_change_media(&mut self, domid: u32, vbd: &VbdDevice) -> Result<(), HypervisorError> {
        self.vbd_calls.push(FakeVbdCall::Media(domid, vbd.clone()));
        match self.vbds.get_mut(&(domid, vbd.devid)) {
            Some((dev, _)) => {
                *dev = vbd.clone();
                Ok(())
            }
            None => Err(HypervisorError(alloc::format!(
                "vbd {} of domain {domid} is not attached",
                vbd.devid
            ))),
        }
    }
    fn vbd_closed(&mut self, domid: u32, devid: u32) -> Option<bool> {
        match self.vbds.get(&(domid, devid)) {
            None => Some(true),
            Some((_, closing)) => Some(*closing && self.vbd_backend_closes),
        }
    }
    fn console_write(&mut self, domid: u32, bytes: &[u8]) -> Option<usize> {
        let (_, input) = self.consoles.get_mut(&domid)?;
        let n = bytes.len().min(FAKE_INPUT_ROOM - input.len());
        input.extend_from_slice(&bytes[..n]);
        Some(n)
    }
    fn guest_read(&mut self, domid: u32, path: &str) -> Option<Vec<u8>> {
        self.guest_ops += 1;
        self.guest_nodes.get(&domid)?.get(path).cloned()
    }
    fn guest_list(&mut self, domid: u32, path: &str) -> Option<Vec<String>> {
        self.guest_ops += 1;
        let nodes = self.guest_nodes.get(&domid)?;
        let prefix = alloc::format!("{path}/");
        let mut children: Vec<String> = nodes
            .keys()
            .filter_map(|k| k.strip_prefix(prefix.as_str()))
            .map(|rest| String::from(rest.split('/').next().unwrap_or(rest)))
            .collect();
        children.dedup();
        if children.is_empty() {
            return None;
        }
        Some(children)
    }
    fn domain_stats(&mut self, domid: u32) -> Option<DomainStats> {
        let memory_bytes = *self.domain_memory.get(&domid)?;
        let vcpus = self.specs.get(&domid).map_or(1, |s| s.vcpus) as usize;
        let vcpu_time_ns = self
            .vcpu_time_ns
            .get(&domid)
            .cloned()
            .unwrap_or_else(|| alloc::vec![0; vcpus]);
        Some(DomainStats {
            memory_bytes,
            vcpu_time_ns,
        })
    }
    fn host_cpu_idle_ns(&mut self) -> Option<Vec<u64>> {
        self.cpu_idle_ns.clone()
    }
    fn build_step(&mut self, spec: &DomainSpec) -> Result<BuildStep, HypervisorError> {
        self.build_step_calls.push(spec.uuid.clone());
        if self.build_steps == 0 {
            return self.build(spec).map(BuildStep::Built);
        }
        match self.stepping.take() {
            None => {
                self.stepping = Some((spec.uuid.clone(), self.build_steps));
                Ok(BuildStep::Pending)
            }
            Some((uuid, left)) if uuid == spec.uuid => {
                if left > 1 {
                    self.stepping = Some((uuid, left - 1));
                    Ok(BuildStep::Pending)
                } else {
                    self.build(spec).map(BuildStep::Built)
                }
            }
            Some(other) => {
                let uuid = other.0.clone();
                self.stepping = Some(other);
                Err(HypervisorError(alloc::format!(
                    "the build of {uuid} is in progress"
                )))
            }
        }
    }
    fn build_abort(&mut self, uuid: &str) {
        if self.stepping.as_ref().is_some_and(|(u, _)| u == uuid) {
            self.stepping = None;
            self.aborted_builds.push(String::from(uuid));
        }
    }
}

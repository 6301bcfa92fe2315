//! The seam between the toolstack and Xen: what a VM power operation needs
//! from the hypervisor. The host simulator and tests use [`FakeHypervisor`];
//! in dom0 (issue 5 item 7) the implementation sends these requests over the
//! inter-domain channel to the domain builder.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

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

/// The operations power management needs. Domains are built paused.
pub trait Hypervisor {
    /// Builds a paused domain; returns its domid.
    fn build(&mut self, spec: &DomainSpec) -> Result<u32, HypervisorError>;
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
    /// Puts client input into domain `domid`'s console: how many bytes
    /// went in (0 when its input ring is full); `None` when no console of
    /// `domid` is relayed.
    fn console_write(&mut self, _domid: u32, _bytes: &[u8]) -> Option<usize> {
        None
    }
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

/// An in-memory hypervisor: domids from 1, optional injected failure.
#[derive(Clone, Debug, Default)]
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
    fn console_write(&mut self, domid: u32, bytes: &[u8]) -> Option<usize> {
        let (_, input) = self.consoles.get_mut(&domid)?;
        let n = bytes.len().min(FAKE_INPUT_ROOM - input.len());
        input.extend_from_slice(&bytes[..n]);
        Some(n)
    }
}

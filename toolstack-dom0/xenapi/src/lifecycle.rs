//! A VM's domain stopping on its own: the guest powered off, rebooted or
//! crashed (or its domain vanished) without a XenAPI call asking for it.
//!
//! The board watches the domids [`Engine::running_domids`] lists and reports
//! a stop with [`Engine::domain_stopped`]; the VM then follows its policy,
//! as xapi does:
//!
//! | reason           | field                    | values and what they do |
//! |------------------|--------------------------|-------------------------|
//! | poweroff, other  | `actions_after_shutdown` | destroy → Halted; restart → a new domain, Running |
//! | reboot           | `actions_after_reboot`   | the same |
//! | crash            | `actions_after_crash`    | destroy, coredump_and_destroy → Halted; restart, coredump_and_restart, rename_restart → Running again; preserve → left as it is |
//! | vanished         | —                        | Halted (there is no domain to act on) |
//!
//! We take no core dumps, so `coredump_and_*` act like their plain
//! counterparts; `rename_restart` (keep the crashed domain under another
//! name, start a new one) restarts without keeping the old domain.
//! `preserve` leaves the shut-down domain and the VM record untouched
//! (`Running`, same domid) and stops watching that domid; `VM.hard_shutdown`
//! destroys it.
//!
//! A restart is the same destroy + build + unpause as `VM.hard_reboot`,
//! committed as one WAL frame, so `event.from` sees one `mod` of the VM with
//! the new domid (and one of its VM_metrics). xapi restarts a crashing guest
//! forever; we allow [`MAX_AUTO_RESTARTS`] restarts inside
//! [`RESTART_WINDOW_MS`] (dom0's limit for service domains) and then leave
//! the VM Halted, so a crash loop cannot keep the host building domains.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::engine::Engine;
use crate::error::{ApiError, INTERNAL_ERROR};
use crate::hypervisor::{Hypervisor, ShutdownReason};
use crate::power::vm_class;
use crate::rng::Entropy;
use crate::schema::class;
use crate::value::Instant;
use crate::wal::Storage;

/// Automatic restarts of one VM allowed inside [`RESTART_WINDOW_MS`]; the
/// next stop leaves it Halted.
pub const MAX_AUTO_RESTARTS: usize = 5;
/// The crash-loop window, ms.
pub const RESTART_WINDOW_MS: u64 = 60_000;

/// Why a domain stopped, as the board read it from Xen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The guest powered off (`SHUTDOWN_poweroff`).
    Poweroff,
    /// The guest rebooted (`SHUTDOWN_reboot`).
    Reboot,
    /// The guest crashed (`SHUTDOWN_crash`, `SHUTDOWN_watchdog`).
    Crash,
    /// Any other shutdown code (suspend or soft reset nobody asked for):
    /// treated as a power-off.
    Other,
    /// Xen no longer knows the domain.
    Vanished,
}

/// What became of the VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AfterStop {
    /// Destroyed; the VM is Halted.
    Halted,
    /// Destroyed and started again as `domid`.
    Restarted {
        /// The new domain.
        domid: u32,
    },
    /// Left shut down (`preserve`).
    Preserved,
    /// Restarted too often: destroyed and left Halted.
    GaveUp {
        /// Restarts inside the window.
        restarts: usize,
    },
    /// The restart's build failed; the VM is Halted.
    RestartFailed(String),
}

/// A stop the engine acted on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stopped {
    /// The VM's ref.
    pub vm: String,
    /// Its name_label.
    pub name: String,
    /// The field that decided (empty for a vanished domain).
    pub policy: &'static str,
    /// The outcome.
    pub outcome: AfterStop,
    /// Destroying the old domain failed (it is treated as gone).
    pub destroy_error: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Policy {
    Destroy,
    Restart,
    Preserve,
}

fn policy_of(value: &str) -> Policy {
    let v = value.to_ascii_lowercase();
    match v.as_str() {
        "restart" | "coredump_and_restart" | "rename_restart" => Policy::Restart,
        "preserve" => Policy::Preserve,
        _ => Policy::Destroy,
    }
}

impl<H: Hypervisor, S: Storage, E: Entropy> Engine<H, S, E> {
    /// The domids of the VMs the engine believes run (Running or Paused,
    /// not the control domain, not preserved): what the board watches.
    pub fn running_domids(&self) -> Vec<u32> {
        let vc = vm_class();
        let cd = class(vc);
        let (ps, ctrl, domid) = (
            cd.field("power_state"),
            cd.field("is_control_domain"),
            cd.field("domid"),
        );
        let mut out: Vec<u32> = self
            .db
            .table(vc)
            .objects
            .values()
            .filter(|r| r[ctrl].as_bool() != Some(true))
            .filter(|r| matches!(r[ps].as_str(), Some("Running" | "Paused")))
            .filter_map(|r| u32::try_from(r[domid].as_int()?).ok())
            .filter(|d| !self.preserved.contains(d))
            .collect();
        out.sort_unstable();
        out
    }

    fn vm_with_domid(&self, domid: u32) -> Option<String> {
        let vc = vm_class();
        let cd = class(vc);
        let (ps, ctrl, d) = (
            cd.field("power_state"),
            cd.field("is_control_domain"),
            cd.field("domid"),
        );
        self.db
            .table(vc)
            .objects
            .iter()
            .find(|(_, r)| {
                r[ctrl].as_bool() != Some(true)
                    && matches!(r[ps].as_str(), Some("Running" | "Paused"))
                    && r[d].as_int() == Some(i64::from(domid))
            })
            .map(|(k, _)| k.clone())
    }

    /// Drops restart history older than the window and preserved domids
    /// no VM holds any more (the VM was shut down since), so neither grows
    /// past the VMs that exist.
    fn forget_stale(&mut self, now: Instant) {
        self.auto_restarts.retain(|_, t| {
            t.back()
                .is_some_and(|b| now.0.saturating_sub(b.0) < RESTART_WINDOW_MS)
        });
        let held: Vec<u32> = self
            .preserved
            .iter()
            .copied()
            .filter(|&d| self.vm_with_domid(d).is_some())
            .collect();
        self.preserved = held.into_iter().collect();
    }

    /// Counts a restart of `vm` at `now`; `Err(restarts)` once the window
    /// is full (the history is then cleared for a fresh start).
    fn may_restart(&mut self, vm: &str, now: Instant) -> Result<(), usize> {
        let times = self.auto_restarts.entry(vm.to_string()).or_default();
        while times
            .front()
            .is_some_and(|t| now.0.saturating_sub(t.0) >= RESTART_WINDOW_MS)
        {
            times.pop_front();
        }
        if times.len() >= MAX_AUTO_RESTARTS {
            let n = times.len();
            self.auto_restarts.remove(vm);
            return Err(n);
        }
        times.push_back(now);
        Ok(())
    }

    /// The board saw `domid` stop for `reason`. If a VM runs as that
    /// domain, applies its `actions_after_*` policy through the hypervisor
    /// and commits (WAL, then events) like a power call; returns what was
    /// done. Unknown, preserved or already handled domids are ignored
    /// (`Ok(None)`), so reporting a stop twice is harmless. Errors only when
    /// the WAL fails (the engine is then poisoned, as for any call).
    pub fn domain_stopped(
        &mut self,
        now: Instant,
        domid: u32,
        reason: StopReason,
    ) -> Result<Option<Stopped>, ApiError> {
        if self.poisoned {
            return Err(ApiError::new(INTERNAL_ERROR, &["database unavailable"]));
        }
        self.now = now;
        self.forget_stale(now);
        if self.preserved.contains(&domid) {
            return Ok(None);
        }
        let Some(vm) = self.vm_with_domid(domid) else {
            return Ok(None);
        };
        let name = self
            .vm_field(&vm, "name_label")
            .as_str()
            .unwrap_or("")
            .to_string();
        let field = match reason {
            StopReason::Poweroff | StopReason::Other => "actions_after_shutdown",
            StopReason::Reboot => "actions_after_reboot",
            StopReason::Crash => "actions_after_crash",
            StopReason::Vanished => "",
        };
        let mut policy = if field.is_empty() {
            Policy::Destroy
        } else {
            policy_of(self.vm_field(&vm, field).as_str().unwrap_or(""))
        };
        // A stop asked by VM.clean_shutdown / clean_reboot ends as asked
        // (Halted, or started again), whatever the VM's policy, and
        // releases the parked call.
        let asked = self
            .clean_requests
            .get_mut(&vm)
            .filter(|r| r.domid == domid && !r.done);
        let mut clean_reboot = false;
        if let Some(r) = asked {
            r.done = true;
            match (reason, r.reason) {
                (StopReason::Poweroff, ShutdownReason::Poweroff) => policy = Policy::Destroy,
                (StopReason::Reboot, ShutdownReason::Reboot) => {
                    policy = Policy::Restart;
                    clean_reboot = true;
                }
                _ => {}
            }
        }
        let mut stopped = Stopped {
            vm: vm.clone(),
            name,
            policy: field,
            outcome: AfterStop::Preserved,
            destroy_error: None,
        };
        if policy == Policy::Preserve {
            self.preserved.insert(domid);
            return Ok(Some(stopped));
        }
        if reason != StopReason::Vanished {
            stopped.destroy_error = self.hv.destroy(domid).err().map(|e| e.0);
        }
        self.set_power(&vm, "Halted", -1);
        stopped.outcome = match policy {
            Policy::Restart if clean_reboot => match self.boot(&vm, false) {
                Ok(()) => AfterStop::Restarted {
                    domid: self.domid(&vm),
                },
                Err(e) => AfterStop::RestartFailed(e.params.join(" ")),
            },
            Policy::Restart => match self.may_restart(&vm, now) {
                Ok(()) => match self.boot(&vm, false) {
                    Ok(()) => AfterStop::Restarted {
                        domid: self.domid(&vm),
                    },
                    Err(e) => AfterStop::RestartFailed(e.params.join(" ")),
                },
                Err(restarts) => AfterStop::GaveUp { restarts },
            },
            _ => {
                self.auto_restarts.remove(&vm);
                AfterStop::Halted
            }
        };
        self.commit()?;
        Ok(Some(stopped))
    }
}

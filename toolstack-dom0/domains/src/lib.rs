//! The managed-domain table: which service domains dom0 built, what Xen says
//! about them, why one stopped, and whether to build it again.
//!
//! Read first: xen/include/public/domctl.h (`XEN_DOMINF_*`) and sched.h
//! (`SHUTDOWN_*`). Pure: dom0 feeds it domain-info flags after each
//! VIRQ_DOM_EXC and the current time, and acts on the decisions it returns.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod memory;
pub mod shell;

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;

pub use xen_abi::domctl::{
    XEN_DOMINF_DYING as DOMINF_DYING, XEN_DOMINF_SHUTDOWN as DOMINF_SHUTDOWN,
    XEN_DOMINF_SHUTDOWNMASK as DOMINF_SHUTDOWN_MASK,
    XEN_DOMINF_SHUTDOWNSHIFT as DOMINF_SHUTDOWN_SHIFT,
};
use xen_abi::sched::{
    SHUTDOWN_CRASH, SHUTDOWN_POWEROFF, SHUTDOWN_REBOOT, SHUTDOWN_SOFT_RESET, SHUTDOWN_SUSPEND,
    SHUTDOWN_WATCHDOG,
};

/// Restarts allowed inside [`RESTART_WINDOW_NS`] before dom0 gives up.
pub const MAX_RESTARTS: usize = 5;
/// The crash-loop window.
pub const RESTART_WINDOW_NS: u64 = 60_000_000_000;

/// Why a domain stopped (`SHUTDOWN_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// `SHUTDOWN_poweroff`
    Poweroff,
    /// `SHUTDOWN_reboot`
    Reboot,
    /// `SHUTDOWN_suspend`
    Suspend,
    /// `SHUTDOWN_crash`
    Crash,
    /// `SHUTDOWN_watchdog`
    Watchdog,
    /// `SHUTDOWN_soft_reset`
    SoftReset,
    /// A code this version does not know.
    Unknown(u32),
}

impl Reason {
    /// From the `SHUTDOWN_*` code.
    pub fn from_code(code: u32) -> Reason {
        match code {
            SHUTDOWN_POWEROFF => Reason::Poweroff,
            SHUTDOWN_REBOOT => Reason::Reboot,
            SHUTDOWN_SUSPEND => Reason::Suspend,
            SHUTDOWN_CRASH => Reason::Crash,
            SHUTDOWN_WATCHDOG => Reason::Watchdog,
            SHUTDOWN_SOFT_RESET => Reason::SoftReset,
            n => Reason::Unknown(n),
        }
    }

    /// The word dom0 logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Reason::Poweroff => "poweroff",
            Reason::Reboot => "reboot",
            Reason::Suspend => "suspend",
            Reason::Crash => "crash",
            Reason::Watchdog => "watchdog",
            Reason::SoftReset => "soft_reset",
            Reason::Unknown(_) => "unknown",
        }
    }
}

/// What Xen's domain info says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Observed {
    /// Running, blocked or paused: alive.
    Alive,
    /// Shut down with a reason, waiting for us to destroy it.
    Shutdown(Reason),
    /// Being destroyed.
    Dying,
    /// Xen no longer knows the domid.
    Gone,
}

/// Decodes `XEN_DOMINF_*` flags.
pub fn observe(flags: u32) -> Observed {
    if flags & DOMINF_DYING != 0 {
        Observed::Dying
    } else if flags & DOMINF_SHUTDOWN != 0 {
        Observed::Shutdown(Reason::from_code(
            (flags >> DOMINF_SHUTDOWN_SHIFT) & DOMINF_SHUTDOWN_MASK,
        ))
    } else {
        Observed::Alive
    }
}

/// What dom0 should do about a domain that stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing (still alive).
    None,
    /// Destroy it and build it again.
    Restart,
    /// Destroy it and leave it down (config says so, or it crash-loops).
    Destroy,
}

/// One managed domain.
#[derive(Clone, Debug)]
pub struct Managed {
    /// Name from the platform config.
    pub name: String,
    /// Rebuild when it stops.
    pub restart: bool,
    /// Times it was rebuilt.
    pub restarts: u64,
    recent: VecDeque<u64>,
}

/// The table, by domid.
#[derive(Default, Debug)]
pub struct Domains {
    by_domid: BTreeMap<u16, Managed>,
}

impl Domains {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a domain dom0 just built.
    pub fn insert(&mut self, domid: u16, name: &str, restart: bool) {
        let restarts = self
            .by_domid
            .values()
            .find(|m| m.name == name)
            .map_or(0, |m| m.restarts);
        self.by_domid.insert(
            domid,
            Managed {
                name: String::from(name),
                restart,
                restarts,
                recent: VecDeque::new(),
            },
        );
    }

    /// Moves `name`'s history to its new domid after a rebuild.
    pub fn rebuilt(&mut self, old: u16, new: u16) {
        if let Some(mut m) = self.by_domid.remove(&old) {
            m.restarts += 1;
            self.by_domid.insert(new, m);
        }
    }

    /// Puts `old`'s entry (taken out with [`Domains::remove`] before the
    /// rebuild) back as `new`'s, one restart more: the rebuild may have
    /// reused the domid, and its fresh entry must not erase the history.
    pub fn rebuilt_as(&mut self, mut old: Managed, new: u16) {
        old.restarts += 1;
        self.by_domid.insert(new, old);
    }

    /// Forgets a domain.
    pub fn remove(&mut self, domid: u16) -> Option<Managed> {
        self.by_domid.remove(&domid)
    }

    /// The entry for `domid`.
    pub fn get(&self, domid: u16) -> Option<&Managed> {
        self.by_domid.get(&domid)
    }

    /// Managed domids.
    pub fn domids(&self) -> impl Iterator<Item = u16> + '_ {
        self.by_domid.keys().copied()
    }

    /// Number of managed domains.
    pub fn len(&self) -> usize {
        self.by_domid.len()
    }

    /// True when none is managed.
    pub fn is_empty(&self) -> bool {
        self.by_domid.is_empty()
    }

    /// Decides what to do after observing `domid` at time `now` (ns).
    pub fn decide(&mut self, domid: u16, observed: Observed, now: u64) -> Action {
        let Some(m) = self.by_domid.get_mut(&domid) else {
            return Action::None;
        };
        match observed {
            Observed::Alive | Observed::Dying => Action::None,
            Observed::Shutdown(_) | Observed::Gone if !m.restart => Action::Destroy,
            Observed::Shutdown(_) | Observed::Gone => {
                while m
                    .recent
                    .front()
                    .is_some_and(|&t| now.saturating_sub(t) > RESTART_WINDOW_NS)
                {
                    m.recent.pop_front();
                }
                if m.recent.len() >= MAX_RESTARTS {
                    return Action::Destroy;
                }
                m.recent.push_back(now);
                Action::Restart
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_domain_info_flags() {
        assert_eq!(observe(1 << 5), Observed::Alive);
        assert_eq!(
            observe(DOMINF_SHUTDOWN | (3 << 16)),
            Observed::Shutdown(Reason::Crash)
        );
        assert_eq!(
            observe(DOMINF_SHUTDOWN | (1 << 16)),
            Observed::Shutdown(Reason::Reboot)
        );
        assert_eq!(
            observe(DOMINF_SHUTDOWN),
            Observed::Shutdown(Reason::Poweroff)
        );
        assert_eq!(
            observe(DOMINF_SHUTDOWN | (9 << 16)),
            Observed::Shutdown(Reason::Unknown(9))
        );
        assert_eq!(observe(DOMINF_DYING | DOMINF_SHUTDOWN), Observed::Dying);
        assert_eq!(Reason::Crash.as_str(), "crash");
    }

    #[test]
    fn restart_policy_follows_config_and_stops_crash_loops() {
        let mut d = Domains::new();
        d.insert(1, "net", true);
        d.insert(2, "once", false);
        let crash = Observed::Shutdown(Reason::Crash);
        assert_eq!(d.decide(1, Observed::Alive, 0), Action::None);
        assert_eq!(d.decide(2, crash, 0), Action::Destroy);
        assert_eq!(d.decide(9, crash, 0), Action::None);
        for i in 0..MAX_RESTARTS as u64 {
            assert_eq!(d.decide(1, crash, i), Action::Restart);
        }
        assert_eq!(d.decide(1, crash, 10), Action::Destroy, "crash loop");
        // Outside the window the budget is back.
        assert_eq!(d.decide(1, crash, RESTART_WINDOW_NS + 100), Action::Restart);
    }

    #[test]
    fn rebuild_moves_history_to_the_new_domid() {
        let mut d = Domains::new();
        d.insert(3, "t", true);
        d.rebuilt(3, 4);
        assert!(d.get(3).is_none());
        assert_eq!(d.get(4).unwrap().restarts, 1);
        assert_eq!(d.domids().collect::<alloc::vec::Vec<_>>(), [4]);
        assert_eq!(d.remove(4).unwrap().name, "t");
        assert!(d.is_empty());
    }
}

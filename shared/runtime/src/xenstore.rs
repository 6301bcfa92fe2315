//! The domain's xenstore connection: the xenbus client over the ring page
//! and event channel from start_info (or, for dom0, a page it granted to
//! the xenstore domain), waiting in Xen between requests.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use xcp_xenbus::{Client, Error, Wait, Xenbus};

use crate::shared_page::PageView;

/// Longest wait for xenstored before a call fails with `Timeout`.
pub const TIMEOUT_NS: u64 = 5_000_000_000;
/// How often a waiting client kicks xenstored again. Under load on the rig a
/// kick was seen lost (both clients of xenstore-dom stalled until their
/// next request); a repeated kick costs nothing and bounds such a stall.
/// The stress case (`xenstore_dom_loses_no_wake_up_under_stress`, re-kick
/// off) found no lost kick, but waits of up to 0.8 s that ended without
/// one when the host was loaded: an answer after an extra kick does not
/// show that the kick was needed.
pub const REKICK_NS: u64 = 50_000_000;

static REKICK: AtomicBool = AtomicBool::new(true);
static WAITS: AtomicU64 = AtomicU64::new(0);
static LONGEST_NS: AtomicU64 = AtomicU64::new(0);
static LONGEST_AT_NS: AtomicU64 = AtomicU64::new(0);
static SLOW: AtomicU64 = AtomicU64::new(0);
static REKICKS: AtomicU64 = AtomicU64::new(0);
static TIMEOUTS: AtomicU64 = AtomicU64::new(0);

/// Turns the re-kick off (or back on), for the stress test that looks for
/// lost wake-ups: without it a lost kick stalls the call to its timeout.
pub fn set_rekick(on: bool) {
    REKICK.store(on, Ordering::Relaxed);
}

/// What this domain's xenstore waits measured since boot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WaitStats {
    /// Waits for the event channel (one or more per call).
    pub waits: u64,
    /// The longest of them, ns.
    pub longest_ns: u64,
    /// When the longest ended (ns of system time).
    pub longest_at_ns: u64,
    /// Waits longer than [`REKICK_NS`].
    pub slow: u64,
    /// Extra kicks sent (re-kick on).
    pub rekicks: u64,
    /// Waits that ended in `Timeout`.
    pub timeouts: u64,
}

/// The figures of every wait so far.
pub fn wait_stats() -> WaitStats {
    WaitStats {
        waits: WAITS.load(Ordering::Relaxed),
        longest_ns: LONGEST_NS.load(Ordering::Relaxed),
        longest_at_ns: LONGEST_AT_NS.load(Ordering::Relaxed),
        slow: SLOW.load(Ordering::Relaxed),
        rekicks: REKICKS.load(Ordering::Relaxed),
        timeouts: TIMEOUTS.load(Ordering::Relaxed),
    }
}

fn record(started: u64) {
    let now = crate::time::now_ns();
    let took = now.saturating_sub(started);
    WAITS.fetch_add(1, Ordering::Relaxed);
    // One vCPU and no upcalls: nothing else updates these meanwhile.
    if took > LONGEST_NS.load(Ordering::Relaxed) {
        LONGEST_NS.store(took, Ordering::Relaxed);
        LONGEST_AT_NS.store(now, Ordering::Relaxed);
    }
    if took > REKICK_NS {
        SLOW.fetch_add(1, Ordering::Relaxed);
    }
}

/// The event channel to xenstored, waited on with SCHEDOP_poll.
pub struct PortWait {
    /// Our end of the xenstore event channel.
    pub port: u32,
}

impl Wait for PortWait {
    fn notify(&mut self) {
        crate::evtchn::send(self.port);
    }

    fn wait(&mut self) -> Result<(), Error> {
        let started = crate::time::now_ns();
        let deadline = started + TIMEOUT_NS;
        let mut rekicks = 0u32;
        loop {
            let slice = (crate::time::now_ns() + REKICK_NS).min(deadline);
            if crate::event_loop::poll_one(self.port, slice) {
                record(started);
                if rekicks > 0 {
                    log::warn!(
                        "xenstore answered after {rekicks} extra kick(s) on port {}",
                        self.port
                    );
                }
                return Ok(());
            }
            if crate::time::now_ns() >= deadline {
                record(started);
                TIMEOUTS.fetch_add(1, Ordering::Relaxed);
                return Err(Error::Timeout);
            }
            if REKICK.load(Ordering::Relaxed) {
                rekicks += 1;
                REKICKS.fetch_add(1, Ordering::Relaxed);
                crate::evtchn::send(self.port);
            }
        }
    }
}

/// A blocking xenstore handle over a page that lives as long as the domain.
pub type Store = Xenbus<PageView<'static>, PortWait>;

/// A domU's connection from its start_info (`store_mfn`, `store_evtchn`);
/// None when the builder gave it no xenstore.
pub fn connect(boot: &crate::Boot) -> Option<Store> {
    let si = boot.start_info;
    if si.store_mfn == 0 {
        return None;
    }
    let page = crate::paging::boot_page(si.store_mfn)?;
    Some(Xenbus::new(
        Client::default(),
        page,
        PortWait {
            port: si.store_evtchn,
        },
    ))
}

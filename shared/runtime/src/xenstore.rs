//! The domain's xenstore connection: the xenbus client over the ring page
//! and event channel from start_info (or, for dom0, a page it granted to
//! the xenstore domain), waiting in Xen between requests.

use core::sync::atomic::{AtomicU64, Ordering};

use xcp_xenbus::{Client, Error, Wait, Xenbus};

use crate::shared_page::PageView;

/// Longest wait for xenstored before a call fails with `Timeout`.
pub const TIMEOUT_NS: u64 = 5_000_000_000;
/// A wait longer than this counts as slow in [`WaitStats`].
///
/// There is no re-kick. A client used to kick xenstored again every 50 ms
/// of waiting, because under load on the rig both clients of xenstore-dom
/// were once seen stalled until their next request. Without it, the stress
/// case (`xenstore_dom_loses_no_wake_up_under_stress`) on a loaded host
/// found the cause, and it is not ours: with two CPUs, Xen under QEMU's TCG
/// loses cross-CPU wake-ups. The client's requests sat unread in the ring
/// with xenstore-dom's port pending, and xenstore-dom's own 250 ms timer
/// stopped too, until a timer on the other CPU fired 5 s later. With one
/// CPU the same load passes every run, so the rig runs Xen on one
/// (`xcp_boot::qemu`). A lost kick would now show as a `Timeout` and in
/// these figures instead of being hidden, and xenstore-dom serves (and
/// warns about) a ring left unread for a second with its port not pending.
pub const SLOW_NS: u64 = 50_000_000;

static WAITS: AtomicU64 = AtomicU64::new(0);
static LONGEST_NS: AtomicU64 = AtomicU64::new(0);
static LONGEST_AT_NS: AtomicU64 = AtomicU64::new(0);
static SLOW: AtomicU64 = AtomicU64::new(0);
static TIMEOUTS: AtomicU64 = AtomicU64::new(0);

/// What this domain's xenstore waits measured since boot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WaitStats {
    /// Waits for the event channel (one or more per call).
    pub waits: u64,
    /// The longest of them, ns.
    pub longest_ns: u64,
    /// When the longest ended (ns of system time).
    pub longest_at_ns: u64,
    /// Waits longer than [`SLOW_NS`].
    pub slow: u64,
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
    if took > SLOW_NS {
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
        loop {
            if crate::event_loop::poll_one(self.port, deadline) {
                record(started);
                return Ok(());
            }
            if crate::time::now_ns() >= deadline {
                record(started);
                TIMEOUTS.fetch_add(1, Ordering::Relaxed);
                return Err(Error::Timeout);
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

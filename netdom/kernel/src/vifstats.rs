//! When netdom tells dom0 its guest VIFs' counters (`VIF_metrics`).
//!
//! read first: `shared/relay/src/lib.rs` (`ToToolstack::VifStats`).
//!
//! Every [`PERIOD_NS`] the board offers the switch's reports; a batch goes
//! to dom0 only when a counter changed or a VIF appeared or went, and once
//! more after the last change, so dom0's rates fall back to 0 when traffic
//! stops. An idle host sends nothing.

use alloc::vec::Vec;

use xcp_netback::State;
use xcp_relay::VifCounters;

use crate::switch::VifReport;

/// How often the counters are looked at, ns.
pub const PERIOD_NS: u64 = 2_000_000_000;

/// A VIF's counters as dom0 gets them: netback's, and as dropped from the
/// guest also the frames its bridge port refused on the way in.
pub fn counters(report: &VifReport) -> VifCounters {
    let s = &report.stats;
    let refused = report.port.map_or(0, |p| {
        p.drop_runt
            .saturating_add(p.drop_oversize)
            .saturating_add(p.drop_spoofed)
            .saturating_add(p.drop_disabled)
            .saturating_add(p.drop_bad_source)
    });
    VifCounters {
        domid: report.domid,
        devid: report.devid,
        rx_bytes: s.rx_bytes,
        rx_packets: s.rx_packets,
        tx_bytes: s.tx_bytes,
        tx_packets: s.tx_packets,
        rx_dropped: s.rx_dropped.saturating_add(s.rx_errors),
        tx_dropped: s
            .tx_dropped
            .saturating_add(s.tx_errors)
            .saturating_add(refused),
        connected: report.state == State::Connected,
    }
}

/// Decides when a batch goes to dom0.
#[derive(Debug, Default)]
pub struct Pacer {
    /// The last batch sent.
    last: Vec<VifCounters>,
    /// The last batch sent differed from the one before it.
    moving: bool,
    /// When to look next, ns.
    next: u64,
}

impl Pacer {
    /// A pacer that looks at once.
    pub fn new() -> Pacer {
        Pacer::default()
    }

    /// When to look next, ns (for the board's sleep).
    pub fn deadline(&self) -> u64 {
        self.next
    }

    /// At `now` (ns): the batch to send, if it is time and something
    /// changed (or changed at the last look). `reports` is called only
    /// when it is time.
    pub fn poll(
        &mut self,
        now: u64,
        reports: impl FnOnce() -> Vec<VifReport>,
    ) -> Option<Vec<VifCounters>> {
        if now < self.next {
            return None;
        }
        self.next = now.saturating_add(PERIOD_NS);
        let batch: Vec<VifCounters> = reports().iter().map(counters).collect();
        let changed = batch != self.last;
        if !changed && !self.moving {
            return None;
        }
        self.moving = changed;
        self.last.clone_from(&batch);
        Some(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xcp_bridge::PortCounters;
    use xcp_netback::Stats;

    fn report(domid: u16, rx_bytes: u64) -> VifReport {
        VifReport {
            domid,
            devid: 0,
            state: State::Connected,
            stats: Stats {
                rx_bytes,
                rx_packets: rx_bytes / 100,
                ..Stats::default()
            },
            port: None,
        }
    }

    #[test]
    fn counters_name_directions_as_netback_and_add_the_ports_refusals() {
        let r = VifReport {
            domid: 7,
            devid: 2,
            state: State::Connected,
            stats: Stats {
                rx_bytes: 1000,
                rx_packets: 10,
                tx_bytes: 300,
                tx_packets: 3,
                rx_dropped: 4,
                rx_errors: 1,
                tx_dropped: 2,
                tx_errors: 1,
                ..Stats::default()
            },
            port: Some(PortCounters {
                drop_spoofed: 5,
                drop_runt: u64::MAX,
                ..PortCounters::default()
            }),
        };
        let c = counters(&r);
        assert_eq!((c.domid, c.devid), (7, 2));
        assert_eq!((c.rx_bytes, c.rx_packets), (1000, 10));
        assert_eq!((c.tx_bytes, c.tx_packets), (300, 3));
        assert_eq!(c.rx_dropped, 5);
        assert_eq!(c.tx_dropped, u64::MAX, "saturates");
        assert!(c.connected);
        let closed = VifReport {
            state: State::Closed,
            ..r
        };
        assert!(!counters(&closed).connected);
    }

    #[test]
    fn sends_on_change_once_more_after_and_never_while_idle() {
        let mut p = Pacer::new();
        let s = PERIOD_NS;
        // Nothing yet: nothing to say.
        assert_eq!(p.poll(0, Vec::new), None);
        // A VIF appears: sent, then once more unchanged, then silence.
        assert_eq!(p.poll(s, || vec![report(1, 0)]).map(|b| b.len()), Some(1));
        assert!(p.poll(s + 1, || unreachable!("not yet time")).is_none());
        assert_eq!(p.deadline(), 2 * s);
        assert!(p.poll(2 * s, || vec![report(1, 0)]).is_some());
        assert!(p.poll(3 * s, || vec![report(1, 0)]).is_none());
        assert!(p.poll(4 * s, || vec![report(1, 0)]).is_none());
        // Traffic: sent while it moves, and once after it stops.
        let b = p.poll(5 * s, || vec![report(1, 500)]).unwrap();
        assert_eq!(b[0].rx_bytes, 500);
        assert!(p.poll(6 * s, || vec![report(1, 900)]).is_some());
        assert!(p.poll(7 * s, || vec![report(1, 900)]).is_some());
        assert!(p.poll(8 * s, || vec![report(1, 900)]).is_none());
        // The VIF goes: an empty batch says so.
        assert_eq!(p.poll(9 * s, Vec::new), Some(Vec::new()));
    }
}

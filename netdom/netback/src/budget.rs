//! A VIF's memory budget and its transmit rate limit.
//!
//! read first: DESIGN.md "Bounds"; Linux `drivers/net/xen-netback/netback.c`
//! (`tx_credit_exceeded`, `tx_add_credit`) for the credit scheme.
//!
//! The board gives each VIF a byte budget at creation. Half bounds the tx
//! packets in flight (the engine allocates each packet's buffer; it lives
//! until the board completes the plan), half the rx packets in flight (the
//! board's buffers, held until their copies are done). Each plan is counted
//! as its packet's length plus [`PLAN_OVERHEAD`], the fixed cost of its copy
//! list and its pending responses:
//!
//! ```text
//! PLAN_OVERHEAD = MAX_COPIES × size_of(GrantCopy) (≤ 24 B)   = 18 × 24 =  432
//!               + (MAX_SLOTS + MAX_EXTRAS) responses × 8 B   = 22 × 8  =  176
//!               + plan, pending record and Vec headers      ≤             416
//!                                                           = 1024 bytes
//! MIN_BUDGET    = 2 × (MAX_PACKET_LEN + PLAN_OVERHEAD)      = 2 × 66573 = 133146
//! plans in flight, one way ≤ min(RING_SIZE, half / (ETH_HLEN + PLAN_OVERHEAD))
//! ```
//!
//! so one largest packet always fits each way and a flood of runts is
//! bounded by count as well as bytes. Nothing else a frontend does makes
//! the engine allocate: the rings are its own pages, rx buffers are its own
//! grants, and the stalled tx packet (waiting for credit) is one of the
//! counted plans.

use crate::wire::{ETH_HLEN, MAX_PACKET_LEN, MAX_SLOTS};

/// The most extra info slots a tx packet may carry: one of each type.
pub const MAX_EXTRAS: usize = 4;
/// Fixed bytes counted per plan in flight (see the module docs).
pub const PLAN_OVERHEAD: usize = 1024;
/// The least budget a VIF may have: one largest packet each way.
pub const MIN_BUDGET: usize = 2 * (MAX_PACKET_LEN + PLAN_OVERHEAD);
/// Slots of a netif ring on one page (`__RING_SIZE` of 12- and 8-byte
/// slots): at most this many plans can be in flight one way.
pub const RING_SLOTS: usize = 256;

const _: () = assert!(
    (MAX_SLOTS + MAX_EXTRAS) * 8 + MAX_SLOTS * 24 + 416 <= PLAN_OVERHEAD,
    "plan overhead covers its parts"
);

/// A VIF's bounds, derived from its byte budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Bytes of tx plans in flight (packet + overhead each).
    pub tx_bytes: usize,
    /// Bytes of rx plans in flight.
    pub rx_bytes: usize,
    /// Plans in flight one way.
    pub max_plans: usize,
}

/// The budget is below [`MIN_BUDGET`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BudgetTooSmall;

impl Budget {
    /// Splits `bytes` as the module docs say.
    pub fn from_bytes(bytes: usize) -> Result<Budget, BudgetTooSmall> {
        if bytes < MIN_BUDGET {
            return Err(BudgetTooSmall);
        }
        let tx_bytes = bytes / 2;
        let rx_bytes = bytes - tx_bytes;
        let max_plans = (tx_bytes / (ETH_HLEN + PLAN_OVERHEAD)).min(RING_SLOTS);
        Ok(Budget {
            tx_bytes,
            rx_bytes,
            max_plans,
        })
    }
}

/// The cost of a plan for `len` bytes of packet.
pub const fn plan_cost(len: usize) -> usize {
    len + PLAN_OVERHEAD
}

/// A transmit rate limit: `credit_bytes` every `credit_usec` (the `rate=`
/// of an xl `vif` line, as Linux netback's `credit_bytes`/`credit_usec`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Bytes allowed per interval (> 0).
    pub credit_bytes: u64,
    /// The interval, microseconds (> 0).
    pub credit_usec: u64,
}

/// A burst always allowed after a refill, so a 64 KiB GSO packet can leave
/// under any rate (Linux: "allow a burst big enough to transmit a jumbo
/// packet of up to 128kB").
pub const MAX_BURST: u64 = 131_072;

/// Credit state of one VIF; time is microseconds from any origin.
#[derive(Clone, Copy, Debug)]
pub struct Credit {
    rate: Option<Rate>,
    remaining: u64,
    window_start: u64,
}

impl Credit {
    /// Full credit at time `now` (`None`: unlimited).
    pub fn new(rate: Option<Rate>, now: u64) -> Credit {
        let rate = rate.filter(|r| r.credit_bytes > 0 && r.credit_usec > 0);
        Credit {
            rate,
            remaining: rate.map_or(u64::MAX, |r| r.credit_bytes),
            window_start: now,
        }
    }

    /// Spends `size` bytes at `now`, or says when to try again.
    pub fn spend(&mut self, now: u64, size: u64) -> Result<(), u64> {
        let Some(rate) = self.rate else {
            return Ok(());
        };
        let next = self.window_start.saturating_add(rate.credit_usec);
        if now >= next {
            self.window_start = now;
            let burst = MAX_BURST.max(rate.credit_bytes);
            self.remaining = self.remaining.saturating_add(rate.credit_bytes).min(burst);
        }
        if size > self.remaining {
            return Err(self.window_start.saturating_add(rate.credit_usec));
        }
        self.remaining -= size;
        Ok(())
    }

    /// Bytes that may go now without a refill.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic() {
        assert_eq!(MIN_BUDGET, 133_146);
        assert_eq!(Budget::from_bytes(MIN_BUDGET - 1), Err(BudgetTooSmall));
        let b = Budget::from_bytes(MIN_BUDGET).expect("min fits");
        assert!(b.tx_bytes >= plan_cost(MAX_PACKET_LEN));
        assert!(b.rx_bytes >= plan_cost(MAX_PACKET_LEN));
        assert_eq!(b.max_plans, 64);
        let big = Budget::from_bytes(1 << 24).expect("16 MiB");
        assert_eq!(big.max_plans, RING_SLOTS);
    }

    #[test]
    fn credit_refills_per_interval() {
        let rate = Rate {
            credit_bytes: 200_000,
            credit_usec: 1000,
        };
        let mut c = Credit::new(Some(rate), 0);
        assert_eq!(c.spend(0, 150_000), Ok(()));
        assert_eq!(c.spend(10, 60_000), Err(1000));
        assert_eq!(c.spend(999, 60_000), Err(1000));
        // The refill is capped at max(burst, credit_bytes) = 200_000.
        assert_eq!(c.spend(1000, 60_000), Ok(()));
        assert_eq!(c.remaining(), 140_000);
        let mut unlimited = Credit::new(None, 0);
        assert_eq!(unlimited.spend(0, u64::MAX), Ok(()));
    }

    #[test]
    fn small_rates_still_pass_a_jumbo_packet() {
        let mut c = Credit::new(
            Some(Rate {
                credit_bytes: 1000,
                credit_usec: 100,
            }),
            0,
        );
        assert_eq!(c.spend(0, 65_549), Err(100));
        // Refills accumulate up to the burst.
        let mut t = 0;
        while c.spend(t, 65_549).is_err() {
            t += 100;
        }
        assert_eq!(t, 6_500);
    }
}

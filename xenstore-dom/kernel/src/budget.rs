//! What xenstore-dom's memory allows guests, and how their crossings of
//! the memory quotas are logged.
//!
//! Read first: ../DESIGN.md "Budgets" (the arithmetic) and
//! `engine/src/memory.rs` (the charges and the notices).
//!
//! The engine charges every node, transaction copy and queued message to a
//! domain, refuses an unprivileged request with ENOMEM at the domain's
//! `memory` quota or when all guests together reach
//! `Config::memory_global`, and reports crossings as [`Notice`]s. The board
//! sets the global cap from the heap this domain really has
//! ([`memory_global`]) and logs the notices ([`describe`]): a soft-limit
//! crossing at WARN, a refusal at DEBUG, and WARN lines through a token
//! bucket ([`LogBudget`]) so a guest oscillating around its limit cannot
//! flood the console.

use alloc::format;
use alloc::string::String;

use log::Level;
use xenstore_engine::Notice;

/// The share of the heap all guests together may make the engine hold:
/// half. The other half holds dom0's tree (not limited), watches (counted,
/// not charged: ≤ 128 per guest), the rings' partial input and the board's
/// per-connection state, and allocator slack.
pub fn memory_global(heap_bytes: usize) -> usize {
    heap_bytes / 2
}

/// The log line for a notice, and its level.
pub fn describe(notice: Notice) -> (Level, String) {
    match notice {
        Notice::SoftExceeded { domid } => (
            Level::Warn,
            format!("domain {domid} exceeds its soft memory quota"),
        ),
        Notice::BelowSoft { domid } => (
            Level::Debug,
            format!("domain {domid} is below its soft memory quota again"),
        ),
        Notice::HardRefused { domid } => (
            Level::Debug,
            format!("domain {domid} reached its memory quota: requests that grow get ENOMEM"),
        ),
        Notice::GlobalRefused { domid } => (
            Level::Debug,
            format!("guests hold the global memory cap: a request of domain {domid} got ENOMEM"),
        ),
    }
}

/// WARN lines allowed in a burst.
pub const WARN_BURST: u32 = 10;
/// One more WARN line is allowed every this many ms.
pub const WARN_EVERY_MS: u64 = 6_000;

/// A token bucket for WARN lines (time passed in, ms from any origin).
#[derive(Clone, Copy, Debug)]
pub struct LogBudget {
    tokens: u32,
    last: u64,
}

impl Default for LogBudget {
    fn default() -> Self {
        LogBudget {
            tokens: WARN_BURST,
            last: 0,
        }
    }
}

impl LogBudget {
    /// The level to log a line of `level` at, at `now_ms`: WARN lines past
    /// the budget go down to DEBUG.
    pub fn level(&mut self, now_ms: u64, level: Level) -> Level {
        if level > Level::Warn {
            return level;
        }
        let earned = now_ms.saturating_sub(self.last) / WARN_EVERY_MS;
        if earned > 0 {
            self.last += earned * WARN_EVERY_MS;
            self.tokens = (u64::from(self.tokens) + earned).min(u64::from(WARN_BURST)) as u32;
        }
        if self.tokens > 0 {
            self.tokens -= 1;
            level
        } else {
            Level::Debug
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_the_heap_goes_to_guests() {
        // The shipped 16 MiB domain has 15,408 KiB of heap.
        assert_eq!(memory_global(15_408 << 10), 7_704 << 10);
        assert_eq!(memory_global(0), 0);
    }

    #[test]
    fn soft_crossings_warn_refusals_are_debug() {
        assert_eq!(describe(Notice::SoftExceeded { domid: 3 }).0, Level::Warn);
        assert!(describe(Notice::SoftExceeded { domid: 3 })
            .1
            .contains("domain 3"));
        assert_eq!(describe(Notice::BelowSoft { domid: 3 }).0, Level::Debug);
        assert_eq!(describe(Notice::HardRefused { domid: 3 }).0, Level::Debug);
        assert_eq!(describe(Notice::GlobalRefused { domid: 4 }).0, Level::Debug);
    }

    #[test]
    fn warnings_are_rationed() {
        let mut b = LogBudget::default();
        for _ in 0..WARN_BURST {
            assert_eq!(b.level(1000, Level::Warn), Level::Warn);
        }
        assert_eq!(b.level(1000, Level::Warn), Level::Debug);
        assert_eq!(b.level(1000, Level::Info), Level::Info);
        assert_eq!(b.level(1000 + WARN_EVERY_MS, Level::Warn), Level::Warn);
        assert_eq!(b.level(1000 + WARN_EVERY_MS, Level::Warn), Level::Debug);
        // A long quiet spell refills the bucket, no further.
        for _ in 0..WARN_BURST {
            assert_eq!(b.level(10_000_000, Level::Error), Level::Error);
        }
        assert_eq!(b.level(10_000_000, Level::Warn), Level::Debug);
    }
}

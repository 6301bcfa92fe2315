//! The learned MAC table: a sorted array allocated once from a byte budget.
//!
//! Each [`Entry`] is [`ENTRY_BYTES`] = 16 bytes (6 MAC + 2 port + 8 time,
//! asserted below), so a budget of `B` bytes holds `B / 16` entries, and
//! the table's heap is exactly `capacity × 16` bytes: it is reserved in
//! [`MacTable::with_budget`] and never grows (an insert at capacity is
//! refused). Lookups are a binary search; an insert or removal moves at
//! most the whole array (64 KiB at the default budget). Entries older than
//! the ageing time are dead: lookups ignore them and [`MacTable::age`] or
//! a full table's insert sweeps them. Owned MACs (a VIF's, netdom's) are
//! not here: they live with their port and cannot be evicted.

use alloc::vec::Vec;

use crate::port::PortId;
use crate::Mac;

/// One learned station.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The station's MAC.
    pub mac: Mac,
    /// The port it was last seen on.
    pub port: PortId,
    /// When it was last seen, ns.
    pub last_seen: u64,
}

/// Bytes per table entry.
pub const ENTRY_BYTES: usize = core::mem::size_of::<Entry>();
const _: () = assert!(ENTRY_BYTES == 16, "an entry is 6 + 2 + 8 bytes");

/// What [`MacTable::learn`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Learned {
    /// The MAC had an entry (alive or dead) on this port: its time was
    /// refreshed.
    Refreshed,
    /// The MAC had no entry and now has one on this port.
    New,
    /// The MAC had an entry (alive or dead) on `from`; it is now on this
    /// port.
    Moved {
        /// Where it was.
        from: PortId,
    },
    /// The table is full of live entries: not learned.
    Full,
}

/// The learned MACs, sorted by MAC.
#[derive(Clone, Debug)]
pub struct MacTable {
    entries: Vec<Entry>,
    capacity: usize,
    /// The array's capacity as allocated.
    reserved: usize,
    ageing_ns: u64,
}

impl MacTable {
    /// A table of `budget / ENTRY_BYTES` entries whose entries die
    /// `ageing_ns` after they were last seen.
    pub fn with_budget(budget: usize, ageing_ns: u64) -> Self {
        let capacity = budget / ENTRY_BYTES;
        let entries = Vec::with_capacity(capacity);
        Self {
            reserved: entries.capacity(),
            entries,
            capacity,
            ageing_ns,
        }
    }

    /// True while the array is still the one reserved at creation (it
    /// never grows past it).
    pub fn reserved(&self) -> bool {
        self.entries.capacity() == self.reserved
    }

    /// How many entries fit.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Entries held, dead ones not yet swept included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if no entry is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The ageing time, ns.
    pub fn ageing_ns(&self) -> u64 {
        self.ageing_ns
    }

    /// Every entry held, sorted by MAC (dead ones not yet swept included).
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    fn alive(&self, entry: &Entry, now: u64) -> bool {
        // A clock that went backwards counts as no time passed.
        now.saturating_sub(entry.last_seen) < self.ageing_ns
    }

    fn find(&self, mac: &Mac) -> Result<usize, usize> {
        self.entries.binary_search_by(|e| e.mac.cmp(mac))
    }

    /// The port `mac` was last seen on, if that was less than the ageing
    /// time before `now`.
    pub fn lookup(&self, mac: &Mac, now: u64) -> Option<PortId> {
        let i = self.find(mac).ok()?;
        let e = &self.entries[i];
        self.alive(e, now).then_some(e.port)
    }

    /// The entry for `mac`, alive or not.
    pub fn get(&self, mac: &Mac) -> Option<&Entry> {
        self.find(mac).ok().map(|i| &self.entries[i])
    }

    /// Records `mac` on `port` at `now`. `may_add` says whether this port
    /// may gain an entry (its quota): when false, only an entry already on
    /// `port` is refreshed, and `None` means nothing changed. `on_dead` is
    /// told of each dead entry swept to make room, so the caller can keep
    /// per-port counts (an entry counts for its port until it is removed,
    /// dead or not).
    pub fn learn(
        &mut self,
        mac: Mac,
        port: PortId,
        now: u64,
        may_add: bool,
        mut on_dead: impl FnMut(&Entry),
    ) -> Option<Learned> {
        match self.find(&mac) {
            Ok(i) => {
                let e = &mut self.entries[i];
                let from = e.port;
                if from == port {
                    e.last_seen = now;
                    return Some(Learned::Refreshed);
                }
                if !may_add {
                    return None;
                }
                e.port = port;
                e.last_seen = now;
                Some(Learned::Moved { from })
            }
            Err(mut i) => {
                if !may_add {
                    return None;
                }
                if self.entries.len() >= self.capacity {
                    self.age(now, &mut on_dead);
                    if self.entries.len() >= self.capacity {
                        return Some(Learned::Full);
                    }
                    i = self
                        .find(&mac)
                        .expect_err("mac was absent before the sweep");
                }
                // Within the reserved capacity: this never reallocates.
                self.entries.insert(
                    i,
                    Entry {
                        mac,
                        port,
                        last_seen: now,
                    },
                );
                Some(Learned::New)
            }
        }
    }

    /// Removes every entry dead at `now`, telling `on_dead` of each.
    pub fn age(&mut self, now: u64, mut on_dead: impl FnMut(&Entry)) -> usize {
        let ageing = self.ageing_ns;
        let before = self.entries.len();
        self.entries.retain(|e| {
            let alive = now.saturating_sub(e.last_seen) < ageing;
            if !alive {
                on_dead(e);
            }
            alive
        });
        before - self.entries.len()
    }

    /// Removes `mac`'s entry, if any.
    pub fn remove(&mut self, mac: &Mac) -> Option<Entry> {
        let i = self.find(mac).ok()?;
        Some(self.entries.remove(i))
    }

    /// Removes every entry on `port`; returns how many.
    pub fn forget_port(&mut self, port: PortId) -> usize {
        let before = self.entries.len();
        self.entries.retain(|e| e.port != port);
        before - self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn mac(n: u8) -> Mac {
        [0x02, 0, 0, 0, 0, n]
    }

    #[test]
    fn budget_arithmetic() {
        assert_eq!(ENTRY_BYTES, 16);
        assert_eq!(MacTable::with_budget(64 * 1024, S).capacity(), 4096);
        assert_eq!(MacTable::with_budget(47, S).capacity(), 2);
        assert_eq!(MacTable::with_budget(0, S).capacity(), 0);
        let t = MacTable::with_budget(160, S);
        assert!(t.entries.capacity() >= 10);
    }

    #[test]
    fn learn_lookup_age() {
        let mut t = MacTable::with_budget(64, 10 * S);
        assert_eq!(
            t.learn(mac(1), PortId(1), 0, true, |_| {}),
            Some(Learned::New)
        );
        assert_eq!(t.lookup(&mac(1), 9 * S), Some(PortId(1)));
        assert_eq!(t.lookup(&mac(1), 10 * S), None);
        assert_eq!(
            t.learn(mac(1), PortId(1), 5 * S, true, |_| {}),
            Some(Learned::Refreshed)
        );
        assert_eq!(t.lookup(&mac(1), 14 * S), Some(PortId(1)));
        assert_eq!(
            t.learn(mac(1), PortId(2), 6 * S, true, |_| {}),
            Some(Learned::Moved { from: PortId(1) })
        );
        assert_eq!(t.lookup(&mac(1), 6 * S), Some(PortId(2)));
        // A clock that goes back does not kill entries.
        assert_eq!(t.lookup(&mac(1), 0), Some(PortId(2)));
        assert_eq!(t.age(16 * S, |_| {}), 1);
        assert!(t.is_empty());
    }

    #[test]
    fn full_table_sweeps_then_refuses() {
        let mut t = MacTable::with_budget(2 * ENTRY_BYTES, 10 * S);
        assert_eq!(
            t.learn(mac(1), PortId(1), 0, true, |_| {}),
            Some(Learned::New)
        );
        assert_eq!(
            t.learn(mac(2), PortId(1), 5 * S, true, |_| {}),
            Some(Learned::New)
        );
        assert_eq!(
            t.learn(mac(3), PortId(1), 6 * S, true, |_| {}),
            Some(Learned::Full)
        );
        let mut swept = 0;
        assert_eq!(
            t.learn(mac(3), PortId(1), 11 * S, true, |e| {
                assert_eq!(e.mac, mac(1));
                swept += 1;
            }),
            Some(Learned::New)
        );
        assert_eq!(swept, 1);
        assert_eq!(t.len(), 2);
        assert!(t.entries().windows(2).all(|w| w[0].mac < w[1].mac));
    }

    #[test]
    fn quota_refuses_new_and_moves() {
        let mut t = MacTable::with_budget(64, 10 * S);
        assert_eq!(t.learn(mac(1), PortId(1), 0, false, |_| {}), None);
        t.learn(mac(1), PortId(1), 0, true, |_| {});
        assert_eq!(
            t.learn(mac(1), PortId(1), 1, false, |_| {}),
            Some(Learned::Refreshed)
        );
        assert_eq!(t.learn(mac(1), PortId(2), 1, false, |_| {}), None);
        assert_eq!(t.forget_port(PortId(1)), 1);
        assert_eq!(t.remove(&mac(1)), None);
    }
}

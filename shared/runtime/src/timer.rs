//! One-shot timers: a deadline-ordered queue, pure and host-tested.
//!
//! Time is passed in (nanoseconds of Xen system time); nothing here reads a
//! clock. The event loop asks for the next deadline, sleeps in Xen until then,
//! and pops what expired.

use alloc::collections::BTreeMap;

/// Identifies a timer so it can be cancelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimerId(u64);

/// Timers ordered by deadline, ties broken by insertion order.
#[derive(Debug)]
pub struct TimerQueue<T> {
    queue: BTreeMap<(u64, u64), T>,
    deadlines: BTreeMap<u64, u64>,
    next_id: u64,
}

impl<T> Default for TimerQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> TimerQueue<T> {
    /// An empty queue.
    pub fn new() -> Self {
        TimerQueue {
            queue: BTreeMap::new(),
            deadlines: BTreeMap::new(),
            next_id: 0,
        }
    }

    /// Arms a timer firing at `deadline` with `payload`.
    pub fn insert(&mut self, deadline: u64, payload: T) -> TimerId {
        let id = self.next_id;
        self.next_id += 1;
        self.queue.insert((deadline, id), payload);
        self.deadlines.insert(id, deadline);
        TimerId(id)
    }

    /// Disarms a timer; returns its payload if it had not fired.
    pub fn cancel(&mut self, id: TimerId) -> Option<T> {
        let deadline = self.deadlines.remove(&id.0)?;
        self.queue.remove(&(deadline, id.0))
    }

    /// The earliest deadline, if any timer is armed.
    pub fn next_deadline(&self) -> Option<u64> {
        self.queue.keys().next().map(|&(d, _)| d)
    }

    /// Removes and returns one timer whose deadline is `<= now`.
    pub fn pop_expired(&mut self, now: u64) -> Option<(TimerId, T)> {
        let (&(deadline, id), _) = self.queue.iter().next()?;
        if deadline > now {
            return None;
        }
        self.deadlines.remove(&id);
        let payload = self.queue.remove(&(deadline, id))?;
        Some((TimerId(id), payload))
    }

    /// Number of armed timers.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True when no timer is armed.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_in_deadline_then_insertion_order() {
        let mut q = TimerQueue::new();
        q.insert(30, "c");
        q.insert(10, "a");
        q.insert(10, "b");
        assert_eq!(q.next_deadline(), Some(10));
        assert_eq!(q.pop_expired(9), None);
        assert_eq!(q.pop_expired(10).map(|t| t.1), Some("a"));
        assert_eq!(q.pop_expired(10).map(|t| t.1), Some("b"));
        assert_eq!(q.pop_expired(29), None);
        assert_eq!(q.pop_expired(100).map(|t| t.1), Some("c"));
        assert!(q.is_empty());
    }

    #[test]
    fn cancel_removes_only_that_timer() {
        let mut q = TimerQueue::new();
        let a = q.insert(5, 1);
        let b = q.insert(5, 2);
        assert_eq!(q.cancel(a), Some(1));
        assert_eq!(q.cancel(a), None);
        assert_eq!(q.len(), 1);
        assert_eq!(q.pop_expired(5), Some((b, 2)));
        assert_eq!(q.cancel(b), None);
    }
}

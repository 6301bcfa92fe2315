//! One client connection: input buffer, output queue, transactions.
//!
//! A connection is a ring to a domain or (on the host) a unix socket from
//! dom0. Its output queue holds whole wire messages; replies are bounded by
//! the `outstanding` quota through flow control (the engine stops taking
//! input while that many replies wait), watch events by `queued-events`
//! (further events are dropped and counted: "watches may be triggered
//! spuriously", and a reader that never reads must not exhaust us, XSA-326).

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use crate::memory::message_bytes;
use crate::txn::Txn;

#[derive(Debug)]
struct Outgoing {
    bytes: Vec<u8>,
    event: bool,
}

/// State of one connection.
#[derive(Debug)]
pub struct Conn {
    /// The peer's domid (0 for host sockets).
    pub domid: u16,
    /// Bytes of a partial incoming message (at most header + 4096).
    pub inbuf: Vec<u8>,
    out: VecDeque<Outgoing>,
    out_offset: usize,
    replies: usize,
    events: usize,
    out_bytes: usize,
    /// Open transactions by tx_id.
    pub txns: BTreeMap<u32, Txn>,
    /// Next tx_id to try.
    pub next_tx_id: u32,
    /// Watches this connection holds.
    pub watches: usize,
    /// Set after a protocol violation: input is refused from then on.
    pub broken: bool,
    /// Watch events dropped because the queue was full.
    pub dropped_events: u64,
    /// Listed in the engine's ready list (see `Engine::take_ready`).
    pub(crate) in_ready: bool,
}

impl Conn {
    /// A fresh connection for `domid`.
    pub fn new(domid: u16) -> Conn {
        Conn {
            domid,
            inbuf: Vec::new(),
            out: VecDeque::new(),
            out_offset: 0,
            replies: 0,
            events: 0,
            out_bytes: 0,
            txns: BTreeMap::new(),
            next_tx_id: 1,
            watches: 0,
            broken: false,
            dropped_events: 0,
            in_ready: false,
        }
    }

    /// Queue a reply (never dropped; bounded by flow control).
    pub fn push_reply(&mut self, bytes: Vec<u8>) {
        self.replies += 1;
        self.out_bytes += message_bytes(bytes.len());
        self.out.push_back(Outgoing {
            bytes,
            event: false,
        });
    }

    /// Queue a watch event unless `limit` (0 = none) are already queued.
    pub fn push_event(&mut self, bytes: Vec<u8>, limit: u32) -> bool {
        if limit != 0 && self.events >= limit as usize {
            self.dropped_events += 1;
            return false;
        }
        self.events += 1;
        self.out_bytes += message_bytes(bytes.len());
        self.out.push_back(Outgoing { bytes, event: true });
        true
    }

    /// Replies queued and not yet fully taken.
    pub fn replies_queued(&self) -> usize {
        self.replies
    }

    /// Events queued and not yet fully taken.
    pub fn events_queued(&self) -> usize {
        self.events
    }

    /// The unsent rest of the first queued message.
    pub fn front(&self) -> Option<&[u8]> {
        self.out.front().map(|o| &o.bytes[self.out_offset..])
    }

    /// Mark `n` bytes of [`Conn::front`] sent (clamped to what is there).
    pub fn consume(&mut self, n: usize) {
        let Some(front) = self.out.front() else {
            return;
        };
        let left = front.bytes.len() - self.out_offset;
        if n < left {
            self.out_offset += n;
            return;
        }
        let done = self.out.pop_front().expect("front checked above");
        self.out_offset = 0;
        // Added when the message was queued: no underflow.
        self.out_bytes -= message_bytes(done.bytes.len());
        if done.event {
            self.events -= 1;
        } else {
            self.replies -= 1;
        }
    }

    /// Drop all queued output.
    pub fn clear_output(&mut self) {
        self.out.clear();
        self.out_offset = 0;
        self.replies = 0;
        self.events = 0;
        self.out_bytes = 0;
    }

    /// Bytes the queued output holds (see `memory.rs`).
    pub fn output_bytes(&self) -> usize {
        self.out_bytes
    }

    /// Bytes this connection makes the engine hold for its domain: queued
    /// output and its open transactions.
    pub fn held_bytes(&self) -> usize {
        self.out_bytes + self.txns.values().map(Txn::held).sum::<usize>()
    }

    /// [`Conn::held_bytes`] recomputed from scratch (for audits).
    pub fn recount_bytes(&self) -> usize {
        self.out
            .iter()
            .map(|o| message_bytes(o.bytes.len()))
            .sum::<usize>()
            + self.txns.values().map(Txn::recount_bytes).sum::<usize>()
    }
}

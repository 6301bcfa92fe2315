//! A VBD's datapath: taking requests off its queues' rings, handing out
//! work, answering requests as work completes.
//!
//! read first: ../vbd.rs (the connection this runs on), ../request.rs (the
//! checks), ../io.rs (the work), ../budget.rs (the bounds).

use xcp_ring::SharedPage;

use super::{Conn, Fault, Pending, Queue, Stats, Vbd};
use crate::budget::{io_cost, IO_BYTES_PER_VBD, MAX_REQUESTS_PER_VBD, REQUESTS_PER_POLL};
use crate::io::{DiskIo, Fetched, IndirectFetch, IoOp, IoStatus, Poll, Token, Work};
use crate::request::{check_indirect_segments, classify, response_op, Verdict};
use crate::wire::{
    Response, BLKIF_RSP_EOPNOTSUPP, BLKIF_RSP_ERROR, BLKIF_RSP_OKAY, PAGE_SIZE, SEGMENT_SIZE,
};

impl<P: SharedPage> Vbd<P> {
    /// Takes up to [`REQUESTS_PER_POLL`] requests off a queue's ring:
    /// answers bad ones at once and returns the work for the others.
    pub fn poll(&mut self, queue: u16) -> Poll {
        let mut out = Poll::default();
        let Some(conn) = self.conn.as_ref() else {
            return out;
        };
        if usize::from(queue) >= conn.queues.len() {
            return out;
        }
        let result = self.poll_inner(queue, &mut out);
        let pushed = self.push(queue);
        match result {
            Err(fault) => {
                // Work made earlier in this poll never reaches the board:
                // take it back, or its budget would be lost for good.
                for w in &out.work {
                    let token = match w {
                        Work::Io(io) => io.token,
                        Work::Fetch(f) => f.token,
                    };
                    self.take(token);
                }
                self.fault(fault);
                Poll::default()
            }
            Ok(()) => {
                out.notify |= pushed;
                out
            }
        }
    }

    fn poll_inner(&mut self, queue: u16, out: &mut Poll) -> Result<(), Fault> {
        let q = usize::from(queue);
        for _ in 0..REQUESTS_PER_POLL {
            let conn = self.conn.as_mut().ok_or(Fault::Internal)?;
            let limits = conn.limits;
            let qu = conn.queues.get_mut(q).ok_or(Fault::Internal)?;
            let held = qu.stalled.is_some();
            let req = match qu.stalled.take() {
                Some(r) => r,
                None => match qu.ring.next_request() {
                    Err(e) => return Err(Fault::Ring(queue, e)),
                    Ok(Some(r)) => {
                        // A reused id is checked once, when the request
                        // leaves the ring.
                        if qu.ids.contains(&r.id()) {
                            return Err(Fault::DuplicateId(queue, r.id()));
                        }
                        r
                    }
                    Ok(None) => match qu.ring.final_check_for_requests() {
                        Err(e) => return Err(Fault::Ring(queue, e)),
                        Ok(true) => continue,
                        Ok(false) => return Ok(()),
                    },
                },
            };
            let verdict = classify(&req, &limits);
            let (cost, barrier) = match &verdict {
                Verdict::Reply(status) => {
                    self.respond(queue, req.id(), response_op(&req), *status)?;
                    continue;
                }
                Verdict::Io(op) => (io_cost(segments_of(op), 0), false),
                Verdict::Barrier(op) => (io_cost(segments_of(op), 0), true),
                Verdict::Fetch {
                    nr_segments, grefs, ..
                } => (io_cost(usize::from(*nr_segments), grefs.len()), false),
            };
            let queues = conn.queues.len().max(1);
            let qu = conn_queue(&mut self.conn, q)?;
            // A barrier drains its queue first (what Linux blkback does).
            let drained = !barrier || qu.ids.is_empty();
            // Each queue's fair share of the VBD's budget; a queue with
            // nothing out may exceed it by one request, so the largest
            // request always goes and every queue keeps moving while a
            // busy sibling holds its share.
            let share = qu.ids.is_empty()
                || (qu.ids.len() < MAX_REQUESTS_PER_VBD / queues
                    && qu.bytes + cost <= IO_BYTES_PER_VBD / queues);
            if !drained
                || !share
                || self.pending.len() >= MAX_REQUESTS_PER_VBD
                || self.in_flight_bytes + cost > IO_BYTES_PER_VBD
            {
                qu.stalled = Some(req);
                if !held {
                    self.stats.blocked += 1;
                }
                out.blocked = true;
                return Ok(());
            }
            qu.ids.insert(req.id());
            qu.bytes += cost;
            let token = Token {
                generation: self.generation,
                seq: self.next_seq,
            };
            self.next_seq += 1;
            self.in_flight_bytes += cost;
            let domid = self.config.frontend_domid;
            let mut pending = Pending {
                generation: self.generation,
                queue,
                id: req.id(),
                operation: response_op(&req),
                cost,
                fetch: None,
                write: false,
                bytes: 0,
            };
            match verdict {
                Verdict::Io(op) | Verdict::Barrier(op) => {
                    count(&mut self.stats, &op, &mut pending);
                    out.work.push(Work::Io(DiskIo {
                        queue,
                        token,
                        domid,
                        op,
                    }));
                }
                Verdict::Fetch {
                    op,
                    nr_segments,
                    grefs,
                    bytes,
                } => {
                    pending.fetch = Some((op, nr_segments, req.sector_number()));
                    let mut left = bytes;
                    let pages = grefs
                        .into_iter()
                        .map(|g| {
                            let n = left.min(PAGE_SIZE);
                            left -= n;
                            (g, n)
                        })
                        .collect();
                    out.work.push(Work::Fetch(IndirectFetch {
                        queue,
                        token,
                        domid,
                        pages,
                    }));
                }
                Verdict::Reply(_) => return Err(Fault::Internal),
            }
            self.pending.insert(token.seq, pending);
        }
        out.again = true;
        Ok(())
    }

    /// Queues a response on a queue (not yet pushed).
    fn respond(&mut self, queue: u16, id: u64, operation: u8, status: i16) -> Result<(), Fault> {
        match status {
            BLKIF_RSP_ERROR => self.stats.errors += 1,
            BLKIF_RSP_EOPNOTSUPP => self.stats.unsupported += 1,
            _ => {}
        }
        let qu = conn_queue(&mut self.conn, usize::from(queue))?;
        qu.ring
            .queue_response(&Response {
                id,
                operation,
                status,
            })
            .map_err(|_| Fault::Internal)
    }

    /// Publishes a queue's responses; true to kick its channel.
    fn push(&mut self, queue: u16) -> bool {
        self.conn
            .as_mut()
            .and_then(|c| c.queues.get_mut(usize::from(queue)))
            .is_some_and(|q| q.ring.push_responses())
    }

    /// Takes a pending request back: None when it is unknown or stale
    /// (its budget is returned either way).
    fn take(&mut self, token: Token) -> Option<Pending> {
        let p = self.pending.remove(&token.seq)?;
        self.in_flight_bytes = self.in_flight_bytes.saturating_sub(p.cost);
        if p.generation != self.generation || token.generation != p.generation {
            return None;
        }
        if let Some(q) = self
            .conn
            .as_mut()
            .and_then(|c| c.queues.get_mut(usize::from(p.queue)))
        {
            q.ids.remove(&p.id);
            q.bytes = q.bytes.saturating_sub(p.cost);
        }
        Some(p)
    }

    fn answer(&mut self, p: &Pending, status: i16) -> bool {
        match self.respond(p.queue, p.id, p.operation, status) {
            Ok(()) => self.push(p.queue),
            Err(fault) => {
                self.fault(fault);
                false
            }
        }
    }

    /// The board fetched an indirect request's segment pages (`bytes`:
    /// the pages' requested bytes concatenated, or `None` when a copy
    /// failed). Returns the request's disk work, or answers it.
    pub fn indirect_fetched(&mut self, token: Token, bytes: Option<&[u8]>) -> Fetched {
        let (fetch, live) = match self.pending.get(&token.seq) {
            None => return Fetched::default(),
            Some(p) => (
                p.fetch,
                p.generation == self.generation && token.generation == p.generation,
            ),
        };
        // Disk work rather than a fetch (a board mix-up): complete() it.
        let Some((op, n, sector)) = fetch else {
            return Fetched::default();
        };
        let limits = match (live, self.conn.as_ref()) {
            (true, Some(c)) => c.limits,
            // Stale: only its budget comes back.
            _ => {
                self.take(token);
                return Fetched::default();
            }
        };
        let checked = match bytes {
            None => Err(BLKIF_RSP_ERROR),
            Some(b) if b.len() != usize::from(n) * SEGMENT_SIZE => Err(BLKIF_RSP_ERROR),
            Some(b) => check_indirect_segments(op, n, sector, b, &limits),
        };
        match checked {
            Err(status) => Fetched {
                io: None,
                notify: match self.take(token) {
                    Some(p) => self.answer(&p, status),
                    None => false,
                },
            },
            Ok(io) => {
                let Some(pending) = self.pending.get_mut(&token.seq) else {
                    return Fetched::default();
                };
                pending.fetch = None;
                count(&mut self.stats, &io, pending);
                Fetched {
                    io: Some(DiskIo {
                        queue: pending.queue,
                        token,
                        domid: self.config.frontend_domid,
                        op: io,
                    }),
                    notify: false,
                }
            }
        }
    }

    /// The board finished a [`DiskIo`]: the response is written and pushed;
    /// true to kick the queue's channel. Stale work only returns budget.
    pub fn complete(&mut self, token: Token, status: IoStatus) -> bool {
        let Some(p) = self.take(token) else {
            return false;
        };
        let code = match status {
            // An indirect request completed before its fetch: a board bug,
            // answered as a failure rather than as data never moved.
            IoStatus::Ok if p.fetch.is_some() => BLKIF_RSP_ERROR,
            IoStatus::Ok => {
                if p.write {
                    self.stats.write_bytes += p.bytes as u64;
                } else {
                    self.stats.read_bytes += p.bytes as u64;
                }
                BLKIF_RSP_OKAY
            }
            IoStatus::Error => BLKIF_RSP_ERROR,
            IoStatus::NotSupported => BLKIF_RSP_EOPNOTSUPP,
        };
        self.answer(&p, code)
    }
}

/// Counts work handed out, and remembers what its completion adds.
fn count(stats: &mut Stats, op: &IoOp, pending: &mut Pending) {
    match op {
        IoOp::Read { .. } => stats.reads += 1,
        IoOp::Write { flush, .. } => {
            stats.writes += 1;
            if *flush {
                stats.flushes += 1;
            }
            pending.write = true;
        }
        IoOp::Flush => stats.flushes += 1,
        IoOp::Discard { .. } => stats.discards += 1,
    }
    pending.bytes = op.data_len();
}

fn segments_of(op: &IoOp) -> usize {
    match op {
        IoOp::Read { segments, .. } | IoOp::Write { segments, .. } => segments.len(),
        _ => 0,
    }
}

fn conn_queue<P: SharedPage>(conn: &mut Option<Conn<P>>, q: usize) -> Result<&mut Queue<P>, Fault> {
    conn.as_mut()
        .and_then(|c| c.queues.get_mut(q))
        .ok_or(Fault::Internal)
}

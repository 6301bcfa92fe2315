//! One VBD: the xenbus handshake, its queues' rings, budgets, counters.
//!
//! read first: DESIGN.md (the state machine), `handshake.rs` (the
//! keys), `request.rs` (request checks), `io.rs` (the board's work),
//! io/xenbus.h.
//!
//! Sans-IO. The board feeds what it saw (the frontend's `state` node, its
//! keys, ring pages mapped, indirect pages fetched, disk work completed)
//! and takes back [`Action`]s (write a key, switch state, read keys, map
//! or unmap a ring, bind or unbind event channels) from
//! [`Vbd::poll_action`], [`Work`] from [`Vbd::poll`], and `notify` flags
//! (kick that queue's event channel).
//!
//! blkif responses carry the request's `id`, so they are written in
//! completion order. A protocol error (a [`Fault`]) disconnects this VBD
//! only: its rings are unmapped and its channels unbound (the actions hand
//! the pages back), the backend goes to Closing, and work still out with
//! the board becomes stale: completing it only returns its budget.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;

use xcp_ring::{sring, BackRing, RingError, SharedPage};
use xcp_xenbus::XenbusState;

use crate::budget::{io_cost, IO_BYTES_PER_VBD, MAX_REQUESTS_PER_VBD, REQUESTS_PER_POLL};
use crate::handshake::{
    parse_queues, ring_keys, DiskInfo, Features, Header, KeyError, HEADER_KEYS,
};
use crate::io::{DiskIo, Fetched, IndirectFetch, IoStatus, Poll, Token, Work};
use crate::request::{check_indirect_segments, classify, response_op, Limits, Verdict};
use crate::wire::{
    Request, Response, BLKIF_RSP_EOPNOTSUPP, BLKIF_RSP_ERROR, BLKIF_RSP_OKAY, PAGE_SIZE,
    SEGMENT_SIZE,
};

/// How a VBD is created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// The frontend's domain.
    pub frontend_domid: u16,
    /// What the backend offers.
    pub features: Features,
    /// The disk served.
    pub disk: DiskInfo,
}

/// Something the board must do, in order.
pub enum Action<P> {
    /// Write `value` at `key` under the backend's directory.
    WriteBackend {
        /// Relative key, e.g. `feature-flush-cache`.
        key: &'static str,
        /// Its value.
        value: String,
    },
    /// Write the backend's `state`.
    SwitchState(XenbusState),
    /// Read these keys (relative to the frontend's directory) and call
    /// [`Vbd::on_frontend_keys`] with the present ones.
    ReadFrontendKeys(Vec<String>),
    /// Map these grants of `domid` as one contiguous run of pages, page 0
    /// first, and call [`Vbd::on_ring_mapped`] (or [`Vbd::on_map_failed`]).
    MapRing {
        /// The queue.
        queue: u16,
        /// The frontend.
        domid: u16,
        /// The ring's grants (1, 2, 4... of them).
        grefs: Vec<u32>,
    },
    /// Bind an interdomain event channel to the frontend's port for a queue.
    BindEventChannel {
        /// The queue.
        queue: u16,
        /// The frontend.
        domid: u16,
        /// Its port.
        port: u32,
    },
    /// Unmap a queue's ring pages (handed back).
    UnmapRing {
        /// The queue.
        queue: u16,
        /// The pages.
        page: P,
    },
    /// Unbind all of this VBD's event channels.
    UnbindEventChannels,
}

impl<P> core::fmt::Debug for Action<P> {
    // By hand: a page handle need not be Debug.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Action::WriteBackend { key, value } => write!(f, "WriteBackend({key}={value})"),
            Action::SwitchState(s) => write!(f, "SwitchState({s:?})"),
            Action::ReadFrontendKeys(k) => write!(f, "ReadFrontendKeys({k:?})"),
            Action::MapRing {
                queue,
                domid,
                grefs,
            } => write!(f, "MapRing(q{queue}, d{domid}, {grefs:?})"),
            Action::BindEventChannel { queue, domid, port } => {
                write!(f, "BindEventChannel(q{queue}, d{domid}, {port})")
            }
            Action::UnmapRing { queue, .. } => write!(f, "UnmapRing(q{queue})"),
            Action::UnbindEventChannels => f.write_str("UnbindEventChannels"),
        }
    }
}

/// Why a VBD was disconnected (also written, as its `Debug` text, to the
/// backend's `error` key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The frontend's keys were refused.
    Keys(KeyError),
    /// A queue's ring indexes are nonsense.
    Ring(u16, RingError),
    /// A request reused an `id` still in flight on its queue.
    DuplicateId(u16, u64),
    /// The frontend wrote a state we do not take (Reconfiguring, or not a
    /// state at all).
    FrontendState(u32),
    /// The board could not map a ring (a bad grant reference).
    MapFailed,
    /// Mapped ring pages of the wrong size.
    BadRingPage,
    /// An engine invariant failed (a bug; disconnecting is the safe side).
    Internal,
}

/// Where the VBD is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Advertised; waiting for the frontend to be Initialised/Connected.
    InitWait,
    /// Waiting for the frontend's [`HEADER_KEYS`].
    ReadingHeader,
    /// Waiting for the frontend's ring keys.
    ReadingRings,
    /// Waiting for the board to map the rings.
    Mapping,
    /// Rings live.
    Connected,
    /// The frontend is closing; nothing held.
    Closing,
    /// Disconnected after a fault; nothing held; waits for the frontend.
    Disconnected(Fault),
    /// Closed; a frontend that goes back to Initialising reconnects.
    Closed,
}

/// Counters (the future XenAPI VBD_metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Read requests handed to the board.
    pub reads: u64,
    /// Write requests handed to the board.
    pub writes: u64,
    /// Flushes and barriers.
    pub flushes: u64,
    /// Discards.
    pub discards: u64,
    /// Bytes read (completed OK).
    pub read_bytes: u64,
    /// Bytes written (completed OK).
    pub write_bytes: u64,
    /// Requests answered BLKIF_RSP_ERROR.
    pub errors: u64,
    /// Requests answered BLKIF_RSP_EOPNOTSUPP.
    pub unsupported: u64,
    /// Requests that had to wait (for budget, or a barrier for its queue
    /// to drain), each counted once.
    pub blocked: u64,
    /// Disconnections for a protocol error.
    pub faults: u64,
    /// Connections made.
    pub connects: u64,
}

struct Queue<P: SharedPage> {
    ring: BackRing<P, Request, Response>,
    /// Ids in flight (their count is the queue's requests out).
    ids: BTreeSet<u64>,
    /// Budget bytes the queue's requests out hold.
    bytes: usize,
    stalled: Option<Request>,
}

struct Conn<P: SharedPage> {
    limits: Limits,
    queues: Vec<Queue<P>>,
}

struct Mapping<P> {
    pages: Vec<Option<P>>,
}

struct Pending {
    generation: u64,
    queue: u16,
    id: u64,
    operation: u8,
    cost: usize,
    /// Set while the indirect segments are being fetched.
    fetch: Option<(u8, u16, u64)>,
    write: bool,
    bytes: usize,
}

/// One VBD's engine over ring pages `P`.
pub struct Vbd<P: SharedPage> {
    config: Config,
    features: Features,
    state: State,
    backend_state: XenbusState,
    frontend_state: XenbusState,
    header: Option<Header>,
    mapping: Option<Mapping<P>>,
    bound: bool,
    conn: Option<Conn<P>>,
    generation: u64,
    next_seq: u64,
    pending: BTreeMap<u64, Pending>,
    in_flight_bytes: usize,
    actions: VecDeque<Action<P>>,
    stats: Stats,
}

impl<P: SharedPage> Vbd<P> {
    /// A VBD advertising `config.features`, going to InitWait (both in
    /// the actions queued).
    pub fn new(config: Config) -> Self {
        let features = config.features.clamped();
        let mut vbd = Vbd {
            config,
            features,
            state: State::InitWait,
            backend_state: XenbusState::Initialising,
            frontend_state: XenbusState::Unknown,
            header: None,
            mapping: None,
            bound: false,
            conn: None,
            generation: 0,
            next_seq: 0,
            pending: BTreeMap::new(),
            in_flight_bytes: 0,
            actions: VecDeque::new(),
            stats: Stats::default(),
        };
        for (key, value) in features.backend_keys() {
            vbd.actions.push_back(Action::WriteBackend { key, value });
        }
        vbd.switch(XenbusState::InitWait);
        vbd
    }

    /// The next thing the board must do.
    pub fn poll_action(&mut self) -> Option<Action<P>> {
        self.actions.pop_front()
    }

    /// Where the VBD is.
    pub fn state(&self) -> State {
        self.state
    }

    /// The state last written to the backend's `state`.
    pub fn backend_state(&self) -> XenbusState {
        self.backend_state
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Queues while connected (0 otherwise).
    pub fn num_queues(&self) -> usize {
        self.conn.as_ref().map_or(0, |c| c.queues.len())
    }

    /// While connected: a queue's `rsp_prod_pvt` (a resumed ring starts
    /// past zero).
    pub fn ring_position(&self, queue: u16) -> Option<u32> {
        let q = self.conn.as_ref()?.queues.get(usize::from(queue))?;
        Some(q.ring.rsp_prod_pvt())
    }

    /// Work out with the board: (requests, buffer bytes), stale included.
    pub fn in_flight(&self) -> (usize, usize) {
        (self.pending.len(), self.in_flight_bytes)
    }

    fn switch(&mut self, to: XenbusState) {
        if self.backend_state != to {
            self.backend_state = to;
            self.actions.push_back(Action::SwitchState(to));
        }
    }

    /// Gives back what the connection holds; work out becomes stale.
    fn release(&mut self) {
        if let Some(m) = self.mapping.take() {
            for (q, page) in m.pages.into_iter().enumerate() {
                if let Some(page) = page {
                    self.actions.push_back(Action::UnmapRing {
                        queue: q as u16,
                        page,
                    });
                }
            }
        }
        if let Some(conn) = self.conn.take() {
            for (q, queue) in conn.queues.into_iter().enumerate() {
                self.actions.push_back(Action::UnmapRing {
                    queue: q as u16,
                    page: queue.ring.into_page(),
                });
            }
        }
        if core::mem::take(&mut self.bound) {
            self.actions.push_back(Action::UnbindEventChannels);
        }
        self.header = None;
        self.generation += 1;
    }

    fn fault(&mut self, fault: Fault) {
        self.stats.faults += 1;
        self.release();
        // Like Linux's xenbus_dev_fatal: say why before closing, so the
        // toolstack can tell a refused frontend from an unplug.
        self.actions.push_back(Action::WriteBackend {
            key: "error",
            value: alloc::format!("{fault:?}"),
        });
        self.switch(XenbusState::Closing);
        self.state = State::Disconnected(fault);
    }

    /// The frontend's `state` node changed (`None`: it is gone). Repeats of
    /// the same value do nothing, so a frontend rewriting its state cannot
    /// make the engine work or queue actions (XSA-349).
    pub fn on_frontend_state(&mut self, value: Option<&[u8]>) {
        let st = value.map_or(XenbusState::Unknown, XenbusState::parse);
        if st == self.frontend_state {
            return;
        }
        self.frontend_state = st;
        match st {
            XenbusState::Initialising | XenbusState::InitWait => match self.state {
                State::InitWait | State::Disconnected(_) => {}
                _ => {
                    // A frontend starting (again): tear down what an
                    // earlier life held and offer a fresh handshake.
                    self.release();
                    self.switch(XenbusState::InitWait);
                    self.state = State::InitWait;
                }
            },
            XenbusState::Initialised | XenbusState::Connected => {
                if self.state == State::InitWait {
                    self.actions.push_back(Action::ReadFrontendKeys(
                        HEADER_KEYS.map(String::from).into(),
                    ));
                    self.state = State::ReadingHeader;
                }
            }
            XenbusState::Closing => match self.state {
                State::Closing | State::Closed | State::Disconnected(_) => {}
                _ => {
                    self.release();
                    self.switch(XenbusState::Closing);
                    self.state = State::Closing;
                }
            },
            XenbusState::Closed | XenbusState::Unknown => {
                if self.state != State::Closed {
                    self.release();
                    self.switch(XenbusState::Closed);
                    self.state = State::Closed;
                }
            }
            XenbusState::Reconfiguring | XenbusState::Reconfigured | XenbusState::Invalid(_) => {
                if !matches!(self.state, State::Disconnected(_) | State::Closed) {
                    self.fault(Fault::FrontendState(st.code()));
                }
            }
        }
    }

    /// The toolstack unplugs the VBD (its backend `online` went to 0):
    /// release what is held and go to Closing; the frontend's Closed then
    /// takes the backend to Closed.
    pub fn unplug(&mut self) {
        if self.state != State::Closed {
            self.release();
            self.switch(XenbusState::Closing);
            self.state = State::Closing;
        }
    }

    /// The frontend's keys asked for by the last
    /// [`Action::ReadFrontendKeys`] (the present ones).
    pub fn on_frontend_keys(&mut self, pairs: &[(&str, &[u8])]) {
        match self.state {
            State::ReadingHeader => match Header::parse(pairs, &self.features) {
                Err(e) => self.fault(Fault::Keys(e)),
                Ok(header) => {
                    self.actions
                        .push_back(Action::ReadFrontendKeys(ring_keys(&header)));
                    self.header = Some(header);
                    self.state = State::ReadingRings;
                }
            },
            State::ReadingRings => {
                let Some(header) = self.header else {
                    return self.fault(Fault::Internal);
                };
                match parse_queues(pairs, &header) {
                    Err(e) => self.fault(Fault::Keys(e)),
                    Ok(queues) => {
                        let domid = self.config.frontend_domid;
                        for (q, cfg) in queues.iter().enumerate() {
                            self.actions.push_back(Action::MapRing {
                                queue: q as u16,
                                domid,
                                grefs: cfg.ring_refs.clone(),
                            });
                            self.actions.push_back(Action::BindEventChannel {
                                queue: q as u16,
                                domid,
                                port: cfg.evtchn,
                            });
                        }
                        self.bound = true;
                        let pages = queues.iter().map(|_| None).collect();
                        self.mapping = Some(Mapping { pages });
                        self.state = State::Mapping;
                    }
                }
            }
            _ => {}
        }
    }

    /// A queue's ring pages are mapped (one contiguous run; its channel
    /// bound). Pages that arrive when no longer wanted are handed straight
    /// back to unmap.
    pub fn on_ring_mapped(&mut self, queue: u16, page: P) {
        let order = self.header.map_or(0, |h| h.ring_page_order);
        let slot = match (self.state, self.mapping.as_mut()) {
            (State::Mapping, Some(m)) => m.pages.get_mut(usize::from(queue)),
            _ => None,
        };
        let Some(slot) = slot.filter(|s| s.is_none()) else {
            self.actions.push_back(Action::UnmapRing { queue, page });
            return;
        };
        if page.len() != PAGE_SIZE << order {
            self.actions.push_back(Action::UnmapRing { queue, page });
            return self.fault(Fault::BadRingPage);
        }
        *slot = Some(page);
        if self
            .mapping
            .as_ref()
            .is_some_and(|m| m.pages.iter().all(Option::is_some))
        {
            self.connect();
        }
    }

    /// Every ring is mapped: attach them and go Connected.
    fn connect(&mut self) {
        let Some(mapping) = self.mapping.take() else {
            return self.fault(Fault::Internal);
        };
        let mut queues = Vec::with_capacity(mapping.pages.len());
        for page in mapping.pages.into_iter().flatten() {
            // A frontend that was connected to an earlier backend (stordom
            // was restarted) goes on after the last responses it was
            // given: requests the old backend took but never answered are
            // taken again. A fresh ring says 0. A lying rsp_prod is found
            // by the first poll, as any bad index.
            let at = page.load_u32(sring::RSP_PROD);
            match BackRing::attach(page, at) {
                Ok(mut ring) => {
                    // Ask to be kicked for the first requests.
                    let _ = ring.final_check_for_requests();
                    queues.push(Queue {
                        ring,
                        ids: BTreeSet::new(),
                        bytes: 0,
                        stalled: None,
                    });
                }
                // Unreachable for whole pages (32 slots fit one).
                Err(_) => {
                    self.conn = Some(Conn {
                        limits: self.limits(),
                        queues,
                    });
                    return self.fault(Fault::BadRingPage);
                }
            }
        }
        self.conn = Some(Conn {
            limits: self.limits(),
            queues,
        });
        for (key, value) in self.config.disk.connect_keys() {
            self.actions.push_back(Action::WriteBackend { key, value });
        }
        self.stats.connects += 1;
        self.switch(XenbusState::Connected);
        self.state = State::Connected;
    }

    fn limits(&self) -> Limits {
        let f = self.features;
        Limits {
            sectors: self.config.disk.sectors,
            readonly: self.config.disk.readonly,
            flush: f.flush_cache,
            barrier: f.barrier,
            discard: f.discard.is_some(),
            discard_secure: f.discard.is_some_and(|d| d.secure),
            max_indirect_segments: f.max_indirect_segments,
        }
    }

    /// A ring could not be mapped (or its channel bound).
    pub fn on_map_failed(&mut self) {
        if self.state == State::Mapping {
            self.fault(Fault::MapFailed);
        }
    }

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
                    self.count(&op, &mut pending);
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

    fn count(&mut self, op: &crate::IoOp, pending: &mut Pending) {
        match op {
            crate::IoOp::Read { .. } => self.stats.reads += 1,
            crate::IoOp::Write { flush, .. } => {
                self.stats.writes += 1;
                if *flush {
                    self.stats.flushes += 1;
                }
                pending.write = true;
            }
            crate::IoOp::Flush => self.stats.flushes += 1,
            crate::IoOp::Discard { .. } => self.stats.discards += 1,
        }
        pending.bytes = op.data_len();
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
        let fetch = self.pending.get(&token.seq).and_then(|p| p.fetch);
        let current = self
            .pending
            .get(&token.seq)
            .is_some_and(|p| p.generation == self.generation && token.generation == p.generation);
        let (Some((op, n, sector)), true) = (fetch, current) else {
            // Unknown, stale, or not a fetch: release what it holds.
            if fetch.is_some() || !current {
                self.take(token);
            }
            return Fetched::default();
        };
        let limits = match self.conn.as_ref() {
            Some(c) => c.limits,
            None => return Fetched::default(),
        };
        let checked = match bytes {
            None => Err(BLKIF_RSP_ERROR),
            Some(b) if b.len() != usize::from(n) * SEGMENT_SIZE => Err(BLKIF_RSP_ERROR),
            Some(b) => check_indirect_segments(op, n, sector, b, &limits),
        };
        match checked {
            Err(status) => {
                let Some(p) = self.take(token) else {
                    return Fetched::default();
                };
                Fetched {
                    io: None,
                    notify: self.answer(&p, status),
                }
            }
            Ok(io) => {
                let mut pending = match self.pending.remove(&token.seq) {
                    Some(p) => p,
                    None => return Fetched::default(),
                };
                pending.fetch = None;
                self.count(&io, &mut pending);
                let queue = pending.queue;
                self.pending.insert(token.seq, pending);
                Fetched {
                    io: Some(DiskIo {
                        queue,
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

fn segments_of(op: &crate::IoOp) -> usize {
    match op {
        crate::IoOp::Read { segments, .. } | crate::IoOp::Write { segments, .. } => segments.len(),
        _ => 0,
    }
}

fn conn_queue<P: SharedPage>(conn: &mut Option<Conn<P>>, q: usize) -> Result<&mut Queue<P>, Fault> {
    conn.as_mut()
        .and_then(|c| c.queues.get_mut(q))
        .ok_or(Fault::Internal)
}

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
//! [`Vbd::poll_action`], [`crate::Work`] from [`Vbd::poll`], and `notify` flags
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

use crate::handshake::{
    parse_queues, ring_keys, Abi, DiskInfo, Features, Header, KeyError, HEADER_KEYS,
};
use crate::request::Limits;
use crate::wire::{Request, Request32, Response, Response32, PAGE_SIZE};

mod datapath;

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

/// A queue's ring in the layout its frontend asked for; requests come
/// off it and responses go on it in the native form either way.
enum Ring<P: SharedPage> {
    Native(BackRing<P, Request, Response>),
    X86_32(BackRing<P, Request32, Response32>),
}

impl<P: SharedPage> Ring<P> {
    fn attach(abi: Abi, page: P, at: u32) -> Result<Self, RingError> {
        Ok(match abi {
            Abi::Native => Ring::Native(BackRing::attach(page, at)?),
            Abi::X86_32 => Ring::X86_32(BackRing::attach(page, at)?),
        })
    }

    fn next_request(&mut self) -> Result<Option<Request>, RingError> {
        match self {
            Ring::Native(r) => r.next_request(),
            Ring::X86_32(r) => Ok(r.next_request()?.map(|r| r.0)),
        }
    }

    fn final_check_for_requests(&mut self) -> Result<bool, RingError> {
        match self {
            Ring::Native(r) => r.final_check_for_requests(),
            Ring::X86_32(r) => r.final_check_for_requests(),
        }
    }

    fn queue_response(&mut self, rsp: &Response) -> Result<(), RingError> {
        match self {
            Ring::Native(r) => r.queue_response(rsp),
            Ring::X86_32(r) => r.queue_response(&Response32(*rsp)),
        }
    }

    fn push_responses(&mut self) -> bool {
        match self {
            Ring::Native(r) => r.push_responses(),
            Ring::X86_32(r) => r.push_responses(),
        }
    }

    fn rsp_prod_pvt(&self) -> u32 {
        match self {
            Ring::Native(r) => r.rsp_prod_pvt(),
            Ring::X86_32(r) => r.rsp_prod_pvt(),
        }
    }

    fn into_page(self) -> P {
        match self {
            Ring::Native(r) => r.into_page(),
            Ring::X86_32(r) => r.into_page(),
        }
    }
}

struct Queue<P: SharedPage> {
    ring: Ring<P>,
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
            let abi = self.header.map_or(Abi::Native, |h| h.abi);
            match Ring::attach(abi, page, at) {
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
}

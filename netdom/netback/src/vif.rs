//! One VIF: the xenbus handshake, the tx and rx rings, budgets, counters.
//!
//! read first: DESIGN.md (the state machine), `handshake.rs` (the keys),
//! `tx.rs` (packet checks), `plan.rs` (grant copies), io/xenbus.h.
//!
//! Sans-IO. The board feeds what it saw (the frontend's `state` node, the
//! frontend's keys, rings mapped, packets from the bridge, completed copy
//! plans) and takes back [`Action`]s (write a key, switch state, map or
//! unmap the rings, bind or unbind event channels) from
//! [`Vif::poll_action`], copy plans, packets for the bridge and
//! `notify` flags (kick the frontend's event channel). Time (`now`,
//! microseconds from any origin) only feeds the rate limit.
//!
//! Responses are written in ring order: every plan (and every dropped
//! packet) takes a place in a per-direction queue when its requests are
//! consumed, and responses are written from the front of that queue as
//! plans complete, whatever order the board completes them in. An rx
//! response therefore always lands in the slot of the request it answers
//! (Linux netfront relies on it).
//!
//! A protocol error (a [`Fault`]) disconnects this VIF only: its rings are
//! unmapped and its event channels unbound (the actions hand the pages
//! back), the backend goes to Closing, and plans still out with the board
//! become stale: completing them only returns their budget.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use xcp_ring::{sring, BackRing, RingError, SharedPage};
use xcp_xenbus::XenbusState;

use crate::budget::{plan_cost, Budget, BudgetTooSmall, Credit, Rate};
use crate::handshake::{Features, FrontendConfig, KeyError};
use crate::plan::{GrantCopy, RxMeta, RxPlan, Ticket, TxPacket, TxPlan};
use crate::tx::{assemble, Assembled, GsoAllowed, Slot, SlotKind, TxFault};
use crate::wire::{
    ExtraInfo, RxRequest, RxResponse, TxRequest, TxResponse, ETH_HLEN, MAX_PACKET_LEN,
    NETIF_RSP_ERROR, NETIF_RSP_NULL, NETIF_RSP_OKAY, NETRXF_CSUM_BLANK, NETRXF_DATA_VALIDATED,
    NETRXF_EXTRA_INFO, NETRXF_MORE_DATA, PAGE_SIZE, XEN_NETIF_GSO_TYPE_TCPV4,
    XEN_NETIF_GSO_TYPE_TCPV6,
};

/// How a VIF is created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// The frontend's domain.
    pub frontend_domid: u16,
    /// What the backend offers.
    pub features: Features,
    /// Bytes this VIF may make netdom hold (see `budget.rs`).
    pub budget_bytes: usize,
    /// Guest transmit rate limit (`None`: unlimited).
    pub rate: Option<Rate>,
}

/// Something the board must do, in order.
pub enum Action<P> {
    /// Write `value` at `key` under the backend's directory.
    WriteBackend {
        /// Relative key, e.g. `feature-sg`.
        key: &'static str,
        /// Its value.
        value: alloc::string::String,
    },
    /// Write the backend's `state`.
    SwitchState(XenbusState),
    /// Read [`crate::FRONTEND_KEYS`] from the frontend's directory and
    /// call [`Vif::on_frontend_keys`].
    ReadFrontendKeys,
    /// Map the two ring grants of `domid` and call [`Vif::on_rings_mapped`]
    /// (or [`Vif::on_map_failed`]).
    MapRings {
        /// The frontend.
        domid: u16,
        /// `tx-ring-ref`.
        tx_ring_ref: u32,
        /// `rx-ring-ref`.
        rx_ring_ref: u32,
    },
    /// Bind interdomain event channels to the frontend's ports.
    BindEventChannels {
        /// The frontend.
        domid: u16,
        /// Its tx port (the only one unless split).
        tx_port: u32,
        /// Its rx port when split.
        rx_port: Option<u32>,
    },
    /// Unmap these ring pages (handed back).
    UnmapRings {
        /// The tx ring's page.
        tx: P,
        /// The rx ring's page.
        rx: P,
    },
    /// Unbind this VIF's event channels.
    UnbindEventChannels,
}

impl<P> core::fmt::Debug for Action<P> {
    // By hand: a page handle need not be Debug.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Action::WriteBackend { key, value } => write!(f, "WriteBackend({key}={value})"),
            Action::SwitchState(s) => write!(f, "SwitchState({s:?})"),
            Action::ReadFrontendKeys => f.write_str("ReadFrontendKeys"),
            Action::MapRings {
                domid,
                tx_ring_ref,
                rx_ring_ref,
            } => write!(f, "MapRings(d{domid}, tx {tx_ring_ref}, rx {rx_ring_ref})"),
            Action::BindEventChannels {
                domid,
                tx_port,
                rx_port,
            } => write!(
                f,
                "BindEventChannels(d{domid}, tx {tx_port}, rx {rx_port:?})"
            ),
            Action::UnmapRings { .. } => f.write_str("UnmapRings"),
            Action::UnbindEventChannels => f.write_str("UnbindEventChannels"),
        }
    }
}

/// Why a VIF was disconnected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The frontend's keys were refused.
    Keys(KeyError),
    /// The frontend broke the tx protocol.
    Tx(TxFault),
    /// The rx ring's indexes are nonsense.
    RxRing(RingError),
    /// The frontend wrote a state we do not take (Reconfiguring, or not a
    /// state at all).
    FrontendState(u32),
    /// The board could not map the rings (a bad grant reference).
    MapFailed,
    /// A ring page shorter than a page.
    BadRingPage,
    /// An engine invariant failed (a bug; disconnecting is the safe side).
    Internal,
}

/// Where the VIF is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Advertised; waiting for the frontend to be Initialised/Connected.
    InitWait,
    /// Waiting for the board to read the frontend's keys.
    ReadingKeys,
    /// Waiting for the board to map the rings.
    Mapping,
    /// Rings live.
    Connected,
    /// The frontend is closing; nothing held.
    Closing,
    /// Disconnected after a fault; nothing held; waits for the frontend to
    /// close.
    Disconnected(Fault),
    /// Closed; a frontend that goes back to Initialising reconnects.
    Closed,
}

/// Counters (the future XenAPI VIF_metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Packets from the guest delivered to the bridge.
    pub tx_packets: u64,
    /// Their bytes.
    pub tx_bytes: u64,
    /// Guest packets refused (runts, bad GSO).
    pub tx_dropped: u64,
    /// Guest packets whose copy failed.
    pub tx_errors: u64,
    /// Times a guest packet had to wait for credit.
    pub tx_rate_limited: u64,
    /// Packets copied into the guest.
    pub rx_packets: u64,
    /// Their bytes.
    pub rx_bytes: u64,
    /// Packets for the guest dropped (any reason, including no buffer).
    pub rx_dropped: u64,
    /// ... of which because no buffer was posted.
    pub rx_no_buffer: u64,
    /// Packets for the guest whose copy failed.
    pub rx_errors: u64,
    /// Disconnections for a protocol error.
    pub faults: u64,
    /// Connections made.
    pub connects: u64,
}

/// Why a packet for the guest was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxDrop {
    /// The VIF is not connected.
    NotConnected,
    /// Shorter than an Ethernet header or longer than `MAX_PACKET_LEN`.
    BadLength,
    /// More than a page and the frontend has no `feature-sg`.
    NeedsSg,
    /// GSO of a type not negotiated (or size 0).
    GsoNotNegotiated,
    /// A blank checksum for a frontend without checksum offload.
    ChecksumOffloadOff,
    /// The VIF's rx budget is spent (plans the board has not completed).
    Budget,
    /// Not enough posted buffers.
    NoBuffers,
    /// The rx ring is nonsense: the VIF was disconnected.
    Fault,
}

/// What [`Vif::tx_poll`] produced.
#[derive(Debug, Default)]
pub struct TxPoll {
    /// A packet to copy, then [`Vif::tx_complete`].
    pub plan: Option<TxPlan>,
    /// Kick the frontend's tx event channel (responses were pushed).
    pub notify: bool,
    /// A packet waits for rate credit: poll again at this time.
    pub wait_until: Option<u64>,
    /// A packet waits for budget: complete plans, then poll again.
    pub blocked: bool,
    /// [`TX_PACKETS_PER_POLL`] packets were handled: more may wait; poll
    /// again after serving the other VIFs.
    pub again: bool,
}

/// The most packets one [`Vif::tx_poll`] handles (dropped ones included),
/// so that a frontend streaming requests cannot hold the board's loop.
pub const TX_PACKETS_PER_POLL: usize = 64;

/// What [`Vif::tx_complete`] produced.
#[derive(Debug, Default)]
pub struct TxDone {
    /// The packet for the bridge (copies succeeded, connection current).
    pub packet: Option<TxPacket>,
    /// Kick the frontend's tx event channel.
    pub notify: bool,
}

struct TxPending {
    seq: u64,
    slots: Vec<Slot>,
    status: Option<i16>,
}

struct RxPending {
    seq: u64,
    responses: Vec<RxResponse>,
    extra_at: Option<usize>,
    done: bool,
}

struct Conn<P: SharedPage> {
    cfg: FrontendConfig,
    tx: BackRing<P, TxRequest, TxResponse>,
    rx: BackRing<P, RxRequest, RxResponse>,
    tx_pending: VecDeque<TxPending>,
    rx_pending: VecDeque<RxPending>,
    stalled: Option<Assembled>,
}

#[derive(Clone, Copy, Debug, Default)]
struct InFlight {
    plans: usize,
    bytes: usize,
}

/// One VIF's engine over ring pages `P`.
pub struct Vif<P: SharedPage> {
    config: Config,
    budget: Budget,
    credit: Credit,
    state: State,
    backend_state: XenbusState,
    frontend_state: XenbusState,
    mapping: Option<FrontendConfig>,
    conn: Option<Conn<P>>,
    generation: u64,
    next_seq: u64,
    tx_in_flight: InFlight,
    rx_in_flight: InFlight,
    actions: VecDeque<Action<P>>,
    stats: Stats,
}

impl<P: SharedPage> Vif<P> {
    /// A VIF advertising `config.features`, going to InitWait (both in
    /// the actions queued).
    pub fn new(config: Config, now: u64) -> Result<Self, BudgetTooSmall> {
        let budget = Budget::from_bytes(config.budget_bytes)?;
        let mut vif = Vif {
            config,
            budget,
            credit: Credit::new(config.rate, now),
            state: State::InitWait,
            backend_state: XenbusState::Initialising,
            frontend_state: XenbusState::Unknown,
            mapping: None,
            conn: None,
            generation: 0,
            next_seq: 0,
            tx_in_flight: InFlight::default(),
            rx_in_flight: InFlight::default(),
            actions: VecDeque::new(),
            stats: Stats::default(),
        };
        for (key, value) in config.features.backend_keys() {
            vif.actions.push_back(Action::WriteBackend { key, value });
        }
        vif.switch(XenbusState::InitWait);
        Ok(vif)
    }

    /// The next thing the board must do.
    pub fn poll_action(&mut self) -> Option<Action<P>> {
        self.actions.pop_front()
    }

    /// While Connected: where the tx and rx rings' responses stand
    /// (`rsp_prod_pvt`; a resumed ring starts past zero).
    pub fn ring_positions(&self) -> Option<(u32, u32)> {
        let c = self.conn.as_ref()?;
        Some((c.tx.rsp_prod_pvt(), c.rx.rsp_prod_pvt()))
    }

    /// Where the VIF is.
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

    /// The budget derived at creation.
    pub fn budget(&self) -> Budget {
        self.budget
    }

    /// What was negotiated, while connected.
    pub fn frontend_config(&self) -> Option<FrontendConfig> {
        self.conn.as_ref().map(|c| c.cfg)
    }

    /// Plans out with the board: (tx plans, tx bytes, rx plans, rx bytes).
    pub fn in_flight(&self) -> (usize, usize, usize, usize) {
        (
            self.tx_in_flight.plans,
            self.tx_in_flight.bytes,
            self.rx_in_flight.plans,
            self.rx_in_flight.bytes,
        )
    }

    fn switch(&mut self, to: XenbusState) {
        if self.backend_state != to {
            self.backend_state = to;
            self.actions.push_back(Action::SwitchState(to));
        }
    }

    /// Gives back what the connection holds; plans out become stale.
    fn release(&mut self) {
        let bound = self.mapping.take().is_some();
        if let Some(conn) = self.conn.take() {
            self.actions.push_back(Action::UnmapRings {
                tx: conn.tx.into_page(),
                rx: conn.rx.into_page(),
            });
            self.actions.push_back(Action::UnbindEventChannels);
        } else if bound {
            self.actions.push_back(Action::UnbindEventChannels);
        }
        self.generation += 1;
    }

    fn fault(&mut self, fault: Fault) {
        self.stats.faults += 1;
        self.release();
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
                    self.actions.push_back(Action::ReadFrontendKeys);
                    self.state = State::ReadingKeys;
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

    /// The toolstack unplugs the VIF (its backend `online` went to 0):
    /// release what is held and go to Closing; the frontend's Closed then
    /// takes the backend to Closed.
    pub fn unplug(&mut self) {
        if !matches!(self.state, State::Closed) {
            self.release();
            self.switch(XenbusState::Closing);
            self.state = State::Closing;
        }
    }

    /// The frontend's keys (present ones; see [`crate::FRONTEND_KEYS`]),
    /// after [`Action::ReadFrontendKeys`].
    pub fn on_frontend_keys(&mut self, pairs: &[(&str, &[u8])]) {
        if self.state != State::ReadingKeys {
            return;
        }
        match FrontendConfig::parse(pairs, &self.config.features) {
            Err(e) => self.fault(Fault::Keys(e)),
            Ok(cfg) => {
                let domid = self.config.frontend_domid;
                self.actions.push_back(Action::MapRings {
                    domid,
                    tx_ring_ref: cfg.tx_ring_ref,
                    rx_ring_ref: cfg.rx_ring_ref,
                });
                self.actions.push_back(Action::BindEventChannels {
                    domid,
                    tx_port: cfg.evtchn_tx,
                    rx_port: cfg.evtchn_rx,
                });
                self.mapping = Some(cfg);
                self.state = State::Mapping;
            }
        }
    }

    /// The rings asked for are mapped (and the channels bound). Pages that
    /// arrive when no longer wanted are handed straight back to unmap.
    pub fn on_rings_mapped(&mut self, tx: P, rx: P) {
        let cfg = match (self.state, self.mapping) {
            (State::Mapping, Some(cfg)) => cfg,
            _ => {
                self.actions.push_back(Action::UnmapRings { tx, rx });
                return;
            }
        };
        if tx.len() < PAGE_SIZE || rx.len() < PAGE_SIZE {
            self.actions.push_back(Action::UnmapRings { tx, rx });
            self.fault(Fault::BadRingPage);
            return;
        }
        // A frontend that was connected to an earlier backend (netdom was
        // rebuilt; Linux netback's BACK_RING_ATTACH on rebind) goes on
        // after the last responses it was given: requests the old backend
        // took but never answered are taken again. A fresh ring says 0. A
        // lying rsp_prod is found by the first poll, as any bad index.
        let (tx_at, rx_at) = (tx.load_u32(sring::RSP_PROD), rx.load_u32(sring::RSP_PROD));
        let (Ok(mut tx_ring), Ok(mut rx_ring)) =
            (BackRing::attach(tx, tx_at), BackRing::attach(rx, rx_at))
        else {
            // Unreachable for a whole page (256 slots fit); the pages were
            // consumed by init, so only the channels remain to release.
            self.fault(Fault::BadRingPage);
            return;
        };
        // Ask to be kicked for the first requests. A nonsense req_prod is
        // found (and faulted) by the first poll.
        let _ = tx_ring.final_check_for_requests();
        let _ = rx_ring.final_check_for_requests();
        self.mapping = None;
        self.conn = Some(Conn {
            cfg,
            tx: tx_ring,
            rx: rx_ring,
            tx_pending: VecDeque::new(),
            rx_pending: VecDeque::new(),
            stalled: None,
        });
        self.stats.connects += 1;
        self.switch(XenbusState::Connected);
        self.state = State::Connected;
    }

    /// The rings could not be mapped (or the channels bound).
    pub fn on_map_failed(&mut self) {
        if self.state == State::Mapping {
            self.fault(Fault::MapFailed);
        }
    }

    fn ticket(&mut self, cost: usize) -> Ticket {
        self.next_seq += 1;
        Ticket {
            generation: self.generation,
            seq: self.next_seq,
            cost,
        }
    }

    /// Consumes tx requests: answers dropped packets, and returns the next
    /// packet to copy (one per call; call again until no plan comes back).
    pub fn tx_poll(&mut self, now: u64) -> TxPoll {
        let mut out = TxPoll::default();
        if self.conn.is_none() {
            return out;
        }
        if let Err(fault) = self.tx_poll_inner(now, &mut out) {
            self.fault(fault);
            return TxPoll::default();
        }
        match self.flush_tx() {
            Ok(notify) => out.notify |= notify,
            Err(fault) => {
                self.fault(fault);
                return TxPoll::default();
            }
        }
        out
    }

    fn tx_poll_inner(&mut self, now: u64, out: &mut TxPoll) -> Result<(), Fault> {
        for _ in 0..TX_PACKETS_PER_POLL {
            let conn = self.conn.as_mut().ok_or(Fault::Internal)?;
            let held = conn.stalled.is_some();
            let packet = match conn.stalled.take() {
                Some(p) => p,
                None => {
                    let first = match conn.tx.next_request() {
                        Err(e) => return Err(Fault::Tx(TxFault::Ring(e))),
                        Ok(Some(first)) => first,
                        Ok(None) => match conn.tx.final_check_for_requests() {
                            Err(e) => return Err(Fault::Tx(TxFault::Ring(e))),
                            Ok(true) => continue,
                            Ok(false) => return Ok(()),
                        },
                    };
                    let allowed = GsoAllowed {
                        tcpv4: conn.cfg.gso_tcpv4,
                        tcpv6: conn.cfg.gso_tcpv6,
                    };
                    let ring = &mut conn.tx;
                    assemble(first, allowed, &mut || ring.next_request()).map_err(Fault::Tx)?
                }
            };
            if packet.drop.is_some() {
                self.stats.tx_dropped += 1;
                let seq = self.ticket(0).seq;
                conn_mut(&mut self.conn)?.tx_pending.push_back(TxPending {
                    seq,
                    slots: packet.slots,
                    status: Some(NETIF_RSP_ERROR),
                });
                continue;
            }
            let cost = plan_cost(packet.len);
            if self.tx_in_flight.plans >= self.budget.max_plans
                || self.tx_in_flight.bytes + cost > self.budget.tx_bytes
            {
                conn_mut(&mut self.conn)?.stalled = Some(packet);
                out.blocked = true;
                return Ok(());
            }
            if let Err(until) = self.credit.spend(now, packet.len as u64) {
                if !held {
                    self.stats.tx_rate_limited += 1;
                }
                conn_mut(&mut self.conn)?.stalled = Some(packet);
                out.wait_until = Some(until);
                return Ok(());
            }
            let ticket = self.ticket(cost);
            self.tx_in_flight.plans += 1;
            self.tx_in_flight.bytes += cost;
            let domid = self.config.frontend_domid;
            let mut copies = Vec::with_capacity(packet.pieces.len());
            let mut at = 0u32;
            for piece in &packet.pieces {
                copies.push(GrantCopy {
                    domid,
                    gref: piece.gref,
                    page_offset: piece.offset,
                    len: piece.len,
                    buf_offset: at,
                });
                at += u32::from(piece.len);
            }
            conn_mut(&mut self.conn)?.tx_pending.push_back(TxPending {
                seq: ticket.seq,
                slots: packet.slots,
                status: None,
            });
            out.plan = Some(TxPlan {
                ticket,
                copies,
                buf: alloc::vec![0; packet.len],
                gso: packet.gso,
                csum_blank: packet.csum_blank,
                data_validated: packet.data_validated,
            });
            return Ok(());
        }
        out.again = true;
        Ok(())
    }

    /// Writes the tx responses whose turn has come; true to kick.
    fn flush_tx(&mut self) -> Result<bool, Fault> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(false);
        };
        let mut wrote = false;
        while let Some(status) = conn.tx_pending.front().and_then(|p| p.status) {
            let done = conn.tx_pending.pop_front().ok_or(Fault::Internal)?;
            for slot in &done.slots {
                let rsp = match slot.kind {
                    SlotKind::Data => TxResponse {
                        id: slot.id,
                        status,
                    },
                    SlotKind::Extra => TxResponse {
                        id: slot.id,
                        status: NETIF_RSP_NULL,
                    },
                };
                conn.tx.queue_response(&rsp).map_err(|_| Fault::Internal)?;
                wrote = true;
            }
        }
        Ok(wrote && conn.tx.push_responses())
    }

    /// The board ran `plan`'s copies (`copied`: all succeeded). Returns the
    /// packet for the bridge, and whether to kick the frontend.
    pub fn tx_complete(&mut self, plan: TxPlan, copied: bool) -> TxDone {
        let ticket = plan.ticket;
        self.tx_in_flight.plans -= 1;
        self.tx_in_flight.bytes -= ticket.cost;
        if ticket.generation != self.generation {
            return TxDone::default();
        }
        let Some(conn) = self.conn.as_mut() else {
            return TxDone::default();
        };
        let Some(pending) = conn.tx_pending.iter_mut().find(|p| p.seq == ticket.seq) else {
            return TxDone::default();
        };
        pending.status = Some(if copied {
            NETIF_RSP_OKAY
        } else {
            NETIF_RSP_ERROR
        });
        let notify = match self.flush_tx() {
            Ok(n) => n,
            Err(fault) => {
                self.fault(fault);
                return TxDone::default();
            }
        };
        if !copied {
            self.stats.tx_errors += 1;
            return TxDone {
                packet: None,
                notify,
            };
        }
        self.stats.tx_packets += 1;
        self.stats.tx_bytes += plan.buf.len() as u64;
        TxDone {
            packet: Some(TxPacket {
                bytes: plan.buf,
                gso: plan.gso,
                csum_blank: plan.csum_blank,
                data_validated: plan.data_validated,
            }),
            notify,
        }
    }

    /// A packet of `len` bytes for the guest: consumes posted rx requests
    /// and returns the copies to run, or why it was dropped (counted).
    pub fn rx_packet(&mut self, len: usize, meta: RxMeta) -> Result<RxPlan, RxDrop> {
        let result = self.rx_packet_inner(len, meta);
        if let Err(drop) = result {
            self.stats.rx_dropped += 1;
            if drop == RxDrop::NoBuffers {
                self.stats.rx_no_buffer += 1;
            }
        }
        result
    }

    fn rx_packet_inner(&mut self, len: usize, meta: RxMeta) -> Result<RxPlan, RxDrop> {
        let cfg = self.conn.as_ref().ok_or(RxDrop::NotConnected)?.cfg;
        if !(ETH_HLEN..=MAX_PACKET_LEN).contains(&len) {
            return Err(RxDrop::BadLength);
        }
        let data_slots = len.div_ceil(PAGE_SIZE);
        if data_slots > 1 && !cfg.sg {
            return Err(RxDrop::NeedsSg);
        }
        if let Some(g) = meta.gso {
            let ok = g.size != 0
                && match g.kind {
                    XEN_NETIF_GSO_TYPE_TCPV4 => cfg.gso_tcpv4,
                    XEN_NETIF_GSO_TYPE_TCPV6 => cfg.gso_tcpv6,
                    _ => false,
                };
            if !ok {
                return Err(RxDrop::GsoNotNegotiated);
            }
        }
        if meta.csum_blank && !cfg.csum_offload {
            return Err(RxDrop::ChecksumOffloadOff);
        }
        let cost = plan_cost(len);
        if self.rx_in_flight.plans >= self.budget.max_plans
            || self.rx_in_flight.bytes + cost > self.budget.rx_bytes
        {
            return Err(RxDrop::Budget);
        }
        let needed = data_slots + usize::from(meta.gso.is_some());
        let conn = self.conn.as_mut().ok_or(RxDrop::NotConnected)?;
        let mut avail = conn.rx.unconsumed_requests();
        if matches!(avail, Ok(n) if (n as usize) < needed) {
            // Ask to be kicked when more are posted, and look once more.
            avail = conn
                .rx
                .final_check_for_requests()
                .and_then(|_| conn.rx.unconsumed_requests());
        }
        match avail {
            Err(e) => {
                self.fault(Fault::RxRing(e));
                return Err(RxDrop::Fault);
            }
            Ok(n) if (n as usize) < needed => return Err(RxDrop::NoBuffers),
            Ok(_) => {}
        }
        let mut requests = Vec::with_capacity(needed);
        for _ in 0..needed {
            match conn.rx.next_request() {
                Ok(Some(r)) => requests.push(r),
                Ok(None) => {
                    self.fault(Fault::Internal);
                    return Err(RxDrop::Fault);
                }
                Err(e) => {
                    self.fault(Fault::RxRing(e));
                    return Err(RxDrop::Fault);
                }
            }
        }
        // Slot order: first data slot, then the GSO extra, then the rest of
        // the data (what Linux netfront's xennet_get_responses expects).
        let mut csum = 0;
        if meta.csum_blank {
            csum = NETRXF_CSUM_BLANK | NETRXF_DATA_VALIDATED;
        } else if meta.data_validated {
            csum = NETRXF_DATA_VALIDATED;
        }
        let domid = self.config.frontend_domid;
        let mut copies = Vec::with_capacity(data_slots);
        let mut responses = Vec::with_capacity(needed);
        let mut extra_at = None;
        let mut data = 0usize;
        for (i, req) in requests.iter().enumerate() {
            if i == 1 {
                if let Some(g) = meta.gso {
                    extra_at = Some(responses.len());
                    responses.push(RxResponse::from_extra(&ExtraInfo::gso(g, 0)));
                    continue;
                }
            }
            let start = data * PAGE_SIZE;
            let chunk = (len - start).min(PAGE_SIZE);
            data += 1;
            let mut flags = if data < data_slots {
                NETRXF_MORE_DATA
            } else {
                0
            };
            if data == 1 {
                flags |= csum;
                if meta.gso.is_some() {
                    flags |= NETRXF_EXTRA_INFO;
                }
            }
            // chunk ≤ 4096 fits u16 and i16; start < 65549 fits u32.
            copies.push(GrantCopy {
                domid,
                gref: req.gref,
                page_offset: 0,
                len: chunk as u16,
                buf_offset: start as u32,
            });
            responses.push(RxResponse {
                id: req.id,
                offset: 0,
                flags,
                status: chunk as i16,
            });
        }
        let ticket = self.ticket(cost);
        self.rx_in_flight.plans += 1;
        self.rx_in_flight.bytes += cost;
        if let Some(conn) = self.conn.as_mut() {
            conn.rx_pending.push_back(RxPending {
                seq: ticket.seq,
                responses,
                extra_at,
                done: false,
            });
        }
        Ok(RxPlan {
            ticket,
            copies,
            len,
        })
    }

    /// The board ran `plan`'s copies (`copied`: all succeeded); true to
    /// kick the frontend's rx event channel.
    pub fn rx_complete(&mut self, plan: RxPlan, copied: bool) -> bool {
        let ticket = plan.ticket;
        self.rx_in_flight.plans -= 1;
        self.rx_in_flight.bytes -= ticket.cost;
        if ticket.generation != self.generation {
            return false;
        }
        let Some(conn) = self.conn.as_mut() else {
            return false;
        };
        let Some(pending) = conn.rx_pending.iter_mut().find(|p| p.seq == ticket.seq) else {
            return false;
        };
        pending.done = true;
        if copied {
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += plan.len as u64;
        } else {
            self.stats.rx_errors += 1;
            let extra_at = pending.extra_at;
            for (i, r) in pending.responses.iter_mut().enumerate() {
                // Flags stay: netfront walks the packet's slots by
                // more_data even when a status says error.
                if Some(i) != extra_at {
                    r.status = NETIF_RSP_ERROR;
                }
            }
        }
        let mut wrote = false;
        while conn.rx_pending.front().is_some_and(|p| p.done) {
            let Some(done) = conn.rx_pending.pop_front() else {
                break;
            };
            for r in &done.responses {
                if conn.rx.queue_response(r).is_err() {
                    self.fault(Fault::Internal);
                    return false;
                }
                wrote = true;
            }
        }
        wrote && conn.rx.push_responses()
    }
}

fn conn_mut<P: SharedPage>(conn: &mut Option<Conn<P>>) -> Result<&mut Conn<P>, Fault> {
    conn.as_mut().ok_or(Fault::Internal)
}

//! The board: one ring per connection around the engine, effects carried out.
//!
//! Read first: ../DESIGN.md "For the kernel" and "The domain",
//! docs/misc/xenstore-ring.txt. Per event, for the connection whose port
//! fired: copy requests out of its ring once (`take_requests`; bad indexes
//! set `error = RINGIDX` and that ring is no longer served), feed the engine
//! while it `wants_input` (unread requests stay in the guest's ring: that
//! is the flow control), copy output into the response ring, and notify
//! only if bytes moved. Then carry out the engine's effects and push the
//! output other connections got meanwhile (watch events).
//!
//! What a peer can make us hold: one ring mapping, one bound port and at
//! most one ring's worth (1024 bytes) of copied-out requests per
//! connection, connections capped at `max_guests` plus dom0; everything
//! else is the engine's, bounded by its quotas. A connection is served for
//! at most [`ROUNDS`] rounds per turn, so a guest that keeps its ring full
//! cannot starve the others; [`Board::run`] says when a turn is owed.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use xenstore_engine::ring::{self, RingError, SharedPage, RING_SIZE, SERVER_FEATURES};
use xenstore_engine::{wire, Config, ConnId, Effect, Engine, MsgType};

/// GNTTAB_RESERVED_XENSTORE: the grant entry through which every guest's
/// builder grants its xenstore ring page to the xenstore domain.
pub use xen_abi::grant_table::GNTTAB_RESERVED_XENSTORE;

/// XENSTORE_SERVER_FEATURE_RECONNECTION is not offered on rings. A guest
/// that sets `connection = XENSTORE_RECONNECT` expects the server to drop
/// its watches, transactions and queued output, zero the indexes and set
/// `XENSTORE_CONNECTED`; the engine has no per-connection reset yet, and a
/// guest waiting for a reset that never comes would hang, so the bit is
/// cleared from `server_features` (Linux only reconnects when it is set).
use xen_abi::io::xs_wire::XENSTORE_SERVER_FEATURE_RECONNECTION;

/// Rounds (copy in, handle, copy out) per connection per turn.
pub const ROUNDS: usize = 8;

/// What the board could not get from Xen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Mapping the ring's grant failed.
    Map,
    /// Binding the event channel (or watching its port) failed.
    Bind,
    /// The guest cap is reached.
    TooManyGuests,
    /// The ring reference does not fit a grant reference.
    BadRef,
}

/// What Xen says about a guest after `VIRQ_DOM_EXC` (the kernel asks with
/// `XEN_DOMCTL_getdomaininfo`, which Xen allows the xenstore domain).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestState {
    /// Running, blocked or paused.
    Alive,
    /// Shut down (crashed, powered off ...) but not yet destroyed.
    Shutdown,
    /// Being destroyed, or gone.
    Dead,
}

/// What the board needs from Xen; the kernel implements it with the
/// runtime, tests with in-memory pages.
pub trait Platform {
    /// A mapped ring page; unmapped when dropped. The runtime's
    /// `GrantMapping` is one: volatile byte copies, acquire loads and release
    /// stores of the indexes, so a producer index is loaded before the bytes
    /// it covers are read, and bytes are written before the index that
    /// publishes them is stored (docs/misc/xenstore-ring.txt's ordering).
    type Page: SharedPage;
    /// Map grant `gref` of `domid` read-write.
    fn map_ring(&mut self, domid: u16, gref: u32) -> Result<Self::Page, Failure>;
    /// Bind to `remote_port` of `domid` and start watching the local port.
    fn bind(&mut self, domid: u16, remote_port: u32) -> Result<u32, Failure>;
    /// Stop watching and close a local port.
    fn unbind(&mut self, port: u32);
    /// Kick the peer of a local port.
    fn notify(&mut self, port: u32);
}

/// One served ring.
#[derive(Debug)]
struct Peer<P> {
    domid: u16,
    page: P,
    port: u32,
    /// Requests copied out of the ring that the engine has not taken yet
    /// (flow control); never more than one ring's worth.
    leftover: Vec<u8>,
    /// A ring error was set: the ring is no longer read or written.
    stopped: bool,
}

/// The engine and its rings. See the module docs.
pub struct Board<Pg: SharedPage> {
    engine: Engine,
    peers: BTreeMap<ConnId, Peer<Pg>>,
    ports: BTreeMap<u32, ConnId>,
    /// Connections owed a turn.
    busy: BTreeSet<ConnId>,
    max_guests: usize,
    /// The connection of the domain's own writes ([`Board::write_own`]):
    /// no ring carries it.
    own: Option<ConnId>,
}

/// A write of the domain's own was refused (the engine's error reply, e.g.
/// `b"EQUOTA"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused(pub Vec<u8>);

impl<Pg: SharedPage> Board<Pg> {
    /// A board with an empty store, at most `max_guests` guests (dom0 is
    /// not counted).
    pub fn new(config: Config, max_guests: usize) -> Self {
        Board {
            engine: Engine::new(config),
            peers: BTreeMap::new(),
            ports: BTreeMap::new(),
            busy: BTreeSet::new(),
            max_guests,
            own: None,
        }
    }

    /// Writes `value` at `path` as domain `domid` (the xenstore domain
    /// itself: its own figures under its home, e.g. `data/memory/`)
    /// through a connection of its own that no ring carries. The reply is
    /// read here; watchers get their events as for any write.
    pub fn write_own<P: Platform<Page = Pg>>(
        &mut self,
        platform: &mut P,
        domid: u16,
        path: &str,
        value: &[u8],
    ) -> Result<(), Refused> {
        let conn = match self.own.filter(|c| self.engine.is_open(*c)) {
            Some(c) => c,
            None => *self.own.insert(self.engine.connect(domid)),
        };
        let mut payload = Vec::with_capacity(path.len() + 1 + value.len());
        payload.extend_from_slice(path.as_bytes());
        payload.push(0);
        payload.extend_from_slice(value);
        let request = wire::encode(MsgType::Write, 0, 0, &payload);
        if self.engine.receive(conn, &request).is_err() {
            return Err(Refused(Vec::from(&b"EINVAL"[..])));
        }
        let mut reply = Vec::new();
        while let Some(out) = self.engine.output(conn) {
            let n = out.len();
            reply.extend_from_slice(out);
            self.engine.consume_output(conn, n);
        }
        self.flush(platform);
        let ty = reply
            .get(..4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        if ty == Some(MsgType::Error.code()) {
            let text = reply.get(wire::HEADER_LEN..).unwrap_or_default();
            return Err(Refused(text.strip_suffix(&[0]).unwrap_or(text).to_vec()));
        }
        Ok(())
    }

    /// The engine (for inspection).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine's memory notices since the last call, for the kernel to
    /// log (`budget::describe`).
    pub fn take_notices(&mut self) -> alloc::vec::Vec<xenstore_engine::Notice> {
        self.engine.take_notices()
    }

    /// Guests with a served ring (dom0 not counted).
    pub fn guests(&self) -> usize {
        self.peers.values().filter(|p| p.domid != 0).count()
    }

    /// The local port of `domid`'s ring, if served.
    pub fn port_of(&self, domid: u16) -> Option<u32> {
        self.peers
            .values()
            .find(|p| p.domid == domid)
            .map(|p| p.port)
    }

    /// Rings with requests the board would read now (nothing left over,
    /// the engine wants input, no turn owed) but has not:
    /// `(domid, port, unread bytes, req_cons)`. The kernel looks on a
    /// timer: a ring listed twice with the same `req_cons` and its port
    /// not pending lost a kick.
    pub fn unread_rings(&self) -> Vec<(u16, u32, u32, u32)> {
        self.peers
            .iter()
            .filter(|(conn, p)| {
                !p.stopped
                    && p.leftover.is_empty()
                    && !self.busy.contains(conn)
                    && self.engine.wants_input(**conn)
            })
            .filter_map(|(_, p)| {
                let cons = p.page.load_u32(xenstore_engine::ring::REQ_CONS);
                let prod = p.page.load_u32(xenstore_engine::ring::REQ_PROD);
                let unread = prod.wrapping_sub(cons);
                (unread != 0).then_some((p.domid, p.port, unread, cons))
            })
            .collect()
    }

    /// Whether `domid`'s ring was stopped after a ring error.
    pub fn is_stopped(&self, domid: u16) -> bool {
        self.peers.values().any(|p| p.domid == domid && p.stopped)
    }

    /// Introduce dom0's own ring: grant `gref` of dom0, dom0's unbound
    /// `port`. Serves whatever dom0 already queued. `Err` if the ring
    /// cannot be mapped or bound (nothing can work then).
    pub fn start_dom0<P: Platform<Page = Pg>>(
        &mut self,
        platform: &mut P,
        gref: u32,
        port: u32,
    ) -> Result<(), Failure> {
        // The engine keeps "mfn" as given; for dom0 it is the grant ref.
        let conn = self
            .engine
            .introduce(0, i64::from(gref), port)
            .map_err(|_| Failure::Map)?;
        let failures = self.apply_effects(platform);
        if let Some(f) = failures {
            if !self.peers.contains_key(&conn) {
                return Err(f);
            }
        }
        self.run(platform);
        Ok(())
    }

    /// A watched port fired. Returns whether a turn is still owed (call
    /// [`Board::run`] again soon, e.g. from a zero-delay timer).
    pub fn on_event<P: Platform<Page = Pg>>(&mut self, platform: &mut P, port: u32) -> bool {
        if let Some(conn) = self.ports.get(&port) {
            self.busy.insert(*conn);
        }
        self.run(platform)
    }

    /// `VIRQ_DOM_EXC` fired (dom0 made this domain its handler with
    /// `XEN_DOMCTL_set_virq_handler`): asks `state` about every introduced
    /// guest, as C xenstored does. A dead one is released as RELEASE would
    /// (ring unmapped, port closed, its nodes, watches and transactions
    /// gone, `@releaseDomain` fired); a shut-down one fires
    /// `@releaseDomain` once (until it is resumed). Returns the domids
    /// released, and whether a turn is owed.
    pub fn on_dom_exc<P: Platform<Page = Pg>>(
        &mut self,
        platform: &mut P,
        state: &mut dyn FnMut(u16) -> GuestState,
    ) -> (Vec<u16>, bool) {
        let guests: BTreeSet<u16> = self
            .peers
            .values()
            .map(|p| p.domid)
            .filter(|&d| d != 0)
            .collect();
        let mut released = Vec::new();
        for domid in guests {
            match state(domid) {
                GuestState::Alive => {}
                GuestState::Shutdown => {
                    let _ = self.engine.domain_shutdown(domid);
                }
                GuestState::Dead => {
                    if self.engine.release(domid).is_ok() {
                        released.push(domid);
                    }
                }
            }
        }
        self.apply_effects(platform);
        (released, self.run(platform))
    }

    /// Serve every connection owed a turn, carry out effects, push output
    /// that other connections got meanwhile. Returns whether a turn is
    /// still owed.
    pub fn run<P: Platform<Page = Pg>>(&mut self, platform: &mut P) -> bool {
        let work = core::mem::take(&mut self.busy);
        for conn in work {
            if self.serve(platform, conn) {
                self.busy.insert(conn);
            }
        }
        self.flush(platform);
        !self.busy.is_empty()
    }

    /// One connection's turn: rounds until nothing moves (or [`ROUNDS`]).
    /// Effects are carried out after every round, so a request read in
    /// the next round (say IS_DOMAIN_INTRODUCED after INTRODUCE's reply)
    /// sees them. Returns whether the connection still has work.
    fn serve<P: Platform<Page = Pg>>(&mut self, platform: &mut P, conn: ConnId) -> bool {
        let mut moved_any = false;
        let mut more = false;
        for round in 0..ROUNDS {
            let outcome = match self.peers.get_mut(&conn) {
                Some(peer) if !peer.stopped => one_round(&mut self.engine, conn, peer),
                _ => Round::Idle,
            };
            self.apply_effects(platform);
            match outcome {
                Round::Moved => moved_any = true,
                Round::Stopped => {
                    moved_any = true;
                    break;
                }
                Round::Idle => break,
            }
            more = round + 1 == ROUNDS;
        }
        if moved_any {
            if let Some(peer) = self.peers.get(&conn) {
                platform.notify(peer.port);
            }
        }
        more
    }

    /// Push pending output (watch events fired by other connections).
    fn flush<P: Platform<Page = Pg>>(&mut self, platform: &mut P) {
        for (conn, peer) in self.peers.iter_mut() {
            if peer.stopped || self.engine.output(*conn).is_none() {
                continue;
            }
            match push_output(&mut self.engine, *conn, peer) {
                Ok(0) => {}
                Ok(_) | Err(()) => platform.notify(peer.port),
            }
        }
    }

    /// Carry out the engine's effects until there are none. Returns the
    /// last failure, if any (each is also logged).
    fn apply_effects<P: Platform<Page = Pg>>(&mut self, platform: &mut P) -> Option<Failure> {
        let mut failure = None;
        loop {
            let effects = self.engine.take_effects();
            if effects.is_empty() {
                return failure;
            }
            for effect in effects {
                match effect {
                    Effect::MapRing {
                        conn,
                        domid,
                        mfn,
                        evtchn,
                        features,
                    } => {
                        if let Err(f) = self.attach(platform, conn, domid, mfn, evtchn, features) {
                            log::error!("introduce of domain {domid} refused: {f:?}");
                            // Released, so the toolstack sees @releaseDomain
                            // and IS_DOMAIN_INTRODUCED answers F. dom0 is
                            // privileged and never released.
                            let _ = self.engine.release(domid);
                            failure = Some(f);
                        }
                    }
                    Effect::UnmapRing { conn, domid } => {
                        self.detach(platform, conn);
                        log::debug!("release of domain {domid}");
                    }
                    Effect::ProtocolError { conn, domid } => {
                        if let Some(peer) = self.peers.get_mut(&conn) {
                            stop(peer, RingError::Proto);
                            platform.notify(peer.port);
                        }
                        log::warn!("domain {domid} broke the protocol: its ring is stopped");
                    }
                }
            }
        }
    }

    fn attach<P: Platform<Page = Pg>>(
        &mut self,
        platform: &mut P,
        conn: ConnId,
        domid: u16,
        mfn: i64,
        evtchn: u32,
        features: u32,
    ) -> Result<(), Failure> {
        // A re-introduction (same connection) replaces the old ring.
        self.detach(platform, conn);
        let gref = if domid == 0 {
            u32::try_from(mfn).map_err(|_| Failure::BadRef)?
        } else {
            if self.guests() >= self.max_guests {
                return Err(Failure::TooManyGuests);
            }
            GNTTAB_RESERVED_XENSTORE
        };
        let page = platform.map_ring(domid, gref)?;
        // On failure the mapping is dropped here, which unmaps it.
        let port = platform.bind(domid, evtchn)?;
        page.store_u32(
            SERVER_FEATURES,
            features & !XENSTORE_SERVER_FEATURE_RECONNECTION,
        );
        self.peers.insert(
            conn,
            Peer {
                domid,
                page,
                port,
                leftover: Vec::new(),
                stopped: false,
            },
        );
        self.ports.insert(port, conn);
        // It may have queued requests before it was introduced.
        self.busy.insert(conn);
        log::debug!("introduce of domain {domid}: port {port}");
        Ok(())
    }

    fn detach<P: Platform<Page = Pg>>(&mut self, platform: &mut P, conn: ConnId) {
        if let Some(peer) = self.peers.remove(&conn) {
            self.ports.remove(&peer.port);
            self.busy.remove(&conn);
            platform.unbind(peer.port);
            // Dropping the peer drops its mapping.
        }
    }
}

/// What one round did.
enum Round {
    /// Bytes moved through the ring.
    Moved,
    /// Nothing moved.
    Idle,
    /// A ring error was set (or the engine refused the stream).
    Stopped,
}

/// Copy requests in (only when nothing is left over and the engine wants
/// input), feed the engine, copy its output out.
fn one_round<Pg: SharedPage>(engine: &mut Engine, conn: ConnId, peer: &mut Peer<Pg>) -> Round {
    let mut moved = false;
    if peer.leftover.is_empty() && engine.wants_input(conn) {
        match ring::take_requests(&peer.page, &mut peer.leftover, RING_SIZE as usize) {
            Ok(n) => moved |= n > 0,
            Err(e) => {
                stop(peer, e);
                return Round::Stopped;
            }
        }
    }
    if !peer.leftover.is_empty() {
        match engine.receive(conn, &peer.leftover) {
            Ok(n) => {
                peer.leftover.drain(..n);
            }
            Err(_) => {
                // The engine recorded Effect::ProtocolError, carried out
                // (error = PROTO) with the effects after this round.
                peer.leftover = Vec::new();
                return Round::Stopped;
            }
        }
    }
    match push_output(engine, conn, peer) {
        Ok(n) => moved |= n > 0,
        Err(()) => return Round::Stopped,
    }
    if moved {
        Round::Moved
    } else {
        Round::Idle
    }
}

/// Set the ring's error field and stop serving it.
fn stop<Pg: SharedPage>(peer: &mut Peer<Pg>, error: RingError) {
    ring::set_error(&peer.page, error);
    peer.stopped = true;
    peer.leftover = Vec::new();
    log::warn!(
        "domain {}: ring error {:?}, ring stopped",
        peer.domid,
        error
    );
}

/// Copy as much of `conn`'s output as fits into its response ring.
/// `Err` if the ring's indexes were bad (the ring is then stopped).
fn push_output<Pg: SharedPage>(
    engine: &mut Engine,
    conn: ConnId,
    peer: &mut Peer<Pg>,
) -> Result<usize, ()> {
    let mut total = 0;
    while let Some(out) = engine.output(conn) {
        match ring::put_responses(&peer.page, out) {
            Ok(0) => break,
            Ok(n) => {
                engine.consume_output(conn, n);
                total += n;
            }
            Err(e) => {
                stop(peer, e);
                return Err(());
            }
        }
    }
    Ok(total)
}

//! The engine: connections in, replies and watch events out, effects as data.
//!
//! Read first: xs_wire.h, docs/misc/xenstore.txt. Sans-IO: a board (the
//! xenstore domain kernel reading rings, or the host daemon reading unix
//! sockets) feeds bytes with [`Engine::receive`], drains each connection's
//! output with [`Engine::output`]/[`Engine::consume_output`], and acts on
//! [`Effect`]s (map a ring, bind an event channel, flag a ring error).
//! Time is never read here. Every request gets exactly one reply (ERROR
//! "ENOSYS" for unknown types: a client waiting for a reply must not hang).

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::conn::Conn;
use crate::error::XsError;
use crate::memory::{Notice, Reported, NOTICES_MAX};
use crate::ops::Limits;
use crate::path::{INTRODUCE_DOMAIN, RELEASE_DOMAIN};
use crate::perms::{Caller, Perms};
use crate::quota::Quotas;
use crate::store::Store;
use crate::watch::{may_see, ConnId, Event, Watch};
use crate::wire::{self, BadReason, Header, MsgType, Parse, ReceiveError, HEADER_LEN};
use xen_abi::io::xs_wire::{XENSTORE_SERVER_FEATURE_ERROR, XENSTORE_SERVER_FEATURE_RECONNECTION};

/// Server features this engine offers (`server_features`, GET_FEATURE):
/// XENSTORE_SERVER_FEATURE_RECONNECTION | XENSTORE_SERVER_FEATURE_ERROR.
pub const SUPPORTED_FEATURES: u32 =
    XENSTORE_SERVER_FEATURE_RECONNECTION | XENSTORE_SERVER_FEATURE_ERROR;

/// Bytes all unprivileged domains together may make the engine hold by
/// default (the host daemon's): 16 MiB. xenstore-dom sets half the heap
/// it has (DESIGN.md "Budgets").
pub const DEFAULT_MEMORY_GLOBAL: usize = 16 * 1024 * 1024;

/// Static configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Global quota defaults for new domains.
    pub quotas: Quotas,
    /// A xenstore domain that is privileged like dom0 (our own domid when
    /// running as a stub domain), if any.
    pub xenstore_domid: Option<u16>,
    /// Bytes all unprivileged domains together may make us hold (nodes,
    /// transactions, queued output); a request that would reach it fails
    /// with ENOMEM. 0 = no global cap. Size it from the domain's memory.
    pub memory_global: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            quotas: Quotas::default(),
            xenstore_domid: None,
            memory_global: DEFAULT_MEMORY_GLOBAL,
        }
    }
}

/// Something the board must do; the engine only records intent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// INTRODUCE accepted: map `mfn` of `domid` as its ring, bind `evtchn`,
    /// write `features` to `server_features`, then feed bytes as `conn`.
    MapRing {
        /// The connection the ring's bytes belong to.
        conn: ConnId,
        /// The domain.
        domid: u16,
        /// Its ring frame (signed decimal on the wire; kept as given).
        mfn: i64,
        /// Its unbound event channel.
        evtchn: u32,
        /// Server features to advertise.
        features: u32,
    },
    /// RELEASE (or domain death): unmap the ring and unbind the channel.
    UnmapRing {
        /// The connection that is now closed.
        conn: ConnId,
        /// The domain.
        domid: u16,
    },
    /// A protocol violation on `conn` (payload > 4096, XSA-325): set the
    /// ring's `error` to XENSTORE_ERROR_PROTO and stop reading it (a socket
    /// is closed). The domain is not treated as dead.
    ProtocolError {
        /// The offending connection.
        conn: ConnId,
        /// Its domid.
        domid: u16,
    },
}

/// A domain introduced with INTRODUCE.
#[derive(Clone, Debug)]
pub(crate) struct Domain {
    pub conn: ConnId,
    pub mfn: i64,
    pub evtchn: u32,
    /// `@releaseDomain` was fired for its shutdown; RESUME clears it.
    pub shutdown_reported: bool,
}

/// Settings dom0 may give a domid before or after it is introduced.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub quotas: Quotas,
    pub features: u32,
}

/// The xenstore state machine.
#[derive(Debug)]
pub struct Engine {
    pub(crate) config: Config,
    pub(crate) store: Store,
    pub(crate) conns: BTreeMap<ConnId, Conn>,
    next_conn: u32,
    pub(crate) watches: Vec<Watch>,
    pub(crate) domains: BTreeMap<u16, Domain>,
    pub(crate) settings: BTreeMap<u16, Settings>,
    pub(crate) targets: BTreeMap<u16, u16>,
    pub(crate) special_perms: [Perms; 2],
    pub(crate) effects: Vec<Effect>,
    /// Events to queue after the current reply (WATCH's initial event).
    pub(crate) after_reply: Vec<(ConnId, Vec<u8>)>,
    /// Connections that got output since [`Engine::take_ready`] last ran
    /// (each at most once: `Conn::in_ready`), so a board flushes only those.
    ready: Vec<ConnId>,
    /// Memory-limit reports per domid (soft/hard, as C's flags).
    pub(crate) reported: BTreeMap<u16, Reported>,
    /// Global-cap refusal already reported (until usage falls below it).
    global_reported: bool,
    notices: Vec<Notice>,
}

impl Engine {
    /// A store holding only `/`.
    pub fn new(config: Config) -> Engine {
        Engine {
            config,
            store: Store::new(),
            conns: BTreeMap::new(),
            next_conn: 1,
            watches: Vec::new(),
            domains: BTreeMap::new(),
            settings: BTreeMap::new(),
            targets: BTreeMap::new(),
            special_perms: [Perms::owned_by(0), Perms::owned_by(0)],
            effects: Vec::new(),
            after_reply: Vec::new(),
            ready: Vec::new(),
            reported: BTreeMap::new(),
            global_reported: false,
            notices: Vec::new(),
        }
    }

    /// Open a connection for `domid` (the host daemon uses 0 for sockets;
    /// INTRODUCE opens domain connections itself).
    pub fn connect(&mut self, domid: u16) -> ConnId {
        // Skip ids still in use after the counter wraps (never reuse a live id).
        while self.conns.contains_key(&ConnId(self.next_conn)) {
            self.next_conn = self.next_conn.wrapping_add(1).max(1);
        }
        let id = ConnId(self.next_conn);
        self.next_conn = self.next_conn.wrapping_add(1).max(1);
        self.conns.insert(id, Conn::new(domid));
        id
    }

    /// Close a connection: its watches, transactions and queued output
    /// are released. For host sockets; a domain's ring connection goes away
    /// with [`Engine::release`] (a re-INTRODUCE replaces a broken one).
    pub fn close(&mut self, conn: ConnId) {
        self.watches.retain(|w| w.conn != conn);
        if self.conns.remove(&conn).is_some_and(|c| c.in_ready) {
            self.ready.retain(|c| *c != conn);
        }
        self.after_reply.retain(|(c, _)| *c != conn);
    }

    /// Move the connections that got output (a reply or a watch event)
    /// since the last call into `into`, each once. A board that drains
    /// every connection anyway need not call it; the list never holds more
    /// than the open connections.
    pub fn take_ready(&mut self, into: &mut Vec<ConnId>) {
        for id in &self.ready {
            if let Some(c) = self.conns.get_mut(id) {
                c.in_ready = false;
            }
        }
        into.append(&mut self.ready);
    }

    /// Note that `conn` (open) just got output.
    fn mark_ready(ready: &mut Vec<ConnId>, conn: ConnId, c: &mut Conn) {
        if !c.in_ready {
            c.in_ready = true;
            ready.push(conn);
        }
    }

    /// Whether `conn` is open.
    pub fn is_open(&self, conn: ConnId) -> bool {
        self.conns.contains_key(&conn)
    }

    /// Number of open connections.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Number of nodes in the tree.
    pub fn node_count(&self) -> usize {
        self.store.len()
    }

    /// Number of registered watches.
    pub fn watch_count(&self) -> usize {
        self.watches.len()
    }

    /// Take the effects recorded so far.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        core::mem::take(&mut self.effects)
    }

    /// Whether the board should read more input for `conn` now: false
    /// while `outstanding` replies wait to be taken (ring-side flow control:
    /// unread requests stay in the peer's ring) or after a violation.
    pub fn wants_input(&self, conn: ConnId) -> bool {
        match self.conns.get(&conn) {
            Some(c) => {
                let limit = self.quotas_for(c.domid).outstanding as usize;
                !c.broken && (limit == 0 || c.replies_queued() < limit)
            }
            None => false,
        }
    }

    /// The unsent rest of the next message queued for `conn`.
    pub fn output(&self, conn: ConnId) -> Option<&[u8]> {
        self.conns.get(&conn)?.front()
    }

    /// Mark `n` bytes of [`Engine::output`] as sent.
    pub fn consume_output(&mut self, conn: ConnId, n: usize) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.consume(n);
        }
    }

    /// Watch events dropped for `conn` because its queue was full.
    pub fn dropped_events(&self, conn: ConnId) -> u64 {
        self.conns.get(&conn).map_or(0, |c| c.dropped_events)
    }

    /// Feed bytes read from `conn`. Whole messages are handled as they
    /// complete. Returns how many bytes were taken: fewer than given when
    /// flow control stops input (the rest stays with the peer). A protocol
    /// violation returns `Err`, records [`Effect::ProtocolError`], releases
    /// the connection's watches and transactions and refuses further input.
    pub fn receive(&mut self, conn: ConnId, bytes: &[u8]) -> Result<usize, ReceiveError> {
        let mut taken = 0;
        loop {
            if !self.wants_input(conn) {
                if self.conns.get(&conn).is_some_and(|c| c.broken) {
                    return Err(ReceiveError::Broken);
                }
                return Ok(taken);
            }
            let Some(c) = self.conns.get_mut(&conn) else {
                return Ok(taken);
            };
            // Fast path: a whole message at the start of the new bytes is
            // handled in place, without copying it through `inbuf`.
            if c.inbuf.is_empty() {
                match wire::parse(&bytes[taken..]) {
                    Parse::Bad(reason) => return Err(self.violation(conn, reason)),
                    Parse::Message { header, total } => {
                        let payload = &bytes[taken + HEADER_LEN..taken + total];
                        taken += total;
                        self.handle(conn, header, payload);
                        continue;
                    }
                    Parse::NeedMore(_) => {}
                }
            }
            let need = match wire::parse(&c.inbuf) {
                Parse::NeedMore(n) => n,
                Parse::Bad(reason) => return Err(self.violation(conn, reason)),
                Parse::Message { header, total } => {
                    let mut msg = core::mem::take(&mut c.inbuf);
                    self.handle(conn, header, &msg[HEADER_LEN..total]);
                    // Give the buffer back (keeps its capacity).
                    if let Some(c) = self.conns.get_mut(&conn) {
                        if !c.broken && c.inbuf.is_empty() {
                            msg.clear();
                            c.inbuf = msg;
                        }
                    }
                    continue;
                }
            };
            let rest = &bytes[taken..];
            if rest.is_empty() {
                return Ok(taken);
            }
            let n = need.min(rest.len());
            c.inbuf.extend_from_slice(&rest[..n]);
            taken += n;
        }
    }

    fn violation(&mut self, conn: ConnId, reason: BadReason) -> ReceiveError {
        let domid = self.conns.get(&conn).map_or(0, |c| c.domid);
        self.watches.retain(|w| w.conn != conn);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.broken = true;
            c.txns.clear();
            c.watches = 0;
            c.inbuf = Vec::new();
        }
        self.effects.push(Effect::ProtocolError { conn, domid });
        ReceiveError::Bad(reason)
    }

    /// Handle one whole request from `conn` (a parsed header and its
    /// payload of `header.len` bytes); the reply and any watch events are
    /// queued on the connections concerned.
    pub fn handle(&mut self, conn: ConnId, header: Header, payload: &[u8]) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if c.broken {
            return;
        }
        let domid = c.domid;
        let reply = self.dispatch(conn, &header, payload);
        if !self.caller_for(domid).privileged {
            self.review_memory(domid, reply.as_ref().err() == Some(&XsError::Enomem));
        }
        let msg = match reply {
            Ok(body) if body.len() <= wire::PAYLOAD_MAX => {
                wire::encode(header.ty, header.req_id, header.tx_id, &body)
            }
            Ok(_) => error_msg(&header, XsError::E2big),
            Err(e) => error_msg(&header, e),
        };
        if let Some(c) = self.conns.get_mut(&conn) {
            c.push_reply(msg);
            Self::mark_ready(&mut self.ready, conn, c);
        }
        if self.after_reply.is_empty() {
            return;
        }
        for (target, bytes) in core::mem::take(&mut self.after_reply) {
            let limit = self.event_limit(target);
            if let Some(c) = self.conns.get_mut(&target) {
                if c.push_event(bytes, limit) {
                    Self::mark_ready(&mut self.ready, target, c);
                }
            }
        }
    }

    /// Who `conn` is, for permission checks.
    pub(crate) fn caller(&self, conn: ConnId) -> Caller {
        let domid = self.conns.get(&conn).map_or(u16::MAX, |c| c.domid);
        self.caller_for(domid)
    }

    pub(crate) fn caller_for(&self, domid: u16) -> Caller {
        Caller {
            domid,
            target: self.targets.get(&domid).copied(),
            privileged: domid == 0 || self.config.xenstore_domid == Some(domid),
        }
    }

    pub(crate) fn quotas_for(&self, domid: u16) -> Quotas {
        self.settings
            .get(&domid)
            .map_or(self.config.quotas, |s| s.quotas)
    }

    /// Tree limits for `caller`: none when privileged.
    pub(crate) fn limits_for(&self, caller: &Caller) -> Option<Limits> {
        if caller.privileged {
            return None;
        }
        let q = self.quotas_for(caller.domid);
        Some(Limits {
            nodes: q.nodes,
            node_size: q.node_size,
            perms: q.permissions,
        })
    }

    /// Bytes `domid` makes the engine hold as accounted: the nodes it
    /// owns, its connections' open transactions and queued output.
    pub fn bytes_used(&self, domid: u16) -> usize {
        self.store.bytes_of(domid)
            + self
                .conns
                .values()
                .filter(|c| c.domid == domid)
                .map(Conn::held_bytes)
                .sum::<usize>()
    }

    /// [`Engine::bytes_used`] recomputed from every node, transaction and
    /// queued message (a full scan, for tests: the two must be equal).
    pub fn audit_bytes(&self, domid: u16) -> usize {
        self.store.recount_bytes(domid)
            + self
                .conns
                .values()
                .filter(|c| c.domid == domid)
                .map(Conn::recount_bytes)
                .sum::<usize>()
    }

    /// Bytes all unprivileged domains together make the engine hold.
    pub fn bytes_used_unprivileged(&self) -> usize {
        let unprivileged = |d: u16| !self.caller_for(d).privileged;
        self.store
            .charged()
            .filter(|(d, _)| unprivileged(*d))
            .map(|(_, b)| b)
            .sum::<usize>()
            + self
                .conns
                .values()
                .filter(|c| unprivileged(c.domid))
                .map(Conn::held_bytes)
                .sum::<usize>()
    }

    /// What an unprivileged `domid` may still be charged in one request:
    /// C refuses once usage would reach the hard limit (`>=`), so the
    /// budget stops one byte short of it (and of the global cap).
    pub(crate) fn byte_budget(&self, domid: u16) -> Option<usize> {
        if self.caller_for(domid).privileged {
            return None;
        }
        let hard = self.quotas_for(domid).memory as usize;
        let global = self.config.memory_global;
        if hard == 0 && global == 0 {
            return None;
        }
        let mut budget = usize::MAX;
        if hard != 0 {
            budget = hard.saturating_sub(self.bytes_used(domid) + 1);
        }
        if global != 0 {
            budget = budget.min(global.saturating_sub(self.bytes_used_unprivileged() + 1));
        }
        Some(budget)
    }

    /// After a request of unprivileged `domid`: report crossing its soft
    /// limit once, and a refusal at the hard limit or global cap once
    /// (C's `domain_chk_quota`, without its rate limit: no clock here).
    fn review_memory(&mut self, domid: u16, refused: bool) {
        let q = self.quotas_for(domid);
        let used = self.bytes_used(domid);
        let total = self.bytes_used_unprivileged();
        let global = self.config.memory_global;
        let mut notes: Vec<Notice> = Vec::new();
        let r = self.reported.entry(domid).or_default();
        if refused {
            // Whichever limit left less room refused it.
            let hard_room = (q.memory as usize).saturating_sub(used);
            let global_room = global.saturating_sub(total);
            if q.memory != 0 && (global == 0 || hard_room <= global_room) {
                if !r.hard {
                    r.hard = true;
                    notes.push(Notice::HardRefused { domid });
                }
            } else if !self.global_reported {
                self.global_reported = true;
                notes.push(Notice::GlobalRefused { domid });
            }
        }
        let soft = q.memory_soft as usize;
        if soft != 0 && used >= soft && !r.soft {
            r.soft = true;
            notes.push(Notice::SoftExceeded { domid });
        } else if (soft == 0 || used < soft) && r.soft {
            r.soft = false;
            r.hard = false;
            notes.push(Notice::BelowSoft { domid });
        }
        if !r.soft && !r.hard {
            self.reported.remove(&domid);
        }
        if global != 0 && total * 10 < global * 9 {
            // Re-arm the global report once usage is well below the cap.
            self.global_reported = false;
        }
        for n in notes {
            if self.notices.len() < NOTICES_MAX {
                self.notices.push(n);
            }
        }
    }

    /// Take the memory-limit reports recorded so far (the board logs them:
    /// C xenstored's "Domain %u exceeds soft memory quota" and friends).
    pub fn take_notices(&mut self) -> Vec<Notice> {
        core::mem::take(&mut self.notices)
    }

    fn event_limit(&self, conn: ConnId) -> u32 {
        self.conns
            .get(&conn)
            .map_or(0, |c| self.quotas_for(c.domid).queued_events)
    }

    /// Fire `events` at every matching watch whose owner may see them.
    pub(crate) fn fire(&mut self, events: &[Event]) {
        let mut queued: Vec<(ConnId, Vec<u8>)> = Vec::new();
        for event in events {
            for w in &self.watches {
                let Some((epath, perms)) = w.matches(event) else {
                    continue;
                };
                let Some(c) = self.conns.get(&w.conn) else {
                    continue;
                };
                if !may_see(&self.caller_for(c.domid), perms) {
                    continue;
                }
                if let Some(payload) = w.event_payload(epath) {
                    queued.push((w.conn, wire::encode(MsgType::WatchEvent, 0, 0, &payload)));
                }
            }
        }
        for (conn, bytes) in queued {
            let limit = self.event_limit(conn);
            if let Some(c) = self.conns.get_mut(&conn) {
                if c.push_event(bytes, limit) {
                    Self::mark_ready(&mut self.ready, conn, c);
                }
            }
        }
    }

    /// Fire a special `@introduceDomain` / `@releaseDomain` event.
    pub(crate) fn fire_special(&mut self, name: &str) {
        let perms = self.special_perms(name).clone();
        self.fire(&[Event::changed(name, perms)]);
    }

    pub(crate) fn special_perms(&self, name: &str) -> &Perms {
        if name == INTRODUCE_DOMAIN {
            &self.special_perms[0]
        } else {
            debug_assert_eq!(name, RELEASE_DOMAIN);
            &self.special_perms[1]
        }
    }

    pub(crate) fn special_perms_mut(&mut self, name: &str) -> &mut Perms {
        if name == INTRODUCE_DOMAIN {
            &mut self.special_perms[0]
        } else {
            &mut self.special_perms[1]
        }
    }

    /// Read a node's value directly (for boards and tests; no permission
    /// check, no transaction).
    pub fn peek(&self, path: &str) -> Option<&[u8]> {
        self.store.node(path).map(|n| n.value.as_slice())
    }

    /// Nodes owned by `domid` in the live tree.
    pub fn owned_by(&self, domid: u16) -> u32 {
        self.store.owned_by(domid)
    }

    /// Open transactions on `conn`.
    pub fn transactions(&self, conn: ConnId) -> usize {
        self.conns.get(&conn).map_or(0, |c| c.txns.len())
    }

    /// The connection of an introduced domain.
    pub fn domain_conn(&self, domid: u16) -> Option<ConnId> {
        self.domains.get(&domid).map(|d| d.conn)
    }

    /// Recorded ring frame and event channel of an introduced domain.
    pub fn domain_ring(&self, domid: u16) -> Option<(i64, u32)> {
        self.domains.get(&domid).map(|d| (d.mfn, d.evtchn))
    }
}

fn error_msg(header: &Header, e: XsError) -> Vec<u8> {
    let mut body = Vec::with_capacity(8);
    body.extend_from_slice(e.as_str().as_bytes());
    body.push(0);
    wire::encode(MsgType::Error, header.req_id, header.tx_id, &body)
}

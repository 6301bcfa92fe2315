//! The relay engine: client connections on one side, xcp-relay messages on
//! the other, every byte bounded.
//!
//! read first: `shared/relay/src/lib.rs` (the messages),
//! `toolstack-dom0/kernel/src/toolstack.rs` (how dom0 consumes them).
//!
//! Sans-IO: the TCP layer reports accepts, bytes and closes; the channel
//! side polls messages out and feeds messages in; time is passed in as
//! milliseconds from any fixed origin. The engine owns no socket and no
//! clock. Invariants (tested in `tests/engine.rs` and by proptests):
//!
//! - per connection, client bytes reach dom0 in order and unchanged, and
//!   dom0's bytes reach the client in order and unchanged;
//! - feeding dom0 is round-robin: one message of at most
//!   [`MAX_CHUNK`] bytes per connection per turn;
//! - every buffer is capped (per connection each way, and globally), the
//!   connection count is capped (overall and per source), and every
//!   connection has an idle deadline, while a request head is incomplete a
//!   head deadline, and while a body its head announced
//!   (`Content-Length`) is incomplete a body deadline that grows with the
//!   bytes received (a minimum rate, as Apache's `mod_reqtimeout`);
//! - at a connection cap, a new connection evicts the connection whose
//!   request has been incomplete (or idle between requests) the longest,
//!   if that is at least [`Config::evict_after_ms`]: slow clients cannot
//!   keep a fast one out, and a request dom0 is answering (or a parked
//!   `event.from`) is never evicted;
//! - `Closed` reaches dom0 exactly once per connection dom0 did not close
//!   itself, and a connection number is never reused while dom0 may still
//!   hold it.
//!
//! dom0 may turn a connection into a raw byte stream (`Stream`: a text
//! console attached with `CONNECT`): from then on its bytes are not HTTP,
//! so no head or body deadline applies and it is never evicted; its idle
//! deadline and every buffer cap still do.
//!
//! dom0 may ask for counters (`StatsRequest`): the engine surfaces the
//! request to the board once ([`Relay::take_stats_request`]), whatever
//! number came, and sends the board's answer ([`Relay::send_stats`]) ahead
//! of any data. A flag and one pending answer: all dom0 can make it hold.
//!
//! The board says when the listener is open ([`Relay::announce_ready`]):
//! the engine sends [`ToToolstack::Ready`] before anything else, so dom0
//! learns that netdom serves by protocol, never from its console. One
//! pending announcement, replaced by a newer one. With it the board
//! describes its management interface ([`Relay::send_link`]:
//! [`ToToolstack::Link`], for the management PIF), also one pending.
//!
//! The board reports its guest VIFs' counters ([`Relay::send_vif_stats`]):
//! one pending batch, replaced by a newer one, sent ahead of any data in
//! messages of at most [`MAX_VIF_STATS`] entries.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use core::ops::Bound;

use xcp_relay::{
    FromToolstack, MemoryFigures, RelayStats, ToToolstack, VifCounters, MAX_CHUNK, MAX_CONNECTIONS,
    MAX_VIF_STATS,
};

use crate::chunks::{Chunks, CHUNK_OVERHEAD};
use crate::head::Head;

/// A client connection: also its number on the wire to dom0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u32);

/// Where a connection comes from (for the per-source limit): an address
/// in 16 bytes (IPv4 mapped into IPv6, `::ffff:a.b.c.d`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Source(pub [u8; 16]);

impl Source {
    /// An IPv4 source.
    pub fn ipv4(octets: [u8; 4]) -> Source {
        let mut b = [0u8; 16];
        b[10] = 0xff;
        b[11] = 0xff;
        b[12..].copy_from_slice(&octets);
        Source(b)
    }
}

/// Limits and timeouts. Times are in milliseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Most live connections, including those whose `Closed` is not yet
    /// sent (dom0 still holds them). At most [`MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// Most live connections from one [`Source`].
    pub max_per_source: usize,
    /// Most client bytes buffered for one connection before dom0 takes
    /// them (beyond it `on_client_bytes` takes nothing: TCP backpressure).
    pub max_in_per_conn: usize,
    /// Most dom0 bytes buffered for one connection before its client reads
    /// them (beyond it the connection is aborted).
    pub max_out_per_conn: usize,
    /// Most bytes of memory the buffers of all connections hold, both ways
    /// (counted as [`Chunks::held`]: the data and 48 bytes per chunk).
    pub max_total: usize,
    /// A connection with no traffic either way for this long is aborted.
    pub idle_timeout_ms: u64,
    /// A request head (first byte, or accept, to the blank line) must
    /// complete within this long, or the connection is aborted.
    pub head_timeout_ms: u64,
    /// After the client half-closes (FIN), the connection is closed once
    /// nothing is pending and no reply is awaited, or after this long.
    pub eof_linger_ms: u64,
    /// Client bytes are held back from dom0 while more than this many
    /// reply bytes wait for the client (a pipelining client that does not
    /// read cannot make dom0 produce more).
    pub gate_out_bytes: usize,
    /// A body announced by `Content-Length` must arrive within this long
    /// after its head ends, plus [`Self::body_ms_per_kib`] per KiB received.
    pub body_timeout_ms: u64,
    /// How much each KiB of body received extends its deadline, ms (1,000
    /// ms per KiB: a minimum rate of 1 KiB/s).
    pub body_ms_per_kib: u64,
    /// At a connection cap, a connection whose request has been incomplete
    /// (or that has been idle between requests) this long may be evicted
    /// for a new one.
    pub evict_after_ms: u64,
}

impl Default for Config {
    /// netdom's budget (`budget.rs`).
    fn default() -> Self {
        Config {
            max_connections: crate::budget::MAX_CONNECTIONS,
            max_per_source: crate::budget::MAX_PER_SOURCE,
            max_in_per_conn: crate::budget::MAX_IN_PER_CONN,
            max_out_per_conn: crate::budget::MAX_OUT_PER_CONN,
            max_total: crate::budget::MAX_TOTAL,
            idle_timeout_ms: 300_000,
            head_timeout_ms: 10_000,
            eof_linger_ms: 30_000,
            gate_out_bytes: MAX_CHUNK,
            body_timeout_ms: 20_000,
            body_ms_per_kib: 1_000,
            evict_after_ms: 1_000,
        }
    }
}

/// Why `on_accept` refused a connection (the TCP layer should abort it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// [`Config::max_connections`] reached.
    TooManyConnections,
    /// [`Config::max_per_source`] reached for this source.
    TooManyFromSource,
    /// [`Config::max_total`] bytes are already buffered.
    OutOfMemory,
}

/// How the TCP layer should end a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseKind {
    /// Send what was written, then FIN (dom0 closed the connection).
    Graceful,
    /// Reset now (a limit or timeout hit, or dom0 misbehaved).
    Abort,
}

/// Counters for the console and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections refused at accept.
    pub refused: u64,
    /// Connections aborted for idling.
    pub idle_timeouts: u64,
    /// Connections aborted for a slow request head.
    pub head_timeouts: u64,
    /// Connections aborted for a slow request body.
    pub body_timeouts: u64,
    /// Connections evicted at a connection cap for a new one.
    pub evicted: u64,
    /// Connections aborted because dom0's replies overflowed a cap.
    pub out_overflows: u64,
    /// Messages from dom0 for a connection that is not live (dropped).
    pub stale_messages: u64,
    /// Messages from dom0 breaking the protocol (oversized data).
    pub bad_messages: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Relaying both ways.
    Open,
    /// dom0 sent `Close`: drain the replies, then close gracefully.
    Draining,
}

#[derive(Debug)]
struct Conn {
    source: Source,
    state: State,
    to_dom0: Chunks,
    to_client: Chunks,
    last_activity: u64,
    head: Head,
    /// When its last exchange ended (a reply was sent in full), or it was
    /// accepted: how long it has been idle between requests.
    idle_since: u64,
    /// When the client half-closed.
    eof_since: Option<u64>,
    /// dom0 made it a raw byte stream (`FromToolstack::Stream`).
    stream: bool,
}

impl Conn {
    /// A half-closed client is done: nothing to relay either way and no
    /// reply awaited, or the linger ran out.
    fn eof_done(&self, now: u64, linger: u64) -> bool {
        self.eof_since.is_some_and(|since| {
            (self.to_dom0.is_empty() && self.to_client.is_empty() && !self.head.awaiting_reply)
                || now.saturating_sub(since) >= linger
        })
    }
}

/// The relay engine. See the module docs for its contract.
#[derive(Debug)]
pub struct Relay {
    config: Config,
    conns: BTreeMap<ConnId, Conn>,
    /// `Closed` messages owed to dom0, sent before any data.
    closed_out: VecDeque<ConnId>,
    /// Connections the TCP layer must end.
    close_out: VecDeque<(ConnId, CloseKind)>,
    /// The connection fed last (round-robin cursor).
    cursor: ConnId,
    next_id: u32,
    /// Memory all `to_dom0` and `to_client` buffers hold ([`Chunks::held`]).
    buffered: usize,
    stats: Stats,
    /// dom0 asked for counters and the board has not taken the request.
    stats_requested: bool,
    /// The counters for dom0, sent before any other message.
    stats_out: Option<RelayStats>,
    /// The listener's address and port for dom0, sent first of all.
    ready_out: Option<([u8; 4], u16)>,
    /// The management interface for dom0 (a [`ToToolstack::Link`]), sent
    /// right after the announcement.
    link_out: Option<ToToolstack>,
    /// What is left to send of the VIF counters' batch, sent after the
    /// relay's counters.
    vif_stats_out: VecDeque<VifCounters>,
}

impl Relay {
    /// An engine with `config` (`max_connections` is clamped to
    /// [`MAX_CONNECTIONS`], dom0's limit).
    pub fn new(mut config: Config) -> Relay {
        config.max_connections = config.max_connections.min(MAX_CONNECTIONS);
        Relay {
            config,
            conns: BTreeMap::new(),
            closed_out: VecDeque::new(),
            close_out: VecDeque::new(),
            cursor: ConnId(0),
            next_id: 1,
            buffered: 0,
            stats: Stats::default(),
            stats_requested: false,
            stats_out: None,
            ready_out: None,
            link_out: None,
            vif_stats_out: VecDeque::new(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Live connections.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// True if `conn` is live (accepted, not yet closed).
    pub fn is_live(&self, conn: ConnId) -> bool {
        self.conns.contains_key(&conn)
    }

    /// Bytes buffered in both directions over all connections.
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// A new client connection from `source`. On `Err` the TCP layer
    /// aborts it; nothing is held.
    pub fn on_accept(&mut self, now: u64, source: Source) -> Result<ConnId, Refused> {
        // At a cap, the stalest stalled connection (of this source, at the
        // per-source cap) makes room.
        if self.conns.len() >= self.config.max_connections {
            self.evict(now, None);
        }
        if self.conns.values().filter(|c| c.source == source).count() >= self.config.max_per_source
        {
            self.evict(now, Some(source));
        }
        // dom0 holds a connection until it is told `Closed`: at most
        // MAX_CONNECTIONS of them, dom0's limit.
        let refused = if self.conns.len() >= self.config.max_connections
            || self.conns.len() + self.closed_out.len() >= MAX_CONNECTIONS
        {
            Some(Refused::TooManyConnections)
        } else if self.conns.values().filter(|c| c.source == source).count()
            >= self.config.max_per_source
        {
            Some(Refused::TooManyFromSource)
        } else if self.buffered >= self.config.max_total {
            Some(Refused::OutOfMemory)
        } else {
            None
        };
        if let Some(r) = refused {
            self.stats.refused += 1;
            return Err(r);
        }
        // Numbers grow (wrapping, skipping 0 and any still in use or owed a
        // `Closed`), so a late message for an old connection never lands on
        // a new one. At most MAX_CONNECTIONS numbers are busy: this ends.
        let id = loop {
            let id = ConnId(self.next_id);
            self.next_id = self.next_id.wrapping_add(1);
            if id.0 != 0 && !self.conns.contains_key(&id) && !self.closed_out.contains(&id) {
                break id;
            }
        };
        self.conns.insert(
            id,
            Conn {
                source,
                state: State::Open,
                to_dom0: Chunks::default(),
                to_client: Chunks::default(),
                last_activity: now,
                head: Head::starting(now),
                idle_since: now,
                eof_since: None,
                stream: false,
            },
        );
        self.stats.accepted += 1;
        Ok(id)
    }

    /// How many more client bytes `conn` may buffer now (0 for a
    /// connection that is not live).
    pub fn client_window(&self, conn: ConnId) -> usize {
        let Some(c) = self.conns.get(&conn) else {
            return 0;
        };
        let room = self.config.max_in_per_conn.saturating_sub(c.to_dom0.len());
        let global = self.config.max_total.saturating_sub(self.buffered);
        room.min(global.saturating_sub(CHUNK_OVERHEAD))
    }

    /// Bytes the client of `conn` sent; returns how many were taken (the
    /// rest must stay in the TCP receive buffer: backpressure). Bytes after
    /// dom0 closed the connection are taken and discarded.
    pub fn on_client_bytes(&mut self, now: u64, conn: ConnId, bytes: &[u8]) -> usize {
        let take = bytes.len().min(self.client_window(conn));
        let Some(c) = self.conns.get_mut(&conn) else {
            return 0;
        };
        if c.state == State::Draining {
            // dom0 forgot this number: forwarding would open a new one.
            return bytes.len();
        }
        if take == 0 {
            return 0;
        }
        let taken = &bytes[..take];
        let held = c.to_dom0.held();
        c.to_dom0.extend_from_slice(taken);
        if !c.stream {
            c.head.scan(now, taken);
        }
        c.last_activity = now;
        self.buffered = self.buffered - held + c.to_dom0.held();
        take
    }

    /// The client of `conn` is gone (reset, or it can no longer receive):
    /// forget it and tell dom0 once.
    pub fn on_client_closed(&mut self, conn: ConnId) {
        if let Some(c) = self.remove(conn) {
            if c.state == State::Open {
                self.closed_out.push_back(conn);
            }
        }
    }

    /// The client of `conn` half-closed (sent FIN) and every byte it sent
    /// was taken: close once the pending request is answered (see
    /// [`Config::eof_linger_ms`]).
    pub fn on_client_eof(&mut self, now: u64, conn: ConnId) {
        let linger = self.config.eof_linger_ms;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.eof_since.get_or_insert(now);
        if c.state == State::Open && c.eof_done(now, linger) {
            self.finish(conn);
        }
    }

    /// Whether dom0 asked for counters since the last call (any number of
    /// `StatsRequest`s count once). On true the board answers with
    /// [`Self::send_stats`].
    pub fn take_stats_request(&mut self) -> bool {
        core::mem::take(&mut self.stats_requested)
    }

    /// Queues the counters for dom0: the board's wake-up counts and
    /// memory figures with the engine's connection counts. An answer not
    /// yet sent is replaced, so at most one waits.
    pub fn send_stats(&mut self, nic_interrupts: u64, timer_wakeups: u64, memory: MemoryFigures) {
        self.stats_out = Some(RelayStats {
            nic_interrupts,
            timer_wakeups,
            connections: u32::try_from(self.conns.len()).unwrap_or(u32::MAX),
            accepted: self.stats.accepted,
            refused: self.stats.refused,
            memory,
        });
    }

    /// Queues [`ToToolstack::Ready`]: the board's listener accepts XenAPI
    /// clients at `address:port` (call when it opens, and again when the
    /// address changes). An announcement not yet sent is replaced.
    pub fn announce_ready(&mut self, address: [u8; 4], port: u16) {
        self.ready_out = Some((address, port));
    }

    /// Queues [`ToToolstack::Link`]: the board's management interface
    /// (call with [`Self::announce_ready`]). One not yet sent is replaced.
    pub fn send_link(
        &mut self,
        mac: [u8; 6],
        address: [u8; 4],
        prefix: u8,
        gateway: Option<[u8; 4]>,
        dhcp: bool,
    ) {
        self.link_out = Some(ToToolstack::Link {
            mac,
            address,
            prefix,
            gateway,
            dhcp,
        });
    }

    /// Queues the guest VIFs' counters for dom0, sent as
    /// [`ToToolstack::VifStats`] messages of at most [`MAX_VIF_STATS`]
    /// entries. What is left of an older batch is replaced: at most one
    /// batch waits.
    pub fn send_vif_stats(&mut self, batch: Vec<VifCounters>) {
        self.vif_stats_out = batch.into();
    }

    /// True if a batch of VIF counters (or part of one) waits for dom0.
    pub fn vif_stats_pending(&self) -> bool {
        !self.vif_stats_out.is_empty()
    }

    /// The next message for dom0: the readiness announcement and the
    /// management interface, the counters if the board answered, the VIF
    /// counters, then `Closed` messages, then, round-robin over
    /// connections, at most one [`MAX_CHUNK`] of data from the next
    /// connection with data after the one fed last.
    pub fn poll_channel_out(&mut self) -> Option<ToToolstack> {
        if let Some((address, port)) = self.ready_out.take() {
            return Some(ToToolstack::Ready { address, port });
        }
        if let Some(link) = self.link_out.take() {
            return Some(link);
        }
        if let Some(stats) = self.stats_out.take() {
            return Some(ToToolstack::Stats(stats));
        }
        if !self.vif_stats_out.is_empty() {
            let n = self.vif_stats_out.len().min(MAX_VIF_STATS);
            return Some(ToToolstack::VifStats(
                self.vif_stats_out.drain(..n).collect(),
            ));
        }
        if let Some(conn) = self.closed_out.pop_front() {
            return Some(ToToolstack::Closed { conn: conn.0 });
        }
        let gate = self.config.gate_out_bytes;
        let ready =
            |c: &Conn| c.state == State::Open && !c.to_dom0.is_empty() && c.to_client.len() <= gate;
        let after = (Bound::Excluded(self.cursor), Bound::Unbounded);
        let id = self
            .conns
            .range(after)
            .chain(self.conns.range(..=self.cursor))
            .find(|(_, c)| ready(c))
            .map(|(&id, _)| id)?;
        let c = self.conns.get_mut(&id).expect("found just above");
        let held = c.to_dom0.held();
        let bytes = c.to_dom0.take(MAX_CHUNK);
        self.buffered = self.buffered - held + c.to_dom0.held();
        self.cursor = id;
        Some(ToToolstack::Data { conn: id.0, bytes })
    }

    /// A message from dom0. Nothing dom0 sends can make this panic: data
    /// for a connection that is not live is dropped, oversized data or
    /// data overflowing a cap aborts that connection.
    pub fn on_toolstack(&mut self, now: u64, msg: FromToolstack) {
        match msg {
            FromToolstack::Data { conn, bytes } => {
                let id = ConnId(conn);
                let Some(c) = self.conns.get(&id) else {
                    self.stats.stale_messages += 1;
                    return;
                };
                if c.state == State::Draining {
                    // Data after `Close` breaks "close after the data sent
                    // before this message".
                    self.stats.bad_messages += 1;
                    return;
                }
                if bytes.len() > MAX_CHUNK {
                    self.stats.bad_messages += 1;
                    self.abort(id);
                    return;
                }
                if c.to_client.len() + bytes.len() > self.config.max_out_per_conn
                    || self.buffered + Chunks::cost_of(&bytes) > self.config.max_total
                {
                    self.stats.out_overflows += 1;
                    self.abort(id);
                    return;
                }
                let c = self.conns.get_mut(&id).expect("checked above");
                if !c.stream {
                    c.head.on_reply(&bytes);
                }
                // Kept as it came: no copy, exactly what it holds.
                let held = c.to_client.held();
                c.to_client.push(bytes);
                self.buffered = self.buffered - held + c.to_client.held();
                c.last_activity = now;
            }
            FromToolstack::Close { conn } => {
                let id = ConnId(conn);
                let Some(c) = self.conns.get_mut(&id) else {
                    self.stats.stale_messages += 1;
                    return;
                };
                if c.state == State::Draining {
                    self.stats.stale_messages += 1;
                    return;
                }
                c.state = State::Draining;
                let dropped = c.to_dom0.held();
                c.to_dom0.clear();
                let empty = c.to_client.is_empty();
                self.buffered -= dropped;
                if empty {
                    self.remove(id);
                    self.close_out.push_back((id, CloseKind::Graceful));
                }
            }
            FromToolstack::StatsRequest => self.stats_requested = true,
            FromToolstack::Stream { conn } => {
                let Some(c) = self.conns.get_mut(&ConnId(conn)) else {
                    self.stats.stale_messages += 1;
                    return;
                };
                if c.state == State::Draining {
                    self.stats.stale_messages += 1;
                    return;
                }
                c.stream = true;
                // No request is in progress on a stream: no head or body
                // deadline.
                c.head = Head::default();
                c.last_activity = now;
            }
        }
    }

    /// Bytes to write to the client of `conn` (a contiguous part of what is
    /// buffered); `None` when nothing waits. Report what was written with
    /// [`Self::consume`].
    pub fn poll_client_out(&self, conn: ConnId) -> Option<&[u8]> {
        let c = self.conns.get(&conn)?;
        let front = c.to_client.front();
        (!front.is_empty()).then_some(front)
    }

    /// The TCP layer took `n` bytes of what [`Self::poll_client_out`]
    /// returned (clamped to what is buffered).
    pub fn consume(&mut self, now: u64, conn: ConnId, n: usize) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let n = n.min(c.to_client.len());
        let held = c.to_client.held();
        c.to_client.consume(n);
        self.buffered = self.buffered - held + c.to_client.held();
        if n > 0 {
            c.last_activity = now;
            if c.to_client.is_empty() {
                c.idle_since = now;
            }
        }
        let linger = self.config.eof_linger_ms;
        if c.state == State::Draining && c.to_client.is_empty() {
            self.remove(conn);
            self.close_out.push_back((conn, CloseKind::Graceful));
        } else if c.state == State::Open && c.eof_done(now, linger) {
            self.finish(conn);
        }
    }

    /// The next connection the TCP layer must end (it is already forgotten
    /// here, and dom0 told if needed).
    pub fn poll_close(&mut self) -> Option<(ConnId, CloseKind)> {
        self.close_out.pop_front()
    }

    /// Applies deadlines at `now`: idle connections and slow request heads
    /// are aborted.
    pub fn on_tick(&mut self, now: u64) {
        let idle = self.config.idle_timeout_ms;
        let head = self.config.head_timeout_ms;
        let linger = self.config.eof_linger_ms;
        let mut done: Vec<ConnId> = Vec::new();
        let mut expired: Vec<(ConnId, bool)> = Vec::new();
        let mut slow_bodies: Vec<ConnId> = Vec::new();
        for (&id, c) in &self.conns {
            if c.state == State::Open && c.eof_done(now, linger) {
                done.push(id);
            } else if now.saturating_sub(c.last_activity) >= idle {
                expired.push((id, false));
            } else if c
                .head
                .since
                .is_some_and(|since| now.saturating_sub(since) >= head)
            {
                expired.push((id, true));
            } else if c
                .head
                .body_deadline(&self.config)
                .is_some_and(|deadline| now >= deadline)
            {
                slow_bodies.push(id);
            }
        }
        for id in slow_bodies {
            self.stats.body_timeouts += 1;
            self.abort(id);
        }
        for id in done {
            self.finish(id);
        }
        for (id, slow_head) in expired {
            if slow_head {
                self.stats.head_timeouts += 1;
            } else {
                self.stats.idle_timeouts += 1;
            }
            self.abort(id);
        }
    }

    /// The earliest deadline (for the board's timer), if any connection
    /// is live.
    pub fn next_deadline(&self) -> Option<u64> {
        let idle = self.config.idle_timeout_ms;
        let head = self.config.head_timeout_ms;
        self.conns
            .values()
            .map(|c| {
                let mut d = c.last_activity.saturating_add(idle);
                if let Some(s) = c.head.since {
                    d = d.min(s.saturating_add(head));
                }
                if let Some(b) = c.head.body_deadline(&self.config) {
                    d = d.min(b);
                }
                if let Some(s) = c.eof_since {
                    d = d.min(s.saturating_add(self.config.eof_linger_ms));
                }
                d
            })
            .min()
    }

    /// True if some message waits for dom0.
    pub fn has_channel_out(&self) -> bool {
        let gate = self.config.gate_out_bytes;
        self.ready_out.is_some()
            || self.link_out.is_some()
            || self.stats_out.is_some()
            || !self.vif_stats_out.is_empty()
            || !self.closed_out.is_empty()
            || self.conns.values().any(|c| {
                c.state == State::Open && !c.to_dom0.is_empty() && c.to_client.len() <= gate
            })
    }

    /// Ends a half-closed `conn` whose exchange is over: FIN, and dom0 is
    /// told once.
    fn finish(&mut self, conn: ConnId) {
        if let Some(c) = self.remove(conn) {
            if c.state == State::Open {
                self.closed_out.push_back(conn);
            }
            self.close_out.push_back((conn, CloseKind::Graceful));
        }
    }

    /// Ends `conn` now: the TCP layer resets it, dom0 is told once.
    fn abort(&mut self, conn: ConnId) {
        if let Some(c) = self.remove(conn) {
            if c.state == State::Open {
                self.closed_out.push_back(conn);
            }
            self.close_out.push_back((conn, CloseKind::Abort));
        }
    }

    /// Aborts the connection (of `source`, if given) that has stalled the
    /// longest, for a new one: its request incomplete, or idle between
    /// requests, for at least `evict_after_ms`. A request dom0 is
    /// answering, and replies still going out, are never cut.
    fn evict(&mut self, now: u64, source: Option<Source>) {
        let min_age = self.config.evict_after_ms;
        let victim = self
            .conns
            .iter()
            .filter(|(_, c)| c.state == State::Open && source.is_none_or(|s| c.source == s))
            .filter(|(_, c)| c.to_client.is_empty() && !c.stream)
            .filter_map(|(&id, c)| {
                let stalled = match c.head.incomplete_since() {
                    Some(since) => since,
                    // Complete and unanswered: dom0 has it (maybe parked).
                    None if c.head.awaiting_reply => return None,
                    None => c.idle_since,
                };
                (now.saturating_sub(stalled) >= min_age).then_some((stalled, id))
            })
            .min()
            .map(|(_, id)| id);
        if let Some(id) = victim {
            self.stats.evicted += 1;
            self.abort(id);
        }
    }

    /// Forgets `conn`, giving back its buffered bytes.
    fn remove(&mut self, conn: ConnId) -> Option<Conn> {
        let c = self.conns.remove(&conn)?;
        self.buffered -= c.to_dom0.held() + c.to_client.held();
        Some(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_maps_ipv4() {
        let s = Source::ipv4([10, 0, 2, 15]);
        assert_eq!(&s.0[10..], &[0xff, 0xff, 10, 0, 2, 15]);
    }
}

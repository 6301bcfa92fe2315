//! Client byte streams that a relay domain (netdom) forwards as `xcp-relay`
//! messages, served by the engine: the sans-IO half of dom0's relay
//! boards. Each relay link is named by a number the board picks (dom0
//! uses its port of that relay's channel); connections are keyed by (link,
//! the relay's connection number), so a new link's numbers never meet an
//! old one's. Replies go out as `FromToolstack` messages of at most
//! `MAX_CHUNK` bytes, for the board to put on that link's channel: the
//! engine writes a reply in such chunks ([`crate::body`]) and they are
//! moved into the messages, not copied.
//!
//! What a relay can make us hold: at most `MAX_CONNECTIONS` connections per
//! link, each buffering at most [`MAX_BUFFER`] bytes (one whole request),
//! and all of them together at most [`MAX_TOTAL`] bytes (dom0's budget,
//! `budget.rs`). A connection past its own bound is closed; one whose bytes
//! would take all past [`MAX_TOTAL`], or whose buffer cannot grow (out of
//! memory), is answered `503 Service Unavailable` and closed. Its client
//! may retry; the others keep their bytes.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use xcp_relay::{FromToolstack, ToToolstack, MAX_CHUNK, MAX_CONNECTIONS};

use crate::body::Response;
use crate::engine::{Engine, Handled};
use crate::hypervisor::Hypervisor;
use crate::rng::Entropy;
use crate::value::Instant;
use crate::wal::Storage;

/// Most bytes buffered for one connection (a whole request at most).
pub const MAX_BUFFER: usize = crate::http::MAX_HEAD + crate::http::MAX_BODY + 4096;
/// Most bytes buffered for all connections of all links together.
pub const MAX_TOTAL: usize = crate::budget::RELAYED_BYTES;

const _: () = assert!(MAX_BUFFER <= MAX_TOTAL, "one whole request must fit");

/// The reply to a connection refused for want of memory.
fn unavailable() -> Vec<u8> {
    crate::http::response(
        503,
        "text/plain",
        b"dom0 is holding too many request bytes; retry\n",
        false,
    )
}

#[derive(Default)]
struct Conn {
    buf: Vec<u8>,
    parked_since: Option<Instant>,
    continued: bool,
}

/// A relayed connection: (link, the relay's connection number).
type ConnKey = (u32, u32);

/// The connections relayed to the engine.
#[derive(Default)]
pub struct Relayed {
    conns: BTreeMap<ConnKey, Conn>,
    /// Bytes all connections' buffers hold (their capacity).
    buffered: usize,
    /// Connections refused with 503 for want of memory.
    refused: u64,
}

impl Relayed {
    /// No connections yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Connections held, on every link.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Bytes the buffers of all connections hold, counted by capacity (at
    /// most [`MAX_TOTAL`]).
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// Connections answered 503 and closed because dom0 could not hold
    /// their bytes.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// True when no connection is held.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Connections with a parked call (`event.from` waiting for changes).
    pub fn has_parked(&self) -> bool {
        self.conns.values().any(|c| c.parked_since.is_some())
    }

    /// Takes one message from relay `link`; queues what to send back on
    /// that link in `out`.
    pub fn on_message<H: Hypervisor, S: Storage, E: Entropy>(
        &mut self,
        engine: &mut Engine<H, S, E>,
        now: Instant,
        link: u32,
        msg: ToToolstack,
        out: &mut VecDeque<FromToolstack>,
    ) {
        match msg {
            ToToolstack::Data { conn, bytes } => {
                let key = (link, conn);
                if !self.conns.contains_key(&key) && self.link_conns(link) >= MAX_CONNECTIONS {
                    out.push_back(FromToolstack::Close { conn });
                    return;
                }
                let c = self.conns.entry(key).or_default();
                if c.buf.len() + bytes.len() > MAX_BUFFER {
                    self.remove(key);
                    out.push_back(FromToolstack::Close { conn });
                    return;
                }
                // What the buffer holds is its capacity: count that.
                let held = c.buf.capacity();
                let grown = c.buf.try_reserve(bytes.len()).is_ok();
                let growth = c.buf.capacity() - held;
                if !grown || self.buffered + growth > MAX_TOTAL {
                    self.buffered += growth;
                    self.refused += 1;
                    self.remove(key);
                    push_data(out, conn, &unavailable());
                    out.push_back(FromToolstack::Close { conn });
                    return;
                }
                c.buf.extend_from_slice(&bytes);
                self.buffered += growth;
                self.serve(engine, now, key, out);
                // A change may release parked calls of other connections
                // (those of other links when the board serves them next).
                self.tick(engine, now, link, out);
            }
            ToToolstack::Closed { conn } => {
                self.remove((link, conn));
            }
            // Counters and readiness are for dom0's board (the operator's
            // console, the "XenAPI ready" announcement): it takes them
            // before they reach the engine. Should one arrive here it holds
            // nothing and answers nothing.
            ToToolstack::Stats(_) | ToToolstack::Ready { .. } => {}
        }
    }

    /// Forgets `key`, giving back its bytes.
    fn remove(&mut self, key: ConnKey) {
        if let Some(c) = self.conns.remove(&key) {
            self.buffered -= c.buf.capacity();
        }
    }

    fn link_conns(&self, link: u32) -> usize {
        self.conns.range((link, 0)..=(link, u32::MAX)).count()
    }

    /// Forgets every connection of relay `link` (its relay domain died):
    /// their parked calls end with them. Returns how many there were.
    pub fn drop_link(&mut self, link: u32) -> usize {
        let before = self.conns.len();
        let mut freed = 0;
        self.conns.retain(|&(l, _), c| {
            if l == link {
                freed += c.buf.capacity();
            }
            l != link
        });
        self.buffered -= freed;
        before - self.conns.len()
    }

    /// Serves `link`'s parked connections again (after a change or a
    /// timeout).
    pub fn tick<H: Hypervisor, S: Storage, E: Entropy>(
        &mut self,
        engine: &mut Engine<H, S, E>,
        now: Instant,
        link: u32,
        out: &mut VecDeque<FromToolstack>,
    ) {
        let parked: Vec<ConnKey> = self
            .conns
            .range((link, 0)..=(link, u32::MAX))
            .filter(|(_, c)| c.parked_since.is_some())
            .map(|(&k, _)| k)
            .collect();
        for key in parked {
            self.serve(engine, now, key, out);
        }
    }

    /// Answers every whole request `key` has buffered, until one needs
    /// more bytes or parks.
    fn serve<H: Hypervisor, S: Storage, E: Entropy>(
        &mut self,
        engine: &mut Engine<H, S, E>,
        now: Instant,
        key: ConnKey,
        out: &mut VecDeque<FromToolstack>,
    ) {
        let conn = key.1;
        loop {
            let Some(c) = self.conns.get_mut(&key) else {
                return;
            };
            match engine.handle(now, c.parked_since, &c.buf) {
                Handled::NeedMore { send_continue } => {
                    if send_continue && !c.continued {
                        c.continued = true;
                        push_data(out, conn, crate::http::CONTINUE);
                    }
                    return;
                }
                Handled::Park { .. } => {
                    c.parked_since.get_or_insert(now);
                    return;
                }
                Handled::Reply {
                    consumed,
                    bytes,
                    close,
                } => {
                    c.buf.drain(..consumed.min(c.buf.len()));
                    // A drained buffer gives its memory back.
                    if c.buf.is_empty() {
                        self.buffered -= c.buf.capacity();
                        c.buf = Vec::new();
                    }
                    c.parked_since = None;
                    c.continued = false;
                    push_response(out, conn, bytes);
                    if engine.has_jobs() {
                        engine.run_jobs(now);
                    }
                    if close {
                        self.remove(key);
                        out.push_back(FromToolstack::Close { conn });
                        return;
                    }
                }
            }
        }
    }
}

/// Queues a response for `conn`: its chunks (at most `MAX_CHUNK` each)
/// become `Data` messages as they are, never copied again.
fn push_response(out: &mut VecDeque<FromToolstack>, conn: u32, response: Response) {
    for bytes in response.into_chunks() {
        if !bytes.is_empty() {
            out.push_back(FromToolstack::Data { conn, bytes });
        }
    }
}

/// Queues `bytes` for `conn` in chunks of at most `MAX_CHUNK`.
fn push_data(out: &mut VecDeque<FromToolstack>, conn: u32, bytes: &[u8]) {
    for chunk in bytes.chunks(MAX_CHUNK) {
        out.push_back(FromToolstack::Data {
            conn,
            bytes: chunk.to_vec(),
        });
    }
}

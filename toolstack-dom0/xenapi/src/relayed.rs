//! Client byte streams that a relay domain (netdom) forwards as `xcp-relay`
//! messages, served by the engine: the sans-IO half of dom0's relay
//! boards. Each relay link is named by a number the board picks (dom0
//! uses its port of that relay's channel); connections are keyed by (link,
//! the relay's connection number), so a new link's numbers never meet an
//! old one's. Replies go out as `FromToolstack` messages of at most
//! `MAX_CHUNK` bytes, for the board to put on that link's channel.
//!
//! What a relay can make us hold: at most `MAX_CONNECTIONS` connections per
//! link, each buffering at most [`MAX_BUFFER`] bytes (one whole request);
//! past either the connection is closed.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use xcp_relay::{FromToolstack, ToToolstack, MAX_CHUNK, MAX_CONNECTIONS};

use crate::engine::{Engine, Handled};
use crate::hypervisor::Hypervisor;
use crate::rng::Entropy;
use crate::value::Instant;
use crate::wal::Storage;

/// Most bytes buffered for one connection (a whole request at most).
pub const MAX_BUFFER: usize = crate::http::MAX_HEAD + crate::http::MAX_BODY + 4096;

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
                    self.conns.remove(&key);
                    out.push_back(FromToolstack::Close { conn });
                    return;
                }
                c.buf.extend_from_slice(&bytes);
                self.serve(engine, now, key, out);
                // A change may release parked calls of other connections
                // (those of other links when the board serves them next).
                self.tick(engine, now, link, out);
            }
            ToToolstack::Closed { conn } => {
                self.conns.remove(&(link, conn));
            }
            // Counters and readiness are for dom0's board (the operator's
            // console, the "XenAPI ready" announcement): it takes them
            // before they reach the engine. Should one arrive here it holds
            // nothing and answers nothing.
            ToToolstack::Stats(_) | ToToolstack::Ready { .. } => {}
        }
    }

    fn link_conns(&self, link: u32) -> usize {
        self.conns.range((link, 0)..=(link, u32::MAX)).count()
    }

    /// Forgets every connection of relay `link` (its relay domain died):
    /// their parked calls end with them. Returns how many there were.
    pub fn drop_link(&mut self, link: u32) -> usize {
        let before = self.conns.len();
        self.conns.retain(|&(l, _), _| l != link);
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
                    c.parked_since = None;
                    c.continued = false;
                    push_data(out, conn, &bytes);
                    if engine.has_jobs() {
                        engine.run_jobs(now);
                    }
                    if close {
                        self.conns.remove(&key);
                        out.push_back(FromToolstack::Close { conn });
                        return;
                    }
                }
            }
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

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
//!
//! Replies a relay is not reading stay queued in `out` (the board's
//! backlog for that link): requests are served only while it holds less
//! than [`MAX_QUEUED`] bytes, so it holds at most that plus one reply
//! (`budget::BACKLOG_BYTES` + `budget::CALL_BYTES`). A connection with
//! whole requests still buffered (pipelined) waits, deferred, and is
//! served again by [`Relayed::tick`] once the backlog drained.
//!
//! A text console attach (`CONNECT /console`, [`crate::console`]) turns
//! its connection into a raw stream: dom0 tells the relay
//! ([`FromToolstack::Stream`], so it stops timing HTTP heads on it), sends
//! `200 OK`, and from then on moves the console's output (its history
//! first) to the client as the link's backlog has room (output is read
//! from the console's bounded history at the connection's own position,
//! never buffered here), and the client's bytes into the console's input
//! ring as the guest takes them. Input the guest does not take waits, at
//! most [`MAX_CONSOLE_INPUT`] bytes; beyond that a client's keystrokes are
//! dropped, as a UART's full FIFO drops them. The connection is closed
//! when the VM's console goes (the VM stopped). The board ticks while a
//! console is attached ([`Relayed::has_parked`]) and on each console
//! event.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use xcp_relay::{FromToolstack, ToToolstack, MAX_CHUNK, MAX_CONNECTIONS};

use crate::body::Response;
use crate::engine::{Engine, Handled};
use crate::hypervisor::Hypervisor;
use crate::rng::Entropy;
use crate::transfer::ExportStep;
use crate::value::Instant;
use crate::wal::Storage;

/// Most bytes buffered for one connection (a whole request at most).
pub const MAX_BUFFER: usize = crate::http::MAX_HEAD + crate::http::MAX_BODY + 4096;
/// Most bytes buffered for all connections of all links together (what
/// the relayed budget leaves beside disk image imports' batches).
pub const MAX_TOTAL: usize = crate::budget::RELAYED_BYTES - crate::budget::TRANSFER_BYTES;

/// Reply bytes queued for one link beyond which no more requests of it are
/// served until the board drained them (one reply may overshoot it).
pub const MAX_QUEUED: usize = crate::budget::BACKLOG_BYTES;

const _: () = assert!(MAX_BUFFER <= MAX_TOTAL, "one whole request must fit");

/// Client bytes an attached console connection holds while the guest does
/// not read its input (four times its 1 KiB `in[]` ring).
pub const MAX_CONSOLE_INPUT: usize = 4096;

/// Reply bytes `out` holds.
fn queued_bytes(out: &VecDeque<FromToolstack>) -> usize {
    out.iter()
        .map(|m| match m {
            FromToolstack::Data { bytes, .. } => bytes.len(),
            _ => 0,
        })
        .sum()
}

/// The reply to a connection refused for want of memory.
fn unavailable() -> Vec<u8> {
    crate::http::response(
        503,
        "text/plain",
        b"dom0 is holding too many request bytes; retry\n",
        false,
    )
}

impl Conn {
    /// Served again by [`Relayed::tick`]: a parked call, deferred
    /// requests, an attached console or an export.
    fn waiting(&self) -> bool {
        self.parked_since.is_some()
            || self.deferred
            || self.console.is_some()
            || matches!(self.transfer, Some(Moving::Export { .. }))
    }
}

#[derive(Default)]
struct Conn {
    buf: Vec<u8>,
    parked_since: Option<Instant>,
    continued: bool,
    /// Whole requests wait in `buf` because the link's backlog was full.
    deferred: bool,
    /// Attached to a VM's text console: `buf` holds input for it.
    console: Option<Attached>,
    /// Moving a disk image (`transfer.rs`).
    transfer: Option<Moving>,
}

/// A connection's disk image transfer.
#[derive(Clone, Copy, Debug)]
enum Moving {
    /// The next `left` bytes of the connection are the image.
    Import { transfer: u32, left: u64 },
    /// The image goes out as the link's backlog has room.
    Export { transfer: u32 },
}

/// A connection attached to a VM's text console.
#[derive(Clone, Copy, Debug)]
struct Attached {
    domid: u32,
    /// Position in the console's output up to which the client was sent.
    at: u64,
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

    /// Connections with a parked call (`event.from` waiting for changes)
    /// or deferred requests (their link's backlog was full): the board
    /// calls [`Relayed::tick`] again for them.
    pub fn has_parked(&self) -> bool {
        self.conns.values().any(Conn::waiting)
    }

    /// Connections attached to a text console.
    pub fn consoles(&self) -> usize {
        self.conns.values().filter(|c| c.console.is_some()).count()
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
                if let Some(Moving::Import { .. }) = c.transfer {
                    let mut queued = queued_bytes(out);
                    if self.import(engine, now, key, &bytes, out, &mut queued) {
                        self.serve(engine, now, key, out, &mut queued);
                    }
                    return;
                }
                let bytes = if c.console.is_some() {
                    // Keystrokes beyond what waits for the guest are lost.
                    let room = MAX_CONSOLE_INPUT.saturating_sub(c.buf.len());
                    &bytes[..bytes.len().min(room)]
                } else {
                    &bytes[..]
                };
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
                c.buf.extend_from_slice(bytes);
                self.buffered += growth;
                let mut queued = queued_bytes(out);
                self.serve(engine, now, key, out, &mut queued);
                // A change may release parked calls of other connections
                // (those of other links when the board serves them next).
                self.tick_queued(engine, now, link, out, &mut queued);
            }
            ToToolstack::Closed { conn } => {
                self.forget(engine, now, (link, conn));
            }
            // Counters and readiness are for dom0's board (the operator's
            // console, the "XenAPI ready" announcement), and the VIF
            // counters and management link go to the engine's own calls
            // (`Engine::vif_stats`, `Engine::management_link`): the board
            // takes them before they reach here. Should one arrive here
            // it holds nothing and answers nothing.
            ToToolstack::Stats(_)
            | ToToolstack::Ready { .. }
            | ToToolstack::VifStats(_)
            | ToToolstack::Link { .. } => {}
        }
    }

    /// Forgets `key`, giving back its bytes; the transfer it was moving,
    /// if any (for [`Engine::transfer_gone`]).
    fn remove(&mut self, key: ConnKey) -> Option<u32> {
        let c = self.conns.remove(&key)?;
        self.buffered -= c.buf.capacity();
        match c.transfer? {
            Moving::Import { transfer, .. } | Moving::Export { transfer } => Some(transfer),
        }
    }

    fn link_conns(&self, link: u32) -> usize {
        self.conns.range((link, 0)..=(link, u32::MAX)).count()
    }

    /// Forgets every connection of relay `link` (its relay domain died):
    /// their parked calls and transfers end with them. Returns how many
    /// there were.
    pub fn drop_link<H: Hypervisor, S: Storage, E: Entropy>(
        &mut self,
        engine: &mut Engine<H, S, E>,
        now: Instant,
        link: u32,
    ) -> usize {
        let keys: Vec<ConnKey> = self
            .conns
            .range((link, 0)..=(link, u32::MAX))
            .map(|(&k, _)| k)
            .collect();
        for &key in &keys {
            self.forget(engine, now, key);
        }
        keys.len()
    }

    /// Forgets connection `key` (closed, or its relay gone): its transfer
    /// ends, and a start parked on its domain's build gives the build up.
    fn forget<H: Hypervisor, S: Storage, E: Entropy>(
        &mut self,
        engine: &mut Engine<H, S, E>,
        now: Instant,
        key: ConnKey,
    ) {
        if let Some(since) = self.conns.get(&key).and_then(|c| c.parked_since) {
            engine.give_up_build_of(&alloc::format!("@{}", since.0));
        }
        if let Some(t) = self.remove(key) {
            engine.transfer_gone(now, t);
        }
    }

    /// Serves `link`'s parked and deferred connections again (after a
    /// change, a timeout, or its backlog `out` drained).
    pub fn tick<H: Hypervisor, S: Storage, E: Entropy>(
        &mut self,
        engine: &mut Engine<H, S, E>,
        now: Instant,
        link: u32,
        out: &mut VecDeque<FromToolstack>,
    ) {
        let mut queued = queued_bytes(out);
        self.tick_queued(engine, now, link, out, &mut queued);
        // `Async.*` calls waiting for a change or a deadline (a clean
        // shutdown): their tasks end when they answer. Queued ones are the
        // board's to run, one at a time (`Engine::run_next_job`).
        if engine.has_parked_jobs() {
            engine.run_parked_jobs(now);
        }
    }

    fn tick_queued<H: Hypervisor, S: Storage, E: Entropy>(
        &mut self,
        engine: &mut Engine<H, S, E>,
        now: Instant,
        link: u32,
        out: &mut VecDeque<FromToolstack>,
        queued: &mut usize,
    ) {
        let waiting: Vec<ConnKey> = self
            .conns
            .range((link, 0)..=(link, u32::MAX))
            .filter(|(_, c)| c.waiting())
            .map(|(&k, _)| k)
            .collect();
        for key in waiting {
            self.serve(engine, now, key, out, queued);
        }
    }

    /// Answers every whole request `key` has buffered, until one needs
    /// more bytes or parks, or the link's backlog (`queued` bytes in
    /// `out`) reaches [`MAX_QUEUED`].
    fn serve<H: Hypervisor, S: Storage, E: Entropy>(
        &mut self,
        engine: &mut Engine<H, S, E>,
        now: Instant,
        key: ConnKey,
        out: &mut VecDeque<FromToolstack>,
        queued: &mut usize,
    ) {
        let conn = key.1;
        loop {
            let Some(c) = self.conns.get_mut(&key) else {
                return;
            };
            if let Some(attached) = c.console {
                self.pump_console(engine, key, attached, out, queued);
                return;
            }
            if let Some(Moving::Export { transfer }) = c.transfer {
                if !self.pump_export(engine, now, key, transfer, out, queued) {
                    return;
                }
                continue;
            }
            c.deferred = !c.buf.is_empty() && *queued >= MAX_QUEUED;
            if c.deferred {
                return;
            }
            match engine.handle(now, c.parked_since, &c.buf) {
                Handled::NeedMore { send_continue } => {
                    if send_continue && !c.continued {
                        c.continued = true;
                        push_data(out, conn, crate::http::CONTINUE);
                    }
                    return;
                }
                Handled::Attach { consumed, domid } => {
                    c.buf.drain(..consumed.min(c.buf.len()));
                    c.buf.truncate(MAX_CONSOLE_INPUT);
                    c.parked_since = None;
                    c.continued = false;
                    let attached = Attached { domid, at: 0 };
                    c.console = Some(attached);
                    out.push_back(FromToolstack::Stream { conn });
                    *queued += crate::console::ATTACHED.len();
                    push_data(out, conn, crate::console::ATTACHED);
                    self.pump_console(engine, key, attached, out, queued);
                    return;
                }
                Handled::Park { .. } => {
                    c.parked_since.get_or_insert(now);
                    return;
                }
                Handled::Import {
                    consumed,
                    transfer,
                    len,
                    send_continue,
                } => {
                    c.buf.drain(..consumed.min(c.buf.len()));
                    c.parked_since = None;
                    c.continued = false;
                    c.transfer = Some(Moving::Import {
                        transfer,
                        left: len,
                    });
                    if send_continue {
                        *queued += crate::http::CONTINUE.len();
                        push_data(out, conn, crate::http::CONTINUE);
                    }
                    // Body bytes that came with the head.
                    let early = core::mem::take(&mut c.buf);
                    self.buffered -= early.capacity();
                    if !self.import(engine, now, key, &early, out, queued) {
                        return;
                    }
                }
                Handled::Export {
                    consumed,
                    transfer,
                    head,
                } => {
                    c.buf.drain(..consumed.min(c.buf.len()));
                    c.parked_since = None;
                    c.continued = false;
                    c.transfer = Some(Moving::Export { transfer });
                    *queued += head.len();
                    push_data(out, conn, &head);
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
                    *queued += bytes.len();
                    // An `Async.*` call's job is not run here: the board
                    // sends this reply (its task) first, then runs queued
                    // jobs one at a time between messages
                    // (`Engine::run_next_job`).
                    push_response(out, conn, bytes);
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

impl Relayed {
    /// Gives an import's body bytes to the engine; bytes past the body's
    /// end are the connection's next request. True when the import ended
    /// and the connection is served as HTTP again; false while the import
    /// goes on or when the connection was closed.
    fn import<H: Hypervisor, S: Storage, E: Entropy>(
        &mut self,
        engine: &mut Engine<H, S, E>,
        now: Instant,
        key: ConnKey,
        bytes: &[u8],
        out: &mut VecDeque<FromToolstack>,
        queued: &mut usize,
    ) -> bool {
        let conn = key.1;
        let Some(c) = self.conns.get_mut(&key) else {
            return false;
        };
        let Some(Moving::Import { transfer, left }) = c.transfer else {
            return false;
        };
        let n = left.min(bytes.len() as u64) as usize;
        let left = left - n as u64;
        c.transfer = Some(Moving::Import { transfer, left });
        let failed = match n {
            0 => None,
            _ => engine.import_bytes(now, transfer, &bytes[..n]),
        };
        let (reply, close) = match failed {
            Some(reply) => (reply, true),
            None if left > 0 => return false,
            None => engine.import_end(now, transfer),
        };
        if let Some(c) = self.conns.get_mut(&key) {
            c.transfer = None;
        }
        *queued += reply.len();
        push_response(out, conn, reply);
        let rest = &bytes[n..];
        let kept = !close && rest.len() <= MAX_BUFFER && self.buffered + rest.len() <= MAX_TOTAL;
        let Some(c) = self.conns.get_mut(&key).filter(|_| kept) else {
            self.remove(key);
            out.push_back(FromToolstack::Close { conn });
            return false;
        };
        if !rest.is_empty() {
            let held = c.buf.capacity();
            if c.buf.try_reserve(rest.len()).is_err() {
                self.remove(key);
                out.push_back(FromToolstack::Close { conn });
                return false;
            }
            c.buf.extend_from_slice(rest);
            self.buffered += c.buf.capacity() - held;
        }
        true
    }

    /// Sends an export's bytes while the link's backlog has room. True
    /// when the export ended and the connection is served as HTTP again.
    fn pump_export<H: Hypervisor, S: Storage, E: Entropy>(
        &mut self,
        engine: &mut Engine<H, S, E>,
        now: Instant,
        key: ConnKey,
        transfer: u32,
        out: &mut VecDeque<FromToolstack>,
        queued: &mut usize,
    ) -> bool {
        let conn = key.1;
        while *queued < MAX_QUEUED {
            match engine.export_bytes(now, transfer, MAX_CHUNK) {
                ExportStep::Data(bytes) => {
                    *queued += bytes.len();
                    out.push_back(FromToolstack::Data { conn, bytes });
                }
                ExportStep::End { close } => {
                    if let Some(c) = self.conns.get_mut(&key) {
                        c.transfer = None;
                    }
                    if close {
                        self.remove(key);
                        out.push_back(FromToolstack::Close { conn });
                        return false;
                    }
                    return true;
                }
                ExportStep::Failed => {
                    if let Some(c) = self.conns.get_mut(&key) {
                        c.transfer = None;
                    }
                    self.remove(key);
                    out.push_back(FromToolstack::Close { conn });
                    return false;
                }
            }
        }
        false
    }

    /// Moves an attached console's bytes: the client's input into the
    /// guest as it takes it, the guest's output to the client while the
    /// link's backlog (`queued` bytes) has room. Closes the connection when
    /// the console is gone.
    fn pump_console<H: Hypervisor, S: Storage, E: Entropy>(
        &mut self,
        engine: &mut Engine<H, S, E>,
        key: ConnKey,
        mut attached: Attached,
        out: &mut VecDeque<FromToolstack>,
        queued: &mut usize,
    ) {
        let conn = key.1;
        let hv = engine.hypervisor();
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        let mut gone = false;
        if !c.buf.is_empty() {
            match hv.console_write(attached.domid, &c.buf) {
                Some(n) => {
                    c.buf.drain(..n.min(c.buf.len()));
                }
                None => gone = true,
            }
        }
        while !gone && *queued < MAX_QUEUED {
            match hv.console_read(attached.domid, attached.at, MAX_CHUNK) {
                Some((bytes, next)) => {
                    attached.at = next;
                    if bytes.is_empty() {
                        break;
                    }
                    *queued += bytes.len();
                    out.push_back(FromToolstack::Data { conn, bytes });
                }
                None => gone = true,
            }
        }
        c.console = Some(attached);
        if gone {
            self.remove(key);
            out.push_back(FromToolstack::Close { conn });
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

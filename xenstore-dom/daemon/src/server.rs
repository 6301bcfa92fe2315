//! The poll loop: unix socket connections in, engine, replies out.
//!
//! Single-threaded and non-blocking, like C xenstored and oxenstored: one
//! epoll set (through `mio`, edge-triggered) over the listener and every
//! client. Per wake-up each ready client is read until its socket is empty
//! (one `read` usually does it), every whole request is handled, and the
//! replies are written back in one `write` per connection. A client is read
//! only while the engine wants its input (flow control); a client whose
//! socket is full is written again when epoll says it is writable.
//! The board holds no protocol logic; see xenstore-engine.

use std::collections::BTreeMap;
use std::io::{self, ErrorKind, Read, Write};
use std::path::Path;

use mio::net::{UnixListener, UnixStream};
use mio::{Events, Interest, Poll, Token};
use xenstore_engine::{Config, ConnId, Effect, Engine};

/// Most bytes read from one client per `read`.
const READ_CHUNK: usize = 64 * 1024;
/// Most bytes gathered into one write.
const WRITE_CHUNK: usize = 64 * 1024;
/// Most simultaneous socket clients.
const MAX_CLIENTS: usize = 1024;
/// Reads from one client per wake-up before the others get their turn (a
/// client with more input left is served again before the next wait).
const READS_PER_TURN: usize = 4;
/// The listener's token (client tokens are their `ConnId`s).
const LISTENER: Token = Token(usize::MAX);

struct Client {
    stream: UnixStream,
    /// Bytes read but not yet taken by the engine (flow control).
    pending: Vec<u8>,
    /// Output taken from the engine and not yet written.
    unsent: Vec<u8>,
    /// The socket may hold unread bytes (edge-triggered: set by a readable
    /// event, cleared by a short or would-block read).
    readable: bool,
    /// A write would block: wait for a writable event.
    write_blocked: bool,
    /// Registered for writable events too.
    wants_writable: bool,
    /// Served in this turn's read phase and not yet flushed (false for
    /// every client between turns).
    listed: bool,
}

/// Serve forever on `socket` (an existing file there is replaced).
pub fn run(socket: &Path, config: Config) -> io::Result<()> {
    match std::fs::remove_file(socket) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut listener = UnixListener::bind(socket)?;
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut engine = Engine::new(config);
    let mut clients: BTreeMap<ConnId, Client> = BTreeMap::new();
    let mut buf = vec![0u8; READ_CHUNK];
    let mut events = Events::with_capacity(256);
    // Clients to serve this turn, and those left with input for the next.
    let mut work: Vec<ConnId> = Vec::new();
    let mut backlog: Vec<ConnId> = Vec::new();
    let mut ready: Vec<ConnId> = Vec::new();
    loop {
        // Do not sleep while a client still has input waiting.
        let timeout = (!backlog.is_empty()).then_some(std::time::Duration::ZERO);
        match poll.poll(&mut events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        work.append(&mut backlog);
        for ev in events.iter() {
            if ev.token() == LISTENER {
                accept_all(&listener, &poll, &mut engine, &mut clients);
                continue;
            }
            let Ok(raw) = u32::try_from(ev.token().0) else {
                continue;
            };
            let id = ConnId(raw);
            let Some(c) = clients.get_mut(&id) else {
                continue;
            };
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                c.readable = true;
            }
            if ev.is_writable() || ev.is_write_closed() {
                c.write_blocked = false;
            }
            work.push(id);
        }
        // Read and handle: each client's requests are handled as they
        // complete; replies pile up in the engine until the flush below.
        for &id in &work {
            let Some(c) = clients.get_mut(&id) else {
                continue;
            };
            if c.listed {
                continue;
            }
            c.listed = true;
            if !input(&mut engine, id, c, &mut buf) {
                drop_client(&poll, &mut engine, &mut clients, id);
            }
        }
        for effect in engine.take_effects() {
            match effect {
                Effect::ProtocolError { conn, .. } => {
                    drop_client(&poll, &mut engine, &mut clients, conn)
                }
                // No rings on the host: INTRODUCE is recorded, nothing mapped.
                Effect::MapRing { .. } | Effect::UnmapRing { .. } => {}
            }
        }
        // Write: every connection that got output (replies, watch events)
        // and every one woken as writable, one write each.
        engine.take_ready(&mut ready);
        work.append(&mut ready);
        for &id in &work {
            let Some(c) = clients.get_mut(&id) else {
                continue;
            };
            if !c.listed && c.unsent.is_empty() && engine.output(id).is_none() {
                continue;
            }
            c.listed = false;
            match flush(&poll, &mut engine, id, c) {
                Ok(more) => {
                    if more {
                        backlog.push(id);
                    }
                }
                Err(()) => drop_client(&poll, &mut engine, &mut clients, id),
            }
        }
        work.clear();
    }
}

fn accept_all(
    listener: &UnixListener,
    poll: &Poll,
    engine: &mut Engine,
    clients: &mut BTreeMap<ConnId, Client>,
) {
    loop {
        match listener.accept() {
            Ok((mut stream, _)) => {
                if clients.len() >= MAX_CLIENTS {
                    continue;
                }
                let id = engine.connect(0);
                let token = Token(id.0 as usize);
                if poll
                    .registry()
                    .register(&mut stream, token, Interest::READABLE)
                    .is_err()
                {
                    engine.close(id);
                    continue;
                }
                let client = Client {
                    stream,
                    pending: Vec::new(),
                    unsent: Vec::new(),
                    // Bytes may have arrived before registration.
                    readable: true,
                    write_blocked: false,
                    wants_writable: false,
                    listed: false,
                };
                clients.insert(id, client);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("xcp-xenstored: accept: {e}");
                return;
            }
        }
    }
}

/// Feed bytes held back by flow control; false if the client broke the
/// protocol.
fn feed_pending(engine: &mut Engine, id: ConnId, c: &mut Client) -> bool {
    if c.pending.is_empty() || !engine.wants_input(id) {
        return true;
    }
    match engine.receive(id, &c.pending) {
        Ok(n) => {
            c.pending.drain(..n);
            true
        }
        Err(_) => false,
    }
}

/// Read and feed input while the engine takes it; false if the client is
/// gone or broke the protocol.
fn input(engine: &mut Engine, id: ConnId, c: &mut Client, buf: &mut [u8]) -> bool {
    if !feed_pending(engine, id, c) {
        return false;
    }
    let mut reads = 0;
    while c.readable && c.pending.is_empty() && engine.wants_input(id) && reads < READS_PER_TURN {
        reads += 1;
        match c.stream.read(buf) {
            Ok(0) => return false,
            Ok(n) => {
                // A short read emptied the socket; later bytes bring a new
                // edge.
                if n < buf.len() {
                    c.readable = false;
                }
                match engine.receive(id, &buf[..n]) {
                    Ok(taken) => c.pending.extend_from_slice(&buf[taken..n]),
                    Err(_) => return false,
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => c.readable = false,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

/// Write queued output, then take input that flow control held back if
/// the write made room. `Ok(true)`: input is left to serve next turn;
/// `Err`: the client is gone. At most one gathered chunk (`WRITE_CHUNK`
/// plus one message) waits here when the client's socket is full; the rest
/// stays in the engine's bounded queue.
fn flush(poll: &Poll, engine: &mut Engine, id: ConnId, c: &mut Client) -> Result<bool, ()> {
    let mut fed = 0;
    while !c.write_blocked {
        if c.unsent.is_empty() {
            while c.unsent.len() < WRITE_CHUNK {
                let Some(chunk) = engine.output(id) else {
                    break;
                };
                let chunk_len = chunk.len();
                c.unsent.extend_from_slice(chunk);
                engine.consume_output(id, chunk_len);
            }
            if c.unsent.is_empty() {
                break;
            }
        }
        match c.stream.write(&c.unsent) {
            Ok(0) => return Err(()),
            Ok(n) => {
                c.unsent.drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => c.write_blocked = true,
            Err(_) => return Err(()),
        }
        // The write freed outstanding slots: input held back by flow
        // control can go in now (bounded per turn for fairness).
        if c.unsent.is_empty() && fed < READS_PER_TURN && engine.wants_input(id) {
            fed += 1;
            if !feed_pending(engine, id, c) {
                return Err(());
            }
        }
    }
    // Writable events only while a write is blocked: a permanent
    // registration would wake us each time the client reads.
    let want_writable = c.write_blocked;
    if want_writable != c.wants_writable {
        let interest = if want_writable {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        let token = Token(id.0 as usize);
        if poll
            .registry()
            .reregister(&mut c.stream, token, interest)
            .is_err()
        {
            return Err(());
        }
        c.wants_writable = want_writable;
    }
    let input_left = c.readable || !c.pending.is_empty();
    Ok(input_left && engine.wants_input(id) && !c.write_blocked)
}

fn drop_client(
    poll: &Poll,
    engine: &mut Engine,
    clients: &mut BTreeMap<ConnId, Client>,
    id: ConnId,
) {
    if let Some(mut c) = clients.remove(&id) {
        let _ = poll.registry().deregister(&mut c.stream);
    }
    engine.close(id);
}

//! The poll loop: unix socket connections in, engine, replies out.
//!
//! Single-threaded and non-blocking, like C xenstored and oxenstored: one
//! `poll(2)` over the listener and every client. A client is read only while
//! the engine wants its input (flow control), written when it has output.
//! The board holds no protocol logic; see xenstore-engine.

use std::collections::BTreeMap;
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use xenstore_engine::{Config, ConnId, Effect, Engine};

/// Most bytes read from one client per wakeup.
const READ_CHUNK: usize = 64 * 1024;
/// Most bytes gathered into one write.
const WRITE_CHUNK: usize = 64 * 1024;
/// Most simultaneous socket clients.
const MAX_CLIENTS: usize = 1024;

struct Client {
    stream: UnixStream,
    /// Bytes read but not yet taken by the engine (flow control).
    pending: Vec<u8>,
    /// Output taken from the engine and not yet written.
    unsent: Vec<u8>,
}

/// Serve forever on `socket` (an existing file there is replaced).
pub fn run(socket: &Path) -> io::Result<()> {
    match std::fs::remove_file(socket) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(socket)?;
    listener.set_nonblocking(true)?;
    let mut engine = Engine::new(Config::default());
    let mut clients: BTreeMap<ConnId, Client> = BTreeMap::new();
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let ids: Vec<ConnId> = clients.keys().copied().collect();
        let mut fds = Vec::with_capacity(ids.len() + 1);
        fds.push(libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        for id in &ids {
            let c = &clients[id];
            let mut events = 0;
            if engine.wants_input(*id) {
                events |= libc::POLLIN;
            }
            if !c.unsent.is_empty() || engine.output(*id).is_some() {
                events |= libc::POLLOUT;
            }
            fds.push(libc::pollfd {
                fd: c.stream.as_raw_fd(),
                events,
                revents: 0,
            });
        }
        let nfds = libc::nfds_t::try_from(fds.len()).expect("fd count fits nfds_t");
        // SAFETY: `fds` is a valid, exclusively borrowed array of `nfds`
        // pollfd structs that outlives the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), nfds, -1) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if fds[0].revents & libc::POLLIN != 0 {
            accept_all(&listener, &mut engine, &mut clients);
        }
        for (i, id) in ids.iter().enumerate() {
            let revents = fds[i + 1].revents;
            if revents == 0 {
                continue;
            }
            let alive = service(&mut engine, *id, &mut clients, revents, &mut buf);
            if !alive {
                drop_client(&mut engine, &mut clients, *id);
            }
        }
        for effect in engine.take_effects() {
            match effect {
                Effect::ProtocolError { conn, .. } => drop_client(&mut engine, &mut clients, conn),
                // No rings on the host: INTRODUCE is recorded, nothing mapped.
                Effect::MapRing { .. } | Effect::UnmapRing { .. } => {}
            }
        }
        // Flush whatever any request queued (replies and watch events).
        let ids: Vec<ConnId> = clients.keys().copied().collect();
        for id in ids {
            let has_unsent = clients.get(&id).is_some_and(|c| !c.unsent.is_empty());
            if (has_unsent || engine.output(id).is_some()) && !flush(&mut engine, id, &mut clients)
            {
                drop_client(&mut engine, &mut clients, id);
            }
        }
    }
}

fn accept_all(
    listener: &UnixListener,
    engine: &mut Engine,
    clients: &mut BTreeMap<ConnId, Client>,
) {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                if clients.len() >= MAX_CLIENTS || stream.set_nonblocking(true).is_err() {
                    continue;
                }
                let id = engine.connect(0);
                clients.insert(
                    id,
                    Client {
                        stream,
                        pending: Vec::new(),
                        unsent: Vec::new(),
                    },
                );
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

/// Read and feed input; false if the client is gone or broke the protocol.
fn service(
    engine: &mut Engine,
    id: ConnId,
    clients: &mut BTreeMap<ConnId, Client>,
    revents: libc::c_short,
    buf: &mut [u8],
) -> bool {
    let Some(c) = clients.get_mut(&id) else {
        return false;
    };
    if revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
        if !c.pending.is_empty() {
            let pending = std::mem::take(&mut c.pending);
            match engine.receive(id, &pending) {
                Ok(n) => c.pending = pending[n..].to_vec(),
                Err(_) => return false,
            }
            if !c.pending.is_empty() {
                return true;
            }
        }
        match c.stream.read(buf) {
            Ok(0) => return false,
            Ok(n) => match engine.receive(id, &buf[..n]) {
                Ok(taken) => c.pending.extend_from_slice(&buf[taken..n]),
                Err(_) => return false,
            },
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
            Err(_) => return false,
        }
    }
    true
}

/// Write queued output; false if the client is gone. At most one gathered
/// chunk (`WRITE_CHUNK` plus one message) waits here when the client's
/// socket is full; the rest stays in the engine's bounded queue.
fn flush(engine: &mut Engine, id: ConnId, clients: &mut BTreeMap<ConnId, Client>) -> bool {
    let Some(c) = clients.get_mut(&id) else {
        return false;
    };
    loop {
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
                return true;
            }
        }
        match c.stream.write(&c.unsent) {
            Ok(0) => return false,
            Ok(n) => {
                c.unsent.drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
        // Flushing frees outstanding slots: take any input left waiting.
        if c.unsent.is_empty() && !c.pending.is_empty() && engine.wants_input(id) {
            let pending = std::mem::take(&mut c.pending);
            match engine.receive(id, &pending) {
                Ok(n) => c.pending = pending[n..].to_vec(),
                Err(_) => return false,
            }
        }
    }
}

fn drop_client(engine: &mut Engine, clients: &mut BTreeMap<ConnId, Client>, id: ConnId) {
    clients.remove(&id);
    engine.close(id);
}

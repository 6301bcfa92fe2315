//! The poll loop: unix socket connections in, engine, replies out.
//!
//! Single-threaded and non-blocking, like C xenstored and oxenstored: one
//! `epoll(7)` set over the listener and every client. A client is read only
//! while the engine wants its input (flow control), written when it has
//! output.
//! The board holds no protocol logic; see xenstore-engine.

use std::collections::BTreeMap;
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
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
    /// The epoll events currently registered.
    interest: u32,
}

/// Serve forever on `socket` (an existing file there is replaced).
pub fn run(socket: &Path, config: Config) -> io::Result<()> {
    match std::fs::remove_file(socket) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(socket)?;
    listener.set_nonblocking(true)?;
    let epoll = Epoll::new()?;
    epoll.add(listener.as_raw_fd(), LISTENER, EPOLLIN)?;
    let mut engine = Engine::new(config);
    let mut clients: BTreeMap<ConnId, Client> = BTreeMap::new();
    let mut buf = vec![0u8; READ_CHUNK];
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 64];
    loop {
        let ready = epoll.wait(&mut events)?;
        for ev in &events[..ready] {
            if ev.u64 == LISTENER {
                accept_all(&listener, &epoll, &mut engine, &mut clients);
                continue;
            }
            let Ok(raw) = u32::try_from(ev.u64) else {
                continue;
            };
            let id = ConnId(raw);
            let revents = ev.events;
            if !service(&mut engine, id, &mut clients, revents, &mut buf) {
                drop_client(&mut engine, &mut clients, id);
            }
        }
        for effect in engine.take_effects() {
            match effect {
                Effect::ProtocolError { conn, .. } => drop_client(&mut engine, &mut clients, conn),
                // No rings on the host: INTRODUCE is recorded, nothing mapped.
                Effect::MapRing { .. } | Effect::UnmapRing { .. } => {}
            }
        }
        // Flush whatever any request queued (replies and watch events), then
        // bring each client's epoll interest in line with the engine's flow
        // control (no EPOLLIN while it holds `outstanding` replies).
        let ids: Vec<ConnId> = clients.keys().copied().collect();
        for id in ids {
            let has_unsent = clients.get(&id).is_some_and(|c| !c.unsent.is_empty());
            if (has_unsent || engine.output(id).is_some()) && !flush(&mut engine, id, &mut clients)
            {
                drop_client(&mut engine, &mut clients, id);
                continue;
            }
            let Some(c) = clients.get_mut(&id) else {
                continue;
            };
            let mut want = 0;
            if engine.wants_input(id) {
                want |= EPOLLIN;
            }
            if !c.unsent.is_empty() || engine.output(id).is_some() {
                want |= EPOLLOUT;
            }
            if want != c.interest {
                if epoll
                    .modify(c.stream.as_raw_fd(), u64::from(id.0), want)
                    .is_err()
                {
                    drop_client(&mut engine, &mut clients, id);
                    continue;
                }
                c.interest = want;
            }
        }
    }
}

const LISTENER: u64 = u64::MAX;
const EPOLLIN: u32 = libc::EPOLLIN as u32;
const EPOLLOUT: u32 = libc::EPOLLOUT as u32;

/// An epoll instance, closed on drop.
struct Epoll(OwnedFd);

impl Epoll {
    fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes no pointers; a negative result is
        // checked below.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by epoll_create1 and is owned by
        // nothing else.
        Ok(Epoll(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, data: u64, events: u32) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: data };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call;
        // both descriptors are open.
        let r = unsafe { libc::epoll_ctl(self.0.as_raw_fd(), op, fd, &mut ev) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    fn add(&self, fd: RawFd, data: u64, events: u32) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, data, events)
    }

    fn modify(&self, fd: RawFd, data: u64, events: u32) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, data, events)
    }

    fn wait(&self, events: &mut [libc::epoll_event]) -> io::Result<usize> {
        let max = libc::c_int::try_from(events.len()).unwrap_or(libc::c_int::MAX);
        loop {
            // SAFETY: `events` is a valid, exclusively borrowed buffer of
            // at least `max` entries.
            let n = unsafe { libc::epoll_wait(self.0.as_raw_fd(), events.as_mut_ptr(), max, -1) };
            if n >= 0 {
                return Ok(usize::try_from(n).unwrap_or(0));
            }
            let e = io::Error::last_os_error();
            if e.kind() != ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

fn accept_all(
    listener: &UnixListener,
    epoll: &Epoll,
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
                if epoll
                    .add(stream.as_raw_fd(), u64::from(id.0), EPOLLIN)
                    .is_err()
                {
                    engine.close(id);
                    continue;
                }
                let client = Client {
                    stream,
                    pending: Vec::new(),
                    unsent: Vec::new(),
                    interest: EPOLLIN,
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

/// Read and feed input; false if the client is gone or broke the protocol.
fn service(
    engine: &mut Engine,
    id: ConnId,
    clients: &mut BTreeMap<ConnId, Client>,
    revents: u32,
    buf: &mut [u8],
) -> bool {
    let Some(c) = clients.get_mut(&id) else {
        return false;
    };
    if revents & (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0 {
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

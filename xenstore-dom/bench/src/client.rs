//! A pipelining xenstore wire client and the benchmark workload.
//!
//! Read first: xs_wire.h, docs/misc/xenstore.txt. A connection keeps up to
//! `depth` operations in flight, as libxenstore's threads and Linux's xenbus
//! driver do (the protocol's `req_id` exists for that); `depth` 1 is the
//! classic one-request-at-a-time client. Each loop turn does one `read`
//! (every whole reply in it is handled) and one `write` (every request
//! those replies allowed), so the client's own syscalls per op shrink with
//! the depth and the figure measures the server.
//!
//! Every reply is checked: it must answer the oldest outstanding request
//! (same `req_id`, `tx_id`, and type or ERROR), and its payload must fit
//! the request (a READ of key `k<n>` returns a value starting `k<n>:`, a
//! DIRECTORY lists exactly the client's 32 keys, a WRITE says `OK`). A
//! reply out of order ends the client with an error; a wrong payload or an
//! unexpected ERROR is counted in [`ClientResult::errors`]. Either fails
//! the bench.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use mio::net::UnixStream;
use mio::{Events, Interest, Poll, Token};

use xen_abi::io::xs_wire::{
    XENSTORE_PAYLOAD_MAX as PAYLOAD_MAX, XSD_SOCKMSG_SIZE as HEADER, XS_DIRECTORY as DIRECTORY,
    XS_ERROR as ERROR, XS_READ as READ, XS_TRANSACTION_END as TRANSACTION_END,
    XS_TRANSACTION_START as TRANSACTION_START, XS_WRITE as WRITE,
};

/// Keys each client owns under `/bench/c<k>`.
pub const KEYS: usize = 32;

/// Deepest pipeline: both daemons allow 10 open transactions per
/// connection by default (C xenstored's `transactions` quota), and one
/// operation holds at most one, so up to 10 in flight never hits a quota.
pub const MAX_DEPTH: usize = 10;

/// Kinds of operation in the mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// READ of one key.
    Read,
    /// WRITE of one key.
    Write,
    /// DIRECTORY of the client's subtree.
    Directory,
    /// TRANSACTION_START, READ, WRITE, TRANSACTION_END "T" (retried on EAGAIN).
    Transaction,
}

impl Kind {
    /// All kinds, in report order.
    pub const ALL: [Kind; 4] = [Kind::Read, Kind::Write, Kind::Directory, Kind::Transaction];

    /// Lower-case name for tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Read => "read",
            Kind::Write => "write",
            Kind::Directory => "directory",
            Kind::Transaction => "transaction",
        }
    }

    /// The mix: of every 10 operations, 4 reads, 3 writes, 2 directories
    /// and 1 transaction.
    pub fn for_step(step: usize) -> Kind {
        match step % 10 {
            0..=3 => Kind::Read,
            4..=6 => Kind::Write,
            7 | 8 => Kind::Directory,
            _ => Kind::Transaction,
        }
    }

    fn index(self) -> usize {
        match self {
            Kind::Read => 0,
            Kind::Write => 1,
            Kind::Directory => 2,
            Kind::Transaction => 3,
        }
    }
}

/// A request sent and not yet answered, in send order.
#[derive(Clone, Copy, Debug)]
struct Sent {
    req_id: u32,
    ty: u32,
    tx_id: u32,
    slot: usize,
}

/// One connection to a xenstored: batched writes, buffered reads, non-
/// blocking (a driver thread waits for many connections at once in epoll).
pub struct Conn {
    stream: UnixStream,
    next_req_id: u32,
    sent: VecDeque<Sent>,
    wbuf: Vec<u8>,
    rbuf: Vec<u8>,
    rstart: usize,
    rend: usize,
}

/// A whole reply at the front of the read buffer.
#[derive(Clone, Copy, Debug)]
struct Reply {
    ty: u32,
    req_id: u32,
    tx_id: u32,
    body_start: usize,
    body_end: usize,
}

impl Conn {
    /// Connect (a unix socket connects at once or fails).
    pub fn connect(path: &Path) -> io::Result<Conn> {
        let stream = std::os::unix::net::UnixStream::connect(path)?;
        stream.set_nonblocking(true)?;
        Ok(Conn {
            stream: UnixStream::from_std(stream),
            next_req_id: 0,
            sent: VecDeque::with_capacity(MAX_DEPTH * 2),
            wbuf: Vec::with_capacity(16 * 1024),
            // Twice the most that can be outstanding: every reply at its
            // largest fits after a compaction.
            rbuf: vec![0; 2 * MAX_DEPTH * (PAYLOAD_MAX + HEADER)],
            rstart: 0,
            rend: 0,
        })
    }

    /// Queue a request (sent by the next [`Conn::flush`]); the payload is
    /// the concatenation of `parts`.
    fn queue(&mut self, slot: usize, ty: u32, tx_id: u32, parts: &[&[u8]]) {
        self.next_req_id = self.next_req_id.wrapping_add(1);
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let len = u32::try_from(len).expect("bench payloads are short");
        for w in [ty, self.next_req_id, tx_id, len] {
            self.wbuf.extend_from_slice(&w.to_le_bytes());
        }
        for p in parts {
            self.wbuf.extend_from_slice(p);
        }
        self.sent.push_back(Sent {
            req_id: self.next_req_id,
            ty,
            tx_id,
            slot,
        });
    }

    /// Write every queued request in one `write`. At most `MAX_DEPTH`
    /// short requests are ever unanswered, far below a socket buffer, so
    /// a full socket means the daemon stopped reading: an error.
    fn flush(&mut self) -> io::Result<()> {
        let mut done = 0;
        while done < self.wbuf.len() {
            match self.stream.write(&self.wbuf[done..]) {
                Ok(0) => return Err(io::Error::other("daemon closed the connection")),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(io::Error::other(
                        "daemon's socket full: it stopped reading requests",
                    ))
                }
                Err(e) => return Err(e),
            }
        }
        self.wbuf.clear();
        Ok(())
    }

    /// Read whatever the socket holds (edge-triggered: until it is empty).
    fn read_available(&mut self) -> io::Result<()> {
        loop {
            if self.rstart == self.rend {
                self.rstart = 0;
                self.rend = 0;
            } else if self.rstart > 0 {
                self.rbuf.copy_within(self.rstart..self.rend, 0);
                self.rend -= self.rstart;
                self.rstart = 0;
            }
            let room = self.rbuf.len() - self.rend;
            match self.stream.read(&mut self.rbuf[self.rend..]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "daemon closed the connection",
                    ))
                }
                Ok(n) => {
                    self.rend += n;
                    // A short read emptied the socket.
                    if n < room {
                        return Ok(());
                    }
                    if self.rend - self.rstart >= self.rbuf.len() {
                        return Err(io::Error::other("more reply bytes than requests"));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// Cut the next whole reply from the buffer, if one is there.
    fn next_reply(&mut self) -> io::Result<Option<Reply>> {
        let avail = &self.rbuf[self.rstart..self.rend];
        if avail.len() < HEADER {
            return Ok(None);
        }
        let word = |i: usize| {
            u32::from_le_bytes([
                avail[i * 4],
                avail[i * 4 + 1],
                avail[i * 4 + 2],
                avail[i * 4 + 3],
            ])
        };
        let (ty, req_id, tx_id, len) = (word(0), word(1), word(2), word(3) as usize);
        if len > PAYLOAD_MAX {
            return Err(io::Error::other("reply longer than XENSTORE_PAYLOAD_MAX"));
        }
        if avail.len() < HEADER + len {
            return Ok(None);
        }
        let body_start = self.rstart + HEADER;
        self.rstart = body_start + len;
        Ok(Some(Reply {
            ty,
            req_id,
            tx_id,
            body_start,
            body_end: self.rstart,
        }))
    }
}

/// Create client `client`'s keys (values `k<n>:init`) over a blocking
/// connection of its own.
pub fn setup(path: &Path, client: usize) -> io::Result<()> {
    let mut stream = std::os::unix::net::UnixStream::connect(path)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let w = Workload::new(client);
    for (key, path) in w.paths.iter().enumerate() {
        let mut msg = Vec::new();
        let len = path.len() + w.prefixes[key].len() + 4;
        for word in [WRITE, 1, 0, u32::try_from(len).expect("short")] {
            msg.extend_from_slice(&word.to_le_bytes());
        }
        msg.extend_from_slice(path);
        msg.extend_from_slice(&w.prefixes[key]);
        msg.extend_from_slice(b"init");
        stream.write_all(&msg)?;
        let mut header = [0u8; HEADER];
        stream.read_exact(&mut header)?;
        let len = u32::from_le_bytes([header[12], header[13], header[14], header[15]]) as usize;
        if len > PAYLOAD_MAX {
            return Err(io::Error::other("reply longer than XENSTORE_PAYLOAD_MAX"));
        }
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body)?;
        if header[..4] != WRITE.to_le_bytes() || body != b"OK\0" {
            return Err(io::Error::other(format!(
                "setup write: {}",
                String::from_utf8_lossy(&body)
            )));
        }
    }
    Ok(())
}

/// Byte strings one client's requests are built from.
struct Workload {
    /// `/bench/c<k>/k<n>\0` per key.
    paths: Vec<Vec<u8>>,
    /// `k<n>:`: how every value of key n starts.
    prefixes: Vec<Vec<u8>>,
    /// `/bench/c<k>\0`.
    dir: Vec<u8>,
}

impl Workload {
    fn new(client: usize) -> Workload {
        Workload {
            paths: (0..KEYS)
                .map(|n| format!("/bench/c{client}/k{n}\0").into_bytes())
                .collect(),
            prefixes: (0..KEYS).map(|n| format!("k{n}:").into_bytes()).collect(),
            dir: format!("/bench/c{client}\0").into_bytes(),
        }
    }
}

/// Where an operation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// A one-request operation awaits its reply.
    Single,
    /// Transaction: START sent.
    TxStart,
    /// Transaction: READ sent.
    TxRead,
    /// Transaction: WRITE sent.
    TxWrite,
    /// Transaction: END "T" sent.
    TxEnd,
    /// A failed transaction's END "F" sent; the result is ignored.
    TxAbort,
}

/// One operation in flight.
#[derive(Clone, Copy, Debug)]
struct Slot {
    kind: Kind,
    key: usize,
    step: usize,
    started: Instant,
    stage: Stage,
    tx: u32,
    retries: u32,
}

/// What one client measured.
#[derive(Debug, Default)]
pub struct ClientResult {
    /// Latency in nanoseconds per kind (index as `Kind::ALL`).
    pub latencies: [Vec<u64>; 4],
    /// EAGAIN retries.
    pub retries: u64,
    /// Replies with a wrong payload or an unexpected ERROR.
    pub errors: u64,
    /// The first such error, for the report.
    pub first_error: Option<String>,
}

/// Decimal digits of `n` into `out` (no allocation).
fn push_decimal(out: &mut [u8; 20], mut n: usize) -> &[u8] {
    let mut i = out.len();
    loop {
        i -= 1;
        out[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &out[i..];
        }
    }
}

/// Whether a DIRECTORY reply lists exactly `k0`..`k31`.
fn directory_ok(body: &[u8]) -> bool {
    let Some(body) = body.strip_suffix(&[0]) else {
        return false;
    };
    let mut seen = 0u64;
    let mut count = 0;
    for name in body.split(|b| *b == 0) {
        let n = name
            .strip_prefix(b"k")
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| d.parse::<usize>().ok());
        match n {
            Some(n) if n < KEYS && seen & (1 << n) == 0 => seen |= 1 << n,
            _ => return false,
        }
        count += 1;
    }
    count == KEYS
}

/// What a reply lets an operation do next.
enum Next {
    /// The operation is complete.
    Done,
    /// Send the next request of a transaction.
    Tx(u32),
    /// The commit met a conflict: start the transaction again.
    Retry,
    /// Wrong reply: counted, the operation abandoned.
    Bad(String),
}

/// One client's run: `ops` operations (or until `deadline`) on client
/// `k`'s keys with `depth` of them in flight, on its own connection.
struct Runner {
    conn: Conn,
    work: Workload,
    slots: Vec<Option<Slot>>,
    next_step: usize,
    ops: usize,
    deadline: Instant,
    stopped: bool,
    result: ClientResult,
}

impl Runner {
    /// Start the next operation in `slot`, if any are left.
    fn start(&mut self, slot: usize, now: Instant) {
        self.slots[slot] = None;
        if self.stopped || self.next_step >= self.ops {
            return;
        }
        if self.next_step.is_multiple_of(64) && Instant::now() > self.deadline {
            self.stopped = true;
            return;
        }
        let step = self.next_step;
        self.next_step += 1;
        let kind = Kind::for_step(step);
        let key = step.wrapping_mul(7) % KEYS;
        let mut s = Slot {
            kind,
            key,
            step,
            started: now,
            stage: Stage::Single,
            tx: 0,
            retries: 0,
        };
        let w = &self.work;
        match kind {
            Kind::Read => self.conn.queue(slot, READ, 0, &[&w.paths[key]]),
            Kind::Write => {
                let mut digits = [0u8; 20];
                let d = push_decimal(&mut digits, step);
                self.conn
                    .queue(slot, WRITE, 0, &[&w.paths[key], &w.prefixes[key], b"w", d]);
            }
            Kind::Directory => self.conn.queue(slot, DIRECTORY, 0, &[&w.dir]),
            Kind::Transaction => {
                s.stage = Stage::TxStart;
                self.conn.queue(slot, TRANSACTION_START, 0, &[b"\0"]);
            }
        }
        self.slots[slot] = Some(s);
    }

    /// Judge a reply to `sent` for the operation in its slot.
    fn judge(&self, s: &Slot, sent: &Sent, ty: u32, body: &[u8]) -> Next {
        let what = |why: &str| {
            Next::Bad(format!(
                "{} step {} (request type {}): {why}: {:?}",
                s.kind.name(),
                s.step,
                sent.ty,
                String::from_utf8_lossy(body)
            ))
        };
        if s.stage == Stage::TxAbort {
            return Next::Done;
        }
        if ty == ERROR {
            if s.stage == Stage::TxEnd && body == b"EAGAIN\0" {
                return Next::Retry;
            }
            return what("unexpected ERROR");
        }
        match s.stage {
            Stage::Single => match s.kind {
                Kind::Read if body.starts_with(&self.work.prefixes[s.key]) => Next::Done,
                Kind::Write if body == b"OK\0" => Next::Done,
                Kind::Directory if directory_ok(body) => Next::Done,
                _ => what("wrong payload"),
            },
            Stage::TxStart => {
                let id = std::str::from_utf8(body.strip_suffix(&[0]).unwrap_or(body))
                    .ok()
                    .and_then(|t| t.parse::<u32>().ok())
                    .filter(|t| *t != 0);
                match id {
                    Some(id) => Next::Tx(id),
                    None => what("bad transaction id"),
                }
            }
            Stage::TxRead if body.starts_with(&self.work.prefixes[s.key]) => Next::Tx(s.tx),
            Stage::TxWrite if body == b"OK\0" => Next::Tx(s.tx),
            Stage::TxEnd if body == b"OK\0" => Next::Done,
            _ => what("wrong payload"),
        }
    }

    /// Handle one reply; `Err` when the stream is out of step.
    fn on_reply(&mut self, r: Reply, now: Instant) -> io::Result<()> {
        let sent = self
            .conn
            .sent
            .pop_front()
            .ok_or_else(|| io::Error::other("reply with no request outstanding"))?;
        if r.req_id != sent.req_id || r.tx_id != sent.tx_id || (r.ty != sent.ty && r.ty != ERROR) {
            return Err(io::Error::other(format!(
                "reply out of order: sent type {} req_id {} tx_id {}, got type {} req_id {} tx_id {}",
                sent.ty, sent.req_id, sent.tx_id, r.ty, r.req_id, r.tx_id
            )));
        }
        let mut s = self.slots[sent.slot].expect("a request's slot is busy");
        let body = &self.conn.rbuf[r.body_start..r.body_end];
        let next = self.judge(&s, &sent, r.ty, body);
        match next {
            Next::Done => {
                if s.stage != Stage::TxAbort {
                    let ns = u64::try_from((now - s.started).as_nanos()).unwrap_or(u64::MAX);
                    self.result.latencies[s.kind.index()].push(ns);
                    self.result.retries += u64::from(s.retries);
                }
                self.start(sent.slot, now);
                return Ok(());
            }
            Next::Retry => {
                s.retries += 1;
                if s.retries >= 16 {
                    return Err(io::Error::other("transaction retried 16 times"));
                }
                s.stage = Stage::TxStart;
                s.tx = 0;
                self.conn.queue(sent.slot, TRANSACTION_START, 0, &[b"\0"]);
            }
            Next::Tx(tx) => {
                s.tx = tx;
                let (path, prefix) = (&self.work.paths[s.key], &self.work.prefixes[s.key]);
                match s.stage {
                    Stage::TxStart => {
                        s.stage = Stage::TxRead;
                        self.conn.queue(sent.slot, READ, tx, &[path]);
                    }
                    Stage::TxRead => {
                        s.stage = Stage::TxWrite;
                        let mut digits = [0u8; 20];
                        let d = push_decimal(&mut digits, s.step);
                        self.conn
                            .queue(sent.slot, WRITE, tx, &[path, prefix, b"t", d]);
                    }
                    _ => {
                        s.stage = Stage::TxEnd;
                        self.conn.queue(sent.slot, TRANSACTION_END, tx, &[b"T\0"]);
                    }
                }
            }
            Next::Bad(why) => {
                self.result.errors += 1;
                self.result.first_error.get_or_insert(why);
                if s.tx != 0 && s.stage != Stage::TxEnd {
                    // Give the transaction back before moving on.
                    s.stage = Stage::TxAbort;
                    self.conn.queue(sent.slot, TRANSACTION_END, s.tx, &[b"F\0"]);
                } else {
                    self.start(sent.slot, now);
                    return Ok(());
                }
            }
        }
        self.slots[sent.slot] = Some(s);
        Ok(())
    }
}

/// Run clients `clients` from one thread: each has its own connection
/// and runs `ops` operations (or until `deadline`) with `depth` of them in
/// flight. The thread waits for all its connections in one epoll set and,
/// per wake-up, reads each ready connection once, handles every whole
/// reply and writes the requests they allow in one `write`: a thread per
/// client would spend the machine's cores on context switches instead.
pub fn run_clients(
    path: &Path,
    clients: &[usize],
    ops: usize,
    depth: usize,
    deadline: Instant,
) -> io::Result<Vec<ClientResult>> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(clients.len().max(1));
    let mut runners = Vec::with_capacity(clients.len());
    for (i, &k) in clients.iter().enumerate() {
        let mut conn = Conn::connect(path)?;
        poll.registry()
            .register(&mut conn.stream, Token(i), Interest::READABLE)?;
        let mut r = Runner {
            conn,
            work: Workload::new(k),
            slots: vec![None; depth.clamp(1, MAX_DEPTH)],
            next_step: 0,
            ops,
            deadline,
            stopped: false,
            result: ClientResult::default(),
        };
        for v in r.result.latencies.iter_mut() {
            v.reserve((ops / 4 + 1).min(1 << 16));
        }
        runners.push(r);
    }
    let now = Instant::now();
    let mut active = 0;
    for r in runners.iter_mut() {
        for slot in 0..r.slots.len() {
            r.start(slot, now);
        }
        r.conn.flush()?;
        if !r.conn.sent.is_empty() {
            active += 1;
        }
    }
    while active > 0 {
        match poll.poll(&mut events, Some(Duration::from_secs(10))) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        if events.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no reply within 10 s",
            ));
        }
        let now = Instant::now();
        for ev in events.iter() {
            let Some(r) = runners.get_mut(ev.token().0) else {
                continue;
            };
            if r.conn.sent.is_empty() {
                continue;
            }
            r.conn.read_available()?;
            while let Some(reply) = r.conn.next_reply()? {
                r.on_reply(reply, now)?;
            }
            r.conn.flush()?;
            if r.conn.sent.is_empty() {
                active -= 1;
            }
        }
    }
    Ok(runners.into_iter().map(|r| r.result).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_check() {
        let mut all: Vec<u8> = Vec::new();
        for n in (0..KEYS).rev() {
            all.extend_from_slice(format!("k{n}\0").as_bytes());
        }
        assert!(directory_ok(&all));
        assert!(!directory_ok(&all[..all.len() - 4]));
        let mut dup = all.clone();
        dup.extend_from_slice(b"k3\0");
        assert!(!directory_ok(&dup));
        assert!(!directory_ok(b""));
    }

    /// How a fake daemon answers: (type, req_id, tx_id) of the request
    /// to (type, req_id, body) of the reply.
    type Answer = fn(u32, u32, u32) -> (u32, u32, Vec<u8>);

    /// A fake daemon on a fresh socket: answers each request it reads.
    fn fake_daemon(name: &str, reply: Answer) -> (std::path::PathBuf, std::thread::JoinHandle<()>) {
        let dir = std::env::temp_dir().join(format!("xsb-{name}-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("sock");
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        let handle = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            let mut header = [0u8; HEADER];
            while s.read_exact(&mut header).is_ok() {
                let word =
                    |i: usize| u32::from_le_bytes(header[i * 4..i * 4 + 4].try_into().expect("4"));
                let mut body = vec![0u8; word(3) as usize];
                s.read_exact(&mut body).expect("body");
                let (ty, req_id, out) = reply(word(0), word(1), word(2));
                let mut msg = Vec::new();
                for w in [ty, req_id, word(2), out.len() as u32] {
                    msg.extend_from_slice(&w.to_le_bytes());
                }
                msg.extend_from_slice(&out);
                if s.write_all(&msg).is_err() {
                    break;
                }
            }
        });
        (path, handle)
    }

    #[test]
    fn a_reply_out_of_order_fails_the_client() {
        let (path, daemon) =
            fake_daemon("order", |ty, req_id, _| (ty, req_id + 1, b"k0:x".to_vec()));
        let deadline = Instant::now() + Duration::from_secs(5);
        let err = run_clients(&path, &[0], 4, 2, deadline).expect_err("must fail");
        assert!(err.to_string().contains("out of order"), "{err}");
        daemon.join().expect("daemon");
    }

    #[test]
    fn a_wrong_payload_is_counted() {
        // Step 0 is a READ of k0: answer with another key's value.
        let (path, daemon) = fake_daemon("payload", |ty, req_id, _| (ty, req_id, b"k5:x".to_vec()));
        let deadline = Instant::now() + Duration::from_secs(5);
        let results = run_clients(&path, &[0], 1, 1, deadline).expect("in order");
        assert_eq!(results[0].errors, 1);
        assert!(results[0].latencies.iter().all(Vec::is_empty));
        drop(results);
        daemon.join().expect("daemon");
    }

    #[test]
    fn decimal_digits() {
        let mut d = [0u8; 20];
        assert_eq!(push_decimal(&mut d, 0), b"0");
        assert_eq!(push_decimal(&mut d, 90210), b"90210");
    }
}

//! A minimal synchronous xenstore wire client and the benchmark workload.
//!
//! Read first: xs_wire.h. One request at a time per connection; watch
//! events are not used, so every message read is the reply. Replies are
//! read through a buffer so one `read` usually brings a whole reply: the
//! client's own syscalls are part of what the benchmark measures.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// XS_DIRECTORY.
const DIRECTORY: u32 = 1;
/// XS_READ.
const READ: u32 = 2;
/// XS_TRANSACTION_START.
const TRANSACTION_START: u32 = 6;
/// XS_TRANSACTION_END.
const TRANSACTION_END: u32 = 7;
/// XS_WRITE.
const WRITE: u32 = 11;
/// XS_ERROR.
const ERROR: u32 = 16;

/// Keys each client owns under `/bench/c<k>`.
pub const KEYS: usize = 32;

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
}

/// One connection to a xenstored.
pub struct Client {
    stream: UnixStream,
    req_id: u32,
    buf: Vec<u8>,
    rbuf: Vec<u8>,
    rfill: usize,
}

impl Client {
    /// Connect, with read/write timeouts so a stuck daemon cannot hang us.
    pub fn connect(path: &Path) -> io::Result<Client> {
        let stream = UnixStream::connect(path)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_write_timeout(Some(Duration::from_secs(10)))?;
        Ok(Client {
            stream,
            req_id: 0,
            buf: Vec::with_capacity(4096 + 16),
            rbuf: vec![0; 2 * (4096 + 16)],
            rfill: 0,
        })
    }

    /// Send one request; the reply's type and payload.
    pub fn request(&mut self, ty: u32, tx_id: u32, payload: &[u8]) -> io::Result<(u32, Vec<u8>)> {
        self.req_id = self.req_id.wrapping_add(1);
        self.buf.clear();
        let len = u32::try_from(payload.len()).map_err(|_| io::Error::other("payload too long"))?;
        for w in [ty, self.req_id, tx_id, len] {
            self.buf.extend_from_slice(&w.to_le_bytes());
        }
        self.buf.extend_from_slice(payload);
        self.stream.write_all(&self.buf)?;
        // One read usually brings the whole reply: keep what arrives in
        // `rbuf` and cut whole messages from it.
        loop {
            if self.rfill >= 16 {
                let h = &self.rbuf[..16];
                let word = |i: usize| {
                    u32::from_le_bytes([h[i * 4], h[i * 4 + 1], h[i * 4 + 2], h[i * 4 + 3]])
                };
                let (ty, req_id, len) = (word(0), word(1), word(3) as usize);
                if len > 4096 {
                    return Err(io::Error::other("reply longer than XENSTORE_PAYLOAD_MAX"));
                }
                if self.rfill >= 16 + len {
                    let body = self.rbuf[16..16 + len].to_vec();
                    self.rbuf.copy_within(16 + len..self.rfill, 0);
                    self.rfill -= 16 + len;
                    if req_id != self.req_id {
                        return Err(io::Error::other("reply for another request"));
                    }
                    return Ok((ty, body));
                }
            }
            let n = self.stream.read(&mut self.rbuf[self.rfill..])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "daemon closed the connection",
                ));
            }
            self.rfill += n;
        }
    }

    fn expect_ok(&mut self, ty: u32, tx_id: u32, payload: &[u8]) -> io::Result<Vec<u8>> {
        let (rty, body) = self.request(ty, tx_id, payload)?;
        if rty == ERROR {
            return Err(io::Error::other(format!(
                "xenstore error {}",
                String::from_utf8_lossy(&body)
            )));
        }
        Ok(body)
    }

    /// Create this client's keys.
    pub fn setup(&mut self, client: usize) -> io::Result<()> {
        for key in 0..KEYS {
            self.expect_ok(
                WRITE,
                0,
                format!("/bench/c{client}/k{key}\0initial-value").as_bytes(),
            )?;
        }
        Ok(())
    }

    /// Run one operation of `kind` on key `key`; the number of EAGAIN
    /// retries a transaction needed.
    pub fn op(&mut self, client: usize, kind: Kind, key: usize) -> io::Result<u32> {
        let path = format!("/bench/c{client}/k{}", key % KEYS);
        match kind {
            Kind::Read => {
                self.expect_ok(READ, 0, format!("{path}\0").as_bytes())?;
            }
            Kind::Write => {
                self.expect_ok(WRITE, 0, format!("{path}\0value-{key}").as_bytes())?;
            }
            Kind::Directory => {
                self.expect_ok(DIRECTORY, 0, format!("/bench/c{client}\0").as_bytes())?;
            }
            Kind::Transaction => {
                for retry in 0..16 {
                    let id = self.expect_ok(TRANSACTION_START, 0, b"\0")?;
                    let tx: u32 = std::str::from_utf8(id.strip_suffix(&[0]).unwrap_or(&id))
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(|| io::Error::other("bad transaction id"))?;
                    self.expect_ok(READ, tx, format!("{path}\0").as_bytes())?;
                    self.expect_ok(WRITE, tx, format!("{path}\0tx-{key}").as_bytes())?;
                    let (rty, body) = self.request(TRANSACTION_END, tx, b"T\0")?;
                    if rty != ERROR {
                        return Ok(retry);
                    }
                    if body != b"EAGAIN\0" {
                        return Err(io::Error::other(format!(
                            "commit: {}",
                            String::from_utf8_lossy(&body)
                        )));
                    }
                }
                return Err(io::Error::other("transaction retried 16 times"));
            }
        }
        Ok(0)
    }
}

/// What one client measured.
#[derive(Debug, Default)]
pub struct ClientResult {
    /// Latency in nanoseconds per kind (index as `Kind::ALL`).
    pub latencies: [Vec<u64>; 4],
    /// EAGAIN retries.
    pub retries: u64,
}

/// Run `ops` operations (or until `deadline`) as client `k`.
pub fn run_client(
    path: &Path,
    k: usize,
    ops: usize,
    deadline: Instant,
) -> io::Result<ClientResult> {
    let mut c = Client::connect(path)?;
    let mut result = ClientResult::default();
    for v in result.latencies.iter_mut() {
        v.reserve(ops / 4 + 1);
    }
    for step in 0..ops {
        if step % 64 == 0 && Instant::now() > deadline {
            break;
        }
        let kind = Kind::for_step(step);
        let t = Instant::now();
        result.retries += u64::from(c.op(k, kind, step.wrapping_mul(7))?);
        let ns = u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let i = Kind::ALL
            .iter()
            .position(|x| *x == kind)
            .expect("kind is in ALL");
        result.latencies[i].push(ns);
    }
    Ok(result)
}

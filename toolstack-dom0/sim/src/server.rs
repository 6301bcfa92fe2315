//! The TCP board: a thread per connection (bounded), each feeding its
//! buffered bytes to the shared engine. A parked request (`event.from`)
//! waits on a condition variable that every committed change signals.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use xenapi::engine::{Engine, Handled};
use xenapi::http;
use xenapi::hypervisor::FakeHypervisor;
use xenapi::transfer::ExportStep;
use xenapi::value::Instant;

use crate::entropy::OsEntropy;
use crate::storage::FileStorage;

/// The engine as the simulator runs it.
pub type SimEngine = Engine<FakeHypervisor, FileStorage, OsEntropy>;

/// Most simultaneous connections; more get 503.
pub const MAX_CONNECTIONS: usize = 256;
/// A connection idle this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Largest buffered input per connection.
const MAX_BUFFER: usize = http::MAX_HEAD + http::MAX_BODY + 4096;

/// State shared by connection threads.
pub struct Shared {
    engine: Mutex<SimEngine>,
    changed: Condvar,
    connections: AtomicUsize,
}

/// The current time for the engine.
pub fn now() -> Instant {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    Instant(ms)
}

impl Shared {
    /// Wraps an engine.
    pub fn new(engine: SimEngine) -> Arc<Shared> {
        Arc::new(Shared {
            engine: Mutex::new(engine),
            changed: Condvar::new(),
            connections: AtomicUsize::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SimEngine> {
        // A panic aborts the process (panic = "abort"), so poisoning cannot
        // be observed; recover the guard anyway.
        self.engine.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Every second, as dom0's board does: the guests' agent keys and the
/// performance samples `/rrd_updates` serves (`Engine::monitor`); wakes
/// parked `event.from` calls when a record changed. Runs forever.
pub fn monitor(shared: Arc<Shared>) {
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let changed = shared.lock().monitor(now()).unwrap_or(false);
        if changed {
            shared.changed.notify_all();
        }
    }
}

/// Accepts connections forever.
pub fn serve(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        if shared.connections.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            shared.connections.fetch_sub(1, Ordering::SeqCst);
            let _ = stream.write_all(&http::response(
                503,
                "text/plain",
                b"too many connections\n",
                false,
            ));
            continue;
        }
        let sh = shared.clone();
        let spawned = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                connection(&sh, stream);
                sh.connections.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            shared.connections.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Moves an import's `len` body bytes (those in `buf` first) to the
/// engine and writes its reply; bytes past the body stay in `buf`. False
/// when the connection is to close.
fn import(sh: &Shared, stream: &mut TcpStream, buf: &mut Vec<u8>, transfer: u32, len: u64) -> bool {
    let mut left = len;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = left.min(buf.len() as u64) as usize;
        if n > 0 {
            let failed = sh.lock().import_bytes(now(), transfer, &buf[..n]);
            buf.drain(..n);
            left -= n as u64;
            if let Some(reply) = failed {
                let _ = reply.chunks().all(|c| stream.write_all(c).is_ok());
                return false;
            }
        }
        if left == 0 {
            break;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => {
                sh.lock().transfer_gone(now(), transfer);
                return false;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let (reply, close) = sh.lock().import_end(now(), transfer);
    sh.changed.notify_all();
    reply.chunks().all(|c| stream.write_all(c).is_ok()) && !close
}

/// Sends an export's head and image. False when the connection is to
/// close.
fn export(sh: &Shared, stream: &mut TcpStream, transfer: u32, head: &[u8]) -> bool {
    if stream.write_all(head).is_err() {
        sh.lock().transfer_gone(now(), transfer);
        return false;
    }
    loop {
        let step = sh.lock().export_bytes(now(), transfer, 64 * 1024);
        match step {
            ExportStep::Data(bytes) => {
                if stream.write_all(&bytes).is_err() {
                    sh.lock().transfer_gone(now(), transfer);
                    return false;
                }
            }
            ExportStep::End { close } => {
                sh.changed.notify_all();
                return !close;
            }
            ExportStep::Failed => return false,
        }
    }
}

fn connection(sh: &Shared, mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    // Whether `100 Continue` was sent for the request being read.
    let mut continued = false;
    loop {
        // Serve every whole request already buffered.
        let mut parked_since: Option<Instant> = None;
        loop {
            let mut eng = sh.lock();
            let gen0 = eng.generation();
            let t = now();
            match eng.handle(t, parked_since, &buf) {
                Handled::NeedMore { send_continue } => {
                    drop(eng);
                    if send_continue && !continued {
                        continued = true;
                        if stream.write_all(http::CONTINUE).is_err() {
                            return;
                        }
                    }
                    break;
                }
                Handled::Attach { .. } => {
                    // The simulator's fake domains have no console to
                    // stream: say so and close.
                    drop(eng);
                    let _ = stream.write_all(&http::response(
                        501,
                        "text/plain",
                        b"the simulator streams no text consoles\n",
                        false,
                    ));
                    return;
                }
                Handled::Import {
                    consumed,
                    transfer,
                    len,
                    send_continue,
                } => {
                    drop(eng);
                    buf.drain(..consumed.min(buf.len()));
                    if send_continue && stream.write_all(http::CONTINUE).is_err() {
                        sh.lock().transfer_gone(now(), transfer);
                        return;
                    }
                    if !import(sh, &mut stream, &mut buf, transfer, len) {
                        return;
                    }
                    parked_since = None;
                    continued = false;
                }
                Handled::Export {
                    consumed,
                    transfer,
                    head,
                } => {
                    drop(eng);
                    buf.drain(..consumed.min(buf.len()));
                    if !export(sh, &mut stream, transfer, &head) {
                        return;
                    }
                    parked_since = None;
                    continued = false;
                }
                Handled::Park { until } => {
                    parked_since.get_or_insert(t);
                    let wait = Duration::from_millis(until.0.saturating_sub(t.0).max(1));
                    let _unused = sh
                        .changed
                        .wait_timeout_while(eng, wait, |e| e.generation() == gen0);
                }
                Handled::Reply {
                    consumed,
                    bytes,
                    close,
                } => {
                    let changed = eng.generation() != gen0;
                    let jobs = eng.has_jobs();
                    drop(eng);
                    if changed {
                        sh.changed.notify_all();
                    }
                    let written = bytes.chunks().all(|c| stream.write_all(c).is_ok());
                    if jobs {
                        sh.lock().run_jobs(now());
                        sh.changed.notify_all();
                    }
                    if !written || close {
                        return;
                    }
                    buf.drain(..consumed.min(buf.len()));
                    parked_since = None;
                    continued = false;
                }
            }
        }
        if buf.len() >= MAX_BUFFER {
            return;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

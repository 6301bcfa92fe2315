//! The host's end of `cargo xtask bench net`: one TCP server on 127.0.0.1
//! that the guests reach at QEMU's gateway (10.0.2.2 on its user network).
//!
//! One request line per connection, as the guests' `nb` program speaks it
//! (netbench.c):
//! - `G n`: the server sends n bytes and closes (host → guest throughput);
//! - `P n`: the guest sends n bytes, the server answers `OK` (guest → host);
//! - `SET key value` / `GET key`: the rendezvous (guest B's address for A),
//!   `GET` answers the value or an empty line;
//! - `RESULT words...`: a measurement the guest made, kept in order;
//! - `DONE`: the guest finished its measurements.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// What the guests told the server.
#[derive(Default)]
struct State {
    keys: HashMap<String, String>,
    results: Vec<String>,
    done: bool,
}

/// The server: its port, and what the guests told it.
pub(super) struct HostServer {
    /// The port on 127.0.0.1 (and on 10.0.2.2 for the guests).
    pub port: u16,
    state: Arc<(Mutex<State>, Condvar)>,
}

impl HostServer {
    /// Binds 127.0.0.1:0 and serves in background threads for the life of
    /// the process (each request is short; the threads end with it).
    pub fn start() -> Result<HostServer, String> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let state: Arc<(Mutex<State>, Condvar)> = Arc::default();
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = shared.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &shared);
                });
            }
        });
        Ok(HostServer { port, state })
    }

    /// Forgets what an earlier side told it.
    pub fn reset(&self) {
        let (lock, _) = &*self.state;
        *lock.lock().expect("host server state") = State::default();
    }

    /// Waits until a guest says `DONE` (true) or `timeout` passes (false).
    pub fn wait_done(&self, timeout: Duration) -> bool {
        let (lock, cv) = &*self.state;
        let deadline = Instant::now() + timeout;
        let mut s = lock.lock().expect("host server state");
        while !s.done {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            s = cv.wait_timeout(s, left).expect("host server state").0;
        }
        true
    }

    /// The `RESULT` lines so far (without the word RESULT).
    pub fn results(&self) -> Vec<String> {
        let (lock, _) = &*self.state;
        lock.lock().expect("host server state").results.clone()
    }
}

/// Bytes a guest may ask for or send in one request (1 GiB).
const MAX_BYTES: u64 = 1 << 30;

fn serve(stream: TcpStream, shared: &(Mutex<State>, Condvar)) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(600)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let line = line.trim_end();
    let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
    let (lock, cv) = shared;
    match word {
        "G" => {
            let n: u64 = rest.parse().unwrap_or(0).min(MAX_BYTES);
            let chunk = vec![0x5au8; 64 << 10];
            let mut left = n;
            while left > 0 {
                let k = left.min(chunk.len() as u64) as usize;
                out.write_all(&chunk[..k])?;
                left -= k as u64;
            }
        }
        "P" => {
            let n: u64 = rest.parse().unwrap_or(0).min(MAX_BYTES);
            let got = std::io::copy(&mut reader.by_ref().take(n), &mut std::io::sink())?;
            if got == n {
                out.write_all(b"OK\n")?;
            }
        }
        "SET" => {
            if let Some((k, v)) = rest.split_once(' ') {
                let mut s = lock.lock().expect("host server state");
                s.keys.insert(k.to_string(), v.to_string());
            }
            out.write_all(b"OK\n")?;
        }
        "GET" => {
            let v = lock
                .lock()
                .expect("host server state")
                .keys
                .get(rest)
                .cloned()
                .unwrap_or_default();
            out.write_all(format!("{v}\n").as_bytes())?;
        }
        "RESULT" => {
            lock.lock()
                .expect("host server state")
                .results
                .push(rest.to_string());
            out.write_all(b"OK\n")?;
        }
        "DONE" => {
            lock.lock().expect("host server state").done = true;
            cv.notify_all();
            out.write_all(b"OK\n")?;
        }
        _ => out.write_all(b"?\n")?,
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(port: u16, line: &str) -> Vec<u8> {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(format!("{line}\n").as_bytes()).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn speaks_the_guests_protocol() {
        let h = HostServer::start().unwrap();
        assert_eq!(ask(h.port, "G 100000").len(), 100000);
        assert_eq!(ask(h.port, "GET ip-b"), b"\n");
        assert_eq!(ask(h.port, "SET ip-b 10.0.2.16"), b"OK\n");
        assert_eq!(ask(h.port, "GET ip-b"), b"10.0.2.16\n");
        let mut s = TcpStream::connect(("127.0.0.1", h.port)).unwrap();
        s.write_all(b"P 5\nhello").unwrap();
        let mut ok = Vec::new();
        s.read_to_end(&mut ok).unwrap();
        assert_eq!(ok, b"OK\n");
        assert_eq!(ask(h.port, "RESULT g2g 1 5 0.1"), b"OK\n");
        assert!(!h.wait_done(Duration::from_millis(10)));
        ask(h.port, "DONE");
        assert!(h.wait_done(Duration::from_secs(5)));
        assert_eq!(h.results(), ["g2g 1 5 0.1"]);
        h.reset();
        assert!(h.results().is_empty());
    }
}

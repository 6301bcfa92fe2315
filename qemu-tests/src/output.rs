//! What a child process (QEMU, or a client beside it) prints: its stdout
//! and stderr lines, collected by reader threads, waited on by markers;
//! and killing the child's process group.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Lines {
    lines: Vec<String>,
    /// Every stream ended.
    closed: bool,
}

/// The lines collected so far and a condvar signalled on each change.
#[derive(Default)]
pub(crate) struct Output {
    state: Mutex<Lines>,
    cv: Condvar,
}

impl Output {
    /// Collects `child`'s stdout and stderr (both piped) line by line
    /// (lossy UTF-8, a trailing CR dropped) until both end.
    pub(crate) fn collect(child: &mut Child) -> Arc<Output> {
        let output = Arc::new(Output::default());
        let streams: [Box<dyn Read + Send>; 2] = [
            Box::new(child.stdout.take().expect("stdout piped")),
            Box::new(child.stderr.take().expect("stderr piped")),
        ];
        let open = Arc::new(AtomicUsize::new(streams.len()));
        for stream in streams {
            let output = Arc::clone(&output);
            let open = Arc::clone(&open);
            let t0 = std::time::Instant::now();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).split(b'\n') {
                    let Ok(line) = line else { break };
                    let mut text = String::from_utf8_lossy(&line)
                        .trim_end_matches('\r')
                        .to_string();
                    if std::env::var_os("XCP_HOST_TIME").is_some() {
                        text = format!("{} {{host {:.3}}}", text, t0.elapsed().as_secs_f64());
                    }
                    output.state.lock().expect("lines lock").lines.push(text);
                    output.cv.notify_all();
                }
                if open.fetch_sub(1, Ordering::SeqCst) == 1 {
                    output.state.lock().expect("lines lock").closed = true;
                    output.cv.notify_all();
                }
            });
        }
        output
    }

    /// Waits until `n` lines (counting from 1) contain `marker`; returns
    /// the `n`th, or every line so far once `timeout` passed or the output
    /// ended without it.
    pub(crate) fn wait_for_nth(
        &self,
        marker: &str,
        n: usize,
        timeout: Duration,
    ) -> Result<String, Vec<String>> {
        let deadline = Instant::now() + timeout;
        let mut guard = self.state.lock().expect("lines lock");
        loop {
            if let Some(l) = guard.lines.iter().filter(|l| l.contains(marker)).nth(n - 1) {
                return Ok(l.clone());
            }
            let now = Instant::now();
            if now >= deadline || guard.closed {
                return Err(guard.lines.clone());
            }
            guard = self
                .cv
                .wait_timeout(guard, deadline - now)
                .expect("lines lock")
                .0;
        }
    }

    /// Every line so far.
    pub(crate) fn lines(&self) -> Vec<String> {
        self.state.lock().expect("lines lock").lines.clone()
    }

    /// Every line, after waiting up to `within` for the output to end (the
    /// child exited: let the readers drain the pipes).
    pub(crate) fn drained(&self, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        let mut guard = self.state.lock().expect("lines lock");
        while !guard.closed && Instant::now() < deadline {
            guard = self
                .cv
                .wait_timeout(guard, Duration::from_millis(100))
                .expect("lines lock")
                .0;
        }
        guard.lines.clone()
    }
}

/// Kills `child`'s process group (it was spawned as its leader: `timeout`
/// and what runs under it) and reaps it.
pub(crate) fn kill_group(child: &mut Child) {
    let group = format!("-{}", child.id());
    let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
    let _ = child.wait();
}

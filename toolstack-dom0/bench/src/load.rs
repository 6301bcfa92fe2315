//! One call mix for any XenAPI endpoint, and a readiness probe.
//!
//! `xenapi-bench calls --addr IP:PORT --password PW [--seconds 3]
//! [--clients 4] [--out calls.json]`: a fixed mix of small calls over
//! keep-alive HTTP — `host.get_record` (XML-RPC), `VM.get_all_records`
//! (JSON-RPC), `session.get_this_host` (JSON-RPC), in turn — first from one
//! client, then from `--clients` clients at once, each phase `--seconds`
//! long. Each client logs in once, outside the timed loop. Reports calls/s
//! and the p50/p99 of every call's round trip. `cargo xtask bench netdom`
//! runs it against dom0 through netdom (QEMU) and against xcp-sim on
//! loopback, so the two figures come from the same load.
//!
//! `xenapi-bench wait-login --addr IP:PORT --password PW [--timeout 120]`:
//! logs in over and over until a login returns a session ref (exit 0) or
//! `--timeout` seconds pass (exit 1). An attempt that gets no reply in
//! `ATTEMPT` is dropped and a fresh connection tried: QEMU's forwarder
//! accepts on the host before the guest listens, and a SYN it sent to a
//! guest that was not up yet is retried only after seconds.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::client::Conn;

/// How long one readiness attempt waits for its reply (the probe's
/// resolution); after `PATIENT_AFTER` it waits `PATIENT` instead, so a slow
/// but working path is still seen.
const ATTEMPT: Duration = Duration::from_millis(100);
const PATIENT_AFTER: Duration = Duration::from_secs(30);
const PATIENT: Duration = Duration::from_secs(3);

/// The calls in the mix, in turn.
const MIX: [&str; 3] = [
    "host.get_record",
    "VM.get_all_records",
    "session.get_this_host",
];

struct Args {
    addr: String,
    password: String,
    seconds: f64,
    clients: usize,
    timeout: f64,
    out: Option<String>,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut a = Args {
        addr: String::new(),
        password: String::new(),
        seconds: 3.0,
        clients: 4,
        timeout: 120.0,
        out: None,
    };
    let mut it = args.iter();
    while let Some(k) = it.next() {
        let v = it.next().ok_or_else(|| format!("{k} needs a value"))?;
        match k.as_str() {
            "--addr" => a.addr = v.clone(),
            "--password" => a.password = v.clone(),
            "--seconds" => a.seconds = v.parse().map_err(|_| "bad --seconds")?,
            "--clients" => a.clients = v.parse().map_err(|_| "bad --clients")?,
            "--timeout" => a.timeout = v.parse().map_err(|_| "bad --timeout")?,
            "--out" => a.out = Some(v.clone()),
            _ => return Err(format!("unknown argument {k}")),
        }
    }
    if a.addr.is_empty() || a.password.is_empty() {
        return Err("--addr and --password are required".into());
    }
    if a.clients == 0 {
        return Err("--clients must be at least 1".into());
    }
    Ok(a)
}

/// `wait-login`: see the module docs.
pub fn wait_login(args: &[String]) -> Result<(), String> {
    let a = parse(args)?;
    let start = Instant::now();
    let deadline = Duration::from_secs_f64(a.timeout);
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let wait = if start.elapsed() < PATIENT_AFTER {
            ATTEMPT
        } else {
            PATIENT
        };
        let tried = Instant::now();
        match Conn::open_with_timeout(&a.addr, wait)
            .map_err(|e| e.to_string())
            .and_then(|mut c| crate::login(&mut c, &a.password))
        {
            Ok(_) => {
                println!(
                    "login OK after {:.3} s ({attempts} attempts)",
                    start.elapsed().as_secs_f64()
                );
                return Ok(());
            }
            Err(e) if start.elapsed() > deadline => {
                return Err(format!("no login in {:.0} s: {e}", a.timeout))
            }
            // A refused connect (QEMU not listening yet) comes back at once:
            // do not spin on it.
            Err(_) => std::thread::sleep(Duration::from_millis(10).saturating_sub(tried.elapsed())),
        }
    }
}

/// The start line of a phase: every client passes it exactly once, also a
/// client that failed before reaching it (on drop), so no one waits forever.
struct Gate<'a> {
    barrier: &'a Barrier,
    passed: bool,
}

impl Gate<'_> {
    fn pass(&mut self) {
        if !self.passed {
            self.passed = true;
            self.barrier.wait();
        }
    }
}

impl Drop for Gate<'_> {
    fn drop(&mut self) {
        self.pass();
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    match sorted.len() {
        0 => 0,
        n => sorted[((n - 1) as f64 * p).round() as usize],
    }
}

/// One client's share of a phase: (call of the mix, latency in µs) per
/// call, and the reply size of each call of the mix.
type Share = (Vec<(usize, u64)>, [usize; 3]);

/// One client of a phase.
fn client(addr: &str, password: &str, seconds: f64, barrier: &Barrier) -> Result<Share, String> {
    let mut gate = Gate {
        barrier,
        passed: false,
    };
    let mut c = Conn::open(addr).map_err(|e| e.to_string())?;
    let sid = crate::login(&mut c, password)?;
    let host = c.rpc("session.get_this_host", json!([sid, sid]))?;
    let host = host.as_str().ok_or("no host ref")?.to_string();
    gate.pass();
    let mut lat = Vec::new();
    let mut bytes = [0usize; 3];
    let start = Instant::now();
    let mut i = 0usize;
    while start.elapsed().as_secs_f64() < seconds || i < MIX.len() {
        let which = i % MIX.len();
        let t = Instant::now();
        let n = match which {
            0 => c.xmlrpc(MIX[0], &[&sid, &host]),
            1 => c.rpc_unparsed(MIX[1], json!([sid])),
            _ => c.rpc_unparsed(MIX[2], json!([sid, sid])),
        }
        .map_err(|e| format!("{}: {e}", MIX[which]))?;
        lat.push((which, t.elapsed().as_micros() as u64));
        bytes[which] = n;
        i += 1;
    }
    Ok((lat, bytes))
}

/// One phase: `clients` clients at once for `seconds`.
fn phase(a: &Args, clients: usize) -> Result<(Value, [usize; 3]), String> {
    let barrier = Arc::new(Barrier::new(clients + 1));
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let (addr, pw, b) = (a.addr.clone(), a.password.clone(), Arc::clone(&barrier));
            let seconds = a.seconds;
            std::thread::spawn(move || client(&addr, &pw, seconds, &b))
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let mut lat = Vec::new();
    let mut bytes = [0usize; 3];
    let mut failed = None;
    for h in handles {
        match h.join().map_err(|_| "a client panicked".to_string())? {
            Ok((l, b)) => {
                lat.extend(l);
                bytes = b;
            }
            Err(e) => failed = Some(e),
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    if let Some(e) = failed {
        return Err(e);
    }
    let sorted = |which: Option<usize>| {
        let mut v: Vec<u64> = lat
            .iter()
            .filter(|(w, _)| which.is_none_or(|x| x == *w))
            .map(|(_, us)| *us)
            .collect();
        v.sort_unstable();
        v
    };
    let all = sorted(None);
    let ms = |v: &[u64], p: f64| percentile(v, p) as f64 / 1000.0;
    let rate = all.len() as f64 / elapsed;
    println!(
        "  {clients} client(s): {:>6} calls in {elapsed:.2} s = {rate:>9.1} calls/s, p50 {:.3} ms, p99 {:.3} ms",
        all.len(),
        ms(&all, 0.5),
        ms(&all, 0.99)
    );
    let mut per_call = serde_json::Map::new();
    for (i, name) in MIX.iter().enumerate() {
        let v = sorted(Some(i));
        per_call.insert(
            name.to_string(),
            json!({"calls": v.len(), "p50_ms": ms(&v, 0.5), "p99_ms": ms(&v, 0.99)}),
        );
    }
    Ok((
        json!({"clients": clients, "calls": all.len(), "seconds": elapsed,
               "calls_per_s": rate, "p50_ms": ms(&all, 0.5), "p99_ms": ms(&all, 0.99),
               "per_call": per_call}),
        bytes,
    ))
}

/// `calls`: see the module docs.
pub fn calls(args: &[String]) -> Result<(), String> {
    let a = parse(args)?;
    println!("XenAPI call mix against {} ({})", a.addr, MIX.join(", "));
    let (single, bytes) = phase(&a, 1)?;
    let (many, _) = phase(&a, a.clients)?;
    let v = json!({
        "addr": a.addr,
        "mix": MIX,
        "reply_bytes": {MIX[0]: bytes[0], MIX[1]: bytes[1], MIX[2]: bytes[2]},
        "phases": [single, many],
    });
    if let Some(path) = &a.out {
        std::fs::write(
            path,
            serde_json::to_vec_pretty(&v).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn percentiles_pick_nearest_ranks() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 51);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&[7], 0.99), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn arguments_are_checked() {
        let a = parse(&args(&["--addr", "127.0.0.1:1", "--password", "pw"])).unwrap();
        assert_eq!((a.seconds, a.clients, a.timeout), (3.0, 4, 120.0));
        assert!(parse(&args(&["--addr", "127.0.0.1:1"])).is_err());
        assert!(parse(&args(&["--addr", "a", "--password", "p", "--clients", "0"])).is_err());
        assert!(parse(&args(&["--addr", "a", "--password", "p", "--bogus", "1"])).is_err());
        assert!(parse(&args(&["--addr"])).is_err());
    }
}

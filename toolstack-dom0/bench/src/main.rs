//! xenapi-bench: measures a running xcp-sim (or any XenAPI endpoint).
//!
//! `xenapi-bench calls ...` and `xenapi-bench wait-login ...`: the call mix
//! and readiness probe `cargo xtask bench netdom` runs (see `load`).
//!
//! `xenapi-bench --addr 127.0.0.1:PORT --password PW [--vms 1000]
//! [--seconds 5] [--events 50] [--out bench.json]`
//! Ensures `--vms` VMs exist, then reports VM.get_all_records calls/s (XML-RPC
//! and JSON-RPC, one keep-alive connection) and event.from latency (from a
//! change being acknowledged to a blocked event.from returning it).

#![warn(missing_docs)]

mod client;
mod load;

use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use client::Conn;

struct Args {
    addr: String,
    password: String,
    vms: usize,
    seconds: f64,
    events: usize,
    out: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        addr: String::new(),
        password: String::new(),
        vms: 1000,
        seconds: 5.0,
        events: 50,
        out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().ok_or_else(|| format!("{k} needs a value"))?;
        match k.as_str() {
            "--addr" => a.addr = v,
            "--password" => a.password = v,
            "--vms" => a.vms = v.parse().map_err(|_| "bad --vms")?,
            "--seconds" => a.seconds = v.parse().map_err(|_| "bad --seconds")?,
            "--events" => a.events = v.parse().map_err(|_| "bad --events")?,
            "--out" => a.out = Some(v),
            _ => return Err(format!("unknown argument {k}")),
        }
    }
    if a.addr.is_empty() || a.password.is_empty() {
        return Err("--addr and --password are required".into());
    }
    Ok(a)
}

fn login(c: &mut Conn, pw: &str) -> Result<String, String> {
    let v = c.rpc(
        "session.login_with_password",
        json!(["root", pw, "1.0", "xenapi-bench"]),
    )?;
    v.as_str()
        .map(String::from)
        .ok_or_else(|| "login returned no ref".into())
}

fn ensure_vms(c: &mut Conn, sid: &str, n: usize) -> Result<Vec<String>, String> {
    let all = c.rpc("VM.get_all_records", json!([sid]))?;
    let mut refs: Vec<String> = all
        .as_object()
        .ok_or("bad records")?
        .iter()
        .filter(|(_, r)| {
            r["is_control_domain"] != Value::Bool(true) && r["is_a_template"] != Value::Bool(true)
        })
        .map(|(k, _)| k.clone())
        .collect();
    while refs.len() < n {
        let rec = json!({"name_label": format!("bench-{}", refs.len()), "memory_static_max": 268435456,
                         "VCPUs_max": 1, "VCPUs_at_startup": 1, "other_config": {"bench": "1"}});
        let r = c.rpc("VM.create", json!([sid, rec]))?;
        refs.push(r.as_str().ok_or("create returned no ref")?.to_string());
    }
    Ok(refs)
}

fn rate<F: FnMut() -> Result<usize, String>>(
    seconds: f64,
    mut f: F,
) -> Result<(f64, usize), String> {
    let start = Instant::now();
    let (mut calls, mut bytes) = (0usize, 0usize);
    while start.elapsed().as_secs_f64() < seconds || calls == 0 {
        bytes = f()?;
        calls += 1;
    }
    Ok((calls as f64 / start.elapsed().as_secs_f64(), bytes))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn event_latency(a: &Args, sid: &str, vm: &str) -> Result<Vec<f64>, String> {
    let mut waiter = Conn::open(&a.addr).map_err(|e| e.to_string())?;
    let mut writer = Conn::open(&a.addr).map_err(|e| e.to_string())?;
    let first = waiter.rpc("event.from", json!([sid, ["vm"], "", 0.0]))?;
    let mut token = first["token"].as_str().ok_or("no token")?.to_string();
    let mut out = Vec::new();
    for i in 0..a.events {
        let (tx, rx) = mpsc::channel();
        let sid2 = sid.to_string();
        let tok = token.clone();
        let mut w = waiter;
        let h = std::thread::spawn(move || {
            let r = w.rpc("event.from", json!([sid2, ["vm"], tok, 30.0]));
            let _ = tx.send(Instant::now());
            (w, r)
        });
        std::thread::sleep(Duration::from_millis(20));
        let t0 = Instant::now();
        writer.rpc(
            "VM.set_name_description",
            json!([sid, vm, format!("tick {i}")]),
        )?;
        let t1 = rx
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| "event.from never returned")?;
        let (w, r) = h.join().map_err(|_| "waiter panicked")?;
        let r = r?;
        if r["events"].as_array().is_none_or(|e| e.is_empty()) {
            return Err("event.from returned no event".into());
        }
        token = r["token"].as_str().ok_or("no token")?.to_string();
        waiter = w;
        out.push(t1.saturating_duration_since(t0).as_secs_f64() * 1000.0);
    }
    Ok(out)
}

fn run() -> Result<(), String> {
    let a = parse_args()?;
    let mut c = Conn::open(&a.addr).map_err(|e| e.to_string())?;
    let sid = login(&mut c, &a.password)?;
    let refs = ensure_vms(&mut c, &sid, a.vms)?;
    let (xml_rate, xml_bytes) = rate(a.seconds, || {
        c.xmlrpc("VM.get_all_records", &[&sid])
            .map_err(|e| e.to_string())
    })?;
    let (json_rate, json_bytes) = rate(a.seconds, || {
        c.rpc_unparsed("VM.get_all_records", json!([sid]))
            .map_err(|e| e.to_string())
    })?;
    let mut lat = event_latency(&a, &sid, &refs[0])?;
    lat.sort_by(f64::total_cmp);
    let mean = lat.iter().sum::<f64>() / lat.len().max(1) as f64;
    let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
    println!("| metric                                   | value        |");
    println!("|------------------------------------------|--------------|");
    println!(
        "| VMs                                      | {:>12} |",
        refs.len()
    );
    println!("| VM.get_all_records XML-RPC calls/s       | {xml_rate:>12.2} |");
    println!("| VM.get_all_records XML-RPC reply bytes   | {xml_bytes:>12} |");
    println!("| VM.get_all_records JSON-RPC calls/s      | {json_rate:>12.2} |");
    println!("| VM.get_all_records JSON-RPC reply bytes  | {json_bytes:>12} |");
    println!("| event.from latency mean ms               | {mean:>12.3} |");
    println!("| event.from latency p50 ms                | {p50:>12.3} |");
    println!("| event.from latency p99 ms                | {p99:>12.3} |");
    if let Some(path) = &a.out {
        let v = json!({
            "vms": refs.len(),
            "get_all_records_xmlrpc_calls_per_s": xml_rate,
            "get_all_records_xmlrpc_reply_bytes": xml_bytes,
            "get_all_records_jsonrpc_calls_per_s": json_rate,
            "get_all_records_jsonrpc_reply_bytes": json_bytes,
            "event_from_latency_ms": {"mean": mean, "p50": p50, "p99": p99, "samples": lat.len()},
        });
        std::fs::write(
            path,
            serde_json::to_vec_pretty(&v).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("calls") => load::calls(&args[1..]),
        Some("wait-login") => load::wait_login(&args[1..]),
        _ => run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xenapi-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

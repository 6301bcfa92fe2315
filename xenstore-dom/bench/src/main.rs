//! xenstore-bench: throughput and p99 latency of xenstoreds on unix sockets.
//!
//! Usage: `xenstore-bench [--clients N] [--depth K] [--threads T] [--ops N]
//! [--seconds S] [--rounds R] [--out PATH] [--ours PATH] [--oxenstored
//! PATH] [--socket PATH]`. N concurrent clients (default 8), each on its
//! own connection, run a read/write/directory/transaction mix (4:3:2:1)
//! under two loads: one request at a time per client, then pipelined with
//! K operations in flight per client (default 8; xenstore's `req_id` lets
//! clients do that, as libxenstore and Linux's xenbus driver do). The
//! clients are driven by T event-loop threads (default 1, see
//! `client::run_clients`) so the load generator costs little CPU; its CPU
//! per op is reported beside the server's.
//! Per load and target: `ops` operations (default 50 000 000, so in
//! practice the time bound rules), at most S seconds (default 6), split in
//! R rounds (default 3) that alternate between the targets so load changes
//! hit them alike.
//! Targets: our `xcp-xenstored` (default: next to this binary) and Debian's
//! oxenstored run hosted side by side (see `oxenstored.rs`); `--socket`
//! adds an already running daemon. A target that cannot run is reported
//! with the reason, never with a made-up figure. Every reply is checked
//! (see `client.rs`); a reply out of order, a wrong payload or an
//! unexpected error fails the run.

#![forbid(unsafe_code)]

mod client;
mod oxenstored;
mod report;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use client::{run_clients, ClientResult, MAX_DEPTH};
use report::{LoadReport, Outcome, Sample, Stats};

struct Args {
    clients: usize,
    threads: usize,
    depth: usize,
    ops: usize,
    seconds: u64,
    out: Option<PathBuf>,
    ours: Option<PathBuf>,
    oxenstored: PathBuf,
    socket: Option<PathBuf>,
    rounds: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        clients: 8,
        threads: 1,
        depth: 8,
        ops: 50_000_000,
        seconds: 6,
        out: None,
        ours: None,
        oxenstored: PathBuf::from(oxenstored::DEFAULT_PATH),
        socket: None,
        rounds: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--clients" => a.clients = value()?.parse().map_err(|e| format!("--clients: {e}"))?,
            "--threads" => a.threads = value()?.parse().map_err(|e| format!("--threads: {e}"))?,
            "--depth" => a.depth = value()?.parse().map_err(|e| format!("--depth: {e}"))?,
            "--ops" => a.ops = value()?.parse().map_err(|e| format!("--ops: {e}"))?,
            "--seconds" => a.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--out" => a.out = Some(PathBuf::from(value()?)),
            "--ours" => a.ours = Some(PathBuf::from(value()?)),
            "--oxenstored" => a.oxenstored = PathBuf::from(value()?),
            "--socket" => a.socket = Some(PathBuf::from(value()?)),
            "--rounds" => a.rounds = value()?.parse().map_err(|e| format!("--rounds: {e}"))?,
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.clients == 0
        || a.clients > 256
        || a.threads == 0
        || a.depth < 2
        || a.depth > MAX_DEPTH
        || a.ops == 0
        || a.seconds == 0
        || a.rounds == 0
        || a.rounds > 100
    {
        return Err(format!(
            "--clients 1..=256, --threads above 0, --depth 2..={MAX_DEPTH} (open transactions per connection \
             are limited to 10), --rounds 1..=100, --ops and --seconds above 0"
        ));
    }
    Ok(a)
}

/// The kernel's clock tick (USER_HZ, what `sysconf(_SC_CLK_TCK)` returns):
/// the AT_CLKTCK entry of our auxiliary vector, pairs of native words.
fn clock_ticks_per_second() -> Option<u64> {
    const AT_CLKTCK: u64 = 17;
    let auxv = std::fs::read("/proc/self/auxv").ok()?;
    auxv.chunks_exact(16).find_map(|pair| {
        let word = |i: usize| u64::from_ne_bytes(pair[i..i + 8].try_into().expect("8 bytes"));
        (word(0) == AT_CLKTCK).then(|| word(8)).filter(|hz| *hz > 0)
    })
}

/// CPU time (user, system) a process has used, from /proc/<pid>/stat.
fn cpu_time(pid: Option<u32>) -> Option<(Duration, Duration)> {
    let text = std::fs::read_to_string(format!("/proc/{}/stat", pid?)).ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the line, in clock ticks.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    let hz = clock_ticks_per_second()?;
    let at = |ticks: u64| Duration::from_micros(ticks * 1_000_000 / hz);
    Some((at(user), at(system)))
}

/// Run `ops` operations (at most `seconds`) against `socket`; `pid` is the
/// server's, if known, to account its CPU time.
fn measure(
    socket: &Path,
    args: &Args,
    pid: Option<u32>,
    depth: usize,
    ops: usize,
    seconds: f64,
) -> Result<Sample, String> {
    for k in 0..args.clients {
        client::setup(socket, k).map_err(|e| format!("setup: {e}"))?;
    }
    let per_client = ops.div_ceil(args.clients);
    let cpu_before = cpu_time(pid);
    let me = Some(std::process::id());
    let client_before = cpu_time(me);
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    // Clients dealt round-robin to the driver threads.
    let threads = args.threads.min(args.clients);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let socket = socket.to_path_buf();
            let mine: Vec<usize> = (t..args.clients).step_by(threads).collect();
            std::thread::spawn(move || run_clients(&socket, &mine, per_client, depth, deadline))
        })
        .collect();
    let mut results: Vec<ClientResult> = Vec::new();
    for h in handles {
        let r = h.join().map_err(|_| "client thread panicked".to_string())?;
        results.extend(r.map_err(|e| format!("client: {e}"))?);
    }
    let elapsed = start.elapsed();
    let delta = |before: Option<(Duration, Duration)>, after: Option<(Duration, Duration)>| match (
        before, after,
    ) {
        (Some((u0, s0)), Some((u1, s1))) => Some((u1.saturating_sub(u0), s1.saturating_sub(s0))),
        _ => None,
    };
    let cpu = delta(cpu_before, cpu_time(pid));
    let client_cpu = delta(client_before, cpu_time(me));
    Ok(Sample {
        results,
        elapsed,
        cpu,
        client_cpu,
    })
}

/// Where a daemon listens and its pid (if ours to watch), or why it
/// cannot run.
type Endpoint = Result<(PathBuf, Option<u32>), String>;

/// A daemon under test and what was measured on it.
struct Target {
    name: String,
    endpoint: Endpoint,
    samples: Vec<Sample>,
    failed: Option<String>,
}

impl Target {
    fn new(name: &str, endpoint: Endpoint) -> Target {
        Target {
            name: name.into(),
            endpoint,
            samples: Vec::new(),
            failed: None,
        }
    }

    fn outcome(self) -> Outcome {
        let ran = self.endpoint.is_ok();
        let result = match (self.endpoint, self.failed) {
            (Err(why), _) | (Ok(_), Some(why)) => Err(why),
            (Ok(_), None) => Ok(Stats::from_samples(&self.samples)),
        };
        Outcome {
            name: self.name,
            ran,
            result,
        }
    }
}

struct Ours {
    child: Child,
    socket: PathBuf,
}

impl Drop for Ours {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_ours(binary: &Path, workdir: &Path) -> Result<Ours, String> {
    if !binary.exists() {
        return Err(format!(
            "{} not found: build it with `cargo build --release -p xcp-xenstored` or pass --ours",
            binary.display()
        ));
    }
    let socket = workdir.join("xcp-xenstored.sock");
    let child = Command::new(binary)
        .arg("--socket")
        .arg(&socket)
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", binary.display()))?;
    let mut ours = Ours { child, socket };
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::os::unix::net::UnixStream::connect(&ours.socket).is_err() {
        if Instant::now() > deadline || ours.child.try_wait().ok().flatten().is_some() {
            return Err("xcp-xenstored did not listen within 5 s".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(ours)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("xenstore-bench: {e}");
            }
            eprintln!(
                "usage: xenstore-bench [--clients N] [--depth K] [--threads T] [--ops N] [--seconds S] [--rounds R] [--out PATH] \
                 [--ours PATH] [--oxenstored PATH] [--socket PATH]"
            );
            return ExitCode::from(2);
        }
    };
    let workdir = std::env::temp_dir().join(format!("xenstore-bench-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&workdir) {
        eprintln!("xenstore-bench: {}: {e}", workdir.display());
        return ExitCode::FAILURE;
    }
    let ours_bin = args.ours.clone().unwrap_or_else(|| {
        let me = std::env::current_exe().unwrap_or_default();
        me.with_file_name("xcp-xenstored")
    });
    // Both daemons run side by side; rounds alternate between them so a
    // change in the machine's load hits both alike.
    let ours = start_ours(&ours_bin, &workdir);
    let ox = oxenstored::start(&args.oxenstored, &workdir);
    let mut endpoints: Vec<(String, Endpoint)> = vec![
        (
            "xcp-xenstored".into(),
            ours.as_ref()
                .map(|d| (d.socket.clone(), Some(d.child.id())))
                .map_err(Clone::clone),
        ),
        (
            "oxenstored".into(),
            ox.as_ref()
                .map(|d| (d.socket.clone(), Some(d.pid())))
                .map_err(Clone::clone),
        ),
    ];
    if let Some(s) = &args.socket {
        endpoints.push((format!("socket:{}", s.display()), Ok((s.clone(), None))));
    }
    let ops = args.ops.div_ceil(args.rounds);
    let seconds = args.seconds as f64 / args.rounds as f64;
    let mut loads = Vec::new();
    for (name, depth) in [("one at a time", 1), ("pipelined", args.depth)] {
        let mut targets: Vec<Target> = endpoints
            .iter()
            .map(|(n, e)| Target::new(n, e.clone()))
            .collect();
        for _ in 0..args.rounds {
            for t in targets.iter_mut() {
                let Ok((socket, pid)) = &t.endpoint else {
                    continue;
                };
                if t.failed.is_some() {
                    continue;
                }
                match measure(socket, &args, *pid, depth, ops, seconds) {
                    Ok(sample) => t.samples.push(sample),
                    Err(e) => t.failed = Some(e),
                }
            }
        }
        loads.push(LoadReport {
            name: name.into(),
            depth,
            outcomes: targets.into_iter().map(Target::outcome).collect(),
        });
    }
    drop(ours);
    drop(ox);
    let _ = std::fs::remove_dir_all(&workdir);
    print!("{}", report::table(&loads, &args_summary(&args)));
    if let Some(out) = &args.out {
        if let Err(e) = std::fs::write(
            out,
            report::json(&loads, args.clients, args.ops, args.seconds),
        ) {
            eprintln!("xenstore-bench: {}: {e}", out.display());
            return ExitCode::FAILURE;
        }
    }
    // Fail when our daemon could not be measured, or when any target that
    // ran gave a wrong or out-of-order reply (a figure over wrong replies
    // means nothing).
    let mut ok = true;
    for load in &loads {
        for (i, o) in load.outcomes.iter().enumerate() {
            match &o.result {
                Err(why) if i == 0 || o.ran => {
                    eprintln!("xenstore-bench: {} ({}): {why}", o.name, load.name);
                    ok = false;
                }
                Ok(st) if st.errors > 0 => {
                    eprintln!(
                        "xenstore-bench: {} ({}): {} wrong replies, first: {}",
                        o.name,
                        load.name,
                        st.errors,
                        st.first_error.as_deref().unwrap_or("?")
                    );
                    ok = false;
                }
                _ => {}
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn args_summary(a: &Args) -> String {
    format!(
        "{} rounds alternating targets, {} clients, {} ops per target and load \
         (4 read : 3 write : 2 directory : 1 transaction), at most {} s per target and load",
        a.rounds, a.clients, a.ops, a.seconds
    )
}

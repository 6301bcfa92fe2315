//! Statistics, the printed table and the JSON report.

use std::fmt::Write;
use std::time::Duration;

use crate::client::{ClientResult, Kind};

/// One measured round on one target.
pub struct Sample {
    /// Per-client latencies.
    pub results: Vec<ClientResult>,
    /// Wall time of the round.
    pub elapsed: Duration,
    /// Server CPU (user, system) used during the round, if known.
    pub cpu: Option<(Duration, Duration)>,
    /// The bench's own (clients') CPU during the round.
    pub client_cpu: Option<(Duration, Duration)>,
}

/// Percentiles of one set of latencies, in microseconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Latency {
    /// Operations measured.
    pub count: usize,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Worst.
    pub max_us: f64,
}

impl Latency {
    fn of(mut ns: Vec<u64>) -> Latency {
        if ns.is_empty() {
            return Latency::default();
        }
        ns.sort_unstable();
        let at = |q: f64| {
            let i = ((ns.len() as f64 * q).ceil() as usize).clamp(1, ns.len()) - 1;
            ns[i] as f64 / 1000.0
        };
        Latency {
            count: ns.len(),
            p50_us: at(0.50),
            p99_us: at(0.99),
            max_us: at(1.0),
        }
    }
}

/// What one target measured.
#[derive(Clone, Debug)]
pub struct Stats {
    /// Operations completed (a transaction counts as one).
    pub ops: usize,
    /// Wall time of the measured phase.
    pub elapsed: Duration,
    /// Operations per second.
    pub ops_per_sec: f64,
    /// All operations.
    pub overall: Latency,
    /// Per kind, in `Kind::ALL` order.
    pub per_kind: [Latency; 4],
    /// Transaction commits retried after EAGAIN.
    pub retries: u64,
    /// Wrong replies (bad payload, unexpected ERROR).
    pub errors: u64,
    /// The first wrong reply, described.
    pub first_error: Option<String>,
    /// Server CPU time per operation (user, system) in microseconds, when
    /// the server's process is ours to watch.
    pub server_cpu_us_per_op: Option<(f64, f64)>,
    /// The clients' CPU time per operation (user + system) in
    /// microseconds: a check that the load generator is not the limit.
    pub client_cpu_us_per_op: Option<f64>,
}

impl Stats {
    /// Combine every round's clients.
    pub fn from_samples(samples: &[Sample]) -> Stats {
        let mut all = Vec::new();
        let mut per_kind: [Latency; 4] = Default::default();
        for (i, slot) in per_kind.iter_mut().enumerate() {
            let v: Vec<u64> = samples
                .iter()
                .flat_map(|s| s.results.iter())
                .flat_map(|r| r.latencies[i].iter().copied())
                .collect();
            all.extend_from_slice(&v);
            *slot = Latency::of(v);
        }
        let ops = all.len();
        let elapsed: Duration = samples.iter().map(|s| s.elapsed).sum();
        let cpu = samples
            .iter()
            .try_fold((Duration::ZERO, Duration::ZERO), |(u, k), s| {
                s.cpu.map(|(su, sk)| (u + su, k + sk))
            });
        let per_op = |d: Duration| d.as_secs_f64() * 1e6 / ops.max(1) as f64;
        let client = samples
            .iter()
            .try_fold(Duration::ZERO, |t, s| s.client_cpu.map(|(u, k)| t + u + k));
        Stats {
            ops,
            elapsed,
            ops_per_sec: ops as f64 / elapsed.as_secs_f64().max(1e-9),
            overall: Latency::of(all),
            per_kind,
            retries: samples
                .iter()
                .flat_map(|s| s.results.iter())
                .map(|r| r.retries)
                .sum(),
            errors: samples
                .iter()
                .flat_map(|s| s.results.iter())
                .map(|r| r.errors)
                .sum(),
            first_error: samples
                .iter()
                .flat_map(|s| s.results.iter())
                .find_map(|r| r.first_error.clone()),
            client_cpu_us_per_op: client.filter(|_| !samples.is_empty()).map(per_op),
            server_cpu_us_per_op: cpu
                .filter(|_| !samples.is_empty())
                .map(|(u, k)| (per_op(u), per_op(k))),
        }
    }
}

/// One target and its result or the reason it could not run.
pub struct Outcome {
    /// Target name.
    pub name: String,
    /// Whether it was started (a failure then is a failure of the run).
    pub ran: bool,
    /// Measured figures, or why there are none.
    pub result: Result<Stats, String>,
}

/// One load (a pipeline depth) and every target's outcome under it.
pub struct LoadReport {
    /// "one at a time" or "pipelined".
    pub name: String,
    /// Operations in flight per client.
    pub depth: usize,
    /// Per target, ours first.
    pub outcomes: Vec<Outcome>,
}

/// The human-readable table: one block per load, then the ratios.
pub fn table(loads: &[LoadReport], summary: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "xenstore-bench: {summary}");
    for load in loads {
        let _ = writeln!(
            s,
            "\nload: {} ({} in flight per client)",
            load.name, load.depth
        );
        let _ = writeln!(
            s,
            "{:<16} {:>9} {:>7} {:>10} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>7} {:>6} {:>17} {:>10}",
            "target",
            "ops",
            "secs",
            "ops/s",
            "p50 us",
            "p99 us",
            "read p99",
            "write p99",
            "dir p99",
            "tx p99",
            "retries",
            "errors",
            "srv usr+sys us/op",
            "cli us/op"
        );
        for o in &load.outcomes {
            match &o.result {
                Ok(st) => {
                    let _ = writeln!(
                        s,
                        "{:<16} {:>9} {:>7.2} {:>10.0} {:>8.1} {:>8.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>7} {:>6} {:>17} {:>10}",
                        o.name,
                        st.ops,
                        st.elapsed.as_secs_f64(),
                        st.ops_per_sec,
                        st.overall.p50_us,
                        st.overall.p99_us,
                        st.per_kind[0].p99_us,
                        st.per_kind[1].p99_us,
                        st.per_kind[2].p99_us,
                        st.per_kind[3].p99_us,
                        st.retries,
                        st.errors,
                        st.server_cpu_us_per_op
                            .map_or("-".into(), |(u, k)| format!("{u:.2}+{k:.2}")),
                        st.client_cpu_us_per_op
                            .map_or("-".into(), |c| format!("{c:.2}")),
                    );
                }
                Err(why) => {
                    let _ = writeln!(s, "{:<16} not measured: {why}", o.name);
                }
            }
        }
    }
    let _ = writeln!(s);
    for load in loads {
        let (Some(Ok(a)), Some(Ok(b))) = (
            load.outcomes.first().map(|o| &o.result),
            load.outcomes.get(1).map(|o| &o.result),
        ) else {
            continue;
        };
        let _ = write!(
            s,
            "{} ({} in flight): {} vs {}: {:.2}x throughput, p99 {:.1} us vs {:.1} us",
            load.name,
            load.depth,
            load.outcomes[0].name,
            load.outcomes[1].name,
            a.ops_per_sec / b.ops_per_sec.max(1e-9),
            a.overall.p99_us,
            b.overall.p99_us
        );
        if let (Some((ua, ka)), Some((ub, kb))) = (a.server_cpu_us_per_op, b.server_cpu_us_per_op) {
            let _ = write!(
                s,
                "; server CPU per op {:.2}x less in user space, {:.2}x less in total",
                ub / ua.max(1e-9),
                (ub + kb) / (ua + ka).max(1e-9)
            );
        }
        let _ = writeln!(s);
    }
    s
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_latency(l: &Latency) -> String {
    format!(
        "{{\"count\": {}, \"p50_us\": {:.3}, \"p99_us\": {:.3}, \"max_us\": {:.3}}}",
        l.count, l.p50_us, l.p99_us, l.max_us
    )
}

/// The JSON report.
pub fn json(loads: &[LoadReport], clients: usize, ops: usize, seconds: u64) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "{{\n  \"clients\": {clients},\n  \"ops_per_target\": {ops},\n  \"max_seconds\": {seconds},\n  \"mix\": {{\"read\": 4, \"write\": 3, \"directory\": 2, \"transaction\": 1}},\n  \"loads\": ["
    );
    for (j, load) in loads.iter().enumerate() {
        let sep = if j == 0 { "" } else { "," };
        let _ = write!(
            s,
            "{sep}\n  {{\"name\": {}, \"depth\": {}, \"targets\": [",
            json_str(&load.name),
            load.depth
        );
        for (i, o) in load.outcomes.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            match &o.result {
                Ok(st) => {
                    let kinds: Vec<String> = Kind::ALL
                        .iter()
                        .zip(&st.per_kind)
                        .map(|(k, l)| format!("{}: {}", json_str(k.name()), json_latency(l)))
                        .collect();
                    let _ = write!(
                        s,
                        "{sep}\n    {{\"name\": {}, \"measured\": true, \"ops\": {}, \"seconds\": {:.3}, \"ops_per_sec\": {:.1}, \"server_cpu_us_per_op\": {}, \"client_cpu_us_per_op\": {}, \"retries\": {}, \"errors\": {}, \"overall\": {}, \"per_kind\": {{{}}}}}",
                        json_str(&o.name),
                        st.ops,
                        st.elapsed.as_secs_f64(),
                        st.ops_per_sec,
                        st.server_cpu_us_per_op.map_or("null".into(), |(u, k)| format!("{{\"user\": {u:.3}, \"system\": {k:.3}}}")),
                        st.client_cpu_us_per_op.map_or("null".into(), |c| format!("{c:.3}")),
                        st.retries,
                        st.errors,
                        json_latency(&st.overall),
                        kinds.join(", ")
                    );
                }
                Err(why) => {
                    let _ = write!(
                        s,
                        "{sep}\n    {{\"name\": {}, \"measured\": false, \"reason\": {}}}",
                        json_str(&o.name),
                        json_str(why)
                    );
                }
            }
        }
        s.push_str("\n  ]}");
    }
    s.push_str("\n  ]\n}\n");
    s
}

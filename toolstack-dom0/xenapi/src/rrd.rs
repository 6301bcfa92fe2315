//! Performance figures as xapi serves them on `/rrd_updates`: a bounded
//! ring of 5 s samples for the host and each running VM, and the "xport"
//! document (XML, or JSON with `json=true`) clients poll.
//!
//! Read first: xapi's `rrdd_proxy.ml` / xcp-rrdd's `rrd_updates` handler,
//! and rrdtool's xport format, which xapi's reply follows:
//!
//! ```text
//! <xport><meta><start>S</start><step>5</step><end>E</end><rows>R</rows>
//! <columns>C</columns><legend><entry>AVERAGE:host:<uuid>:memory_total_kib</entry>...
//! </legend></meta><data><row><t>E</t><v>...</v>...</row>...</data></xport>
//! ```
//!
//! `GET /rrd_updates?session_id=S&start=<unix s>&cf=AVERAGE&interval=5
//! &host=true[&vm_uuid=U][&json=true]`: the rows at or after `start` (a
//! negative one counts back from the newest), newest first, for every running VM (or VM `U` only) and, with
//! `host=true`, the host. One archive is kept, 5 s steps for
//! [`ROWS`] rows (10 minutes): every `interval` and `cf` is answered from
//! it (the legend names the `cf` asked; one sample a step makes AVERAGE,
//! MIN and MAX the same). Values are written as xapi-rrd's `f_to_s`
//! does (`%0.5g`, `0.0`, and `NaN` for a source without a value at a
//! row's time; strings in the JSON form). Authenticated as xapi's handlers: a
//! valid `session_id` in the query or the `session_id` cookie, or the
//! local superuser's name and password (`Authorization: Basic`, its
//! PBKDF2 rationed as logins are), else 401.
//!
//! | owner | data source | unit |
//! |-------|-------------|------|
//! | host  | `memory_total_kib`, `memory_free_kib` | KiB (Xen's physinfo) |
//! | host  | `cpu_avg`, `cpu<N>` (the first [`MAX_HOST_CPUS`]) | fraction of the step each physical CPU was busy, and their mean over every CPU (Xen's idle time) |
//! | VM    | `cpu<N>` (at most [`MAX_VCPUS`]) | fraction of a physical CPU over the step (Xen's vCPU time) |
//! | VM    | `memory` | bytes the domain has |
//! | VM    | `memory_internal_free` | KiB free inside the guest (its agent's `data/meminfo_free`) |
//! | VM    | `vif_<N>_rx`, `vif_<N>_tx` (at most [`MAX_VIFS`]) | bytes/s (netdom's counters, `metrics.rs`) |
//!
//! No `vbd_*` sources: stordom reports no per-VBD counters (and xapi
//! itself has no `VBD_metrics` since Tampa: "disabled in favour of
//! RRDs", so `VBD.metrics` stays NULL here too).
//!
//! What it holds: [`RING_BYTES`] per ring, for the host and at most
//! [`MAX_VM_RINGS`] running VMs ([`RRD_BYTES`] in all, in
//! `budget.rs`); a VM past them has no ring (counted). Sampling also
//! keeps `VM_metrics.memory_actual` to what Xen says, written only when
//! it changes.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write;

use crate::body::Body;
use crate::console::{query_param, request_session};
use crate::engine::{Engine, Handled};
use crate::error::ApiError;
use crate::http::{self, Head};
use crate::hypervisor::Hypervisor;
use crate::rng::Entropy;
use crate::schema::class_id;
use crate::transfer::refused;
use crate::value::{format_datetime, Instant, Value};
use crate::wal::Storage;

/// xapi's handler.
pub const RRD_PATH: &str = "/rrd_updates";
/// The step between two samples, ms.
pub const STEP_MS: u64 = 5_000;
/// Rows kept per ring (10 minutes of 5 s steps).
pub const ROWS: usize = 120;
/// vCPUs of one VM with a `cpu<N>` source at most.
pub const MAX_VCPUS: usize = 4;
/// VIFs of one VM with `vif_<N>_rx`/`_tx` sources at most.
pub const MAX_VIFS: usize = 2;
/// Sources of one ring at most.
pub const MAX_SOURCES: usize = 2 + MAX_VCPUS + 2 * MAX_VIFS;
/// Physical CPUs with a `cpu<N>` source at most (the host's ring has the
/// room of any other: its two memory sources and `cpu_avg` besides).
/// `cpu_avg` counts every CPU.
pub const MAX_HOST_CPUS: usize = MAX_SOURCES - 3;
/// Running VMs with a ring at most.
pub const MAX_VM_RINGS: usize = 60;
/// What one ring holds at most, bytes: its values (`f32`), times, and
/// source names and bookkeeping (≤ 1 KiB).
pub const RING_BYTES: usize = ROWS * (MAX_SOURCES * 4 + 8) + 1024;
/// Every ring, bytes.
pub const RRD_BYTES: usize = (MAX_VM_RINGS + 1) * RING_BYTES;

/// One owner's samples.
#[derive(Clone, Debug, Default)]
pub(crate) struct Ring {
    uuid: String,
    names: Vec<String>,
    /// Sample times, Unix seconds, oldest first.
    times: VecDeque<u64>,
    /// `times.len() × names.len()` values, row by row.
    values: VecDeque<f32>,
    /// Each vCPU's time at the last sample, ns, and when, ms.
    prev_cpu: Vec<u64>,
    prev_at: u64,
}

impl Ring {
    fn new(uuid: &str) -> Ring {
        Ring {
            uuid: uuid.to_string(),
            ..Ring::default()
        }
    }

    /// Adds a row; a change of sources starts the ring again.
    fn push(&mut self, t: u64, row: Vec<(String, f32)>) {
        if row.len() != self.names.len() || row.iter().zip(&self.names).any(|((n, _), m)| n != m) {
            self.names = row.iter().map(|(n, _)| n.clone()).collect();
            // Exactly a full ring's room, once: a VecDeque that grew by
            // doubling would hold up to twice it.
            self.times = VecDeque::new();
            self.values = VecDeque::new();
            self.times.reserve_exact(ROWS);
            self.values.reserve_exact(ROWS * self.names.len());
        }
        if self.times.back().is_some_and(|last| *last >= t) {
            return;
        }
        if self.times.len() == ROWS {
            self.times.pop_front();
            for _ in 0..self.names.len() {
                self.values.pop_front();
            }
        }
        self.times.push_back(t);
        self.values.extend(row.into_iter().map(|(_, v)| v));
    }

    fn value(&self, t: u64, source: usize) -> Option<f32> {
        let i = self.times.binary_search(&t).ok()?;
        self.values.get(i * self.names.len() + source).copied()
    }
}

/// The rings.
#[derive(Clone, Debug, Default)]
pub(crate) struct Rrd {
    host: Ring,
    /// By domid.
    vms: BTreeMap<u32, Ring>,
    last: Option<Instant>,
    /// Samples of VMs past [`MAX_VM_RINGS`], not kept.
    pub(crate) over: u64,
}

/// The host's CPU sources from each physical CPU's idle time `idle` (ns
/// since boot) at `now_ms`: busy = 1 − idle over the step since the
/// ring's last sample (NaN for the first, or when the CPUs changed or a
/// counter went back), `cpu_avg` over every CPU, `cpu<N>` for the first
/// [`MAX_HOST_CPUS`].
fn host_cpu_row(ring: &mut Ring, now_ms: u64, idle: &[u64], row: &mut Vec<(String, f32)>) {
    let elapsed_ns = now_ms
        .saturating_sub(ring.prev_at)
        .saturating_mul(1_000_000);
    let comparable = elapsed_ns > 0 && ring.prev_cpu.len() == idle.len();
    let busy: Vec<f32> = idle
        .iter()
        .enumerate()
        .map(|(i, ns)| match ring.prev_cpu.get(i) {
            Some(p) if comparable && *ns >= *p => {
                let idle = ((*ns - *p) as f64 / elapsed_ns as f64).min(1.0);
                (1.0 - idle) as f32
            }
            _ => f32::NAN,
        })
        .collect();
    let avg = if busy.is_empty() {
        f32::NAN
    } else {
        busy.iter().sum::<f32>() / busy.len() as f32
    };
    row.push(("cpu_avg".to_string(), avg));
    for (i, b) in busy.iter().take(MAX_HOST_CPUS).enumerate() {
        row.push((alloc::format!("cpu{i}"), *b));
    }
    ring.prev_cpu = idle.to_vec();
    ring.prev_at = now_ms;
}

/// A value as xapi writes one (xapi-rrd's `f_to_s`): C's `%0.5g`, `0.0`
/// for zero, `NaN` when missing, `Infinity` / `-Infinity`.
fn format_value(v: Option<f32>) -> String {
    let Some(v) = v.map(f64::from) else {
        return "NaN".to_string();
    };
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return (if v > 0.0 { "Infinity" } else { "-Infinity" }).to_string();
    }
    if v == 0.0 {
        return "0.0".to_string();
    }
    // `%g` with precision 5: the exponent of the value rounded to 5
    // significant digits picks the style; trailing zeros go.
    let sci = alloc::format!("{v:.4e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if !(-4..5).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        alloc::format!("{}e{sign}{:02}", trim(mantissa), exp.unsigned_abs())
    } else {
        let decimals = (4 - exp) as usize;
        trim(&alloc::format!("{v:.decimals$}"))
    }
}

impl<H: Hypervisor, S: Storage, E: Entropy> Engine<H, S, E> {
    /// The board's periodic look at the guests (every second): polls the
    /// guest agents that are due (`guest_metrics.rs`) and, every
    /// [`STEP_MS`], samples the host and the running VMs; commits;
    /// returns whether a record changed.
    pub fn monitor(&mut self, now: Instant) -> Result<bool, ApiError> {
        if self.poisoned {
            return Ok(false);
        }
        self.now = now;
        let mut changed = self.poll_guests();
        let due = self.rrd.last.is_none_or(|t| now >= t.plus_ms(STEP_MS));
        if due {
            self.rrd.last = Some(now);
            changed |= self.sample();
        }
        if changed {
            self.commit()?;
        }
        Ok(changed)
    }

    /// One sample of every source; whether `VM_metrics` changed.
    fn sample(&mut self) -> bool {
        let now_ms = self.now.0;
        let t = now_ms / 1000 / (STEP_MS / 1000) * (STEP_MS / 1000);
        if let Some((total, free)) = self.hv.host_memory() {
            let host_uuid = self
                .db
                .field(
                    class_id("host").expect("schema has host"),
                    &self.host_ref(),
                    "uuid",
                )
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if self.rrd.host.uuid != host_uuid {
                self.rrd.host = Ring::new(&host_uuid);
            }
            let mut row = alloc::vec![
                ("memory_total_kib".to_string(), (total / 1024) as f32),
                ("memory_free_kib".to_string(), (free / 1024) as f32),
            ];
            if let Some(idle) = self.hv.host_cpu_idle_ns() {
                host_cpu_row(&mut self.rrd.host, now_ms, &idle, &mut row);
            }
            self.rrd.host.push(t, row);
        }
        let running = self.running_vms();
        self.rrd
            .vms
            .retain(|d, _| running.iter().any(|(_, r)| r == d));
        self.guest_memory_free
            .retain(|d, _| running.iter().any(|(_, r)| r == d));
        let mut changed = false;
        for (vm, domid) in running {
            let Some(stats) = self.hv.domain_stats(domid) else {
                continue;
            };
            changed |= self.set_memory_actual(&vm, stats.memory_bytes);
            if !self.rrd.vms.contains_key(&domid) && self.rrd.vms.len() >= MAX_VM_RINGS {
                self.rrd.over += 1;
                continue;
            }
            let uuid = self.vm_field(&vm, "uuid");
            let uuid = uuid.as_str().unwrap_or("").to_string();
            let vifs = self.vif_rates(&vm);
            let free = self.guest_memory_free.get(&domid).copied();
            let ring = self
                .rrd
                .vms
                .entry(domid)
                .or_insert_with(|| Ring::new(&uuid));
            let mut row = Vec::new();
            let cpus = &stats.vcpu_time_ns[..stats.vcpu_time_ns.len().min(MAX_VCPUS)];
            let elapsed_ns = now_ms
                .saturating_sub(ring.prev_at)
                .saturating_mul(1_000_000);
            for (i, ns) in cpus.iter().enumerate() {
                let prev = ring.prev_cpu.get(i).copied();
                let load = match prev {
                    Some(p) if elapsed_ns > 0 && *ns >= p && ring.prev_cpu.len() == cpus.len() => {
                        ((*ns - p) as f64 / elapsed_ns as f64).min(1.0) as f32
                    }
                    _ => f32::NAN,
                };
                row.push((alloc::format!("cpu{i}"), load));
            }
            ring.prev_cpu = cpus.to_vec();
            ring.prev_at = now_ms;
            row.push(("memory".to_string(), stats.memory_bytes as f32));
            if let Some(free) = free {
                row.push(("memory_internal_free".to_string(), free as f32));
            }
            for (dev, rx, tx) in vifs.into_iter().take(MAX_VIFS) {
                row.push((alloc::format!("vif_{dev}_rx"), rx));
                row.push((alloc::format!("vif_{dev}_tx"), tx));
            }
            ring.push(t, row);
        }
        changed
    }

    /// `VM_metrics.memory_actual` of `vm` to `bytes`, if it differs.
    fn set_memory_actual(&mut self, vm: &str, bytes: u64) -> bool {
        let mc = class_id("VM_metrics").expect("schema has VM_metrics");
        let m = self.vm_field(vm, "metrics");
        let Some(m) = m.as_str() else { return false };
        let v = Value::Int(i64::try_from(bytes).unwrap_or(i64::MAX));
        match self.db.field(mc, m, "memory_actual") {
            Some(now) if *now != v => {
                let m = m.to_string();
                self.db.set_named(mc, &m, "memory_actual", v);
                let ts = Value::DateTime(format_datetime(self.now));
                self.db.set_named(mc, &m, "last_updated", ts);
                true
            }
            _ => false,
        }
    }

    /// `vm`'s attached VIFs: (device, rx bytes/s, tx bytes/s), by device.
    fn vif_rates(&self, vm: &str) -> Vec<(String, f32, f32)> {
        let vc = class_id("VIF").expect("schema has VIF");
        let mc = class_id("VIF_metrics").expect("schema has VIF_metrics");
        let Value::Array(vifs) = self.vm_field(vm, "VIFs") else {
            return Vec::new();
        };
        let mut out: Vec<(String, f32, f32)> = vifs
            .iter()
            .filter_map(Value::as_str)
            .filter(|v| self.db.field(vc, v, "currently_attached") == Some(&Value::Bool(true)))
            .filter_map(|v| {
                let dev = self.db.field(vc, v, "device")?.as_str()?.to_string();
                let m = self.db.field(vc, v, "metrics")?.as_str()?;
                let rate = |f| match self.db.field(mc, m, f) {
                    Some(Value::Float(x)) => (*x * 1024.0) as f32,
                    _ => 0.0,
                };
                // The guest's receive is netback's read.
                Some((dev, rate("io_read_kbs"), rate("io_write_kbs")))
            })
            .collect();
        out.sort_by(|a, b| {
            (a.0.parse::<u64>().unwrap_or(u64::MAX), &a.0)
                .cmp(&(b.0.parse::<u64>().unwrap_or(u64::MAX), &b.0))
        });
        out
    }

    /// Rings kept for running VMs (tests and the operator console).
    pub fn rrd_rings(&self) -> usize {
        self.rrd.vms.len()
    }

    /// The reply to a request head naming `/rrd_updates`, if it does.
    pub(crate) fn rrd_head(&mut self, head: &Head) -> Option<Handled> {
        let path = head.path.split('?').next().unwrap_or("");
        if path != RRD_PATH {
            return None;
        }
        let consumed = head.len;
        if head.method != "GET" {
            return Some(refused(consumed, 405, "Method Not Allowed"));
        }
        let session = request_session(&head.path, head.cookie.as_deref());
        let authorized = match session {
            Some(s) => self.check_session(&s).is_ok(),
            // As xapi's handlers: a user and password instead.
            None => head
                .authorization
                .as_deref()
                .and_then(http::basic_credentials)
                .is_some_and(|(user, pw)| self.password_ok(&user, &pw)),
        };
        if !authorized {
            return Some(refused(
                consumed,
                401,
                "a valid session_id or user and password is required",
            ));
        }
        // As xapi: a negative start counts back from the newest sample.
        let newest = self
            .rrd
            .vms
            .values()
            .chain(core::iter::once(&self.rrd.host))
            .filter_map(|r| r.times.back().copied())
            .max()
            .unwrap_or(0);
        let start = match query_param(&head.path, "start") {
            None => 0,
            Some(s) => match s.parse::<i64>() {
                Ok(n) if n < 0 => newest.saturating_sub(n.unsigned_abs()),
                Ok(n) => n as u64,
                Err(_) => return Some(refused(consumed, 400, "start must be an integer")),
            },
        };
        // xapi's documentation spells them ave, min, max.
        let cf = match query_param(&head.path, "cf").as_deref() {
            None | Some("AVERAGE") | Some("ave") => "AVERAGE",
            Some("MIN") | Some("min") => "MIN",
            Some("MAX") | Some("max") => "MAX",
            Some("LAST") | Some("last") => "LAST",
            Some(_) => {
                return Some(refused(
                    consumed,
                    400,
                    "cf must be AVERAGE, MIN, MAX or LAST",
                ))
            }
        };
        let flag = |k| query_param(&head.path, k).as_deref() == Some("true");
        let (host, json) = (flag("host"), flag("json"));
        let vm_uuid = query_param(&head.path, "vm_uuid");
        let mut rings: Vec<(&str, &Ring)> = Vec::new();
        if host && !self.rrd.host.names.is_empty() {
            rings.push(("host", &self.rrd.host));
        }
        for r in self.rrd.vms.values() {
            if vm_uuid.as_deref().is_none_or(|u| u == r.uuid) {
                rings.push(("vm", r));
            }
        }
        let mut times: Vec<u64> = rings
            .iter()
            .flat_map(|(_, r)| r.times.iter().copied())
            .filter(|t| *t >= start)
            .collect();
        times.sort_unstable_by(|a, b| b.cmp(a));
        times.dedup();
        times.truncate(ROWS);
        let mut body = Body::new(crate::budget::REPLY_BYTES);
        write_xport(&mut body, &rings, &times, cf, json);
        if body.overflowed() {
            return Some(refused(consumed, 503, "the reply is too large"));
        }
        let ctype = if json { "application/json" } else { "text/xml" };
        let head_bytes = http::head(200, ctype, body.len(), head.keep_alive);
        Some(Handled::Reply {
            consumed,
            bytes: body.into_response(head_bytes),
            close: !head.keep_alive,
        })
    }
}

/// Writes the xport document (XML, or xapi's JSON form).
fn write_xport(out: &mut Body, rings: &[(&str, &Ring)], times: &[u64], cf: &str, json: bool) {
    let (start, end) = (
        times.last().copied().unwrap_or(0),
        times.first().copied().unwrap_or(0),
    );
    let columns: usize = rings.iter().map(|(_, r)| r.names.len()).sum();
    let step = STEP_MS / 1000;
    let rows = times.len();
    if json {
        let _ = write!(
            out,
            "{{\"meta\":{{\"start\":{start},\"step\":{step},\"end\":{end},\"rows\":{rows},\"columns\":{columns},\"legend\":["
        );
    } else {
        let _ = write!(
            out,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><xport><meta><start>{start}</start><step>{step}</step><end>{end}</end><rows>{rows}</rows><columns>{columns}</columns><legend>"
        );
    }
    let mut first = true;
    for (kind, r) in rings {
        for n in &r.names {
            // uuids and source names are ours: no escaping needed.
            if json {
                let comma = if first { "" } else { "," };
                let _ = write!(out, "{comma}\"{cf}:{kind}:{}:{n}\"", r.uuid);
            } else {
                let _ = write!(out, "<entry>{cf}:{kind}:{}:{n}</entry>", r.uuid);
            }
            first = false;
        }
    }
    out.push(if json {
        b"]},\"data\":[".as_slice()
    } else {
        b"</legend></meta><data>".as_slice()
    });
    for (i, t) in times.iter().enumerate() {
        if json {
            let comma = if i == 0 { "" } else { "," };
            let _ = write!(out, "{comma}{{\"t\":{t},\"values\":[");
        } else {
            let _ = write!(out, "<row><t>{t}</t>");
        }
        let mut first = true;
        for (_, r) in rings {
            for s in 0..r.names.len() {
                if json {
                    if !first {
                        out.push(b",");
                    }
                    // xapi writes every value as a string (JSON has no NaN).
                    let _ = write!(out, "\"{}\"", format_value(r.value(*t, s)));
                } else {
                    let _ = write!(out, "<v>{}</v>", format_value(r.value(*t, s)));
                }
                first = false;
            }
        }
        out.push(if json {
            b"]}".as_slice()
        } else {
            b"</row>".as_slice()
        });
    }
    out.push(if json {
        b"]}".as_slice()
    } else {
        b"</data></xport>".as_slice()
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(v: f32) -> Vec<(String, f32)> {
        alloc::vec![("a".to_string(), v), ("b".to_string(), v * 2.0)]
    }

    #[test]
    fn a_ring_keeps_its_last_rows() {
        let mut r = Ring::new("u");
        for i in 0..(ROWS as u64 + 10) {
            r.push(i * 5, row(i as f32));
        }
        assert_eq!(r.times.len(), ROWS);
        assert_eq!(r.values.len(), ROWS * 2);
        assert_eq!(r.value(50, 1), Some(20.0));
        assert_eq!(r.value(45, 0), None, "dropped");
        // A time that does not move on is not a new row.
        r.push(r.times.back().copied().unwrap(), row(0.0));
        assert_eq!(r.times.len(), ROWS);
        // New sources start the ring again.
        r.push(10_000, alloc::vec![("c".to_string(), 1.0)]);
        assert_eq!(r.times.len(), 1);
        assert_eq!(r.value(10_000, 0), Some(1.0));
    }

    #[test]
    fn values_are_written_as_xapi_rrd_writes_them() {
        let f = |v: f32| format_value(Some(v));
        assert_eq!(f(0.0), "0.0");
        assert_eq!(f(0.25), "0.25");
        assert_eq!(f(1.0), "1");
        assert_eq!(f(123456.0), "1.2346e+05");
        assert_eq!(f(268435456.0), "2.6844e+08");
        assert_eq!(f(99999.0), "99999");
        assert_eq!(f(0.0001), "0.0001");
        assert_eq!(f(0.00001), "1e-05");
        assert_eq!(f(-2.5), "-2.5");
        assert_eq!(f(f32::NAN), "NaN");
        assert_eq!(f(f32::INFINITY), "Infinity");
        assert_eq!(format_value(None), "NaN");
    }

    #[test]
    fn host_cpus_are_busy_for_what_they_were_not_idle() {
        let mut ring = Ring::new("h");
        let mut row = Vec::new();
        host_cpu_row(&mut ring, 10_000, &[1_000, 2_000], &mut row);
        assert!(row.iter().all(|(_, v)| v.is_nan()), "no step yet: {row:?}");
        // 5 s later: CPU 0 idle 4 s of 5 (busy 0.2), CPU 1 idle all of it.
        row.clear();
        host_cpu_row(&mut ring, 15_000, &[4_000_001_000, 5_000_002_000], &mut row);
        let names: Vec<&str> = row.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["cpu_avg", "cpu0", "cpu1"]);
        assert!((row[1].1 - 0.2).abs() < 1e-6, "{row:?}");
        assert_eq!(row[2].1, 0.0);
        assert!((row[0].1 - 0.1).abs() < 1e-6, "{row:?}");
        // A counter that went back (a CPU replaced) is no figure.
        row.clear();
        host_cpu_row(&mut ring, 20_000, &[1, 10_000_002_000], &mut row);
        assert!(row[1].1.is_nan() && row[0].1.is_nan(), "{row:?}");
        assert_eq!(row[2].1, 0.0);
        // Many CPUs: the mean counts all, the ring names the first few.
        row.clear();
        let many = alloc::vec![0u64; 64];
        host_cpu_row(&mut ring, 25_000, &many, &mut row);
        assert_eq!(row.len(), 1 + MAX_HOST_CPUS);
        assert!(2 + row.len() <= MAX_SOURCES);
    }

    #[test]
    fn the_budget_holds_every_ring() {
        assert_eq!(RING_BYTES, 6_784);
        assert_eq!(RRD_BYTES, 413_824);
    }
}

//! What a running guest's agent writes in xenstore, as xapi's
//! `VM_guest_metrics` shows it: OS version, IP addresses, PV drivers.
//!
//! Read first: xapi's `xapi_guest_agent.ml` (the keys and how they map),
//! xe-guest-utilities' `xe-daemon` (what a Linux guest writes), Xen's
//! docs/misc/xenstore-paths.pandoc ("domain controlled paths": `data/`,
//! `attr/`, `control/feature-*`).
//!
//! | xenstore (below `/local/domain/<domid>`) | record field, key |
//! |------------------------------------------|-------------------|
//! | `data/os_name`, `os_uname`, `os_distro`, `os_majorver`, `os_minorver`, `attr/os/spmajor`, `attr/os/spminor` | `os_version`: `name`, `uname`, `distro`, `major`, `minor`, `spmajor`, `spminor` |
//! | `attr/PVAddons/MajorVersion`, `MinorVersion`, `MicroVersion`, `BuildVersion`, `Application` | `PV_drivers_version`: `major`, `minor`, `micro` (`-1` when absent), `build`, `application` |
//! | `attr/vif/<N>/ipv4/<M>`, `attr/vif/<N>/ipv6/<M>` | `networks`: `<N>/ipv4/<M>`, `<N>/ipv6/<M>`, and `<N>/ip` = the first IPv4 (what Ansible's `wait_for_ip_address` waits on: `0/ip`) |
//! | `attr/eth<N>/ip`, `attr/eth<N>/ipv6/<M>/addr` (older agents; also `xenbr<N>`) | `networks`: `<N>/ip`, `<N>/ipv6/<M>` |
//! | `control/<key>` (`feature-shutdown`, `feature-suspend`...), `data/ts` | `other`: `<key>`, `data-ts` |
//! | every `device/vif/*/state` and non-CD `device/vbd/*/state` is 4 (Connected) | `PV_drivers_up_to_date`, `PV_drivers_detected` |
//! | `feature/hotplug/vbd`, `feature/hotplug/vif` (`1` / `0` / other or absent) | `can_use_hotplug_vbd`, `can_use_hotplug_vif` (`yes` / `no` / `unspecified`) |
//!
//! As xapi: nothing is taken until the guest wrote `data/updated` (the
//! agent's "my keys are complete"); the record is made then, and
//! `VM.guest_metrics` points at it; it changes (and `event.from` sees it)
//! only when a derived field changes, `last_updated` with it; `memory`
//! and `disks` stay empty (xapi puts the guest's free memory in the RRDs,
//! here `memory_internal_free` on `/rrd_updates`); when the VM halts its
//! record is destroyed and `VM.guest_metrics` is NULL again. `live` is
//! true from the record's first update on and never goes false: xapi's
//! agent code sets it only at creation (and keeps no heartbeat timeout).
//!
//! How dom0 learns of changes: a bounded poll, not a watch. The board
//! calls [`Engine::monitor`] every second; each call reads at most
//! [`POLLS_PER_TICK`] guests, each at most once per [`POLL_MS`]. A watch
//! would make every guest write an event dom0 must take off its one
//! xenstore connection (which its lifecycle watch shares) as fast as the
//! guest writes; a poll costs what dom0 chooses, whatever the guest does.
//!
//! The guest is hostile: one poll makes at most [`MAX_OPS`] xenstore
//! reads and listings; a listing's children past [`MAX_CHILDREN`], names
//! longer than [`MAX_NAME`] or not `[A-Za-z0-9_-]`, values longer than
//! [`MAX_VALUE`] or not UTF-8 (or with control characters) are refused
//! and counted; the values kept for one guest total at most
//! [`MAX_GUEST_BYTES`]; and at most [`MAX_RECORDS`] guests have a record
//! (past it a guest gets none, counted). A guest's record changes at most
//! once per [`POLL_MS`], however often it writes.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::engine::Engine;
use crate::hypervisor::Hypervisor;
use crate::power::vm_class;
use crate::rng::Entropy;
use crate::schema::{class, class_id, ClassId};
use crate::value::{format_datetime, Instant, Value, NULL_REF};
use crate::wal::Storage;

/// The shortest time between two polls of one guest, ms: a guest's
/// record changes at most this often.
pub const POLL_MS: u64 = 5_000;
/// Guests polled in one [`Engine::monitor`] call at most.
pub const POLLS_PER_TICK: usize = 8;
/// xenstore reads and listings one poll of one guest makes at most.
pub const MAX_OPS: usize = 96;
/// Children of one listing looked at (in the order xenstore gives).
pub const MAX_CHILDREN: usize = 8;
/// Longest child name taken, bytes.
pub const MAX_NAME: usize = 32;
/// Longest value taken, bytes (an OS name, a kernel release, an address).
pub const MAX_VALUE: usize = 256;
/// What the keys and values kept for one guest count against the
/// database at most, approximate bytes: each entry its key, its value and
/// [`ENTRY_COST`].
pub const MAX_GUEST_BYTES: usize = 3 * 1024;
/// What a map entry counts beyond its key and value
/// (`Value::approx_size`: a `String` key, its slot, a `Value`).
pub const ENTRY_COST: usize = 64;
/// Guests with a `VM_guest_metrics` record at most.
pub const MAX_RECORDS: usize = 60;
/// What one record counts against the database at most, approximate
/// bytes (`Value::approx_size`): its entries ([`MAX_GUEST_BYTES`]) and
/// its fixed fields (measured ≈ 1 KiB by `tests/guest_metrics.rs`, which
/// fails past this).
pub const RECORD_APPROX: usize = MAX_GUEST_BYTES + 1536;

/// The fixed keys of `os_version` (xenstore path, map key).
const OS_VERSION: &[(&str, &str)] = &[
    ("data/os_name", "name"),
    ("data/os_uname", "uname"),
    ("data/os_distro", "distro"),
    ("data/os_majorver", "major"),
    ("data/os_minorver", "minor"),
    ("attr/os/spmajor", "spmajor"),
    ("attr/os/spminor", "spminor"),
];

/// The fixed keys of `PV_drivers_version`.
const PV_DRIVERS: &[(&str, &str)] = &[
    ("attr/PVAddons/MajorVersion", "major"),
    ("attr/PVAddons/MinorVersion", "minor"),
    ("attr/PVAddons/MicroVersion", "micro"),
    ("attr/PVAddons/BuildVersion", "build"),
    ("attr/PVAddons/Application", "application"),
];

/// What one poll of a guest found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuestReport {
    /// The guest wrote `data/updated`: its keys count.
    pub updated: bool,
    /// `os_version`.
    pub os_version: BTreeMap<String, String>,
    /// `PV_drivers_version`.
    pub pv_drivers_version: BTreeMap<String, String>,
    /// `networks`.
    pub networks: BTreeMap<String, String>,
    /// `other`.
    pub other: BTreeMap<String, String>,
    /// `data/meminfo_free` and `data/meminfo_total`, KiB (for the RRDs).
    pub meminfo_free_kib: Option<u64>,
    /// `data/meminfo_total`, KiB.
    pub meminfo_total_kib: Option<u64>,
    /// Every PV device of the guest is connected.
    pub paths_optimized: bool,
    /// `can_use_hotplug_vbd`: `yes`, `no` or `unspecified`.
    pub hotplug_vbd: &'static str,
    /// `can_use_hotplug_vif`.
    pub hotplug_vif: &'static str,
    /// Values and names refused (too long, not UTF-8, bad characters, past
    /// the guest's byte bound).
    pub refused: u32,
    /// The poll ran out of operations before it read everything.
    pub truncated: bool,
}

/// What the polls did, since the engine started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestCounters {
    /// Guests polled.
    pub polls: u64,
    /// Polls that changed a record.
    pub updates: u64,
    /// Values and names refused.
    pub refused: u64,
    /// Polls cut short at [`MAX_OPS`].
    pub truncated: u64,
    /// Guests refused a record past [`MAX_RECORDS`].
    pub over_records: u64,
}

/// Reads one guest's keys through the hypervisor within the bounds.
struct Reader<'a, H: Hypervisor> {
    hv: &'a mut H,
    domid: u32,
    ops: usize,
    bytes: usize,
    refused: u32,
    truncated: bool,
}

fn good_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= MAX_NAME
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl<H: Hypervisor> Reader<'_, H> {
    fn op(&mut self) -> bool {
        if self.ops >= MAX_OPS {
            self.truncated = true;
            return false;
        }
        self.ops += 1;
        true
    }

    /// A value, if present and acceptable. One kept under a key of
    /// `key_len` bytes is counted against the guest's bound (and refused
    /// past it); `key_len` 0 for a value only looked at.
    fn read(&mut self, path: &str, key_len: usize) -> Option<String> {
        if !self.op() {
            return None;
        }
        let raw = self.hv.guest_read(self.domid, path)?;
        let ok = raw.len() <= MAX_VALUE && !raw.iter().any(|b| *b < 0x20 || *b == 0x7f);
        let value = if ok {
            String::from_utf8(raw).ok()
        } else {
            None
        };
        match value {
            // A value only looked at (`key_len` 0) is not kept.
            Some(v) if key_len == 0 || self.charge(key_len + v.len()) => Some(v),
            _ => {
                self.refused += 1;
                None
            }
        }
    }

    /// Counts an entry of `len` key and value bytes against the guest's
    /// bound; false (nothing counted) past it.
    fn charge(&mut self, len: usize) -> bool {
        let cost = len + ENTRY_COST;
        if self.bytes + cost > MAX_GUEST_BYTES {
            return false;
        }
        self.bytes += cost;
        true
    }

    /// The acceptable children of `path`, at most [`MAX_CHILDREN`], sorted.
    fn list(&mut self, path: &str) -> Vec<String> {
        if !self.op() {
            return Vec::new();
        }
        let Some(children) = self.hv.guest_list(self.domid, path) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for c in children {
            if out.len() >= MAX_CHILDREN {
                self.refused += 1;
                break;
            }
            if good_name(&c) {
                out.push(c);
            } else {
                self.refused += 1;
            }
        }
        out.sort_by(|a, b| natural(a).cmp(&natural(b)));
        out
    }

    /// xapi's tristate of a feature key: `1` yes, `0` no, else unspecified.
    fn tristate(&mut self, path: &str) -> &'static str {
        match self.read(path, 0).as_deref() {
            Some("1") => "yes",
            Some("0") => "no",
            _ => "unspecified",
        }
    }

    fn fixed(&mut self, keys: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        for (path, key) in keys {
            if let Some(v) = self.read(path, key.len()) {
                m.insert(key.to_string(), v);
            }
        }
        m
    }

    /// Every device below `dir` (`device/vif`, `device/vbd`) connected.
    fn connected(&mut self, dir: &str, cd_ok: bool) -> bool {
        let mut all = true;
        for d in self.list(dir) {
            let state = self.read(&alloc::format!("{dir}/{d}/state"), 0);
            let cd = cd_ok
                && self
                    .read(&alloc::format!("{dir}/{d}/device-type"), 0)
                    .as_deref()
                    == Some("cdrom");
            all &= state.as_deref() == Some("4") || cd;
        }
        all
    }

    fn networks(&mut self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        for n in self.list("attr/vif") {
            for family in ["ipv4", "ipv6"] {
                for i in self.list(&alloc::format!("attr/vif/{n}/{family}")) {
                    let key = alloc::format!("{n}/{family}/{i}");
                    let path = alloc::format!("attr/vif/{key}");
                    if let Some(v) = self.read(&path, key.len()) {
                        let ip = alloc::format!("{n}/ip");
                        if family == "ipv4"
                            && !m.contains_key(&ip)
                            && self.charge(ip.len() + v.len())
                        {
                            m.insert(ip, v.clone());
                        }
                        m.insert(key, v);
                    }
                }
            }
        }
        // Older agents: attr/eth<N>/ip, attr/eth<N>/ipv6/<M>/addr.
        for dev in self.list("attr") {
            let n = dev
                .strip_prefix("eth")
                .or_else(|| dev.strip_prefix("xenbr"));
            let Some(n) = n.filter(|n| !n.is_empty()) else {
                continue;
            };
            let key = alloc::format!("{n}/ip");
            let key_len = key.len();
            if let alloc::collections::btree_map::Entry::Vacant(slot) = m.entry(key) {
                if let Some(v) = self.read(&alloc::format!("attr/{dev}/ip"), key_len) {
                    slot.insert(v);
                }
            }
            for i in self.list(&alloc::format!("attr/{dev}/ipv6")) {
                let key = alloc::format!("{n}/ipv6/{i}");
                if let Some(v) = self.read(&alloc::format!("attr/{dev}/ipv6/{i}/addr"), key.len()) {
                    m.entry(key).or_insert(v);
                }
            }
        }
        m
    }
}

/// Orders numeric names by number, then others by name.
fn natural(s: &str) -> (u64, &str) {
    (s.parse().unwrap_or(u64::MAX), s)
}

/// Reads what guest `domid` wrote, within the bounds.
pub fn read_guest<H: Hypervisor>(hv: &mut H, domid: u32) -> GuestReport {
    let mut r = Reader {
        hv,
        domid,
        ops: 0,
        bytes: 0,
        refused: 0,
        truncated: false,
    };
    // The guest's memory is for the RRDs, whatever else it wrote.
    let kib = |v: Option<String>| v.and_then(|v| v.trim().parse::<u64>().ok());
    let meminfo_free_kib = kib(r.read("data/meminfo_free", 0));
    let meminfo_total_kib = kib(r.read("data/meminfo_total", 0));
    let updated = r.read("data/updated", 0).is_some();
    if !updated {
        return GuestReport {
            meminfo_free_kib,
            meminfo_total_kib,
            refused: r.refused,
            truncated: r.truncated,
            ..GuestReport::default()
        };
    }
    let os_version = r.fixed(OS_VERSION);
    let mut pv_drivers_version = r.fixed(PV_DRIVERS);
    // As xapi: `micro` is -1 when the agent did not say.
    pv_drivers_version
        .entry("micro".to_string())
        .or_insert_with(|| "-1".to_string());
    let networks = r.networks();
    let mut other = BTreeMap::new();
    for k in r.list("control") {
        if let Some(v) = r.read(&alloc::format!("control/{k}"), k.len()) {
            other.insert(k, v);
        }
    }
    if let Some(ts) = r.read("data/ts", 7) {
        other.insert("data-ts".to_string(), ts);
    }
    let paths_optimized = r.connected("device/vif", false) & r.connected("device/vbd", true);
    let hotplug_vbd = r.tristate("feature/hotplug/vbd");
    let hotplug_vif = r.tristate("feature/hotplug/vif");
    GuestReport {
        hotplug_vbd,
        hotplug_vif,
        updated,
        os_version,
        pv_drivers_version,
        networks,
        other,
        meminfo_free_kib,
        meminfo_total_kib,
        paths_optimized,
        refused: r.refused,
        truncated: r.truncated,
    }
}

pub(crate) fn guest_metrics_class() -> ClassId {
    class_id("VM_guest_metrics").expect("schema has VM_guest_metrics")
}

fn string_map(m: &BTreeMap<String, String>) -> Value {
    Value::Map(
        m.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

impl<H: Hypervisor, S: Storage, E: Entropy> Engine<H, S, E> {
    /// What the guest agents' polls did.
    pub fn guest_counters(&self) -> GuestCounters {
        self.guest_counters
    }

    /// Polls the guests that are due (at most [`POLLS_PER_TICK`], each at
    /// most once per [`POLL_MS`]); returns whether a record changed. The
    /// caller commits.
    pub(crate) fn poll_guests(&mut self) -> bool {
        let now = self.now;
        let running = self.running_vms();
        // Forget the guests that no longer run.
        self.guest_polled
            .retain(|domid, _| running.iter().any(|(_, d)| d == domid));
        let mut due: Vec<(String, u32, Instant)> = running
            .into_iter()
            .filter_map(|(vm, d)| {
                let last = self.guest_polled.get(&d).copied();
                match last {
                    Some(t) if now < t.plus_ms(POLL_MS) => None,
                    _ => Some((vm, d, last.unwrap_or(Instant(0)))),
                }
            })
            .collect();
        // The longest unpolled first.
        due.sort_by_key(|(_, _, last)| *last);
        let mut changed = false;
        for (vm, domid, _) in due.into_iter().take(POLLS_PER_TICK) {
            self.guest_polled.insert(domid, now);
            let report = read_guest(&mut self.hv, domid);
            self.guest_counters.polls += 1;
            self.guest_counters.refused += u64::from(report.refused);
            self.guest_counters.truncated += u64::from(report.truncated);
            if let Some(free) = report.meminfo_free_kib {
                self.guest_memory_free.insert(domid, free);
            }
            if self.apply_guest_report(&vm, &report) {
                self.guest_counters.updates += 1;
                changed = true;
            }
        }
        changed
    }

    /// The VMs with a domain that runs or is paused, and their domids.
    pub(crate) fn running_vms(&self) -> Vec<(String, u32)> {
        let vc = vm_class();
        let cd = class(vc);
        let (ps, dom, ctrl) = (
            cd.field("power_state"),
            cd.field("domid"),
            cd.field("is_control_domain"),
        );
        self.db
            .table(vc)
            .objects
            .iter()
            .filter(|(_, r)| {
                r[ctrl].as_bool() != Some(true)
                    && matches!(r[ps].as_str(), Some("Running") | Some("Paused"))
            })
            .filter_map(|(k, r)| {
                let d = u32::try_from(r[dom].as_int()?).ok()?;
                Some((k.clone(), d))
            })
            .collect()
    }

    /// Makes or updates `vm`'s record from a report; whether it changed.
    fn apply_guest_report(&mut self, vm: &str, report: &GuestReport) -> bool {
        if !report.updated {
            return false;
        }
        let gc = guest_metrics_class();
        let existing = self.vm_field(vm, "guest_metrics");
        let existing = existing
            .as_str()
            .filter(|r| self.db.get(gc, r).is_some())
            .map(ToString::to_string);
        let up_to_date = Value::Bool(report.paths_optimized);
        let fields = [
            ("os_version", string_map(&report.os_version)),
            ("PV_drivers_version", string_map(&report.pv_drivers_version)),
            ("networks", string_map(&report.networks)),
            ("other", string_map(&report.other)),
            ("PV_drivers_up_to_date", up_to_date.clone()),
            ("PV_drivers_detected", up_to_date),
            ("live", Value::Bool(true)),
            ("can_use_hotplug_vbd", Value::str(report.hotplug_vbd)),
            ("can_use_hotplug_vif", Value::str(report.hotplug_vif)),
        ];
        let now = Value::DateTime(format_datetime(self.now));
        let gm = match existing {
            Some(gm) => gm,
            None => {
                if self.db.count(gc) >= MAX_RECORDS {
                    self.guest_counters.over_records += 1;
                    return false;
                }
                let cd = class(gc);
                let mut rec = cd.default_record();
                rec[cd.field("uuid")] = Value::String(self.uuid());
                let gm = self.new_ref();
                self.db.put(gc, &gm, rec);
                self.db
                    .set_named(vm_class(), vm, "guest_metrics", Value::String(gm.clone()));
                gm
            }
        };
        let mut changed = false;
        for (f, v) in fields {
            if self.db.field(gc, &gm, f) != Some(&v) {
                self.db.set_named(gc, &gm, f, v);
                changed = true;
            }
        }
        if changed {
            self.db.set_named(gc, &gm, "last_updated", now);
        }
        changed
    }

    /// `vm`'s domain is gone: its guest metrics go with it (as xapi does
    /// when a VM halts) and `VM.guest_metrics` is NULL. The caller
    /// commits.
    pub(crate) fn guest_metrics_stopped(&mut self, vm: &str) {
        let gm = self.vm_field(vm, "guest_metrics");
        if let Some(gm) = gm.as_str().filter(|r| *r != NULL_REF) {
            let gm = gm.to_string();
            self.db.delete(guest_metrics_class(), &gm);
            self.db
                .set_named(vm_class(), vm, "guest_metrics", Value::str(NULL_REF));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(good_name("0"));
        assert!(good_name("feature-shutdown"));
        assert!(!good_name(""));
        assert!(!good_name("a/b"));
        assert!(!good_name("é"));
        assert!(!good_name(&"x".repeat(MAX_NAME + 1)));
    }

    #[test]
    fn numbers_sort_as_numbers() {
        let mut v = ["10", "2", "x", "0"];
        v.sort_by(|a, b| natural(a).cmp(&natural(b)));
        assert_eq!(v, ["0", "2", "10", "x"]);
    }
}

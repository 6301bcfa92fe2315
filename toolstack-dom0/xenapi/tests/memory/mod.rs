//! What the tests that measure memory share: a counting global allocator
//! (each test binary installs it: `#[global_allocator] static GLOBAL:
//! memory::Counting = memory::Counting;`), an engine to measure, and a load
//! of VMs with their devices as a client creates them.
#![allow(dead_code)] // reason: each test binary uses a different subset

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicIsize, Ordering};

use xenapi::engine::Engine;
use xenapi::hypervisor::FakeHypervisor;
use xenapi::rng::SeededEntropy;
use xenapi::value::Value;
use xenapi::wal::Volatile;

use crate::common::{s, T0};

/// Net bytes allocated (requested sizes; allocator overhead not counted),
/// and their high-water mark.
pub struct Counting;

static NET: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

/// Bytes allocated now.
pub fn net() -> isize {
    NET.load(Ordering::Relaxed)
}

/// The most allocated at once since the last [`reset_peak`].
pub fn peak() -> isize {
    PEAK.load(Ordering::Relaxed)
}

/// Starts a new high-water mark from what is allocated now.
pub fn reset_peak() -> isize {
    let now = net();
    PEAK.store(now, Ordering::Relaxed);
    now
}

fn grow(by: usize) {
    let now = NET.fetch_add(by as isize, Ordering::Relaxed) + by as isize;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: forwards every call to `System` unchanged, only counting sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grow(layout.size());
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        NET.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Both blocks exist for a moment: count the new one first.
        grow(new_size);
        // SAFETY: the caller's contract for `realloc` is passed on as is.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        NET.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        new
    }
}

/// The engine these tests measure.
pub type Eng = Engine<FakeHypervisor, Volatile, SeededEntropy>;

/// A seeded engine with one event kept and no compaction (only the
/// database is measured; the log is [`Volatile`]: it keeps only its
/// length), and a root session.
pub fn open_measured() -> (Eng, Value) {
    let mut c = crate::common::config();
    c.event_capacity = 1;
    c.compact_min_bytes = u64::MAX / 4;
    let mut e = Engine::open(
        c,
        FakeHypervisor::default(),
        Volatile::default(),
        SeededEntropy(9),
    )
    .unwrap();
    e.seed(T0, "host0", "127.0.0.1").unwrap();
    let sid = call(
        &mut e,
        "session.login_with_password",
        vec![s("root"), s("pw"), s("1.0"), s("test")],
    );
    (e, sid)
}

/// Calls `m`; panics on a failure.
pub fn call(e: &mut Eng, m: &str, p: Vec<Value>) -> Value {
    e.call_value(T0, m, p)
        .unwrap_or_else(|err| panic!("{m}: {err:?}"))
}

/// A struct value from its fields.
pub fn rec(fields: &[(&str, Value)]) -> Value {
    Value::Map(
        fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<BTreeMap<_, _>>(),
    )
}

/// Creates VMs numbered `vms`, each with 2 VIFs on `net` and 2 VBDs on new
/// VDIs in `sr`, as a client creates them: a name, a description, memory,
/// a kernel, a command line, and a few map entries.
pub fn add_vms(e: &mut Eng, sid: &Value, sr: &Value, net: &Value, vms: Range<usize>) {
    for i in vms {
        let vm = call(
            e,
            "VM.create",
            vec![
                sid.clone(),
                rec(&[
                    ("name_label", s(&format!("vm-{i:04}-a-typical-name"))),
                    ("name_description", s("created by the memory budget test")),
                    ("memory_static_max", s("268435456")),
                    ("memory_dynamic_max", s("268435456")),
                    ("memory_dynamic_min", s("268435456")),
                    ("VCPUs_max", s("2")),
                    ("VCPUs_at_startup", s("2")),
                    ("PV_kernel", s("testdom.elf")),
                    ("PV_args", s("console=hvc0 root=/dev/xvda1 ro quiet")),
                    (
                        "other_config",
                        rec(&[
                            ("owner", s("ops")),
                            ("tier", s("web")),
                            ("backup", s("daily")),
                        ]),
                    ),
                ]),
            ],
        );
        for d in 0..2 {
            call(
                e,
                "VIF.create",
                vec![
                    sid.clone(),
                    rec(&[
                        ("VM", vm.clone()),
                        ("network", net.clone()),
                        ("device", s(&d.to_string())),
                        (
                            "MAC",
                            s(&format!("00:16:3e:{:02x}:{:02x}:{d:02x}", i / 256, i % 256)),
                        ),
                        ("MTU", Value::Int(1500)),
                    ]),
                ],
            );
            let vdi = call(
                e,
                "VDI.create",
                vec![
                    sid.clone(),
                    rec(&[
                        ("SR", sr.clone()),
                        ("name_label", s(&format!("vm-{i:04} disk {d}"))),
                        ("virtual_size", Value::Int(8 << 30)),
                        ("type", s("user")),
                    ]),
                ],
            );
            call(
                e,
                "VBD.create",
                vec![
                    sid.clone(),
                    rec(&[
                        ("VM", vm.clone()),
                        ("VDI", vdi),
                        ("userdevice", s(&d.to_string())),
                        ("type", s("Disk")),
                        ("mode", s("RW")),
                        ("bootable", Value::Bool(d == 0)),
                    ]),
                ],
            );
        }
    }
}

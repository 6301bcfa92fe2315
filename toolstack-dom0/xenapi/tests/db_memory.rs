//! Measures what one VM with its devices makes dom0's database hold, against
//! the documented [`budget::VM_SET_APPROX`] and [`budget::heap_of`]: the
//! database bound ([`budget::DB_APPROX_BYTES`]) is derived from them. One
//! test per binary: the counting allocator is global.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicIsize, Ordering};

use xenapi::budget;
use xenapi::engine::Engine;
use xenapi::hypervisor::FakeHypervisor;
use xenapi::rng::SeededEntropy;
use xenapi::value::Value;
use xenapi::wal::{Storage, StorageError};

mod common;
use common::*;

/// Net bytes allocated (requested sizes; allocator overhead not counted).
struct Counting;

static NET: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to `System` unchanged, only counting sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        NET.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        NET.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A log that keeps nothing but its length: the WAL is measured apart.
#[derive(Default)]
struct Counted(u64);

impl Storage for Counted {
    fn append(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        self.0 += bytes.len() as u64;
        Ok(())
    }
    fn sync(&mut self) -> Result<(), StorageError> {
        Ok(())
    }
    fn read_all(&mut self) -> Result<Vec<u8>, StorageError> {
        Ok(Vec::new())
    }
    fn truncate(&mut self, len: u64) -> Result<(), StorageError> {
        self.0 = len;
        Ok(())
    }
    fn replace(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        self.0 = bytes.len() as u64;
        Ok(())
    }
}

fn call(e: &mut Engine<FakeHypervisor, Counted, SeededEntropy>, m: &str, p: Vec<Value>) -> Value {
    e.call_value(T0, m, p)
        .unwrap_or_else(|err| panic!("{m}: {err:?}"))
}

fn rec(fields: &[(&str, Value)]) -> Value {
    Value::Map(
        fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<BTreeMap<_, _>>(),
    )
}

#[test]
fn a_vm_with_its_devices_fits_vm_set_bytes() {
    const N: usize = 200;
    let mut c = config();
    // Only the database is measured: keep one event, never compact.
    c.event_capacity = 1;
    c.compact_min_bytes = u64::MAX / 4;
    let mut e = Engine::open(
        c,
        FakeHypervisor::default(),
        Counted::default(),
        SeededEntropy(9),
    )
    .unwrap();
    e.seed(T0, "host0", "127.0.0.1").unwrap();
    let sid = call(
        &mut e,
        "session.login_with_password",
        vec![s("root"), s("pw"), s("1.0"), s("test")],
    );
    let Value::Array(srs) = call(&mut e, "SR.get_all", vec![sid.clone()]) else {
        panic!("SR.get_all")
    };
    let net = call(
        &mut e,
        "network.create",
        vec![
            sid.clone(),
            rec(&[("name_label", s("xenbr0")), ("bridge", s("xenbr0"))]),
        ],
    );
    let net_bytes = NET.load(Ordering::Relaxed);
    let before = e.db().approx_bytes();
    let before_wal = e.storage_for_tests().0;
    for i in 0..N {
        // A VM as a client creates it: a name, a description, memory, a
        // kernel, a command line, and a few map entries.
        let vm = call(
            &mut e,
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
                &mut e,
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
                &mut e,
                "VDI.create",
                vec![
                    sid.clone(),
                    rec(&[
                        ("SR", srs[0].clone()),
                        ("name_label", s(&format!("vm-{i:04} disk {d}"))),
                        ("virtual_size", Value::Int(8 << 30)),
                        ("type", s("user")),
                    ]),
                ],
            );
            call(
                &mut e,
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
    let heap = (NET.load(Ordering::Relaxed) - net_bytes) as usize / N;
    let approx = (e.db().approx_bytes() - before) / N;
    let wal = (e.storage_for_tests().0 - before_wal) as usize / N;
    println!("one VM with 2 VIFs, 2 VBDs, 2 VDIs: heap {heap} B, approx {approx} B, WAL {wal} B");
    assert!(
        approx <= budget::VM_SET_APPROX,
        "a VM set counts {approx} B against the quota, more than VM_SET_APPROX = {}",
        budget::VM_SET_APPROX
    );
    assert!(
        heap <= budget::heap_of(approx),
        "a VM set holds {heap} B of heap, more than heap_of({approx}) = {}",
        budget::heap_of(approx)
    );
}

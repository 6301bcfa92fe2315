//! Measures the peak heap one big read makes dom0 hold while it is served
//! through the relay path (`Relayed::on_message`, as dom0's board does):
//! XML-RPC and JSON-RPC `VM.get_all_records` and `event.from` from scratch
//! with 1,000 VMs, each with two VIFs, two VBDs and two VDIs (the set
//! `tests/db_memory.rs` measures). The peak above what the engine held
//! before the call must fit [`budget::CALL_BYTES`] (issue #12: dom0 died on
//! `memory allocation of 6808988 bytes failed`). A reply past
//! [`budget::REPLY_BYTES`] is refused with `LIMIT_REACHED`, within the
//! same bound. The request side too: the worst bodies the codecs accept
//! (the most elements, tokens, maps) must decode within
//! [`budget::REQUEST_BYTES`]. The replies are also checked byte for byte against the
//! codecs' encoding of the value tree the engine used to build. One test
//! per binary: the counting allocator is global.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicIsize, Ordering};

use xcp_relay::{FromToolstack, ToToolstack};
use xenapi::budget;
use xenapi::engine::Engine;
use xenapi::http::MAX_BODY;
use xenapi::hypervisor::FakeHypervisor;
use xenapi::relayed::Relayed;
use xenapi::rng::SeededEntropy;
use xenapi::value::Value;
use xenapi::wal::{Storage, StorageError};
use xenapi::{jsonrpc, xmlrpc};

mod common;
use common::*;

/// Net bytes allocated and their high-water mark (requested sizes).
struct Counting;

static NET: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to `System` unchanged, only counting sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = NET.fetch_add(layout.size() as isize, Ordering::Relaxed) + layout.size() as isize;
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        NET.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Counted as alloc + copy + free: a growing Vec briefly holds both.
        let now = NET.fetch_add(new_size as isize, Ordering::Relaxed) + new_size as isize;
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: the caller's contract for `realloc` is passed on as is.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        NET.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        new
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A log that keeps nothing but its length: the WAL is not measured here.
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

type Eng = Engine<FakeHypervisor, Counted, SeededEntropy>;

fn call(e: &mut Eng, m: &str, p: Vec<Value>) -> Value {
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

/// 1,000 VMs with their devices, as `tests/db_memory.rs` creates them.
fn load(e: &mut Eng, sid: &Value) {
    let Value::Array(srs) = call(e, "SR.get_all", vec![sid.clone()]) else {
        panic!("SR.get_all")
    };
    let net = call(
        e,
        "network.create",
        vec![
            sid.clone(),
            rec(&[("name_label", s("xenbr0")), ("bridge", s("xenbr0"))]),
        ],
    );
    for i in 0..budget::VMS {
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
                        ("SR", srs[0].clone()),
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

fn http(path: &str, ctype: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Serves `request` on a fresh connection; returns (peak extra heap while
/// it was served, the reply).
fn measure(e: &mut Eng, conn: u32, request: Vec<u8>) -> (usize, Vec<u8>) {
    let mut relayed = Relayed::new();
    let mut out = VecDeque::new();
    let msg = ToToolstack::Data {
        conn,
        bytes: request,
    };
    let before = NET.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    relayed.on_message(e, T0, 1, msg, &mut out);
    let peak = (PEAK.load(Ordering::Relaxed) - before) as usize;
    let mut reply = Vec::new();
    for m in out {
        if let FromToolstack::Data { bytes, .. } = m {
            reply.extend_from_slice(&bytes);
        }
    }
    (peak, reply)
}

/// The body of an HTTP response.
fn body_of(reply: &[u8]) -> &[u8] {
    let at = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    &reply[at + 4..]
}

#[test]
fn big_reads_fit_call_bytes() {
    let mut c = config();
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
    load(&mut e, &sid);
    let sid = sid.as_str().expect("a session ref").to_owned();
    let xml_call = |m: &str, extra: &str| {
        format!(
            "<?xml version='1.0'?><methodCall><methodName>{m}</methodName><params><param><value><string>{sid}</string></value></param>{extra}</params></methodCall>"
        )
    };
    let from_scratch = || {
        vec![
            Value::String(sid.clone()),
            Value::Array(vec![s("*")]),
            s(""),
            Value::Float(0.0),
        ]
    };
    // (name, request, the value the engine used to build, XML?, refused?)
    let cases = [
        (
            "XML-RPC VM.get_all_records",
            http("/RPC2", "text/xml", &xml_call("VM.get_all_records", "")),
            vec![Value::String(sid.clone())],
            "VM.get_all_records",
            true,
            false,
        ),
        (
            "JSON-RPC VM.get_all_records",
            http(
                "/jsonrpc",
                "application/json",
                &format!(
                    r#"{{"jsonrpc":"2.0","id":1,"method":"VM.get_all_records","params":["{sid}"]}}"#
                ),
            ),
            vec![Value::String(sid.clone())],
            "VM.get_all_records",
            false,
            false,
        ),
        (
            "XML-RPC event.from from scratch",
            http(
                "/RPC2",
                "text/xml",
                &xml_call(
                    "event.from",
                    "<param><value><array><data><value>*</value></data></array></value></param><param><value></value></param><param><value><double>0</double></value></param>",
                ),
            ),
            from_scratch(),
            "event.from",
            true,
            true,
        ),
        (
            "JSON-RPC event.from from scratch",
            http(
                "/jsonrpc",
                "application/json",
                &format!(
                    r#"{{"jsonrpc":"2.0","id":1,"method":"event.from","params":["{sid}",["*"],"",0.0]}}"#
                ),
            ),
            from_scratch(),
            "event.from",
            false,
            false,
        ),
    ];
    let mut failed = Vec::new();
    for (i, (name, request, params, method, xml, refused)) in cases.into_iter().enumerate() {
        let (peak, reply) = measure(&mut e, i as u32 + 1, request);
        let len = reply.len();
        println!(
            "{name}: reply {len} B, peak {peak} B ({:.3} x the reply), CALL_BYTES {}",
            peak as f64 / len as f64,
            budget::CALL_BYTES
        );
        assert!(reply.starts_with(b"HTTP/1.1 200 OK"), "{name}");
        if peak > budget::CALL_BYTES {
            failed.push(format!("{name}: peak {peak} B > CALL_BYTES"));
        }
        let body = body_of(&reply);
        let text = std::str::from_utf8(body).expect("UTF-8");
        if refused {
            assert!(text.contains("LIMIT_REACHED"), "{name}: {text}");
            continue;
        }
        // The same bytes as the tree the engine used to build.
        let tree = call(&mut e, method, params);
        let want = if xml {
            xmlrpc::encode_response(&Ok(tree)).into_bytes()
        } else {
            jsonrpc::encode_response(jsonrpc::Version::V2, 1.into(), &Ok(tree))
        };
        assert!(
            body == want.as_slice(),
            "{name}: the reply differs from the tree's encoding"
        );
    }
    // The request side: bodies of the smallest values, as many as the
    // codecs accept (and 1 MiB of them, refused).
    let xml_of = |each: &str, n: usize| {
        xml_call(
            "VM.get_all",
            &format!(
                "<param><value><array><data>{}</data></array></value></param>",
                each.repeat(n)
            ),
        )
    };
    let json_of = |each: &str, n: usize| {
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"VM.get_all","params":["{sid}",[{}[]]]}}"#,
            each.repeat(n)
        )
    };
    let struct_value = "<value><struct><member><name/><value/></member></struct></value>";
    let requests = [
        (
            "XML-RPC empty values at MAX_ELEMENTS",
            http(
                "/RPC2",
                "text/xml",
                &xml_of("<value/>", xmlrpc::MAX_ELEMENTS - 16),
            ),
        ),
        (
            "XML-RPC one-member structs at MAX_ELEMENTS",
            http(
                "/RPC2",
                "text/xml",
                &xml_of(struct_value, xmlrpc::MAX_ELEMENTS / 5 - 8),
            ),
        ),
        (
            "XML-RPC 1 MiB of empty values",
            http(
                "/RPC2",
                "text/xml",
                &xml_of("<value/>", (MAX_BODY - 400) / 8),
            ),
        ),
        (
            "JSON-RPC empty arrays at MAX_TOKENS",
            http(
                "/jsonrpc",
                "application/json",
                &json_of("[],", jsonrpc::MAX_TOKENS / 2 - 16),
            ),
        ),
        (
            "JSON-RPC one-entry maps at MAX_OBJECTS",
            http(
                "/jsonrpc",
                "application/json",
                &json_of(r#"{"":[]},"#, jsonrpc::MAX_OBJECTS - 16),
            ),
        ),
        (
            "JSON-RPC 1 MiB of empty arrays",
            http(
                "/jsonrpc",
                "application/json",
                &json_of("[],", (MAX_BODY - 400) / 3),
            ),
        ),
    ];
    for (name, request) in requests {
        let request_len = request.len();
        let (peak, reply) = measure(&mut e, 9, request);
        println!(
            "{name}: request {} B, peak {peak} B, REQUEST_BYTES {}: {}",
            request_len,
            budget::REQUEST_BYTES,
            String::from_utf8_lossy(&reply[..reply.len().min(12)])
        );
        if peak > budget::REQUEST_BYTES {
            failed.push(format!("{name}: peak {peak} B > REQUEST_BYTES"));
        }
    }
    assert!(failed.is_empty(), "{failed:?}");
}

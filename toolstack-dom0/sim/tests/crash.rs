//! Crash safety: SIGKILL xcp-sim in the middle of a stream of writes, restart
//! on the same state directory, and find every acknowledged change; a torn
//! WAL tail is cut and later writes survive the next restart.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use serde_json::json;

fn vm_names(port: u16) -> BTreeSet<String> {
    let sid = login(port);
    let recs = rpc(port, "VM.get_all_records", json!([sid])).expect("records");
    recs.as_object()
        .expect("map")
        .values()
        .filter_map(|r| r["name_label"].as_str().map(String::from))
        .collect()
}

#[test]
fn acknowledged_writes_survive_sigkill_and_torn_tail() {
    let dir = state_dir("crash");
    let mut sim = Sim::start(&dir);
    let port = sim.port;
    let sid = login(port);
    let acked = Arc::new(Mutex::new(Vec::new()));
    let writer = {
        let acked = acked.clone();
        std::thread::spawn(move || {
            for i in 0..100_000 {
                let name = format!("vm-{i}");
                let body = json!({"jsonrpc": "2.0", "method": "VM.create", "id": 1,
                                  "params": [sid, {"name_label": name}]});
                // Once the simulator is killed a connection may be refused
                // outright: that write was not acknowledged either.
                let Some((status, reply)) = try_post(
                    port,
                    "/jsonrpc",
                    "application/json",
                    body.to_string().as_bytes(),
                ) else {
                    return;
                };
                let ok = status == 200
                    && serde_json::from_slice::<serde_json::Value>(&reply).is_ok_and(|v| {
                        v["result"]
                            .as_str()
                            .is_some_and(|r| r.starts_with("OpaqueRef:"))
                    });
                if !ok {
                    return;
                }
                acked.lock().unwrap().push(name);
            }
        })
    };
    while acked.lock().unwrap().len() < 40 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    sim.kill();
    writer.join().expect("writer");
    let acked: Vec<String> = acked.lock().unwrap().clone();
    assert!(acked.len() >= 40);

    // Tear the tail: a frame header promising more bytes than follow.
    let wal = dir.join("xapi.wal");
    let mut f = std::fs::OpenOptions::new().append(true).open(&wal).unwrap();
    let torn = [0x00, 0x10, 0x00, 0x00, 0xde, 0xad, 0xbe, 0xef, b'{', b'"'];
    f.write_all(&torn).unwrap();
    drop(f);

    let sim2 = Sim::start(&dir);
    let names = vm_names(sim2.port);
    for n in &acked {
        assert!(names.contains(n), "acknowledged {n} lost after SIGKILL");
    }
    let log = std::fs::read(&wal).unwrap();
    assert!(!log.ends_with(&torn), "torn tail was not cut");
    let sid = login(sim2.port);
    rpc(
        sim2.port,
        "VM.create",
        json!([sid, {"name_label": "after-restart"}]),
    )
    .expect("write after restart");
    drop(sim2);

    let sim3 = Sim::start(&dir);
    let names = vm_names(sim3.port);
    assert!(
        names.contains("after-restart"),
        "write after a cut tail lost"
    );
    assert!(acked.iter().all(|n| names.contains(n)));
    // One seeded host, never re-seeded.
    let sid = login(sim3.port);
    assert_eq!(
        rpc(sim3.port, "host.get_all", json!([sid]))
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

//! The simulator serves `/rrd_updates` as xapi does: its monitor thread
//! samples the host and running VMs every 5 s, and the reply is a
//! well-formed xport document.

use std::time::{Duration, Instant};

use serde_json::json;

mod common;
use common::*;

fn get(port: u16, path: &str) -> (u16, String) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let (status, body) = raw_request(port, req.as_bytes());
    (status, String::from_utf8(body).expect("UTF-8"))
}

#[test]
fn rrd_updates_of_a_running_vm() {
    let sim = Sim::start(&state_dir("rrd"));
    let p = sim.port;
    let sid = login(p);
    let vm = rpc(
        p,
        "VM.create",
        json!([sid, {"name_label": "g", "memory_static_max": "268435456"}]),
    )
    .expect("VM.create");
    rpc(p, "VM.start", json!([sid, vm, false, false])).expect("VM.start");
    let uuid = rpc(p, "VM.get_uuid", json!([sid, vm])).expect("uuid");
    let uuid = uuid.as_str().unwrap().to_string();
    assert_eq!(get(p, "/rrd_updates?start=0").0, 401);
    // The monitor samples every 5 s: wait for the VM's first row.
    let deadline = Instant::now() + Duration::from_secs(20);
    let path = format!("/rrd_updates?session_id={sid}&start=0&cf=AVERAGE&interval=5&host=true");
    loop {
        let (status, body) = get(p, &path);
        assert_eq!(status, 200, "{body}");
        let doc = roxmltree::Document::parse(&body).expect("well-formed xport");
        let legend: Vec<String> = doc
            .descendants()
            .filter(|n| n.has_tag_name("entry"))
            .map(|n| n.text().unwrap_or("").to_string())
            .collect();
        let rows = doc.descendants().filter(|n| n.has_tag_name("row")).count();
        if rows > 0 && legend.contains(&format!("AVERAGE:vm:{uuid}:memory")) {
            let v: Vec<&str> = doc
                .descendants()
                .find(|n| n.has_tag_name("row"))
                .unwrap()
                .children()
                .filter(|n| n.has_tag_name("v"))
                .map(|n| n.text().unwrap_or(""))
                .collect();
            assert_eq!(v.len(), legend.len());
            break;
        }
        assert!(Instant::now() < deadline, "no VM row: {body}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

//! `/rrd_updates` answers xapi's xport document, well formed, with the
//! host's and the running VMs' sources, authenticated, and bounded.

use xenapi::engine::Handled;
use xenapi::rrd::{MAX_VM_RINGS, ROWS, STEP_MS};
use xenapi::value::{Instant, Value};
use xenapi::wal::MemStorage;

mod common;
use common::*;

fn at(ms: u64) -> Instant {
    Instant(T0.0 + ms)
}

fn get_path(e: &mut E, now: Instant, path: &str) -> (u16, String) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    match e.handle(now, None, req.as_bytes()) {
        Handled::Reply { bytes, .. } => {
            let text = String::from_utf8(bytes.to_vec()).unwrap();
            let status = text[9..12].parse().unwrap();
            let body = text.split_once("\r\n\r\n").unwrap().1.to_string();
            (status, body)
        }
        other => panic!("not a reply: {other:?}"),
    }
}

fn sid_str(sid: &Value) -> String {
    sid.as_str().unwrap().to_string()
}

fn running() -> (E, Value, Value, u32) {
    let mut e = open(MemStorage::default());
    e.hypervisor().memory = Some((8 << 30, 6 << 30));
    let sid = login(&mut e);
    let vm = new_vm(&mut e, &sid, "guest");
    let f = Value::Bool(false);
    ok(
        &mut e,
        "VM.start",
        vec![sid.clone(), vm.clone(), f.clone(), f],
    );
    let d = get(&mut e, &sid, "VM", "domid", &vm).as_int().unwrap() as u32;
    (e, sid, vm, d)
}

struct Xport {
    start: u64,
    step: u64,
    end: u64,
    rows: usize,
    legend: Vec<String>,
    data: Vec<(u64, Vec<String>)>,
}

fn parse(xml: &str) -> Xport {
    let doc = roxmltree::Document::parse(xml).expect("well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "xport");
    let meta = root.children().find(|n| n.has_tag_name("meta")).unwrap();
    let num = |tag: &str| -> u64 {
        meta.children()
            .find(|n| n.has_tag_name(tag))
            .and_then(|n| n.text())
            .unwrap()
            .parse()
            .unwrap()
    };
    let legend: Vec<String> = meta
        .children()
        .find(|n| n.has_tag_name("legend"))
        .unwrap()
        .children()
        .filter(|n| n.has_tag_name("entry"))
        .map(|n| n.text().unwrap().to_string())
        .collect();
    assert_eq!(num("columns") as usize, legend.len());
    let data = root
        .children()
        .find(|n| n.has_tag_name("data"))
        .unwrap()
        .children()
        .filter(|n| n.has_tag_name("row"))
        .map(|row| {
            let t = row
                .children()
                .find(|n| n.has_tag_name("t"))
                .unwrap()
                .text()
                .unwrap()
                .parse()
                .unwrap();
            let vs: Vec<String> = row
                .children()
                .filter(|n| n.has_tag_name("v"))
                .map(|n| n.text().unwrap().to_string())
                .collect();
            assert_eq!(vs.len(), legend.len(), "a value per column");
            (t, vs)
        })
        .collect::<Vec<_>>();
    assert_eq!(num("rows") as usize, data.len());
    Xport {
        start: num("start"),
        step: num("step"),
        end: num("end"),
        rows: num("rows") as usize,
        legend,
        data,
    }
}

#[test]
fn the_reply_is_xapis_xport_with_host_and_vm_sources() {
    let (mut e, sid, vm, d) = running();
    let uuid = get(&mut e, &sid, "VM", "uuid", &vm);
    let uuid = uuid.as_str().unwrap();
    e.hypervisor().vcpu_time_ns.insert(d, vec![0]);
    e.hypervisor()
        .guest_nodes
        .entry(d)
        .or_default()
        .insert("data/meminfo_free".into(), b"123456".to_vec());
    e.hypervisor()
        .guest_nodes
        .entry(d)
        .or_default()
        .insert("data/updated".into(), b"1".to_vec());
    for i in 0..4u64 {
        // A quarter of a CPU busy.
        e.hypervisor()
            .vcpu_time_ns
            .insert(d, vec![i * STEP_MS * 1_000_000 / 4]);
        // The host's two CPUs: the first idle half the time, the second
        // all of it.
        let step_ns = STEP_MS * 1_000_000;
        e.hypervisor().cpu_idle_ns = Some(vec![i * step_ns / 2, i * step_ns]);
        e.monitor(at(i * STEP_MS)).unwrap();
    }
    let path = format!(
        "/rrd_updates?session_id={}&start=0&cf=AVERAGE&interval=5&host=true",
        sid_str(&sid)
    );
    let (status, body) = get_path(&mut e, at(4 * STEP_MS), &path);
    assert_eq!(status, 200, "{body}");
    let x = parse(&body);
    assert_eq!(x.step, 5);
    assert_eq!(x.rows, 4);
    assert!(x.end > x.start);
    assert!(x.data[0].0 > x.data[1].0, "newest first");
    let host_uuid = ok(&mut e, "host.get_all", vec![sid.clone()]);
    let host_uuid = get(&mut e, &sid, "host", "uuid", &array(host_uuid)[0]);
    let host_uuid = host_uuid.as_str().unwrap();
    let col = |name: &str| {
        x.legend
            .iter()
            .position(|l| l == name)
            .unwrap_or_else(|| panic!("no {name} in {:?}", x.legend))
    };
    let total = col(&format!("AVERAGE:host:{host_uuid}:memory_total_kib"));
    // xapi-rrd writes `%0.5g`: 8 GiB in KiB.
    assert_eq!(x.data[0].1[total], "8.3886e+06");
    let host_cpu = |n: &str| col(&format!("AVERAGE:host:{host_uuid}:{n}"));
    assert_eq!(x.data[0].1[host_cpu("cpu0")], "0.5");
    assert_eq!(x.data[0].1[host_cpu("cpu1")], "0.0");
    assert_eq!(x.data[0].1[host_cpu("cpu_avg")], "0.25");
    assert_eq!(
        x.data[3].1[host_cpu("cpu_avg")],
        "NaN",
        "no rate from the first sample"
    );
    let cpu = col(&format!("AVERAGE:vm:{uuid}:cpu0"));
    assert_eq!(x.data[0].1[cpu], "0.25");
    assert_eq!(x.data[3].1[cpu], "NaN", "no rate from the first sample");
    let mem = col(&format!("AVERAGE:vm:{uuid}:memory"));
    assert_eq!(x.data[0].1[mem], "2.6844e+08");
    let free = col(&format!("AVERAGE:vm:{uuid}:memory_internal_free"));
    assert_eq!(x.data[0].1[free], "1.2346e+05");
    // Only rows at or after `start` (xapi's rule), and a negative start
    // counts back from the newest row.
    let path = format!(
        "/rrd_updates?session_id={}&start={}&host=true",
        sid_str(&sid),
        x.data[1].0
    );
    let (_, body) = get_path(&mut e, at(4 * STEP_MS), &path);
    assert_eq!(parse(&body).rows, 2);
    let path = format!("/rrd_updates?session_id={}&start=-5", sid_str(&sid));
    let (_, body) = get_path(&mut e, at(4 * STEP_MS), &path);
    assert_eq!(parse(&body).rows, 2);
    // Without host=true, the VMs only.
    let path = format!("/rrd_updates?session_id={}&start=0", sid_str(&sid));
    let (_, body) = get_path(&mut e, at(4 * STEP_MS), &path);
    assert!(parse(&body).legend.iter().all(|l| l.contains(":vm:")));
    // The JSON form parses too.
    let path = format!(
        "/rrd_updates?session_id={}&start=0&host=true&json=true",
        sid_str(&sid)
    );
    let (_, body) = get_path(&mut e, at(4 * STEP_MS), &path);
    let j: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(j["meta"]["rows"], 4);
    let values = j["data"][0]["values"].as_array().unwrap();
    assert_eq!(values.len(), x.legend.len());
    assert!(values.iter().all(|v| v.is_string()), "xapi's strings");
}

#[test]
fn memory_actual_follows_xen_and_changes_only_when_it_moves() {
    let (mut e, sid, vm, d) = running();
    let m = get(&mut e, &sid, "VM", "metrics", &vm);
    e.hypervisor().domain_memory.insert(d, 200 << 20);
    assert!(e.monitor(at(0)).unwrap());
    assert_eq!(
        get(&mut e, &sid, "VM_metrics", "memory_actual", &m),
        Value::Int(200 << 20)
    );
    assert!(!e.monitor(at(STEP_MS)).unwrap(), "nothing moved");
}

#[test]
fn no_session_no_figures_and_bad_queries_are_refused() {
    let (mut e, sid, _vm, _d) = running();
    e.monitor(at(0)).unwrap();
    assert_eq!(get_path(&mut e, at(0), "/rrd_updates?start=0").0, 401);
    assert_eq!(
        get_path(
            &mut e,
            at(0),
            "/rrd_updates?session_id=OpaqueRef:nope&start=0"
        )
        .0,
        401
    );
    // A user and password instead of a session (as `wget http://root:pw@...`).
    let basic = |cred: &str| {
        let req =
            format!("GET /rrd_updates?start=0 HTTP/1.1\r\nAuthorization: Basic {cred}\r\n\r\n");
        match e.clone().handle(at(0), None, req.as_bytes()) {
            Handled::Reply { bytes, .. } => String::from_utf8(bytes.to_vec()).unwrap(),
            other => panic!("{other:?}"),
        }
    };
    // base64("root:pw"), base64("root:no"), and junk.
    assert!(basic("cm9vdDpwdw==").starts_with("HTTP/1.1 200"));
    assert!(basic("cm9vdDpubw==").starts_with("HTTP/1.1 401"));
    assert!(basic("!!!").starts_with("HTTP/1.1 401"));
    let bad = format!("/rrd_updates?session_id={}&start=soon", sid_str(&sid));
    assert_eq!(get_path(&mut e, at(0), &bad).0, 400);
    let ave = format!("/rrd_updates?session_id={}&cf=ave", sid_str(&sid));
    assert_eq!(get_path(&mut e, at(0), &ave).0, 200);
    let bad = format!("/rrd_updates?session_id={}&cf=<x>", sid_str(&sid));
    assert_eq!(get_path(&mut e, at(0), &bad).0, 400);
    let req = format!(
        "POST /rrd_updates?session_id={} HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        sid_str(&sid)
    );
    match e.handle(at(0), None, req.as_bytes()) {
        Handled::Reply { bytes, .. } => assert!(bytes.to_vec().starts_with(b"HTTP/1.1 405")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn rings_are_bounded_in_rows_and_vms() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let f = Value::Bool(false);
    for i in 0..MAX_VM_RINGS + 3 {
        let vm = new_vm(&mut e, &sid, &format!("vm{i}"));
        ok(
            &mut e,
            "VM.start",
            vec![sid.clone(), vm, f.clone(), f.clone()],
        );
    }
    for i in 0..(ROWS as u64 + 20) {
        e.monitor(at(i * STEP_MS)).unwrap();
    }
    assert_eq!(e.rrd_rings(), MAX_VM_RINGS);
    let path = format!("/rrd_updates?session_id={}&start=0", sid_str(&sid));
    let (status, body) = get_path(&mut e, at(ROWS as u64 * STEP_MS), &path);
    assert_eq!(status, 200);
    assert_eq!(parse(&body).rows, ROWS);
}

//! Disk images over relayed HTTP (`/import_raw_vdi`, `/export_raw_vdi`)
//! against the fake SR: the body streams to the SR in batches (never
//! buffered whole), the task's progress moves and ends `success` with the
//! VDI, export gives the bytes back with their length, refusals (401, 404,
//! 405, 409, 411) and a client that goes away mid-image.

use std::collections::{BTreeMap, VecDeque};

use xcp_relay::{FromToolstack, ToToolstack, MAX_CHUNK};
use xenapi::relayed::Relayed;
use xenapi::storage::FakeSr;
use xenapi::transfer::IMPORT_BATCH;
use xenapi::value::Value;
use xenapi::wal::MemStorage;

mod common;
use common::*;

const LINK: u32 = 5;

fn fake(e: &mut E) -> &mut FakeSr {
    e.hypervisor().storage.as_mut().unwrap()
}

fn new_vdi(e: &mut E, sid: &Value, size: i64) -> Value {
    let Value::Array(srs) = ok(e, "SR.get_all", vec![sid.clone()]) else {
        panic!("SR.get_all")
    };
    let mut r = BTreeMap::new();
    r.insert("SR".to_string(), srs[0].clone());
    r.insert("name_label".to_string(), s("disk"));
    r.insert("virtual_size".to_string(), Value::Int(size));
    r.insert("type".to_string(), s("user"));
    ok(e, "VDI.create", vec![sid.clone(), Value::Map(r)])
}

fn send(r: &mut Relayed, e: &mut E, conn: u32, bytes: &[u8]) -> VecDeque<FromToolstack> {
    let mut out = VecDeque::new();
    for chunk in bytes.chunks(MAX_CHUNK) {
        let msg = ToToolstack::Data {
            conn,
            bytes: chunk.to_vec(),
        };
        r.on_message(e, T0, LINK, msg, &mut out);
    }
    out
}

/// The bytes `out` sends to `conn`'s client and whether it closes it.
fn client_sees(out: &VecDeque<FromToolstack>, conn: u32) -> (Vec<u8>, bool) {
    let (mut bytes, mut close) = (Vec::new(), false);
    for m in out {
        match m {
            FromToolstack::Data { conn: c, bytes: b } if *c == conn => bytes.extend_from_slice(b),
            FromToolstack::Close { conn: c } if *c == conn => close = true,
            _ => {}
        }
    }
    (bytes, close)
}

fn image(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn sid_text(sid: &Value) -> String {
    sid.as_str().unwrap().to_string()
}

fn task_field(e: &mut E, sid: &Value, task: &Value, f: &str) -> Value {
    ok(e, &format!("task.get_{f}"), vec![sid.clone(), task.clone()])
}

#[test]
fn an_image_streams_in_with_progress_and_back_out_whole() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let vdi = new_vdi(&mut e, &sid, 1 << 20);
    let task = ok(&mut e, "task.create", vec![sid.clone(), s("up"), s("")]);
    let data = image(600 * 1024);
    let mut r = Relayed::new();
    let head = format!(
        "PUT /import_raw_vdi?session_id={}&vdi={}&task_id={} HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
        sid_text(&sid),
        vdi.as_str().unwrap(),
        task.as_str().unwrap(),
        data.len()
    );
    let out = send(&mut r, &mut e, 1, head.as_bytes());
    assert!(
        client_sees(&out, 1).0.is_empty(),
        "no reply before the body"
    );
    assert_eq!(e.transfers(), 1);
    // Half the body: the SR has it in batches, nothing is buffered whole.
    let half = data.len() / 2;
    let out = send(&mut r, &mut e, 1, &data[..half]);
    assert!(out.is_empty(), "{out:?}");
    let uuid = ok(&mut e, "VDI.get_uuid", vec![sid.clone(), vdi.clone()]);
    let t = fake(&mut e).transfers.values().next().unwrap().clone();
    assert_eq!(t.uuid, uuid.as_str().unwrap());
    assert_eq!(t.at as usize, half / IMPORT_BATCH * IMPORT_BATCH);
    assert!(r.buffered() < IMPORT_BATCH, "{} bytes held", r.buffered());
    let Value::Float(p) = task_field(&mut e, &sid, &task, "progress") else {
        panic!("progress")
    };
    assert!(p > 0.4 && p < 0.6, "progress {p}");
    assert_eq!(
        task_field(&mut e, &sid, &task, "status").as_str(),
        Some("pending")
    );
    let out = send(&mut r, &mut e, 1, &data[half..]);
    let (reply, close) = client_sees(&out, 1);
    let reply = String::from_utf8_lossy(&reply).to_string();
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
    assert!(!close, "kept alive");
    assert_eq!(
        task_field(&mut e, &sid, &task, "status").as_str(),
        Some("success")
    );
    let result = task_field(&mut e, &sid, &task, "result");
    assert!(
        result.as_str().unwrap().contains(vdi.as_str().unwrap()),
        "{result:?}"
    );
    let stored = fake(&mut e).data[uuid.as_str().unwrap()].clone();
    assert_eq!(&stored[..data.len()], &data[..]);
    assert!(stored[data.len()..].iter().all(|&b| b == 0));
    assert_eq!(e.transfers(), 0);

    // Export on the same connection, by uuid, without a task of its own.
    let head = format!(
        "GET /export_raw_vdi?session_id={}&vdi={}&format=raw HTTP/1.1\r\n\r\n",
        sid_text(&sid),
        uuid.as_str().unwrap()
    );
    let mut got = Vec::new();
    let mut out = send(&mut r, &mut e, 1, head.as_bytes());
    loop {
        let (bytes, close) = client_sees(&out, 1);
        assert!(!close);
        got.extend_from_slice(&bytes);
        if !r.has_parked() {
            break;
        }
        out = VecDeque::new();
        r.tick(&mut e, T0, LINK, &mut out);
    }
    let text = String::from_utf8_lossy(&got[..200]).to_string();
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(text.contains("Content-Length: 1048576\r\n"), "{text}");
    let body_at = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(got.len() - body_at, 1 << 20);
    assert_eq!(&got[body_at..], &stored[..]);
    assert_eq!(e.transfers(), 0);
}

#[test]
fn refusals_before_any_byte_moves() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let vdi = new_vdi(&mut e, &sid, 1 << 20);
    let (sid, vdi) = (sid_text(&sid), vdi.as_str().unwrap().to_string());
    let cases = [
        (
            format!("PUT /import_raw_vdi?vdi={vdi} HTTP/1.1\r\nContent-Length: 1\r\n\r\n"),
            401,
        ),
        (
            format!("PUT /import_raw_vdi?session_id={sid}&vdi=nope HTTP/1.1\r\nContent-Length: 1\r\n\r\n"),
            404,
        ),
        (
            format!("POST /import_raw_vdi?session_id={sid}&vdi={vdi} HTTP/1.1\r\nContent-Length: 1\r\n\r\n"),
            405,
        ),
        (
            format!("PUT /import_raw_vdi?session_id={sid}&vdi={vdi} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            411,
        ),
        (
            format!("PUT /import_raw_vdi?session_id={sid}&vdi={vdi}&format=qcow2 HTTP/1.1\r\nContent-Length: 1\r\n\r\n"),
            400,
        ),
        (
            format!("PUT /import_raw_vdi?session_id={sid}&vdi={vdi} HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n"),
            500,
        ),
    ];
    for (i, (head, status)) in cases.iter().enumerate() {
        let mut r = Relayed::new();
        let out = send(&mut r, &mut e, i as u32, head.as_bytes());
        let (reply, close) = client_sees(&out, i as u32);
        let reply = String::from_utf8_lossy(&reply).to_string();
        assert!(
            reply.starts_with(&format!("HTTP/1.1 {status} ")),
            "{head}: {reply}"
        );
        assert!(close, "{head}");
        assert_eq!(e.transfers(), 0);
    }
}

#[test]
fn a_snapshot_or_an_attached_vdi_is_not_imported_into() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let vdi = new_vdi(&mut e, &sid, 1 << 20);
    let snap = ok(
        &mut e,
        "VDI.snapshot",
        vec![sid.clone(), vdi.clone(), Value::Map(BTreeMap::new())],
    );
    let task = ok(&mut e, "task.create", vec![sid.clone(), s("up"), s("")]);
    let head = format!(
        "PUT /import_raw_vdi?session_id={}&vdi={}&task_id={} HTTP/1.1\r\nContent-Length: 512\r\n\r\n",
        sid_text(&sid),
        snap.as_str().unwrap(),
        task.as_str().unwrap()
    );
    let mut r = Relayed::new();
    let out = send(&mut r, &mut e, 1, head.as_bytes());
    let reply = String::from_utf8_lossy(&client_sees(&out, 1).0).to_string();
    assert!(reply.starts_with("HTTP/1.1 409 "), "{reply}");
    assert_eq!(
        task_field(&mut e, &sid, &task, "status").as_str(),
        Some("failure")
    );
    let Value::Array(info) = task_field(&mut e, &sid, &task, "error_info") else {
        panic!("error_info")
    };
    assert_eq!(info[0], s("VDI_READONLY"));
}

#[test]
fn a_client_gone_mid_image_fails_its_task_and_frees_the_transfer() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let vdi = new_vdi(&mut e, &sid, 64 << 20);
    let task = ok(&mut e, "task.create", vec![sid.clone(), s("up"), s("")]);
    let head = format!(
        "PUT /import_raw_vdi?session_id={}&vdi={}&task_id={} HTTP/1.1\r\nContent-Length: 65536\r\n\r\n",
        sid_text(&sid),
        vdi.as_str().unwrap(),
        task.as_str().unwrap()
    );
    let mut r = Relayed::new();
    let mut body = head.into_bytes();
    body.extend(image(40_000));
    send(&mut r, &mut e, 9, &body);
    assert_eq!(e.transfers(), 1);
    assert_eq!(fake(&mut e).transfers.len(), 1);
    let mut out = VecDeque::new();
    r.on_message(&mut e, T0, LINK, ToToolstack::Closed { conn: 9 }, &mut out);
    assert_eq!(e.transfers(), 0);
    assert!(fake(&mut e).transfers.is_empty(), "the SR forgot it");
    assert_eq!(
        task_field(&mut e, &sid, &task, "status").as_str(),
        Some("failure")
    );
    // A second one, dropped with its relay link.
    let task = ok(&mut e, "task.create", vec![sid.clone(), s("down"), s("")]);
    let head = format!(
        "GET /export_raw_vdi?session_id={}&vdi={}&task_id={} HTTP/1.1\r\n\r\n",
        sid_text(&sid),
        vdi.as_str().unwrap(),
        task.as_str().unwrap()
    );
    let out = send(&mut r, &mut e, 10, head.as_bytes());
    assert!(!client_sees(&out, 10).0.is_empty());
    assert!(r.has_parked(), "the export waits for the backlog to drain");
    assert_eq!(r.drop_link(&mut e, T0, LINK), 1);
    assert_eq!(e.transfers(), 0);
    assert_eq!(
        task_field(&mut e, &sid, &task, "status").as_str(),
        Some("failure")
    );
}

#[test]
fn an_sr_failure_mid_image_answers_500_and_fails_the_task() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let vdi = new_vdi(&mut e, &sid, 1 << 20);
    let task = ok(&mut e, "task.create", vec![sid.clone(), s("up"), s("")]);
    let head = format!(
        "PUT /import_raw_vdi?session_id={}&vdi={}&task_id={} HTTP/1.1\r\nContent-Length: 131072\r\n\r\n",
        sid_text(&sid),
        vdi.as_str().unwrap(),
        task.as_str().unwrap()
    );
    let mut r = Relayed::new();
    send(&mut r, &mut e, 2, head.as_bytes());
    fake(&mut e).fail_next = Some("the disk failed".into());
    let out = send(&mut r, &mut e, 2, &image(IMPORT_BATCH));
    let (reply, close) = client_sees(&out, 2);
    let reply = String::from_utf8_lossy(&reply).to_string();
    assert!(reply.starts_with("HTTP/1.1 500 "), "{reply}");
    assert!(reply.contains("the disk failed"), "{reply}");
    assert!(close);
    assert_eq!(
        task_field(&mut e, &sid, &task, "status").as_str(),
        Some("failure")
    );
    assert_eq!(e.transfers(), 0);
}

/// A long import moves its task in steps of a percent at most: a client
/// that follows only VMs must not be pushed out of the event window
/// (EVENTS_LOST) by one image's progress.
#[test]
fn an_import_moves_its_task_a_hundred_times_at_most() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let len = 2000 * IMPORT_BATCH;
    let vdi = new_vdi(&mut e, &sid, len as i64);
    let watcher = ok(
        &mut e,
        "event.from",
        vec![
            sid.clone(),
            Value::Array(vec![s("vm")]),
            s(""),
            Value::Float(0.0),
        ],
    );
    let Value::Map(w) = watcher else {
        panic!("event.from")
    };
    let token = w["token"].clone();
    let task = ok(&mut e, "task.create", vec![sid.clone(), s("up"), s("")]);
    let mut r = Relayed::new();
    let head = format!(
        "PUT /import_raw_vdi?session_id={}&vdi={}&task_id={} HTTP/1.1\r\nContent-Length: {len}\r\n\r\n",
        sid_text(&sid),
        vdi.as_str().unwrap(),
        task.as_str().unwrap(),
    );
    send(&mut r, &mut e, 1, head.as_bytes());
    let batch = image(IMPORT_BATCH);
    let mut out = VecDeque::new();
    for _ in 0..2000 {
        out = send(&mut r, &mut e, 1, &batch);
    }
    let (reply, _) = client_sees(&out, 1);
    assert!(reply.starts_with(b"HTTP/1.1 200 OK"));
    let Value::Map(all) = ok(
        &mut e,
        "event.from",
        vec![
            sid.clone(),
            Value::Array(vec![s("task")]),
            token.clone(),
            Value::Float(0.0),
        ],
    ) else {
        panic!("event.from")
    };
    let Value::Array(events) = &all["events"] else {
        panic!("events")
    };
    assert!(
        (50..=102).contains(&events.len()),
        "{} task events for one import",
        events.len()
    );
    // The VM follower's token is still good.
    ok(
        &mut e,
        "event.from",
        vec![sid, Value::Array(vec![s("vm")]), token, Value::Float(0.0)],
    );
}

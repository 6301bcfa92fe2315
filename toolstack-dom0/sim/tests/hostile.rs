//! Hostile inputs against xcp-sim: malformed HTTP/XML/JSON, huge bodies and
//! headers, deep nesting, wrong types, 1,000 concurrent logins, a connection
//! flood. The server answers with a 4xx or a XenAPI error and stays healthy.

mod common;

use std::io::Write;
use std::net::TcpStream;

use common::*;
use serde_json::json;

fn healthy(port: u16) {
    let sid = login(port);
    let vms = rpc(port, "VM.get_all", json!([sid])).expect("normal call works");
    assert!(vms.as_array().is_some_and(|a| !a.is_empty()));
}

fn body_str(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn malformed_requests_get_4xx_or_xenapi_errors() {
    let sim = Sim::start(&state_dir("hostile"));
    let p = sim.port;
    // HTTP garbage.
    assert_eq!(raw_request(p, b"\x00\x01\x02 nonsense\r\n\r\n").0, 400);
    assert_eq!(
        raw_request(p, b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n").0,
        400
    );
    // Chunked bodies are decoded; unknown codings are 501.
    let call = b"<methodCall><methodName>system.listMethods</methodName></methodCall>";
    let mut chunked =
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for part in call.chunks(10) {
        chunked.extend(format!("{:x}\r\n", part.len()).as_bytes());
        chunked.extend(part);
        chunked.extend(b"\r\n");
    }
    chunked.extend(b"0\r\n\r\n");
    let (st, b) = raw_request(p, &chunked);
    assert_eq!(st, 200);
    assert!(body_str(&b).contains("VM.get_all_records"));
    assert_eq!(
        raw_request(p, b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n").0,
        501
    );
    assert_eq!(
        raw_request(
            p,
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nfffffffff\r\n"
        )
        .0,
        413
    );
    assert_eq!(
        raw_request(p, b"POST / HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n").0,
        413
    );
    let mut big_head = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
    big_head.extend(vec![b'a'; 64 * 1024]);
    assert_eq!(raw_request(p, &big_head).0, 431);
    let mut many = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..200 {
        many.extend(format!("X-{i}: y\r\n").as_bytes());
    }
    many.extend(b"\r\n");
    assert_eq!(raw_request(p, &many).0, 431);
    assert_eq!(post(p, "/nowhere", "text/xml", b"<x/>").0, 404);
    assert_eq!(
        raw_request(p, b"DELETE / HTTP/1.1\r\nConnection: close\r\n\r\n").0,
        405
    );
    // XML-RPC garbage, DTDs, deep nesting.
    let (st, b) = post(
        p,
        "/",
        "text/xml",
        b"<methodCall><methodName>VM.get_all</methodName><params>",
    );
    assert_eq!(st, 400);
    assert!(body_str(&b).contains("XMLRPC_UNMARSHAL_FAILURE"));
    let dtd = br#"<?xml version="1.0"?><!DOCTYPE lol [<!ENTITY a "aaaa">]><methodCall><methodName>&a;</methodName></methodCall>"#;
    assert_eq!(post(p, "/", "text/xml", dtd).0, 400);
    let mut deep = String::from("<methodCall><methodName>VM.get_all</methodName><params><param>");
    for _ in 0..5000 {
        deep.push_str("<value><array><data>");
    }
    assert_eq!(post(p, "/", "text/xml", deep.as_bytes()).0, 400);
    // JSON garbage and deep nesting.
    assert_eq!(
        post(p, "/jsonrpc", "application/json", b"{\"method\":").0,
        400
    );
    assert_eq!(
        post(
            p,
            "/jsonrpc",
            "application/json",
            b"{\"method\":\"VM.get_all\",\"id\":null}"
        )
        .0,
        400
    );
    let deep = format!(
        "{{\"method\":\"x\",\"params\":{}{},\"id\":1}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert_eq!(
        post(p, "/jsonrpc", "application/json", deep.as_bytes()).0,
        400
    );
    // A body just under the limit is read and refused as a call, not a crash.
    let filler = format!(
        "{{\"method\":\"VM.get_all\",\"params\":[\"{}\"],\"id\":1}}",
        "a".repeat(xenapi::http::MAX_BODY - 100)
    );
    let (st, b) = post(p, "/jsonrpc", "application/json", filler.as_bytes());
    assert_eq!(st, 200);
    assert!(body_str(&b).contains("SESSION_INVALID"));
    // Wrong types and counts are XenAPI errors.
    let sid = login(p);
    let vm = rpc(p, "VM.get_all", json!([sid])).unwrap()[0].clone();
    let e = rpc(p, "VM.set_VCPUs_max", json!([sid, vm, {"a": 1}])).unwrap_err();
    assert_eq!(e["message"], "FIELD_TYPE_ERROR");
    let e = rpc(p, "VM.get_record", json!([sid, 42])).unwrap_err();
    assert_eq!(e["message"], "FIELD_TYPE_ERROR");
    let e = rpc(p, "VM.get_record", json!([sid, vm, vm])).unwrap_err();
    assert_eq!(e["message"], "MESSAGE_PARAMETER_COUNT_MISMATCH");
    let e = rpc(p, "VM.create", json!([sid, "not a record"])).unwrap_err();
    assert_eq!(e["message"], "FIELD_TYPE_ERROR");
    let e = rpc(p, "no.such", json!([])).unwrap_err();
    assert_eq!(e["message"], "MESSAGE_METHOD_UNKNOWN");
    let e = rpc(p, "VM.get_all", json!([{"x": 1}])).unwrap_err();
    assert_eq!(e["message"], "SESSION_INVALID");
    healthy(p);
}

#[test]
fn thousand_concurrent_logins_and_connection_flood() {
    let sim = Sim::start(&state_dir("logins"));
    let p = sim.port;
    let threads: Vec<_> = (0..50)
        .map(|_| {
            std::thread::spawn(move || {
                let mut ok = 0;
                for _ in 0..20 {
                    let r = rpc(
                        p,
                        "session.login_with_password",
                        json!(["root", PASSWORD, "1.0", "flood"]),
                    );
                    if r.is_ok_and(|v| v.as_str().is_some_and(|s| s.starts_with("OpaqueRef:"))) {
                        ok += 1;
                    }
                }
                ok
            })
        })
        .collect();
    let total: i32 = threads
        .into_iter()
        .map(|t| t.join().expect("login thread"))
        .sum();
    assert_eq!(total, 1000);
    healthy(p);
    // Hold more idle connections than the server allows: the excess gets 503.
    let mut held = Vec::new();
    for _ in 0..300 {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", p)) {
            held.push(s);
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut refused = 0;
    for s in held.iter_mut().skip(256) {
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let _ = s.write_all(b"GET / HTTP/1.1\r\n\r\n");
        let mut buf = [0u8; 64];
        if let Ok(n) = std::io::Read::read(s, &mut buf) {
            if String::from_utf8_lossy(&buf[..n]).contains("503") {
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "excess connections were not refused");
    drop(held);
    std::thread::sleep(std::time::Duration::from_millis(500));
    healthy(p);
}

#[test]
fn keep_alive_and_pipelined_requests() {
    use std::io::Read;
    let sim = Sim::start(&state_dir("keepalive"));
    let call = b"<methodCall><methodName>system.listMethods</methodName></methodCall>";
    let one = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        call.len()
    );
    let mut req = Vec::new();
    for _ in 0..3 {
        req.extend(one.as_bytes());
        req.extend(call);
    }
    let mut s = TcpStream::connect(("127.0.0.1", sim.port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    // Three pipelined requests in one write, split at an odd boundary.
    s.write_all(&req[..17]).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    s.write_all(&req[17..]).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    while got.windows(15).filter(|w| w == b"HTTP/1.1 200 OK").count() < 3 {
        let n = s.read(&mut buf).expect("three replies on one connection");
        assert!(n > 0, "server closed a keep-alive connection");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&got).contains("Connection: keep-alive"));
    // The connection is still usable afterwards.
    s.write_all(&req[..one.len() + call.len()]).unwrap();
    while got.windows(15).filter(|w| w == b"HTTP/1.1 200 OK").count() < 4 {
        let n = s.read(&mut buf).expect("a fourth reply");
        assert!(n > 0, "server closed a keep-alive connection");
        got.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn expect_100_continue() {
    use std::io::Read;
    let sim = Sim::start(&state_dir("continue"));
    let call = b"<methodCall><methodName>system.listMethods</methodName></methodCall>";
    let head = format!(
        "POST / HTTP/1.1\r\nExpect: 100-continue\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        call.len()
    );
    let mut s = TcpStream::connect(("127.0.0.1", sim.port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).expect("interim response");
    assert_eq!(&buf[..n], b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(call).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(String::from_utf8_lossy(&rest).starts_with("HTTP/1.1 200 OK"));
}

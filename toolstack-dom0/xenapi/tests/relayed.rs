//! `xenapi::relayed`: client streams relayed over several links (dom0 keeps
//! one per relay domain), keyed by (link, connection), a link dropped with
//! its parked calls when its relay dies, the per-request bound, and the
//! bound on all connections' bytes together (503, never a panic).

use std::collections::VecDeque;

use xcp_relay::{FromToolstack, ToToolstack};
use xenapi::relayed::{Relayed, MAX_BUFFER, MAX_QUEUED, MAX_TOTAL};
use xenapi::wal::MemStorage;

mod common;
use common::{new_vm, ok, open, s, E, T0};

fn engine() -> E {
    open(MemStorage::default())
}

fn request(body: &str) -> Vec<u8> {
    format!(
        "POST /jsonrpc HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn data(conn: u32, bytes: Vec<u8>) -> ToToolstack {
    ToToolstack::Data { conn, bytes }
}

/// The reply bytes queued for `conn`, as text.
fn replies(out: &mut VecDeque<FromToolstack>, conn: u32) -> String {
    let mut text = String::new();
    for m in out.drain(..) {
        if let FromToolstack::Data { conn: c, bytes } = m {
            if c == conn {
                text.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
    }
    text
}

fn login(r: &mut Relayed, e: &mut E, link: u32, conn: u32) -> String {
    let mut out = VecDeque::new();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"session.login_with_password","params":["root","pw","1.0","t"]}"#;
    r.on_message(e, T0, link, data(conn, request(body)), &mut out);
    let text = replies(&mut out, conn);
    let start = text.find("OpaqueRef:").expect(&text);
    text[start..start + 46].to_owned()
}

#[test]
fn links_are_separate_and_a_dropped_link_takes_its_parked_calls() {
    let mut e = engine();
    let mut r = Relayed::new();
    // The same connection number on two links: two connections.
    let session = login(&mut r, &mut e, 7, 1);
    let _ = login(&mut r, &mut e, 9, 1);
    assert_eq!(r.len(), 2);
    // A parked event.from on link 7.
    let mut out = VecDeque::new();
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":2,"method":"event.from","params":["{session}",["vm"],"",0.0]}}"#
    );
    r.on_message(&mut e, T0, 7, data(1, request(&body)), &mut out);
    let text = replies(&mut out, 1);
    let json = &text[text.find("\r\n\r\n").expect(&text) + 4..];
    let reply: serde_json::Value = serde_json::from_str(json).expect(json);
    let token = reply["result"]["token"].as_str().expect(json).to_owned();
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":3,"method":"event.from","params":["{session}",["vm"],"{token}",30.0]}}"#
    );
    r.on_message(&mut e, T0, 7, data(1, request(&body)), &mut out);
    let _ = replies(&mut out, 1);
    assert!(r.has_parked());
    // The relay behind link 7 dies: its connections and the parked call go,
    // link 9's stays.
    assert_eq!(r.drop_link(&mut e, T0, 7), 1);
    assert!(!r.has_parked());
    assert_eq!(r.len(), 1);
    // Link 9's connection 1 is still served.
    let body = r#"{"jsonrpc":"2.0","id":4,"method":"system.listMethods","params":[]}"#;
    r.on_message(&mut e, T0, 9, data(1, request(body)), &mut out);
    assert!(replies(&mut out, 1).contains("event.from"));
    // Closed forgets a connection.
    r.on_message(&mut e, T0, 9, ToToolstack::Closed { conn: 1 }, &mut out);
    assert!(r.is_empty());
}

#[test]
fn a_request_past_the_buffer_bound_closes_its_connection() {
    let mut e = engine();
    let mut r = Relayed::new();
    let mut out = VecDeque::new();
    // A head that never ends, fed in chunks past MAX_BUFFER.
    let mut sent = 0;
    r.on_message(
        &mut e,
        T0,
        1,
        data(4, b"POST / HTTP/1.1\r\nX: ".to_vec()),
        &mut out,
    );
    while sent <= MAX_BUFFER && out.is_empty() {
        r.on_message(&mut e, T0, 1, data(4, vec![b'a'; 16 * 1024]), &mut out);
        sent += 16 * 1024;
    }
    assert!(
        out.iter()
            .any(|m| matches!(m, FromToolstack::Close { conn: 4 })),
        "{out:?}"
    );
    assert!(r.is_empty());
}

#[test]
fn counters_from_a_relay_hold_nothing_and_answer_nothing() {
    let mut e = engine();
    let mut r = Relayed::new();
    let mut out = VecDeque::new();
    let stats = ToToolstack::Stats(xcp_relay::RelayStats {
        nic_interrupts: 5,
        ..Default::default()
    });
    r.on_message(&mut e, T0, 7, stats.clone(), &mut out);
    assert!(out.is_empty() && r.is_empty());
    // Between a connection's requests they change nothing for it.
    let session = login(&mut r, &mut e, 7, 1);
    r.on_message(&mut e, T0, 7, stats, &mut out);
    assert!(out.is_empty());
    assert_eq!(r.len(), 1);
    assert!(session.starts_with("OpaqueRef:"));
}

#[test]
fn bodies_past_the_total_bound_get_503_and_the_rest_keep_their_bytes() {
    let mut e = engine();
    let mut r = Relayed::new();
    let mut out = VecDeque::new();
    let head = format!(
        "POST /jsonrpc HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
        xenapi::http::MAX_BODY
    );
    // Connections on two links each send a head and most of a body.
    let mut refused = Vec::new();
    for conn in 1..=12u32 {
        let link = conn % 2;
        r.on_message(
            &mut e,
            T0,
            link,
            data(conn, head.clone().into_bytes()),
            &mut out,
        );
        for _ in 0..(xenapi::http::MAX_BODY / (16 << 10) - 1) {
            r.on_message(&mut e, T0, link, data(conn, vec![b' '; 16 << 10]), &mut out);
        }
        let text = replies(&mut out, conn);
        if !text.is_empty() {
            assert!(text.starts_with("HTTP/1.1 503 "), "{text}");
            refused.push(conn);
        }
        assert!(r.buffered() <= MAX_TOTAL);
    }
    // As many partial requests fit as MAX_TOTAL holds (counting what
    // their buffers allocated: up to twice what they hold); the rest were
    // refused, not panicked on.
    let each = head.len() + xenapi::http::MAX_BODY - (16 << 10);
    assert!(refused.len() >= 12 - MAX_TOTAL / each, "{refused:?}");
    assert!(refused.len() <= 12 - MAX_TOTAL / (2 * each), "{refused:?}");
    assert_eq!(r.refused(), refused.len() as u64);
    assert_eq!(r.len(), 12 - refused.len());
    // A client that goes away gives its bytes back: a login fits again.
    let held = r.buffered();
    r.on_message(&mut e, T0, 1, ToToolstack::Closed { conn: 1 }, &mut out);
    assert!(r.buffered() < held);
    let _ = login(&mut r, &mut e, 1, 99);
    // Dropping a link gives back all its connections' bytes.
    r.drop_link(&mut e, T0, 0);
    r.drop_link(&mut e, T0, 1);
    assert_eq!(r.buffered(), 0);
}

#[test]
fn pipelined_big_replies_wait_for_the_backlog_to_drain() {
    let mut e = engine();
    let sid = ok(
        &mut e,
        "session.login_with_password",
        vec![s("root"), s("pw"), s("1.0"), s("t")],
    );
    for i in 0..150 {
        new_vm(&mut e, &sid, &format!("vm-{i}"));
    }
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"VM.get_all_records","params":["{}"]}}"#,
        sid.as_str().unwrap()
    );
    // 24 calls pipelined in one message: their replies together are
    // several times the backlog bound.
    const CALLS: usize = 24;
    let mut stream = Vec::new();
    for _ in 0..CALLS {
        stream.extend(request(&body));
    }
    let mut r = Relayed::new();
    let mut out = VecDeque::new();
    r.on_message(&mut e, T0, 7, data(1, stream), &mut out);
    let mut answered = 0;
    let mut rounds = 0;
    loop {
        let queued: usize = out
            .iter()
            .map(|m| match m {
                FromToolstack::Data { bytes, .. } => bytes.len(),
                _ => 0,
            })
            .sum();
        let text = replies(&mut out, 1);
        let one = text.len() / text.matches("HTTP/1.1 200 OK").count().max(1);
        // At most the bound plus one reply waits for the relay.
        assert!(queued < MAX_QUEUED + one, "{queued} B queued");
        answered += text.matches("HTTP/1.1 200 OK").count();
        if answered == CALLS {
            break;
        }
        assert!(r.has_parked(), "the rest wait, deferred");
        // The relay took the backlog; the board ticks the link.
        r.tick(&mut e, T0, 7, &mut out);
        rounds += 1;
        assert!(rounds < CALLS, "no progress");
    }
    assert!(rounds > 1, "the replies were spread over rounds");
    assert!(!r.has_parked());
}

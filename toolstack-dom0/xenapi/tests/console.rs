//! A VM's text console over relayed HTTP: `CONNECT` on its console's
//! `location` with a session (query or cookie) is answered `200 OK`, then
//! the console's history and live output go to the client and its bytes
//! into the guest's input (as the guest takes them); refusals (401, 404);
//! the connection closes when the VM stops.

use std::collections::VecDeque;

use xcp_relay::{FromToolstack, ToToolstack};
use xenapi::hypervisor::FAKE_INPUT_ROOM;
use xenapi::relayed::{Relayed, MAX_CONSOLE_INPUT};
use xenapi::value::Value;
use xenapi::wal::MemStorage;

mod common;
use common::{login, new_vm, ok, open, s, E, T0};

const LINK: u32 = 3;

/// A running VM: (session, its console's ref, location, uuid, domid).
fn running_vm(e: &mut E) -> (String, String, String, String, u32) {
    let sid = login(e);
    let vm = new_vm(e, &sid, "guest");
    let no = Value::Bool(false);
    ok(e, "VM.start", vec![sid.clone(), vm.clone(), no.clone(), no]);
    let consoles = ok(e, "VM.get_consoles", vec![sid.clone(), vm.clone()]);
    let Value::Array(consoles) = consoles else {
        panic!("consoles: {consoles:?}")
    };
    assert_eq!(consoles.len(), 1, "a running VM has one text console");
    let console = consoles[0].clone();
    let get = |e: &mut E, m: &str| {
        ok(e, m, vec![sid.clone(), console.clone()])
            .as_str()
            .expect("a string")
            .to_owned()
    };
    assert_eq!(get(e, "console.get_protocol"), "vt100");
    let location = get(e, "console.get_location");
    let uuid = get(e, "console.get_uuid");
    let domid = ok(e, "VM.get_domid", vec![sid.clone(), vm]);
    let domid = match domid {
        Value::Int(d) => d as u32,
        Value::String(d) => d.parse().expect("domid"),
        other => panic!("domid {other:?}"),
    };
    let sid = sid.as_str().expect("session").to_owned();
    let console = console.as_str().expect("ref").to_owned();
    (sid, console, location, uuid, domid)
}

fn send(r: &mut Relayed, e: &mut E, conn: u32, bytes: &[u8]) -> VecDeque<FromToolstack> {
    let mut out = VecDeque::new();
    let msg = ToToolstack::Data {
        conn,
        bytes: bytes.to_vec(),
    };
    r.on_message(e, T0, LINK, msg, &mut out);
    out
}

/// What `out` sends to the client of `conn`, whether it tells the relay
/// the connection streams, and whether it closes it.
fn client_sees(out: VecDeque<FromToolstack>, conn: u32) -> (String, bool, bool) {
    let (mut text, mut stream, mut close) = (String::new(), false, false);
    for m in out {
        match m {
            FromToolstack::Data { conn: c, bytes } if c == conn => {
                text.push_str(&String::from_utf8_lossy(&bytes))
            }
            FromToolstack::Stream { conn: c } if c == conn => stream = true,
            FromToolstack::Close { conn: c } if c == conn => close = true,
            _ => {}
        }
    }
    (text, stream, close)
}

fn guest_writes(e: &mut E, domid: u32, bytes: &[u8]) {
    e.hypervisor()
        .consoles
        .get_mut(&domid)
        .expect("console")
        .0
        .extend_from_slice(bytes);
}

fn guest_input(e: &mut E, domid: u32) -> Vec<u8> {
    std::mem::take(&mut e.hypervisor().consoles.get_mut(&domid).expect("console").1)
}

#[test]
fn attach_streams_history_then_output_and_input_reaches_the_guest() {
    let mut e = open(MemStorage::default());
    let mut r = Relayed::new();
    let (sid, console, location, _, domid) = running_vm(&mut e);
    assert!(
        location.ends_with(&format!("/console?ref={console}")),
        "{location}"
    );
    guest_writes(&mut e, domid, b"booted\r\n");
    let request = format!("CONNECT /console?ref={console}&session_id={sid} HTTP/1.0\r\n\r\n");
    let (text, stream, close) = client_sees(send(&mut r, &mut e, 1, request.as_bytes()), 1);
    assert!(stream && !close);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(
        text.ends_with("\r\n\r\nbooted\r\n"),
        "the history follows: {text}"
    );
    assert_eq!(r.consoles(), 1);
    assert!(
        r.has_parked(),
        "the board ticks while a console is attached"
    );

    // Live output on a tick, only what is new.
    guest_writes(&mut e, domid, b"login: ");
    let mut out = VecDeque::new();
    r.tick(&mut e, T0, LINK, &mut out);
    assert_eq!(client_sees(out, 1).0, "login: ");
    let mut out = VecDeque::new();
    r.tick(&mut e, T0, LINK, &mut out);
    assert!(out.is_empty());

    // Keystrokes go to the guest raw, not parsed as HTTP.
    let (text, _, close) = client_sees(send(&mut r, &mut e, 1, b"root\r"), 1);
    assert!(text.is_empty() && !close);
    assert_eq!(guest_input(&mut e, domid), b"root\r");

    // Input the guest has no room for waits, then goes in as it reads.
    let long = vec![b'k'; FAKE_INPUT_ROOM + 5];
    send(&mut r, &mut e, 1, &long);
    assert_eq!(guest_input(&mut e, domid).len(), FAKE_INPUT_ROOM);
    r.tick(&mut e, T0, LINK, &mut VecDeque::new());
    assert_eq!(guest_input(&mut e, domid), [b'k'; 5]);
    // ... at most MAX_CONSOLE_INPUT bytes wait; the rest are dropped.
    send(
        &mut r,
        &mut e,
        1,
        &vec![b'x'; MAX_CONSOLE_INPUT + FAKE_INPUT_ROOM + 100],
    );
    let mut held = guest_input(&mut e, domid).len();
    for _ in 0..1000 {
        r.tick(&mut e, T0, LINK, &mut VecDeque::new());
        held += guest_input(&mut e, domid).len();
    }
    assert_eq!(held, MAX_CONSOLE_INPUT);

    // The VM stops: its console goes, and the connection is closed.
    let vm = ok(&mut e, "VM.get_by_name_label", vec![s(&sid), s("guest")]);
    let Value::Array(vm) = vm else { panic!() };
    ok(&mut e, "VM.hard_shutdown", vec![s(&sid), vm[0].clone()]);
    let mut out = VecDeque::new();
    r.tick(&mut e, T0, LINK, &mut out);
    assert!(client_sees(out, 1).2, "closed when the VM stops");
    assert_eq!(r.consoles(), 0);
    assert!(r.is_empty());
}

#[test]
fn session_from_a_cookie_and_console_by_uuid() {
    let mut e = open(MemStorage::default());
    let mut r = Relayed::new();
    let (sid, _, _, uuid, domid) = running_vm(&mut e);
    guest_writes(&mut e, domid, b"hi");
    let request = format!(
        "CONNECT /console?uuid={uuid} HTTP/1.1\r\nHost: h\r\nCookie: a=b; session_id={sid}\r\n\r\n"
    );
    let (text, stream, _) = client_sees(send(&mut r, &mut e, 2, request.as_bytes()), 2);
    assert!(
        stream && text.starts_with("HTTP/1.1 200 OK") && text.ends_with("hi"),
        "{text}"
    );
}

#[test]
fn refusals_401_and_404_close_the_connection() {
    let mut e = open(MemStorage::default());
    let mut r = Relayed::new();
    let (sid, console, _, _, _) = running_vm(&mut e);
    let cases = [
        (
            format!("CONNECT /console?ref={console} HTTP/1.0\r\n\r\n"),
            "401",
        ),
        (
            format!("CONNECT /console?ref={console}&session_id=OpaqueRef:nope HTTP/1.0\r\n\r\n"),
            "401",
        ),
        (
            format!("CONNECT /console?ref=OpaqueRef:nope&session_id={sid} HTTP/1.0\r\n\r\n"),
            "404",
        ),
        (
            format!("CONNECT /console?session_id={sid} HTTP/1.0\r\n\r\n"),
            "404",
        ),
        (
            format!("CONNECT /other?session_id={sid} HTTP/1.0\r\n\r\n"),
            "404",
        ),
    ];
    for (conn, (request, status)) in (10u32..).zip(cases) {
        let (text, stream, close) =
            client_sees(send(&mut r, &mut e, conn, request.as_bytes()), conn);
        assert!(
            text.starts_with(&format!("HTTP/1.1 {status}")),
            "{request}: {text}"
        );
        assert!(!stream && close, "{request}");
    }
    assert!(r.is_empty());
}

#[test]
fn a_halted_vms_console_is_gone() {
    let mut e = open(MemStorage::default());
    let mut r = Relayed::new();
    let (sid, console, _, _, _) = running_vm(&mut e);
    let vm = ok(&mut e, "VM.get_by_name_label", vec![s(&sid), s("guest")]);
    let Value::Array(vm) = vm else { panic!() };
    ok(&mut e, "VM.hard_shutdown", vec![s(&sid), vm[0].clone()]);
    let request = format!("CONNECT /console?ref={console}&session_id={sid} HTTP/1.0\r\n\r\n");
    let (text, _, close) = client_sees(send(&mut r, &mut e, 1, request.as_bytes()), 1);
    assert!(text.starts_with("HTTP/1.1 404") && close, "{text}");
}

#[test]
fn a_vm_whose_console_dom0_does_not_relay_gets_404() {
    let mut e = open(MemStorage::default());
    let mut r = Relayed::new();
    let (sid, console, _, _, domid) = running_vm(&mut e);
    // Past budget::VM_CONSOLES dom0 relays no console for a new VM.
    e.hypervisor().consoles.remove(&domid);
    let request = format!("CONNECT /console?ref={console}&session_id={sid} HTTP/1.0\r\n\r\n");
    let (text, stream, close) = client_sees(send(&mut r, &mut e, 1, request.as_bytes()), 1);
    assert!(
        text.starts_with("HTTP/1.1 404") && !stream && close,
        "{text}"
    );
    assert!(text.contains("dom0 relays no console"), "{text}");
}

#[test]
fn pipelined_keystrokes_after_the_connect_reach_the_guest() {
    let mut e = open(MemStorage::default());
    let mut r = Relayed::new();
    let (sid, console, _, _, domid) = running_vm(&mut e);
    // The client types before the 200 arrived: the bytes after the head
    // are console input, not another request.
    let request =
        format!("CONNECT /console?ref={console}&session_id={sid} HTTP/1.0\r\n\r\nPOST / x\r");
    let (text, stream, close) = client_sees(send(&mut r, &mut e, 1, request.as_bytes()), 1);
    assert!(
        stream && !close && text.starts_with("HTTP/1.1 200"),
        "{text}"
    );
    assert_eq!(guest_input(&mut e, domid), b"POST / x\r");
}

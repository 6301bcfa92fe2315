//! The XenAPI self-test client: testdom plays the relay domain (netdom's
//! role) and sends JSON-RPC requests over HTTP, as `xcp-relay` messages on
//! an inter-domain channel, to the toolstack in dom0. It logs
//! "xenapi client: all calls passed" when every answer was right.

use alloc::borrow::ToOwned;
use alloc::string::ToString;
use alloc::vec::Vec;

use serde_json::{json, Value};
use xcp_channel::{Channel, Role, SendError};
use xcp_relay::{FromToolstack, ToToolstack};
use xcp_runtime::gnttab::{self, GrantMapping};
use xcp_selftest::three;

struct Client {
    channel: Channel<GrantMapping>,
    port: u32,
    next_id: u64,
    conn: u32,
    inbox: Vec<u8>,
}

impl Client {
    fn wait(&self) {
        // Sleep until dom0 kicks us (or a short timeout, in case of a race).
        let deadline = xcp_runtime::time::now_ns() + 50_000_000;
        let _ = xcp_runtime::event_loop::poll_one(self.port, deadline);
    }

    fn send(&mut self, msg: &ToToolstack) {
        loop {
            match self.channel.send(msg) {
                Ok(n) => {
                    if n.kick() {
                        xcp_runtime::evtchn::send(self.port);
                    }
                    return;
                }
                Err(SendError::WouldBlock(n)) => {
                    if n.kick() {
                        xcp_runtime::evtchn::send(self.port);
                    }
                    self.wait();
                    let _ = self.channel.flush();
                }
                Err(e) => panic!("relay channel: {e:?}"),
            }
        }
    }

    /// One JSON-RPC call; returns `result` or panics with the error.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let body =
            json!({"jsonrpc": "2.0", "method": method, "params": params, "id": self.next_id})
                .to_string();
        let request = alloc::format!(
            "POST /jsonrpc HTTP/1.1\r\nHost: xcp-rs\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
            body.len(),
            body
        );
        for chunk in request.as_bytes().chunks(xcp_relay::MAX_CHUNK) {
            let msg = ToToolstack::Data {
                conn: self.conn,
                bytes: chunk.to_vec(),
            };
            self.send(&msg);
        }
        loop {
            if let Some(reply) = self.take_response() {
                let v: Value = serde_json::from_slice(&reply).expect("a JSON reply");
                if let Some(err) = v.get("error") {
                    panic!("{method}: {err}");
                }
                return v.get("result").cloned().expect("a result");
            }
            let _ = self.channel.flush();
            match self.channel.recv::<FromToolstack>() {
                Ok(Some(FromToolstack::Data { conn, bytes })) if conn == self.conn => {
                    self.inbox.extend_from_slice(&bytes)
                }
                Ok(Some(other)) => panic!("unexpected {other:?}"),
                Ok(None) => {
                    if self.channel.take_notify().kick() {
                        xcp_runtime::evtchn::send(self.port);
                    }
                    self.wait();
                }
                Err(e) => panic!("relay channel: {e:?}"),
            }
        }
    }

    /// A whole HTTP response's body, if the inbox holds one.
    fn take_response(&mut self) -> Option<Vec<u8>> {
        let end = self.inbox.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = core::str::from_utf8(&self.inbox[..end]).expect("an ASCII head");
        assert!(head.starts_with("HTTP/1.1 200"), "HTTP status: {head}");
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .expect("a Content-Length");
        let ctype = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Type: "))
            .unwrap_or("");
        assert_eq!(ctype, "application/json", "xen-api needs exactly this");
        if self.inbox.len() < end + 4 + len {
            return None;
        }
        let body = self.inbox[end + 4..end + 4 + len].to_vec();
        self.inbox.drain(..end + 4 + len);
        Some(body)
    }
}

/// Runs the scenario, logs the verdict, and idles.
pub fn run(arg: &str, password: &str) -> ! {
    let (dom0_tx, dom0_rx, dom0_port) = three(arg).expect("xenapi-relay=<gref>,<gref>,<port>");
    let rx = gnttab::map_grant(0, dom0_tx, false).expect("map dom0's tx page");
    let tx = gnttab::map_grant(0, dom0_rx, false).expect("map dom0's rx page");
    let channel = Channel::new(tx, rx, Role::Acceptor).expect("channel setup");
    let port = xcp_runtime::evtchn::bind_interdomain(0, dom0_port).expect("bind dom0's port");
    let mut c = Client {
        channel,
        port,
        next_id: 0,
        conn: 1,
        inbox: Vec::new(),
    };
    let session = c.call(
        "session.login_with_password",
        json!(["root", password, "1.0", "testdom"]),
    );
    let session = session.as_str().expect("a session ref").to_owned();
    log::info!("xenapi client: logged in");
    let pools = c.call("pool.get_all", json!([session]));
    assert_eq!(pools.as_array().map(Vec::len), Some(1), "one pool");
    let hosts = c.call("host.get_all_records", json!([session]));
    assert_eq!(hosts.as_object().map(|m| m.len()), Some(1), "one host");
    let vm = c.call(
        "VM.create",
        json!([session, {
            "name_label": "guest",
            "PV_kernel": "testdom.elf",
            "PV_args": "xenapi-guest",
            "memory_static_max": 8388608,
            "memory_dynamic_max": 8388608,
            "memory_dynamic_min": 8388608,
            "memory_static_min": 8388608,
            "VCPUs_max": 1,
            "VCPUs_at_startup": 1
        }]),
    );
    let vm = vm.as_str().expect("a VM ref").to_owned();
    c.call("VM.start", json!([session, vm, false, false]));
    let state = c.call("VM.get_power_state", json!([session, vm]));
    assert_eq!(state, json!("Running"));
    let domid = c.call("VM.get_domid", json!([session, vm]));
    let domid = domid
        .as_i64()
        .or_else(|| domid.as_str().and_then(|s| s.parse().ok()))
        .expect("a domid");
    assert!(domid > 0, "the VM runs as a real domain: {domid}");
    log::info!("xenapi client: VM guest is running as domid {domid}");
    c.call("VM.hard_shutdown", json!([session, vm]));
    let state = c.call("VM.get_power_state", json!([session, vm]));
    assert_eq!(state, json!("Halted"));
    c.call("session.logout", json!([session]));
    log::info!("xenapi client: all calls passed (the guest was domid {domid})");
    loop {
        xcp_runtime::event_loop::idle();
    }
}

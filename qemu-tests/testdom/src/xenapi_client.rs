//! The XenAPI self-test client: testdom plays the relay domain (netdom's
//! role) and sends JSON-RPC requests over HTTP, as `xcp-relay` messages on
//! an inter-domain channel, to the toolstack in dom0. It logs
//! "xenapi client: all calls passed" when every answer was right.

use alloc::borrow::ToOwned;
use alloc::string::{String, ToString};
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

fn domid_of(v: &Value) -> i64 {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .expect("a domid")
}

/// Waits with `event.from` for changes to `vm` until its power state is
/// Halted; returns the (power_state, domid) of each VM event seen, in order.
fn follow_until_halted(
    c: &mut Client,
    session: &str,
    vm: &str,
    token: &mut Value,
) -> Vec<(String, i64)> {
    let mut seen = Vec::new();
    for _ in 0..100 {
        let r = c.call("event.from", json!([session, ["vm"], token, 10.0]));
        *token = r["token"].clone();
        for ev in r["events"].as_array().expect("events") {
            if ev["ref"] != json!(vm) || ev["operation"] != json!("mod") {
                continue;
            }
            let snap = &ev["snapshot"];
            let state = snap["power_state"]
                .as_str()
                .expect("a power state")
                .to_owned();
            let d = domid_of(&snap["domid"]);
            log::info!("xenapi client: event: VM guest {state} domid {d}");
            seen.push((state.clone(), d));
            if state == "Halted" {
                return seen;
            }
        }
    }
    panic!("VM guest never halted: {seen:?}");
}

/// The guest crashes by itself (testdom's `panic`): with
/// actions_after_crash = destroy the VM goes Halted; with restart it runs
/// again as new domains until the crash-loop cap halts it. The domids come
/// from the events (the first is VM.start's): the guest may crash before a
/// `VM.get_domid` would answer.
fn crashes(c: &mut Client, session: &str, vm: &str, first: i64) {
    c.call("VM.set_PV_args", json!([session, vm, "panic"]));
    c.call(
        "VM.set_actions_after_crash",
        json!([session, vm, "destroy"]),
    );
    let mut token = c.call("event.from", json!([session, ["vm"], "", 0.0]))["token"].clone();
    c.call("VM.start", json!([session, vm, false, false]));
    let seen = follow_until_halted(c, session, vm, &mut token);
    let (state, d) = seen[0].clone();
    assert_eq!(state, "Running", "{seen:?}");
    assert!(d > first, "a new domain: {seen:?}");
    assert_eq!(seen.len(), 2, "started, then halted: {seen:?}");
    assert_eq!(seen[1], ("Halted".to_owned(), -1));
    let resident = c.call("VM.get_resident_on", json!([session, vm]));
    assert_eq!(resident, json!("OpaqueRef:NULL"));
    log::info!("xenapi client: crash with actions_after_crash=destroy: VM guest (domid {d}) Halted, domid -1");

    c.call(
        "VM.set_actions_after_crash",
        json!([session, vm, "restart"]),
    );
    let mut token = c.call("event.from", json!([session, ["vm"], "", 0.0]))["token"].clone();
    c.call("VM.start", json!([session, vm, false, false]));
    let seen = follow_until_halted(c, session, vm, &mut token);
    let (_, mut last) = seen[0].clone();
    let mut restarts = 0;
    for (state, domid) in &seen[1..] {
        if state == "Running" {
            assert!(*domid > last, "each restart is a new domain: {seen:?}");
            log::info!("xenapi client: crash with actions_after_crash=restart: VM guest Running again as domid {domid} (was {last})");
            last = *domid;
            restarts += 1;
        }
    }
    assert_eq!(seen.last(), Some(&("Halted".to_owned(), -1)));
    assert_eq!(restarts, 5, "the crash-loop cap: {seen:?}");
    log::info!("xenapi client: crash loop: VM guest Halted after {restarts} restarts");
}

/// Creates VM "guest": an 8 MiB, one-vCPU testdom with `pv_args` and the
/// `fields` given; returns its ref.
fn create_guest(c: &mut Client, session: &str, pv_args: &str, fields: &[(&str, &str)]) -> String {
    let mut record = json!({
        "name_label": "guest",
        "PV_kernel": "testdom.elf",
        "PV_args": pv_args,
        "memory_static_max": 8388608,
        "memory_dynamic_max": 8388608,
        "memory_dynamic_min": 8388608,
        "memory_static_min": 8388608,
        "VCPUs_max": 1,
        "VCPUs_at_startup": 1
    });
    for (field, value) in fields {
        record[*field] = json!(value);
    }
    let vm = c.call("VM.create", json!([session, record]));
    vm.as_str().expect("a VM ref").to_owned()
}

/// A second VM whose guest ends itself: `poweroff` with
/// actions_after_shutdown = destroy goes Halted; `reboot` with
/// actions_after_reboot = restart runs again as a new domain (each boot
/// reboots again, so the restart cap halts it in the end).
fn stops_by_itself(c: &mut Client, session: &str) {
    let vm = create_guest(
        c,
        session,
        "poweroff",
        &[
            ("actions_after_shutdown", "destroy"),
            ("actions_after_reboot", "restart"),
        ],
    );
    let mut token = c.call("event.from", json!([session, ["vm"], "", 0.0]))["token"].clone();
    c.call("VM.start", json!([session, vm, false, false]));
    let seen = follow_until_halted(c, session, &vm, &mut token);
    assert_eq!(seen.len(), 2, "started, then halted: {seen:?}");
    assert_eq!(seen[0].0, "Running", "{seen:?}");
    log::info!(
        "xenapi client: poweroff with actions_after_shutdown=destroy: VM guest (domid {}) Halted",
        seen[0].1
    );
    c.call("VM.set_PV_args", json!([session, vm, "reboot"]));
    let mut token = c.call("event.from", json!([session, ["vm"], "", 0.0]))["token"].clone();
    c.call("VM.start", json!([session, vm, false, false]));
    let seen = follow_until_halted(c, session, &vm, &mut token);
    let domids: Vec<i64> = seen
        .iter()
        .filter(|(state, _)| state == "Running")
        .map(|&(_, d)| d)
        .collect();
    assert!(domids.len() >= 2, "rebooted into a new domain: {seen:?}");
    assert!(
        domids.windows(2).all(|w| w[1] > w[0]),
        "new domains: {seen:?}"
    );
    log::info!(
        "xenapi client: reboot with actions_after_reboot=restart: VM guest Running again as domid {} (was {})",
        domids[1],
        domids[0]
    );
    c.call("VM.destroy", json!([session, vm]));
}

/// How long the guest may take to report in `data/whoami`.
const WHOAMI_NS: u64 = 60_000_000_000;

/// A VM booted from the bundle's guest file `/boot/guest/testdom.elf`
/// (`--guest`) reads its name, domid and `/vm/<uuid>` from xenstore
/// (`xs-whoami`); it reports them in its `data/whoami`, which it lets us
/// read. The values must be the VM's. Once the VM is shut down, dom0's
/// self-test checks its `/local/domain/N` and `/vm/UUID` are gone (we may
/// not read them, so we cannot tell gone from hidden): the last line here
/// names them.
fn whoami(c: &mut Client, session: &str, xs: &mut xcp_runtime::xenstore::Store) {
    use xcp_xenbus::{Error, TxId, XsErrno};
    let me = crate::xs_test::number(xs, "domid");
    let mut record = json!({
        "name_label": "whoami",
        "PV_kernel": "/boot/guest/testdom.elf",
        "PV_args": alloc::format!("xs-whoami={me}"),
        "memory_static_max": 8388608,
        "memory_dynamic_max": 8388608,
        "memory_dynamic_min": 8388608,
        "memory_static_min": 8388608,
        "VCPUs_max": 1,
        "VCPUs_at_startup": 1
    });
    record["actions_after_crash"] = json!("destroy");
    let vm = c.call("VM.create", json!([session, record]));
    let vm = vm.as_str().expect("a VM ref").to_owned();
    let uuid = c.call("VM.get_uuid", json!([session, vm]));
    let uuid = uuid.as_str().expect("a uuid").to_owned();
    c.call("VM.start", json!([session, vm, false, false]));
    let domid = domid_of(&c.call("VM.get_domid", json!([session, vm])));
    let path = alloc::format!("/local/domain/{domid}/data/whoami");
    let deadline = xcp_runtime::time::now_ns() + WHOAMI_NS;
    let said = loop {
        match xs.read_string(TxId::NONE, &path) {
            Ok(v) => break v,
            // Not written yet, or not yet readable by us.
            Err(Error::Xs(XsErrno::Enoent | XsErrno::Eacces)) => {}
            Err(e) => panic!("read {path}: {e:?}"),
        }
        assert!(
            xcp_runtime::time::now_ns() < deadline,
            "VM whoami (domid {domid}) never wrote {path}"
        );
        let wake = xcp_runtime::time::now_ns() + 10_000_000;
        xcp_runtime::event_loop::sleep_until(wake);
    };
    let expected = alloc::format!(
        "name=whoami domid={domid} vm=/vm/{uuid} uuid={uuid} memory/target=8192 name-read-only=true"
    );
    assert_eq!(said, expected, "what the guest read from xenstore");
    log::info!("xenapi client: xs-whoami: VM whoami (domid {domid}, booted from /boot/guest/testdom.elf) read {said}");
    c.call("VM.hard_shutdown", json!([session, vm]));
    c.call("VM.destroy", json!([session, vm]));
    log::info!(
        "xenapi client: xs-whoami: VM whoami shut down; gone? /local/domain/{domid} /vm/{uuid}"
    );
}

/// Runs the scenario, logs the verdict, and idles.
pub fn run(boot: &xcp_runtime::Boot, arg: &str, password: &str) -> ! {
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
    let vm = create_guest(&mut c, &session, "xenapi-guest", &[]);
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
    crashes(&mut c, &session, &vm, domid);
    stops_by_itself(&mut c, &session);
    // With a xenstore domain (dom0 says so: every domain gets a ring page,
    // served or not), VMs are introduced to it.
    if xcp_runtime::cmdline::has(boot.cmdline, "xenapi-whoami") {
        let mut xs = xcp_runtime::xenstore::connect(boot).expect("a xenstore ring");
        whoami(&mut c, &session, &mut xs);
    } else {
        log::info!("xenapi client: no xenstore domain: xs-whoami skipped");
    }
    c.call("session.logout", json!([session]));
    log::info!("xenapi client: all calls passed (the guest was domid {domid})");
    loop {
        xcp_runtime::event_loop::idle();
    }
}

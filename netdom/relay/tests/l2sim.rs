//! L2 simulation: HTTP clients on one smoltcp interface, the relay's
//! listener pool on another, joined by an in-memory Ethernet link with
//! seeded loss; the relay's channel (fake pages) reaches a harness running
//! the real `xenapi` engine the way dom0's `toolstack.rs` does.
//!
//! What it proves: real JSON-RPC calls (`session.login_with_password`,
//! then `pool.get_all` with the session) get the right replies through
//! TCP → listener → engine → link → channel → dom0 and back, for many
//! concurrent clients, with and without packet loss, and every connection
//! is released on both sides afterwards.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use smoltcp::iface::{Config as IfaceConfig, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::{tcp, Socket};
use smoltcp::time::Instant as NetInstant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, Ipv4Address};
use xcp_channel::{Channel, Role, SendError};
use xcp_netrelay::ipconfig::{self, IpMode};
use xcp_netrelay::listener::{Listener, PoolConfig};
use xcp_netrelay::{Config, Link, Relay};
use xcp_relay::{FromToolstack, ToToolstack, MAX_CHUNK};
use xcp_ring::fake::MemPage;
use xenapi::auth::PasswordHash;
use xenapi::engine::{Config as ApiConfig, Engine};
use xenapi::hypervisor::FakeHypervisor;
use xenapi::relayed::Relayed;
use xenapi::rng::SeededEntropy;
use xenapi::value::Instant;
use xenapi::wal::MemStorage;

// ---- the link -------------------------------------------------------------

struct Wire {
    /// Frames waiting to be received by side 0 and side 1.
    queues: [VecDeque<Vec<u8>>; 2],
    rng: u64,
    loss_per_mille: u64,
    dropped: u64,
    /// Frames to side `i` are all dropped while `cut[i]`.
    cut: [bool; 2],
}

impl Wire {
    /// An empty wire dropping `loss_per_mille` frames, seeded with `seed`.
    fn shared(loss_per_mille: u64, seed: u64) -> Rc<RefCell<Wire>> {
        Rc::new(RefCell::new(Wire {
            queues: [VecDeque::new(), VecDeque::new()],
            rng: seed.max(1),
            loss_per_mille,
            dropped: 0,
            cut: [false; 2],
        }))
    }

    fn lose(&mut self) -> bool {
        // xorshift64: deterministic per seed.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng % 1000 < self.loss_per_mille
    }
}

/// One end of the wire, as a smoltcp device.
struct Port {
    wire: Rc<RefCell<Wire>>,
    side: usize,
}

struct Rx(Vec<u8>);
struct Tx {
    wire: Rc<RefCell<Wire>>,
    to: usize,
}

impl phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for Tx {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0; len];
        let r = f(&mut frame);
        let mut w = self.wire.borrow_mut();
        if w.cut[self.to] || w.lose() {
            w.dropped += 1;
        } else {
            w.queues[self.to].push_back(frame);
        }
        r
    }
}

impl Device for Port {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx;

    fn receive(&mut self, _: NetInstant) -> Option<(Rx, Tx)> {
        let frame = self.wire.borrow_mut().queues[self.side].pop_front()?;
        Some((Rx(frame), self.tx()))
    }

    fn transmit(&mut self, _: NetInstant) -> Option<Tx> {
        Some(self.tx())
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        caps
    }
}

impl Port {
    fn tx(&self) -> Tx {
        Tx {
            wire: self.wire.clone(),
            to: 1 - self.side,
        }
    }
}

fn iface(port: &mut Port, mac: u8, config: &str, now: NetInstant) -> Interface {
    let hw = HardwareAddress::Ethernet(EthernetAddress([2, 0, 0, 0, 0, mac]));
    let mut c = IfaceConfig::new(hw);
    c.random_seed = u64::from(mac);
    let mut iface = Interface::new(c, port, now);
    match ipconfig::parse(config) {
        Ok(IpMode::Static(s)) => ipconfig::apply(&mut iface, &s),
        other => panic!("{other:?}"),
    }
    iface
}

// ---- dom0: its relay board in miniature (`xenapi::relayed`) --------------------------------------

type Api = Engine<FakeHypervisor, MemStorage, SeededEntropy>;
const T0: u64 = 1_795_507_615_000;
struct Dom0 {
    engine: Api,
    /// The connections, served as dom0's toolstack serves them (one link).
    conns: Relayed,
    channel: Channel<&'static MemPage>,
    backlog: VecDeque<FromToolstack>,
    now: Instant,
}

impl Dom0 {
    fn on_message(&mut self, msg: ToToolstack) {
        if let ToToolstack::Data { bytes, .. } = &msg {
            assert!(bytes.len() <= MAX_CHUNK);
        }
        self.conns
            .on_message(&mut self.engine, self.now, 0, msg, &mut self.backlog);
    }

    /// `RelayLink::pump`, minus the event channel.
    fn pump(&mut self) {
        loop {
            match self.channel.flush() {
                Ok(_) | Err(SendError::WouldBlock(_)) => {}
                Err(e) => panic!("dom0 channel: {e:?}"),
            }
            while let Some(msg) = self.backlog.front() {
                match self.channel.send(msg) {
                    Ok(_) => {
                        self.backlog.pop_front();
                    }
                    Err(SendError::WouldBlock(_)) => break,
                    Err(e) => panic!("dom0 channel: {e:?}"),
                }
            }
            if self.backlog.len() >= 4096 {
                break;
            }
            match self.channel.recv::<ToToolstack>() {
                Ok(Some(msg)) => self.on_message(msg),
                Ok(None) => {
                    if self.backlog.is_empty() || self.channel.send_pending() {
                        break;
                    }
                }
                Err(e) => panic!("dom0 channel: {e:?}"),
            }
        }
        let _ = self.channel.take_notify();
    }
}

// ---- HTTP clients ---------------------------------------------------------

#[derive(Debug, PartialEq)]
enum Phase {
    /// Sends half a request head, then nothing.
    Loris,
    Connecting,
    Login,
    GetAll,
    Done,
}

struct Client {
    handle: SocketHandle,
    phase: Phase,
    out: Vec<u8>,
    inbuf: Vec<u8>,
    password: &'static str,
    session: Option<String>,
    pools: Option<Vec<String>>,
    error: Option<String>,
}

fn jsonrpc(method: &str, params: serde_json::Value, id: u32) -> Vec<u8> {
    let body = serde_json::json!({"jsonrpc": "2.0", "method": method, "params": params, "id": id})
        .to_string();
    format!(
        "POST /jsonrpc HTTP/1.1\r\nHost: 10.0.2.15\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A whole HTTP response's JSON body, once it is all in `buf`.
fn take_response(buf: &mut Vec<u8>) -> Option<serde_json::Value> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..end]).expect("utf-8 head");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().expect("length"))
        })
        .expect("Content-Length");
    if buf.len() < end + len {
        return None;
    }
    let body: Vec<u8> = buf.drain(..end + len).skip(end).collect();
    Some(serde_json::from_slice(&body).expect("json"))
}

impl Client {
    fn step(&mut self, socket: &mut tcp::Socket) {
        if self.phase == Phase::Loris {
            if socket.may_send() && self.inbuf.is_empty() {
                let head = b"POST /jsonrpc HTTP/1.1\r\nHost: 10.0.2.15\r\nX-Slow: ";
                socket.send_slice(head).expect("send");
                // Marks the head as sent.
                self.inbuf.push(0);
            }
            return;
        }
        if self.phase == Phase::Connecting && socket.may_send() {
            self.out = jsonrpc(
                "session.login_with_password",
                serde_json::json!(["root", self.password, "1.0", "l2sim"]),
                1,
            );
            self.phase = Phase::Login;
        }
        if !self.out.is_empty() && socket.can_send() {
            let n = socket.send_slice(&self.out).expect("send");
            self.out.drain(..n);
        }
        while socket.can_recv() {
            let _ = socket.recv(|b| {
                self.inbuf.extend_from_slice(b);
                (b.len(), ())
            });
        }
        let Some(reply) = take_response(&mut self.inbuf) else {
            return;
        };
        match self.phase {
            Phase::Login => {
                if let Some(err) = reply.get("error") {
                    self.error = Some(err.to_string());
                    self.phase = Phase::Done;
                    socket.close();
                    return;
                }
                let sid = reply["result"].as_str().expect("session ref").to_string();
                assert!(sid.starts_with("OpaqueRef:"), "{sid}");
                self.out = jsonrpc("pool.get_all", serde_json::json!([sid]), 2);
                self.session = Some(sid);
                self.phase = Phase::GetAll;
            }
            Phase::GetAll => {
                let pools = reply["result"].as_array().expect("array");
                self.pools = Some(
                    pools
                        .iter()
                        .map(|p| p.as_str().expect("ref").to_string())
                        .collect(),
                );
                self.phase = Phase::Done;
                socket.close();
            }
            ref p => panic!("reply in phase {p:?}"),
        }
    }
}

// ---- the simulation -------------------------------------------------------

struct Outcome {
    clients: Vec<Client>,
    relay: Relay,
    dom0_conns: usize,
    dropped: u64,
    elapsed_ms: u64,
    /// Server sockets listening again after the run (out of `pool`).
    listening: usize,
    pool: usize,
}

/// A client socket with `buffer`-byte windows, connecting from `port` to
/// the relay's listener (10.0.2.15:80).
fn client_to_relay(iface: &mut Interface, port: u16, buffer: usize) -> tcp::Socket<'static> {
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; buffer]),
        tcp::SocketBuffer::new(vec![0; buffer]),
    );
    s.connect(
        iface.context(),
        (IpAddress::Ipv4(Ipv4Address::new(10, 0, 2, 15)), 80),
        port,
    )
    .expect("connect");
    s
}

/// dom0's side of a simulation: the real engine (seeded with a host)
/// behind a channel whose other end is netdom's relay link.
fn dom0_and_link(seed: u64) -> (Dom0, Link<&'static MemPage>) {
    let p1: &'static MemPage = Box::leak(Box::default());
    let p2: &'static MemPage = Box::leak(Box::default());
    let dom0_channel = Channel::new(p1, p2, Role::Initiator).expect("page");
    let link = Link::new(Channel::new(p2, p1, Role::Acceptor).expect("page"));
    let mut e = SeededEntropy(3);
    let mut engine = Engine::open(
        ApiConfig::new("root", PasswordHash::new("pw", 10, &mut e)),
        FakeHypervisor::default(),
        MemStorage::default(),
        SeededEntropy(seed),
    )
    .expect("engine");
    engine
        .seed(Instant(T0), "host0", "10.0.2.15")
        .expect("seed");
    let dom0 = Dom0 {
        engine,
        conns: Relayed::new(),
        channel: dom0_channel,
        backlog: VecDeque::new(),
        now: Instant(T0),
    };
    (dom0, link)
}

/// One turn of the relay and dom0 at `t` ms: timers, then messages both
/// ways until neither side has more.
fn serve(relay: &mut Relay, link: &mut Link<&'static MemPage>, dom0: &mut Dom0, t: u64) {
    relay.on_tick(t);
    dom0.now = Instant(T0 + t);
    for _ in 0..8 {
        let pumped = link.pump(relay, t).expect("link");
        dom0.pump();
        if !pumped.again && !relay.has_channel_out() {
            break;
        }
    }
    link.pump(relay, t).expect("link");
}

fn simulate(clients: usize, loss_per_mille: u64, seed: u64, bad_password: usize) -> Outcome {
    simulate_with(
        Config::default(),
        0,
        clients,
        loss_per_mille,
        seed,
        bad_password,
    )
}

fn simulate_with(
    config: Config,
    loris: usize,
    clients: usize,
    loss_per_mille: u64,
    seed: u64,
    bad_password: usize,
) -> Outcome {
    let wire = Wire::shared(loss_per_mille, seed);
    let mut client_port = Port {
        wire: wire.clone(),
        side: 0,
    };
    let mut server_port = Port { wire, side: 1 };
    let start = NetInstant::from_millis(0);
    let mut client_iface = iface(&mut client_port, 1, "10.0.2.100/24", start);
    let mut server_iface = iface(&mut server_port, 2, "10.0.2.15/24 gw 10.0.2.2", start);

    // dom0 grants the pages (initiator), netdom maps them (acceptor).
    let (mut dom0, mut link) = dom0_and_link(seed);

    let mut relay = Relay::new(config);
    let mut server_sockets = SocketSet::new(vec![]);
    let mut listener = Listener::new(
        &mut server_sockets,
        PoolConfig {
            sockets: clients + 8,
            ..PoolConfig::default()
        },
    );

    let mut client_sockets = SocketSet::new(vec![]);
    let mut cs: Vec<Client> = (0..clients)
        .map(|i| {
            let port = 49152 + u16::try_from(i).expect("port");
            let s = client_to_relay(&mut client_iface, port, 4096);
            Client {
                handle: client_sockets.add(s),
                phase: if i < loris {
                    Phase::Loris
                } else {
                    Phase::Connecting
                },
                out: Vec::new(),
                inbuf: Vec::new(),
                password: if i < bad_password { "wrong" } else { "pw" },
                session: None,
                pools: None,
                error: None,
            }
        })
        .collect();

    let step_ms = 2;
    let mut t = 0u64;
    loop {
        let now = NetInstant::from_millis(t as i64);
        client_iface.poll(now, &mut client_port, &mut client_sockets);
        for c in &mut cs {
            c.step(client_sockets.get_mut::<tcp::Socket>(c.handle));
        }
        client_iface.poll(now, &mut client_port, &mut client_sockets);
        server_iface.poll(now, &mut server_port, &mut server_sockets);
        listener.poll(&mut server_sockets, &mut relay, t);
        serve(&mut relay, &mut link, &mut dom0, t);
        listener.poll(&mut server_sockets, &mut relay, t);
        server_iface.poll(now, &mut server_port, &mut server_sockets);

        let all_done = cs.iter().all(|c| {
            let state = client_sockets.get::<tcp::Socket>(c.handle).state();
            // Done, or reset by the relay (refused).
            matches!(state, tcp::State::Closed | tcp::State::TimeWait)
        });
        if all_done && relay.connections() == 0 && dom0.conns.is_empty() {
            break;
        }
        t += step_ms;
        if t >= 600_000 {
            let states: Vec<_> = cs
                .iter()
                .map(|c| {
                    (
                        &c.phase,
                        client_sockets.get::<tcp::Socket>(c.handle).state(),
                    )
                })
                .collect();
            panic!(
                "simulation did not finish: {states:?}, relay {:?} {}, dom0 {}",
                relay.stats(),
                relay.connections(),
                dom0.conns.len()
            );
        }
    }
    // Let the server sockets wind down (30 s: a duplicate SYN under loss
    // can leave a half-open SYN-RECEIVED socket until the client's RST
    // gets through), then count those listening again.
    let elapsed_ms = t;
    for _ in 0..15000 {
        t += step_ms;
        let now = NetInstant::from_millis(t as i64);
        client_iface.poll(now, &mut client_port, &mut client_sockets);
        server_iface.poll(now, &mut server_port, &mut server_sockets);
        listener.poll(&mut server_sockets, &mut relay, t);
    }
    let listening = server_sockets
        .iter()
        .filter(|(_, s)| matches!(s, Socket::Tcp(s) if s.state() == tcp::State::Listen))
        .count();
    let dropped = client_port.wire.borrow().dropped;
    Outcome {
        clients: cs,
        relay,
        dom0_conns: dom0.conns.len(),
        dropped,
        elapsed_ms,
        listening,
        pool: clients + 8,
    }
}

#[track_caller]
fn check(o: &Outcome, bad_password: usize) {
    let mut pools = None;
    for (i, c) in o.clients.iter().enumerate() {
        assert_eq!(c.phase, Phase::Done, "client {i}");
        if i < bad_password {
            let err = c.error.as_deref().expect("error");
            assert!(err.contains("SESSION_AUTHENTICATION_FAILED"), "{err}");
            continue;
        }
        assert!(c.error.is_none(), "client {i}: {:?}", c.error);
        assert!(c.session.is_some());
        let p = c.pools.as_ref().expect("pools");
        assert_eq!(p.len(), 1, "one pool: {p:?}");
        assert!(p[0].starts_with("OpaqueRef:"));
        assert_eq!(*pools.get_or_insert(p.clone()), *p, "the same pool");
    }
    let sessions: std::collections::BTreeSet<_> =
        o.clients.iter().filter_map(|c| c.session.clone()).collect();
    assert_eq!(sessions.len(), o.clients.len() - bad_password, "distinct");
    let stats = o.relay.stats();
    assert_eq!(stats.accepted, o.clients.len() as u64);
    assert_eq!(stats.refused + stats.idle_timeouts + stats.head_timeouts, 0);
    assert_eq!(stats.stale_messages + stats.bad_messages, 0);
    // Released on both sides, and every socket listens again.
    assert_eq!(o.listening, o.pool);
    assert_eq!(o.relay.connections(), 0);
    assert_eq!(o.relay.buffered(), 0);
    assert_eq!(o.dom0_conns, 0);
}

#[test]
fn one_client_logs_in_and_lists_pools() {
    let o = simulate(1, 0, 1, 0);
    check(&o, 0);
    assert_eq!(o.dropped, 0);
}

#[test]
fn forty_concurrent_clients_over_a_clean_link() {
    let o = simulate(40, 0, 2, 3);
    check(&o, 3);
}

#[test]
fn concurrent_clients_over_a_lossy_link() {
    for seed in [7, 99, 12345] {
        let o = simulate(24, 100, seed, 1);
        check(&o, 1);
        assert!(o.dropped > 0, "seed {seed}: the link lost frames");
        eprintln!(
            "seed {seed}: {} frames lost, {} ms",
            o.dropped, o.elapsed_ms
        );
    }
}

#[test]
fn clients_over_the_per_source_limit_are_reset_and_the_rest_served() {
    let config = Config {
        max_per_source: 5,
        ..Config::default()
    };
    let o = simulate_with(config, 0, 12, 0, 5, 0);
    let served: Vec<&Client> = o
        .clients
        .iter()
        .filter(|c| c.phase == Phase::Done)
        .collect();
    let stats = o.relay.stats();
    assert!(served.len() >= 5, "{} served", served.len());
    assert_eq!(stats.accepted as usize, served.len());
    assert_eq!(stats.refused as usize, o.clients.len() - served.len());
    assert!(stats.refused > 0);
    for c in served {
        assert_eq!(c.pools.as_ref().map(Vec::len), Some(1));
    }
    for c in o.clients.iter().filter(|c| c.phase != Phase::Done) {
        assert!(c.session.is_none() && c.pools.is_none());
    }
    assert_eq!(o.relay.connections(), 0);
    assert_eq!(o.dom0_conns, 0);
    assert_eq!(o.listening, o.pool);
}

#[test]
fn slow_loris_clients_are_reset_at_the_head_deadline_others_served() {
    let o = simulate_with(Config::default(), 3, 10, 0, 9, 0);
    let stats = o.relay.stats();
    assert_eq!(stats.head_timeouts, 3);
    assert_eq!(stats.accepted, 10);
    for (i, c) in o.clients.iter().enumerate() {
        if i < 3 {
            assert_eq!(c.phase, Phase::Loris);
            assert!(c.session.is_none());
        } else {
            assert_eq!(c.phase, Phase::Done, "client {i}");
            assert_eq!(c.pools.as_ref().map(Vec::len), Some(1));
        }
    }
    // The slow clients held their slots for the head timeout, no longer.
    assert!(
        o.elapsed_ms >= 10_000 && o.elapsed_ms < 12_000,
        "{}",
        o.elapsed_ms
    );
    assert_eq!(o.relay.connections(), 0);
    assert_eq!(o.dom0_conns, 0);
    assert_eq!(o.listening, o.pool);
}

fn server_states(sockets: &SocketSet<'_>) -> Vec<tcp::State> {
    sockets
        .iter()
        .filter_map(|(_, s)| match s {
            Socket::Tcp(s) => Some(s.state()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_handshake_that_never_completes_frees_its_socket() {
    let wire = Wire::shared(0, 1);
    let mut client_port = Port {
        wire: wire.clone(),
        side: 0,
    };
    let mut server_port = Port {
        wire: wire.clone(),
        side: 1,
    };
    let start = NetInstant::from_millis(0);
    let mut client_iface = iface(&mut client_port, 1, "10.0.2.100/24", start);
    let mut server_iface = iface(&mut server_port, 2, "10.0.2.15/24", start);
    let mut relay = Relay::new(Config::default());
    let mut server_sockets = SocketSet::new(vec![]);
    let mut listener = Listener::new(
        &mut server_sockets,
        PoolConfig {
            sockets: 2,
            handshake_timeout_ms: 5_000,
            ..PoolConfig::default()
        },
    );
    let mut client_sockets = SocketSet::new(vec![]);
    let s = client_to_relay(&mut client_iface, 49152, 1024);
    client_sockets.add(s);
    let mut cut_at = None;
    for t in (0..20_000u64).step_by(2) {
        let now = NetInstant::from_millis(t as i64);
        client_iface.poll(now, &mut client_port, &mut client_sockets);
        server_iface.poll(now, &mut server_port, &mut server_sockets);
        listener.poll(&mut server_sockets, &mut relay, t);
        let states = server_states(&server_sockets);
        let half_open = states.contains(&tcp::State::SynReceived);
        match cut_at {
            None if half_open => {
                // The SYN got in; nothing from the client gets through now.
                wire.borrow_mut().cut[1] = true;
                cut_at = Some(t);
            }
            Some(c) if t < c + 4_900 => assert!(half_open, "at {t}: {states:?}"),
            Some(c) if t >= c + 5_100 => {
                assert_eq!(states, [tcp::State::Listen, tcp::State::Listen]);
                assert_eq!(relay.stats().accepted, 0);
                return;
            }
            _ => {}
        }
    }
    panic!("never half-open: {cut_at:?}");
}

#[test]
fn a_body_refused_at_its_head_is_drained_so_the_client_reads_the_refusal() {
    // A client that sends its whole body before reading (Python's
    // http.client does) must not deadlock on a refusal that came at the
    // head: the closed socket keeps reading and dropping its bytes.
    let wire = Wire::shared(0, 5);
    let mut client_port = Port {
        wire: wire.clone(),
        side: 0,
    };
    let mut server_port = Port { wire, side: 1 };
    let start = NetInstant::from_millis(0);
    let mut client_iface = iface(&mut client_port, 1, "10.0.2.100/24", start);
    let mut server_iface = iface(&mut server_port, 2, "10.0.2.15/24", start);
    let (mut dom0, mut link) = dom0_and_link(5);
    let mut relay = Relay::new(Config::default());
    let mut server_sockets = SocketSet::new(vec![]);
    let mut listener = Listener::new(&mut server_sockets, PoolConfig::default());
    let mut client_sockets = SocketSet::new(vec![]);
    let s = client_to_relay(&mut client_iface, 49152, 8192);
    let handle = client_sockets.add(s);
    // 4 MiB announced (over dom0's 1 MiB body bound: 413 at the head),
    // 600 KiB sent: far more than the server's receive window.
    let mut out = b"POST /jsonrpc HTTP/1.1\r\nContent-Length: 4194304\r\n\r\n".to_vec();
    out.extend(vec![b'x'; 600 * 1024]);
    let mut sent = 0;
    let mut reply = Vec::new();
    for t in (0..120_000u64).step_by(2) {
        let now = NetInstant::from_millis(t as i64);
        let c = client_sockets.get_mut::<tcp::Socket>(handle);
        if c.can_send() && sent < out.len() {
            sent += c.send_slice(&out[sent..]).unwrap_or(0);
        }
        // Read only once everything is sent, as http.client does.
        if sent == out.len() && c.can_recv() {
            let _ = c.recv(|b| {
                reply.extend_from_slice(b);
                (b.len(), ())
            });
        }
        client_iface.poll(now, &mut client_port, &mut client_sockets);
        server_iface.poll(now, &mut server_port, &mut server_sockets);
        listener.poll(&mut server_sockets, &mut relay, t);
        serve(&mut relay, &mut link, &mut dom0, t);
        listener.poll(&mut server_sockets, &mut relay, t);
        server_iface.poll(now, &mut server_port, &mut server_sockets);
        if String::from_utf8_lossy(&reply).contains("\r\n\r\n") {
            let text = String::from_utf8_lossy(&reply).to_string();
            assert!(text.starts_with("HTTP/1.1 413 "), "{text}");
            assert_eq!(sent, out.len(), "the whole body went out");
            return;
        }
    }
    panic!("no reply: {sent} of {} bytes sent", out.len());
}

// ---- ICMP echo ---------------------------------------------------------------

/// Builds an Ethernet frame from `src` to `dst` carrying `payload_len`
/// bytes that `fill` writes.
fn ethernet_frame(
    src: EthernetAddress,
    dst: EthernetAddress,
    ethertype: smoltcp::wire::EthernetProtocol,
    payload_len: usize,
    fill: impl FnOnce(&mut [u8]),
) -> Vec<u8> {
    use smoltcp::wire::{EthernetFrame, EthernetRepr};
    let repr = EthernetRepr {
        src_addr: src,
        dst_addr: dst,
        ethertype,
    };
    let mut bytes = vec![0; repr.buffer_len() + payload_len];
    let mut frame = EthernetFrame::new_unchecked(&mut bytes);
    repr.emit(&mut frame);
    fill(frame.payload_mut());
    bytes
}

/// netdom's interface (configured as netdom configures it) answers an ICMP
/// echo request with the same identifier, sequence number and data, after
/// resolving the sender's MAC by ARP; a malformed echo (bad checksum) gets
/// nothing.
#[test]
fn netdom_answers_icmp_echo() {
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{
        ArpOperation, ArpPacket, ArpRepr, EthernetFrame, EthernetProtocol, Icmpv4Packet,
        Icmpv4Repr, IpProtocol, Ipv4Packet, Ipv4Repr,
    };
    let wire = Wire::shared(0, 1);
    let mut server_port = Port {
        wire: wire.clone(),
        side: 1,
    };
    let start = NetInstant::from_millis(0);
    let mut server = iface(&mut server_port, 2, "10.0.2.15/24 gw 10.0.2.2", start);
    let mut sockets = SocketSet::new(vec![]);
    let us_mac = EthernetAddress([2, 0, 0, 0, 0, 9]);
    let us_ip = Ipv4Address::new(10, 0, 2, 100);
    let netdom_mac = EthernetAddress([2, 0, 0, 0, 0, 2]);
    let netdom_ip = Ipv4Address::new(10, 0, 2, 15);
    let data = b"xcp-rs ping";
    let echo = |corrupt: bool| {
        let icmp = Icmpv4Repr::EchoRequest {
            ident: 0x4242,
            seq_no: 7,
            data,
        };
        let ip = Ipv4Repr {
            src_addr: us_ip,
            dst_addr: netdom_ip,
            next_header: IpProtocol::Icmp,
            payload_len: icmp.buffer_len(),
            hop_limit: 64,
        };
        ethernet_frame(
            us_mac,
            netdom_mac,
            EthernetProtocol::Ipv4,
            ip.buffer_len() + icmp.buffer_len(),
            |buf| {
                let caps = ChecksumCapabilities::default();
                let mut packet = Ipv4Packet::new_unchecked(buf);
                ip.emit(&mut packet, &caps);
                let mut payload = Icmpv4Packet::new_unchecked(packet.payload_mut());
                icmp.emit(&mut payload, &caps);
                if corrupt {
                    let sum = payload.checksum();
                    payload.set_checksum(sum ^ 0x0101);
                }
            },
        )
    };
    let mut poll = |t: i64, server: &mut Interface| {
        server.poll(NetInstant::from_millis(t), &mut server_port, &mut sockets);
        core::mem::take(&mut wire.borrow_mut().queues[0])
    };

    // A corrupt echo is dropped without an answer (not even ARP).
    wire.borrow_mut().queues[1].push_back(echo(true));
    assert!(poll(1, &mut server).is_empty(), "a bad checksum is ignored");

    // Like ping, one request a "second" until a reply: the first may only
    // make netdom resolve our MAC by ARP (smoltcp drops the packet that
    // waits for the neighbour).
    let mut replies = Vec::new();
    for t in 2..50 {
        if t % 10 == 2 {
            wire.borrow_mut().queues[1].push_back(echo(false));
        }
        for frame in poll(t, &mut server) {
            let eth = EthernetFrame::new_checked(&frame[..]).expect("ethernet");
            assert_eq!(eth.src_addr(), netdom_mac);
            match eth.ethertype() {
                EthernetProtocol::Arp => {
                    // netdom asks who has 10.0.2.100: answer it.
                    let arp = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap())
                        .expect("arp");
                    let ArpRepr::EthernetIpv4 {
                        operation: ArpOperation::Request,
                        target_protocol_addr,
                        ..
                    } = arp
                    else {
                        panic!("{arp:?}");
                    };
                    assert_eq!(target_protocol_addr, us_ip);
                    let answer = ArpRepr::EthernetIpv4 {
                        operation: ArpOperation::Reply,
                        source_hardware_addr: us_mac,
                        source_protocol_addr: us_ip,
                        target_hardware_addr: netdom_mac,
                        target_protocol_addr: netdom_ip,
                    };
                    let frame = ethernet_frame(
                        us_mac,
                        netdom_mac,
                        EthernetProtocol::Arp,
                        answer.buffer_len(),
                        |buf| answer.emit(&mut ArpPacket::new_unchecked(buf)),
                    );
                    wire.borrow_mut().queues[1].push_back(frame);
                }
                EthernetProtocol::Ipv4 => {
                    assert_eq!(eth.dst_addr(), us_mac);
                    let caps = ChecksumCapabilities::default();
                    let ip = Ipv4Packet::new_checked(eth.payload()).expect("ipv4");
                    let repr = Ipv4Repr::parse(&ip, &caps).expect("ipv4 repr");
                    assert_eq!((repr.src_addr, repr.dst_addr), (netdom_ip, us_ip));
                    let icmp = Icmpv4Packet::new_checked(ip.payload()).expect("icmp");
                    match Icmpv4Repr::parse(&icmp, &caps).expect("icmp repr") {
                        Icmpv4Repr::EchoReply {
                            ident,
                            seq_no,
                            data: got,
                        } => replies.push((ident, seq_no, got.to_vec())),
                        other => panic!("{other:?}"),
                    }
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        if !replies.is_empty() {
            break;
        }
    }
    assert_eq!(replies, [(0x4242, 7, data.to_vec())]);
}

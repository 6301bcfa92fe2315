//! Proptests: random interleavings of client events, dom0 messages, polls
//! and ticks, checked against a model of each connection's two streams.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use xcp_netrelay::{Config, ConnId, Relay, Source};
use xcp_relay::{FromToolstack, ToToolstack, MAX_CHUNK};

#[derive(Clone, Debug)]
enum Op {
    Accept(u8),
    ClientBytes(usize, usize),
    ClientClosed(usize),
    ClientEof(usize),
    PollOut(usize),
    Dom0Data(usize, usize),
    Dom0Close(usize),
    Dom0Stray(u32, usize),
    Consume(usize, usize),
    Tick(u64),
    /// dom0 asks for counters (`n` times) and the board answers.
    Dom0Stats(usize),
    /// dom0 makes a connection a raw stream (a text console).
    Dom0Stream(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0u8..3).prop_map(Op::Accept),
        4 => (0usize..8, 0usize..40_000).prop_map(|(c, n)| Op::ClientBytes(c, n)),
        1 => (0usize..8).prop_map(Op::ClientClosed),
        1 => (0usize..8).prop_map(Op::ClientEof),
        4 => (1usize..6).prop_map(Op::PollOut),
        3 => (0usize..8, 0usize..(MAX_CHUNK + 2)).prop_map(|(c, n)| Op::Dom0Data(c, n)),
        1 => (0usize..8).prop_map(Op::Dom0Close),
        1 => (any::<u32>(), 0usize..100).prop_map(|(c, n)| Op::Dom0Stray(c, n)),
        3 => (0usize..8, 0usize..50_000).prop_map(|(c, n)| Op::Consume(c, n)),
        1 => (0u64..20_000).prop_map(Op::Tick),
        1 => (1usize..4).prop_map(Op::Dom0Stats),
        1 => (0usize..8).prop_map(Op::Dom0Stream),
    ]
}

/// The two streams of one connection as the model sees them.
#[derive(Default)]
struct Streams {
    client_sent: Vec<u8>,
    dom0_got: Vec<u8>,
    dom0_sent: Vec<u8>,
    client_got: Vec<u8>,
    closed_to_dom0: bool,
    dom0_closed: bool,
}

fn pattern(conn: u32, off: usize) -> u8 {
    (off as u32).wrapping_mul(31).wrapping_add(conn) as u8
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn streams_stay_ordered_bounded_and_closed_once(ops in prop::collection::vec(op(), 1..200)) {
        let config = Config {
            max_connections: 6,
            max_per_source: 4,
            max_in_per_conn: 50_000,
            max_out_per_conn: 60_000,
            max_total: 150_000,
            idle_timeout_ms: 30_000,
            head_timeout_ms: 10_000,
            eof_linger_ms: 5_000,
            gate_out_bytes: MAX_CHUNK,
            // Body deadlines and eviction abort connections the model does
            // not predict; tests/engine.rs covers them.
            body_timeout_ms: u64::MAX / 4,
            body_ms_per_kib: 1_000,
            evict_after_ms: u64::MAX / 4,
        };
        let mut r = Relay::new(config.clone());
        let mut now = 0u64;
        let mut conns: Vec<ConnId> = Vec::new();
        let mut model: BTreeMap<u32, Streams> = BTreeMap::new();
        let mut ended: BTreeSet<u32> = BTreeSet::new();
        // The board answered dom0's counters request and the answer is
        // not out yet.
        let mut stats_owed = false;
        for op in ops {
            match op {
                Op::Accept(s) => {
                    if let Ok(c) = r.on_accept(now, Source([s; 16])) {
                        prop_assert!(model.insert(c.0, Streams::default()).is_none(), "reused");
                        conns.push(c);
                    }
                }
                Op::ClientBytes(i, n) => if let Some(&c) = conns.get(i) {
                    let s = model.get_mut(&c.0).unwrap();
                    let off = s.client_sent.len();
                    let bytes: Vec<u8> = (off..off + n).map(|o| pattern(c.0, o)).collect();
                    let window = r.client_window(c);
                    let took = r.on_client_bytes(now, c, &bytes);
                    prop_assert!(took <= n);
                    if r.is_live(c) && !s.dom0_closed {
                        prop_assert_eq!(took, n.min(window));
                        s.client_sent.extend(&bytes[..took]);
                    }
                },
                Op::ClientClosed(i) => if let Some(&c) = conns.get(i) {
                    r.on_client_closed(c);
                    ended.insert(c.0);
                },
                Op::ClientEof(i) => if let Some(&c) = conns.get(i) {
                    r.on_client_eof(now, c);
                },
                Op::PollOut(k) => for _ in 0..k {
                    match r.poll_channel_out() {
                        Some(ToToolstack::Data { conn, bytes }) => {
                            prop_assert!(!bytes.is_empty() && bytes.len() <= MAX_CHUNK);
                            let s = model.get_mut(&conn).unwrap();
                            prop_assert!(!s.closed_to_dom0 && !s.dom0_closed);
                            s.dom0_got.extend(bytes);
                        }
                        Some(ToToolstack::Closed { conn }) => {
                            let s = model.get_mut(&conn).unwrap();
                            prop_assert!(!s.closed_to_dom0, "Closed twice");
                            prop_assert!(!s.dom0_closed, "Closed after dom0's Close");
                            s.closed_to_dom0 = true;
                        }
                        Some(ToToolstack::Stats(stats)) => {
                            prop_assert!(stats_owed, "counters nobody asked for");
                            prop_assert!(stats.connections as usize <= config.max_connections);
                            stats_owed = false;
                        }
                        Some(ToToolstack::Ready { .. }) => {
                            prop_assert!(false, "readiness nobody announced");
                        }
                        Some(ToToolstack::Link { .. }) => {
                            prop_assert!(false, "a link nobody described");
                        }
                        Some(ToToolstack::VifStats(_)) => {
                            prop_assert!(false, "VIF counters nobody sent");
                        }
                        None => break,
                    }
                },
                Op::Dom0Data(i, n) => if let Some(&c) = conns.get(i) {
                    let s = model.get_mut(&c.0).unwrap();
                    if s.closed_to_dom0 || s.dom0_closed {
                        continue;
                    }
                    let off = s.dom0_sent.len();
                    let bytes: Vec<u8> = (off..off + n).map(|o| pattern(!c.0, o)).collect();
                    let live = r.is_live(c);
                    r.on_toolstack(now, FromToolstack::Data { conn: c.0, bytes: bytes.clone() });
                    if live && r.is_live(c) {
                        s.dom0_sent.extend(bytes);
                    }
                },
                Op::Dom0Close(i) => if let Some(&c) = conns.get(i) {
                    let s = model.get_mut(&c.0).unwrap();
                    if s.closed_to_dom0 || s.dom0_closed {
                        continue;
                    }
                    // A Close crossing our Closed on the wire is a race,
                    // not a close by dom0 of a live connection.
                    s.dom0_closed = r.is_live(c);
                    r.on_toolstack(now, FromToolstack::Close { conn: c.0 });
                },
                Op::Dom0Stray(conn, n) => {
                    if !model.contains_key(&conn) {
                        r.on_toolstack(now, FromToolstack::Data { conn, bytes: vec![0; n] });
                        r.on_toolstack(now, FromToolstack::Close { conn });
                    }
                }
                Op::Consume(i, n) => if let Some(&c) = conns.get(i) {
                    let mut left = n;
                    while left > 0 {
                        let Some(out) = r.poll_client_out(c) else { break };
                        let k = out.len().min(left);
                        let out = out[..k].to_vec();
                        r.consume(now, c, k);
                        model.get_mut(&c.0).unwrap().client_got.extend(out);
                        left -= k;
                    }
                },
                Op::Tick(dt) => {
                    now += dt;
                    r.on_tick(now);
                }
                Op::Dom0Stream(i) => if let Some(&c) = conns.get(i) {
                    r.on_toolstack(now, FromToolstack::Stream { conn: c.0 });
                },
                Op::Dom0Stats(n) => {
                    for _ in 0..n {
                        r.on_toolstack(now, FromToolstack::StatsRequest);
                    }
                    prop_assert!(r.take_stats_request());
                    prop_assert!(!r.take_stats_request(), "one request surfaced per batch");
                    r.send_stats(1, 2, Default::default());
                    stats_owed = true;
                }
            }
            while let Some((c, _)) = r.poll_close() {
                prop_assert!(ended.insert(c.0) || !r.is_live(c));
                prop_assert!(!r.is_live(c));
            }
            prop_assert!(r.buffered() <= config.max_total);
            prop_assert!(r.connections() <= config.max_connections);
            for (conn, s) in &model {
                prop_assert!(s.client_sent.starts_with(&s.dom0_got), "conn {} to dom0", conn);
                prop_assert!(s.dom0_sent.starts_with(&s.client_got), "conn {} to client", conn);
            }
        }
        // Drained, everything dom0 did not close and the engine ended is
        // announced exactly once.
        while let Some(m) = r.poll_channel_out() {
            if let ToToolstack::Closed { conn } = m {
                let s = model.get_mut(&conn).unwrap();
                prop_assert!(!s.closed_to_dom0);
                s.closed_to_dom0 = true;
            }
        }
        for (conn, s) in &model {
            let live = r.is_live(ConnId(*conn));
            if live {
                prop_assert!(!s.closed_to_dom0);
            } else if !s.dom0_closed {
                prop_assert!(s.closed_to_dom0, "conn {} never announced", conn);
            }
        }
    }

    #[test]
    fn busy_connections_take_turns(sizes in prop::collection::vec(1usize..4, 2..8)) {
        let mut r = Relay::new(Config::default());
        let conns: Vec<ConnId> = sizes.iter().map(|_| r.on_accept(0, Source([0; 16])).unwrap()).collect();
        for (&c, &k) in conns.iter().zip(&sizes) {
            prop_assert_eq!(r.on_client_bytes(0, c, &vec![1; k * MAX_CHUNK]), k * MAX_CHUNK);
        }
        // Each round serves every connection that still has data once.
        let mut left: BTreeMap<u32, usize> = conns.iter().zip(&sizes).map(|(c, &k)| (c.0, k)).collect();
        while !left.is_empty() {
            let round: BTreeSet<u32> = left.keys().copied().collect();
            let mut seen = BTreeSet::new();
            for _ in 0..round.len() {
                match r.poll_channel_out() {
                    Some(ToToolstack::Data { conn, bytes }) => {
                        prop_assert_eq!(bytes.len(), MAX_CHUNK);
                        prop_assert!(seen.insert(conn), "conn {} twice in a round", conn);
                        let k = left.get_mut(&conn).unwrap();
                        *k -= 1;
                        if *k == 0 {
                            left.remove(&conn);
                        }
                    }
                    other => prop_assert!(false, "{:?}", other),
                }
            }
            prop_assert_eq!(seen, round);
        }
        prop_assert_eq!(r.poll_channel_out(), None);
    }
}

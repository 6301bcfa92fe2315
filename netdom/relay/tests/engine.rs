//! L1 scenarios of the relay engine: fairness, limits, deadlines, ordering,
//! close semantics both ways, hostile dom0 messages, and the channel link.

use xcp_channel::{Channel, Role};
use xcp_netrelay::chunks::CHUNK_OVERHEAD;
use xcp_netrelay::{CloseKind, Config, ConnId, Link, Refused, Relay, Source};
use xcp_relay::{
    FromToolstack, MemoryFigures, RelayStats, ToToolstack, VifCounters, MAX_CHUNK, MAX_VIF_STATS,
};
use xcp_ring::fake::MemPage;

const A: Source = Source([1; 16]);
const B: Source = Source([2; 16]);

fn relay() -> Relay {
    Relay::new(Config::default())
}

#[track_caller]
fn accept(r: &mut Relay, src: Source) -> ConnId {
    r.on_accept(0, src).expect("accept")
}

#[track_caller]
fn feed_all(r: &mut Relay, now: u64, c: ConnId, bytes: &[u8]) {
    assert_eq!(r.on_client_bytes(now, c, bytes), bytes.len());
}

fn drain(r: &mut Relay) -> Vec<ToToolstack> {
    core::iter::from_fn(|| r.poll_channel_out()).collect()
}

fn data(conn: ConnId, bytes: &[u8]) -> FromToolstack {
    FromToolstack::Data {
        conn: conn.0,
        bytes: bytes.to_vec(),
    }
}

fn client_out(r: &mut Relay, c: ConnId) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(b) = r.poll_client_out(c) {
        let b = b.to_vec();
        r.consume(1, c, b.len());
        out.extend(b);
    }
    out
}

#[test]
fn big_sender_cannot_delay_small_request_by_more_than_one_chunk() {
    let mut r = relay();
    let big = accept(&mut r, A);
    let small = accept(&mut r, B);
    let ten_mib = vec![b'x'; 10 << 20];
    let mut sent = 0;
    let mut big_chunks_before_small = None;
    let mut turn = 0u64;
    let request = b"POST /jsonrpc HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}";
    while sent < ten_mib.len() {
        sent += r.on_client_bytes(turn, big, &ten_mib[sent..]);
        if turn == 7 {
            feed_all(&mut r, turn, small, request);
            big_chunks_before_small = Some(0);
        }
        // dom0 takes two messages per turn.
        for _ in 0..2 {
            match r.poll_channel_out() {
                Some(ToToolstack::Data { conn, bytes }) => {
                    assert!(bytes.len() <= MAX_CHUNK);
                    if conn == small.0 {
                        assert_eq!(bytes, request);
                        let n = big_chunks_before_small.take().expect("small sent once");
                        assert!(n <= 1, "{n} big chunks went first");
                    } else if let Some(n) = big_chunks_before_small.as_mut() {
                        *n += 1;
                    }
                }
                other => assert!(other.is_none(), "{other:?}"),
            }
        }
        turn += 1;
    }
    assert_eq!(big_chunks_before_small, None, "small request was relayed");
}

#[test]
fn round_robin_interleaves_chunks() {
    let mut r = relay();
    let conns: Vec<ConnId> = (0..3).map(|_| accept(&mut r, A)).collect();
    for &c in &conns {
        feed_all(&mut r, 0, c, &vec![c.0 as u8; 3 * MAX_CHUNK]);
    }
    let order: Vec<u32> = drain(&mut r)
        .into_iter()
        .map(|m| match m {
            ToToolstack::Data { conn, bytes } => {
                assert_eq!(bytes.len(), MAX_CHUNK);
                conn
            }
            other => panic!("{other:?}"),
        })
        .collect();
    let ids: Vec<u32> = conns.iter().map(|c| c.0).collect();
    assert_eq!(order, [ids.clone(), ids.clone(), ids].concat());
}

#[test]
fn bytes_keep_their_order_both_ways() {
    let mut r = relay();
    let c = accept(&mut r, A);
    let input: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let mut got = Vec::new();
    let mut off = 0;
    while off < input.len() {
        off += r.on_client_bytes(0, c, &input[off..(off + 7000).min(input.len())]);
        while let Some(ToToolstack::Data { bytes, .. }) = r.poll_channel_out() {
            got.extend(bytes);
        }
    }
    assert_eq!(got, input);
    let mut expect = Vec::new();
    for i in 0..20u8 {
        let chunk = vec![i; 1000 + i as usize];
        expect.extend(&chunk);
        r.on_toolstack(0, data(c, &chunk));
    }
    assert_eq!(client_out(&mut r, c), expect);
}

#[test]
fn connection_limits_overall_and_per_source() {
    let mut r = Relay::new(Config {
        max_connections: 4,
        max_per_source: 3,
        ..Config::default()
    });
    let a: Vec<ConnId> = (0..3).map(|_| accept(&mut r, A)).collect();
    assert_eq!(r.on_accept(0, A), Err(Refused::TooManyFromSource));
    let b = accept(&mut r, B);
    assert_eq!(r.on_accept(0, B), Err(Refused::TooManyConnections));
    // A closed connection frees its place here; dom0 is told once.
    r.on_client_closed(b);
    let b2 = accept(&mut r, B);
    assert_eq!(drain(&mut r), [ToToolstack::Closed { conn: b.0 }]);
    assert!(!a.contains(&b2) && b2 != b, "numbers are not reused");
    assert_eq!(r.stats().refused, 2);
    let clamped = Relay::new(Config {
        max_connections: 100_000,
        ..Config::default()
    });
    assert_eq!(clamped.config().max_connections, xcp_relay::MAX_CONNECTIONS);
}

#[test]
fn input_is_capped_per_connection_and_globally() {
    let mut r = Relay::new(Config {
        max_in_per_conn: 1000,
        max_total: 1500,
        ..Config::default()
    });
    let c1 = accept(&mut r, A);
    let c2 = accept(&mut r, B);
    assert_eq!(r.on_client_bytes(0, c1, &[1; 4000]), 1000);
    assert_eq!(r.on_client_bytes(0, c1, &[1; 10]), 0);
    // The cap counts memory: each chunk costs CHUNK_OVERHEAD more.
    let left = 1500 - (1000 + CHUNK_OVERHEAD) - CHUNK_OVERHEAD;
    assert_eq!(r.on_client_bytes(0, c2, &[2; 4000]), left);
    assert_eq!(r.buffered(), 1500);
    assert_eq!(r.on_accept(0, B), Err(Refused::OutOfMemory));
    drain(&mut r);
    assert_eq!(r.buffered(), 0);
    assert_eq!(r.client_window(c1), 1000);
    assert_eq!(r.on_client_bytes(0, ConnId(999), &[1; 10]), 0);
}

#[test]
fn reply_overflow_aborts_only_that_connection() {
    let mut r = Relay::new(Config {
        max_out_per_conn: 3 * MAX_CHUNK,
        ..Config::default()
    });
    let slow = accept(&mut r, A);
    let other = accept(&mut r, B);
    for _ in 0..3 {
        r.on_toolstack(0, data(slow, &[0; MAX_CHUNK]));
    }
    assert!(r.is_live(slow));
    r.on_toolstack(0, data(slow, &[0; 1]));
    assert!(!r.is_live(slow));
    assert_eq!(r.poll_close(), Some((slow, CloseKind::Abort)));
    assert_eq!(drain(&mut r), [ToToolstack::Closed { conn: slow.0 }]);
    assert_eq!(r.stats().out_overflows, 1);
    assert_eq!(r.buffered(), 0);
    r.on_toolstack(0, data(other, b"ok"));
    assert_eq!(client_out(&mut r, other), b"ok");
}

#[test]
fn pipelining_client_that_does_not_read_is_held_back() {
    let mut r = relay();
    let c = accept(&mut r, A);
    r.on_toolstack(0, data(c, &[0; MAX_CHUNK]));
    r.on_toolstack(0, data(c, &[0; 1]));
    feed_all(&mut r, 0, c, b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(drain(&mut r), []);
    r.consume(0, c, 1);
    assert_eq!(drain(&mut r).len(), 1);
}

#[test]
fn idle_connections_time_out_and_activity_defers_it() {
    let mut r = Relay::new(Config {
        idle_timeout_ms: 1000,
        head_timeout_ms: 100_000,
        ..Config::default()
    });
    let quiet = accept(&mut r, A);
    let busy = accept(&mut r, B);
    assert_eq!(r.next_deadline(), Some(1000));
    r.on_tick(500);
    feed_all(&mut r, 600, busy, b"G");
    r.on_tick(999);
    assert!(r.is_live(quiet));
    r.on_tick(1000);
    assert!(!r.is_live(quiet) && r.is_live(busy));
    assert_eq!(r.poll_close(), Some((quiet, CloseKind::Abort)));
    r.on_toolstack(1500, data(busy, b"x"));
    r.on_tick(2499);
    assert!(r.is_live(busy));
    r.consume(2400, busy, 1);
    r.on_tick(3399);
    assert!(r.is_live(busy));
    r.on_tick(3400);
    assert!(!r.is_live(busy));
    assert_eq!(r.stats().idle_timeouts, 2);
    assert_eq!(
        drain(&mut r),
        [
            ToToolstack::Closed { conn: quiet.0 },
            ToToolstack::Closed { conn: busy.0 }
        ]
    );
}

#[test]
fn slow_request_head_times_out_but_a_finished_head_does_not() {
    let mut r = Relay::new(Config {
        head_timeout_ms: 100,
        ..Config::default()
    });
    let silent = accept(&mut r, A);
    let loris = accept(&mut r, A);
    let fine = accept(&mut r, A);
    for t in 0..99 {
        feed_all(&mut r, t, loris, b"X");
    }
    feed_all(&mut r, 50, fine, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    r.on_tick(99);
    assert_eq!(r.connections(), 3);
    r.on_tick(100);
    assert!(!r.is_live(silent) && !r.is_live(loris) && r.is_live(fine));
    assert_eq!(r.stats().head_timeouts, 2);
    // The next request's head is timed from its first byte, after a reply.
    r.on_toolstack(150, data(fine, b"HTTP/1.1 200 OK\r\n\r\n"));
    r.on_tick(10_000);
    assert!(r.is_live(fine));
    feed_all(&mut r, 10_000, fine, b"GET /");
    r.on_tick(10_099);
    assert!(r.is_live(fine));
    r.on_tick(10_100);
    assert!(!r.is_live(fine));
}

#[test]
fn client_close_tells_dom0_once_and_drops_late_replies() {
    let mut r = relay();
    let c = accept(&mut r, A);
    feed_all(&mut r, 0, c, b"unsent");
    r.on_client_closed(c);
    r.on_client_closed(c);
    assert_eq!(drain(&mut r), [ToToolstack::Closed { conn: c.0 }]);
    r.on_toolstack(0, data(c, b"late reply"));
    r.on_toolstack(0, FromToolstack::Close { conn: c.0 });
    assert_eq!(r.poll_client_out(c), None);
    assert_eq!(drain(&mut r), []);
    assert_eq!(r.poll_close(), None);
    assert_eq!(r.stats().stale_messages, 2);
    assert_eq!(r.buffered(), 0);
}

#[test]
fn dom0_close_drains_replies_then_closes_gracefully() {
    let mut r = relay();
    let c = accept(&mut r, A);
    feed_all(&mut r, 0, c, b"req");
    r.on_toolstack(0, data(c, b"reply"));
    r.on_toolstack(0, FromToolstack::Close { conn: c.0 });
    // Unsent client bytes are dropped: dom0 forgot the number.
    assert_eq!(drain(&mut r), []);
    assert_eq!(r.on_client_bytes(0, c, b"more"), 4);
    assert_eq!(drain(&mut r), []);
    assert_eq!(r.poll_close(), None);
    assert_eq!(r.poll_client_out(c), Some(&b"reply"[..]));
    r.consume(0, c, 2);
    assert_eq!(r.poll_close(), None);
    r.consume(0, c, 3);
    assert_eq!(r.poll_close(), Some((c, CloseKind::Graceful)));
    assert!(!r.is_live(c));
    // dom0 closed it: no `Closed` goes back.
    r.on_client_closed(c);
    assert_eq!(drain(&mut r), []);
    // Close with nothing to drain closes at once.
    let d = accept(&mut r, A);
    r.on_toolstack(0, FromToolstack::Close { conn: d.0 });
    assert_eq!(r.poll_close(), Some((d, CloseKind::Graceful)));
    assert_eq!(r.buffered(), 0);
}

#[test]
fn hostile_dom0_messages_do_not_panic() {
    let mut r = relay();
    let c = accept(&mut r, A);
    for conn in [0, 12345, u32::MAX] {
        r.on_toolstack(
            0,
            FromToolstack::Data {
                conn,
                bytes: vec![1; 10],
            },
        );
        r.on_toolstack(0, FromToolstack::Close { conn });
    }
    assert_eq!(r.stats().stale_messages, 6);
    assert!(r.is_live(c));
    r.on_toolstack(0, data(c, &[]));
    assert!(r.is_live(c));
    r.on_toolstack(0, data(c, &vec![0; MAX_CHUNK + 1]));
    assert!(!r.is_live(c));
    assert_eq!(r.stats().bad_messages, 1);
    assert_eq!(r.poll_close(), Some((c, CloseKind::Abort)));
    assert_eq!(drain(&mut r), [ToToolstack::Closed { conn: c.0 }]);
    // Data after Close is a protocol error, dropped.
    let d = accept(&mut r, A);
    r.on_toolstack(0, data(d, b"x"));
    r.on_toolstack(0, FromToolstack::Close { conn: d.0 });
    r.on_toolstack(0, data(d, b"y"));
    assert_eq!(client_out(&mut r, d), b"x");
    assert_eq!(r.stats().bad_messages, 2);
    r.consume(0, d, usize::MAX);
    assert_eq!(r.buffered(), 0);
}

fn pages() -> (&'static MemPage, &'static MemPage) {
    (Box::leak(Box::default()), Box::leak(Box::default()))
}

#[test]
fn link_carries_messages_through_a_full_channel_in_order() {
    let (p1, p2) = pages();
    let mut dom0: Channel<&MemPage> = Channel::new(p1, p2, Role::Initiator).unwrap();
    let mut link = Link::new(Channel::new(p2, p1, Role::Acceptor).unwrap());
    let mut r = relay();
    let conns: Vec<ConnId> = (0..4).map(|_| accept(&mut r, A)).collect();
    let mut expect = vec![Vec::new(); 4];
    for (i, &c) in conns.iter().enumerate() {
        let bytes: Vec<u8> = (0..40_000u32).map(|x| (x as u8) ^ i as u8).collect();
        let n = r.on_client_bytes(0, c, &bytes);
        expect[i].extend(&bytes[..n]);
    }
    let mut got = vec![Vec::new(); 4];
    for _ in 0..1000 {
        link.pump(&mut r, 0).unwrap();
        while let Some(m) = dom0.recv::<ToToolstack>().unwrap() {
            match m {
                ToToolstack::Data { conn, bytes } => got[conn as usize - 1].extend(bytes),
                other => panic!("{other:?}"),
            }
        }
    }
    assert_eq!(got, expect);
    // And back: dom0's replies reach the right client.
    let _ = dom0.send(&data(conns[2], b"hello")).unwrap();
    let _ = dom0
        .send(&FromToolstack::Close { conn: conns[3].0 })
        .unwrap();
    link.pump(&mut r, 0).unwrap();
    assert_eq!(client_out(&mut r, conns[2]), b"hello");
    assert_eq!(r.poll_close(), Some((conns[3], CloseKind::Graceful)));
}

#[test]
fn link_reports_a_broken_channel() {
    let (p1, p2) = pages();
    let mut link = Link::new(Channel::new(p2, p1, Role::Acceptor).unwrap());
    let _dom0: Channel<&MemPage> = Channel::new(p1, p2, Role::Initiator).unwrap();
    // dom0's producer index jumps far beyond the ring.
    p1.poke(0, &0x8000_0000u32.to_le_bytes());
    let mut r = relay();
    assert!(link.pump(&mut r, 0).is_err());
}

#[test]
fn half_closed_client_is_closed_once_its_reply_is_delivered() {
    let mut r = Relay::new(Config {
        eof_linger_ms: 1000,
        ..Config::default()
    });
    // Nothing pending: closes at once, dom0 told.
    let idle = accept(&mut r, A);
    r.on_client_eof(5, idle);
    assert_eq!(r.poll_close(), Some((idle, CloseKind::Graceful)));
    assert_eq!(drain(&mut r), [ToToolstack::Closed { conn: idle.0 }]);
    // A request in flight: waits for the reply, then closes.
    let c = accept(&mut r, A);
    feed_all(&mut r, 0, c, b"GET / HTTP/1.1\r\n\r\n");
    r.on_client_eof(0, c);
    assert!(r.is_live(c));
    assert_eq!(drain(&mut r).len(), 1);
    r.on_tick(10);
    assert!(r.is_live(c), "reply still awaited");
    r.on_toolstack(20, data(c, b"HTTP/1.1 200 OK\r\n\r\n"));
    assert_eq!(client_out(&mut r, c), b"HTTP/1.1 200 OK\r\n\r\n");
    assert_eq!(r.poll_close(), Some((c, CloseKind::Graceful)));
    assert_eq!(drain(&mut r), [ToToolstack::Closed { conn: c.0 }]);
    // A reply that never comes: the linger ends it.
    let d = accept(&mut r, A);
    feed_all(&mut r, 0, d, b"GET / HTTP/1.1\r\n\r\n");
    r.on_client_eof(100, d);
    assert_eq!(r.next_deadline(), Some(1100));
    r.on_tick(1099);
    assert!(r.is_live(d));
    r.on_tick(1100);
    assert_eq!(r.poll_close(), Some((d, CloseKind::Graceful)));
}

#[test]
fn stats_request_is_surfaced_once_and_answered_first() {
    let mut r = relay();
    let c = accept(&mut r, A);
    assert!(r.on_accept(0, A).is_ok());
    feed_all(&mut r, 0, c, b"GET / HTTP/1.1\r\n\r\n");
    assert!(!r.take_stats_request(), "nothing asked yet");
    // Two requests before the board looks: one request.
    r.on_toolstack(0, FromToolstack::StatsRequest);
    r.on_toolstack(0, FromToolstack::StatsRequest);
    assert!(r.take_stats_request());
    assert!(!r.take_stats_request());
    let memory = MemoryFigures {
        heap_peak: 99,
        ..MemoryFigures::default()
    };
    r.send_stats(7, 3, memory);
    assert!(r.has_channel_out());
    let out = drain(&mut r);
    assert_eq!(
        out[0],
        ToToolstack::Stats(RelayStats {
            nic_interrupts: 7,
            timer_wakeups: 3,
            connections: 2,
            accepted: 2,
            refused: 0,
            memory,
        })
    );
    assert!(matches!(out[1], ToToolstack::Data { conn, .. } if conn == c.0));
    assert_eq!(out.len(), 2, "one answer: {out:?}");
    // An answer not yet sent is replaced by a newer one, never queued.
    r.send_stats(1, 1, memory);
    r.send_stats(2, 2, MemoryFigures::default());
    assert_eq!(
        drain(&mut r),
        [ToToolstack::Stats(RelayStats {
            nic_interrupts: 2,
            timer_wakeups: 2,
            connections: 2,
            accepted: 2,
            refused: 0,
            memory: MemoryFigures::default(),
        })]
    );
}

#[test]
fn stats_requests_leave_connections_and_hostile_message_handling_alone() {
    let mut r = relay();
    let c = accept(&mut r, A);
    r.on_toolstack(0, FromToolstack::StatsRequest);
    // Stale and oversized messages count as before.
    r.on_toolstack(0, data(ConnId(99), b"x"));
    r.on_toolstack(0, FromToolstack::Close { conn: 98 });
    assert_eq!(r.stats().stale_messages, 2);
    assert_eq!(r.stats().bad_messages, 0);
    assert!(r.is_live(c));
    assert_eq!(r.buffered(), 0);
    assert!(
        drain(&mut r).is_empty(),
        "no answer until the board gives one"
    );
    assert!(r.take_stats_request());
}

#[test]
fn link_delivers_a_stats_request_and_the_answer() {
    let (p1, p2) = pages();
    let mut dom0: Channel<&MemPage> = Channel::new(p1, p2, Role::Initiator).unwrap();
    let mut link = Link::new(Channel::new(p2, p1, Role::Acceptor).unwrap());
    let mut r = relay();
    let _ = dom0.send(&FromToolstack::StatsRequest).unwrap();
    let _ = dom0.flush();
    link.pump(&mut r, 0).unwrap();
    assert!(r.take_stats_request());
    r.send_stats(12, 4, MemoryFigures::default());
    assert!(!link.pump(&mut r, 0).unwrap().again);
    assert_eq!(
        dom0.recv::<ToToolstack>().unwrap(),
        Some(ToToolstack::Stats(RelayStats {
            nic_interrupts: 12,
            timer_wakeups: 4,
            ..RelayStats::default()
        }))
    );
    assert_eq!(dom0.recv::<ToToolstack>().unwrap(), None);
}

#[test]
fn ready_goes_first_once_and_a_newer_address_replaces_it() {
    let mut r = relay();
    assert!(
        !r.has_channel_out(),
        "nothing to say before the listener opens"
    );
    let c = accept(&mut r, A);
    feed_all(&mut r, 0, c, b"GET / HTTP/1.1\r\n\r\n");
    r.on_toolstack(0, FromToolstack::StatsRequest);
    assert!(r.take_stats_request());
    r.send_stats(1, 2, MemoryFigures::default());
    r.announce_ready([10, 0, 2, 15], 80);
    let out = drain(&mut r);
    assert_eq!(
        out[0],
        ToToolstack::Ready {
            address: [10, 0, 2, 15],
            port: 80
        },
        "readiness goes ahead of counters and data: {out:?}"
    );
    assert!(matches!(out[1], ToToolstack::Stats(_)));
    assert!(matches!(out[2], ToToolstack::Data { conn, .. } if conn == c.0));
    assert_eq!(out.len(), 3, "announced once: {out:?}");
    // Two announcements before dom0 reads: the newer one alone.
    r.announce_ready([10, 0, 2, 15], 80);
    r.announce_ready([10, 0, 2, 16], 80);
    assert_eq!(
        drain(&mut r),
        [ToToolstack::Ready {
            address: [10, 0, 2, 16],
            port: 80
        }]
    );
    assert!(!r.has_channel_out());
}

#[test]
fn link_delivers_readiness_to_dom0() {
    let (p1, p2) = pages();
    let mut dom0: Channel<&MemPage> = Channel::new(p1, p2, Role::Initiator).unwrap();
    let mut link = Link::new(Channel::new(p2, p1, Role::Acceptor).unwrap());
    let mut r = relay();
    // dom0 looked once and found nothing: it waits, so it must be kicked.
    assert_eq!(dom0.recv::<ToToolstack>().unwrap(), None);
    r.announce_ready([192, 168, 1, 2], 8080);
    let pumped = link.pump(&mut r, 0).unwrap();
    assert!(
        pumped.notify.kick(),
        "dom0 waits: kicked for the announcement"
    );
    assert!(!pumped.again);
    assert_eq!(
        dom0.recv::<ToToolstack>().unwrap(),
        Some(ToToolstack::Ready {
            address: [192, 168, 1, 2],
            port: 8080
        })
    );
    assert_eq!(dom0.recv::<ToToolstack>().unwrap(), None);
}

#[test]
fn dom0_limit_counts_connections_it_was_not_told_are_closed() {
    let mut r = Relay::new(Config {
        max_connections: xcp_relay::MAX_CONNECTIONS,
        max_per_source: xcp_relay::MAX_CONNECTIONS,
        ..Config::default()
    });
    let first = accept(&mut r, A);
    for _ in 1..xcp_relay::MAX_CONNECTIONS {
        accept(&mut r, A);
    }
    r.on_client_closed(first);
    // dom0 still holds `first` until it is told.
    assert_eq!(r.on_accept(0, B), Err(Refused::TooManyConnections));
    assert_eq!(drain(&mut r), [ToToolstack::Closed { conn: first.0 }]);
    accept(&mut r, B);
}

fn head_with_length(n: usize) -> Vec<u8> {
    format!("POST / HTTP/1.1\r\nHost: x\r\ncontent-LENGTH:  {n}\r\n\r\n").into_bytes()
}

#[test]
fn a_body_that_trickles_is_cut_at_its_deadline() {
    let config = Config::default();
    let mut r = relay();
    let c = accept(&mut r, A);
    feed_all(&mut r, 0, c, &head_with_length(1 << 20));
    // One byte a second keeps the idle deadline away, not the body's.
    let mut now = 0;
    while r.is_live(c) {
        now += 1000;
        feed_all(&mut r, now, c, b"x");
        r.on_tick(now);
        assert!(now <= config.body_timeout_ms, "still live at {now} ms");
    }
    assert_eq!(now, config.body_timeout_ms);
    assert_eq!(r.stats().body_timeouts, 1);
    assert_eq!(r.poll_close(), Some((c, CloseKind::Abort)));
    // A body that keeps a rate of 1 KiB/s or better is not cut: 64 KiB in
    // 40 s, beyond the bare 20 s.
    let d = accept(&mut r, A);
    let start = now;
    feed_all(&mut r, now, d, &head_with_length(64 << 10));
    for _ in 0..64 {
        now += 600;
        feed_all(&mut r, now, d, &[b' '; 1024]);
        drain(&mut r);
        r.on_tick(now);
        assert!(r.is_live(d), "cut at {} ms", now - start);
        assert!(r.next_deadline().is_some_and(|t| t > now));
    }
    drain(&mut r);
    // Complete: only dom0's answer is awaited, no deadline but idle's.
    r.on_tick(now + config.body_timeout_ms * 10);
    assert!(r.is_live(d));
    assert_eq!(r.stats().body_timeouts, 1);
}

#[test]
fn a_chunked_body_is_timed_until_dom0_answers() {
    let config = Config::default();
    let mut r = relay();
    let head = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    // Answered: no deadline but idle's.
    let answered = accept(&mut r, A);
    feed_all(&mut r, 0, answered, head);
    feed_all(&mut r, 0, answered, b"2\r\n{}\r\n0\r\n\r\n");
    drain(&mut r);
    r.on_toolstack(10, data(answered, b"HTTP/1.1 200 OK\r\n\r\n"));
    // A trickle: cut at the body deadline like a Content-Length one.
    let slow = accept(&mut r, A);
    feed_all(&mut r, 0, slow, head);
    let mut now = 0;
    while r.is_live(slow) {
        now += 1000;
        feed_all(&mut r, now, slow, b"1");
        drain(&mut r);
        r.on_tick(now);
        assert!(
            now <= config.body_timeout_ms + 1000,
            "still live at {now} ms"
        );
    }
    assert_eq!(r.stats().body_timeouts, 1);
    assert!(r.is_live(answered));
}

#[test]
fn at_a_cap_the_longest_stalled_connection_makes_room() {
    let mut r = Relay::new(Config {
        max_connections: 4,
        max_per_source: 3,
        ..Config::default()
    });
    // Three from A: a slow head, a slow body, and a complete request that
    // dom0 holds (a parked event.from, say).
    let slow_head = accept(&mut r, A);
    feed_all(&mut r, 0, slow_head, b"POST / HTTP/1.1\r\n");
    let slow_body = r.on_accept(100, A).unwrap();
    feed_all(&mut r, 100, slow_body, &head_with_length(500));
    let parked = r.on_accept(200, A).unwrap();
    feed_all(&mut r, 200, parked, &head_with_length(2));
    feed_all(&mut r, 200, parked, b"{}");
    drain(&mut r);
    // Too young to evict: refused.
    assert_eq!(r.on_accept(900, A), Err(Refused::TooManyFromSource));
    // Old enough: the longest stalled goes first, then the next.
    let fresh = r.on_accept(1000, A).unwrap();
    assert_eq!(r.poll_close(), Some((slow_head, CloseKind::Abort)));
    let fresh2 = r.on_accept(1100, A).unwrap();
    assert_eq!(r.poll_close(), Some((slow_body, CloseKind::Abort)));
    assert_eq!(r.stats().evicted, 2);
    // Only fresh ones (younger than evict_after_ms) and the parked one are
    // left: refused, nothing evicted.
    assert_eq!(r.on_accept(1200, A), Err(Refused::TooManyFromSource));
    assert!(r.is_live(parked) && r.is_live(fresh) && r.is_live(fresh2));
    // The overall cap evicts across sources; idle keep-alive connections
    // count from their last reply.
    let b = r.on_accept(1200, B).unwrap();
    assert_eq!(r.on_accept(1300, B), Err(Refused::TooManyConnections));
    let c = r.on_accept(2300, B).unwrap();
    assert_eq!(r.stats().evicted, 3);
    assert!(r.is_live(parked) && r.is_live(c));
    assert_eq!(
        [fresh, fresh2, b].iter().filter(|x| r.is_live(**x)).count(),
        2
    );
    // Each evicted connection is reported to dom0 once.
    let closed = drain(&mut r)
        .into_iter()
        .filter(|m| matches!(m, ToToolstack::Closed { .. }))
        .count();
    assert_eq!(closed, 3);
}

#[test]
fn a_stream_has_no_head_deadline_is_not_evicted_but_idles_out() {
    let mut r = Relay::new(Config {
        head_timeout_ms: 100,
        idle_timeout_ms: 1_000,
        max_connections: 2,
        evict_after_ms: 10,
        ..Config::default()
    });
    let console = accept(&mut r, A);
    feed_all(
        &mut r,
        0,
        console,
        b"CONNECT /console?ref=OpaqueRef:c HTTP/1.0\r\n\r\n",
    );
    assert_eq!(drain(&mut r).len(), 1);
    r.on_toolstack(5, FromToolstack::Stream { conn: console.0 });
    r.on_toolstack(5, data(console, b"HTTP/1.1 200 OK\r\n\r\nboot\n"));
    assert_eq!(
        client_out(&mut r, console),
        b"HTTP/1.1 200 OK\r\n\r\nboot\n"
    );
    // Keystrokes are not a request head: no head deadline, and they go to
    // dom0 unchanged.
    feed_all(&mut r, 10, console, b"ls");
    r.on_tick(500);
    assert!(r.is_live(console));
    assert_eq!(
        drain(&mut r),
        [ToToolstack::Data {
            conn: console.0,
            bytes: b"ls".to_vec()
        }]
    );
    // At the cap a stalled HTTP connection is evicted, the stream never.
    let stalled = accept(&mut r, B);
    let third = r.on_accept(600, B).expect("the stalled one makes room");
    assert!(!r.is_live(stalled) && r.is_live(console));
    // dom0 answers the third's request (it cannot be evicted either).
    feed_all(&mut r, 600, third, b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(
        r.on_accept(700, B),
        Err(Refused::TooManyConnections),
        "the stream is not evicted"
    );
    // Its idle deadline still applies.
    r.on_tick(1_010);
    assert!(!r.is_live(console));
    assert_eq!(r.stats().idle_timeouts, 1);
    // A stale or repeated Stream is harmless.
    r.on_toolstack(1_100, FromToolstack::Stream { conn: 999 });
    assert_eq!(r.stats().stale_messages, 1);
}

fn counters(domid: u16, devid: u32, rx_bytes: u64) -> VifCounters {
    VifCounters {
        domid,
        devid,
        rx_bytes,
        connected: true,
        ..VifCounters::default()
    }
}

#[test]
fn vif_stats_go_ahead_of_data_split_and_a_newer_batch_replaces_an_older() {
    let mut r = relay();
    let c = accept(&mut r, A);
    feed_all(&mut r, 0, c, b"GET / HTTP/1.1\r\n\r\n");
    r.send_vif_stats(vec![counters(1, 0, 10)]);
    r.send_vif_stats(vec![counters(1, 0, 20), counters(2, 0, 5)]);
    assert!(r.vif_stats_pending());
    let out = drain(&mut r);
    assert_eq!(
        out[0],
        ToToolstack::VifStats(vec![counters(1, 0, 20), counters(2, 0, 5)]),
        "the newer batch alone, ahead of data: {out:?}"
    );
    assert!(matches!(out[1], ToToolstack::Data { conn, .. } if conn == c.0));
    assert_eq!(out.len(), 2);
    assert!(!r.vif_stats_pending() && !r.has_channel_out());

    // More than MAX_VIF_STATS entries: several messages, in order, each
    // within the bound.
    let big: Vec<VifCounters> = (0..150).map(|i| counters(i, 0, u64::from(i))).collect();
    r.send_vif_stats(big.clone());
    assert!(r.has_channel_out());
    let out = drain(&mut r);
    let mut got = Vec::new();
    for m in &out {
        let ToToolstack::VifStats(part) = m else {
            panic!("{m:?}");
        };
        assert!(!part.is_empty() && part.len() <= MAX_VIF_STATS);
        got.extend_from_slice(part);
    }
    assert_eq!(out.len(), 3);
    assert_eq!(got, big);

    // A newer batch replaces what is left of an older, partly sent one.
    r.send_vif_stats(big.clone());
    assert!(
        matches!(r.poll_channel_out(), Some(ToToolstack::VifStats(p)) if p.len() == MAX_VIF_STATS)
    );
    r.send_vif_stats(vec![counters(9, 1, 1)]);
    assert_eq!(
        drain(&mut r),
        [ToToolstack::VifStats(vec![counters(9, 1, 1)])]
    );
    // An empty batch (every VIF gone) is nothing to send.
    r.send_vif_stats(Vec::new());
    assert!(!r.has_channel_out());
}

#[test]
fn link_follows_ready_and_a_newer_one_replaces_it() {
    let mut r = relay();
    r.send_vif_stats(vec![counters(1, 0, 1)]);
    r.on_toolstack(0, FromToolstack::StatsRequest);
    assert!(r.take_stats_request());
    r.send_stats(1, 2, MemoryFigures::default());
    let mac = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
    r.send_link(mac, [10, 0, 2, 14], 24, None, false);
    r.send_link(mac, [10, 0, 2, 15], 24, Some([10, 0, 2, 2]), true);
    r.announce_ready([10, 0, 2, 15], 80);
    let out = drain(&mut r);
    assert!(matches!(out[0], ToToolstack::Ready { .. }), "{out:?}");
    assert_eq!(
        out[1],
        ToToolstack::Link {
            mac,
            address: [10, 0, 2, 15],
            prefix: 24,
            gateway: Some([10, 0, 2, 2]),
            dhcp: true
        }
    );
    assert!(matches!(out[2], ToToolstack::Stats(_)));
    assert!(matches!(out[3], ToToolstack::VifStats(_)));
    assert_eq!(out.len(), 4, "{out:?}");
}

#[test]
fn link_carries_a_full_vif_stats_batch_to_dom0() {
    let (p1, p2) = pages();
    let mut dom0: Channel<&MemPage> = Channel::new(p1, p2, Role::Initiator).unwrap();
    let mut link = Link::new(Channel::new(p2, p1, Role::Acceptor).unwrap());
    let mut r = relay();
    let full = |i: u16| VifCounters {
        domid: u16::MAX - i,
        devid: u32::MAX,
        rx_bytes: u64::MAX,
        rx_packets: u64::MAX,
        tx_bytes: u64::MAX,
        tx_packets: u64::MAX,
        rx_dropped: u64::MAX,
        tx_dropped: u64::MAX,
        connected: true,
    };
    let batch: Vec<VifCounters> = (0..200).map(full).collect();
    r.send_vif_stats(batch.clone());
    let mut got = Vec::new();
    for _ in 0..100 {
        link.pump(&mut r, 0).unwrap();
        while let Some(m) = dom0.recv::<ToToolstack>().unwrap() {
            match m {
                ToToolstack::VifStats(part) => got.extend(part),
                other => panic!("{other:?}"),
            }
        }
    }
    assert_eq!(got, batch);
}

//! Fuzz target: random client events and hostile toolstack messages fed to
//! the relay engine, with its invariants checked after every step.
//!
//! read first: ../../src/engine.rs (the contract).
//!
//! Script: each step takes one byte `op` and, for most ops, one byte `c`
//! naming a connection (an index into those accepted so far, or, for dom0
//! messages with `op & 0x80`, the raw number `c`, usually not live).
//! `op % 10`: 0 accept (source `c % 4`); 1 client bytes (the next
//! `c * 64` input bytes); 2 client closed; 3 client EOF; 4 poll up to `c`
//! messages for dom0; 5 dom0 data (`c * 130` bytes, so past MAX_CHUNK
//! too); 6 dom0 close; 7 client reads `c * 512` bytes; 8 tick `c * 100`
//! ms; 9 poll closes, then with `c & 1` dom0 asks for counters and with
//! `c & 2` the board answers a request it sees. The engine must never
//! panic, never exceed its caps, never emit oversized data, never announce
//! a connection twice, and never send counters nobody asked for.
#![no_main]

use std::collections::BTreeSet;

use libfuzzer_sys::fuzz_target;
use xcp_netrelay::{Config, ConnId, Relay, Source};
use xcp_relay::{FromToolstack, ToToolstack, MAX_CHUNK};

fuzz_target!(|data: &[u8]| {
    let config = Config {
        max_connections: 8,
        max_per_source: 5,
        max_in_per_conn: 40_000,
        max_out_per_conn: 50_000,
        max_total: 120_000,
        idle_timeout_ms: 20_000,
        head_timeout_ms: 5_000,
        eof_linger_ms: 3_000,
        gate_out_bytes: MAX_CHUNK,
        body_timeout_ms: 4_000,
        body_ms_per_kib: 500,
        evict_after_ms: 1_000,
    };
    let mut r = Relay::new(config.clone());
    let mut conns: Vec<ConnId> = Vec::new();
    let mut announced: BTreeSet<u32> = BTreeSet::new();
    let mut now = 0u64;
    let mut stats_owed = false;
    let mut i = 0;
    while i + 1 < data.len() {
        let (op, c) = (data[i], data[i + 1]);
        i += 2;
        let pick = conns.get(usize::from(c) % conns.len().max(1)).copied();
        let target = if op & 0x80 != 0 {
            u32::from(c)
        } else {
            pick.map_or(u32::from(c), |p| p.0)
        };
        match op % 10 {
            0 => {
                if let Ok(id) = r.on_accept(now, Source([c % 4; 16])) {
                    assert!(!conns.contains(&id), "number reused");
                    conns.push(id);
                }
            }
            1 => {
                let n = (usize::from(c) * 64).min(data.len() - i);
                if let Some(p) = pick {
                    let took = r.on_client_bytes(now, p, &data[i..i + n]);
                    assert!(took <= n);
                }
                i += n;
            }
            2 => {
                if let Some(p) = pick {
                    r.on_client_closed(p);
                }
            }
            3 => {
                if let Some(p) = pick {
                    r.on_client_eof(now, p);
                }
            }
            4 => {
                for _ in 0..c {
                    match r.poll_channel_out() {
                        Some(ToToolstack::Data { conn, bytes }) => {
                            assert!(!bytes.is_empty() && bytes.len() <= MAX_CHUNK);
                            assert!(!announced.contains(&conn), "data after Closed");
                        }
                        Some(ToToolstack::Closed { conn }) => {
                            assert!(announced.insert(conn), "Closed twice");
                        }
                        Some(ToToolstack::Stats(_)) => {
                            assert!(stats_owed, "counters nobody asked for");
                            stats_owed = false;
                        }
                        Some(ToToolstack::Ready { .. }) => {
                            panic!("readiness nobody announced")
                        }
                        Some(ToToolstack::Link { .. }) => {
                            panic!("a link nobody described")
                        }
                        Some(ToToolstack::VifStats(_)) => {
                            panic!("VIF counters nobody sent")
                        }
                        None => break,
                    }
                }
            }
            5 => r.on_toolstack(
                now,
                FromToolstack::Data {
                    conn: target,
                    bytes: vec![c; usize::from(c) * 130],
                },
            ),
            6 => r.on_toolstack(now, FromToolstack::Close { conn: target }),
            7 => {
                if let Some(p) = pick {
                    let mut left = usize::from(c) * 512;
                    while left > 0 {
                        let Some(out) = r.poll_client_out(p) else {
                            break;
                        };
                        let k = out.len().min(left);
                        r.consume(now, p, k);
                        left -= k;
                    }
                }
            }
            8 => {
                now += u64::from(c) * 100;
                r.on_tick(now);
            }
            _ => {
                while let Some((id, _)) = r.poll_close() {
                    assert!(!r.is_live(id));
                }
                if c & 1 != 0 {
                    r.on_toolstack(now, FromToolstack::StatsRequest);
                }
                if c & 4 != 0 {
                    r.on_toolstack(now, FromToolstack::Stream { conn: target });
                }
                if c & 2 != 0 && r.take_stats_request() {
                    r.send_stats(u64::from(c), now, Default::default());
                    stats_owed = true;
                }
            }
        }
        assert!(r.buffered() <= config.max_total);
        assert!(r.connections() <= config.max_connections);
    }
});

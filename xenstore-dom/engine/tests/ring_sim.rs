//! L2: a deterministic simulation of a guest talking to the engine through
//! a xenstore ring page, the way the xenstore domain's kernel will: bytes
//! copied out once, flow control leaving requests in the guest's ring,
//! partial response writes, a guest that stops reading for a while.

use std::cell::RefCell;
use xenstore_engine::ring::{self, SharedPage, RING_SIZE};
use xenstore_engine::wire::{self, MsgType, Parse};
use xenstore_engine::{Config, ConnId, Engine};

/// A tiny deterministic PRNG (xorshift), so runs are reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The guest side: pushes whole requests into `req`, pulls bytes of `rsp`.
struct Guest {
    to_send: Vec<u8>,
    received: Vec<u8>,
}

impl Guest {
    fn produce(&mut self, page: &mut RefCell<[u8; 4096]>, rng: &mut Rng) {
        let cons = page.load_u32(ring::REQ_CONS);
        let prod = page.load_u32(ring::REQ_PROD);
        let space = (RING_SIZE - prod.wrapping_sub(cons)) as usize;
        let n = space
            .min(self.to_send.len())
            .min(rng.below(300) as usize + 1);
        for (i, b) in self.to_send.drain(..n).enumerate() {
            let at = (prod.wrapping_add(i as u32) % RING_SIZE) as usize;
            page.get_mut()[ring::REQ + at] = b;
        }
        page.store_u32(ring::REQ_PROD, prod.wrapping_add(n as u32));
    }

    fn consume(&mut self, page: &mut RefCell<[u8; 4096]>, rng: &mut Rng) {
        let cons = page.load_u32(ring::RSP_CONS);
        let prod = page.load_u32(ring::RSP_PROD);
        let avail = prod.wrapping_sub(cons) as usize;
        let n = avail.min(rng.below(400) as usize + 1);
        for i in 0..n {
            let at = (cons.wrapping_add(i as u32) % RING_SIZE) as usize;
            self.received.push(page.get_mut()[ring::RSP + at]);
        }
        page.store_u32(ring::RSP_CONS, cons.wrapping_add(n as u32));
    }
}

/// The board side: what the xenstore domain's loop does on each event.
/// Returns whether flow control held input back.
fn serve(
    engine: &mut Engine,
    conn: ConnId,
    page: &mut RefCell<[u8; 4096]>,
    leftover: &mut Vec<u8>,
) -> bool {
    if leftover.is_empty() && engine.wants_input(conn) {
        ring::take_requests(page, leftover, RING_SIZE as usize).expect("sane indexes");
    }
    if !leftover.is_empty() {
        let taken = engine.receive(conn, leftover).expect("well-formed stream");
        leftover.drain(..taken);
    }
    while let Some(out) = engine.output(conn) {
        let n = ring::put_responses(page, out).expect("sane indexes");
        if n == 0 {
            break;
        }
        engine.consume_output(conn, n);
    }
    assert!(
        leftover.len() <= RING_SIZE as usize,
        "the board never holds more than a ring"
    );
    !engine.wants_input(conn)
}

#[test]
fn guest_through_a_ring_gets_every_reply_in_order() {
    for seed in 1..=20u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut engine = Engine::new(Config::default());
        let d0 = engine.connect(0);
        for m in [
            wire::encode(MsgType::Write, 1, 0, b"/local/domain/7\0"),
            wire::encode(MsgType::SetPerms, 2, 0, b"/local/domain/7\0n0\0b7\0"),
        ] {
            engine.receive(d0, &m).expect("setup");
        }
        let conn = engine.introduce(7, 1234, 3).expect("introduce");
        let mut page = RefCell::new([0u8; 4096]);
        let requests = 300u32;
        let mut to_send = Vec::new();
        for i in 0..requests {
            let value = "x".repeat((i % 50) as usize);
            let m = match i % 3 {
                0 => wire::encode(
                    MsgType::Write,
                    i,
                    0,
                    format!("k{}\0{value}", i % 17).as_bytes(),
                ),
                1 => wire::encode(
                    MsgType::Read,
                    i,
                    0,
                    format!("k{}\0", (i - 1) % 17).as_bytes(),
                ),
                _ => wire::encode(MsgType::Directory, i, 0, b"/local/domain/7\0"),
            };
            to_send.extend_from_slice(&m);
        }
        let mut guest = Guest {
            to_send,
            received: Vec::new(),
        };
        let mut leftover = Vec::new();
        let mut steps = 0;
        let mut held_back = false;
        loop {
            steps += 1;
            assert!(steps < 100_000, "seed {seed}: no progress");
            guest.produce(&mut page, &mut rng);
            held_back |= serve(&mut engine, conn, &mut page, &mut leftover);
            // The guest reads at random, and stops reading for a while early
            // on so that replies pile up and flow control holds input back.
            if !(20..120).contains(&steps) && rng.below(10) > 2 {
                guest.consume(&mut page, &mut rng);
            }
            if guest.to_send.is_empty() && leftover.is_empty() && engine.output(conn).is_none() {
                guest.consume(&mut page, &mut rng);
                if page.load_u32(ring::RSP_PROD) == page.load_u32(ring::RSP_CONS) {
                    break;
                }
            }
        }
        let mut rest = &guest.received[..];
        let mut next = 0u32;
        while !rest.is_empty() {
            let Parse::Message { header, total } = wire::parse(rest) else {
                panic!("seed {seed}: torn reply")
            };
            assert_eq!(header.req_id, next, "seed {seed}: in order");
            assert_ne!(
                header.ty,
                MsgType::Error,
                "seed {seed}: request {next} failed"
            );
            if next % 3 == 1 {
                let expect = "x".repeat(((next - 1) % 50) as usize);
                assert_eq!(
                    &rest[16..total],
                    expect.as_bytes(),
                    "seed {seed}: read {next}"
                );
            }
            rest = &rest[total..];
            next += 1;
        }
        assert_eq!(next, requests, "seed {seed}: every request answered");
        assert!(held_back, "seed {seed}: flow control was exercised");
    }
}

#[test]
fn ring_index_attack_stops_only_that_ring() {
    let mut engine = Engine::new(Config::default());
    let conn = engine.introduce(8, 1, 1).expect("introduce");
    let other = engine.connect(0);
    let page = RefCell::new([0u8; 4096]);
    page.store_u32(ring::REQ_PROD, 5000);
    let mut buf = Vec::new();
    let err = ring::take_requests(&page, &mut buf, 4096).expect_err("RINGIDX");
    ring::set_error(&page, err);
    assert_eq!(page.load_u32(ring::ERROR), 2);
    assert!(buf.is_empty(), "nothing copied from a lying ring");
    // The engine is untouched and serves others.
    assert!(engine.is_open(conn));
    engine
        .receive(other, &wire::encode(MsgType::Read, 1, 0, b"/\0"))
        .expect("healthy");
    assert!(engine.output(other).is_some());
}

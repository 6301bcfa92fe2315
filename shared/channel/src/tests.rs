//! Channel tests: unit, hostile peer (every garbage class), a 2 x 10,000-message
//! simulation with sleeping ends (a lost wake-up deadlocks and fails), and
//! proptests.

extern crate std;

use alloc::vec;
use alloc::vec::Vec;

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use xcp_ring::fake::MemPage;

use crate::byte_ring::{self, Producer, CONS, PROD};
use crate::{Channel, DisconnectReason, Notify, RecvError, Role, SendError, SharedPage};

#[derive(Serialize, Deserialize, Debug, PartialEq, Eq, Clone)]
struct Msg {
    seq: u64,
    data: Vec<u8>,
}

fn msg(seq: u64, len: usize) -> Msg {
    Msg {
        seq,
        data: (0..len).map(|i| (i as u64 ^ seq) as u8).collect(),
    }
}

fn pair<'a>(a: &'a MemPage, b: &'a MemPage) -> (Channel<&'a MemPage>, Channel<&'a MemPage>) {
    let x = Channel::new(a, b, Role::Initiator).unwrap();
    let y = Channel::new(b, a, Role::Acceptor).unwrap();
    (x, y)
}

/// A hostile peer writing raw bytes into the page we receive on.
fn raw_send(page: &MemPage, bytes: &[u8]) {
    let mut p = Producer::new(page).unwrap();
    assert_eq!(p.write(bytes), Ok(bytes.len()));
}

#[test]
fn one_message_and_its_bytes() {
    let (a, b) = (MemPage::new(), MemPage::new());
    let (mut x, mut y) = pair(&a, &b);
    assert_eq!(y.recv::<Msg>(), Ok(None)); // y now waits for data
    assert_eq!(
        x.send(&Msg {
            seq: 1,
            data: vec![9, 8]
        }),
        Ok(Notify::Kick)
    );
    let p = a.snapshot();
    // prod = 4 + 4 payload bytes; frame = len 4, seq 1, len 2, 9, 8.
    assert_eq!(p[0..4], [8, 0, 0, 0]);
    assert_eq!(p[8..12], [1, 0, 0, 0], "cons_waiting set by y");
    assert_eq!(p[16..24], [4, 0, 0, 0, 1, 2, 9, 8]);
    assert_eq!(
        y.recv::<Msg>(),
        Ok(Some(Msg {
            seq: 1,
            data: vec![9, 8]
        }))
    );
    assert_eq!(a.load_u32(8), 0, "cons_waiting cleared while awake");
    // y is awake now: no kick needed.
    assert_eq!(
        x.send(&Msg {
            seq: 2,
            data: vec![]
        }),
        Ok(Notify::Skip)
    );
    assert_eq!(y.recv::<Msg>().unwrap().unwrap().seq, 2);
}

#[test]
fn message_larger_than_ring_streams() {
    let (a, b) = (MemPage::new(), MemPage::new());
    let (mut x, mut y) = pair(&a, &b);
    let big = msg(7, 10_000);
    assert!(x.send(&big).is_ok());
    assert!(x.send_pending());
    assert!(matches!(x.send(&msg(8, 1)), Err(SendError::WouldBlock(_))));
    let mut got = None;
    for _ in 0..20 {
        if let Some(m) = y.recv::<Msg>().unwrap() {
            got = Some(m);
            break;
        }
        // y freed space while x waited: y owes x a kick.
        assert_eq!(y.take_notify(), Notify::Kick);
        let _ = x.flush();
    }
    assert_eq!(got, Some(big));
    assert!(!x.send_pending());
    assert!(x.send(&msg(8, 1)).is_ok());
    assert_eq!(y.recv::<Msg>().unwrap(), Some(msg(8, 1)));
}

#[test]
fn would_block_when_full_and_no_reorder() {
    let (a, b) = (MemPage::new(), MemPage::new());
    let (mut x, mut y) = pair(&a, &b);
    let mut sent = 0u64;
    loop {
        match x.send(&msg(sent, 100)) {
            Ok(_) => sent += 1,
            Err(SendError::WouldBlock(_)) => break,
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(sent >= 18);
    assert_eq!(a.load_u32(byte_ring::PROD_WAITING), 1);
    let mut next = 0;
    while let Some(m) = y.recv::<Msg>().unwrap() {
        assert_eq!(m, msg(next, 100));
        next += 1;
        let _ = x.flush();
    }
    assert_eq!(next, sent);
}

#[test]
fn own_message_too_large() {
    let (a, b) = (MemPage::new(), MemPage::new());
    let (x, _y) = pair(&a, &b);
    let mut x = x.with_max_message(100);
    assert_eq!(x.send(&msg(0, 200)), Err(SendError::TooLarge));
    assert_eq!(x.disconnected(), None);
}

#[test]
fn hostile_length_over_maximum() {
    let (a, b) = (MemPage::new(), MemPage::new());
    let (mut x, _) = pair(&a, &b);
    raw_send(&b, &(64 * 1024 + 1u32).to_le_bytes());
    let bad = RecvError::Disconnected(DisconnectReason::BadLength(64 * 1024 + 1));
    assert_eq!(x.recv::<Msg>(), Err(bad));
    assert_eq!(x.recv::<Msg>(), Err(bad), "stays disconnected");
    assert_eq!(
        x.send(&1u8),
        Err(SendError::Disconnected(DisconnectReason::BadLength(65537)))
    );
    let (c, d) = (MemPage::new(), MemPage::new());
    let (x, _) = pair(&c, &d);
    let mut x = x.with_max_message(10);
    raw_send(&d, &[0xff, 0xff, 0xff, 0xff]);
    assert_eq!(
        x.recv::<u8>(),
        Err(RecvError::Disconnected(DisconnectReason::BadLength(
            u32::MAX
        )))
    );
}

#[test]
fn hostile_undecodable_payload() {
    for payload in [
        &[0xffu8, 0xff, 0xff, 0xff, 0xff, 0xff][..],
        &[1, 5, 1],
        &[1, 0, 0],
    ] {
        let (a, b) = (MemPage::new(), MemPage::new());
        let (mut x, _) = pair(&a, &b);
        let mut frame = (payload.len() as u32).to_le_bytes().to_vec();
        frame.extend_from_slice(payload);
        raw_send(&b, &frame);
        // [1,0,0] decodes as Msg{1, []} but leaves a trailing byte.
        assert_eq!(
            x.recv::<Msg>(),
            Err(RecvError::Disconnected(DisconnectReason::BadPayload))
        );
    }
}

#[test]
fn hostile_rx_index_out_of_range() {
    for prod in [2049u32, 0x8000_0000, u32::MAX] {
        let (a, b) = (MemPage::new(), MemPage::new());
        let (mut x, _) = pair(&a, &b);
        b.store_u32(PROD, prod);
        assert_eq!(
            x.recv::<Msg>(),
            Err(RecvError::Disconnected(DisconnectReason::RxIndexOutOfRange))
        );
    }
}

#[test]
fn hostile_tx_index_out_of_range() {
    let (a, b) = (MemPage::new(), MemPage::new());
    let (mut x, _) = pair(&a, &b);
    assert!(x.send(&msg(0, 10)).is_ok());
    a.store_u32(CONS, 100); // consumer claims more than we produced
    assert_eq!(
        x.send(&msg(1, 10)),
        Err(SendError::Disconnected(DisconnectReason::TxIndexOutOfRange))
    );
    assert_eq!(
        x.recv::<Msg>(),
        Err(RecvError::Disconnected(DisconnectReason::TxIndexOutOfRange))
    );
}

#[test]
fn tiny_page_refused() {
    struct Small;
    impl SharedPage for Small {
        fn len(&self) -> usize {
            20
        }
        fn read(&self, _: usize, _: &mut [u8]) {}
        fn write(&self, _: usize, _: &[u8]) {}
        fn load_u32(&self, _: usize) -> u32 {
            0
        }
        fn store_u32(&self, _: usize, _: u32) {}
    }
    assert!(Channel::new(Small, Small, Role::Acceptor).is_err());
}

/// Deterministic xorshift for the simulation.
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
    fn size(&mut self, max: usize) -> usize {
        let r = match self.below(100) {
            0 => self.below(60_000),
            1..=10 => self.below(8_000),
            _ => self.below(300),
        } as usize;
        r.min(max)
    }
}

/// One end of the simulation: a channel, what it still has to send, what it
/// expects next, and whether it sleeps until the peer kicks it.
struct End<'a> {
    ch: Channel<&'a MemPage>,
    to_send: u64,
    sent: u64,
    received: u64,
    asleep: bool,
    kicked: bool,
}

/// Runs one turn of `me`; returns true if `me` kicked its peer.
fn turn(me: &mut End<'_>, rng: &mut Rng, max: usize, seed: u64) -> bool {
    let mut kick = false;
    let mut blocked = false;
    for _ in 0..rng.below(6) {
        let r = if me.sent < me.to_send {
            me.ch.send(&msg(me.sent ^ seed, rng.size(max)))
        } else {
            me.ch.flush()
        };
        match r {
            Ok(n) => {
                kick |= n.kick();
                if me.sent < me.to_send {
                    me.sent += 1;
                }
            }
            Err(SendError::WouldBlock(n)) => {
                kick |= n.kick();
                blocked = true;
                break;
            }
            Err(e) => panic!("send: {e:?}"),
        }
    }
    let mut empty = false;
    for _ in 0..rng.below(6) {
        match me.ch.recv::<Msg>().expect("recv") {
            Some(m) => {
                assert_eq!(m.seq ^ seed ^ 1, me.received, "in order, none lost");
                assert_eq!(m, msg(m.seq, m.data.len()), "contents");
                me.received += 1;
            }
            None => {
                empty = true;
                break;
            }
        }
    }
    kick |= me.ch.take_notify().kick();
    // Sleep only after a final look both ways (which arms the flags).
    if rng.below(3) == 0 || blocked || empty {
        let can_send = match me.ch.flush() {
            Ok(n) => {
                kick |= n.kick();
                me.sent < me.to_send
            }
            Err(SendError::WouldBlock(n)) => {
                kick |= n.kick();
                false
            }
            Err(e) => panic!("flush: {e:?}"),
        };
        if !can_send {
            match me.ch.recv::<Msg>().expect("recv") {
                None => me.asleep = true,
                Some(m) => {
                    assert_eq!(m.seq ^ seed ^ 1, me.received);
                    me.received += 1;
                }
            }
        }
        kick |= me.ch.take_notify().kick();
    }
    kick
}

/// Two ends exchange `each` messages both ways; panics on a lost message,
/// a reordering, corrupted contents, or a lost wake-up (both asleep, work left).
fn simulate(seed: u64, each: u64, max: usize) {
    let (a, b) = (MemPage::new(), MemPage::new());
    let (x, y) = pair(&a, &b);
    let mk = |ch| End {
        ch,
        to_send: each,
        sent: 0,
        received: 0,
        asleep: false,
        kicked: false,
    };
    // x tags its messages with `seed`, y with `seed ^ 1`; each receiver
    // checks with its own seed flipped (see `turn`).
    let mut ends = [mk(x), mk(y)];
    let seeds = [seed, seed ^ 1];
    let mut rng = Rng(seed | 1);
    let mut steps = 0u64;
    loop {
        if ends
            .iter()
            .all(|e| e.received == each && e.sent == each && !e.ch.send_pending())
        {
            break;
        }
        steps += 1;
        assert!(steps < 50_000_000, "no progress");
        for e in ends.iter_mut() {
            if e.asleep && e.kicked {
                e.asleep = false;
                e.kicked = false;
            }
        }
        let awake: Vec<usize> = (0..2).filter(|&i| !ends[i].asleep).collect();
        assert!(
            !awake.is_empty(),
            "lost wake-up: both ends asleep with work left (seed {seed})"
        );
        let i = awake[rng.below(awake.len() as u64) as usize];
        let (me, peer) = if i == 0 {
            let (l, r) = ends.split_at_mut(1);
            (&mut l[0], &mut r[0])
        } else {
            let (l, r) = ends.split_at_mut(1);
            (&mut r[0], &mut l[0])
        };
        // `turn` checks `seq ^ seed ^ 1 == received` with the receiver's seed.
        if turn(me, &mut rng, max, seeds[i]) {
            peer.kicked = true;
        }
    }
}

#[test]
fn ten_thousand_messages_random_sizes_and_interleavings() {
    simulate(0x1234_5678, 10_000, crate::DEFAULT_MAX_MESSAGE - 16);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn simulation_never_loses_or_reorders(seed in any::<u64>(), each in 1u64..200) {
        simulate(seed, each, 5_000);
    }

    #[test]
    fn hostile_rx_page_never_panics(writes in proptest::collection::vec((0usize..4096, any::<[u8; 4]>()), 0..40)) {
        let (a, b) = (MemPage::new(), MemPage::new());
        let (mut x, _) = pair(&a, &b);
        for (off, bytes) in writes {
            b.poke(off, &bytes);
            let _ = x.recv::<Msg>();
            let _ = x.send(&msg(0, 50));
            a.poke(off ^ 4, &bytes);
        }
    }
}

#[test]
fn a_peer_that_started_first_keeps_its_wake_up_with_prepared_pages() {
    // dom0 allocates zeroed pages and grants them; the peer boots and
    // starts waiting before dom0 attaches its end.
    let (a, b) = (MemPage::new(), MemPage::new());
    let mut y = Channel::new(&b, &a, Role::Acceptor).unwrap();
    assert_eq!(y.recv::<Msg>(), Ok(None), "y waits for data");
    let mut x = Channel::new(&a, &b, Role::Prepared).unwrap();
    assert_eq!(
        x.send(&msg(1, 8)),
        Ok(Notify::Kick),
        "the waiting peer is kicked"
    );
    assert_eq!(y.recv::<Msg>(), Ok(Some(msg(1, 8))));
}

#[test]
fn zeroing_after_the_peer_started_loses_its_wake_up() {
    // What `Role::Initiator` does when it comes too late: the peer's
    // waiting flag is wiped and the send owes no kick, so both sleep.
    let (a, b) = (MemPage::new(), MemPage::new());
    let mut y = Channel::new(&b, &a, Role::Acceptor).unwrap();
    assert_eq!(y.recv::<Msg>(), Ok(None));
    let mut x = Channel::new(&a, &b, Role::Initiator).unwrap();
    assert_eq!(x.send(&msg(1, 8)), Ok(Notify::Skip));
}

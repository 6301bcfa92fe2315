//! Property tests: random valid request streams leave the disk as a model
//! says; random garbage on the ring never panics, never exceeds the budget
//! and at worst disconnects the VBD.

mod common;

use common::*;
use proptest::prelude::*;
use xcp_blkback::budget::{IO_BYTES_PER_VBD, MAX_REQUESTS_PER_VBD};
use xcp_blkback::fake::{run, MemPages};
use xcp_blkback::wire::*;
use xcp_blkback::{IoStatus, State, Vbd, Work};
use xcp_ring::sring;

/// One segment as the frontend means it: a page filled with `fill`,
/// sectors first..=last of it.
#[derive(Clone, Debug)]
struct SegSpec {
    first: u8,
    last: u8,
    fill: u8,
}

#[derive(Clone, Debug)]
enum ReqSpec {
    Write {
        sector: u64,
        segs: Vec<SegSpec>,
        indirect: bool,
    },
    Read {
        sector: u64,
        segs: Vec<SegSpec>,
        indirect: bool,
    },
    Discard {
        sector: u64,
        count: u64,
    },
    Flush,
}

fn seg_spec() -> impl Strategy<Value = SegSpec> {
    (0u8..8, 0u8..8, any::<u8>()).prop_map(|(a, b, fill)| SegSpec {
        first: a.min(b),
        last: a.max(b),
        fill,
    })
}

fn sectors(segs: &[SegSpec]) -> u64 {
    segs.iter().map(|s| u64::from(s.last - s.first) + 1).sum()
}

fn req_spec() -> impl Strategy<Value = ReqSpec> {
    let segs = prop_oneof![
        3 => prop::collection::vec(seg_spec(), 1..=11).prop_map(|s| (s, false)),
        1 => prop::collection::vec(seg_spec(), 1..=64).prop_map(|s| (s, true)),
    ];
    prop_oneof![
        4 => (segs.clone(), 0u64..SECTORS).prop_map(|((segs, indirect), at)| {
            let sector = at.min(SECTORS - sectors(&segs));
            ReqSpec::Write { sector, segs, indirect }
        }),
        3 => (segs, 0u64..SECTORS).prop_map(|((segs, indirect), at)| {
            let sector = at.min(SECTORS - sectors(&segs));
            ReqSpec::Read { sector, segs, indirect }
        }),
        1 => (0u64..SECTORS, 1u64..64).prop_map(|(sector, count)| ReqSpec::Discard {
            sector: sector.min(SECTORS - count),
            count
        }),
        1 => Just(ReqSpec::Flush),
    ]
}

#[derive(Clone, Debug)]
enum Step {
    /// The frontend sends these requests on a queue.
    Send(u8, Vec<ReqSpec>),
    /// The board polls a queue.
    Poll(u8),
    /// The board finishes the work held at this index (modulo).
    Finish(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0u8..2, prop::collection::vec(req_spec(), 1..6)).prop_map(|(q, r)| Step::Send(q, r)),
        3 => (0u8..2).prop_map(Step::Poll),
        4 => any::<usize>().prop_map(Step::Finish),
    ]
}

/// A request the frontend sent, with the grants it used.
struct Sent {
    id: u64,
    spec: ReqSpec,
    grefs: Vec<u32>,
}

fn apply_write(model: &mut [u8], sector: u64, segs: &[SegSpec]) {
    let mut at = sector as usize * 512;
    for s in segs {
        let n = (usize::from(s.last - s.first) + 1) * 512;
        model[at..at + n].fill(s.fill);
        at += n;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn valid_streams_match_a_model(steps in prop::collection::vec(step(), 1..60)) {
        let pages = rings(2, 1);
        let mut vbd: TestVbd = Vbd::new(config());
        let mut fronts = connect(&mut vbd, &pages, 1);
        let mut board = Board::new();
        let mut model = vec![0u8; SECTORS as usize * 512];
        let mut next_gref = DATA_GREF;
        let mut next_id = 0u64;
        // Per queue: requests sent, not yet turned into work (ring order).
        let mut queued: Vec<std::collections::VecDeque<Sent>> =
            (0..2).map(|_| Default::default()).collect();
        let mut held: Vec<(Work, Sent)> = Vec::new();
        let mut answered = 0usize;
        let mut sent = 0usize;
        for st in steps {
            match st {
                Step::Send(q, specs) => {
                    let front = &mut fronts[usize::from(q)];
                    for spec in specs {
                        if front.ring.free_requests() == 0 {
                            break;
                        }
                        let id = next_id;
                        next_id += 1;
                        let mut grefs = Vec::new();
                        let req = match &spec {
                            ReqSpec::Write { sector, segs, indirect } | ReqSpec::Read { sector, segs, indirect } => {
                                let write = matches!(spec, ReqSpec::Write { .. });
                                let raw: Vec<RawSegment> = segs.iter().map(|s| {
                                    let g = next_gref;
                                    next_gref += 1;
                                    // Reads land in zeroed pages.
                                    board.page(g, if write { s.fill } else { 0 });
                                    grefs.push(g);
                                    seg(g, s.first, s.last)
                                }).collect();
                                let op = if write { BLKIF_OP_WRITE } else { BLKIF_OP_READ };
                                if *indirect {
                                    let ig = next_gref;
                                    next_gref += 1;
                                    let bytes: Vec<u8> = raw.iter().flat_map(|s| s.encode()).collect();
                                    board.grants.grant(DOMID, ig, 0, &bytes);
                                    Request::indirect(op, raw.len() as u16, 0, id, *sector, &[ig])
                                } else {
                                    Request::direct(op, 0, id, *sector, &raw)
                                }
                            }
                            ReqSpec::Discard { sector, count } => Request::discard(0, id, *sector, *count, 0),
                            ReqSpec::Flush => Request::direct(BLKIF_OP_FLUSH_DISKCACHE, 0, id, 0, &[]),
                        };
                        send(front, &[req]);
                        sent += 1;
                        queued[usize::from(q)].push_back(Sent { id, spec, grefs });
                    }
                }
                Step::Poll(q) => {
                    let poll = vbd.poll(u16::from(q));
                    for w in poll.work {
                        let s = queued[usize::from(q)].pop_front().expect("work for a sent request");
                        held.push((w, s));
                    }
                }
                Step::Finish(i) => {
                    if held.is_empty() {
                        continue;
                    }
                    let (w, s) = held.remove(i % held.len());
                    let io = match w {
                        Work::Io(io) => io,
                        Work::Fetch(f) => {
                            let bytes = board.grants.fetch(&f);
                            vbd.indirect_fetched(f.token, bytes.as_deref()).io.expect("good segments")
                        }
                    };
                    let status = run(&io, &mut board.grants, &mut board.disk);
                    prop_assert_eq!(status, IoStatus::Ok);
                    match &s.spec {
                        ReqSpec::Write { sector, segs, .. } => apply_write(&mut model, *sector, segs),
                        ReqSpec::Discard { sector, count } => {
                            let a = *sector as usize * 512;
                            model[a..a + *count as usize * 512].fill(0);
                        }
                        ReqSpec::Read { sector, segs, .. } => {
                            let mut at = *sector as usize * 512;
                            for (sg, g) in segs.iter().zip(&s.grefs) {
                                let page = board.grants.page(DOMID, *g).expect("granted");
                                let off = usize::from(sg.first) * 512;
                                let n = (usize::from(sg.last - sg.first) + 1) * 512;
                                prop_assert_eq!(&page[off..off + n], &model[at..at + n]);
                                prop_assert!(page[..off].iter().all(|&b| b == 0));
                                prop_assert!(page[off + n..].iter().all(|&b| b == 0));
                                at += n;
                            }
                        }
                        ReqSpec::Flush => {}
                    }
                    vbd.complete(io.token, status);
                    // The one response is this request's, on its queue.
                    let r = responses(&mut fronts[usize::from(io.queue)]);
                    prop_assert_eq!(r.len(), 1);
                    prop_assert_eq!((r[0].id, r[0].status), (s.id, BLKIF_RSP_OKAY));
                    answered += 1;
                }
            }
            let (n, bytes) = vbd.in_flight();
            prop_assert_eq!(n, held.len());
            prop_assert!(n <= MAX_REQUESTS_PER_VBD && bytes <= IO_BYTES_PER_VBD);
        }
        prop_assert_eq!(vbd.state(), State::Connected);
        prop_assert_eq!(&board.disk.bytes, &model);
        prop_assert!(answered <= sent);
    }
}

#[derive(Clone, Debug)]
enum Garbage {
    /// Raw bytes somewhere on a queue's ring pages.
    Poke(u8, u16, Vec<u8>),
    /// A raw request slot, published.
    Slot(u8, Vec<u8>),
    Poll(u8),
    Finish(usize, u8),
    /// The frontend rewrites its state.
    FrontState(u8),
}

fn garbage() -> impl Strategy<Value = Garbage> {
    prop_oneof![
        1 => (0u8..2, any::<u16>(), prop::collection::vec(any::<u8>(), 0..16))
            .prop_map(|(q, o, b)| Garbage::Poke(q, o, b)),
        4 => (0u8..2, prop::collection::vec(any::<u8>(), 0..112)).prop_map(|(q, b)| Garbage::Slot(q, b)),
        3 => (0u8..3).prop_map(Garbage::Poll),
        3 => (any::<usize>(), any::<u8>()).prop_map(|(i, s)| Garbage::Finish(i, s)),
        1 => (0u8..10).prop_map(Garbage::FrontState),
    ]
}

fn publish_slot(ring: &MemPages, order: u32, bytes: &[u8]) {
    let mut slot = [0u8; REQUEST_SIZE];
    slot[..bytes.len()].copy_from_slice(bytes);
    // Mostly known ops.
    slot[0] %= 8;
    let mut x = [0u8; 4];
    xcp_ring::SharedPage::read(ring, sring::REQ_PROD, &mut x);
    let prod = u32::from_le_bytes(x);
    let at = sring::HEADER_SIZE + (prod & (ring_slots(order) - 1)) as usize * REQUEST_SIZE;
    ring.poke(at, &slot);
    ring.poke(sring::REQ_PROD, &prod.wrapping_add(1).to_le_bytes());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn garbage_never_panics(steps in prop::collection::vec(garbage(), 1..80)) {
        let pages = rings(2, 1);
        let mut vbd: TestVbd = Vbd::new(config());
        connect(&mut vbd, &pages, 1);
        let mut board = Board::new();
        for g in 0..16 {
            board.page(g, g as u8);
        }
        let mut held: Vec<Work> = Vec::new();
        for st in steps {
            match st {
                Garbage::Poke(q, off, b) => pages[usize::from(q)].poke(usize::from(off), &b),
                Garbage::Slot(q, b) => publish_slot(&pages[usize::from(q)], 1, &b),
                Garbage::Poll(q) => held.extend(vbd.poll(u16::from(q)).work),
                Garbage::Finish(i, s) => {
                    if !held.is_empty() {
                        let w = held.remove(i % held.len());
                        match w {
                            Work::Io(io) => {
                                let status = if s & 1 == 0 {
                                    run(&io, &mut board.grants, &mut board.disk)
                                } else {
                                    IoStatus::Error
                                };
                                vbd.complete(io.token, status);
                            }
                            Work::Fetch(f) => {
                                let bytes = board.grants.fetch(&f);
                                if let Some(io) = vbd.indirect_fetched(f.token, bytes.as_deref()).io {
                                    held.push(Work::Io(io));
                                }
                            }
                        }
                    }
                }
                Garbage::FrontState(s) => vbd.on_frontend_state(Some(&[b'0' + s])),
            }
            drain(&mut vbd);
            let (n, bytes) = vbd.in_flight();
            prop_assert_eq!(n, held.len());
            prop_assert!(n <= MAX_REQUESTS_PER_VBD && bytes <= IO_BYTES_PER_VBD);
        }
        for w in held {
            match w {
                Work::Io(io) => { vbd.complete(io.token, IoStatus::Error); }
                Work::Fetch(f) => { vbd.indirect_fetched(f.token, None); }
            }
        }
        prop_assert_eq!(vbd.in_flight(), (0, 0));
    }
}

//! Whole request/response cycles through the fake blkfront, the engine and
//! an in-memory disk: reads, writes, flushes, barriers, discards, indirect
//! requests, bad requests, budgets and faults.

mod common;

use common::*;
use xcp_blkback::budget::{IO_BYTES_PER_VBD, MAX_REQUESTS_PER_VBD, REQUESTS_PER_POLL};
use xcp_blkback::fake::{run, MemPages};
use xcp_blkback::wire::*;
use xcp_blkback::{Config, Fault, IoOp, IoStatus, State, Vbd, Work};
use xcp_ring::{sring, RingError};

fn one_queue<'a>(pages: &'a [MemPages], config: Config) -> (TestVbd<'a>, Front<'a>) {
    let mut vbd: TestVbd = Vbd::new(config);
    let front = connect(&mut vbd, pages, 0).remove(0);
    (vbd, front)
}

fn status_of(front: &mut Front<'_>) -> Vec<(u64, u8, i16)> {
    responses(front)
        .iter()
        .map(|r| (r.id, r.operation, r.status))
        .collect()
}

#[test]
fn write_then_read_back() {
    let pages = rings(1, 0);
    let (mut vbd, mut front) = one_queue(&pages, config());
    let mut board = Board::new();
    board.page(DATA_GREF, 0xaa);
    board.page(DATA_GREF + 1, 0xbb);
    // Sectors 1..=6 of page 0 then all of page 1: 14 sectors from sector 10.
    send(
        &mut front,
        &[Request::direct(
            BLKIF_OP_WRITE,
            0,
            1,
            10,
            &[seg(DATA_GREF, 1, 6), seg(DATA_GREF + 1, 0, 7)],
        )],
    );
    assert!(board.serve(&mut vbd, 0));
    assert_eq!(status_of(&mut front), [(1, BLKIF_OP_WRITE, BLKIF_RSP_OKAY)]);
    let d = &board.disk.bytes;
    assert!(d[..10 * 512].iter().all(|&b| b == 0));
    assert!(d[10 * 512..16 * 512].iter().all(|&b| b == 0xaa));
    assert!(d[16 * 512..24 * 512].iter().all(|&b| b == 0xbb));
    assert!(d[24 * 512..].iter().all(|&b| b == 0));
    // Read sectors 14..=17 into the middle of a fresh page.
    board.page(DATA_GREF + 2, 0);
    send(
        &mut front,
        &[Request::direct(
            BLKIF_OP_READ,
            0,
            2,
            14,
            &[seg(DATA_GREF + 2, 2, 5)],
        )],
    );
    board.serve(&mut vbd, 0);
    assert_eq!(status_of(&mut front), [(2, BLKIF_OP_READ, BLKIF_RSP_OKAY)]);
    let page = board.grants.page(DOMID, DATA_GREF + 2).expect("granted");
    assert!(page[..1024].iter().all(|&b| b == 0));
    assert!(page[1024..2048].iter().all(|&b| b == 0xaa));
    assert!(page[2048..3072].iter().all(|&b| b == 0xbb));
    assert!(page[3072..].iter().all(|&b| b == 0));
    let st = vbd.stats();
    assert_eq!((st.reads, st.writes), (1, 1));
    assert_eq!((st.read_bytes, st.write_bytes), (2048, 7168));
    assert_eq!(vbd.in_flight(), (0, 0));
}

#[test]
fn flush_and_flush_with_data() {
    let pages = rings(1, 0);
    let (mut vbd, mut front) = one_queue(&pages, config());
    let mut board = Board::new();
    board.page(DATA_GREF, 0x11);
    send(
        &mut front,
        &[
            Request::direct(BLKIF_OP_FLUSH_DISKCACHE, 0, 1, 0, &[]),
            Request::direct(BLKIF_OP_FLUSH_DISKCACHE, 0, 2, 0, &[seg(DATA_GREF, 0, 7)]),
        ],
    );
    board.serve(&mut vbd, 0);
    assert_eq!(
        status_of(&mut front),
        [
            (1, BLKIF_OP_FLUSH_DISKCACHE, BLKIF_RSP_OKAY),
            (2, BLKIF_OP_FLUSH_DISKCACHE, BLKIF_RSP_OKAY)
        ]
    );
    assert_eq!(board.disk.flushes, 2);
    assert!(board.disk.bytes[..4096].iter().all(|&b| b == 0x11));
}

#[test]
fn barrier_waits_for_the_queue_to_drain() {
    let pages = rings(1, 0);
    let (mut vbd, mut front) = one_queue(&pages, config());
    let mut board = Board::new();
    board.page(DATA_GREF, 0x22);
    send(
        &mut front,
        &[
            Request::direct(BLKIF_OP_READ, 0, 1, 0, &[seg(DATA_GREF, 0, 0)]),
            Request::direct(BLKIF_OP_WRITE_BARRIER, 0, 2, 0, &[seg(DATA_GREF, 0, 7)]),
            Request::direct(BLKIF_OP_READ, 0, 3, 0, &[seg(DATA_GREF, 0, 0)]),
        ],
    );
    let poll = vbd.poll(0);
    assert_eq!(poll.work.len(), 1, "only the read before the barrier");
    assert!(poll.blocked);
    // Still blocked while the read is out.
    let again = vbd.poll(0);
    assert!(again.work.is_empty() && again.blocked);
    assert_eq!(vbd.stats().blocked, 1, "one request waited, counted once");
    let read = poll.work.into_iter().next().expect("read");
    board.finish(&mut vbd, read);
    let poll = vbd.poll(0);
    assert!(matches!(
        &poll.work[0],
        Work::Io(io) if matches!(io.op, IoOp::Write { flush: true, .. })
    ));
    assert_eq!(poll.work.len(), 2, "the barrier, then the read after it");
    for w in poll.work {
        board.finish(&mut vbd, w);
    }
    let ids: Vec<_> = status_of(&mut front).iter().map(|r| r.0).collect();
    assert_eq!(ids, [1, 2, 3]);
    assert_eq!(board.disk.flushes, 1);
}

#[test]
fn discard() {
    let pages = rings(1, 0);
    let (mut vbd, mut front) = one_queue(&pages, config());
    let mut board = Board::new();
    board.disk.bytes.fill(0x33);
    send(
        &mut front,
        &[
            Request::discard(0, 1, 8, 16, 0),
            Request::discard(0, 2, 8, 16, BLKIF_DISCARD_SECURE),
            Request::discard(0, 3, SECTORS - 1, 2, 0),
            Request::discard(0, 4, 0, 0, 0),
        ],
    );
    board.serve(&mut vbd, 0);
    assert_eq!(
        status_of(&mut front),
        [
            (2, BLKIF_OP_DISCARD, BLKIF_RSP_EOPNOTSUPP),
            (3, BLKIF_OP_DISCARD, BLKIF_RSP_ERROR),
            (4, BLKIF_OP_DISCARD, BLKIF_RSP_OKAY),
            (1, BLKIF_OP_DISCARD, BLKIF_RSP_OKAY),
        ]
    );
    let d = &board.disk.bytes;
    assert!(d[..8 * 512].iter().all(|&b| b == 0x33));
    assert!(d[8 * 512..24 * 512].iter().all(|&b| b == 0));
    assert!(d[24 * 512..].iter().all(|&b| b == 0x33));
    assert_eq!(board.disk.discards, 1);
}

fn indirect_page(board: &mut Board, gref: u32, segs: &[RawSegment]) {
    let bytes: Vec<u8> = segs.iter().flat_map(|s| s.encode()).collect();
    board.grants.grant(DOMID, gref, 0, &bytes);
}

#[test]
fn indirect_round_trip() {
    let pages = rings(1, 0);
    let (mut vbd, mut front) = one_queue(&pages, config());
    let mut board = Board::new();
    // 20 whole pages, each filled with its index.
    let segs: Vec<_> = (0..20u32)
        .map(|i| {
            board.page(DATA_GREF + i, i as u8 + 1);
            seg(DATA_GREF + i, 0, 7)
        })
        .collect();
    indirect_page(&mut board, 50, &segs);
    send(
        &mut front,
        &[Request::indirect(BLKIF_OP_WRITE, 20, 0, 1, 100, &[50])],
    );
    let poll = vbd.poll(0);
    let Some(Work::Fetch(f)) = poll.work.first() else {
        panic!("{:?}", poll.work)
    };
    assert_eq!(f.pages, [(50, 160)]);
    assert_eq!(vbd.in_flight(), (1, 21 * 4096));
    board.finish(&mut vbd, poll.work.into_iter().next().expect("fetch"));
    assert_eq!(status_of(&mut front), [(1, BLKIF_OP_WRITE, BLKIF_RSP_OKAY)]);
    for i in 0..20usize {
        let at = (100 + 8 * i) * 512;
        assert!(board.disk.bytes[at..at + 4096]
            .iter()
            .all(|&b| b == i as u8 + 1));
    }
    // Read them back into other pages through an indirect read.
    let back: Vec<_> = (0..20u32)
        .map(|i| {
            board.page(DATA_GREF + 100 + i, 0);
            seg(DATA_GREF + 100 + i, 0, 7)
        })
        .collect();
    indirect_page(&mut board, 51, &back);
    send(
        &mut front,
        &[Request::indirect(BLKIF_OP_READ, 20, 0, 2, 100, &[51])],
    );
    board.serve(&mut vbd, 0);
    assert_eq!(status_of(&mut front), [(2, BLKIF_OP_READ, BLKIF_RSP_OKAY)]);
    for i in 0..20u32 {
        let p = board.grants.page(DOMID, DATA_GREF + 100 + i).expect("page");
        assert!(p.iter().all(|&b| b == i as u8 + 1));
    }
    assert_eq!(vbd.in_flight(), (0, 0));
}

#[test]
fn indirect_failures_are_answered() {
    let pages = rings(1, 0);
    let (mut vbd, mut front) = one_queue(&pages, config());
    let mut board = Board::new();
    board.page(DATA_GREF, 0);
    indirect_page(
        &mut board,
        60,
        &[seg(DATA_GREF, 0, 7), seg(DATA_GREF, 5, 2)],
    );
    indirect_page(&mut board, 61, &[seg(DATA_GREF, 0, 7); 2]);
    send(
        &mut front,
        &[
            // A bad segment inside the indirect page.
            Request::indirect(BLKIF_OP_READ, 2, 0, 1, 0, &[60]),
            // An indirect page never granted.
            Request::indirect(BLKIF_OP_READ, 2, 0, 2, 0, &[62]),
            // Past the disk's end once the segments are known.
            Request::indirect(BLKIF_OP_READ, 2, 0, 3, SECTORS - 8, &[61]),
            // More segments than offered.
            Request::indirect(BLKIF_OP_READ, 65, 0, 4, 0, &[61]),
        ],
    );
    board.serve(&mut vbd, 0);
    let mut got = status_of(&mut front);
    got.sort();
    assert_eq!(
        got,
        [
            (1, BLKIF_OP_READ, BLKIF_RSP_ERROR),
            (2, BLKIF_OP_READ, BLKIF_RSP_ERROR),
            (3, BLKIF_OP_READ, BLKIF_RSP_ERROR),
            (4, BLKIF_OP_READ, BLKIF_RSP_ERROR),
        ]
    );
    assert_eq!(vbd.in_flight(), (0, 0));
    assert_eq!(vbd.state(), State::Connected);
}

#[test]
fn bad_requests_get_error_responses() {
    let pages = rings(1, 0);
    let mut cfg = config();
    cfg.disk.readonly = true;
    let (mut vbd, mut front) = one_queue(&pages, cfg);
    let mut board = Board::new();
    board.page(DATA_GREF, 0);
    send(
        &mut front,
        &[
            Request::direct(BLKIF_OP_WRITE, 0, 1, 0, &[seg(DATA_GREF, 0, 7)]),
            Request::direct(BLKIF_OP_READ, 0, 2, 0, &[seg(DATA_GREF, 4, 3)]),
            Request::direct(BLKIF_OP_READ, 0, 3, SECTORS, &[seg(DATA_GREF, 0, 0)]),
            Request::direct(BLKIF_OP_READ, 0, 4, 0, &[]),
            Request::direct(BLKIF_OP_RESERVED_1, 0, 5, 0, &[]),
            Request::direct(200, 0, 6, 0, &[]),
            Request::discard(0, 7, 0, 8, 0),
            // A page the frontend never granted: the copy fails.
            Request::direct(BLKIF_OP_READ, 0, 8, 0, &[seg(9999, 0, 7)]),
            Request::direct(BLKIF_OP_READ, 0, 9, SECTORS - 8, &[seg(DATA_GREF, 0, 7)]),
        ],
    );
    board.serve(&mut vbd, 0);
    assert_eq!(
        status_of(&mut front),
        [
            (1, BLKIF_OP_WRITE, BLKIF_RSP_ERROR),
            (2, BLKIF_OP_READ, BLKIF_RSP_ERROR),
            (3, BLKIF_OP_READ, BLKIF_RSP_ERROR),
            (4, BLKIF_OP_READ, BLKIF_RSP_ERROR),
            (5, BLKIF_OP_RESERVED_1, BLKIF_RSP_EOPNOTSUPP),
            (6, 200, BLKIF_RSP_EOPNOTSUPP),
            (7, BLKIF_OP_DISCARD, BLKIF_RSP_ERROR),
            (8, BLKIF_OP_READ, BLKIF_RSP_ERROR),
            (9, BLKIF_OP_READ, BLKIF_RSP_OKAY),
        ]
    );
    let st = vbd.stats();
    assert_eq!((st.errors, st.unsupported, st.faults), (6, 2, 0));
}

#[test]
fn storage_not_supported_is_eopnotsupp() {
    let pages = rings(1, 0);
    let (mut vbd, mut front) = one_queue(&pages, config());
    send(&mut front, &[Request::discard(0, 1, 0, 8, 0)]);
    let poll = vbd.poll(0);
    let Some(Work::Io(io)) = poll.work.first() else {
        panic!()
    };
    assert!(vbd.complete(io.token, IoStatus::NotSupported));
    assert_eq!(
        status_of(&mut front),
        [(1, BLKIF_OP_DISCARD, BLKIF_RSP_EOPNOTSUPP)]
    );
    // Completing it twice does nothing.
    assert!(!vbd.complete(io.token, IoStatus::Ok));
    assert!(status_of(&mut front).is_empty());
}

#[test]
fn id_reused_in_flight_disconnects() {
    let pages = rings(1, 0);
    let (mut vbd, mut front) = one_queue(&pages, config());
    let mut board = Board::new();
    board.page(DATA_GREF, 0);
    let r = Request::direct(BLKIF_OP_READ, 0, 42, 0, &[seg(DATA_GREF, 0, 0)]);
    // Reuse after completion is fine.
    send(&mut front, &[r]);
    board.serve(&mut vbd, 0);
    send(&mut front, &[r]);
    board.serve(&mut vbd, 0);
    assert_eq!(responses(&mut front).len(), 2);
    // Reuse while in flight is not.
    send(&mut front, &[r]);
    let held = vbd.poll(0).work;
    send(&mut front, &[r]);
    let poll = vbd.poll(0);
    assert!(poll.work.is_empty());
    assert_eq!(vbd.state(), State::Disconnected(Fault::DuplicateId(0, 42)));
    assert_eq!(vbd.in_flight().0, 1, "the first is stale, still out");
    for w in held {
        assert!(!board.finish(&mut vbd, w));
    }
    assert_eq!(vbd.in_flight(), (0, 0));
}

#[test]
fn a_fault_mid_poll_takes_back_the_work_it_made() {
    let pages = rings(1, 0);
    let (mut vbd, mut front) = one_queue(&pages, config());
    let r = Request::direct(BLKIF_OP_READ, 0, 42, 0, &[seg(DATA_GREF, 0, 0)]);
    // Both leave the ring in one poll: the first became work before the
    // second's reused id disconnected the VBD.
    send(&mut front, &[r, r]);
    let poll = vbd.poll(0);
    assert!(poll.work.is_empty());
    assert_eq!(vbd.state(), State::Disconnected(Fault::DuplicateId(0, 42)));
    assert_eq!(vbd.in_flight(), (0, 0), "no budget lost");
}

#[test]
fn stale_work_only_returns_budget() {
    let pages = rings(1, 0);
    let (mut vbd, mut front) = one_queue(&pages, config());
    let mut board = Board::new();
    board.page(DATA_GREF, 0);
    send(
        &mut front,
        &[Request::direct(
            BLKIF_OP_READ,
            0,
            1,
            0,
            &[seg(DATA_GREF, 0, 7)],
        )],
    );
    let work = vbd.poll(0).work;
    assert_eq!(vbd.in_flight(), (1, 4096));
    vbd.on_frontend_state(Some(b"5"));
    for w in work {
        assert!(!board.finish(&mut vbd, w));
    }
    assert_eq!(vbd.in_flight(), (0, 0));
    assert!(responses(&mut front).is_empty());
}

#[test]
fn ring_nonsense_disconnects() {
    let pages = rings(1, 0);
    let (mut vbd, _front) = one_queue(&pages, config());
    pages[0].poke(sring::REQ_PROD, &1000u32.to_le_bytes());
    let poll = vbd.poll(0);
    assert!(poll.work.is_empty() && !poll.notify);
    assert_eq!(
        vbd.state(),
        State::Disconnected(Fault::Ring(0, RingError::RequestOverflow))
    );
}

#[test]
fn budget_bounds_work_in_flight() {
    let pages = rings(1, 2);
    let mut vbd: TestVbd = Vbd::new(config());
    let mut front = connect(&mut vbd, &pages, 2).remove(0);
    let mut board = Board::new();
    for i in 0..11 {
        board.page(DATA_GREF + i, 0);
    }
    // 128 requests of 11 pages: far more than the budget.
    let full: Vec<_> = (0..11).map(|i| seg(DATA_GREF + i, 0, 7)).collect();
    let reqs: Vec<_> = (0..128)
        .map(|i| Request::direct(BLKIF_OP_READ, 0, i, 0, &full))
        .collect();
    send(&mut front, &reqs);
    let mut out = Vec::new();
    loop {
        let poll = vbd.poll(0);
        out.extend(poll.work);
        if poll.blocked {
            break;
        }
        assert!(poll.again);
    }
    let (n, bytes) = vbd.in_flight();
    assert!(n <= MAX_REQUESTS_PER_VBD && bytes <= IO_BYTES_PER_VBD);
    assert_eq!(n, IO_BYTES_PER_VBD / (11 * 4096));
    assert_eq!(out.len(), n);
    // Completions return budget; the rest follows.
    let mut done = 0;
    while let Some(w) = out.pop() {
        board.finish(&mut vbd, w);
        done += 1;
        let poll = vbd.poll(0);
        out.extend(poll.work);
        let (n, bytes) = vbd.in_flight();
        assert!(n <= MAX_REQUESTS_PER_VBD && bytes <= IO_BYTES_PER_VBD);
    }
    assert_eq!(done, 128);
    assert_eq!(responses(&mut front).len(), 128);
    assert!(vbd.stats().blocked > 0);
}

#[test]
fn a_poll_takes_a_bounded_batch() {
    let pages = rings(1, 1);
    let mut vbd: TestVbd = Vbd::new(config());
    let mut front = connect(&mut vbd, &pages, 1).remove(0);
    let reqs: Vec<_> = (0..50)
        .map(|i| Request::direct(BLKIF_OP_RESERVED_1, 0, i, 0, &[]))
        .collect();
    send(&mut front, &reqs);
    let first = vbd.poll(0);
    assert!(first.again && first.notify);
    assert_eq!(responses(&mut front).len(), REQUESTS_PER_POLL);
    let second = vbd.poll(0);
    assert!(!second.again);
    assert_eq!(responses(&mut front).len(), 50 - REQUESTS_PER_POLL);
}

#[test]
fn work_runs_in_any_order() {
    let pages = rings(1, 0);
    let (mut vbd, mut front) = one_queue(&pages, config());
    let mut board = Board::new();
    board.page(DATA_GREF, 0x44);
    let reqs: Vec<_> = (0..5)
        .map(|i| Request::direct(BLKIF_OP_WRITE, 0, i, i * 8, &[seg(DATA_GREF, 0, 7)]))
        .collect();
    send(&mut front, &reqs);
    let mut work = vbd.poll(0).work;
    work.reverse();
    for w in work {
        let Work::Io(io) = w else { panic!() };
        let status = run(&io, &mut board.grants, &mut board.disk);
        vbd.complete(io.token, status);
    }
    let ids: Vec<_> = status_of(&mut front).iter().map(|r| r.0).collect();
    assert_eq!(ids, [4, 3, 2, 1, 0]);
    assert!(board.disk.bytes[..5 * 4096].iter().all(|&b| b == 0x44));
}

#[test]
fn a_busy_queue_leaves_its_siblings_their_share() {
    let pages = rings(2, 2);
    let mut vbd: TestVbd = Vbd::new(config());
    let mut fronts = connect(&mut vbd, &pages, 2);
    let mut board = Board::new();
    for i in 0..11 {
        board.page(DATA_GREF + i, 0);
    }
    let full: Vec<_> = (0..11).map(|i| seg(DATA_GREF + i, 0, 7)).collect();
    let reqs: Vec<_> = (0..40)
        .map(|i| Request::direct(BLKIF_OP_READ, 0, i, 0, &full))
        .collect();
    send(&mut fronts[0], &reqs);
    send(&mut fronts[1], &reqs[..5]);
    // Queue 0 floods and the board holds its work: it stops at its half.
    let busy = vbd.poll(0);
    assert!(busy.blocked);
    let half = IO_BYTES_PER_VBD / 2 / (11 * 4096);
    assert_eq!(busy.work.len(), half);
    // Queue 1 still gets all it asks for.
    let other = vbd.poll(1);
    assert_eq!(other.work.len(), 5);
    assert!(!other.blocked);
    let (n, bytes) = vbd.in_flight();
    assert_eq!(n, half + 5);
    assert!(bytes <= IO_BYTES_PER_VBD);
    for w in busy.work.into_iter().chain(other.work) {
        board.finish(&mut vbd, w);
    }
    board.serve(&mut vbd, 0);
    assert_eq!(responses(&mut fronts[0]).len(), 40);
    assert_eq!(responses(&mut fronts[1]).len(), 5);
}

#[test]
fn a_largest_indirect_request_goes_alone() {
    // Four queues: a quarter of the budget is less than one 64-segment
    // indirect request, which still goes when its queue has nothing out.
    let pages = rings(4, 0);
    let mut vbd: TestVbd = Vbd::new(config());
    let mut fronts = connect(&mut vbd, &pages, 0);
    let mut board = Board::new();
    board.page(DATA_GREF, 0);
    let segs = vec![seg(DATA_GREF, 0, 7); 64];
    let bytes: Vec<u8> = segs.iter().flat_map(|s| s.encode()).collect();
    board.grants.grant(DOMID, 50, 0, &bytes);
    let big = |id| Request::indirect(BLKIF_OP_READ, 64, 0, id, 0, &[50]);
    send(&mut fronts[0], &[big(1), big(2)]);
    let poll = vbd.poll(0);
    assert_eq!(poll.work.len(), 1);
    assert!(poll.blocked);
    for w in poll.work {
        board.finish(&mut vbd, w);
    }
    board.serve(&mut vbd, 0);
    assert_eq!(responses(&mut fronts[0]).len(), 2);
}

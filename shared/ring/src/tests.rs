//! L0 tests: byte fixtures, hostile indexes, and proptests of interleavings.

extern crate std;

use std::vec::Vec;

use proptest::prelude::*;

use crate::fake::MemPage;
use crate::sring::{self, REQ_EVENT, REQ_PROD, RSP_EVENT, RSP_PROD};
use crate::{BackRing, FrontRing, RingEntry, RingError, SharedPage};

/// 16-byte request {u64 id, u32 op, u32 len}, like tests/c_peer.rs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Req {
    id: u64,
    op: u32,
    len: u32,
}

/// 12-byte response {u32 id, i32 status, u32 extra}.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rsp {
    id: u32,
    status: i32,
    extra: u32,
}

impl RingEntry for Req {
    const SIZE: usize = 16;
    fn encode(&self, out: &mut [u8]) {
        out[0..8].copy_from_slice(&self.id.to_le_bytes());
        out[8..12].copy_from_slice(&self.op.to_le_bytes());
        out[12..16].copy_from_slice(&self.len.to_le_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut id = [0u8; 8];
        id.copy_from_slice(&b[0..8]);
        Req {
            id: u64::from_le_bytes(id),
            op: u32_at(8),
            len: u32_at(12),
        }
    }
}

impl RingEntry for Rsp {
    const SIZE: usize = 12;
    fn encode(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.id.to_le_bytes());
        out[4..8].copy_from_slice(&self.status.to_le_bytes());
        out[8..12].copy_from_slice(&self.extra.to_le_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Rsp {
            id: u32_at(0),
            status: u32_at(4) as i32,
            extra: u32_at(8),
        }
    }
}

type Front<'a> = FrontRing<&'a MemPage, Req, Rsp>;
type Back<'a> = BackRing<&'a MemPage, Req, Rsp>;

fn req(i: u64) -> Req {
    Req {
        id: i,
        op: 7,
        len: i as u32 * 3,
    }
}

#[test]
fn init_header_bytes() {
    let page = MemPage::new();
    page.poke(0, &[0xAA; 64]);
    let front = Front::init(&page).unwrap();
    assert_eq!(front.size(), 128);
    let mut want = [0u8; 64];
    want[4] = 1; // req_event = 1
    want[12] = 1; // rsp_event = 1
    assert_eq!(page.snapshot()[..64], want);
}

#[test]
fn request_slot_and_push_bytes() {
    let page = MemPage::new();
    let mut front = Front::init(&page).unwrap();
    front
        .queue_request(&Req {
            id: 0x0102,
            op: 3,
            len: 9,
        })
        .unwrap();
    // Not visible before the push.
    assert_eq!(page.load_u32(REQ_PROD), 0);
    assert!(front.push_requests()); // req_event 1 crossed
    let p = page.snapshot();
    assert_eq!(p[0..4], [1, 0, 0, 0]);
    assert_eq!(p[64..80], [2, 1, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 9, 0, 0, 0]);
    // Second push without the backend re-arming: no notify.
    front.queue_request(&req(1)).unwrap();
    assert!(!front.push_requests());
}

#[test]
fn response_writes_only_its_size() {
    let page = MemPage::new();
    let mut front = Front::init(&page).unwrap();
    let mut back = Back::init(&page).unwrap();
    front
        .queue_request(&Req {
            id: u64::MAX,
            op: 0xdead,
            len: 0xbeef,
        })
        .unwrap();
    front.push_requests();
    assert_eq!(back.next_request().unwrap().unwrap().op, 0xdead);
    back.queue_response(&Rsp {
        id: 5,
        status: -1,
        extra: 6,
    })
    .unwrap();
    assert!(back.push_responses());
    let p = page.snapshot();
    assert_eq!(p[64..76], [5, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 6, 0, 0, 0]);
    assert_eq!(p[76..80], 0xbeefu32.to_le_bytes(), "request tail untouched");
    assert_eq!(front.next_response().unwrap().unwrap().status, -1);
}

#[test]
fn full_after_ring_size_requests() {
    let page = MemPage::new();
    let mut front = Front::init(&page).unwrap();
    for i in 0..128 {
        front.queue_request(&req(i)).unwrap();
    }
    assert!(front.full());
    assert_eq!(front.queue_request(&req(0)), Err(RingError::Full));
}

#[test]
fn hostile_req_prod_is_protocol_error() {
    let page = MemPage::new();
    let _front = Front::init(&page).unwrap();
    let mut back = Back::init(&page).unwrap();
    for bad in [129u32, 0x8000_0000, u32::MAX] {
        page.store_u32(REQ_PROD, bad);
        assert_eq!(back.next_request(), Err(RingError::RequestOverflow));
        assert_eq!(
            back.final_check_for_requests(),
            Err(RingError::RequestOverflow)
        );
    }
    page.store_u32(REQ_PROD, 128);
    for _ in 0..128 {
        assert!(back.next_request().unwrap().is_some());
    }
    // All 128 in flight: nothing more may be consumed even if req_prod says so.
    page.store_u32(REQ_PROD, 129);
    assert_eq!(back.next_request(), Err(RingError::RequestOverflow));
    assert!(RingError::RequestOverflow.is_protocol_error());
}

#[test]
fn hostile_rsp_prod_is_protocol_error() {
    let page = MemPage::new();
    let mut front = Front::init(&page).unwrap();
    page.store_u32(RSP_PROD, 1);
    assert_eq!(front.next_response(), Err(RingError::ResponseOverflow));
    front.queue_request(&req(0)).unwrap();
    page.store_u32(RSP_PROD, 1);
    // Queued but not pushed: still an overflow.
    assert_eq!(front.next_response(), Err(RingError::ResponseOverflow));
    front.push_requests();
    assert!(front.next_response().unwrap().is_some());
    page.store_u32(RSP_PROD, u32::MAX);
    assert_eq!(
        front.final_check_for_responses(),
        Err(RingError::ResponseOverflow)
    );
}

#[test]
fn response_without_request_refused() {
    let page = MemPage::new();
    let mut back = Back::init(&page).unwrap();
    assert_eq!(
        back.queue_response(&Rsp {
            id: 0,
            status: 0,
            extra: 0
        }),
        Err(RingError::NoRequestPending)
    );
}

#[test]
fn final_checks_arm_event_indexes() {
    let page = MemPage::new();
    let mut front = Front::init(&page).unwrap();
    let mut back = Back::init(&page).unwrap();
    assert!(!back.final_check_for_requests().unwrap());
    assert_eq!(page.load_u32(REQ_EVENT), 1);
    front.queue_request(&req(0)).unwrap();
    assert!(front.push_requests());
    back.next_request().unwrap();
    assert!(!back.final_check_for_requests().unwrap());
    assert_eq!(page.load_u32(REQ_EVENT), 2);
    assert!(!front.final_check_for_responses().unwrap());
    assert_eq!(page.load_u32(RSP_EVENT), 1);
    back.queue_response(&Rsp {
        id: 0,
        status: 0,
        extra: 0,
    })
    .unwrap();
    assert!(back.push_responses());
}

#[test]
fn wraps_around_u32() {
    let page = MemPage::new();
    sring::shared_ring_init(&page);
    let start = u32::MAX - 3;
    page.store_u32(REQ_PROD, start);
    page.store_u32(RSP_PROD, start);
    let mut front = Front::attach(&page, start).unwrap();
    let mut back = Back::attach(&page, start).unwrap();
    for i in 0..300u64 {
        front.queue_request(&req(i)).unwrap();
        front.push_requests();
        assert_eq!(back.next_request().unwrap(), Some(req(i)));
        back.queue_response(&Rsp {
            id: i as u32,
            status: 0,
            extra: 0,
        })
        .unwrap();
        back.push_responses();
        assert_eq!(front.next_response().unwrap().unwrap().id, i as u32);
    }
}

#[test]
fn bad_geometry() {
    struct Huge;
    impl RingEntry for Huge {
        const SIZE: usize = 513;
        fn encode(&self, _: &mut [u8]) {}
        fn decode(_: &[u8]) -> Self {
            Huge
        }
    }
    let page = MemPage::new();
    assert!(matches!(
        FrontRing::<_, Huge, Rsp>::init(&page),
        Err(RingError::BadGeometry)
    ));
}

/// One step of an interleaving of a well-behaved front and back.
#[derive(Clone, Copy, Debug)]
enum Op {
    Queue(u8),
    PushReq,
    TakeReq,
    Respond(u8),
    PushRsp,
    TakeRsp,
    FinalReq,
    FinalRsp,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1u8..8).prop_map(Op::Queue),
        Just(Op::PushReq),
        Just(Op::TakeReq),
        (1u8..8).prop_map(Op::Respond),
        Just(Op::PushRsp),
        Just(Op::TakeRsp),
        Just(Op::FinalReq),
        Just(Op::FinalRsp),
    ]
}

/// Reference model: plain counters, the event-index rule written out.
#[derive(Default)]
struct Model {
    req_prod_pvt: u32,
    req_prod: u32,
    req_event: u32,
    req_cons: u32,
    rsp_prod_pvt: u32,
    rsp_prod: u32,
    rsp_event: u32,
    rsp_cons: u32,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn interleavings_deliver_each_request_once_in_order(
        start in prop_oneof![Just(0u32), Just(u32::MAX - 100), any::<u32>()],
        ops in proptest::collection::vec(op(), 1..400),
    ) {
        let page = MemPage::new();
        sring::shared_ring_init(&page);
        for off in [REQ_PROD, RSP_PROD] { page.store_u32(off, start); }
        for off in [REQ_EVENT, RSP_EVENT] { page.store_u32(off, start.wrapping_add(1)); }
        let mut front = Front::attach(&page, start).unwrap();
        let mut back = Back::attach(&page, start).unwrap();
        let mut m = Model { req_prod_pvt: start, req_prod: start, req_event: start.wrapping_add(1),
            req_cons: start, rsp_prod_pvt: start, rsp_prod: start, rsp_event: start.wrapping_add(1), rsp_cons: start };
        let (mut next_id, mut next_seen, mut next_rsp) = (0u64, 0u64, 0u64);
        let mut answered: Vec<u64> = Vec::new();
        let mut taken: Vec<u64> = Vec::new();
        for op in ops {
            match op {
                Op::Queue(n) => for _ in 0..n {
                    let free = 128 - m.req_prod_pvt.wrapping_sub(m.rsp_cons);
                    prop_assert_eq!(front.free_requests(), free);
                    if free == 0 { prop_assert_eq!(front.queue_request(&req(next_id)), Err(RingError::Full)); break; }
                    front.queue_request(&req(next_id)).unwrap();
                    next_id += 1; m.req_prod_pvt = m.req_prod_pvt.wrapping_add(1);
                },
                Op::PushReq => {
                    let want = Model::notify_wrapping(m.req_prod, m.req_prod_pvt, m.req_event);
                    prop_assert_eq!(front.push_requests(), want);
                    m.req_prod = m.req_prod_pvt;
                }
                Op::TakeReq => match back.next_request().unwrap() {
                    Some(r) => { prop_assert_eq!(r, req(next_seen)); taken.push(next_seen); next_seen += 1; m.req_cons = m.req_cons.wrapping_add(1); }
                    None => prop_assert_eq!(m.req_prod, m.req_cons),
                },
                Op::Respond(n) => for _ in 0..n {
                    if taken.is_empty() { prop_assert_eq!(back.queue_response(&Rsp { id: 0, status: 0, extra: 0 }), Err(RingError::NoRequestPending)); break; }
                    let id = taken.remove(0);
                    back.queue_response(&Rsp { id: id as u32, status: 0, extra: 1 }).unwrap();
                    answered.push(id); m.rsp_prod_pvt = m.rsp_prod_pvt.wrapping_add(1);
                },
                Op::PushRsp => {
                    let want = Model::notify_wrapping(m.rsp_prod, m.rsp_prod_pvt, m.rsp_event);
                    prop_assert_eq!(back.push_responses(), want);
                    m.rsp_prod = m.rsp_prod_pvt;
                }
                Op::TakeRsp => match front.next_response().unwrap() {
                    Some(r) => { prop_assert_eq!(r.id as u64, next_rsp); next_rsp += 1; m.rsp_cons = m.rsp_cons.wrapping_add(1); }
                    None => prop_assert_eq!(m.rsp_prod, m.rsp_cons),
                },
                Op::FinalReq => {
                    let work = back.final_check_for_requests().unwrap();
                    prop_assert_eq!(work, m.req_prod != m.req_cons);
                    if !work { m.req_event = m.req_cons.wrapping_add(1); }
                    prop_assert_eq!(page.load_u32(REQ_EVENT), m.req_event);
                }
                Op::FinalRsp => {
                    let work = front.final_check_for_responses().unwrap();
                    prop_assert_eq!(work, m.rsp_prod != m.rsp_cons);
                    if !work { m.rsp_event = m.rsp_cons.wrapping_add(1); }
                    prop_assert_eq!(page.load_u32(RSP_EVENT), m.rsp_event);
                }
            }
            prop_assert_eq!(page.load_u32(REQ_PROD), m.req_prod);
            prop_assert_eq!(page.load_u32(RSP_PROD), m.rsp_prod);
        }
        // Every request taken at most once, in order; every answer in order.
        prop_assert!(next_seen <= next_id);
        prop_assert!(next_rsp <= answered.len() as u64);
    }

    #[test]
    fn hostile_page_never_panics(writes in proptest::collection::vec((0usize..4096, any::<[u8; 4]>()), 0..64), steps in 0usize..300) {
        let page = MemPage::new();
        let _front = Front::init(&page).unwrap();
        let mut back = Back::init(&page).unwrap();
        let mut writes = writes.into_iter();
        for i in 0..steps {
            if let Some((off, b)) = writes.next() { page.poke(off, &b); }
            match i % 4 {
                0 | 1 => { let _ = back.next_request(); }
                2 => { let _ = back.queue_response(&Rsp { id: 1, status: 0, extra: 0 }); let _ = back.push_responses(); }
                _ => { let _ = back.final_check_for_requests(); }
            }
            prop_assert!(back.requests_in_flight() <= back.size());
        }
    }
}

impl Model {
    /// The same rule evaluated over at most a ring's worth of indexes.
    fn notify_wrapping(old: u32, new: u32, event: u32) -> bool {
        let n = new.wrapping_sub(old);
        (0..n).any(|k| old.wrapping_add(k).wrapping_add(1) == event)
    }
}

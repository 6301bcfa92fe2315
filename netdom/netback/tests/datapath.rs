//! tx and rx through the rings: packets, responses, attacks, limits.

mod common;

use common::*;
use xcp_netback::fake::FakeGrants;
use xcp_netback::wire::*;
use xcp_netback::{Fault, Gso, Rate, RxDrop, RxMeta, State, TxFault};
use xcp_ring::fake::MemPage;
use xcp_ring::RingEntry;

fn frame(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

/// Grants `data` split in `pieces` pages (gref 100 + i), returns the slots.
fn tx_slots(grants: &mut FakeGrants, data: &[u8], pieces: &[usize], id0: u16) -> Vec<TxRequest> {
    let mut slots = Vec::new();
    let mut at = 0;
    for (i, &n) in pieces.iter().enumerate() {
        let gref = 100 + u32::from(id0) + i as u32;
        grants.grant(DOMID, gref, 0, &data[at..at + n]);
        let more = if i + 1 < pieces.len() {
            NETTXF_MORE_DATA
        } else {
            0
        };
        let size = if i == 0 { data.len() } else { n };
        slots.push(slot(gref, 0, more, id0 + i as u16, size as u16));
        at += n;
    }
    slots
}

#[test]
fn tx_single_slot() {
    let (txp, rxp) = (MemPage::new(), MemPage::new());
    let mut vif = new_vif(config());
    let mut front = connect(&mut vif, &txp, &rxp);
    let mut g = FakeGrants::new();
    let data = frame(60, 1);
    let mut s = tx_slots(&mut g, &data, &[60], 5);
    s[0].flags |= NETTXF_CSUM_BLANK;
    front.send(&s);
    let pkts = pump_tx(&mut vif, &mut g, 0);
    assert_eq!(pkts.len(), 1);
    assert_eq!(pkts[0].bytes, data);
    assert!(pkts[0].csum_blank);
    assert_eq!(
        front.tx_responses(),
        [TxResponse {
            id: 5,
            status: NETIF_RSP_OKAY
        }]
    );
    let st = vif.stats();
    assert_eq!((st.tx_packets, st.tx_bytes), (1, 60));
}

#[test]
fn tx_multi_slot_and_notify() {
    let (txp, rxp) = (MemPage::new(), MemPage::new());
    let mut vif = new_vif(config());
    let mut front = connect(&mut vif, &txp, &rxp);
    let mut g = FakeGrants::new();
    let data = frame(9000, 2);
    let s = tx_slots(&mut g, &data, &[1000, 4096, 3904], 1);
    // The backend asked to be kicked at connect.
    assert!(front.send(&s));
    let poll = vif.tx_poll(0);
    let mut plan = poll.plan.expect("a packet");
    assert_eq!(plan.copies.len(), 3);
    assert!(g.run_tx(&mut plan));
    let done = vif.tx_complete(plan, true);
    assert!(done.notify, "the frontend waits for responses");
    assert_eq!(done.packet.expect("delivered").bytes, data);
    let ids: Vec<(u16, i16)> = front
        .tx_responses()
        .iter()
        .map(|r| (r.id, r.status))
        .collect();
    assert_eq!(ids, [(1, 0), (2, 0), (3, 0)]);
}

#[test]
fn tx_gso_extra_gets_a_null_response() {
    let (txp, rxp) = (MemPage::new(), MemPage::new());
    let mut vif = new_vif(config());
    let mut front = connect(&mut vif, &txp, &rxp);
    let mut g = FakeGrants::new();
    let data = frame(5000, 3);
    let mut s = tx_slots(&mut g, &data, &[2000, 3000], 10);
    s[0].flags |= NETTXF_EXTRA_INFO;
    let gso = Gso {
        size: 1448,
        kind: XEN_NETIF_GSO_TYPE_TCPV4,
        features: 0,
    };
    let mut b = [0u8; 12];
    ExtraInfo::gso(gso, 0).encode(&mut b[..8]);
    s.insert(1, TxRequest::decode(&b));
    front.send(&s);
    let pkts = pump_tx(&mut vif, &mut g, 0);
    assert_eq!(pkts[0].gso, Some(gso));
    assert_eq!(pkts[0].bytes, data);
    let st: Vec<i16> = front.tx_responses().iter().map(|r| r.status).collect();
    assert_eq!(st, [NETIF_RSP_OKAY, NETIF_RSP_NULL, NETIF_RSP_OKAY]);
}

#[test]
fn tx_drops_and_copy_failures_answer_error() {
    let (txp, rxp) = (MemPage::new(), MemPage::new());
    let mut vif = new_vif(config());
    let mut front = connect(&mut vif, &txp, &rxp);
    let mut g = FakeGrants::new();
    // A runt, then a packet whose grant does not exist, then a good one.
    let runt = tx_slots(&mut g, &frame(10, 0), &[10], 1);
    front.send(&runt);
    front.send(&[slot(9999, 0, 0, 2, 60)]);
    let good = tx_slots(&mut g, &frame(64, 4), &[64], 3);
    front.send(&good);
    let pkts = pump_tx(&mut vif, &mut g, 0);
    assert_eq!(pkts.len(), 1);
    let r: Vec<(u16, i16)> = front
        .tx_responses()
        .iter()
        .map(|r| (r.id, r.status))
        .collect();
    assert_eq!(
        r,
        [
            (1, NETIF_RSP_ERROR),
            (2, NETIF_RSP_ERROR),
            (3, NETIF_RSP_OKAY)
        ]
    );
    let st = vif.stats();
    assert_eq!((st.tx_dropped, st.tx_errors, st.tx_packets), (1, 1, 1));
    assert_eq!(vif.state(), State::Connected);
}

#[test]
fn tx_responses_stay_in_ring_order_when_completed_out_of_order() {
    let (txp, rxp) = (MemPage::new(), MemPage::new());
    let mut vif = new_vif(config());
    let mut front = connect(&mut vif, &txp, &rxp);
    let mut g = FakeGrants::new();
    for id in [1u16, 2, 3] {
        let s = tx_slots(&mut g, &frame(100, id as u8), &[100], id * 10);
        front.send(&s);
    }
    let plans: Vec<_> = (0..3).map(|_| vif.tx_poll(0).plan.expect("plan")).collect();
    let mut plans: Vec<_> = plans.into_iter().collect();
    let third = plans.pop().expect("3");
    let second = plans.pop().expect("2");
    let first = plans.pop().expect("1");
    assert!(!vif.tx_complete(third, true).notify);
    assert!(front.tx_responses().is_empty(), "held behind the first");
    vif.tx_complete(second, true);
    assert!(vif.tx_complete(first, true).notify);
    let ids: Vec<u16> = front.tx_responses().iter().map(|r| r.id).collect();
    assert_eq!(ids, [10, 20, 30]);
}

fn assert_tx_fault(slots: &[TxRequest], fault: TxFault) {
    let (txp, rxp) = (MemPage::new(), MemPage::new());
    let mut vif = new_vif(config());
    let mut front = connect(&mut vif, &txp, &rxp);
    let mut g = FakeGrants::new();
    front.send(slots);
    let poll = vif.tx_poll(0);
    assert!(poll.plan.is_none());
    assert_eq!(
        vif.state(),
        State::Disconnected(Fault::Tx(fault)),
        "{slots:?}"
    );
    assert!(releases(&drain(&mut vif)));
    assert_eq!(vif.stats().faults, 1);
    // Nothing more comes out of a disconnected VIF.
    assert!(pump_tx(&mut vif, &mut g, 0).is_empty());
    assert_eq!(
        vif.rx_packet(60, RxMeta::default()).err(),
        Some(RxDrop::NotConnected)
    );
}

#[test]
fn tx_attacks_disconnect_only_that_vif() {
    let more = NETTXF_MORE_DATA;
    // > 18 slots (XSA-432 class).
    let mut s = vec![slot(1, 0, more, 0, 19 * 100)];
    for i in 1..19 {
        s.push(slot(1, 0, if i < 18 { more } else { 0 }, i, 100));
    }
    assert_tx_fault(&s, TxFault::TooManySlots);
    // Zero-length fragment (XSA-448).
    assert_tx_fault(
        &[slot(1, 0, more, 0, 100), slot(1, 0, 0, 1, 0)],
        TxFault::ZeroLengthFragment,
    );
    // Header split across slots (XSA-423): 10 bytes in the first slot.
    assert_tx_fault(
        &[slot(1, 0, more, 0, 100), slot(1, 0, 0, 1, 90)],
        TxFault::HeaderSplit,
    );
    // Crossing the page.
    assert_tx_fault(&[slot(1, 4095, 0, 0, 60)], TxFault::CrossesPage);
    assert_tx_fault(
        &[slot(1, 0, more, 0, 200), slot(1, 4000, 0, 1, 100)],
        TxFault::CrossesPage,
    );
    // Fragments larger than the total.
    assert_tx_fault(
        &[slot(1, 0, more, 0, 100), slot(1, 0, 0, 1, 101)],
        TxFault::FragmentsExceedTotal,
    );
    // A packet running past req_prod.
    assert_tx_fault(&[slot(1, 0, more, 0, 100)], TxFault::Truncated);
    // An extra info of type NONE, and one beyond MAX.
    assert_tx_fault(
        &[slot(1, 0, NETTXF_EXTRA_INFO, 0, 60), slot(0, 0, 0, 0, 0)],
        TxFault::BadExtraType(0),
    );
    assert_tx_fault(
        &[slot(1, 0, NETTXF_EXTRA_INFO, 0, 60), slot(9, 0, 0, 0, 0)],
        TxFault::BadExtraType(9),
    );
}

#[test]
fn tx_req_prod_overflow_disconnects() {
    let (txp, rxp) = (MemPage::new(), MemPage::new());
    let mut vif = new_vif(config());
    let _front = connect(&mut vif, &txp, &rxp);
    txp.poke(0, &1000u32.to_le_bytes());
    vif.tx_poll(0);
    assert!(matches!(
        vif.state(),
        State::Disconnected(Fault::Tx(TxFault::Ring(_)))
    ));
    assert!(releases(&drain(&mut vif)));
}

#[test]
fn one_vif_fault_leaves_another_alone() {
    let pages: Vec<MemPage> = (0..4).map(|_| MemPage::new()).collect();
    let mut bad = new_vif(config());
    let mut good = new_vif(config());
    let mut fb = connect(&mut bad, &pages[0], &pages[1]);
    let mut fg = connect(&mut good, &pages[2], &pages[3]);
    let mut g = FakeGrants::new();
    fb.send(&[slot(1, 0, NETTXF_MORE_DATA, 0, 100), slot(1, 0, 0, 1, 0)]);
    let data = frame(80, 9);
    let s = tx_slots(&mut g, &data, &[80], 1);
    fg.send(&s);
    assert!(pump_tx(&mut bad, &mut g, 0).is_empty());
    assert_eq!(pump_tx(&mut good, &mut g, 0)[0].bytes, data);
    assert!(matches!(bad.state(), State::Disconnected(_)));
    assert_eq!(good.state(), State::Connected);
}

#[test]
fn rx_fills_posted_slots_in_order() {
    let (txp, rxp) = (MemPage::new(), MemPage::new());
    let mut vif = new_vif(config());
    let mut front = connect(&mut vif, &txp, &rxp);
    let mut g = FakeGrants::new();
    // Ids deliberately not equal to slot numbers.
    for (i, id) in [40u16, 7, 300, 2].iter().enumerate() {
        g.grant(DOMID, 500 + i as u32, 0, &[]);
        front.post_rx(*id, 500 + i as u32);
    }
    let small = frame(60, 1);
    let plan = vif
        .rx_packet(small.len(), RxMeta::default())
        .expect("posted");
    assert!(g.run_rx(&plan, &small));
    assert!(vif.rx_complete(plan, true));
    let big = frame(9000, 2);
    let plan = vif.rx_packet(big.len(), RxMeta::default()).expect("posted");
    assert_eq!(plan.copies.len(), 3);
    assert!(g.run_rx(&plan, &big));
    // The frontend has not re-armed rsp_event: no second kick.
    assert!(!vif.rx_complete(plan, true));
    let rsps = front.rx_responses();
    let seen: Vec<(u32, u16, i16, bool)> = rsps
        .iter()
        .map(|(at, r)| (*at, r.id, r.status, r.flags & NETRXF_MORE_DATA != 0))
        .collect();
    assert_eq!(
        seen,
        [
            (0, 40, 60, false),
            (1, 7, 4096, true),
            (2, 300, 4096, true),
            (3, 2, 808, false)
        ]
    );
    // The bytes landed in the pages named by each slot's request.
    assert_eq!(&g.page(DOMID, 500).expect("granted")[..60], &small[..]);
    assert_eq!(&g.page(DOMID, 501).expect("granted")[..], &big[..4096]);
    assert_eq!(&g.page(DOMID, 503).expect("granted")[..808], &big[8192..]);
    let st = vif.stats();
    assert_eq!((st.rx_packets, st.rx_bytes), (2, 9060));
}

#[test]
fn rx_gso_extra_sits_in_the_second_slot() {
    let (txp, rxp) = (MemPage::new(), MemPage::new());
    let mut vif = new_vif(config());
    let mut front = connect(&mut vif, &txp, &rxp);
    let mut g = FakeGrants::new();
    for i in 0..4u16 {
        g.grant(DOMID, 600 + u32::from(i), 0, &[]);
        front.post_rx(i + 1, 600 + u32::from(i));
    }
    let gso = Gso {
        size: 1448,
        kind: XEN_NETIF_GSO_TYPE_TCPV6,
        features: 0,
    };
    let pkt = frame(6000, 5);
    let meta = RxMeta {
        gso: Some(gso),
        csum_blank: true,
        data_validated: false,
    };
    let plan = vif.rx_packet(pkt.len(), meta).expect("posted");
    assert!(g.run_rx(&plan, &pkt));
    vif.rx_complete(plan, true);
    let rsps = front.rx_responses();
    assert_eq!(rsps.len(), 3);
    let first = rsps[0].1;
    assert_eq!(first.id, 1);
    assert_eq!(
        first.flags,
        NETRXF_MORE_DATA | NETRXF_EXTRA_INFO | NETRXF_CSUM_BLANK | NETRXF_DATA_VALIDATED
    );
    let mut b = [0u8; 8];
    rsps[1].1.encode(&mut b);
    let extra = ExtraInfo::decode(&b);
    assert_eq!(extra.kind, XEN_NETIF_EXTRA_TYPE_GSO);
    assert_eq!(extra.as_gso(), gso);
    assert_eq!(
        (rsps[2].0, rsps[2].1.id, rsps[2].1.status),
        (2, 3, 6000 - 4096)
    );
    // The extra's request (gref 601) got no data.
    assert!(g.page(DOMID, 601).expect("granted").iter().all(|&b| b == 0));
    assert_eq!(&g.page(DOMID, 602).expect("granted")[..1904], &pkt[4096..]);
}

#[test]
fn rx_without_buffers_drops_and_counts() {
    let (txp, rxp) = (MemPage::new(), MemPage::new());
    let mut vif = new_vif(config());
    let mut front = connect(&mut vif, &txp, &rxp);
    for _ in 0..1000 {
        assert_eq!(
            vif.rx_packet(1500, RxMeta::default()).err(),
            Some(RxDrop::NoBuffers)
        );
    }
    // One buffer is not enough for a 3-slot packet either; nothing consumed.
    front.post_rx(1, 700);
    assert_eq!(
        vif.rx_packet(9000, RxMeta::default()).err(),
        Some(RxDrop::NoBuffers)
    );
    assert!(vif.rx_packet(1500, RxMeta::default()).is_ok());
    let st = vif.stats();
    assert_eq!((st.rx_dropped, st.rx_no_buffer), (1001, 1001));
    assert_eq!(vif.in_flight().2, 1);
}

#[test]
fn rx_refusals() {
    let (txp, rxp) = (MemPage::new(), MemPage::new());
    let mut c = config();
    c.features.sg = false;
    let mut vif = new_vif(c);
    let mut front = connect(&mut vif, &txp, &rxp);
    for i in 0..8 {
        front.post_rx(i, 700 + u32::from(i));
    }
    let m = RxMeta::default();
    assert_eq!(vif.rx_packet(13, m).err(), Some(RxDrop::BadLength));
    assert_eq!(
        vif.rx_packet(MAX_PACKET_LEN + 1, m).err(),
        Some(RxDrop::BadLength)
    );
    assert_eq!(vif.rx_packet(4097, m).err(), Some(RxDrop::NeedsSg));
    let gso = RxMeta {
        gso: Some(Gso {
            size: 1448,
            kind: XEN_NETIF_GSO_TYPE_TCPV4,
            features: 0,
        }),
        ..m
    };
    // Without sg, GSO is not negotiated either.
    assert_eq!(
        vif.rx_packet(3000, gso).err(),
        Some(RxDrop::GsoNotNegotiated)
    );
    assert!(vif.rx_packet(4096, m).is_ok());
}

#[test]
fn rx_copy_failure_answers_error_in_each_slot() {
    let (txp, rxp) = (MemPage::new(), MemPage::new());
    let mut vif = new_vif(config());
    let mut front = connect(&mut vif, &txp, &rxp);
    let mut g = FakeGrants::new();
    front.post_rx(1, 800); // never granted
    front.post_rx(2, 801);
    let pkt = frame(5000, 1);
    let plan = vif.rx_packet(pkt.len(), RxMeta::default()).expect("posted");
    let ok = g.run_rx(&plan, &pkt);
    assert!(!ok);
    vif.rx_complete(plan, ok);
    let r: Vec<(u16, i16, u16)> = front
        .rx_responses()
        .iter()
        .map(|(_, r)| (r.id, r.status, r.flags))
        .collect();
    assert_eq!(
        r,
        [
            (1, NETIF_RSP_ERROR, NETRXF_MORE_DATA),
            (2, NETIF_RSP_ERROR, 0)
        ]
    );
    assert_eq!(vif.stats().rx_errors, 1);
}

#[test]
fn rx_ring_overflow_disconnects() {
    let (txp, rxp) = (MemPage::new(), MemPage::new());
    let mut vif = new_vif(config());
    let _front = connect(&mut vif, &txp, &rxp);
    rxp.poke(0, &u32::MAX.to_le_bytes());
    assert_eq!(
        vif.rx_packet(60, RxMeta::default()).err(),
        Some(RxDrop::Fault)
    );
    assert!(matches!(vif.state(), State::Disconnected(Fault::RxRing(_))));
    assert!(releases(&drain(&mut vif)));
}

#[test]
fn rate_limit_holds_then_releases() {
    let (txp, rxp) = (MemPage::new(), MemPage::new());
    let mut c = config();
    // 10 KB per 10 ms; a burst of at most 128 KiB after a refill.
    c.rate = Some(Rate {
        credit_bytes: 10_000,
        credit_usec: 10_000,
    });
    let mut vif = new_vif(c);
    let mut front = connect(&mut vif, &txp, &rxp);
    let mut g = FakeGrants::new();
    for i in 0..4u16 {
        let s = tx_slots(&mut g, &frame(4000, i as u8), &[4000], i * 2);
        front.send(&s);
    }
    // Two packets fit the first 10 KB.
    assert_eq!(pump_tx(&mut vif, &mut g, 0).len(), 2);
    let poll = vif.tx_poll(1);
    assert!(poll.plan.is_none());
    assert_eq!(poll.wait_until, Some(10_000));
    assert_eq!(vif.stats().tx_rate_limited, 1);
    assert!(pump_tx(&mut vif, &mut g, 9_999).is_empty());
    // After the interval: the held packet and the next go.
    assert_eq!(pump_tx(&mut vif, &mut g, 10_000).len(), 2);
    assert_eq!(front.tx_responses().len(), 4);
    assert_eq!(vif.stats().tx_packets, 4);
}

#[test]
fn tx_budget_blocks_instead_of_allocating() {
    let (txp, rxp) = (MemPage::new(), MemPage::new());
    let mut c = config();
    c.budget_bytes = xcp_netback::MIN_BUDGET;
    let mut vif = new_vif(c);
    let mut front = connect(&mut vif, &txp, &rxp);
    let mut g = FakeGrants::new();
    let mut plans = Vec::new();
    for i in 0..3u16 {
        let data = frame(60_000, i as u8);
        let pieces = [
            4000, 4096, 4096, 4096, 4096, 4096, 4096, 4096, 4096, 4096, 4096, 4096, 4096, 4096,
            2752,
        ];
        let s = tx_slots(&mut g, &data, &pieces, i * 20);
        front.send(&s);
    }
    let p = vif.tx_poll(0);
    plans.push(p.plan.expect("first fits"));
    let p = vif.tx_poll(0);
    assert!(p.plan.is_none() && p.blocked);
    let (plans_out, bytes_out, _, _) = vif.in_flight();
    assert_eq!(plans_out, 1);
    assert!(bytes_out <= vif.budget().tx_bytes);
    let mut first = plans.pop().expect("one");
    assert!(g.run_tx(&mut first));
    vif.tx_complete(first, true);
    assert_eq!(pump_tx(&mut vif, &mut g, 0).len(), 2);
    assert_eq!(vif.in_flight(), (0, 0, 0, 0));
}

#[test]
fn stale_plans_only_return_budget() {
    let (txp, rxp) = (MemPage::new(), MemPage::new());
    let mut vif = new_vif(config());
    let mut front = connect(&mut vif, &txp, &rxp);
    let mut g = FakeGrants::new();
    let s = tx_slots(&mut g, &frame(100, 1), &[100], 1);
    front.send(&s);
    front.post_rx(1, 900);
    let mut txplan = vif.tx_poll(0).plan.expect("plan");
    let rxplan = vif.rx_packet(100, RxMeta::default()).expect("posted");
    vif.on_frontend_state(Some(b"5"));
    assert!(releases(&drain(&mut vif)));
    assert!(g.run_tx(&mut txplan));
    let done = vif.tx_complete(txplan, true);
    assert!(done.packet.is_none() && !done.notify);
    assert!(!vif.rx_complete(rxplan, true));
    assert_eq!(vif.in_flight(), (0, 0, 0, 0));
    assert_eq!(vif.stats().tx_packets, 0);
}

#[test]
fn full_ring_of_packets_round_trips() {
    let (txp, rxp) = (MemPage::new(), MemPage::new());
    let mut vif = new_vif(config());
    let mut front = connect(&mut vif, &txp, &rxp);
    let mut g = FakeGrants::new();
    let mut sent = 0u16;
    for round in 0..5u16 {
        for i in 0..200u16 {
            let id = round * 200 + i;
            let data = frame(64 + usize::from(i), id as u8);
            g.grant(DOMID, 10_000 + u32::from(id), 0, &data);
            front.send(&[slot(10_000 + u32::from(id), 0, 0, id, data.len() as u16)]);
            sent += 1;
        }
        let pkts = pump_tx(&mut vif, &mut g, 0);
        assert_eq!(pkts.len(), 200);
        assert_eq!(front.tx_responses().len(), 200);
    }
    assert_eq!(vif.stats().tx_packets, u64::from(sent));
}

#[test]
fn a_stream_of_drops_yields_the_loop() {
    let (txp, rxp) = (MemPage::new(), MemPage::new());
    let mut vif = new_vif(config());
    let mut front = connect(&mut vif, &txp, &rxp);
    for i in 0..100u16 {
        front.send(&[slot(1, 0, 0, i, 10)]);
    }
    let poll = vif.tx_poll(0);
    assert!(poll.plan.is_none() && poll.again && poll.notify);
    assert_eq!(
        front.tx_responses().len(),
        xcp_netback::vif::TX_PACKETS_PER_POLL
    );
    let poll = vif.tx_poll(0);
    assert!(!poll.again);
    assert_eq!(
        front.tx_responses().len(),
        100 - xcp_netback::vif::TX_PACKETS_PER_POLL
    );
    assert_eq!(vif.stats().tx_dropped, 100);
}

//! Property tests: arbitrary frontends never panic the engine, and every
//! grant copy it emits lies inside a 4 KiB page and inside its packet.

mod common;

use common::*;
use proptest::prelude::*;
use xcp_netback::fake::{copy_in_bounds, FakeGrants};
use xcp_netback::wire::*;
use xcp_netback::{RxMeta, State};
use xcp_ring::fake::MemPage;

fn any_tx() -> impl Strategy<Value = TxRequest> {
    // Mostly plausible values, with the full ranges mixed in.
    (
        0u32..12,
        prop_oneof![0u16..64, any::<u16>()],
        prop_oneof![0u16..16, any::<u16>()],
        any::<u16>(),
        prop_oneof![0u16..200, 3000u16..5000, any::<u16>()],
    )
        .prop_map(|(gref, offset, flags, id, size)| TxRequest {
            gref,
            offset,
            flags,
            id,
            size,
        })
}

#[derive(Clone, Debug)]
enum Op {
    /// The frontend pushes these slots (clipped to the free room).
    Send(Vec<TxRequest>),
    /// The frontend writes raw bytes on the tx page.
    PokeTx(u16, Vec<u8>),
    /// The frontend posts rx buffers.
    Post(Vec<(u16, u32)>),
    /// The frontend writes raw bytes on the rx page.
    PokeRx(u16, Vec<u8>),
    /// The board polls tx and runs what comes.
    Poll(u64),
    /// A packet for the guest.
    Rx(u16, bool),
    /// Complete the oldest (or newest) outstanding plan.
    Complete(bool, bool),
}

fn any_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop::collection::vec(any_tx(), 1..24).prop_map(Op::Send),
        1 => (any::<u16>(), prop::collection::vec(any::<u8>(), 0..16)).prop_map(|(o, b)| Op::PokeTx(o, b)),
        2 => prop::collection::vec((any::<u16>(), 0u32..12), 1..20).prop_map(Op::Post),
        1 => (any::<u16>(), prop::collection::vec(any::<u8>(), 0..16)).prop_map(|(o, b)| Op::PokeRx(o, b)),
        3 => (0u64..50_000).prop_map(Op::Poll),
        3 => (any::<u16>(), any::<bool>()).prop_map(|(l, g)| Op::Rx(l, g)),
        2 => (any::<bool>(), any::<bool>()).prop_map(|(a, b)| Op::Complete(a, b)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_frontends_never_break_the_engine(
        ops in prop::collection::vec(any_op(), 1..40),
        rate in any::<bool>(),
        small in any::<bool>(),
    ) {
        let (txp, rxp) = (MemPage::new(), MemPage::new());
        let mut c = config();
        if rate {
            c.rate = Some(xcp_netback::Rate { credit_bytes: 20_000, credit_usec: 1_000 });
        }
        if small {
            c.budget_bytes = xcp_netback::MIN_BUDGET;
        }
        let mut vif = new_vif(c);
        let budget = vif.budget();
        let mut front = connect(&mut vif, &txp, &rxp);
        let mut grants = FakeGrants::new();
        for gref in 0..6 {
            grants.grant(DOMID, gref, 0, &[gref as u8; 4096]);
        }
        let mut tx_plans = Vec::new();
        let mut rx_plans = Vec::new();
        let packet = vec![0xa5u8; MAX_PACKET_LEN];
        // Once the frontend scribbles on a ring header (rsp_prod is in it),
        // its own view of the responses means nothing.
        let mut header_poked = false;
        for op in ops {
            match op {
                Op::Send(slots) => {
                    if vif.state() == State::Connected {
                        for s in slots.iter().take(front.tx.free_requests() as usize) {
                            front.tx.queue_request(s).expect("room");
                        }
                        front.tx.push_requests();
                    }
                }
                Op::PokeTx(o, b) => {
                    header_poked |= usize::from(o) % 4096 < 64;
                    txp.poke(usize::from(o), &b)
                }
                Op::Post(bufs) => {
                    if vif.state() == State::Connected {
                        for (id, gref) in bufs.iter().take(front.rx.free_requests() as usize) {
                            front.rx.queue_request(&RxRequest { id: *id, gref: *gref }).expect("room");
                        }
                        front.rx.push_requests();
                    }
                }
                Op::PokeRx(o, b) => {
                    header_poked |= usize::from(o) % 4096 < 64;
                    rxp.poke(usize::from(o), &b)
                }
                Op::Poll(now) => {
                    let poll = vif.tx_poll(now);
                    if let Some(plan) = poll.plan {
                        prop_assert!(plan.buf.len() <= MAX_PACKET_LEN);
                        let mut sum = 0;
                        for c in &plan.copies {
                            prop_assert!(copy_in_bounds(c, plan.buf.len()), "{:?}", c);
                            sum += usize::from(c.len);
                        }
                        prop_assert_eq!(sum, plan.buf.len());
                        tx_plans.push(plan);
                    }
                }
                Op::Rx(len, gso) => {
                    let meta = RxMeta {
                        gso: gso.then_some(Gso { size: 1448, kind: XEN_NETIF_GSO_TYPE_TCPV4, features: 0 }),
                        ..RxMeta::default()
                    };
                    let len = usize::from(len);
                    if let Ok(plan) = vif.rx_packet(len, meta) {
                        for c in &plan.copies {
                            prop_assert!(copy_in_bounds(c, len), "{:?}", c);
                        }
                        rx_plans.push(plan);
                    }
                }
                Op::Complete(tx, newest) => {
                    if tx && !tx_plans.is_empty() {
                        let mut plan = if newest { tx_plans.pop().expect("some") } else { tx_plans.remove(0) };
                        let ok = grants.run_tx(&mut plan);
                        let done = vif.tx_complete(plan, ok);
                        if let Some(p) = done.packet {
                            prop_assert!(p.bytes.len() >= ETH_HLEN);
                        }
                    } else if !rx_plans.is_empty() {
                        let plan = if newest { rx_plans.pop().expect("some") } else { rx_plans.remove(0) };
                        let ok = grants.run_rx(&plan, &packet[..plan.len]);
                        vif.rx_complete(plan, ok);
                    }
                }
            }
            while vif.poll_action().is_some() {}
            let (tp, tb, rp, rb) = vif.in_flight();
            prop_assert_eq!((tp, rp), (tx_plans.len(), rx_plans.len()));
            prop_assert!(tb <= budget.tx_bytes && rb <= budget.rx_bytes);
            // A well-behaved frontend reading responses never sees the backend overrun it.
            if vif.state() == State::Connected && !header_poked {
                prop_assert!(front.tx.unconsumed_responses().is_ok());
                prop_assert!(front.rx.unconsumed_responses().is_ok());
                while let Ok(Some(_)) = front.tx.next_response() {}
                while let Ok(Some(_)) = front.rx.next_response() {}
            }
        }
        for plan in tx_plans.drain(..) {
            vif.tx_complete(plan, false);
        }
        for plan in rx_plans.drain(..) {
            vif.rx_complete(plan, false);
        }
        prop_assert_eq!(vif.in_flight(), (0, 0, 0, 0));
    }

    #[test]
    fn well_formed_packets_arrive_intact(
        sizes in prop::collection::vec(14usize..4096, 1..18),
        seed in any::<u8>(),
    ) {
        let (txp, rxp) = (MemPage::new(), MemPage::new());
        let mut vif = new_vif(config());
        let mut front = connect(&mut vif, &txp, &rxp);
        let mut grants = FakeGrants::new();
        let total: usize = sizes.iter().sum();
        prop_assume!(total <= MAX_TX_SIZE);
        let data: Vec<u8> = (0..total).map(|i| (i as u8) ^ seed).collect();
        let mut at = 0;
        let mut slots = Vec::new();
        for (i, &n) in sizes.iter().enumerate() {
            grants.grant(DOMID, 50 + i as u32, 0, &data[at..at + n]);
            let more = if i + 1 < sizes.len() { NETTXF_MORE_DATA } else { 0 };
            let size = if i == 0 { total } else { n };
            slots.push(slot(50 + i as u32, 0, more, i as u16, size as u16));
            at += n;
        }
        front.send(&slots);
        let pkts = pump_tx(&mut vif, &mut grants, 0);
        prop_assert_eq!(pkts.len(), 1);
        prop_assert_eq!(&pkts[0].bytes, &data);
        let rsps = front.tx_responses();
        prop_assert_eq!(rsps.len(), sizes.len());
        for (i, r) in rsps.iter().enumerate() {
            prop_assert_eq!((r.id, r.status), (i as u16, NETIF_RSP_OKAY));
        }
        // And back into the guest through posted buffers, ids in slot order.
        let need = total.div_ceil(4096);
        for i in 0..need {
            grants.grant(DOMID, 900 + i as u32, 0, &[]);
            front.post_rx(1000 + i as u16, 900 + i as u32);
        }
        let plan = vif.rx_packet(total, RxMeta::default()).expect("posted");
        prop_assert!(grants.run_rx(&plan, &data));
        vif.rx_complete(plan, true);
        let rsps = front.rx_responses();
        prop_assert_eq!(rsps.len(), need);
        let mut back = Vec::new();
        for (i, (at, r)) in rsps.iter().enumerate() {
            prop_assert_eq!(r.id, 1000 + i as u16);
            prop_assert_eq!(*at as usize, i);
            let page = grants.page(DOMID, 900 + i as u32).expect("granted");
            back.extend_from_slice(&page[..r.status as usize]);
        }
        prop_assert_eq!(back, data);
    }
}

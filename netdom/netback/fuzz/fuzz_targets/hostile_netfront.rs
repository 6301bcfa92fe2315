//! Fuzz target: a hostile netfront (ring bytes and xenstore values) and a
//! board that completes plans in any order, against one VIF engine.
//!
//! read first: ../../src/vif.rs (the contract), ../../DESIGN.md.
//!
//! Input: byte 0 picks the offer (sg, GSO, split channels, a rate limit,
//! a small or large budget); then steps of one `op` byte:
//! `op % 12`: 0 frontend state (next byte: 0-9 as a digit, else raw
//! bytes); 1 frontend keys (each of FRONTEND_KEYS gets a value from the
//! input, or is absent); 2 good keys; 3 rings mapped; 4 map failed (with
//! an odd next byte: the toolstack unplugs); 5 poke the tx page (offset,
//! length, bytes); 6 poke the rx page;
//! 7 tx poll; 8 rx packet (length, GSO, checksum flags); 9 complete an
//! outstanding tx plan (which one, copied or not); 10 complete an rx plan;
//! 11 time passes. After every step: no panic, every copy emitted lies in
//! its 4 KiB page and in its packet buffer, the in-flight bytes stay within
//! the budget, a step queues a bounded number of actions.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xcp_netback::fake::{copy_in_bounds, FakeGrants};
use xcp_netback::wire::{XEN_NETIF_GSO_TYPE_TCPV4, XEN_NETIF_GSO_TYPE_TCPV6};
use xcp_netback::{
    Action, Config, Features, Gso, Rate, RxMeta, RxPlan, TxPlan, Vif, FRONTEND_KEYS, MIN_BUDGET,
};
use xcp_ring::fake::MemPage;

struct Input<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Input<'a> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.data.get(self.at)?;
        self.at += 1;
        Some(b)
    }
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let end = (self.at + n).min(self.data.len());
        let s = &self.data[self.at..end];
        self.at = end;
        s
    }
    fn u16(&mut self) -> u16 {
        u16::from(self.byte().unwrap_or(0)) | (u16::from(self.byte().unwrap_or(0)) << 8)
    }
}

const GOOD: [(&str, &[u8]); 8] = [
    ("tx-ring-ref", b"1"),
    ("rx-ring-ref", b"2"),
    ("event-channel", b"3"),
    ("request-rx-copy", b"1"),
    ("feature-rx-notify", b"1"),
    ("feature-sg", b"1"),
    ("feature-gso-tcpv4", b"1"),
    ("feature-gso-tcpv6", b"1"),
];

fuzz_target!(|data: &[u8]| {
    let mut input = Input { data, at: 0 };
    let offer = input.byte().unwrap_or(0);
    let config = Config {
        frontend_domid: 1,
        features: Features {
            sg: offer & 1 != 0,
            gso_tcpv4: offer & 2 != 0,
            gso_tcpv6: offer & 4 != 0,
            ipv6_csum_offload: true,
            split_event_channels: offer & 8 != 0,
            max_queues: 1,
        },
        budget_bytes: if offer & 16 != 0 { MIN_BUDGET } else { 1 << 20 },
        rate: (offer & 32 != 0).then_some(Rate {
            credit_bytes: 5000,
            credit_usec: 1000,
        }),
    };
    let budget_tx_rx = xcp_netback::Budget::from_bytes(config.budget_bytes).expect("fits");
    let (txp, rxp) = (MemPage::new(), MemPage::new());
    let mut vif: Vif<&MemPage> = Vif::new(config, 0).expect("budget");
    let mut grants = FakeGrants::new();
    // Some grants exist (copies of them succeed), most do not.
    for gref in 0..8u32 {
        grants.grant(1, gref, 0, &[gref as u8; 64]);
    }
    let mut now = 0u64;
    let mut tx_plans: Vec<TxPlan> = Vec::new();
    let mut rx_plans: Vec<RxPlan> = Vec::new();
    let packet = vec![0x5a; xcp_netback::MAX_PACKET_LEN];

    while let Some(op) = input.byte() {
        match op % 12 {
            0 => {
                let b = input.byte().unwrap_or(0);
                if b < 10 {
                    vif.on_frontend_state(Some(&[b'0' + b]));
                } else if b == 10 {
                    vif.on_frontend_state(None);
                } else {
                    let n = usize::from(b % 12);
                    let v = input.bytes(n);
                    vif.on_frontend_state(Some(v));
                }
            }
            1 => {
                let mut pairs: Vec<(&str, &[u8])> = Vec::new();
                for key in FRONTEND_KEYS {
                    let b = input.byte().unwrap_or(0);
                    if b & 0x80 == 0 {
                        continue;
                    }
                    let v = input.bytes(usize::from(b & 0x0f));
                    pairs.push((key, v));
                }
                vif.on_frontend_keys(&pairs);
            }
            2 => vif.on_frontend_keys(&GOOD),
            3 => vif.on_rings_mapped(&txp, &rxp),
            4 => {
                if input.byte().unwrap_or(0) & 1 != 0 {
                    vif.unplug();
                } else {
                    vif.on_map_failed();
                }
            }
            5 | 6 => {
                let page = if op % 12 == 5 { &txp } else { &rxp };
                let off = usize::from(input.u16());
                let n = usize::from(input.byte().unwrap_or(0));
                let v = input.bytes(n);
                page.poke(off, v);
            }
            7 => {
                let poll = vif.tx_poll(now);
                if let Some(plan) = poll.plan {
                    for c in &plan.copies {
                        assert!(copy_in_bounds(c, plan.buf.len()), "tx copy {c:?}");
                    }
                    assert!(plan.buf.len() <= xcp_netback::MAX_PACKET_LEN);
                    tx_plans.push(plan);
                }
            }
            8 => {
                let len = usize::from(input.u16()) + usize::from(input.byte().unwrap_or(0) % 16);
                let flags = input.byte().unwrap_or(0);
                let gso = (flags & 1 != 0).then_some(Gso {
                    size: if flags & 2 != 0 { 0 } else { 1448 },
                    kind: if flags & 4 != 0 {
                        XEN_NETIF_GSO_TYPE_TCPV6
                    } else {
                        XEN_NETIF_GSO_TYPE_TCPV4
                    },
                    features: 0,
                });
                let meta = RxMeta {
                    gso,
                    csum_blank: flags & 8 != 0,
                    data_validated: flags & 16 != 0,
                };
                if let Ok(plan) = vif.rx_packet(len, meta) {
                    assert_eq!(plan.len, len);
                    for c in &plan.copies {
                        assert!(copy_in_bounds(c, plan.len), "rx copy {c:?}");
                    }
                    let copied: usize = plan.copies.iter().map(|c| usize::from(c.len)).sum();
                    assert_eq!(copied, len);
                    rx_plans.push(plan);
                }
            }
            9 => {
                let b = input.byte().unwrap_or(0);
                if !tx_plans.is_empty() {
                    let mut plan = tx_plans.remove(usize::from(b) % tx_plans.len());
                    let ok = b & 0x80 == 0 && grants.run_tx(&mut plan);
                    let done = vif.tx_complete(plan, ok);
                    if let Some(p) = done.packet {
                        assert!(p.bytes.len() >= 14);
                    }
                }
            }
            10 => {
                let b = input.byte().unwrap_or(0);
                if !rx_plans.is_empty() {
                    let plan = rx_plans.remove(usize::from(b) % rx_plans.len());
                    let ok = b & 0x80 == 0 && grants.run_rx(&plan, &packet[..plan.len]);
                    vif.rx_complete(plan, ok);
                }
            }
            _ => now += u64::from(input.byte().unwrap_or(0)) * 100,
        }
        let mut n = 0;
        while let Some(a) = vif.poll_action() {
            n += 1;
            if let Action::MapRings { domid, .. } = a {
                assert_eq!(domid, 1);
            }
        }
        assert!(n <= 12, "{n} actions in one step");
        let (tp, tb, rp, rb) = vif.in_flight();
        assert_eq!(tp, tx_plans.len());
        assert_eq!(rp, rx_plans.len());
        assert!(tb <= budget_tx_rx.tx_bytes && rb <= budget_tx_rx.rx_bytes);
        assert!(tp <= budget_tx_rx.max_plans && rp <= budget_tx_rx.max_plans);
    }
    // Everything handed out comes back.
    for plan in tx_plans.drain(..) {
        vif.tx_complete(plan, false);
    }
    for plan in rx_plans.drain(..) {
        vif.rx_complete(plan, false);
    }
    assert_eq!(vif.in_flight(), (0, 0, 0, 0));
});

//! The switch against hostile guests: arbitrary bytes decide what the
//! world does next — a backend directory with arbitrary key values, a
//! frontend's `state` and keys with arbitrary values, arbitrary ring
//! contents and grants, arbitrary frames from the NIC, netdom's stack and
//! guests, removals, rule changes, time. The switch must never panic, never
//! unbind a port twice (the fake asserts it), never keep a mapping of a
//! VIF it let go, and a blank checksum must never be completed past a
//! frame's end.
#![no_main]

use std::rc::Rc;

use libfuzzer_sys::fuzz_target;
use netdom::switch::fake::{Fake, Page};
use netdom::switch::{Limits, Switch};
use xcp_ring::fake::MemPage;

const BASE: &str = "/local/domain/1/backend/vif";

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }
    fn bytes(&mut self, max: usize) -> Option<Vec<u8>> {
        let n = (usize::from(self.byte()?) % (max + 1)).min(self.0.len());
        let (b, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(b.to_vec())
    }
}

const BACK_KEYS: [&str; 10] = [
    "frontend", "frontend-id", "online", "state", "handle", "mac", "mtu",
    "locking-mode", "ipv4-allowed", "ipv6-allowed",
];
const FRONT_KEYS: [&str; 9] = [
    "tx-ring-ref", "rx-ring-ref", "event-channel", "event-channel-tx", "event-channel-rx",
    "request-rx-copy", "feature-rx-notify", "feature-sg", "state",
];

/// A well-formed backend directory for guest `d`, device 0, to start from,
/// and its frontend's rings and keys.
fn plug(pf: &mut Fake, d: u16) {
    let front = format!("/local/domain/{d}/device/vif/0");
    let mac = format!("02:00:00:00:00:{d:02x}");
    netdom::switch::fake::plug(pf, BASE, d, 0, &mac, "unlocked", "");
    let (tx, rx) = (Page(Rc::new(MemPage::new())), Page(Rc::new(MemPage::new())));
    pf.rings.insert((d, 10), tx);
    pf.rings.insert((d, 11), rx);
    for (k, v) in [
        ("tx-ring-ref", "10"),
        ("rx-ring-ref", "11"),
        ("event-channel", "7"),
        ("request-rx-copy", "1"),
        ("feature-rx-notify", "1"),
        ("feature-sg", "1"),
    ] {
        pf.xs.insert(format!("{front}/{k}"), v.as_bytes().to_vec());
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let mut pf = Fake::default();
    let limits = Limits {
        max_vifs: 3,
        vif_budget: 140 * 1024,
        stack_queue_bytes: 16 * 1024,
        bridge: xcp_bridge::Config {
            table_bytes: 1024,
            ..xcp_bridge::Config::default()
        },
    };
    let mut sw: Switch<Fake> = Switch::new(BASE, [2, 0, 0, 0, 0, 1], limits);
    sw.start(&mut pf);
    let mut now = 0u64;
    while let Some(op) = input.byte() {
        let d = u16::from(op >> 5) % 4 + 2;
        let back = format!("{BASE}/{d}/0");
        let front = format!("/local/domain/{d}/device/vif/0");
        now += u64::from(op & 3) * 1_000_000;
        match op % 12 {
            0 => {
                plug(&mut pf, d);
                sw.on_watch(&mut pf, now, &back, "vif-backends");
            }
            1 => {
                let Some(k) = input.byte() else { break };
                let Some(v) = input.bytes(40) else { break };
                let key = BACK_KEYS[usize::from(k) % BACK_KEYS.len()];
                pf.xs.insert(format!("{back}/{key}"), v);
                sw.on_watch(&mut pf, now, &format!("{back}/{key}"), "vif-backends");
            }
            2 => {
                let Some(k) = input.byte() else { break };
                let Some(v) = input.bytes(12) else { break };
                let key = FRONT_KEYS[usize::from(k) % FRONT_KEYS.len()];
                pf.xs.insert(format!("{front}/{key}"), v);
                sw.on_watch(&mut pf, now, &format!("{front}/state"), &format!("vif-front/{d}/0"));
            }
            3 => {
                for s in [b"1".as_slice(), b"4"] {
                    pf.xs.insert(format!("{front}/state"), s.to_vec());
                    sw.on_watch(&mut pf, now, &format!("{front}/state"), &format!("vif-front/{d}/0"));
                }
            }
            4 | 5 => {
                // Ring bytes: the frontend writes anything anywhere.
                let ring = if op % 12 == 4 { 10 } else { 11 };
                let Some(at) = input.byte() else { break };
                let Some(v) = input.bytes(64) else { break };
                if let Some(p) = pf.rings.get(&(d, ring)) {
                    let offset = usize::from(at) * 16;
                    p.0.poke(offset, &v);
                }
            }
            6 => {
                let Some(gref) = input.byte() else { break };
                let Some(v) = input.bytes(200) else { break };
                pf.grants.grant(d, u32::from(gref), 0, &v);
            }
            7 => {
                let Some(f) = input.bytes(255) else { break };
                sw.from_uplink(&mut pf, now, &f);
            }
            8 => {
                let Some(f) = input.bytes(255) else { break };
                sw.from_stack(&mut pf, now, &f);
                while sw.to_stack().is_some() {}
            }
            9 => {
                pf.xs.retain(|k, _| !k.starts_with(&back));
                sw.on_watch(&mut pf, now, &back, "vif-backends");
            }
            10 => {
                sw.on_watch(&mut pf, now, BASE, "vif-backends");
                sw.age(now);
            }
            _ => {
                sw.poll_vifs(&mut pf, now);
                while sw.to_stack().is_some() {}
                pf.uplink.clear();
            }
        }
        // A VIF the switch let go holds nothing.
        let held: usize = sw.reports().len();
        assert!(*pf.mapped.borrow() <= 2 * held, "mappings of VIFs let go");
        assert!(pf.bound.len() <= 2 * held, "channels of VIFs let go");
    }
    let _ = netdom::csum::complete(&mut data.to_vec());
});

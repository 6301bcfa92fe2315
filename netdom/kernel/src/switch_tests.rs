//! The switch over a fake xenstore, fake grants and scripted netfronts:
//! the toolstack's backend directory brings a VIF up, frames go between the
//! NIC, netdom's stack and guests, spoofed frames stop at the bridge, a
//! hostile ring disconnects only its VIF (and a fuzzed one, again and
//! again, reconnecting between), and a removed directory lets everything
//! go.

use std::rc::Rc;

use crate::switch::fake::{Fake, Page};
use crate::switch::{Limits, Switch};
use xcp_bridge::Config as BridgeConfig;
use xcp_netback::fake::Netfront;
use xcp_netback::wire::{TxRequest, NETIF_RSP_OKAY};
use xcp_netback::{Fault, State};
use xcp_ring::fake::MemPage;
use xcp_ring::SharedPage;

const BASE: &str = "/local/domain/1/backend/vif";
const MGMT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

fn limits() -> Limits {
    Limits {
        max_vifs: 4,
        vif_budget: 256 * 1024,
        stack_queue_bytes: 64 * 1024,
        bridge: BridgeConfig::default(),
    }
}

/// The toolstack's writes for guest `d`'s device `n`.
fn plug(pf: &mut Fake, d: u16, n: u32, mac: &str, locking: &str, ipv4: &str) {
    crate::switch::fake::plug(pf, BASE, d, n, mac, locking, ipv4);
}

/// A guest's netfront: rings on grants 10/11, rx buffers on 200.., data
/// on 100...
struct Guest {
    d: u16,
    front: Netfront<Page>,
    next_id: u16,
}

fn connect(sw: &mut Switch<Fake>, pf: &mut Fake, d: u16, n: u32) -> Guest {
    let (tx, rx) = (Page(Rc::new(MemPage::new())), Page(Rc::new(MemPage::new())));
    pf.rings.insert((d, 10), tx.clone());
    pf.rings.insert((d, 11), rx.clone());
    let front = Netfront::new(tx, rx).unwrap();
    let dir = format!("/local/domain/{d}/device/vif/{n}");
    for (k, v) in [
        ("tx-ring-ref", "10"),
        ("rx-ring-ref", "11"),
        ("event-channel", "7"),
        ("request-rx-copy", "1"),
        ("feature-rx-notify", "1"),
        ("feature-sg", "1"),
        ("state", "4"),
    ] {
        pf.xs.insert(format!("{dir}/{k}"), v.as_bytes().to_vec());
    }
    sw.on_watch(
        pf,
        0,
        &format!("{dir}/state"),
        &format!("vif-front/{d}/{n}"),
    );
    let mut g = Guest {
        d,
        front,
        next_id: 0,
    };
    for i in 0..4 {
        pf.grants.grant(d, 200 + i, 0, &[]);
        g.front.post_rx(i as u16, 200 + i).unwrap();
    }
    g
}

impl Guest {
    fn send(&mut self, pf: &mut Fake, frame: &[u8]) {
        let gref = 100 + u32::from(self.next_id);
        pf.grants.grant(self.d, gref, 0, frame);
        self.front
            .send(&[TxRequest {
                gref,
                offset: 0,
                flags: 0,
                id: self.next_id,
                size: frame.len() as u16,
            }])
            .unwrap();
        self.next_id += 1;
    }

    /// Frames delivered into its posted buffers.
    fn received(&mut self, pf: &Fake) -> Vec<Vec<u8>> {
        self.front
            .rx_responses()
            .unwrap()
            .into_iter()
            .map(|(_, r)| {
                assert!(r.status > 0, "rx status {}", r.status);
                let page = pf.grants.page(self.d, 200 + u32::from(r.id)).unwrap();
                page[usize::from(r.offset)..][..r.status as usize].to_vec()
            })
            .collect()
    }
}

fn frame(dst: [u8; 6], src: [u8; 6], ethertype: u16, body: &[u8]) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(body);
    f.resize(f.len().max(60), 0);
    f
}

const GUEST_MAC: [u8; 6] = [0x02, 0x16, 0x3e, 0, 0, 5];
const OTHER_MAC: [u8; 6] = [0x02, 0x16, 0x3e, 0, 0, 6];
const OUTSIDE: [u8; 6] = [0x52, 0x55, 0x0a, 0, 2, 2];

fn up() -> (Switch<Fake>, Fake) {
    let mut pf = Fake::default();
    let mut sw = Switch::new(BASE, MGMT_MAC, limits());
    assert!(sw.start(&mut pf));
    assert_eq!(pf.watches, [(BASE.to_string(), "vif-backends".to_string())]);
    (sw, pf)
}

#[test]
fn a_vif_comes_up_carries_frames_and_goes() {
    let (mut sw, mut pf) = up();
    plug(&mut pf, 5, 0, "02:16:3e:00:00:05", "unlocked", "");
    sw.on_watch(&mut pf, 0, &format!("{BASE}/5/0/mac"), "vif-backends");
    let state = |pf: &Fake| pf.xs[&format!("{BASE}/5/0/state")].clone();
    assert_eq!(state(&pf), b"2", "InitWait");
    assert_eq!(pf.xs[&format!("{BASE}/5/0/feature-rx-copy")], b"1");
    assert_eq!(pf.xs[&format!("{BASE}/5/0/feature-gso-tcpv4")], b"0");
    assert!(pf.watches.contains(&(
        "/local/domain/5/device/vif/0/state".into(),
        "vif-front/5/0".into()
    )));

    let mut g = connect(&mut sw, &mut pf, 5, 0);
    assert_eq!(state(&pf), b"4", "Connected");
    assert_eq!(pf.bound.len(), 1);
    assert_eq!(sw.reports()[0].state, State::Connected);

    // A broadcast from the guest reaches the NIC and netdom's stack.
    let hello = frame([0xff; 6], GUEST_MAC, 0x0806, b"who-has");
    g.send(&mut pf, &hello);
    sw.poll_vifs(&mut pf, 1);
    assert_eq!(pf.uplink, std::slice::from_ref(&hello));
    assert_eq!(sw.to_stack(), Some(hello));
    assert_eq!(sw.to_stack(), None);
    assert_eq!(g.front.tx_responses().unwrap()[0].status, NETIF_RSP_OKAY);

    // The answer from outside lands in the guest's posted buffer.
    let reply = frame(GUEST_MAC, OUTSIDE, 0x0806, b"is-at");
    sw.from_uplink(&mut pf, 2, &reply);
    assert_eq!(g.received(&pf), [reply]);
    // netdom's stack reaches it too, and the guest netdom.
    let own = frame(GUEST_MAC, MGMT_MAC, 0x0800, b"from netdom");
    sw.from_stack(&mut pf, 3, &own);
    assert_eq!(g.received(&pf), [own]);
    assert!(
        pf.uplink.len() == 1,
        "unicast to a known guest stays off the NIC"
    );

    // Removing the directory lets the rings and the channel go.
    assert_eq!(*pf.mapped.borrow(), 2);
    pf.xs.retain(|k, _| !k.starts_with(&format!("{BASE}/5")));
    sw.on_watch(&mut pf, 4, &format!("{BASE}/5/0"), "vif-backends");
    assert!(sw.reports().is_empty());
    assert_eq!(*pf.mapped.borrow(), 0);
    assert!(pf.bound.is_empty());
    assert!(
        !pf.xs.contains_key(&format!("{BASE}/5/0/state")),
        "nothing written back"
    );
    assert_eq!(sw.counters.vifs_removed, 1);
}

#[test]
fn guests_reach_each_other_and_spoofing_stops_at_the_bridge() {
    let (mut sw, mut pf) = up();
    plug(&mut pf, 5, 0, "02:16:3e:00:00:05", "unlocked", "");
    plug(&mut pf, 6, 0, "02:16:3e:00:00:06", "locked", "10.0.2.16");
    sw.on_watch(&mut pf, 0, BASE, "vif-backends");
    assert_eq!(sw.reports().len(), 2);
    let mut a = connect(&mut sw, &mut pf, 5, 0);
    let mut b = connect(&mut sw, &mut pf, 6, 0);

    // a learns b's MAC from b's broadcast, then unicasts.
    let mut arp = frame([0xff; 6], OTHER_MAC, 0x0806, &[0; 28]);
    // An ARP request from 10.0.2.16 (sender IP at 14 + 14).
    arp[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    arp[22..28].copy_from_slice(&OTHER_MAC);
    arp[28..32].copy_from_slice(&[10, 0, 2, 16]);
    b.send(&mut pf, &arp);
    sw.poll_vifs(&mut pf, 1);
    assert_eq!(a.received(&pf), [arp.clone()]);
    let uni = frame(OTHER_MAC, GUEST_MAC, 0x0806, b"unicast");
    a.send(&mut pf, &uni);
    sw.poll_vifs(&mut pf, 2);
    assert_eq!(b.received(&pf), [uni]);

    // The locked guest pretending to be a: nothing gets through.
    let before = pf.uplink.len();
    let spoof = frame([0xff; 6], GUEST_MAC, 0x0806, b"i am a");
    b.send(&mut pf, &spoof);
    sw.poll_vifs(&mut pf, 3);
    assert!(a.received(&pf).is_empty());
    assert_eq!(pf.uplink.len(), before);
    assert_eq!(sw.to_stack(), Some(arp));
    assert_eq!(sw.to_stack(), None, "the spoofed frame is not among them");
}

#[test]
fn a_hostile_ring_disconnects_only_its_vif() {
    let (mut sw, mut pf) = up();
    plug(&mut pf, 5, 0, "02:16:3e:00:00:05", "unlocked", "");
    plug(&mut pf, 6, 0, "02:16:3e:00:00:06", "unlocked", "");
    sw.on_watch(&mut pf, 0, BASE, "vif-backends");
    let mut a = connect(&mut sw, &mut pf, 5, 0);
    let mut b = connect(&mut sw, &mut pf, 6, 0);
    // b claims a million requests.
    pf.rings[&(6, 10)].0.poke(0, &1_000_000u32.to_le_bytes());
    sw.poll_vifs(&mut pf, 1);
    let states: Vec<_> = sw.reports().iter().map(|r| r.state).collect();
    assert_eq!(states[0], State::Connected);
    assert!(matches!(states[1], State::Disconnected(_)), "{states:?}");
    assert_eq!(pf.xs[&format!("{BASE}/6/0/state")], b"5", "Closing");
    assert_eq!(*pf.mapped.borrow(), 2, "only a's rings stay mapped");
    assert_eq!(pf.bound.len(), 1);
    // a goes on.
    let f = frame([0xff; 6], GUEST_MAC, 0x0806, b"still here");
    a.send(&mut pf, &f);
    sw.poll_vifs(&mut pf, 2);
    assert_eq!(pf.uplink.last(), Some(&f));
    assert!(b.received(&pf).is_empty());
}

#[test]
fn unplug_and_refusals() {
    let (mut sw, mut pf) = up();
    plug(&mut pf, 5, 0, "02:16:3e:00:00:05", "unlocked", "");
    sw.on_watch(&mut pf, 0, BASE, "vif-backends");
    let _g = connect(&mut sw, &mut pf, 5, 0);
    pf.xs.insert(format!("{BASE}/5/0/online"), b"0".to_vec());
    sw.on_watch(&mut pf, 1, &format!("{BASE}/5/0/online"), "vif-backends");
    assert_eq!(pf.xs[&format!("{BASE}/5/0/state")], b"5", "Closing");
    assert_eq!(*pf.mapped.borrow(), 0);
    // The frontend closes: the backend says Closed.
    pf.xs
        .insert("/local/domain/5/device/vif/0/state".into(), b"6".to_vec());
    sw.on_watch(
        &mut pf,
        2,
        "/local/domain/5/device/vif/0/state",
        "vif-front/5/0",
    );
    assert_eq!(pf.xs[&format!("{BASE}/5/0/state")], b"6");

    // A directory whose frontend names another guest, a bad MAC.
    plug(&mut pf, 7, 0, "02:16:3e:00:00:07", "unlocked", "");
    pf.xs.insert(
        format!("{BASE}/7/0/frontend"),
        b"/local/domain/0/device/vif/0".to_vec(),
    );
    plug(&mut pf, 8, 0, "02:16:3e:00:00", "unlocked", "");
    sw.on_watch(&mut pf, 3, BASE, "vif-backends");
    assert_eq!(sw.counters.vifs_refused, 2);
    assert_eq!(pf.xs[&format!("{BASE}/7/0/state")], b"6");
    assert!(pf.xs.contains_key(&format!("{BASE}/8/0/hotplug-error")));
    assert_eq!(sw.reports().len(), 1);
}

#[test]
fn rules_change_on_a_plugged_vif() {
    let (mut sw, mut pf) = up();
    plug(&mut pf, 5, 0, "02:16:3e:00:00:05", "unlocked", "");
    sw.on_watch(&mut pf, 0, BASE, "vif-backends");
    let mut g = connect(&mut sw, &mut pf, 5, 0);
    // An ARP request from 10.0.2.99: fine while unlocked.
    let mut arp = frame([0xff; 6], GUEST_MAC, 0x0806, &[0; 28]);
    arp[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    arp[22..28].copy_from_slice(&GUEST_MAC);
    arp[28..32].copy_from_slice(&[10, 0, 2, 99]);
    let sent = |sw: &mut Switch<Fake>, pf: &mut Fake, g: &mut Guest, t: u64| {
        let before = pf.uplink.len();
        g.send(pf, &arp);
        sw.poll_vifs(pf, t);
        pf.uplink.len() > before
    };
    assert!(sent(&mut sw, &mut pf, &mut g, 1));
    // Locked to 10.0.2.16: the same frame stops at the bridge.
    let back = format!("{BASE}/5/0");
    pf.xs
        .insert(format!("{back}/ipv4-allowed"), b"10.0.2.16".to_vec());
    pf.xs
        .insert(format!("{back}/locking-mode"), b"locked".to_vec());
    sw.on_watch(&mut pf, 2, &format!("{back}/locking-mode"), "vif-backends");
    assert!(!sent(&mut sw, &mut pf, &mut g, 3));
    // Allowed once its address is.
    pf.xs.insert(
        format!("{back}/ipv4-allowed"),
        b"10.0.2.16,10.0.2.99".to_vec(),
    );
    sw.on_watch(&mut pf, 4, &format!("{back}/ipv4-allowed"), "vif-backends");
    assert!(sent(&mut sw, &mut pf, &mut g, 5));
    // Rules that do not parse disable the port rather than open it.
    pf.xs.insert(
        format!("{back}/ipv4-allowed"),
        b"10.0.2.16,not-an-ip".to_vec(),
    );
    sw.on_watch(&mut pf, 6, &format!("{back}/ipv4-allowed"), "vif-backends");
    assert!(!sent(&mut sw, &mut pf, &mut g, 7));
    assert_eq!(sw.reports()[0].state, State::Connected, "still connected");
}

/// splitmix64, for seeded garbage.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// What testdom's `netfront-fuzz` does to netdom (qemu-tests case
/// `guests_net_hostile`), over the fakes and many seeds: guest 6 writes
/// garbage into its tx ring (or its rx ring, found when guest 5's
/// broadcast is flooded to it) until it is disconnected, closes, starts
/// again and reconnects, three times; each time nothing of it stays held
/// and guest 5's frames go on.
#[test]
fn a_fuzzed_vif_is_thrown_out_reconnects_and_is_thrown_out_again() {
    let (mut tx_faults, mut rx_faults) = (0, 0);
    for seed in 0..300u64 {
        let mut rng = Rng(seed);
        let (mut sw, mut pf) = up();
        plug(&mut pf, 5, 0, "02:16:3e:00:00:05", "unlocked", "");
        plug(&mut pf, 6, 0, "02:16:3e:00:00:06", "unlocked", "");
        sw.on_watch(&mut pf, 0, BASE, "vif-backends");
        let mut a = connect(&mut sw, &mut pf, 5, 0);
        let front = "/local/domain/6/device/vif/0";
        let state = format!("{BASE}/6/0/state");
        let token = "vif-front/6/0";
        let mut now = 1;
        for round in 0..3 {
            let _b = connect(&mut sw, &mut pf, 6, 0);
            assert_eq!(pf.xs[&state], b"4", "seed {seed} round {round}: connected");
            let (tx, rx) = (pf.rings[&(6, 10)].clone(), pf.rings[&(6, 11)].clone());
            let mut bursts = 0;
            while sw.reports()[1].state == State::Connected {
                bursts += 1;
                assert!(
                    bursts < 100,
                    "seed {seed} round {round}: never disconnected"
                );
                // One ring in four is rx (8-byte slots), else tx (12).
                let (ring, slot) = if rng.next().is_multiple_of(4) {
                    (&rx, 8)
                } else {
                    (&tx, 12)
                };
                let n = rng.next() % 64 + 1;
                for i in 0..n as usize {
                    let bytes: Vec<u8> = (0..slot).map(|_| rng.next() as u8).collect();
                    ring.write(64 + i * slot, &bytes);
                }
                let prod = match rng.next() % 3 {
                    0 => rng.next() as u32,
                    _ => n as u32,
                };
                ring.store_u32(0, prod);
                now += 1;
                sw.poll_vifs(&mut pf, now);
                // A broadcast from a reaches b's rx ring (and the NIC).
                let f = frame([0xff; 6], GUEST_MAC, 0x0806, b"from a");
                let sent = pf.uplink.len();
                a.send(&mut pf, &f);
                now += 1;
                sw.poll_vifs(&mut pf, now);
                assert_eq!(pf.uplink.len(), sent + 1, "seed {seed}: a's frame left");
                assert_eq!(pf.uplink.last(), Some(&f));
                a.front.tx_responses().unwrap();
            }
            let r = &sw.reports()[1];
            match r.state {
                State::Disconnected(Fault::Tx(_)) => tx_faults += 1,
                State::Disconnected(Fault::RxRing(_)) => rx_faults += 1,
                other => panic!("seed {seed} round {round}: {other:?}"),
            }
            assert_eq!(pf.xs[&state], b"5", "seed {seed}: Closing");
            assert_eq!(*pf.mapped.borrow(), 2, "seed {seed}: only a's rings mapped");
            assert_eq!(pf.bound.len(), 1, "seed {seed}: only a's channel bound");
            // b closes, waits for Closed, starts again.
            pf.xs.insert(format!("{front}/state"), b"6".to_vec());
            sw.on_watch(&mut pf, now, &format!("{front}/state"), token);
            assert_eq!(pf.xs[&state], b"6", "seed {seed}: Closed");
            pf.xs.insert(format!("{front}/state"), b"1".to_vec());
            sw.on_watch(&mut pf, now, &format!("{front}/state"), token);
            assert_eq!(pf.xs[&state], b"2", "seed {seed}: InitWait again");
        }
        assert_eq!(sw.reports()[0].state, State::Connected);
        assert_eq!(sw.reports()[1].stats.faults, 3);
        assert_eq!(sw.reports()[1].stats.connects, 3);
    }
    // Both rings' checks were reached.
    assert!(tx_faults > 0 && rx_faults > 0, "{tx_faults} {rx_faults}");
}

#[test]
fn vifs_beyond_the_budget_are_refused() {
    // The 5th VIF of a switch sized for 4 is refused with hotplug-error
    // (production: 64, netdom/relay/src/budget.rs MAX_VIFS); the others are
    // served and a removal makes room again.
    let (mut sw, mut pf) = up();
    for d in 5..10u16 {
        plug(
            &mut pf,
            d,
            0,
            &format!("02:16:3e:00:00:{d:02x}"),
            "unlocked",
            "",
        );
    }
    sw.on_watch(&mut pf, 0, BASE, "vif-backends");
    assert_eq!(sw.reports().len(), 4);
    assert_eq!(sw.counters.vifs_refused, 1);
    let refused: Vec<_> = (5..10u16)
        .filter(|d| pf.xs.contains_key(&format!("{BASE}/{d}/0/hotplug-error")))
        .collect();
    assert_eq!(refused.len(), 1);
    let d = refused[0];
    assert_eq!(pf.xs[&format!("{BASE}/{d}/0/state")], b"6");
    let gone = if d == 5 { 6 } else { 5 };
    pf.xs
        .retain(|k, _| !k.starts_with(&format!("{BASE}/{gone}/")));
    sw.on_watch(&mut pf, 1, &format!("{BASE}/{gone}/0"), "vif-backends");
    plug(
        &mut pf,
        d,
        0,
        &format!("02:16:3e:00:00:{d:02x}"),
        "unlocked",
        "",
    );
    pf.xs.remove(&format!("{BASE}/{d}/0/hotplug-error"));
    sw.on_watch(&mut pf, 2, &format!("{BASE}/{d}/0"), "vif-backends");
    assert_eq!(sw.reports().len(), 4);
    assert!(sw.reports().iter().any(|r| r.domid == d));
}

#[test]
fn a_busy_guest_is_polled_again_until_its_ring_is_empty() {
    // A guest queues more packets than one turn takes. The switch must say
    // "again" (its frontend will not kick for what is left: it kicks only
    // when netdom has caught up), and the next turns take the rest.
    let (mut sw, mut pf) = up();
    plug(&mut pf, 5, 0, "02:16:3e:00:00:05", "unlocked", "");
    sw.on_watch(&mut pf, 0, BASE, "vif-backends");
    let mut g = connect(&mut sw, &mut pf, 5, 0);
    let n = crate::switch::PACKETS_PER_TURN + 10;
    for i in 0..n {
        g.send(
            &mut pf,
            &frame([0xff; 6], GUEST_MAC, 0x0806, &[i as u8; 28]),
        );
    }
    assert_eq!(
        sw.poll_vifs(&mut pf, 1),
        Some(1),
        "more left: poll again now"
    );
    assert_eq!(pf.uplink.len(), crate::switch::PACKETS_PER_TURN);
    assert_eq!(sw.poll_vifs(&mut pf, 2), None, "caught up: wait for a kick");
    assert_eq!(pf.uplink.len(), n);
    assert_eq!(g.front.tx_responses().unwrap().len(), n);
}

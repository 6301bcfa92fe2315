//! Fuzz target: ports plugged and unplugged, frames of any bytes, a moving
//! clock; the bridge's invariants are checked after every step.
//!
//! read first: ../../src/bridge.rs (the contract).
//!
//! Script: each step takes one byte `op` and one byte `a`. `op % 8`:
//! 0-3 a frame on port `a % 6` whose length is the next byte and whose
//! bytes follow (a frame of ≥ 12 bytes gets its source/destination MACs
//! rewritten from a small pool when `op & 0x80`, so learning hits); 4 plug
//! port `a % 6` as kind `a / 6 % 6` (uplink, management, unlocked,
//! locked, disabled, network_default) with MAC `op >> 4`; 5 unplug port
//! `a % 6`; 6 advance the clock `a` × 2 s (ageing is 60 s); 7 age, then
//! flip port `a % 6`'s locking. The bridge must never panic, never send a
//! frame back to its ingress port or to a missing or disabled port, never
//! forward a locked VIF's frame with a foreign source MAC, and `check()`
//! must hold.
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use xcp_bridge::{
    Bridge, Config, Locking, PortConfig, PortId, PortKind, Verdict, VifConfig, ENTRY_BYTES,
};

const S: u64 = 1_000_000_000;

fn pool(n: u8) -> [u8; 6] {
    match n % 10 {
        8 => [0xff; 6],
        9 => [0x33, 0x33, 0, 0, 0, 1],
        k => [0x02, 0, 0, 0, 0, k + 1],
    }
}

fn port_config(kind: u8, mac: u8) -> PortConfig {
    let m = pool(mac);
    let allowed = [Ipv4Addr::new(10, 0, 0, mac % 4)];
    let vif = |locking| {
        let mut v = VifConfig::locked(m, &allowed, &[]);
        v.locking = locking;
        let mut c = PortConfig::vif(v);
        c.max_learned = 3;
        c
    };
    match kind % 6 {
        0 => PortConfig::uplink(),
        1 => PortConfig::management(m),
        2 => vif(Locking::Unlocked),
        3 => vif(Locking::Locked),
        4 => vif(Locking::Disabled),
        _ => vif(Locking::NetworkDefault).with_mtu(9000),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bridge::new(Config {
        table_bytes: 6 * ENTRY_BYTES,
        ageing_ns: 60 * S,
        max_ports: 5,
    });
    let mut now = 0u64;
    let mut i = 0;
    while i + 1 < data.len() {
        let (op, a) = (data[i], data[i + 1]);
        i += 2;
        let id = PortId(u16::from(a % 6));
        match op % 8 {
            0..=3 => {
                let len = usize::from(data.get(i).copied().unwrap_or(0)) * 8;
                i = (i + 1).min(data.len());
                let end = (i + len).min(data.len());
                let mut frame = data[i..end].to_vec();
                i = end;
                if op & 0x80 != 0 && frame.len() >= 12 {
                    frame[0..6].copy_from_slice(&pool(a >> 3));
                    frame[6..12].copy_from_slice(&pool(a >> 5));
                }
                let ingress = b.port_config(id).cloned();
                let verdict = b.receive(now, id, &frame);
                if let Verdict::Forward(egress) = verdict {
                    let ingress = ingress.expect("forwarded from a live port");
                    let mut n = 0;
                    for p in b.egress(&egress) {
                        n += 1;
                        assert_ne!(p, id, "hairpin");
                        let pc = b.port_config(p).expect("egress port exists");
                        assert_ne!(pc.locking(), Some(Locking::Disabled));
                    }
                    assert!(n > 0, "a forward names a port");
                    match &ingress.kind {
                        PortKind::Vif(v) if v.locking == Locking::Locked => {
                            assert_eq!(frame[6..12], v.mac, "locked VIF spoofed");
                        }
                        PortKind::Vif(v) => assert_ne!(v.locking, Locking::Disabled),
                        _ => {}
                    }
                }
            }
            4 => {
                let _ = b.add_port(id, port_config(a / 6, op >> 4));
            }
            5 => {
                let _ = b.remove_port(id);
                assert!(b.table().entries().iter().all(|e| e.port != id));
            }
            6 => now += u64::from(a) * 2 * S,
            _ => {
                b.age(now);
                if let Some(PortKind::Vif(mut v)) = b.port_config(id).map(|c| c.kind.clone()) {
                    v.locking = match v.locking {
                        Locking::Locked => Locking::Unlocked,
                        _ => Locking::Locked,
                    };
                    b.update_vif(id, v).expect("same MAC, short lists");
                }
            }
        }
        if let Err(why) = b.check() {
            panic!("invariant: {why}");
        }
    }
});

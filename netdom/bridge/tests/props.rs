//! Property tests: arbitrary frames and port sequences never panic, keep
//! the bridge consistent, never send a frame back to its ingress port, and
//! never forward a frame from a locked VIF with a foreign source MAC (or
//! a foreign IPv4 source).

mod common;

use std::net::{Ipv4Addr, Ipv6Addr};

use common::*;
use proptest::prelude::*;
use xcp_bridge::{
    Bridge, Config, Egress, Locking, PortConfig, PortId, PortKind, Verdict, VifConfig, ENTRY_BYTES,
};

#[derive(Clone, Debug)]
enum Op {
    /// Port `id`, kind 0 uplink, 1 management, 2 unlocked, 3 locked,
    /// 4 disabled, 5 network_default; MAC from the pool; jumbo or not.
    Add {
        id: u16,
        kind: u8,
        mac: u8,
        jumbo: bool,
    },
    Remove {
        id: u16,
    },
    /// A well-formed-ish frame between pool MACs.
    Frame {
        id: u16,
        dst: u8,
        src: u8,
        body: u8,
        ip: u8,
        len: u16,
    },
    /// Any bytes.
    Raw {
        id: u16,
        bytes: Vec<u8>,
    },
    Tick {
        ms: u32,
    },
    Age,
    Lock {
        id: u16,
        locked: bool,
        ip: u8,
    },
}

/// 12 MACs: 0..=9 unicast, 10 broadcast, 11 multicast.
fn pool(n: u8) -> [u8; 6] {
    match n % 12 {
        10 => BROADCAST,
        11 => [0x01, 0x00, 0x5e, 0, 0, 1],
        k => mac(k + 1),
    }
}

fn pool_ip(n: u8) -> Ipv4Addr {
    match n % 4 {
        0 => Ipv4Addr::UNSPECIFIED,
        k => Ipv4Addr::new(10, 0, 0, k),
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0u16..6, 0u8..6, 0u8..12, any::<bool>())
            .prop_map(|(id, kind, mac, jumbo)| Op::Add { id, kind, mac, jumbo }),
        1 => (0u16..6).prop_map(|id| Op::Remove { id }),
        8 => (0u16..6, any::<u8>(), any::<u8>(), 0u8..6, any::<u8>(), 0u16..2100)
            .prop_map(|(id, dst, src, body, ip, len)| Op::Frame { id, dst, src, body, ip, len }),
        2 => (0u16..6, proptest::collection::vec(any::<u8>(), 0..120))
            .prop_map(|(id, bytes)| Op::Raw { id, bytes }),
        2 => (0u32..400_000).prop_map(|ms| Op::Tick { ms }),
        1 => Just(Op::Age),
        1 => (0u16..6, any::<bool>(), any::<u8>())
            .prop_map(|(id, locked, ip)| Op::Lock { id, locked, ip }),
    ]
}

fn port_config(kind: u8, mac: u8, jumbo: bool) -> PortConfig {
    let m = pool(mac);
    let allowed = [pool_ip(mac), Ipv4Addr::new(10, 0, 0, 1)];
    let mut config = match kind {
        0 => PortConfig::uplink(),
        1 => PortConfig::management(m),
        2 => PortConfig::vif(VifConfig::unlocked(m)),
        3 => PortConfig::vif(VifConfig::locked(m, &allowed, &[])),
        4 => {
            let mut v = VifConfig::unlocked(m);
            v.locking = Locking::Disabled;
            PortConfig::vif(v)
        }
        _ => {
            let mut v = VifConfig::unlocked(m);
            v.locking = Locking::NetworkDefault;
            PortConfig::vif(v)
        }
    };
    config.max_learned = config.max_learned.min(4);
    if jumbo {
        config = config.with_mtu(9000);
    }
    config
}

fn frame(dst: u8, src: u8, body: u8, ip: u8, len: u16) -> Vec<u8> {
    let (d, s) = (pool(dst), pool(src));
    let pad = |mut f: Vec<u8>| {
        let want = usize::from(len).max(f.len());
        f.resize(want, 0);
        f
    };
    match body {
        0 => sized(d, s, usize::from(len).max(14)),
        1 => eth(
            d,
            s,
            ETH_ARP,
            &arp(pool(ip >> 4), pool_ip(ip), pool_ip(ip >> 2)),
        ),
        2 => pad(eth(
            d,
            s,
            ETH_IPV4,
            &ipv4(pool_ip(ip), Ipv4Addr::BROADCAST, UDP, &udp(68, 67, &[0; 8])),
        )),
        3 => dhcp_discover(s),
        4 => {
            let src6 = if ip & 1 == 0 {
                Ipv6Addr::UNSPECIFIED
            } else {
                Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(ip))
            };
            eth(
                d,
                s,
                ETH_IPV6,
                &ipv6(src6, Ipv6Addr::LOCALHOST, ICMPV6, &[0; 8]),
            )
        }
        _ => eth(d, s, 0x8100, &[0; 46]),
    }
}

/// What a locked VIF may have sent (re-derived independently of the
/// engine): its own MAC and, for IPv4, an allowed or unspecified source.
fn locked_may_send(vif: &VifConfig, frame: &[u8]) -> bool {
    if frame[6..12] != vif.mac {
        return false;
    }
    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    match ethertype {
        0x0800 => {
            let Some(src) = frame.get(26..30) else {
                return false;
            };
            let src = Ipv4Addr::new(src[0], src[1], src[2], src[3]);
            src.is_unspecified() || vif.ipv4_allowed.contains(&src)
        }
        0x0806 => {
            let Some(spa) = frame.get(28..32) else {
                return false;
            };
            let spa = Ipv4Addr::new(spa[0], spa[1], spa[2], spa[3]);
            frame.get(22..28) == Some(&vif.mac[..])
                && (spa.is_unspecified() || vif.ipv4_allowed.contains(&spa))
        }
        0x86dd => true,
        _ => false,
    }
}

fn run(ops: Vec<Op>, table_entries: usize) -> Result<(), TestCaseError> {
    let mut b = Bridge::new(Config {
        table_bytes: table_entries * ENTRY_BYTES,
        ageing_ns: 300 * S,
        max_ports: 5,
    });
    let mut now = 0u64;
    for op in ops {
        let received = match op {
            Op::Add {
                id,
                kind,
                mac,
                jumbo,
            } => {
                let _ = b.add_port(PortId(id), port_config(kind, mac, jumbo));
                None
            }
            Op::Remove { id } => {
                let _ = b.remove_port(PortId(id));
                prop_assert!(b.port_config(PortId(id)).is_none());
                prop_assert!(b.table().entries().iter().all(|e| e.port != PortId(id)));
                None
            }
            Op::Frame {
                id,
                dst,
                src,
                body,
                ip,
                len,
            } => Some((PortId(id), frame(dst, src, body, ip, len))),
            Op::Raw { id, bytes } => Some((PortId(id), bytes)),
            Op::Tick { ms } => {
                now += u64::from(ms) * 1_000_000;
                None
            }
            Op::Age => {
                b.age(now);
                prop_assert!(b
                    .table()
                    .entries()
                    .iter()
                    .all(|e| now - e.last_seen < 300 * S));
                None
            }
            Op::Lock { id, locked, ip } => {
                if let Some(PortKind::Vif(v)) = b.port_config(PortId(id)).map(|c| c.kind.clone()) {
                    let mut v = v;
                    v.locking = if locked {
                        Locking::Locked
                    } else {
                        Locking::Unlocked
                    };
                    v.ipv4_allowed = vec![pool_ip(ip)];
                    b.update_vif(PortId(id), v).expect("same MAC, short list");
                }
                None
            }
        };
        if let Some((ingress, bytes)) = received {
            let config = b.port_config(ingress).cloned();
            let verdict = b.receive(now, ingress, &bytes);
            if let Verdict::Forward(egress) = verdict {
                let config = config.expect("forwarded from a live port");
                let out: Vec<PortId> = b.egress(&egress).collect();
                prop_assert!(!out.is_empty());
                prop_assert!(!out.contains(&ingress), "hairpin: {ingress:?} in {out:?}");
                for p in &out {
                    let pc = b.port_config(*p).expect("egress port exists");
                    prop_assert!(pc.locking() != Some(Locking::Disabled));
                    prop_assert!(bytes.len() <= pc.max_frame(true));
                }
                if let Egress::Port(p) = egress {
                    prop_assert_eq!(b.lookup(&bytes[0..6].try_into().unwrap(), now), Some(p));
                }
                match &config.kind {
                    PortKind::Vif(v) if v.locking == Locking::Locked => {
                        prop_assert!(
                            locked_may_send(v, &bytes),
                            "locked VIF forwarded {bytes:02x?}"
                        );
                    }
                    PortKind::Vif(v) => prop_assert!(v.locking != Locking::Disabled),
                    _ => {}
                }
                prop_assert!(bytes.len() >= 14 && bytes.len() <= config.max_frame(true));
            }
        }
        if let Err(why) = b.check() {
            return Err(TestCaseError::fail(why));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_ops_keep_every_rule(ops in proptest::collection::vec(op(), 0..200),
                                     table_entries in 0usize..8) {
        run(ops, table_entries)?;
    }

    #[test]
    fn arbitrary_bytes_on_a_full_bridge_never_panic(
        frames in proptest::collection::vec((0u16..5, proptest::collection::vec(any::<u8>(), 0..200)), 0..100)
    ) {
        let mut ops = vec![
            Op::Add { id: 0, kind: 0, mac: 0, jumbo: false },
            Op::Add { id: 1, kind: 1, mac: 1, jumbo: false },
            Op::Add { id: 2, kind: 2, mac: 2, jumbo: true },
            Op::Add { id: 3, kind: 3, mac: 3, jumbo: false },
            Op::Add { id: 4, kind: 4, mac: 4, jumbo: false },
        ];
        ops.extend(frames.into_iter().map(|(id, bytes)| Op::Raw { id, bytes }));
        run(ops, 4)?;
    }

    #[test]
    fn a_locked_vif_never_forwards_a_foreign_source_mac(
        src in any::<[u8; 6]>(),
        dst in any::<[u8; 6]>(),
        ethertype in prop_oneof![Just(0x0800u16), Just(0x0806), Just(0x86dd), any::<u16>()],
        payload in proptest::collection::vec(any::<u8>(), 0..100),
    ) {
        let own = mac(3);
        let mut b = Bridge::new(Config::default());
        b.add_port(PortId(0), PortConfig::uplink()).unwrap();
        b.add_port(PortId(3), PortConfig::vif(VifConfig::locked(own, &[Ipv4Addr::new(10, 0, 0, 3)], &[]))).unwrap();
        let f = eth(dst, src, ethertype, &payload);
        let v = b.receive(0, PortId(3), &f);
        if src != own {
            prop_assert!(matches!(v, Verdict::Drop(_)), "{v:?}");
            prop_assert_eq!(b.table().len(), 0);
        }
    }
}

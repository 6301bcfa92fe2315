//! Table-driven scenarios for every bridge rule: learning, ageing,
//! flooding, no hairpin, table full, locking modes, counters, bounds,
//! port add/remove.

mod common;

use std::net::{Ipv4Addr, Ipv6Addr};

use common::*;
use xcp_bridge::{
    Bridge, Config, DropReason, Egress, Locking, PortConfig, PortError, PortId, Spoof, Verdict,
    VifConfig, ENTRY_BYTES,
};

const UPLINK: PortId = PortId(0);
const MGMT: PortId = PortId(1);
const VIF_A: PortId = PortId(10);
const VIF_B: PortId = PortId(11);

const A_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 10);
const A_IP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 10);

/// uplink, management (mac 1), VIF A (mac 10, `a`), VIF B (mac 11, unlocked).
fn bridge_with(config: Config, a: VifConfig) -> Bridge {
    let mut b = Bridge::new(config);
    b.add_port(UPLINK, PortConfig::uplink()).unwrap();
    b.add_port(MGMT, PortConfig::management(mac(1))).unwrap();
    b.add_port(VIF_A, PortConfig::vif(a)).unwrap();
    b.add_port(VIF_B, PortConfig::vif(VifConfig::unlocked(mac(11))))
        .unwrap();
    b
}

fn bridge() -> Bridge {
    bridge_with(Config::default(), VifConfig::unlocked(mac(10)))
}

fn locked() -> Bridge {
    bridge_with(
        Config::default(),
        VifConfig::locked(mac(10), &[A_IP], &[A_IP6]),
    )
}

/// The ports a verdict sends to, sorted.
#[track_caller]
fn sent_to(b: &Bridge, v: Verdict) -> Vec<PortId> {
    match v {
        Verdict::Forward(e) => {
            let ports: Vec<PortId> = b.egress(&e).collect();
            assert!(!ports.is_empty(), "a forward names at least one port");
            ports
        }
        Verdict::Drop(why) => panic!("dropped: {why:?}"),
    }
}

#[track_caller]
fn recv(b: &mut Bridge, now: u64, port: PortId, frame: &[u8]) -> Vec<PortId> {
    let v = b.receive(now, port, frame);
    sent_to(b, v)
}

#[track_caller]
fn dropped(b: &mut Bridge, now: u64, port: PortId, frame: &[u8]) -> DropReason {
    match b.receive(now, port, frame) {
        Verdict::Drop(why) => why,
        v => panic!("forwarded: {v:?}"),
    }
}

// ---- learning, flooding, hairpin ------------------------------------------

#[test]
fn unknown_unicast_floods_then_known_goes_to_its_port_only() {
    let mut b = bridge();
    let station = mac(0x50);
    // To an unknown station: everyone but the ingress.
    assert_eq!(
        recv(&mut b, 0, VIF_A, &sized(station, mac(10), 60)),
        [UPLINK, MGMT, VIF_B]
    );
    // The station answers from the uplink: learned there.
    assert_eq!(
        recv(&mut b, S, UPLINK, &sized(mac(10), station, 60)),
        [VIF_A]
    );
    assert_eq!(b.lookup(&station, S), Some(UPLINK));
    assert_eq!(
        recv(&mut b, 2 * S, VIF_A, &sized(station, mac(10), 60)),
        [UPLINK]
    );
    assert_eq!(b.counters().learned, 1);
}

#[test]
fn broadcast_and_multicast_flood_never_back() {
    let mut b = bridge();
    for dst in [
        BROADCAST,
        [0x01, 0x00, 0x5e, 0, 0, 1],
        [0x33, 0x33, 0, 0, 0, 1],
    ] {
        for (ingress, others) in [
            (UPLINK, vec![MGMT, VIF_A, VIF_B]),
            (MGMT, vec![UPLINK, VIF_A, VIF_B]),
            (VIF_A, vec![UPLINK, MGMT, VIF_B]),
            (VIF_B, vec![UPLINK, MGMT, VIF_A]),
        ] {
            let src = match ingress {
                UPLINK => mac(0x50),
                MGMT => mac(1),
                VIF_A => mac(10),
                _ => mac(11),
            };
            assert_eq!(recv(&mut b, 0, ingress, &sized(dst, src, 64)), others);
        }
    }
    // A group address is never a lookup hit, even if someone sent from it.
    assert_eq!(
        dropped(&mut b, 0, UPLINK, &sized(mac(10), BROADCAST, 64)),
        DropReason::BadSource
    );
}

#[test]
fn no_hairpin_to_a_station_on_the_same_port() {
    let mut b = bridge();
    let (x, y) = (mac(0x50), mac(0x51));
    recv(&mut b, 0, UPLINK, &sized(BROADCAST, x, 60));
    assert_eq!(
        dropped(&mut b, 0, UPLINK, &sized(x, y, 60)),
        DropReason::Local
    );
    assert_eq!(b.port_counters(UPLINK).unwrap().drop_local, 1);
    // A VIF sending to its own MAC.
    assert_eq!(
        dropped(&mut b, 0, VIF_A, &sized(mac(10), mac(10), 60)),
        DropReason::Local
    );
}

#[test]
fn a_station_moves_between_ports() {
    let mut b = bridge();
    let x = mac(0x50);
    recv(&mut b, 0, UPLINK, &sized(BROADCAST, x, 60));
    recv(&mut b, S, VIF_B, &sized(BROADCAST, x, 60));
    assert_eq!(b.lookup(&x, S), Some(VIF_B));
    assert_eq!(b.counters().moved, 1);
    assert_eq!(b.port_learned(UPLINK), Some(0));
    assert_eq!(b.port_learned(VIF_B), Some(1));
}

// ---- ageing -----------------------------------------------------------------

#[test]
fn entries_age_out_after_300_s_by_default() {
    let mut b = bridge();
    let x = mac(0x50);
    recv(&mut b, 5 * S, UPLINK, &sized(BROADCAST, x, 60));
    assert_eq!(
        recv(&mut b, 304 * S, VIF_A, &sized(x, mac(10), 60)),
        [UPLINK]
    );
    // Seen at 5 s: dead at 305 s, so flooded.
    assert_eq!(b.lookup(&x, 305 * S), None);
    assert_eq!(
        recv(&mut b, 305 * S, VIF_A, &sized(x, mac(10), 60)),
        [UPLINK, MGMT, VIF_B]
    );
    assert_eq!(b.table().len(), 1, "dead but not yet swept");
    assert_eq!(b.age(305 * S), 1);
    assert_eq!(b.table().len(), 0);
    assert_eq!(b.counters().aged_out, 1);
    assert_eq!(b.port_learned(UPLINK), Some(0));
}

#[test]
fn traffic_refreshes_and_ageing_is_configurable() {
    let config = Config {
        ageing_ns: 10 * S,
        ..Config::default()
    };
    let mut b = bridge_with(config, VifConfig::unlocked(mac(10)));
    let x = mac(0x50);
    for t in [0, 9, 18, 27] {
        recv(&mut b, t * S, UPLINK, &sized(BROADCAST, x, 60));
        assert_eq!(b.age(t * S), 0);
    }
    assert_eq!(b.lookup(&x, 36 * S), Some(UPLINK));
    assert_eq!(b.lookup(&x, 37 * S), None);
    // A clock that steps back keeps entries alive rather than killing them.
    assert_eq!(b.lookup(&x, 0), Some(UPLINK));
    assert_eq!(b.age(37 * S), 1);
}

// ---- table bounds -----------------------------------------------------------

#[test]
fn a_full_table_refuses_to_learn_counts_and_still_forwards() {
    let config = Config {
        table_bytes: 2 * ENTRY_BYTES + ENTRY_BYTES - 1,
        ageing_ns: 10 * S,
        ..Config::default()
    };
    let mut b = bridge_with(config, VifConfig::unlocked(mac(10)));
    assert_eq!(b.table().capacity(), 2);
    recv(&mut b, 0, UPLINK, &sized(BROADCAST, mac(0x50), 60));
    recv(&mut b, S, UPLINK, &sized(BROADCAST, mac(0x51), 60));
    // Full: not learned, still flooded out.
    assert_eq!(
        recv(&mut b, 2 * S, UPLINK, &sized(BROADCAST, mac(0x52), 60)),
        [MGMT, VIF_A, VIF_B]
    );
    assert_eq!(b.lookup(&mac(0x52), 2 * S), None);
    assert_eq!(b.port_counters(UPLINK).unwrap().learn_table_full, 1);
    // VIFs' own MACs are not in the table: still reachable when it is full.
    assert_eq!(
        recv(&mut b, 2 * S, UPLINK, &sized(mac(10), mac(0x50), 60)),
        [VIF_A]
    );
    assert_eq!(
        recv(&mut b, 2 * S, UPLINK, &sized(mac(1), mac(0x50), 60)),
        [MGMT]
    );
    // Once an entry is dead, a new station takes its place.
    recv(&mut b, 11 * S, UPLINK, &sized(BROADCAST, mac(0x52), 60));
    assert_eq!(b.lookup(&mac(0x52), 11 * S), Some(UPLINK));
    assert_eq!(b.table().len(), 2);
    assert_eq!(b.counters().aged_out, 1);
}

#[test]
fn a_vif_teaches_at_most_its_quota() {
    let mut b = bridge();
    for n in 0..PortConfig::DEFAULT_VIF_LEARNED + 5 {
        let src = [0x02, 1, 0, 0, (n >> 8) as u8, n as u8];
        recv(&mut b, 0, VIF_B, &sized(BROADCAST, src, 60));
    }
    assert_eq!(b.port_learned(VIF_B), Some(PortConfig::DEFAULT_VIF_LEARNED));
    assert_eq!(b.port_counters(VIF_B).unwrap().learn_port_quota, 5);
    // The management port learns nothing but owns its MAC.
    assert_eq!(b.port_learned(MGMT), Some(0));
}

#[test]
fn the_uplink_never_teaches_a_mac_a_vif_owns() {
    let mut b = bridge();
    // A station on the LAN claims VIF A's MAC.
    recv(&mut b, 0, UPLINK, &sized(BROADCAST, mac(10), 60));
    assert_eq!(b.port_counters(UPLINK).unwrap().learn_owned_elsewhere, 1);
    assert_eq!(b.lookup(&mac(10), 0), Some(VIF_A));
    assert_eq!(
        recv(&mut b, 0, VIF_B, &sized(mac(10), mac(11), 60)),
        [VIF_A]
    );
    // Nor netdom's.
    recv(&mut b, 0, UPLINK, &sized(BROADCAST, mac(1), 60));
    assert_eq!(b.lookup(&mac(1), 0), Some(MGMT));
}

#[test]
fn a_vif_plugged_after_its_mac_was_learned_takes_it_back() {
    let mut b = bridge();
    let c = PortId(12);
    recv(&mut b, 0, UPLINK, &sized(BROADCAST, mac(12), 60));
    assert_eq!(b.lookup(&mac(12), 0), Some(UPLINK));
    assert_eq!(b.port_learned(UPLINK), Some(1));
    b.add_port(c, PortConfig::vif(VifConfig::unlocked(mac(12))))
        .unwrap();
    assert_eq!(b.lookup(&mac(12), 0), Some(c));
    assert_eq!(b.port_learned(UPLINK), Some(0));
    assert_eq!(b.table().len(), 0);
}

// ---- locking modes ----------------------------------------------------------

#[test]
fn unlocked_and_network_default_forward_anything_and_learn_it() {
    for mode in [Locking::Unlocked, Locking::NetworkDefault] {
        let mut vif = VifConfig::unlocked(mac(10));
        vif.locking = mode;
        let mut b = bridge_with(Config::default(), vif);
        let other = mac(0x60);
        let spoof_ip = ipv4(Ipv4Addr::new(192, 168, 9, 9), A_IP, UDP, &udp(1, 2, &[]));
        recv(
            &mut b,
            0,
            VIF_A,
            &eth(BROADCAST, other, ETH_IPV4, &spoof_ip),
        );
        recv(&mut b, 0, VIF_A, &sized(BROADCAST, mac(10), 60));
        recv(&mut b, 0, VIF_A, &eth(BROADCAST, mac(10), 0x8100, &[0; 50]));
        assert_eq!(b.lookup(&other, 0), Some(VIF_A));
        assert_eq!(b.port_counters(VIF_A).unwrap().drop_spoofed, 0);
    }
}

#[test]
fn locked_source_mac_must_be_the_vifs() {
    let mut b = locked();
    let frame = eth(
        BROADCAST,
        mac(0x66),
        ETH_IPV4,
        &ipv4(A_IP, Ipv4Addr::BROADCAST, UDP, &udp(1, 2, &[])),
    );
    assert_eq!(
        dropped(&mut b, 0, VIF_A, &frame),
        DropReason::Spoofed(Spoof::SourceMac)
    );
    // Never learned.
    assert_eq!(b.lookup(&mac(0x66), 0), None);
    assert_eq!(b.table().len(), 0);
    assert_eq!(b.port_counters(VIF_A).unwrap().drop_spoofed, 1);
}

#[test]
fn locked_ipv4_source_must_be_allowed() {
    let mut b = locked();
    let ok = eth(
        BROADCAST,
        mac(10),
        ETH_IPV4,
        &ipv4(A_IP, Ipv4Addr::BROADCAST, UDP, &udp(1, 2, &[])),
    );
    recv(&mut b, 0, VIF_A, &ok);
    let bad = eth(
        BROADCAST,
        mac(10),
        ETH_IPV4,
        &ipv4(
            Ipv4Addr::new(10, 0, 0, 11),
            Ipv4Addr::BROADCAST,
            UDP,
            &udp(1, 2, &[]),
        ),
    );
    assert_eq!(
        dropped(&mut b, 0, VIF_A, &bad),
        DropReason::Spoofed(Spoof::Ipv4Source)
    );
    // A header that lies about its length is malformed, not passed.
    let mut short = ipv4(A_IP, Ipv4Addr::BROADCAST, UDP, &udp(1, 2, &[]));
    short[2..4].copy_from_slice(&1000u16.to_be_bytes());
    assert_eq!(
        dropped(&mut b, 0, VIF_A, &eth(BROADCAST, mac(10), ETH_IPV4, &short)),
        DropReason::Spoofed(Spoof::Malformed)
    );
    assert_eq!(
        dropped(
            &mut b,
            0,
            VIF_A,
            &eth(BROADCAST, mac(10), ETH_IPV4, &[0x45, 0, 0])
        ),
        DropReason::Spoofed(Spoof::Malformed)
    );
}

#[test]
fn locked_dhcp_from_the_unspecified_address_is_allowed_and_nothing_else() {
    let mut b = locked();
    assert_eq!(
        recv(&mut b, 0, VIF_A, &dhcp_discover(mac(10))),
        [UPLINK, MGMT, VIF_B]
    );
    // With another MAC it is still a spoof.
    assert_eq!(
        dropped(&mut b, 0, VIF_A, &dhcp_discover(mac(0x66))),
        DropReason::Spoofed(Spoof::SourceMac)
    );
    // UDP from 0.0.0.0 to another port, or from port 67, is not DHCP.
    for (sport, dport) in [(68, 53), (67, 67), (1000, 67)] {
        let ip = ipv4(
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            UDP,
            &udp(sport, dport, &[0; 8]),
        );
        assert_eq!(
            dropped(&mut b, 0, VIF_A, &eth(BROADCAST, mac(10), ETH_IPV4, &ip)),
            DropReason::Spoofed(Spoof::Ipv4Source),
            "{sport} -> {dport}"
        );
    }
    // TCP from 0.0.0.0 neither.
    let ip = ipv4(
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::BROADCAST,
        6,
        &udp(68, 67, &[0; 20]),
    );
    assert_eq!(
        dropped(&mut b, 0, VIF_A, &eth(BROADCAST, mac(10), ETH_IPV4, &ip)),
        DropReason::Spoofed(Spoof::Ipv4Source)
    );
    // A fragment from 0.0.0.0 carries no UDP header to trust.
    let mut ip = ipv4(
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::BROADCAST,
        UDP,
        &udp(68, 67, &[0; 8]),
    );
    ip[6] = 0x20; // more fragments
    assert_eq!(
        dropped(&mut b, 0, VIF_A, &eth(BROADCAST, mac(10), ETH_IPV4, &ip)),
        DropReason::Spoofed(Spoof::Ipv4Source)
    );
}

#[test]
fn locked_arp_sender_must_be_the_vifs_mac_and_an_allowed_address() {
    let mut b = locked();
    let gw = Ipv4Addr::new(10, 0, 0, 1);
    recv(
        &mut b,
        0,
        VIF_A,
        &eth(BROADCAST, mac(10), ETH_ARP, &arp(mac(10), A_IP, gw)),
    );
    // An ARP probe (RFC 5227) from 0.0.0.0.
    recv(
        &mut b,
        0,
        VIF_A,
        &eth(
            BROADCAST,
            mac(10),
            ETH_ARP,
            &arp(mac(10), Ipv4Addr::UNSPECIFIED, A_IP),
        ),
    );
    assert_eq!(
        dropped(
            &mut b,
            0,
            VIF_A,
            &eth(BROADCAST, mac(10), ETH_ARP, &arp(mac(10), gw, gw))
        ),
        DropReason::Spoofed(Spoof::ArpSenderIp)
    );
    assert_eq!(
        dropped(
            &mut b,
            0,
            VIF_A,
            &eth(BROADCAST, mac(10), ETH_ARP, &arp(mac(0x66), A_IP, gw))
        ),
        DropReason::Spoofed(Spoof::ArpSenderMac)
    );
    let mut not_ipv4 = arp(mac(10), A_IP, gw);
    not_ipv4[2..4].copy_from_slice(&0x86ddu16.to_be_bytes());
    assert_eq!(
        dropped(
            &mut b,
            0,
            VIF_A,
            &eth(BROADCAST, mac(10), ETH_ARP, &not_ipv4)
        ),
        DropReason::Spoofed(Spoof::Malformed)
    );
    assert_eq!(
        dropped(
            &mut b,
            0,
            VIF_A,
            &eth(BROADCAST, mac(10), ETH_ARP, &[0, 1, 8])
        ),
        DropReason::Spoofed(Spoof::Malformed)
    );
    assert_eq!(b.port_counters(VIF_A).unwrap().drop_spoofed, 4);
}

#[test]
fn locked_ipv6_source_must_be_allowed_or_dad() {
    let mut b = locked();
    let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    let m6 = [0x33, 0x33, 0, 0, 0, 1];
    recv(
        &mut b,
        0,
        VIF_A,
        &eth(
            m6,
            mac(10),
            ETH_IPV6,
            &ipv6(A_IP6, all_nodes, ICMPV6, &[0; 8]),
        ),
    );
    // Duplicate address detection: ICMPv6 from ::.
    recv(
        &mut b,
        0,
        VIF_A,
        &eth(
            m6,
            mac(10),
            ETH_IPV6,
            &ipv6(Ipv6Addr::UNSPECIFIED, all_nodes, ICMPV6, &[0; 24]),
        ),
    );
    // UDP from :: is not DAD.
    assert_eq!(
        dropped(
            &mut b,
            0,
            VIF_A,
            &eth(
                m6,
                mac(10),
                ETH_IPV6,
                &ipv6(Ipv6Addr::UNSPECIFIED, all_nodes, UDP, &[0; 8])
            )
        ),
        DropReason::Spoofed(Spoof::Ipv6Source)
    );
    let other = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 99);
    assert_eq!(
        dropped(
            &mut b,
            0,
            VIF_A,
            &eth(m6, mac(10), ETH_IPV6, &ipv6(other, all_nodes, UDP, &[0; 8]))
        ),
        DropReason::Spoofed(Spoof::Ipv6Source)
    );
    // Link-local is an address like any other: only if listed.
    let ll = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 10);
    assert_eq!(
        dropped(
            &mut b,
            0,
            VIF_A,
            &eth(m6, mac(10), ETH_IPV6, &ipv6(ll, all_nodes, ICMPV6, &[0; 8]))
        ),
        DropReason::Spoofed(Spoof::Ipv6Source)
    );
    assert_eq!(
        dropped(&mut b, 0, VIF_A, &eth(m6, mac(10), ETH_IPV6, &[0x60; 10])),
        DropReason::Spoofed(Spoof::Malformed)
    );
}

#[test]
fn locked_refuses_other_ethertypes_and_vlan_tags() {
    let mut b = locked();
    for ethertype in [0x8100, 0x88a8, 0x88b5, 0x0842, 0x8035] {
        assert_eq!(
            dropped(
                &mut b,
                0,
                VIF_A,
                &eth(BROADCAST, mac(10), ethertype, &[0; 46])
            ),
            DropReason::Spoofed(Spoof::Protocol),
            "{ethertype:#x}"
        );
    }
}

#[test]
fn locked_with_no_addresses_sends_no_ip_but_may_ask_for_a_lease() {
    let mut b = bridge_with(Config::default(), VifConfig::locked(mac(10), &[], &[]));
    recv(&mut b, 0, VIF_A, &dhcp_discover(mac(10)));
    let ip = ipv4(A_IP, Ipv4Addr::BROADCAST, UDP, &udp(1, 2, &[]));
    assert_eq!(
        dropped(&mut b, 0, VIF_A, &eth(BROADCAST, mac(10), ETH_IPV4, &ip)),
        DropReason::Spoofed(Spoof::Ipv4Source)
    );
}

#[test]
fn locked_traffic_to_the_vif_is_not_filtered() {
    // Locking is about what a guest sends; what it receives is the
    // bridge's ordinary forwarding.
    let mut b = locked();
    let ip = ipv4(Ipv4Addr::new(8, 8, 8, 8), A_IP, UDP, &udp(53, 1000, &[]));
    assert_eq!(
        recv(&mut b, 0, UPLINK, &eth(mac(10), mac(0x50), ETH_IPV4, &ip)),
        [VIF_A]
    );
}

#[test]
fn disabled_drops_everything_from_and_to_the_vif() {
    let mut vif = VifConfig::unlocked(mac(10));
    vif.locking = Locking::Disabled;
    let mut b = bridge_with(Config::default(), vif);
    assert_eq!(
        dropped(&mut b, 0, VIF_A, &dhcp_discover(mac(10))),
        DropReason::Disabled
    );
    assert_eq!(
        dropped(&mut b, 0, VIF_A, &sized(mac(11), mac(10), 60)),
        DropReason::Disabled
    );
    assert_eq!(b.port_counters(VIF_A).unwrap().drop_disabled, 2);
    // Not flooded to, not sent to.
    assert_eq!(
        recv(&mut b, 0, UPLINK, &sized(BROADCAST, mac(0x50), 60)),
        [MGMT, VIF_B]
    );
    assert_eq!(
        dropped(&mut b, 0, UPLINK, &sized(mac(10), mac(0x50), 60)),
        DropReason::NoEgress
    );
    assert_eq!(b.port_counters(VIF_A).unwrap().tx_frames, 0);
}

#[test]
fn update_vif_changes_rules_live_and_a_locked_vif_forgets_what_it_taught() {
    let mut b = bridge();
    recv(&mut b, 0, VIF_A, &sized(BROADCAST, mac(0x60), 60));
    assert_eq!(b.lookup(&mac(0x60), 0), Some(VIF_A));
    b.update_vif(VIF_A, VifConfig::locked(mac(10), &[A_IP], &[]))
        .unwrap();
    assert_eq!(b.lookup(&mac(0x60), 0), None);
    assert_eq!(b.port_learned(VIF_A), Some(0));
    assert_eq!(
        dropped(&mut b, 0, VIF_A, &sized(BROADCAST, mac(0x60), 60)),
        DropReason::Spoofed(Spoof::SourceMac)
    );
    assert_eq!(
        b.update_vif(VIF_A, VifConfig::unlocked(mac(99))),
        Err(PortError::MacChanged)
    );
    assert_eq!(
        b.update_vif(UPLINK, VifConfig::unlocked(mac(99))),
        Err(PortError::NotAVif)
    );
    assert_eq!(
        b.update_vif(PortId(77), VifConfig::unlocked(mac(99))),
        Err(PortError::NoSuchPort)
    );
    let many: Vec<Ipv4Addr> = (0..40).map(|n| Ipv4Addr::new(10, 0, 1, n)).collect();
    assert_eq!(
        b.update_vif(VIF_A, VifConfig::locked(mac(10), &many, &[])),
        Err(PortError::TooManyAddresses)
    );
    b.update_vif(VIF_A, VifConfig::unlocked(mac(10))).unwrap();
    recv(&mut b, 0, VIF_A, &sized(BROADCAST, mac(0x60), 60));
}

// ---- bounds -----------------------------------------------------------------

#[test]
fn runts_and_oversize_frames_are_dropped_with_a_reason() {
    let mut b = bridge();
    for len in [0, 1, 13] {
        assert_eq!(
            dropped(&mut b, 0, UPLINK, &vec![0xff; len]),
            DropReason::Runt
        );
    }
    // 14 bytes is a header with no payload: forwarded.
    recv(&mut b, 0, UPLINK, &sized(BROADCAST, mac(0x50), 14));
    recv(&mut b, 0, UPLINK, &sized(BROADCAST, mac(0x50), 1514));
    assert_eq!(
        dropped(&mut b, 0, UPLINK, &sized(BROADCAST, mac(0x50), 1515)),
        DropReason::Oversize
    );
    // A VLAN tag gets its 4 bytes on top.
    recv(
        &mut b,
        0,
        UPLINK,
        &eth(BROADCAST, mac(0x50), 0x8100, &[0; 1504]),
    );
    assert_eq!(
        dropped(
            &mut b,
            0,
            UPLINK,
            &eth(BROADCAST, mac(0x50), 0x8100, &[0; 1505])
        ),
        DropReason::Oversize
    );
    let c = b.port_counters(UPLINK).unwrap();
    assert_eq!((c.drop_runt, c.drop_oversize), (3, 2));
    assert_eq!(c.rx_frames, 8);
}

#[test]
fn jumbo_ports_and_the_egress_mtu() {
    let mut b = Bridge::new(Config::default());
    b.add_port(UPLINK, PortConfig::uplink().with_mtu(9000))
        .unwrap();
    b.add_port(
        VIF_A,
        PortConfig::vif(VifConfig::unlocked(mac(10))).with_mtu(9000),
    )
    .unwrap();
    b.add_port(VIF_B, PortConfig::vif(VifConfig::unlocked(mac(11))))
        .unwrap();
    // A jumbo broadcast reaches only the jumbo port.
    assert_eq!(
        recv(&mut b, 0, UPLINK, &sized(BROADCAST, mac(0x50), 9014)),
        [VIF_A]
    );
    assert_eq!(b.port_counters(VIF_B).unwrap().tx_drop_oversize, 1);
    // Unicast to a port too small for it: dropped.
    assert_eq!(
        dropped(&mut b, 0, UPLINK, &sized(mac(11), mac(0x50), 2000)),
        DropReason::NoEgress
    );
    assert_eq!(b.port_counters(VIF_B).unwrap().tx_drop_oversize, 2);
    assert_eq!(
        dropped(&mut b, 0, UPLINK, &sized(BROADCAST, mac(0x50), 9015)),
        DropReason::Oversize
    );
    assert_eq!(
        b.add_port(PortId(5), PortConfig::uplink().with_mtu(9217)),
        Err(PortError::BadMtu)
    );
    assert_eq!(
        b.add_port(PortId(5), PortConfig::uplink().with_mtu(67)),
        Err(PortError::BadMtu)
    );
}

// ---- counters ---------------------------------------------------------------

#[test]
fn counters_count_frames_and_bytes_both_ways() {
    let mut b = bridge();
    recv(&mut b, 0, VIF_A, &sized(BROADCAST, mac(10), 100));
    recv(&mut b, 0, UPLINK, &sized(mac(10), mac(0x50), 200));
    recv(&mut b, 0, VIF_A, &sized(mac(0x50), mac(10), 300));
    let a = *b.port_counters(VIF_A).unwrap();
    assert_eq!(
        (a.rx_frames, a.rx_bytes, a.tx_frames, a.tx_bytes),
        (2, 400, 1, 200)
    );
    let u = *b.port_counters(UPLINK).unwrap();
    assert_eq!(
        (u.rx_frames, u.rx_bytes, u.tx_frames, u.tx_bytes),
        (1, 200, 2, 400)
    );
    let m = *b.port_counters(MGMT).unwrap();
    assert_eq!((m.rx_frames, m.tx_frames, m.tx_bytes), (0, 1, 100));
    // A frame for a port that is not there is counted bridge-wide.
    assert_eq!(
        dropped(&mut b, 0, PortId(99), &sized(BROADCAST, mac(10), 60)),
        DropReason::NoSuchPort
    );
    assert_eq!(b.counters().no_such_port, 1);
}

#[test]
fn a_bridge_of_one_port_has_nowhere_to_flood() {
    let mut b = Bridge::new(Config::default());
    b.add_port(UPLINK, PortConfig::uplink()).unwrap();
    assert_eq!(
        dropped(&mut b, 0, UPLINK, &sized(BROADCAST, mac(0x50), 60)),
        DropReason::NoEgress
    );
    assert_eq!(b.port_counters(UPLINK).unwrap().drop_no_egress, 1);
}

// ---- ports ------------------------------------------------------------------

#[test]
fn removing_a_port_forgets_its_macs() {
    let mut b = bridge();
    recv(&mut b, 0, VIF_B, &sized(BROADCAST, mac(0x60), 60));
    recv(&mut b, 0, UPLINK, &sized(BROADCAST, mac(0x50), 60));
    let last = b.remove_port(VIF_B).unwrap();
    assert_eq!(last.rx_frames, 1);
    assert_eq!(b.lookup(&mac(0x60), 0), None);
    assert_eq!(b.lookup(&mac(11), 0), None);
    assert_eq!(b.lookup(&mac(0x50), 0), Some(UPLINK));
    assert_eq!(b.table().len(), 1);
    // Frames to its MACs now flood to who is left.
    assert_eq!(
        recv(&mut b, 0, UPLINK, &sized(mac(11), mac(0x50), 60)),
        [MGMT, VIF_A]
    );
    assert_eq!(
        dropped(&mut b, 0, VIF_B, &sized(BROADCAST, mac(11), 60)),
        DropReason::NoSuchPort
    );
    assert_eq!(b.remove_port(VIF_B), Err(PortError::NoSuchPort));
    // Plugged again with the same MAC: counters start afresh.
    b.add_port(VIF_B, PortConfig::vif(VifConfig::unlocked(mac(11))))
        .unwrap();
    assert_eq!(b.port_counters(VIF_B).unwrap().rx_frames, 0);
    assert_eq!(b.lookup(&mac(11), 0), Some(VIF_B));
}

#[test]
fn adding_ports_is_checked() {
    let mut b = bridge();
    assert_eq!(
        b.add_port(VIF_A, PortConfig::uplink()),
        Err(PortError::Exists)
    );
    assert_eq!(
        b.add_port(PortId(20), PortConfig::vif(VifConfig::unlocked(mac(10)))),
        Err(PortError::MacInUse)
    );
    assert_eq!(
        b.add_port(PortId(20), PortConfig::management(mac(11))),
        Err(PortError::MacInUse)
    );
    for bad in [[0; 6], BROADCAST, [0x01, 0, 0x5e, 0, 0, 1]] {
        assert_eq!(
            b.add_port(PortId(20), PortConfig::vif(VifConfig::unlocked(bad))),
            Err(PortError::BadMac)
        );
    }
    let many: Vec<Ipv6Addr> = (0..33)
        .map(|n| Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, n))
        .collect();
    assert_eq!(
        b.add_port(
            PortId(20),
            PortConfig::vif(VifConfig::locked(mac(20), &[], &many))
        ),
        Err(PortError::TooManyAddresses)
    );
    let mut small = Bridge::new(Config {
        max_ports: 2,
        ..Config::default()
    });
    small.add_port(PortId(0), PortConfig::uplink()).unwrap();
    small
        .add_port(PortId(1), PortConfig::management(mac(1)))
        .unwrap();
    assert_eq!(
        small.add_port(PortId(2), PortConfig::uplink()),
        Err(PortError::TooManyPorts)
    );
    assert_eq!(small.ports().collect::<Vec<_>>(), [PortId(0), PortId(1)]);
    assert_eq!(
        small.port_config(PortId(1)).unwrap().own_mac(),
        Some(mac(1))
    );
}

#[test]
fn egress_lists_exactly_the_flood() {
    let b = bridge();
    let e = Egress::Flood {
        ingress: VIF_B,
        len: 60,
        tagged: false,
    };
    assert_eq!(b.egress(&e).collect::<Vec<_>>(), [UPLINK, MGMT, VIF_A]);
    assert_eq!(b.egress(&Egress::Port(MGMT)).collect::<Vec<_>>(), [MGMT]);
}

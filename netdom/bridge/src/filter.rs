//! Anti-spoofing: what a `locked` VIF may send, and why a frame is dropped.
//!
//! xapi's rules for `locking_mode = locked` (its `setup-vif-rules` script:
//! OpenFlow rules on OVS, ebtables/arptables/iptables on a Linux bridge):
//! the Ethernet source is the VIF's MAC; ARP's sender hardware address is
//! the VIF's MAC and its sender IP is in `ipv4_allowed`; an IPv4 source is
//! in `ipv4_allowed`, an IPv6 source in `ipv6_allowed`; everything else
//! (other ethertypes, VLAN tags, malformed headers) is dropped. So that a
//! locked guest can get a lease and check it, three exceptions: DHCP
//! client traffic (UDP 68 → 67) from 0.0.0.0, ARP probes (sender IP
//! 0.0.0.0, RFC 5227 §2.1.1), and ICMPv6 (or hop-by-hop, for MLD) from
//! `::`, the duplicate address detection of RFC 4862 §5.4.
//!
//! Headers are read with `smoltcp::wire`: `new_checked` views never panic
//! on short or inconsistent input, it is refused as [`Spoof::Malformed`].

use smoltcp::wire::{
    ArpPacket, ArpRepr, EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet, Ipv6Packet,
    UdpPacket,
};

use crate::port::VifConfig;

/// DHCP's client port (RFC 2131 §4.1).
pub const DHCP_CLIENT_PORT: u16 = 68;
/// DHCP's server port.
pub const DHCP_SERVER_PORT: u16 = 67;

/// Why a locked VIF's frame was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spoof {
    /// The Ethernet source is not the VIF's MAC.
    SourceMac,
    /// ARP's sender hardware address is not the VIF's MAC.
    ArpSenderMac,
    /// ARP's sender IP is not in `ipv4_allowed` (nor 0.0.0.0).
    ArpSenderIp,
    /// The IPv4 source is not in `ipv4_allowed` (nor DHCP from 0.0.0.0).
    Ipv4Source,
    /// The IPv6 source is not in `ipv6_allowed` (nor DAD from ::).
    Ipv6Source,
    /// Neither ARP, IPv4 nor IPv6 (VLAN-tagged frames included).
    Protocol,
    /// An ARP, IPv4 or IPv6 header too short or inconsistent to check.
    Malformed,
}

/// Why a frame was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The ingress port is not on the bridge.
    NoSuchPort,
    /// Shorter than an Ethernet header.
    Runt,
    /// Longer than the ingress port's MTU + header.
    Oversize,
    /// The ingress VIF is `disabled`.
    Disabled,
    /// The ingress VIF is `locked` and the frame breaks its rules.
    Spoofed(Spoof),
    /// A group or all-zero source MAC (Linux drops these too).
    BadSource,
    /// The destination is on the ingress port itself (no hairpin).
    Local,
    /// Nowhere to send it: the destination port is a disabled VIF or too
    /// small for the frame, or (flooding) no other port can take it.
    NoEgress,
}

/// Checks a frame from a `locked` VIF. `frame` is at least an Ethernet
/// header long.
pub fn check_locked(vif: &VifConfig, frame: &[u8]) -> Result<(), Spoof> {
    let eth = EthernetFrame::new_checked(frame).map_err(|_| Spoof::Malformed)?;
    if eth.src_addr().0 != vif.mac {
        return Err(Spoof::SourceMac);
    }
    match eth.ethertype() {
        EthernetProtocol::Arp => check_arp(vif, eth.payload()),
        EthernetProtocol::Ipv4 => check_ipv4(vif, eth.payload()),
        EthernetProtocol::Ipv6 => check_ipv6(vif, eth.payload()),
        EthernetProtocol::Unknown(_) => Err(Spoof::Protocol),
    }
}

fn check_arp(vif: &VifConfig, payload: &[u8]) -> Result<(), Spoof> {
    let packet = ArpPacket::new_checked(payload).map_err(|_| Spoof::Malformed)?;
    // Only Ethernet/IPv4 ARP parses; any other kind is refused.
    let repr = ArpRepr::parse(&packet).map_err(|_| Spoof::Malformed)?;
    let ArpRepr::EthernetIpv4 {
        source_hardware_addr,
        source_protocol_addr,
        ..
    } = repr
    else {
        return Err(Spoof::Malformed);
    };
    if source_hardware_addr.0 != vif.mac {
        return Err(Spoof::ArpSenderMac);
    }
    if source_protocol_addr.is_unspecified() || vif.ipv4_allowed.contains(&source_protocol_addr) {
        Ok(())
    } else {
        Err(Spoof::ArpSenderIp)
    }
}

fn check_ipv4(vif: &VifConfig, payload: &[u8]) -> Result<(), Spoof> {
    let packet = Ipv4Packet::new_checked(payload).map_err(|_| Spoof::Malformed)?;
    let src = packet.src_addr();
    if vif.ipv4_allowed.contains(&src) {
        return Ok(());
    }
    if src.is_unspecified() && is_dhcp_client(&packet) {
        return Ok(());
    }
    Err(Spoof::Ipv4Source)
}

/// A whole (unfragmented) UDP datagram from the DHCP client port to the
/// server port.
fn is_dhcp_client(packet: &Ipv4Packet<&[u8]>) -> bool {
    if packet.next_header() != IpProtocol::Udp || packet.more_frags() || packet.frag_offset() != 0 {
        return false;
    }
    UdpPacket::new_checked(packet.payload())
        .is_ok_and(|udp| udp.src_port() == DHCP_CLIENT_PORT && udp.dst_port() == DHCP_SERVER_PORT)
}

fn check_ipv6(vif: &VifConfig, payload: &[u8]) -> Result<(), Spoof> {
    let packet = Ipv6Packet::new_checked(payload).map_err(|_| Spoof::Malformed)?;
    let src = packet.src_addr();
    if vif.ipv6_allowed.contains(&src) {
        return Ok(());
    }
    let dad = matches!(
        packet.next_header(),
        IpProtocol::Icmpv6 | IpProtocol::HopByHop
    );
    if src.is_unspecified() && dad {
        return Ok(());
    }
    Err(Spoof::Ipv6Source)
}

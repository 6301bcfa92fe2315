//! Completing a guest's blank transport checksum.
//!
//! Linux netfront always offloads IPv4 TCP/UDP checksums (netif.h: a
//! backend must accept `NETTXF_csum_blank`): the packet leaves the guest
//! with its checksum field holding at most the pseudo-header's sum. Before
//! such a packet goes to the NIC, to netdom's own stack or to a frontend
//! that refuses blank checksums, netdom writes the real checksum, computed
//! from scratch (pseudo header + segment) so whatever the guest left in
//! the field does not matter: Linux netback's `skb_checksum_setup` with
//! `recalculate_partial_csum`, which also distrusts the guest.
//!
//! IPv4 and IPv6 (no extension headers), TCP and UDP, optionally behind one
//! 802.1Q tag. Anything else is left unchanged and reported, so the caller
//! can count it; a frame whose headers lie about its lengths is refused,
//! never read past its end.

use smoltcp::wire::IpProtocol;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
/// Offset of the checksum within a TCP header.
const TCP_CSUM: usize = 16;
/// Offset of the checksum within a UDP header.
const UDP_CSUM: usize = 6;

/// Why a checksum was not completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CsumError {
    /// Not IPv4/IPv6 carrying TCP or UDP (with no IPv6 extension header).
    Unsupported,
    /// A header is cut short or its lengths disagree with the frame.
    Malformed,
}

/// Writes the TCP or UDP checksum of the Ethernet `frame` in place.
pub fn complete(frame: &mut [u8]) -> Result<(), CsumError> {
    let mut l3 = 14;
    let mut ethertype = be16(frame, 12).ok_or(CsumError::Malformed)?;
    if ethertype == ETHERTYPE_VLAN {
        ethertype = be16(frame, 16).ok_or(CsumError::Malformed)?;
        l3 = 18;
    }
    // The pseudo header's sum, where the segment starts, and its length.
    let (pseudo, l4, len, proto) = match ethertype {
        ETHERTYPE_IPV4 => {
            let ihl = usize::from(*frame.get(l3).ok_or(CsumError::Malformed)? & 0xf) * 4;
            let total = usize::from(be16(frame, l3 + 2).ok_or(CsumError::Malformed)?);
            if ihl < 20 || total < ihl || l3 + total > frame.len() {
                return Err(CsumError::Malformed);
            }
            let proto = frame[l3 + 9];
            let len = total - ihl;
            let mut sum = add_bytes(0, &frame[l3 + 12..l3 + 20]);
            sum += u32::from(proto) + len as u32;
            (sum, l3 + ihl, len, proto)
        }
        ETHERTYPE_IPV6 => {
            let payload = usize::from(be16(frame, l3 + 4).ok_or(CsumError::Malformed)?);
            if l3 + 40 + payload > frame.len() {
                return Err(CsumError::Malformed);
            }
            let proto = frame[l3 + 6];
            let mut sum = add_bytes(0, &frame[l3 + 8..l3 + 40]);
            sum += u32::from(proto) + payload as u32;
            (sum, l3 + 40, payload, proto)
        }
        _ => return Err(CsumError::Unsupported),
    };
    let field = match IpProtocol::from(proto) {
        IpProtocol::Tcp if len >= 20 => l4 + TCP_CSUM,
        IpProtocol::Udp if len >= 8 => l4 + UDP_CSUM,
        IpProtocol::Tcp | IpProtocol::Udp => return Err(CsumError::Malformed),
        _ => return Err(CsumError::Unsupported),
    };
    frame[field..field + 2].copy_from_slice(&[0, 0]);
    let mut csum = !fold(add_bytes(pseudo, &frame[l4..l4 + len]));
    if csum == 0 && proto == u8::from(IpProtocol::Udp) {
        // RFC 768: a computed zero is sent as all ones (zero means none).
        csum = 0xffff;
    }
    frame[field..field + 2].copy_from_slice(&csum.to_be_bytes());
    Ok(())
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Adds `bytes` as big-endian 16-bit words (a trailing odd byte padded
/// with zero) to `sum`, folding as it goes so it never overflows.
fn add_bytes(mut sum: u32, bytes: &[u8]) -> u32 {
    let mut words = bytes.chunks_exact(2);
    for w in &mut words {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
        if sum > 0xffff_0000 {
            sum = fold(sum).into();
        }
    }
    if let [last] = words.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{
        EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpAddress, Ipv4Address,
        Ipv4Packet, Ipv4Repr, TcpPacket, TcpRepr, TcpSeqNumber, UdpPacket, UdpRepr,
    };

    const SRC: Ipv4Address = Ipv4Address::new(10, 0, 2, 15);
    const DST: Ipv4Address = Ipv4Address::new(10, 0, 2, 16);

    /// An Ethernet + IPv4 frame around `l4` bytes of protocol `proto`,
    /// whose transport header `emit` fills (with a correct checksum).
    fn ipv4_frame(proto: IpProtocol, l4: usize, emit: impl FnOnce(&mut [u8])) -> Vec<u8> {
        let mut frame = vec![0u8; 14 + 20 + l4];
        let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
        EthernetRepr {
            src_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            dst_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
            ethertype: EthernetProtocol::Ipv4,
        }
        .emit(&mut eth);
        let mut ip = Ipv4Packet::new_unchecked(&mut frame[14..]);
        Ipv4Repr {
            src_addr: SRC,
            dst_addr: DST,
            next_header: proto,
            payload_len: l4,
            hop_limit: 64,
        }
        .emit(&mut ip, &ChecksumCapabilities::default());
        emit(&mut frame[34..]);
        frame
    }

    fn tcp(payload: &[u8]) -> Vec<u8> {
        let repr = TcpRepr {
            src_port: 40000,
            dst_port: 5001,
            control: smoltcp::wire::TcpControl::Psh,
            seq_number: TcpSeqNumber(7),
            ack_number: Some(TcpSeqNumber(9)),
            window_len: 512,
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: [None; 3],
            timestamp: None,
            payload,
        };
        ipv4_frame(IpProtocol::Tcp, repr.header_len() + payload.len(), |b| {
            repr.emit(
                &mut TcpPacket::new_unchecked(b),
                &IpAddress::Ipv4(SRC),
                &IpAddress::Ipv4(DST),
                &ChecksumCapabilities::default(),
            )
        })
    }

    fn udp(payload: &[u8]) -> Vec<u8> {
        let repr = UdpRepr {
            src_port: 68,
            dst_port: 67,
        };
        ipv4_frame(IpProtocol::Udp, 8 + payload.len(), |b| {
            repr.emit(
                &mut UdpPacket::new_unchecked(b),
                &IpAddress::Ipv4(SRC),
                &IpAddress::Ipv4(DST),
                payload.len(),
                |p| p.copy_from_slice(payload),
                &ChecksumCapabilities::default(),
            )
        })
    }

    #[test]
    fn tcp_checksums_are_rewritten_whatever_the_field_held() {
        for payload in [&b""[..], b"x", b"hello, world", &[0xffu8; 1461][..]] {
            let good = tcp(payload);
            for junk in [[0u8, 0], [0x12, 0x34], [0xff, 0xff]] {
                let mut f = good.clone();
                f[34 + TCP_CSUM..34 + TCP_CSUM + 2].copy_from_slice(&junk);
                complete(&mut f).unwrap();
                assert_eq!(f, good, "payload {} bytes", payload.len());
            }
        }
    }

    #[test]
    fn udp_checksums_are_rewritten() {
        for payload in [&b""[..], b"odd", b"dhcp-ish payload"] {
            let good = udp(payload);
            let mut f = good.clone();
            f[34 + UDP_CSUM] ^= 0x5a;
            complete(&mut f).unwrap();
            assert_eq!(f, good);
        }
    }

    #[test]
    fn vlan_tagged_frames_are_handled() {
        let good = tcp(b"tagged");
        let mut tagged = good[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
        tagged.extend_from_slice(&good[12..]);
        let want = tagged.clone();
        tagged[38 + TCP_CSUM] = 0;
        complete(&mut tagged).unwrap();
        assert_eq!(tagged, want);
    }

    #[test]
    fn lying_lengths_and_other_protocols_are_refused() {
        let mut short = tcp(b"abc");
        short.truncate(40);
        assert_eq!(complete(&mut short), Err(CsumError::Malformed));
        let mut long = tcp(b"abc");
        long[16..18].copy_from_slice(&9000u16.to_be_bytes());
        assert_eq!(complete(&mut long), Err(CsumError::Malformed));
        let mut arp = tcp(b"");
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert_eq!(complete(&mut arp), Err(CsumError::Unsupported));
        let mut icmp = tcp(b"");
        icmp[14 + 9] = 1;
        assert_eq!(complete(&mut icmp), Err(CsumError::Unsupported));
        assert_eq!(complete(&mut [0u8; 5]), Err(CsumError::Malformed));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_frames_never_panic(mut bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = complete(&mut bytes);
        }
    }
}

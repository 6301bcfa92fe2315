//! ARP over Ethernet for IPv4 (RFC 826): the request netdom sends to prove
//! its NIC transmits, and the reply it waits for to prove it receives.
//!
//! Read first: RFC 826; IEEE 802.3 (Ethernet II framing). A typed view in
//! the smoltcp style: [`Reply::parse`] checks every length and field before
//! it reads an address, so no slice index can panic on peer bytes.

/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType of IPv4 (ARP's protocol type).
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// ARP `ar$hrd` for Ethernet.
pub const HTYPE_ETHERNET: u16 = 1;
/// `ar$op` request.
pub const OP_REQUEST: u16 = 1;
/// `ar$op` reply.
pub const OP_REPLY: u16 = 2;
/// An Ethernet header and an Ethernet/IPv4 ARP packet.
pub const FRAME_LEN: usize = 14 + 28;
/// The broadcast MAC.
pub const BROADCAST: [u8; 6] = [0xff; 6];

/// A MAC address, printed as `52:54:00:12:34:56`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mac(pub [u8; 6]);

impl core::fmt::Display for Mac {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// An IPv4 address, printed dotted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4(pub [u8; 4]);

impl core::fmt::Display for Ipv4 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let a = self.0;
        write!(f, "{}.{}.{}.{}", a[0], a[1], a[2], a[3])
    }
}

/// The broadcast frame asking who has `target`.
pub fn request(our_mac: Mac, our_ip: Ipv4, target: Ipv4) -> [u8; FRAME_LEN] {
    let mut f = [0u8; FRAME_LEN];
    f[0..6].copy_from_slice(&BROADCAST);
    f[6..12].copy_from_slice(&our_mac.0);
    f[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    let arp = &mut f[14..];
    arp[0..2].copy_from_slice(&HTYPE_ETHERNET.to_be_bytes());
    arp[2..4].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    arp[4] = 6;
    arp[5] = 4;
    arp[6..8].copy_from_slice(&OP_REQUEST.to_be_bytes());
    arp[8..14].copy_from_slice(&our_mac.0);
    arp[14..18].copy_from_slice(&our_ip.0);
    // Target hardware address unknown: zero (RFC 826 leaves it unused).
    arp[24..28].copy_from_slice(&target.0);
    f
}

/// An ARP reply addressed to us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    /// Who answered (`ar$sha`).
    pub sender_mac: Mac,
    /// For which address (`ar$spa`).
    pub sender_ip: Ipv4,
}

/// Why a frame is not the reply we wait for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotReply {
    /// Shorter than an Ethernet ARP frame.
    Short(usize),
    /// Another EtherType.
    EtherType(u16),
    /// Not Ethernet/IPv4 ARP (hardware/protocol type or lengths).
    Format,
    /// An ARP request or unknown operation.
    Operation(u16),
    /// A reply for someone else.
    NotForUs,
}

impl Reply {
    /// Parses `frame` (Ethernet, no FCS) as an ARP reply to `our_mac`/`our_ip`.
    pub fn parse(frame: &[u8], our_mac: Mac, our_ip: Ipv4) -> Result<Reply, NotReply> {
        if frame.len() < FRAME_LEN {
            return Err(NotReply::Short(frame.len()));
        }
        let be16 = |o: usize| u16::from_be_bytes([frame[o], frame[o + 1]]);
        let ethertype = be16(12);
        if ethertype != ETHERTYPE_ARP {
            return Err(NotReply::EtherType(ethertype));
        }
        if be16(14) != HTYPE_ETHERNET
            || be16(16) != ETHERTYPE_IPV4
            || frame[18] != 6
            || frame[19] != 4
        {
            return Err(NotReply::Format);
        }
        let op = be16(20);
        if op != OP_REPLY {
            return Err(NotReply::Operation(op));
        }
        let mut sender_mac = [0u8; 6];
        sender_mac.copy_from_slice(&frame[22..28]);
        let mut sender_ip = [0u8; 4];
        sender_ip.copy_from_slice(&frame[28..32]);
        if frame[32..38] != our_mac.0 || frame[38..42] != our_ip.0 {
            return Err(NotReply::NotForUs);
        }
        Ok(Reply {
            sender_mac: Mac(sender_mac),
            sender_ip: Ipv4(sender_ip),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: Mac = Mac([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
    const GW: Mac = Mac([0x52, 0x55, 0x0a, 0x00, 0x02, 0x02]);
    const IP: Ipv4 = Ipv4([10, 0, 2, 15]);
    const GW_IP: Ipv4 = Ipv4([10, 0, 2, 2]);

    /// The reply QEMU's user network sends for 10.0.2.2 (bytes as slirp
    /// builds them), padded to the Ethernet minimum.
    fn slirp_reply() -> [u8; 60] {
        let mut f = [0u8; 60];
        f[0..6].copy_from_slice(&US.0);
        f[6..12].copy_from_slice(&GW.0);
        f[12..14].copy_from_slice(&[0x08, 0x06]);
        f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 2]);
        f[22..28].copy_from_slice(&GW.0);
        f[28..32].copy_from_slice(&GW_IP.0);
        f[32..38].copy_from_slice(&US.0);
        f[38..42].copy_from_slice(&IP.0);
        f
    }

    #[test]
    fn request_bytes() {
        let f = request(US, IP, GW_IP);
        assert_eq!(&f[0..6], &[0xff; 6]);
        assert_eq!(&f[6..12], &US.0);
        assert_eq!(&f[12..22], &[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
        assert_eq!(&f[22..28], &US.0);
        assert_eq!(&f[28..32], &IP.0);
        assert_eq!(&f[32..38], &[0; 6]);
        assert_eq!(&f[38..42], &GW_IP.0);
    }

    #[test]
    fn parses_slirps_reply() {
        let r = Reply::parse(&slirp_reply(), US, IP).unwrap();
        assert_eq!(r.sender_ip, GW_IP);
        assert_eq!(r.sender_mac, GW);
        assert_eq!(r.sender_mac.to_string(), "52:55:0a:00:02:02");
        assert_eq!(r.sender_ip.to_string(), "10.0.2.2");
    }

    #[test]
    fn rejects_everything_else() {
        let good = slirp_reply();
        for len in [0, 13, 14, 41] {
            assert_eq!(
                Reply::parse(&good[..len], US, IP),
                Err(NotReply::Short(len))
            );
        }
        let mut ipv4 = good;
        ipv4[13] = 0x00;
        assert_eq!(
            Reply::parse(&ipv4, US, IP),
            Err(NotReply::EtherType(0x0800))
        );
        let mut hlen = good;
        hlen[18] = 8;
        assert_eq!(Reply::parse(&hlen, US, IP), Err(NotReply::Format));
        // Our own request looped back is not a reply.
        assert_eq!(
            Reply::parse(&request(US, IP, GW_IP), US, IP),
            Err(NotReply::Operation(OP_REQUEST))
        );
        let other = Mac([2, 0, 0, 0, 0, 1]);
        assert_eq!(Reply::parse(&good, other, IP), Err(NotReply::NotForUs));
        assert_eq!(
            Reply::parse(&good, US, Ipv4([10, 0, 2, 16])),
            Err(NotReply::NotForUs)
        );
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Any bytes from the wire: parse answers, never panics, and
            /// accepts only what is a reply to us.
            #[test]
            fn any_frame_is_judged_without_panicking(frame in proptest::collection::vec(any::<u8>(), 0..128)) {
                if let Ok(r) = Reply::parse(&frame, US, IP) {
                    prop_assert_eq!(&frame[32..38], &US.0);
                    prop_assert_eq!(&frame[38..42], &IP.0);
                    prop_assert_eq!(r.sender_mac.0, <[u8; 6]>::try_from(&frame[22..28]).unwrap());
                }
            }

            /// A reply built from any addresses parses back to them.
            #[test]
            fn replies_round_trip(mac in any::<[u8; 6]>(), ip in any::<[u8; 4]>(), pad in 0usize..32) {
                let mut f = std::vec::Vec::from(slirp_reply());
                f[22..28].copy_from_slice(&mac);
                f[28..32].copy_from_slice(&ip);
                f.truncate(FRAME_LEN + pad.min(60 - FRAME_LEN));
                let r = Reply::parse(&f, US, IP).unwrap();
                prop_assert_eq!(r, Reply { sender_mac: Mac(mac), sender_ip: Ipv4(ip) });
            }
        }
    }
}

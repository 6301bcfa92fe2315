//! The garbage of `netfront-fuzz`: the tx and rx rings as a netfront
//! gone bad writes them, the attacks, and the PRNG that picks them.
//!
//! Read first: xen/include/public/io/netif.h, io/ring.h;
//! netdom/netback/DESIGN.md ("Transmit checks").

use xcp_runtime::evtchn;
use xcp_runtime::shared_page::PageView;

pub(super) use crate::pvfront::{Granted, Rng};

// io/ring.h: the shared ring's header, then the slots.
pub(super) const REQ_PROD: usize = 0;
pub(super) const REQ_EVENT: usize = 4;
pub(super) const RSP_PROD: usize = 8;
pub(super) const RSP_EVENT: usize = 12;
pub(super) const RING_HEADER: usize = 64;
/// Slots of the tx ring: (4096 - 64) / 12 rounded down to a power of two.
pub(super) const TX_RING_SIZE: u32 = 256;
/// A tx slot: the union of netif_tx_request (12 B) and response (4 B).
pub(super) const TX_SLOT: usize = 12;

// netif.h's tx flags and extra-info types.
pub(super) const NETTXF_MORE_DATA: u16 = 1 << 2;
pub(super) const NETTXF_EXTRA_INFO: u16 = 1 << 3;
/// netif.h's statuses of a packet sent, and of one the backend refused.
pub(super) const NETIF_RSP_OKAY: i16 = 0;
pub(super) const NETIF_RSP_ERROR: i16 = -1;
/// Slots of the rx ring: (4096 - 64) / 8 rounded down to a power of two.
pub(super) const RX_RING_SIZE: u32 = 256;
/// An rx slot: netif_rx_request / netif_rx_response (8 B each).
pub(super) const RX_SLOT: usize = 8;
/// An ARP request's length on the wire (without padding).
pub(super) const ARP_LEN: usize = 42;
/// QEMU's user-network gateway, and the address we claim to ask from
/// (unused by QEMU's DHCP, which starts at .15).
pub(super) const GATEWAY: [u8; 4] = [10, 0, 2, 2];
pub(super) const ASKER: [u8; 4] = [10, 0, 2, 200];
/// XEN_NETIF_NR_SLOTS_MIN: the most slots a packet may take.
pub(super) const NR_SLOTS_MIN: u32 = 18;

/// An ARP request (RFC 826) from `mac` (at [`ASKER`]) for [`GATEWAY`].
pub(super) fn arp_request(mac: [u8; 6]) -> [u8; ARP_LEN] {
    let mut f = [0u8; ARP_LEN];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    // Ethernet, IPv4, 6-byte and 4-byte addresses, request.
    f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&ASKER);
    f[38..42].copy_from_slice(&GATEWAY);
    f
}

/// `aa:bb:cc:dd:ee:ff`.
pub(super) fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// One attack: what a burst writes into the tx ring.
#[derive(Clone, Copy, Debug)]
pub(super) enum Attack {
    /// A well-formed ARP request from our MAC for QEMU's gateway (answered
    /// OKAY; the gateway's reply comes back to us).
    Arp,
    /// A packet shorter than an Ethernet header (dropped with an error).
    Runt,
    /// Random bytes in 1..=64 slots, `req_prod` past them.
    Garbage,
    /// A random `req_prod`, slots untouched.
    RandomIndex,
    /// `req_prod` more than a ring ahead.
    FarAhead,
    /// A fragment of size 0.
    ZeroFragment,
    /// `offset + size` past the granted page.
    PastPage,
    /// More than 18 slots in one packet.
    TooManySlots,
    /// A first slot with fewer bytes than an Ethernet header.
    SplitHeader,
    /// Fragments adding up to more than the first slot's total.
    Oversized,
    /// Extra info of type 0 or ≥ 5.
    BadExtra,
    /// Garbage in the rx ring (`req_prod` far ahead, random slots), then
    /// [`Attack::Arp`]: the gateway's reply finds it.
    RxGarbage,
    /// A well-formed packet whose grant is not ours to give (an error
    /// response, not a disconnect).
    BogusGrant,
}

pub(super) const ATTACKS: [Attack; 11] = [
    Attack::Garbage,
    Attack::RandomIndex,
    Attack::FarAhead,
    Attack::ZeroFragment,
    Attack::PastPage,
    Attack::TooManySlots,
    Attack::SplitHeader,
    Attack::Oversized,
    Attack::BadExtra,
    Attack::RxGarbage,
    Attack::BogusGrant,
];

/// A tx request as netif.h lays it out.
#[derive(Clone, Copy)]
pub(super) struct TxRequest {
    pub(super) gref: u32,
    pub(super) offset: u16,
    pub(super) flags: u16,
    pub(super) id: u16,
    pub(super) size: u16,
}

impl TxRequest {
    pub(super) fn bytes(self) -> [u8; TX_SLOT] {
        let mut b = [0u8; TX_SLOT];
        b[0..4].copy_from_slice(&self.gref.to_le_bytes());
        b[4..6].copy_from_slice(&self.offset.to_le_bytes());
        b[6..8].copy_from_slice(&self.flags.to_le_bytes());
        b[8..10].copy_from_slice(&self.id.to_le_bytes());
        b[10..12].copy_from_slice(&self.size.to_le_bytes());
        b
    }
}

/// One life of the frontend: the two ring frames, a data frame holding
/// one well-formed frame (an ARP request), all granted, and a channel.
pub(super) struct Rings {
    pub(super) tx: Granted,
    pub(super) rx: Granted,
    pub(super) data: Granted,
    pub(super) port: u32,
    /// Our `req_prod` on the tx ring.
    pub(super) prod: u32,
}

impl Rings {
    pub(super) fn view(&self) -> PageView<'_> {
        self.tx.frame.view()
    }

    pub(super) fn put(&mut self, req: TxRequest) {
        let at = RING_HEADER + (self.prod % TX_RING_SIZE) as usize * TX_SLOT;
        self.view().write(at, &req.bytes());
        self.prod = self.prod.wrapping_add(1);
    }

    pub(super) fn put_raw(&mut self, bytes: &[u8; TX_SLOT]) {
        let at = RING_HEADER + (self.prod % TX_RING_SIZE) as usize * TX_SLOT;
        self.view().write(at, bytes);
        self.prod = self.prod.wrapping_add(1);
    }

    pub(super) fn publish(&self, req_prod: u32) {
        self.view().store_u32(REQ_PROD, req_prod);
        evtchn::send(self.port);
    }

    /// Writes one attack into the tx ring and kicks the backend.
    pub(super) fn attack(&mut self, rng: &mut Rng, attack: Attack) {
        let gref = rng.below(4096);
        let id = rng.u16();
        match attack {
            Attack::Garbage => {
                for _ in 0..=rng.below(64) {
                    let mut b = [0u8; TX_SLOT];
                    for chunk in b.chunks_mut(8) {
                        let r = rng.next().to_le_bytes();
                        chunk.copy_from_slice(&r[..chunk.len()]);
                    }
                    self.put_raw(&b);
                }
                // Random bytes in the events too: the backend must not
                // trust them either.
                self.view().store_u32(RSP_EVENT, rng.next() as u32);
                self.publish(self.prod);
            }
            Attack::RandomIndex => {
                let prod = rng.next() as u32;
                self.prod = prod;
                self.publish(prod);
            }
            Attack::FarAhead => {
                let prod = self
                    .prod
                    .wrapping_add(TX_RING_SIZE + 1 + rng.below(1 << 20));
                self.prod = prod;
                self.publish(prod);
            }
            Attack::ZeroFragment => {
                self.put(TxRequest {
                    gref,
                    offset: 0,
                    flags: NETTXF_MORE_DATA,
                    id,
                    size: 200,
                });
                self.put(TxRequest {
                    gref,
                    offset: 0,
                    flags: 0,
                    id: id.wrapping_add(1),
                    size: 0,
                });
                self.publish(self.prod);
            }
            Attack::PastPage => {
                let offset = 4096 - rng.below(100) as u16;
                self.put(TxRequest {
                    gref,
                    offset,
                    flags: 0,
                    id,
                    size: 200 + rng.below(1000) as u16,
                });
                self.publish(self.prod);
            }
            Attack::TooManySlots => {
                let slots = NR_SLOTS_MIN + 1 + rng.below(40);
                for i in 0..slots {
                    let last = i + 1 == slots;
                    self.put(TxRequest {
                        gref,
                        offset: 0,
                        flags: if last { 0 } else { NETTXF_MORE_DATA },
                        id: id.wrapping_add(i as u16),
                        size: if i == 0 { (slots * 100) as u16 } else { 100 },
                    });
                }
                self.publish(self.prod);
            }
            Attack::SplitHeader => {
                // 100 bytes in all, 95 of them in the second slot: 5 in
                // the first, less than an Ethernet header (XSA-423).
                self.put(TxRequest {
                    gref,
                    offset: 0,
                    flags: NETTXF_MORE_DATA,
                    id,
                    size: 100,
                });
                self.put(TxRequest {
                    gref,
                    offset: 0,
                    flags: 0,
                    id: id.wrapping_add(1),
                    size: 95,
                });
                self.publish(self.prod);
            }
            Attack::Oversized => {
                self.put(TxRequest {
                    gref,
                    offset: 0,
                    flags: NETTXF_MORE_DATA,
                    id,
                    size: 50,
                });
                self.put(TxRequest {
                    gref,
                    offset: 0,
                    flags: 0,
                    id: id.wrapping_add(1),
                    size: 100 + rng.below(3000) as u16,
                });
                self.publish(self.prod);
            }
            Attack::BadExtra => {
                self.put(TxRequest {
                    gref,
                    offset: 0,
                    flags: NETTXF_EXTRA_INFO,
                    id,
                    size: 60,
                });
                // netif_extra_info: type, flags, then the union.
                let kind = match rng.below(2) {
                    0 => 0,
                    _ => 5 + rng.below(251) as u8,
                };
                let mut b = [0u8; TX_SLOT];
                b[0] = kind;
                b[1] = rng.next() as u8 & !1;
                self.put_raw(&b);
                self.publish(self.prod);
            }
            Attack::Arp => {
                self.put(TxRequest {
                    gref: self.data.gref,
                    offset: 0,
                    flags: 0,
                    id,
                    size: ARP_LEN as u16,
                });
                self.publish(self.prod);
            }
            Attack::RxGarbage => {
                let rx = self.rx.frame.view();
                for slot in 0..RX_RING_SIZE as usize {
                    rx.write(RING_HEADER + slot * RX_SLOT, &rng.next().to_le_bytes());
                }
                let cons = rx.load_u32(RSP_PROD);
                rx.store_u32(
                    REQ_PROD,
                    cons.wrapping_add(RX_RING_SIZE + 1 + rng.below(1 << 20)),
                );
                self.put(TxRequest {
                    gref: self.data.gref,
                    offset: 0,
                    flags: 0,
                    id,
                    size: ARP_LEN as u16,
                });
                self.publish(self.prod);
            }
            Attack::Runt => {
                self.put(TxRequest {
                    gref,
                    offset: 0,
                    flags: 0,
                    id,
                    size: 1 + rng.below(13) as u16,
                });
                self.publish(self.prod);
            }
            Attack::BogusGrant => {
                self.put(TxRequest {
                    gref: 0x8000_0000 | rng.next() as u32,
                    offset: 0,
                    flags: 0,
                    id,
                    size: 60 + rng.below(1400) as u16,
                });
                self.publish(self.prod);
            }
        }
    }
}

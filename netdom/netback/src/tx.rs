//! Transmit packet assembly: the slots of one guest packet, checked.
//!
//! read first: xen/include/public/io/netif.h ("Guest transmit"), Linux
//! `xen-netback/netback.c` (`xenvif_count_requests`, `xenvif_get_extras`),
//! XSA-423, XSA-432, XSA-448.
//!
//! A packet is a first slot (its `size` is the whole packet's), then, when
//! it carries `NETTXF_extra_info`, extra info slots (each may say
//! `XEN_NETIF_EXTRA_FLAG_MORE`), then, while a slot carries
//! `NETTXF_more_data`, fragment slots (each `size` is its own). The first
//! slot holds what the fragments do not. Every slot is copied out of the
//! ring once by `BackRing`, then checked here:
//!
//! - a frontend publishes a packet's slots together (netfront pushes the
//!   whole packet, then req_prod): a packet running past req_prod is a
//!   protocol error, as in Linux;
//! - at most [`MAX_SLOTS`] data slots (XSA-432: "more than 18" is the
//!   classic overrun) and one extra info of each type;
//! - each slot's data lies in its page (`offset + size <= 4096`);
//! - fragments are not empty (XSA-448) and never exceed what the first
//!   slot's total leaves;
//! - the first slot holds at least the Ethernet header (XSA-423: headers
//!   split across slots), and the packet is at least that long.
//!
//! Breaking the protocol is a [`TxFault`] (the VIF is disconnected);
//! a well-formed packet the backend will not take is a [`TxDrop`] (error
//! responses, the VIF stays up).

use alloc::vec::Vec;

use xcp_ring::RingError;

use crate::budget::MAX_EXTRAS;
use crate::wire::MAX_SLOTS;
use crate::wire::{
    Gso, TxRequest, ETH_HLEN, NETTXF_CSUM_BLANK, NETTXF_DATA_VALIDATED, NETTXF_EXTRA_INFO,
    NETTXF_MORE_DATA, PAGE_SIZE, XEN_NETIF_EXTRA_TYPE_GSO, XEN_NETIF_EXTRA_TYPE_MAX,
    XEN_NETIF_EXTRA_TYPE_NONE, XEN_NETIF_GSO_TYPE_TCPV4, XEN_NETIF_GSO_TYPE_TCPV6,
};

/// A frontend broke the transmit protocol: its VIF is disconnected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxFault {
    /// The ring indexes are nonsense (`req_prod` beyond the ring).
    Ring(RingError),
    /// A packet's slots run past `req_prod`.
    Truncated,
    /// More than [`MAX_SLOTS`] data slots.
    TooManySlots,
    /// A slot's `offset + size` crosses its page.
    CrossesPage,
    /// A fragment of size 0 (XSA-448).
    ZeroLengthFragment,
    /// Fragments add up to more than the first slot's total.
    FragmentsExceedTotal,
    /// The first slot holds less than an Ethernet header of a packet that
    /// has one (XSA-423).
    HeaderSplit,
    /// An extra info of type NONE or beyond `XEN_NETIF_EXTRA_TYPE_MAX`.
    BadExtraType(u8),
    /// Two extra infos of the same type.
    DuplicateExtra(u8),
}

/// A well-formed packet the backend refuses: error responses, VIF up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxDrop {
    /// Shorter than an Ethernet header.
    Runt,
    /// A GSO extra with size 0, an unknown type, or a type not negotiated.
    BadGso,
}

/// Who holds a response slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SlotKind {
    /// A data slot: its response carries the packet's status.
    Data,
    /// An extra info slot: its response is `NETIF_RSP_NULL`.
    Extra,
}

/// One consumed slot, in ring order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Slot {
    pub(crate) id: u16,
    pub(crate) kind: SlotKind,
}

/// A data slot's share of the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Piece {
    pub(crate) gref: u32,
    pub(crate) offset: u16,
    pub(crate) len: u16,
}

/// A whole packet's slots, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Assembled {
    /// Every consumed slot, in order (responses go in this order).
    pub(crate) slots: Vec<Slot>,
    /// The data, in packet order.
    pub(crate) pieces: Vec<Piece>,
    /// The packet's length (the first slot's `size`).
    pub(crate) len: usize,
    /// GSO parameters from a GSO extra.
    pub(crate) gso: Option<Gso>,
    /// `NETTXF_csum_blank`.
    pub(crate) csum_blank: bool,
    /// `NETTXF_data_validated`.
    pub(crate) data_validated: bool,
    /// Why it is refused, if it is.
    pub(crate) drop: Option<TxDrop>,
}

/// Which GSO types were negotiated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct GsoAllowed {
    pub(crate) tcpv4: bool,
    pub(crate) tcpv6: bool,
}

/// Reads one packet, `first` already taken from the ring; `next` yields
/// the following slots (`Ok(None)`: nothing more published).
pub(crate) fn assemble(
    first: TxRequest,
    gso_allowed: GsoAllowed,
    next: &mut dyn FnMut() -> Result<Option<TxRequest>, RingError>,
) -> Result<Assembled, TxFault> {
    let mut take = || -> Result<TxRequest, TxFault> {
        next().map_err(TxFault::Ring)?.ok_or(TxFault::Truncated)
    };
    let mut slots = Vec::with_capacity(MAX_SLOTS + MAX_EXTRAS);
    let mut pieces = Vec::with_capacity(MAX_SLOTS);
    slots.push(Slot {
        id: first.id,
        kind: SlotKind::Data,
    });
    let mut drop = None;
    let mut gso = None;

    // Extra infos follow the first slot.
    if first.flags & NETTXF_EXTRA_INFO != 0 {
        let mut seen = [false; XEN_NETIF_EXTRA_TYPE_MAX as usize];
        loop {
            let slot = take()?;
            let extra = slot.as_extra();
            if extra.kind == XEN_NETIF_EXTRA_TYPE_NONE || extra.kind >= XEN_NETIF_EXTRA_TYPE_MAX {
                return Err(TxFault::BadExtraType(extra.kind));
            }
            // One of each type: at most MAX_EXTRAS slots.
            if core::mem::replace(&mut seen[usize::from(extra.kind)], true) {
                return Err(TxFault::DuplicateExtra(extra.kind));
            }
            slots.push(Slot {
                id: 0,
                kind: SlotKind::Extra,
            });
            if extra.kind == XEN_NETIF_EXTRA_TYPE_GSO {
                let g = extra.as_gso();
                let ok = g.size != 0
                    && match g.kind {
                        XEN_NETIF_GSO_TYPE_TCPV4 => gso_allowed.tcpv4,
                        XEN_NETIF_GSO_TYPE_TCPV6 => gso_allowed.tcpv6,
                        _ => false,
                    };
                if ok {
                    gso = Some(g);
                } else {
                    drop = Some(TxDrop::BadGso);
                }
            }
            // Multicast and hash extras are accepted and ignored: we did
            // not offer feature-multicast-control or hashing.
            if !extra.more() {
                break;
            }
        }
    }

    // Fragments: each slot's size is its own; the first keeps the rest.
    let total = usize::from(first.size);
    let mut frag_bytes = 0usize;
    let mut last_flags = first.flags;
    let mut data_slots = 1;
    while last_flags & NETTXF_MORE_DATA != 0 {
        if data_slots == MAX_SLOTS {
            return Err(TxFault::TooManySlots);
        }
        let slot = take()?;
        data_slots += 1;
        let size = usize::from(slot.size);
        if size == 0 {
            return Err(TxFault::ZeroLengthFragment);
        }
        if usize::from(slot.offset) + size > PAGE_SIZE {
            return Err(TxFault::CrossesPage);
        }
        frag_bytes += size;
        if frag_bytes > total {
            return Err(TxFault::FragmentsExceedTotal);
        }
        slots.push(Slot {
            id: slot.id,
            kind: SlotKind::Data,
        });
        pieces.push(Piece {
            gref: slot.gref,
            offset: slot.offset,
            len: slot.size,
        });
        last_flags = slot.flags;
    }

    let head = total - frag_bytes;
    if usize::from(first.offset) + head > PAGE_SIZE {
        return Err(TxFault::CrossesPage);
    }
    if total < ETH_HLEN {
        drop = drop.or(Some(TxDrop::Runt));
    } else if head < ETH_HLEN {
        return Err(TxFault::HeaderSplit);
    }
    // head ≤ total ≤ u16::MAX, checked above.
    let head_len = u16::try_from(head).map_err(|_| TxFault::CrossesPage)?;
    pieces.insert(
        0,
        Piece {
            gref: first.gref,
            offset: first.offset,
            len: head_len,
        },
    );
    pieces.retain(|p| p.len != 0);
    Ok(Assembled {
        slots,
        pieces,
        len: total,
        gso,
        csum_blank: first.flags & NETTXF_CSUM_BLANK != 0,
        data_validated: first.flags & NETTXF_DATA_VALIDATED != 0,
        drop,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ExtraInfo, XEN_NETIF_EXTRA_FLAG_MORE};
    use alloc::vec;
    use xcp_ring::RingEntry as _;

    const ALL: GsoAllowed = GsoAllowed {
        tcpv4: true,
        tcpv6: true,
    };

    fn run(slots: &[TxRequest]) -> Result<Assembled, TxFault> {
        let mut it = slots[1..].iter().copied();
        assemble(slots[0], ALL, &mut || Ok(it.next()))
    }

    fn req(size: u16, flags: u16, id: u16) -> TxRequest {
        TxRequest {
            gref: u32::from(id) + 100,
            offset: 0,
            flags,
            id,
            size,
        }
    }

    fn extra(e: ExtraInfo) -> TxRequest {
        let mut b = [0u8; 12];
        e.encode(&mut b[..8]);
        TxRequest::decode(&b)
    }

    #[test]
    fn single_slot() {
        let a = run(&[req(60, 0, 1)]).expect("ok");
        assert_eq!(a.len, 60);
        assert_eq!(a.pieces.len(), 1);
        assert_eq!(a.drop, None);
    }

    #[test]
    fn multi_slot_sizes() {
        let a = run(&[
            req(5000, NETTXF_MORE_DATA, 1),
            req(4000, NETTXF_MORE_DATA, 2),
            req(900, 0, 3),
        ])
        .expect("ok");
        let lens: Vec<u16> = a.pieces.iter().map(|p| p.len).collect();
        assert_eq!(lens, [100, 4000, 900]);
        assert_eq!(a.slots.len(), 3);
    }

    #[test]
    fn eighteen_slots_ok_nineteen_fault() {
        let mut s = vec![req(18 * 100, NETTXF_MORE_DATA, 0)];
        for i in 1..18 {
            s.push(req(100, if i < 17 { NETTXF_MORE_DATA } else { 0 }, i));
        }
        assert!(run(&s).is_ok());
        s[17].flags = NETTXF_MORE_DATA;
        s.push(req(100, 0, 18));
        assert_eq!(run(&s), Err(TxFault::TooManySlots));
    }

    #[test]
    fn faults() {
        assert_eq!(
            run(&[req(100, NETTXF_MORE_DATA, 1)]),
            Err(TxFault::Truncated)
        );
        assert_eq!(
            run(&[req(100, NETTXF_MORE_DATA, 1), req(0, 0, 2)]),
            Err(TxFault::ZeroLengthFragment)
        );
        assert_eq!(
            run(&[req(100, NETTXF_MORE_DATA, 1), req(101, 0, 2)]),
            Err(TxFault::FragmentsExceedTotal)
        );
        assert_eq!(
            run(&[req(100, NETTXF_MORE_DATA, 1), req(90, 0, 2)]),
            Err(TxFault::HeaderSplit)
        );
        let mut cross = req(100, 0, 1);
        cross.offset = 4000;
        assert_eq!(run(&[cross]), Err(TxFault::CrossesPage));
        let mut big = req(5000, 0, 1);
        big.offset = 0;
        assert_eq!(run(&[big]), Err(TxFault::CrossesPage));
        let none = extra(ExtraInfo::default());
        assert_eq!(
            run(&[req(60, NETTXF_EXTRA_INFO, 1), none]),
            Err(TxFault::BadExtraType(0))
        );
        let g = ExtraInfo::gso(
            Gso {
                size: 1448,
                kind: XEN_NETIF_GSO_TYPE_TCPV4,
                features: 0,
            },
            XEN_NETIF_EXTRA_FLAG_MORE,
        );
        assert_eq!(
            run(&[req(60, NETTXF_EXTRA_INFO, 1), extra(g), extra(g)]),
            Err(TxFault::DuplicateExtra(1))
        );
    }

    #[test]
    fn drops() {
        assert_eq!(run(&[req(10, 0, 1)]).expect("ok").drop, Some(TxDrop::Runt));
        let g = ExtraInfo::gso(
            Gso {
                size: 0,
                kind: XEN_NETIF_GSO_TYPE_TCPV4,
                features: 0,
            },
            0,
        );
        let a = run(&[req(60, NETTXF_EXTRA_INFO, 1), extra(g)]).expect("ok");
        assert_eq!(a.drop, Some(TxDrop::BadGso));
        assert_eq!(a.slots[1].kind, SlotKind::Extra);
    }
}

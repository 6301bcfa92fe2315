//! netif ring entries: tx/rx requests and responses, extra info (GSO).
//!
//! read first: xen/include/public/io/netif.h (Debian `libxen-dev`:
//! /usr/include/xen/io/netif.h), io/ring.h.
//!
//! Each type is its C struct's bytes, little endian, decoded field by field
//! with `from_le_bytes` (no transmutes). Decoding is total: any bytes give a
//! value; the engine validates fields after the copy out of shared memory.
//!
//! | struct              | size | fields (offset)                                   |
//! |---------------------|-----:|---------------------------------------------------|
//! | netif_tx_request    | 12   | gref u32 (0), offset u16 (4), flags u16 (6), id u16 (8), size u16 (10) |
//! | netif_tx_response   | 4    | id u16 (0), status i16 (2)                         |
//! | netif_rx_request    | 8    | id u16 (0), pad u16 (2), gref u32 (4)              |
//! | netif_rx_response   | 8    | id u16 (0), offset u16 (2), flags u16 (4), status i16 (6) |
//! | netif_extra_info    | 8    | type u8 (0), flags u8 (1), union (2..8)            |

use xcp_ring::RingEntry;

/// Xen's page size: a grant is one page.
pub const PAGE_SIZE: usize = 4096;
/// `XEN_NETIF_NR_SLOTS_MIN`: the most data slots a packet may use.
pub const MAX_SLOTS: usize = 18;
/// `XEN_NETIF_MAX_TX_SIZE`: the largest packet a tx request describes.
pub const MAX_TX_SIZE: usize = 0xFFFF;
/// An Ethernet header (`ETH_HLEN`): the least a packet (and the first tx
/// slot) must hold.
pub const ETH_HLEN: usize = 14;
/// The largest packet either way: a 64 KiB GSO payload plus its Ethernet
/// header, as the brief of issue #14 bounds it.
pub const MAX_PACKET_LEN: usize = MAX_TX_SIZE + ETH_HLEN;

/// `NETTXF_csum_blank`: the checksum is to be filled in (offload).
pub const NETTXF_CSUM_BLANK: u16 = 1 << 0;
/// `NETTXF_data_validated`: the checksum was checked.
pub const NETTXF_DATA_VALIDATED: u16 = 1 << 1;
/// `NETTXF_more_data`: the packet continues in the next slot.
pub const NETTXF_MORE_DATA: u16 = 1 << 2;
/// `NETTXF_extra_info`: extra info slots follow this (first) slot.
pub const NETTXF_EXTRA_INFO: u16 = 1 << 3;

/// `NETRXF_data_validated`.
pub const NETRXF_DATA_VALIDATED: u16 = 1 << 0;
/// `NETRXF_csum_blank`.
pub const NETRXF_CSUM_BLANK: u16 = 1 << 1;
/// `NETRXF_more_data`.
pub const NETRXF_MORE_DATA: u16 = 1 << 2;
/// `NETRXF_extra_info`.
pub const NETRXF_EXTRA_INFO: u16 = 1 << 3;

/// `XEN_NETIF_EXTRA_TYPE_NONE`: never valid.
pub const XEN_NETIF_EXTRA_TYPE_NONE: u8 = 0;
/// `XEN_NETIF_EXTRA_TYPE_GSO`.
pub const XEN_NETIF_EXTRA_TYPE_GSO: u8 = 1;
/// `XEN_NETIF_EXTRA_TYPE_MCAST_ADD`.
pub const XEN_NETIF_EXTRA_TYPE_MCAST_ADD: u8 = 2;
/// `XEN_NETIF_EXTRA_TYPE_MCAST_DEL`.
pub const XEN_NETIF_EXTRA_TYPE_MCAST_DEL: u8 = 3;
/// `XEN_NETIF_EXTRA_TYPE_HASH`.
pub const XEN_NETIF_EXTRA_TYPE_HASH: u8 = 4;
/// `XEN_NETIF_EXTRA_TYPE_MAX`: types are below it.
pub const XEN_NETIF_EXTRA_TYPE_MAX: u8 = 5;
/// `XEN_NETIF_EXTRA_FLAG_MORE`: another extra info slot follows.
pub const XEN_NETIF_EXTRA_FLAG_MORE: u8 = 1 << 0;

/// `XEN_NETIF_GSO_TYPE_NONE`.
pub const XEN_NETIF_GSO_TYPE_NONE: u8 = 0;
/// `XEN_NETIF_GSO_TYPE_TCPV4`.
pub const XEN_NETIF_GSO_TYPE_TCPV4: u8 = 1;
/// `XEN_NETIF_GSO_TYPE_TCPV6`.
pub const XEN_NETIF_GSO_TYPE_TCPV6: u8 = 2;

/// `NETIF_RSP_DROPPED`.
pub const NETIF_RSP_DROPPED: i16 = -2;
/// `NETIF_RSP_ERROR`.
pub const NETIF_RSP_ERROR: i16 = -1;
/// `NETIF_RSP_OKAY`.
pub const NETIF_RSP_OKAY: i16 = 0;
/// `NETIF_RSP_NULL`: the response of an extra info slot.
pub const NETIF_RSP_NULL: i16 = 1;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// `struct netif_tx_request` (12 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxRequest {
    /// Grant of the page holding this slot's data.
    pub gref: u32,
    /// Offset of the data in that page.
    pub offset: u16,
    /// `NETTXF_*`.
    pub flags: u16,
    /// Echoed in the response.
    pub id: u16,
    /// First slot: the whole packet's size; others: this slot's.
    pub size: u16,
}

impl RingEntry for TxRequest {
    const SIZE: usize = 12;
    fn encode(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.gref.to_le_bytes());
        out[4..6].copy_from_slice(&self.offset.to_le_bytes());
        out[6..8].copy_from_slice(&self.flags.to_le_bytes());
        out[8..10].copy_from_slice(&self.id.to_le_bytes());
        out[10..12].copy_from_slice(&self.size.to_le_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        TxRequest {
            gref: u32_at(b, 0),
            offset: u16_at(b, 4),
            flags: u16_at(b, 6),
            id: u16_at(b, 8),
            size: u16_at(b, 10),
        }
    }
}

impl TxRequest {
    /// The slot's first 8 bytes read as a `netif_extra_info` (the slots
    /// after a first slot flagged `NETTXF_extra_info` overlay requests).
    pub fn as_extra(&self) -> ExtraInfo {
        let mut b = [0u8; 12];
        self.encode(&mut b);
        ExtraInfo::decode(&b[..8])
    }
}

/// `struct netif_tx_response` (4 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxResponse {
    /// The request's id.
    pub id: u16,
    /// `NETIF_RSP_*`.
    pub status: i16,
}

impl RingEntry for TxResponse {
    const SIZE: usize = 4;
    fn encode(&self, out: &mut [u8]) {
        out[0..2].copy_from_slice(&self.id.to_le_bytes());
        out[2..4].copy_from_slice(&self.status.to_le_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        TxResponse {
            id: u16_at(b, 0),
            status: u16_at(b, 2) as i16,
        }
    }
}

/// `struct netif_rx_request` (8 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxRequest {
    /// Echoed in the response.
    pub id: u16,
    /// Grant of a whole page the backend may fill.
    pub gref: u32,
}

impl RingEntry for RxRequest {
    const SIZE: usize = 8;
    fn encode(&self, out: &mut [u8]) {
        out[0..2].copy_from_slice(&self.id.to_le_bytes());
        out[2..4].copy_from_slice(&[0, 0]);
        out[4..8].copy_from_slice(&self.gref.to_le_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        RxRequest {
            id: u16_at(b, 0),
            gref: u32_at(b, 4),
        }
    }
}

/// `struct netif_rx_response` (8 bytes); an extra info slot overlays it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxResponse {
    /// The request's id.
    pub id: u16,
    /// Where the data starts in the page.
    pub offset: u16,
    /// `NETRXF_*`.
    pub flags: u16,
    /// Bytes in this slot (> 0), or `NETIF_RSP_*` (< 0).
    pub status: i16,
}

impl RingEntry for RxResponse {
    const SIZE: usize = 8;
    fn encode(&self, out: &mut [u8]) {
        out[0..2].copy_from_slice(&self.id.to_le_bytes());
        out[2..4].copy_from_slice(&self.offset.to_le_bytes());
        out[4..6].copy_from_slice(&self.flags.to_le_bytes());
        out[6..8].copy_from_slice(&self.status.to_le_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        RxResponse {
            id: u16_at(b, 0),
            offset: u16_at(b, 2),
            flags: u16_at(b, 4),
            status: u16_at(b, 6) as i16,
        }
    }
}

impl RxResponse {
    /// An extra info written into a response slot (netif.h: "if an extra
    /// info overlays an rx response the frontend can assume that it is in
    /// the same ring slot as the request that was consumed").
    pub fn from_extra(extra: &ExtraInfo) -> RxResponse {
        let mut b = [0u8; 8];
        extra.encode(&mut b);
        RxResponse::decode(&b)
    }
}

/// GSO parameters (`netif_extra_info.u.gso`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gso {
    /// Maximum segment payload (the TCP MSS); never 0.
    pub size: u16,
    /// [`XEN_NETIF_GSO_TYPE_TCPV4`] or [`XEN_NETIF_GSO_TYPE_TCPV6`].
    pub kind: u8,
    /// `XEN_NETIF_GSO_FEAT_*` (none defined yet; passed through).
    pub features: u16,
}

/// `struct netif_extra_info` (8 bytes): type, flags, 6 bytes of union.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExtraInfo {
    /// `XEN_NETIF_EXTRA_TYPE_*`.
    pub kind: u8,
    /// `XEN_NETIF_EXTRA_FLAG_*`.
    pub flags: u8,
    /// The union's bytes.
    pub data: [u8; 6],
}

impl ExtraInfo {
    /// Size of the struct.
    pub const SIZE: usize = 8;

    /// Reads 8 bytes.
    pub fn decode(b: &[u8]) -> ExtraInfo {
        let mut data = [0u8; 6];
        data.copy_from_slice(&b[2..8]);
        ExtraInfo {
            kind: b[0],
            flags: b[1],
            data,
        }
    }

    /// Writes 8 bytes.
    pub fn encode(&self, out: &mut [u8]) {
        out[0] = self.kind;
        out[1] = self.flags;
        out[2..8].copy_from_slice(&self.data);
    }

    /// A GSO extra (`u.gso` = {size u16, type u8, pad u8, features u16}).
    pub fn gso(gso: Gso, flags: u8) -> ExtraInfo {
        let mut data = [0u8; 6];
        data[0..2].copy_from_slice(&gso.size.to_le_bytes());
        data[2] = gso.kind;
        data[4..6].copy_from_slice(&gso.features.to_le_bytes());
        ExtraInfo {
            kind: XEN_NETIF_EXTRA_TYPE_GSO,
            flags,
            data,
        }
    }

    /// The `u.gso` view (meaningful when `kind` is GSO).
    pub fn as_gso(&self) -> Gso {
        Gso {
            size: u16_at(&self.data, 0),
            kind: self.data[2],
            features: u16_at(&self.data, 4),
        }
    }

    /// True when another extra info slot follows.
    pub fn more(&self) -> bool {
        self.flags & XEN_NETIF_EXTRA_FLAG_MORE != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xcp_ring::sring::{ring_size, slot_size};

    #[test]
    fn sizes_match_netif_h() {
        assert_eq!(slot_size::<TxRequest, TxResponse>(), 12);
        assert_eq!(slot_size::<RxRequest, RxResponse>(), 8);
        // __RING_SIZE of both netif rings on one page: 256 slots.
        assert_eq!(ring_size(PAGE_SIZE, 12), 256);
        assert_eq!(ring_size(PAGE_SIZE, 8), 256);
    }

    #[test]
    fn tx_request_bytes() {
        let b = [
            0x78, 0x56, 0x34, 0x12, 0x10, 0x00, 0x0c, 0x00, 0x07, 0x00, 0xea, 0x05,
        ];
        let r = TxRequest::decode(&b);
        assert_eq!(
            r,
            TxRequest {
                gref: 0x1234_5678,
                offset: 16,
                flags: NETTXF_MORE_DATA | NETTXF_EXTRA_INFO,
                id: 7,
                size: 1514
            }
        );
        let mut out = [0u8; 12];
        r.encode(&mut out);
        assert_eq!(out, b);
    }

    #[test]
    fn responses_bytes() {
        let mut out = [0u8; 4];
        TxResponse {
            id: 0x0102,
            status: NETIF_RSP_ERROR,
        }
        .encode(&mut out);
        assert_eq!(out, [0x02, 0x01, 0xff, 0xff]);
        let mut out = [0u8; 8];
        RxResponse {
            id: 3,
            offset: 0,
            flags: NETRXF_MORE_DATA,
            status: 4096,
        }
        .encode(&mut out);
        assert_eq!(out, [3, 0, 0, 0, 4, 0, 0x00, 0x10]);
        assert_eq!(RxResponse::decode(&out).status, 4096);
    }

    #[test]
    fn rx_request_ignores_pad() {
        let r = RxRequest::decode(&[9, 0, 0xff, 0xff, 1, 0, 0, 0]);
        assert_eq!(r, RxRequest { id: 9, gref: 1 });
    }

    #[test]
    fn gso_extra_overlays_both_rings() {
        let g = Gso {
            size: 1448,
            kind: XEN_NETIF_GSO_TYPE_TCPV4,
            features: 0,
        };
        let e = ExtraInfo::gso(g, XEN_NETIF_EXTRA_FLAG_MORE);
        let mut b = [0u8; 8];
        e.encode(&mut b);
        assert_eq!(b, [1, 1, 0xa8, 0x05, 1, 0, 0, 0]);
        assert!(e.more());
        assert_eq!(e.as_gso(), g);
        // As the first 8 bytes of a tx slot...
        let mut slot = [0u8; 12];
        slot[..8].copy_from_slice(&b);
        assert_eq!(TxRequest::decode(&slot).as_extra(), e);
        // ...and as an rx response.
        let mut out = [0u8; 8];
        RxResponse::from_extra(&e).encode(&mut out);
        assert_eq!(out, b);
    }
}

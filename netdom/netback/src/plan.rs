//! Grant-copy plans: what the board copies, and where.
//!
//! read first: xen/include/public/grant_table.h (`GNTTABOP_copy`,
//! `struct gnttab_copy`).
//!
//! The engine never touches guest memory. For each packet it hands the
//! board a plan: a list of [`GrantCopy`]s between one guest page (a grant
//! of the frontend's) and a local packet buffer. The board turns each into
//! a `gnttab_copy` (source or destination `GNTCOPY_source_gref` /
//! `GNTCOPY_dest_gref` on the guest side), runs the batch, and completes the
//! plan with whether every copy succeeded. Invariant (tested by proptest):
//! `page_offset + len <= 4096` and `buf_offset + len <= ` the plan's
//! packet length, for every copy the engine emits.

use alloc::vec::Vec;

use crate::wire::Gso;

/// One grant copy between a frontend page and the local packet buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrantCopy {
    /// The frontend's domain.
    pub domid: u16,
    /// The frontend's grant of the page.
    pub gref: u32,
    /// Where in that page.
    pub page_offset: u16,
    /// Bytes to copy (1..=4096).
    pub len: u16,
    /// Where in the local packet buffer.
    pub buf_offset: u32,
}

impl GrantCopy {
    /// The copy's range in the packet buffer.
    pub fn buf_range(&self) -> core::ops::Range<usize> {
        let start = self.buf_offset as usize;
        start..start + usize::from(self.len)
    }

    /// The copy's range in the guest page.
    pub fn page_range(&self) -> core::ops::Range<usize> {
        let start = usize::from(self.page_offset);
        start..start + usize::from(self.len)
    }
}

/// Identifies a plan to the engine that issued it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ticket {
    /// The connection it belongs to (plans of an earlier connection are
    /// stale: their completion only returns their budget).
    pub(crate) generation: u64,
    /// Issue order within the VIF.
    pub(crate) seq: u64,
    /// Budget bytes it holds.
    pub(crate) cost: usize,
}

/// A guest packet to copy out of the frontend (tx): copy guest → `buf`.
#[derive(Debug)]
pub struct TxPlan {
    pub(crate) ticket: Ticket,
    /// The copies, guest page → `buf`, in packet order.
    pub copies: Vec<GrantCopy>,
    /// The packet buffer (the packet's length, zeroed); the board copies
    /// into it.
    pub buf: Vec<u8>,
    /// GSO parameters the frontend gave.
    pub gso: Option<Gso>,
    /// `NETTXF_csum_blank`: the checksum is to be computed.
    pub csum_blank: bool,
    /// `NETTXF_data_validated`.
    pub data_validated: bool,
}

/// A packet the guest sent, ready for the bridge.
#[derive(Debug, PartialEq, Eq)]
pub struct TxPacket {
    /// The frame, Ethernet header first.
    pub bytes: Vec<u8>,
    /// GSO parameters, when it is a GSO packet.
    pub gso: Option<Gso>,
    /// The checksum is blank (offload).
    pub csum_blank: bool,
    /// The checksum was validated.
    pub data_validated: bool,
}

/// A packet to copy into the frontend's posted buffers (rx): copy the
/// board's packet bytes → guest pages.
#[derive(Debug)]
pub struct RxPlan {
    pub(crate) ticket: Ticket,
    /// The copies, packet → guest page, in packet order.
    pub copies: Vec<GrantCopy>,
    /// The packet's length.
    pub len: usize,
}

/// What the bridge says about a packet for the guest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxMeta {
    /// GSO parameters (the packet is one large TCP segment).
    pub gso: Option<Gso>,
    /// The checksum is blank (`NETRXF_csum_blank`).
    pub csum_blank: bool,
    /// The checksum was validated (`NETRXF_data_validated`).
    pub data_validated: bool,
}

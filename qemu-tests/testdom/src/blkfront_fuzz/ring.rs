//! The ring of `blkfront-fuzz`: blkif requests as a blkfront lays them
//! out, the attacks a blkfront gone bad writes, and the PRNG that picks
//! them.
//!
//! Read first: xen/include/public/io/blkif.h, io/ring.h;
//! stordom/blkback/src/request.rs (which request gets an error response
//! and what disconnects).

use xcp_runtime::evtchn;
use xcp_runtime::shared_page::PageView;

pub(super) use crate::pvfront::{Granted, Rng};

// io/ring.h: the shared ring's header, then the slots.
pub(super) const REQ_PROD: usize = 0;
pub(super) const REQ_EVENT: usize = 4;
pub(super) const RSP_PROD: usize = 8;
pub(super) const RSP_EVENT: usize = 12;
pub(super) const RING_HEADER: usize = 64;
/// A slot: the union of blkif_request (112 B on x86_64) and response.
pub(super) const SLOT: usize = 112;
/// Slots of a one-page ring: (4096 - 64) / 112 rounded down to a power
/// of two.
pub(super) const RING_SIZE: u32 = 32;

// blkif.h's operations and statuses.
pub(super) const OP_READ: u8 = 0;
pub(super) const OP_WRITE: u8 = 1;
pub(super) const OP_INDIRECT: u8 = 6;
pub(super) const RSP_OKAY: i16 = 0;
/// A whole page in sectors (first_sect 0, last_sect 7).
pub(super) const LAST_SECT: u8 = 7;

/// A request with `segs` (gref, first_sect, last_sect) and `nr_segments`
/// as given (it may lie about them).
pub(super) fn direct(
    op: u8,
    nr_segments: u8,
    id: u64,
    sector: u64,
    segs: &[(u32, u8, u8)],
) -> [u8; SLOT] {
    let mut b = [0u8; SLOT];
    b[0] = op;
    b[1] = nr_segments;
    b[8..16].copy_from_slice(&id.to_le_bytes());
    b[16..24].copy_from_slice(&sector.to_le_bytes());
    for (i, &(gref, first, last)) in segs.iter().take(11).enumerate() {
        let at = 24 + 8 * i;
        b[at..at + 4].copy_from_slice(&gref.to_le_bytes());
        b[at + 4] = first;
        b[at + 5] = last;
    }
    b
}

/// A blkif_request_indirect: `nr_segments` segments described in the
/// pages `grefs` grants.
pub(super) fn indirect(
    op: u8,
    nr_segments: u16,
    id: u64,
    sector: u64,
    grefs: &[u32],
) -> [u8; SLOT] {
    let mut b = [0u8; SLOT];
    b[0] = OP_INDIRECT;
    b[1] = op;
    b[2..4].copy_from_slice(&nr_segments.to_le_bytes());
    b[8..16].copy_from_slice(&id.to_le_bytes());
    b[16..24].copy_from_slice(&sector.to_le_bytes());
    for (i, gref) in grefs.iter().take(8).enumerate() {
        let at = 28 + 4 * i;
        b[at..at + 4].copy_from_slice(&gref.to_le_bytes());
    }
    b
}

/// A grant reference that is not ours to give.
fn bogus_gref(rng: &mut Rng) -> u32 {
    0x8000_0000 | rng.next() as u32
}

/// A request that is wrong but legal: answered with an error status, the
/// VBD staying connected.
#[derive(Clone, Copy, Debug)]
pub(super) enum Bad {
    /// nr_segments 200 (more than 11).
    TooManySegments,
    /// A segment with first_sect > last_sect.
    BackwardsSegment,
    /// A segment ending past its page (last_sect 8..=255).
    PastPage,
    /// Sectors past the end of the disk.
    PastEnd,
    /// An indirect request whose indirect page grant is bogus.
    IndirectBadGrant,
    /// A read into a page whose grant is bogus.
    BogusGrant,
    /// An operation that does not exist.
    UnknownOp,
}

pub(super) const BADS: [Bad; 7] = [
    Bad::TooManySegments,
    Bad::BackwardsSegment,
    Bad::PastPage,
    Bad::PastEnd,
    Bad::IndirectBadGrant,
    Bad::BogusGrant,
    Bad::UnknownOp,
];

/// One burst of garbage: what should disconnect us.
#[derive(Clone, Copy, Debug)]
pub(super) enum Attack {
    /// `req_prod` more than a ring ahead of what the backend took.
    FarAhead,
    /// A random `req_prod`, slots untouched.
    RandomIndex,
    /// Two reads with the same id in one kick: the second leaves the
    /// ring while the first is in flight.
    ReusedId,
    /// Random bytes in 1..=32 slots (requests of every kind, mostly
    /// answered with errors), `req_prod` past them.
    Garbage,
}

pub(super) const ATTACKS: [Attack; 4] = [
    Attack::FarAhead,
    Attack::RandomIndex,
    Attack::ReusedId,
    Attack::Garbage,
];

/// One life of the frontend: the ring page, two data pages, all
/// granted, and a channel.
pub(super) struct Ring {
    pub(super) ring: Granted,
    /// What the backend reads into / writes from.
    pub(super) data: [Granted; 2],
    pub(super) port: u32,
    /// Our `req_prod`.
    pub(super) prod: u32,
    /// Requests answered (our `rsp_cons`).
    pub(super) cons: u32,
    /// The next request id.
    pub(super) next_id: u64,
}

impl Ring {
    pub(super) fn view(&self) -> PageView<'_> {
        self.ring.frame.view()
    }

    fn slot(index: u32) -> usize {
        RING_HEADER + (index % RING_SIZE) as usize * SLOT
    }

    pub(super) fn id(&mut self) -> u64 {
        self.next_id = self.next_id.wrapping_add(1);
        self.next_id
    }

    /// Writes a request in the next slot (not yet published).
    pub(super) fn put(&mut self, req: &[u8; SLOT]) {
        self.view().write(Self::slot(self.prod), req);
        self.prod = self.prod.wrapping_add(1);
    }

    /// Publishes `req_prod` and kicks the backend.
    pub(super) fn publish(&self, req_prod: u32) {
        self.view().store_u32(REQ_PROD, req_prod);
        evtchn::send(self.port);
    }

    /// The backend's `rsp_prod`.
    pub(super) fn rsp_prod(&self) -> u32 {
        self.view().load_u32(RSP_PROD)
    }

    /// The response in slot `index`: its id and status.
    pub(super) fn response(&self, index: u32) -> (u64, i16) {
        let mut r = [0u8; 16];
        self.view().read(Self::slot(index), &mut r);
        let mut id = [0u8; 8];
        id.copy_from_slice(&r[0..8]);
        (u64::from_le_bytes(id), i16::from_le_bytes([r[10], r[11]]))
    }

    /// A wrong but legal request on a disk of `sectors` sectors.
    pub(super) fn bad(&mut self, rng: &mut Rng, bad: Bad, sectors: u64) -> [u8; SLOT] {
        let id = self.id();
        let page = self.data[0].gref;
        match bad {
            Bad::TooManySegments => direct(OP_READ, 200, id, 0, &[(page, 0, LAST_SECT)]),
            Bad::BackwardsSegment => {
                let first = 1 + rng.below(7) as u8;
                direct(OP_READ, 1, id, 0, &[(page, first, first - 1)])
            }
            Bad::PastPage => {
                let last = 8 + rng.below(248) as u8;
                direct(OP_READ, 1, id, 0, &[(page, 0, last)])
            }
            Bad::PastEnd => {
                let sector = sectors
                    .saturating_sub(rng.below(4).into())
                    .saturating_add(rng.next() % 1024);
                direct(OP_READ, 1, id, sector, &[(page, 0, LAST_SECT)])
            }
            Bad::IndirectBadGrant => {
                let segs = 1 + rng.below(16) as u16;
                indirect(OP_READ, segs, id, 0, &[bogus_gref(rng)])
            }
            Bad::BogusGrant => direct(OP_READ, 1, id, 0, &[(bogus_gref(rng), 0, LAST_SECT)]),
            Bad::UnknownOp => {
                let op = 7 + rng.below(249) as u8;
                direct(op, 1, id, 0, &[(page, 0, LAST_SECT)])
            }
        }
    }

    /// Writes one attack into the ring and kicks the backend.
    pub(super) fn attack(&mut self, rng: &mut Rng, attack: Attack) {
        match attack {
            Attack::FarAhead => {
                let prod = self.prod.wrapping_add(RING_SIZE + 1 + rng.below(1 << 20));
                self.prod = prod;
                self.publish(prod);
            }
            Attack::RandomIndex => {
                let prod = rng.next() as u32;
                self.prod = prod;
                self.publish(prod);
            }
            Attack::ReusedId => {
                let id = self.id();
                let (a, b) = (self.data[0].gref, self.data[1].gref);
                let sector = u64::from(rng.below(64));
                self.put(&direct(OP_READ, 1, id, sector, &[(a, 0, LAST_SECT)]));
                self.put(&direct(OP_READ, 1, id, sector, &[(b, 0, LAST_SECT)]));
                self.publish(self.prod);
            }
            Attack::Garbage => {
                for _ in 0..=rng.below(RING_SIZE) {
                    let mut b = [0u8; SLOT];
                    for chunk in b.chunks_mut(8) {
                        chunk.copy_from_slice(&rng.next().to_le_bytes());
                    }
                    // Mostly reads and writes, so segments get looked at.
                    b[0] = match rng.below(4) {
                        0 => b[0],
                        1 => OP_INDIRECT,
                        _ => b[0] & 1,
                    };
                    self.put(&b);
                }
                // Random bytes in our event index too (the backend reads
                // it to decide whether to kick us): it must not trust it
                // either.
                self.view().store_u32(RSP_EVENT, rng.next() as u32);
                self.publish(self.prod);
            }
        }
    }
}

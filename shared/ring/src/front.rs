//! The front end of a shared ring: produces requests, consumes responses.
//!
//! read first: io/ring.h (`FRONT_RING_INIT`, `RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`,
//! `RING_FINAL_CHECK_FOR_RESPONSES`, `RING_RESPONSE_PROD_OVERFLOW`).
//!
//! Private state is Xen's `__name##_front_ring` {req_prod_pvt, rsp_cons,
//! nr_ents} plus `req_pushed`, the last req_prod we published, which bounds
//! what the backend may answer.

use core::marker::PhantomData;

use crate::sring::{self, RSP_EVENT, RSP_PROD};
use crate::{RingEntry, RingError, SharedPage, MAX_ENTRY_SIZE};

/// Front end of a ring of `Req` requests and `Rsp` responses on page `P`.
pub struct FrontRing<P: SharedPage, Req: RingEntry, Rsp: RingEntry> {
    page: P,
    req_prod_pvt: u32,
    rsp_cons: u32,
    nr_ents: u32,
    req_pushed: u32,
    _entries: PhantomData<fn() -> (Req, Rsp)>,
}

impl<P: SharedPage, Req: RingEntry, Rsp: RingEntry> FrontRing<P, Req, Rsp> {
    /// `XEN_FRONT_RING_INIT`: initialises the shared header
    /// (`SHARED_RING_INIT`) and the front's private indexes to 0.
    pub fn init(page: P) -> Result<Self, RingError> {
        let ring = Self::attach(page, 0)?;
        sring::shared_ring_init(&ring.page);
        Ok(ring)
    }

    /// `FRONT_RING_ATTACH`: resumes at index `idx` without touching the page.
    pub fn attach(page: P, idx: u32) -> Result<Self, RingError> {
        let nr_ents = sring::checked_ring_size::<P, Req, Rsp>(&page)?;
        Ok(FrontRing {
            page,
            req_prod_pvt: idx,
            rsp_cons: idx,
            nr_ents,
            req_pushed: idx,
            _entries: PhantomData,
        })
    }

    /// `RING_SIZE`: number of slots.
    pub fn size(&self) -> u32 {
        self.nr_ents
    }

    /// The shared page.
    pub fn page(&self) -> &P {
        &self.page
    }

    /// Private producer index (requests queued, pushed or not).
    pub fn req_prod_pvt(&self) -> u32 {
        self.req_prod_pvt
    }

    /// Private consumer index of responses.
    pub fn rsp_cons(&self) -> u32 {
        self.rsp_cons
    }

    /// `RING_FREE_REQUESTS`.
    pub fn free_requests(&self) -> u32 {
        self.nr_ents
            .wrapping_sub(self.req_prod_pvt.wrapping_sub(self.rsp_cons))
    }

    /// `RING_FULL`.
    pub fn full(&self) -> bool {
        self.free_requests() == 0
    }

    /// Writes `req` into the next free slot (`*RING_GET_REQUEST(r,
    /// req_prod_pvt++) = req`); the backend sees it after [`Self::push_requests`].
    pub fn queue_request(&mut self, req: &Req) -> Result<(), RingError> {
        if self.full() {
            return Err(RingError::Full);
        }
        let mut buf = [0u8; MAX_ENTRY_SIZE];
        let bytes = &mut buf[..Req::SIZE];
        req.encode(bytes);
        let slot = sring::slot_size::<Req, Rsp>();
        self.page.write(
            sring::slot_offset(self.req_prod_pvt, self.nr_ents, slot),
            bytes,
        );
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// `RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`: publishes queued requests;
    /// returns true when the backend must be kicked on the event channel.
    pub fn push_requests(&mut self) -> bool {
        let old = self.page.load_u32(sring::REQ_PROD);
        let new = self.req_prod_pvt;
        // store_u32 is Release: the backend sees the requests before req_prod.
        self.page.store_u32(sring::REQ_PROD, new);
        self.req_pushed = new;
        // "back sees new requests /before/ we check req_event"
        self.page.mb();
        sring::need_notify(old, new, self.page.load_u32(sring::REQ_EVENT))
    }

    /// `RING_HAS_UNCONSUMED_RESPONSES` as a count, with the overflow check:
    /// a backend answering more than we pushed is a protocol error.
    pub fn unconsumed_responses(&self) -> Result<u32, RingError> {
        let rsp_prod = self.page.load_u32(RSP_PROD);
        let n = rsp_prod.wrapping_sub(self.rsp_cons);
        // Stricter than RING_RESPONSE_PROD_OVERFLOW (n > RING_SIZE): only
        // requests we pushed can have been answered.
        if n > self.req_pushed.wrapping_sub(self.rsp_cons) || n > self.nr_ents {
            return Err(RingError::ResponseOverflow);
        }
        Ok(n)
    }

    /// Copies the next response out of the page (RING_COPY_RESPONSE,
    /// rsp_cons++), or `None` when there is none.
    pub fn next_response(&mut self) -> Result<Option<Rsp>, RingError> {
        if self.unconsumed_responses()? == 0 {
            return Ok(None);
        }
        let mut buf = [0u8; MAX_ENTRY_SIZE];
        let bytes = &mut buf[..Rsp::SIZE];
        let slot = sring::slot_size::<Req, Rsp>();
        self.page
            .read(sring::slot_offset(self.rsp_cons, self.nr_ents, slot), bytes);
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
        Ok(Some(Rsp::decode(bytes)))
    }

    /// `RING_FINAL_CHECK_FOR_RESPONSES`: true when responses are pending;
    /// otherwise sets rsp_event = rsp_cons + 1 so that the next response
    /// kicks us, and checks again (the caller may then sleep on false).
    pub fn final_check_for_responses(&mut self) -> Result<bool, RingError> {
        if self.unconsumed_responses()? != 0 {
            return Ok(true);
        }
        self.page
            .store_u32(RSP_EVENT, self.rsp_cons.wrapping_add(1));
        self.page.mb();
        Ok(self.unconsumed_responses()? != 0)
    }
}

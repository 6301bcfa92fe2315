//! The back end of a shared ring: consumes requests, produces responses.
//!
//! read first: io/ring.h (`BACK_RING_INIT`, `RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`,
//! `RING_FINAL_CHECK_FOR_REQUESTS`, `RING_REQUEST_PROD_OVERFLOW`).
//!
//! The frontend controls every byte of the page. req_prod is read with
//! Acquire, bounded against the ring size, and each request is copied out of
//! its slot once before it is decoded (XSA-155).

use core::marker::PhantomData;

use crate::sring::{self, REQ_EVENT, REQ_PROD};
use crate::{RingEntry, RingError, SharedPage, MAX_ENTRY_SIZE};

/// Back end of a ring of `Req` requests and `Rsp` responses on page `P`.
pub struct BackRing<P: SharedPage, Req: RingEntry, Rsp: RingEntry> {
    page: P,
    rsp_prod_pvt: u32,
    req_cons: u32,
    nr_ents: u32,
    _entries: PhantomData<fn() -> (Req, Rsp)>,
}

impl<P: SharedPage, Req: RingEntry, Rsp: RingEntry> BackRing<P, Req, Rsp> {
    /// `BACK_RING_INIT`: private indexes 0; the page is the front's to init.
    pub fn init(page: P) -> Result<Self, RingError> {
        Self::attach(page, 0)
    }

    /// `BACK_RING_ATTACH`: resumes at index `idx`.
    pub fn attach(page: P, idx: u32) -> Result<Self, RingError> {
        let nr_ents = sring::checked_ring_size::<P, Req, Rsp>(&page)?;
        Ok(BackRing {
            page,
            rsp_prod_pvt: idx,
            req_cons: idx,
            nr_ents,
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

    /// Gives the page back (to unmap it) when the ring is torn down.
    pub fn into_page(self) -> P {
        self.page
    }

    /// Private consumer index of requests.
    pub fn req_cons(&self) -> u32 {
        self.req_cons
    }

    /// Private producer index of responses (queued, pushed or not).
    pub fn rsp_prod_pvt(&self) -> u32 {
        self.rsp_prod_pvt
    }

    /// Requests consumed but not yet answered.
    pub fn requests_in_flight(&self) -> u32 {
        self.req_cons.wrapping_sub(self.rsp_prod_pvt)
    }

    /// `XEN_RING_NR_UNCONSUMED_REQUESTS`, after checking req_prod:
    /// `RING_REQUEST_PROD_OVERFLOW` or `req_prod - req_cons > RING_SIZE` is a
    /// protocol error.
    pub fn unconsumed_requests(&self) -> Result<u32, RingError> {
        let req_prod = self.page.load_u32(REQ_PROD);
        let req = req_prod.wrapping_sub(self.req_cons);
        if req_prod.wrapping_sub(self.rsp_prod_pvt) > self.nr_ents || req > self.nr_ents {
            return Err(RingError::RequestOverflow);
        }
        // The C macro's min(): never more than the slots not awaiting a response.
        let rsp = self.nr_ents.wrapping_sub(self.requests_in_flight());
        Ok(req.min(rsp))
    }

    /// Copies the next request out of the page once (RING_COPY_REQUEST,
    /// req_cons++), or `None` when there is none.
    pub fn next_request(&mut self) -> Result<Option<Req>, RingError> {
        if self.unconsumed_requests()? == 0 {
            return Ok(None);
        }
        let mut buf = [0u8; MAX_ENTRY_SIZE];
        let bytes = &mut buf[..Req::SIZE];
        let slot = sring::slot_size::<Req, Rsp>();
        self.page
            .read(sring::slot_offset(self.req_cons, self.nr_ents, slot), bytes);
        self.req_cons = self.req_cons.wrapping_add(1);
        Ok(Some(Req::decode(bytes)))
    }

    /// Writes `rsp` into the next response slot (`*RING_GET_RESPONSE(r,
    /// rsp_prod_pvt++) = rsp`); the front sees it after [`Self::push_responses`].
    pub fn queue_response(&mut self, rsp: &Rsp) -> Result<(), RingError> {
        if self.requests_in_flight() == 0 {
            return Err(RingError::NoRequestPending);
        }
        let mut buf = [0u8; MAX_ENTRY_SIZE];
        let bytes = &mut buf[..Rsp::SIZE];
        rsp.encode(bytes);
        let slot = sring::slot_size::<Req, Rsp>();
        self.page.write(
            sring::slot_offset(self.rsp_prod_pvt, self.nr_ents, slot),
            bytes,
        );
        self.rsp_prod_pvt = self.rsp_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// `RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`: publishes queued responses;
    /// returns true when the frontend must be kicked on the event channel.
    pub fn push_responses(&mut self) -> bool {
        let old = self.page.load_u32(sring::RSP_PROD);
        let new = self.rsp_prod_pvt;
        // store_u32 is Release: the front sees responses before rsp_prod.
        self.page.store_u32(sring::RSP_PROD, new);
        // "front sees new resps /before/ we check rsp_event"
        self.page.mb();
        sring::need_notify(old, new, self.page.load_u32(sring::RSP_EVENT))
    }

    /// `RING_FINAL_CHECK_FOR_REQUESTS`: true when requests are pending;
    /// otherwise sets req_event = req_cons + 1 so that the next push kicks
    /// us, and checks again (the caller may then sleep on false).
    pub fn final_check_for_requests(&mut self) -> Result<bool, RingError> {
        if self.unconsumed_requests()? != 0 {
            return Ok(true);
        }
        self.page
            .store_u32(REQ_EVENT, self.req_cons.wrapping_add(1));
        self.page.mb();
        Ok(self.unconsumed_requests()? != 0)
    }
}

//! Test doubles (feature `fake`): an in-memory grant table that runs copy
//! plans, and a scripted netfront over two shared pages.
//!
//! Stands in for `GNTTABOP_copy` in tests and simulations: pages are keyed
//! by (domid, gref); a copy naming a page that was never granted fails, as
//! Xen's would (`GNTST_bad_gntref`). Every copy is also checked against the
//! plan's invariants (inside the page, inside the packet buffer), so a test
//! that runs a plan through here proves the engine emitted a sane one.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use xcp_ring::{FrontRing, RingError, SharedPage};

use crate::plan::{GrantCopy, RxPlan, TxPlan};
use crate::wire::{RxRequest, RxResponse, TxRequest, TxResponse, PAGE_SIZE};

/// Granted pages by (domid, gref).
#[derive(Default)]
pub struct FakeGrants {
    pages: BTreeMap<(u16, u32), Box<[u8; PAGE_SIZE]>>,
    /// Copies run so far.
    pub copies: usize,
}

/// Checks a copy's invariants against a packet of `buf_len` bytes.
pub fn copy_in_bounds(c: &GrantCopy, buf_len: usize) -> bool {
    c.len != 0 && c.page_range().end <= PAGE_SIZE && c.buf_range().end <= buf_len
}

impl FakeGrants {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Grants a zeroed page, then writes `bytes` at `offset` in it.
    pub fn grant(&mut self, domid: u16, gref: u32, offset: usize, bytes: &[u8]) {
        let page = self
            .pages
            .entry((domid, gref))
            .or_insert_with(|| Box::new([0; PAGE_SIZE]));
        page[offset..offset + bytes.len()].copy_from_slice(bytes);
    }

    /// Ends a grant.
    pub fn revoke(&mut self, domid: u16, gref: u32) {
        self.pages.remove(&(domid, gref));
    }

    /// A granted page.
    pub fn page(&self, domid: u16, gref: u32) -> Option<&[u8; PAGE_SIZE]> {
        self.pages.get(&(domid, gref)).map(|p| &**p)
    }

    /// Runs a tx plan's copies into its buffer; false when one fails.
    /// Panics when the engine broke a copy invariant (a test failure).
    pub fn run_tx(&mut self, plan: &mut TxPlan) -> bool {
        let len = plan.buf.len();
        for c in &plan.copies {
            assert!(copy_in_bounds(c, len), "tx copy out of bounds: {c:?}");
            let Some(page) = self.pages.get(&(c.domid, c.gref)) else {
                return false;
            };
            plan.buf[c.buf_range()].copy_from_slice(&page[c.page_range()]);
            self.copies += 1;
        }
        true
    }

    /// Runs an rx plan's copies from `packet`; false when one fails.
    pub fn run_rx(&mut self, plan: &RxPlan, packet: &[u8]) -> bool {
        assert_eq!(plan.len, packet.len(), "plan for another packet");
        for c in &plan.copies {
            assert!(copy_in_bounds(c, plan.len), "rx copy out of bounds: {c:?}");
            let Some(page) = self.pages.get_mut(&(c.domid, c.gref)) else {
                return false;
            };
            page[c.page_range()].copy_from_slice(&packet[c.buf_range()]);
            self.copies += 1;
        }
        true
    }
}

/// A scripted netfront: the front ends of the tx and rx rings on two
/// pages the test shares with the `Vif` (e.g. `&xcp_ring::fake::MemPage`).
pub struct Netfront<P: SharedPage> {
    /// The tx ring (requests to the backend).
    pub tx: FrontRing<P, TxRequest, TxResponse>,
    /// The rx ring (posted buffers).
    pub rx: FrontRing<P, RxRequest, RxResponse>,
}

impl<P: SharedPage> Netfront<P> {
    /// Initialises both shared rings (`SHARED_RING_INIT`), as a frontend
    /// does before it writes `tx-ring-ref`/`rx-ring-ref`.
    pub fn new(tx: P, rx: P) -> Result<Self, RingError> {
        Ok(Netfront {
            tx: FrontRing::init(tx)?,
            rx: FrontRing::init(rx)?,
        })
    }

    /// Queues a packet's slots and pushes them; true when the backend
    /// must be kicked.
    pub fn send(&mut self, slots: &[TxRequest]) -> Result<bool, RingError> {
        for s in slots {
            self.tx.queue_request(s)?;
        }
        Ok(self.tx.push_requests())
    }

    /// Posts one rx buffer (a granted page) and pushes it.
    pub fn post_rx(&mut self, id: u16, gref: u32) -> Result<bool, RingError> {
        self.rx.queue_request(&RxRequest { id, gref })?;
        Ok(self.rx.push_requests())
    }

    /// Every tx response published so far.
    pub fn tx_responses(&mut self) -> Result<Vec<TxResponse>, RingError> {
        let mut v = Vec::new();
        while let Some(r) = self.tx.next_response()? {
            v.push(r);
        }
        Ok(v)
    }

    /// Every rx response published so far, with the ring slot it sits in.
    pub fn rx_responses(&mut self) -> Result<Vec<(u32, RxResponse)>, RingError> {
        let mut v = Vec::new();
        loop {
            let at = self.rx.rsp_cons() & (self.rx.size() - 1);
            match self.rx.next_response()? {
                Some(r) => v.push((at, r)),
                None => return Ok(v),
            }
        }
    }
}

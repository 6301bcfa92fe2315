//! Access to a page another domain shares with us (a foreign mapping or a
//! grant): volatile copies in and out and u32 indexes with acquire/release
//! ordering. The peer can change the page at any time, so callers copy out
//! once and validate the copy.

use core::marker::PhantomData;
use core::sync::atomic::{AtomicU32, Ordering};

/// A mapped page shared with a peer, by virtual address; it borrows the
/// guard that keeps the mapping alive.
#[derive(Clone, Copy, Debug)]
pub struct PageView<'a> {
    va: u64,
    mapping: PhantomData<&'a ()>,
}

impl PageView<'_> {
    /// A view of the page mapped at `va`.
    ///
    /// # Safety
    /// `va` must be page-aligned and mapped (readable, and writable if the
    /// view is written) for as long as the view is used.
    pub unsafe fn new<'a>(va: u64) -> PageView<'a> {
        PageView {
            va,
            mapping: PhantomData,
        }
    }

    /// Page size.
    pub const LEN: usize = xen_sys::PAGE_SIZE;

    fn check(offset: usize, len: usize) {
        assert!(
            offset <= Self::LEN && len <= Self::LEN - offset,
            "access inside the page"
        );
    }

    /// Copies `out.len()` bytes at `offset` out of the page.
    pub fn read(&self, offset: usize, out: &mut [u8]) {
        Self::check(offset, out.len());
        for (i, b) in out.iter_mut().enumerate() {
            // SAFETY: inside the mapped page (checked above); volatile
            // because the peer writes concurrently.
            *b = unsafe { core::ptr::read_volatile((self.va as *const u8).add(offset + i)) };
        }
    }

    /// Copies `data` into the page at `offset`.
    pub fn write(&self, offset: usize, data: &[u8]) {
        Self::check(offset, data.len());
        for (i, &b) in data.iter().enumerate() {
            // SAFETY: inside the mapped, writable page (checked above).
            unsafe { core::ptr::write_volatile((self.va as *mut u8).add(offset + i), b) };
        }
    }

    fn word(&self, offset: usize) -> &AtomicU32 {
        Self::check(offset, 4);
        assert!(offset.is_multiple_of(4), "aligned index");
        // SAFETY: an aligned u32 inside the mapped page, accessed atomically
        // by both sides.
        unsafe { AtomicU32::from_ptr((self.va as *mut u8).add(offset) as *mut u32) }
    }

    /// Reads the u32 at `offset` with acquire ordering.
    pub fn load_u32(&self, offset: usize) -> u32 {
        self.word(offset).load(Ordering::Acquire)
    }

    /// Writes the u32 at `offset` with release ordering.
    pub fn store_u32(&self, offset: usize, value: u32) {
        self.word(offset).store(value, Ordering::Release)
    }
}

impl xcp_ring::SharedPage for PageView<'_> {
    fn len(&self) -> usize {
        Self::LEN
    }

    fn read(&self, offset: usize, out: &mut [u8]) {
        PageView::read(self, offset, out)
    }

    fn write(&self, offset: usize, data: &[u8]) {
        PageView::write(self, offset, data)
    }

    fn load_u32(&self, offset: usize) -> u32 {
        PageView::load_u32(self, offset)
    }

    fn store_u32(&self, offset: usize, v: u32) {
        PageView::store_u32(self, offset, v)
    }
}

/// Implements `SharedPage` for an owned mapping through its `view()`, so a
/// channel can own its pages.
macro_rules! shared_page_via_view {
    ($t:ty) => {
        impl xcp_ring::SharedPage for $t {
            fn len(&self) -> usize {
                PageView::LEN
            }

            fn read(&self, offset: usize, out: &mut [u8]) {
                self.view().read(offset, out)
            }

            fn write(&self, offset: usize, data: &[u8]) {
                self.view().write(offset, data)
            }

            fn load_u32(&self, offset: usize) -> u32 {
                self.view().load_u32(offset)
            }

            fn store_u32(&self, offset: usize, v: u32) {
                self.view().store_u32(offset, v)
            }
        }
    };
}

shared_page_via_view!(crate::paging::Frame);
shared_page_via_view!(crate::paging::ForeignPage);
shared_page_via_view!(crate::gnttab::GrantMapping);

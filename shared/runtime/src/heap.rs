//! The global allocator: talc over a contiguous run of the direct map, with
//! the bytes in use and their high-water mark counted.
//!
//! The count is the sum of the live allocations' layout sizes (what the
//! domain asked for); talc's per-allocation tags and alignment padding come
//! on top. Single vCPU, no interrupt handlers: nothing allocates while the
//! meter's lock is held, and the lock never allocates.

use core::alloc::{GlobalAlloc, Layout};

use talc::{ErrOnOom, Span, Talc, Talck};

use crate::usage::Meter;

/// talc, and what is allocated from it.
struct Counted {
    talc: Talck<spin::Mutex<()>, ErrOnOom>,
    /// Bytes given to the heap at boot, and the meter of bytes in use.
    used: spin::Mutex<(u64, Meter)>,
}

#[global_allocator]
static ALLOCATOR: Counted = Counted {
    talc: Talc::new(ErrOnOom).lock(),
    used: spin::Mutex::new((0, Meter::new())),
};

fn size(layout: Layout) -> u64 {
    layout.size() as u64
}

// SAFETY: every method forwards to talc's `GlobalAlloc` with the caller's
// arguments unchanged and returns what talc returned; the counting around
// it touches no allocation.
unsafe impl GlobalAlloc for Counted {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        let ptr = unsafe { self.talc.alloc(layout) };
        if !ptr.is_null() {
            self.used.lock().1.take(size(layout));
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc_zeroed`'s contract.
        let ptr = unsafe { self.talc.alloc_zeroed(layout) };
        if !ptr.is_null() {
            self.used.lock().1.take(size(layout));
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract:
        // `ptr` came from this allocator with `layout`.
        unsafe { self.talc.dealloc(ptr, layout) };
        self.used.lock().1.give(size(layout));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        let new = unsafe { self.talc.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            // The new block before the old one is given back: a move holds
            // both for a moment, and the peak says so.
            let mut used = self.used.lock();
            used.1.take(new_size as u64);
            used.1.give(size(layout));
        }
        new
    }
}

/// Hands `[base, base + size)` to the allocator.
///
/// # Safety
/// The range is mapped writable, unused by anything else, and lives forever.
pub(crate) unsafe fn init(base: u64, size: usize) {
    let span = Span::from_base_size(base as *mut u8, size);
    // SAFETY: the caller gives us exclusive, mapped, 'static memory.
    let claimed = unsafe { ALLOCATOR.talc.lock().claim(span) };
    claimed.expect("heap span is large enough to claim");
    ALLOCATOR.used.lock().0 = size as u64;
}

/// Bytes given to the heap, and the meter of bytes allocated.
pub(crate) fn usage() -> (u64, Meter) {
    *ALLOCATOR.used.lock()
}

//! The global allocator: talc over a contiguous run of the direct map.

use talc::{ErrOnOom, Span, Talc, Talck};

#[global_allocator]
static ALLOCATOR: Talck<spin::Mutex<()>, ErrOnOom> = Talc::new(ErrOnOom).lock();

/// Hands `[base, base + size)` to the allocator.
///
/// # Safety
/// The range is mapped writable, unused by anything else, and lives forever.
pub(crate) unsafe fn init(base: u64, size: usize) {
    let span = Span::from_base_size(base as *mut u8, size);
    // SAFETY: the caller gives us exclusive, mapped, 'static memory.
    let claimed = unsafe { ALLOCATOR.lock().claim(span) };
    claimed.expect("heap span is large enough to claim");
}

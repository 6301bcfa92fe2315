//! Event channels, the part every domain needs from boot: notify a port, and
//! test-and-clear its pending bit in shared_info (2-level ABI).
//!
//! Read first: xen/include/public/event_channel.h.

use core::sync::atomic::{AtomicU64, Ordering};

const EVTCHNOP_SEND: u64 = 4;

/// Notifies the remote end of `port`.
pub fn send(port: u32) {
    let arg = port;
    // SAFETY: `struct evtchn_send` is one u32 port that lives across the call.
    let _ = unsafe {
        xen_sys::hypercall::hypercall2(
            xen_sys::hypercall::EVENT_CHANNEL_OP,
            EVTCHNOP_SEND,
            core::ptr::addr_of!(arg) as u64,
        )
    };
}

/// Clears `port`'s pending bit; returns whether it was set.
pub fn test_and_clear_pending(port: u32) -> bool {
    let Some(shared) = crate::paging::shared_info() else {
        return false;
    };
    let word = (port / 64) as usize;
    if word >= 64 {
        return false;
    }
    let bit = 1u64 << (port % 64);
    // SAFETY: shared_info stays mapped; evtchn_pending[word] is an aligned u64
    // that Xen sets atomically, so we clear it atomically too.
    let pending =
        unsafe { AtomicU64::from_ptr(core::ptr::addr_of_mut!((*shared).evtchn_pending[word])) };
    pending.fetch_and(!bit, Ordering::AcqRel) & bit != 0
}

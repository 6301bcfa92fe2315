//! Event channels (2-level ABI): allocate, bind, send, close, mask/unmask,
//! and the pending-bit test the event loop uses.
//!
//! Read first: xen/include/public/event_channel.h. Upcalls stay masked in
//! xcp-rs domains: the event loop sleeps in SCHEDOP_poll, which Xen wakes
//! whenever a polled port becomes pending, masked or not.

use core::sync::atomic::{AtomicU64, Ordering};

use xen_sys::event_channel as ec;
use xen_sys::xen::{DomId, DOMID_SELF};
use xen_sys::Errno;

/// Notifies the remote end of `port`.
pub fn send(port: u32) {
    // SAFETY: EVTCHNOP_send takes the port by value in a struct on our stack.
    let _ = unsafe { ec::send(port) };
}

/// A port `remote` can bind to with [`bind_interdomain`].
pub fn alloc_unbound(remote: DomId) -> Result<u32, Errno> {
    // SAFETY: plain values in a struct on our stack.
    unsafe { ec::alloc_unbound(DOMID_SELF, remote) }
}

/// A port of ours for `domid` that `remote` can bind (dom0 allocating on a
/// new domain's behalf, e.g. its console and xenstore channels).
pub fn alloc_unbound_for(domid: DomId, remote: DomId) -> Result<u32, Errno> {
    // SAFETY: plain values in a struct on our stack; Xen checks privilege.
    unsafe { ec::alloc_unbound(domid, remote) }
}

/// Connects to `remote_port` of `remote`; returns our local port.
pub fn bind_interdomain(remote: DomId, remote_port: u32) -> Result<u32, Errno> {
    // SAFETY: plain values in a struct on our stack.
    unsafe { ec::bind_interdomain(remote, remote_port) }
}

/// Binds virtual IRQ `virq` on vCPU 0 (e.g. VIRQ_DOM_EXC in dom0).
pub fn bind_virq(virq: u32) -> Result<u32, Errno> {
    // SAFETY: plain values in a struct on our stack.
    unsafe { ec::bind_virq(virq, 0) }
}

/// Binds physical IRQ `pirq` (which dom0 mapped for us) to a new port;
/// for an MSI(-X) pirq Xen also clears the guest mask of its entry.
pub fn bind_pirq(pirq: u32) -> Result<u32, Errno> {
    // SAFETY: plain values in a struct on our stack; Xen checks our right
    // to the pirq's IRQ.
    unsafe { ec::bind_pirq(pirq, 0) }
}

/// Tells Xen we handled an event of `pirq` (PHYSDEVOP_eoi). Xen 4.17
/// answers PHYSDEVOP_irq_status_query with `XENIRQSTAT_needs_eoi` for every
/// pirq of a guest that has no pirq_eoi_gmfn page; for maskable MSI-X
/// (ACKTYPE_NONE) the call has nothing left to do, but it is the ABI.
pub fn eoi_pirq(pirq: u32) -> Result<(), Errno> {
    // SAFETY: a plain value in a struct on our stack.
    unsafe { xen_sys::physdev::eoi(pirq) }
}

/// Closes `port`.
pub fn close(port: u32) -> Result<(), Errno> {
    // SAFETY: plain values in a struct on our stack.
    unsafe { ec::close(port) }
}

fn bit(array: *mut [u64; 64], port: u32) -> Option<(&'static AtomicU64, u64)> {
    let word = (port / 64) as usize;
    if word >= 64 {
        return None;
    }
    // SAFETY: `array` points into the shared_info page, mapped for the
    // domain's life; each word is an aligned u64 Xen updates atomically.
    let atomic = unsafe { AtomicU64::from_ptr(core::ptr::addr_of_mut!((*array)[word])) };
    Some((atomic, 1u64 << (port % 64)))
}

/// Clears `port`'s pending bit; returns whether it was set.
pub fn test_and_clear_pending(port: u32) -> bool {
    let Some(shared) = crate::paging::shared_info() else {
        return false;
    };
    // SAFETY: only the address of the field is computed.
    let pending = unsafe { core::ptr::addr_of_mut!((*shared).evtchn_pending) };
    match bit(pending, port) {
        Some((word, mask)) => word.fetch_and(!mask, Ordering::AcqRel) & mask != 0,
        None => false,
    }
}

/// Whether `port` is pending, leaving the bit as it is (for diagnosis).
pub fn is_pending(port: u32) -> bool {
    let Some(shared) = crate::paging::shared_info() else {
        return false;
    };
    // SAFETY: only the address of the field is computed.
    let pending = unsafe { core::ptr::addr_of_mut!((*shared).evtchn_pending) };
    bit(pending, port).is_some_and(|(word, mask)| word.load(Ordering::Acquire) & mask != 0)
}

/// Whether `port` is masked (for diagnosis).
pub fn is_masked(port: u32) -> bool {
    let Some(shared) = crate::paging::shared_info() else {
        return false;
    };
    // SAFETY: only the address of the field is computed.
    let masks = unsafe { core::ptr::addr_of_mut!((*shared).evtchn_mask) };
    bit(masks, port).is_some_and(|(word, mask)| word.load(Ordering::Acquire) & mask != 0)
}

/// Masks `port` (its events stay pending but raise no upcall).
pub fn mask(port: u32) {
    let Some(shared) = crate::paging::shared_info() else {
        return;
    };
    // SAFETY: only the address of the field is computed.
    let masks = unsafe { core::ptr::addr_of_mut!((*shared).evtchn_mask) };
    if let Some((word, m)) = bit(masks, port) {
        word.fetch_or(m, Ordering::AcqRel);
    }
}

/// Unmasks `port` through Xen, which re-raises an event left pending.
pub fn unmask(port: u32) -> Result<(), Errno> {
    // SAFETY: plain values in a struct on our stack.
    unsafe { ec::unmask(port) }
}

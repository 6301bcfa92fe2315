//! Port I/O for the privileged domain: QEMU's isa-debug-exit device, which
//! the tests use to turn a verdict into QEMU's exit status `(v << 1) | 1`.

use core::sync::atomic::{AtomicBool, Ordering};

/// I/O port of `-device isa-debug-exit,iobase=0xf4,iosize=0x04`.
pub const DEBUG_EXIT_PORT: u16 = 0xf4;

static IOPL_GRANTED: AtomicBool = AtomicBool::new(false);

/// Asks Xen for virtual IOPL 1 so `in`/`out` work in this PV kernel
/// (PHYSDEVOP_set_iopl). Only a domain with I/O port rights (dom0) succeeds.
pub fn enable_port_io() -> Result<(), xen_sys::Errno> {
    if IOPL_GRANTED.load(Ordering::Relaxed) {
        return Ok(());
    }
    const PHYSDEVOP_SET_IOPL: u64 = 6;
    let iopl: u32 = 1;
    // SAFETY: physdev_set_iopl is one u32 that lives across the call.
    let ret = unsafe {
        xen_sys::hypercall::hypercall2(
            xen_sys::hypercall::PHYSDEV_OP,
            PHYSDEVOP_SET_IOPL,
            core::ptr::addr_of!(iopl) as u64,
        )
    };
    xen_sys::Errno::check(ret)?;
    IOPL_GRANTED.store(true, Ordering::Relaxed);
    Ok(())
}

/// Writes `value` to QEMU's debug-exit port: QEMU exits with
/// `(value << 1) | 1`. Returns only if the port write did not end QEMU
/// (no such device, or no I/O rights).
pub fn debug_exit(value: u32) {
    if enable_port_io().is_err() {
        return;
    }
    // SAFETY: IOPL 1 was granted above, so Xen emulates this `out` for us;
    // the port belongs to QEMU's debug-exit device and has no memory effect.
    unsafe {
        core::arch::asm!("out dx, eax", in("dx") DEBUG_EXIT_PORT, in("eax") value, options(nomem, nostack));
    }
}

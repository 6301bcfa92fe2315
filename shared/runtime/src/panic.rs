//! The panic handler: a one-line report on the console, then the test verdict
//! port (if armed) and SHUTDOWN_crash, so the toolstack sees why we died.

use core::sync::atomic::{AtomicU32, Ordering};

static PANIC_EXIT: AtomicU32 = AtomicU32::new(0);

/// Makes a panic also write `code` to QEMU's debug-exit port (tests only).
pub fn set_panic_exit(code: u32) {
    PANIC_EXIT.store(code, Ordering::Relaxed);
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    use core::fmt::Write;
    let _ = writeln!(
        crate::console::Writer,
        "[{}] PANIC: {}",
        crate::time::Stamp(crate::time::now_ns()),
        info
    );
    let code = PANIC_EXIT.load(Ordering::Relaxed);
    if code != 0 {
        crate::io::debug_exit(code);
    }
    loop {
        // SAFETY: shutting ourselves down has no effect on our memory.
        unsafe { xen_sys::sched::shutdown(xen_sys::sched::SHUTDOWN_CRASH) };
    }
}

/// Shuts this domain down with `reason` (`SHUTDOWN_poweroff`, `_reboot`,
/// ...; xen/include/public/sched.h): its toolstack decides what follows.
pub fn shutdown(reason: u32) -> ! {
    log::info!("shutting down (SHUTDOWN code {reason})");
    loop {
        // SAFETY: shutting ourselves down has no effect on our memory.
        unsafe { xen_sys::sched::shutdown(reason) };
    }
}

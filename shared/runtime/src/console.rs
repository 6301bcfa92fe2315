//! The domain's console: Xen's console (console_io) for the initial domain,
//! the PV console ring (io/console.h) for every other domain.
//!
//! Read first: xen/include/public/io/console.h. The ring page holds
//! `in[1024]`, `out[2048]`, then `in_cons, in_prod, out_cons, out_prod`
//! (u32 each). We produce on `out`; the reader (dom0's console relay)
//! consumes and we kick it through the console event channel. dom0
//! produces on `in` (what a client types into the text console);
//! [`read_ring_input`] consumes it.

use core::sync::atomic::{fence, Ordering};

use xen_sys::io::console::{
    OFF_IN as IN_OFFSET, OFF_IN_CONS as IN_CONS_OFFSET, OFF_IN_PROD as IN_PROD_OFFSET,
    OFF_OUT as OUT_OFFSET, OFF_OUT_CONS as OUT_CONS_OFFSET, OFF_OUT_PROD as OUT_PROD_OFFSET,
    XENCONS_IN_SIZE, XENCONS_OUT_SIZE,
};

const IN_SIZE: u32 = XENCONS_IN_SIZE as u32;

const OUT_SIZE: u32 = XENCONS_OUT_SIZE as u32;

/// Where console bytes go.
#[derive(Clone, Copy, Debug)]
pub enum Console {
    /// `HYPERVISOR_console_io(CONSOLEIO_write)`: privileged domains only.
    Hypervisor,
    /// A PV console ring at virtual address `page`, kicked through `evtchn`.
    Ring {
        /// Virtual address of the mapped ring page.
        page: usize,
        /// Event channel of the console.
        evtchn: u32,
    },
}

static CONSOLE: spin::Mutex<Option<Console>> = spin::Mutex::new(None);

/// Installs the console; called once at boot.
pub(crate) fn init(console: Console) {
    *CONSOLE.lock() = Some(console);
}

/// Writes `bytes` to the console (dropped if none is set up yet).
pub fn write(bytes: &[u8]) {
    // A panic while the lock is held must still be able to print.
    let console = match CONSOLE.try_lock() {
        Some(guard) => *guard,
        None => {
            // SAFETY: only reached when a panic interrupted a holder on this
            // single vCPU; the Option<Console> it guards is Copy and intact.
            unsafe { CONSOLE.force_unlock() };
            *CONSOLE.lock()
        }
    };
    match console {
        Some(Console::Hypervisor) => {
            // SAFETY: console_io reads the slice only during the call.
            let _ = unsafe { xen_sys::console::write(bytes) };
        }
        Some(Console::Ring { page, evtchn }) => ring_write(page, evtchn, bytes),
        None => {}
    }
}

/// Reads serial input Xen holds for the hardware domain (dom0's operator
/// console) into `buf`; returns the byte count (0 when none is waiting or
/// this domain may not read it).
pub fn read_input(buf: &mut [u8]) -> usize {
    // SAFETY: console_io writes at most `buf.len()` bytes into `buf` during
    // the call and keeps no reference to it.
    match unsafe { xen_sys::console::read(buf) } {
        Ok(n) => (n as usize).min(buf.len()),
        Err(_) => 0,
    }
}

/// The PV console ring's event channel, if this domain has a ring console.
pub fn ring_port() -> Option<u32> {
    match *CONSOLE.lock() {
        Some(Console::Ring { evtchn, .. }) => Some(evtchn),
        _ => None,
    }
}

/// Reads bytes the console's reader put into the ring's `in[]` into `buf`
/// (a PV console ring only); returns the count (0 when none wait). dom0
/// writes `in_prod`: a producer more than the ring ahead is not trusted,
/// and what it claims is skipped.
pub fn read_ring_input(buf: &mut [u8]) -> usize {
    let Some(Console::Ring { page, evtchn }) = *CONSOLE.lock() else {
        return 0;
    };
    let cons_ptr = (page + IN_CONS_OFFSET) as *mut u32;
    let prod_ptr = (page + IN_PROD_OFFSET) as *const u32;
    // SAFETY: the ring page is mapped for the domain's life; the index
    // words are shared with the writer, hence volatile.
    let mut cons = unsafe { core::ptr::read_volatile(cons_ptr) };
    // SAFETY: as above.
    let prod = unsafe { core::ptr::read_volatile(prod_ptr) };
    fence(Ordering::Acquire);
    let pending = prod.wrapping_sub(cons);
    if pending > IN_SIZE {
        // SAFETY: as above.
        unsafe { core::ptr::write_volatile(cons_ptr, prod) };
        return 0;
    }
    let n = (pending as usize).min(buf.len());
    for b in buf.iter_mut().take(n) {
        let at = page + IN_OFFSET + (cons & (IN_SIZE - 1)) as usize;
        // SAFETY: `at` lies inside the in[] array of the mapped page.
        *b = unsafe { core::ptr::read_volatile(at as *const u8) };
        cons = cons.wrapping_add(1);
    }
    fence(Ordering::Release);
    // SAFETY: as above; the bytes were read before the fence.
    unsafe { core::ptr::write_volatile(cons_ptr, cons) };
    if n > 0 {
        // The writer may wait for room.
        crate::evtchn::send(evtchn);
    }
    n
}

/// The console writer's view of its reader (a stall drops bytes rather
/// than hanging the domain: `console_stall`).
static STALL: spin::Mutex<crate::console_stall::Stall> =
    spin::Mutex::new(crate::console_stall::Stall::DEFAULT);

fn ring_write(page: usize, evtchn: u32, bytes: &[u8]) {
    // A panic that interrupted a write on this single vCPU still prints,
    // with a stall state of its own.
    let mut own = crate::console_stall::Stall::DEFAULT;
    let mut guard = STALL.try_lock();
    let stall = match guard.as_deref_mut() {
        Some(s) => s,
        None => &mut own,
    };
    ring_put(page, evtchn, bytes, stall);
}

fn ring_put(page: usize, evtchn: u32, mut bytes: &[u8], stall: &mut crate::console_stall::Stall) {
    use crate::console_stall::Full;
    let cons_ptr = (page + OUT_CONS_OFFSET) as *const u32;
    let prod_ptr = (page + OUT_PROD_OFFSET) as *mut u32;
    while !bytes.is_empty() {
        // SAFETY: the ring page is mapped for the domain's life; the index
        // words are shared with the reader, hence volatile.
        let cons = unsafe { core::ptr::read_volatile(cons_ptr) };
        // SAFETY: as above.
        let mut prod = unsafe { core::ptr::read_volatile(prod_ptr) };
        let used = prod.wrapping_sub(cons);
        if used >= OUT_SIZE {
            match stall.full(cons, crate::time::now_ns()) {
                Full::Wait => {
                    // The reader is behind: kick it and let it run.
                    crate::evtchn::send(evtchn);
                    // SAFETY: yielding has no memory effects.
                    unsafe { xen_sys::sched::yield_now() };
                    continue;
                }
                Full::Drop => {
                    stall.dropped(bytes.len());
                    return;
                }
            }
        }
        if let Some(lost) = stall.room() {
            // Room again after a stall: say what was lost first.
            let mut marker = [0u8; crate::console_stall::MARKER_BYTES];
            let len = crate::console_stall::marker(lost, &mut marker);
            ring_put(page, evtchn, &marker[..len], stall);
            continue;
        }
        let room = (OUT_SIZE - used.min(OUT_SIZE)) as usize;
        let n = room.min(bytes.len());
        for &b in &bytes[..n] {
            let at = page + OUT_OFFSET + (prod & (OUT_SIZE - 1)) as usize;
            // SAFETY: `at` lies inside the out[] array of the mapped page.
            unsafe { core::ptr::write_volatile(at as *mut u8, b) };
            prod = prod.wrapping_add(1);
        }
        fence(Ordering::Release);
        // SAFETY: as above; publishing the bytes written before the fence.
        unsafe { core::ptr::write_volatile(prod_ptr, prod) };
        crate::evtchn::send(evtchn);
        bytes = &bytes[n..];
    }
}

/// Console bytes dropped since boot because the reader stalled.
pub fn dropped_bytes() -> u64 {
    STALL.try_lock().map_or(0, |s| s.total_dropped())
}

/// A `core::fmt::Write` sink over [`write`].
pub struct Writer;

impl core::fmt::Write for Writer {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        write(s.as_bytes());
        Ok(())
    }
}

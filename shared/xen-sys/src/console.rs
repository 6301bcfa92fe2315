//! `console_io` (xen/include/public/xen.h): the hypervisor console, which
//! only a privileged domain may write on a non-debug Xen.

use crate::hypercall;

/// `CONSOLEIO_write`
pub const CONSOLEIO_WRITE: u32 = 0;
/// `CONSOLEIO_read`
pub const CONSOLEIO_READ: u32 = 1;

/// Writes `bytes` to Xen's console.
///
/// # Safety
/// Must run in a Xen guest whose hypercall page is set up.
#[cfg(target_arch = "x86_64")]
pub unsafe fn write(bytes: &[u8]) -> Result<u64, crate::Errno> {
    // SAFETY: the buffer is valid for reads of its length during the call.
    let ret = unsafe {
        hypercall::hypercall3(
            hypercall::CONSOLE_IO,
            CONSOLEIO_WRITE as u64,
            bytes.len() as u64,
            bytes.as_ptr() as u64,
        )
    };
    crate::Errno::check(ret)
}

/// Reads up to `buf.len()` bytes of serial input Xen buffered for the
/// hardware domain (it raises `VIRQ_CONSOLE` when some arrive). Returns how
/// many it wrote into `buf`.
///
/// # Safety
/// Must run in a Xen guest whose hypercall page is set up.
#[cfg(target_arch = "x86_64")]
pub unsafe fn read(buf: &mut [u8]) -> Result<u64, crate::Errno> {
    // SAFETY: the buffer is valid for writes of its length during the call.
    let ret = unsafe {
        hypercall::hypercall3(
            hypercall::CONSOLE_IO,
            CONSOLEIO_READ as u64,
            buf.len() as u64,
            buf.as_mut_ptr() as u64,
        )
    };
    crate::Errno::check(ret)
}

//! `sched_op` (xen/include/public/sched.h): yield, block, poll, shutdown.

use crate::hypercall;
use crate::xen::{DomId, EvtchnPort};

pub use xen_abi::sched::*;

/// `SCHEDOP_yield`
pub const SCHEDOP_YIELD: u32 = 0;
/// `SCHEDOP_block`
pub const SCHEDOP_BLOCK: u32 = 1;
/// `SCHEDOP_shutdown`
pub const SCHEDOP_SHUTDOWN: u32 = 2;
/// `SCHEDOP_poll`
pub const SCHEDOP_POLL: u32 = 3;
/// `SCHEDOP_remote_shutdown`
pub const SCHEDOP_REMOTE_SHUTDOWN: u32 = 4;
/// `SCHEDOP_shutdown_code`
pub const SCHEDOP_SHUTDOWN_CODE: u32 = 5;
/// `SCHEDOP_watchdog`
pub const SCHEDOP_WATCHDOG: u32 = 6;

/// `struct sched_shutdown`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SchedShutdown {
    /// `SHUTDOWN_*`
    pub reason: u32,
}

/// `struct sched_poll`
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SchedPoll {
    /// Guest handle: the ports to poll.
    pub ports: *const EvtchnPort,
    /// Number of ports (Xen allows at most 128).
    pub nr_ports: u32,
    /// Absolute system time (ns) to give up at; 0 = never.
    pub timeout: u64,
}

/// `struct sched_remote_shutdown`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SchedRemoteShutdown {
    /// Remote domain.
    pub domain_id: DomId,
    /// `SHUTDOWN_*`
    pub reason: u32,
}

/// Shuts this domain down with `reason`; returns only if Xen refuses.
///
/// # Safety
/// Must run in a Xen guest whose hypercall page is set up.
#[cfg(target_arch = "x86_64")]
pub unsafe fn shutdown(reason: u32) -> i64 {
    let arg = SchedShutdown { reason };
    // SAFETY: `arg` lives across the call.
    unsafe {
        hypercall::hypercall2(
            hypercall::SCHED_OP,
            SCHEDOP_SHUTDOWN as u64,
            core::ptr::addr_of!(arg) as u64,
        )
    }
}

/// Blocks until one of `ports` is pending or system time reaches `timeout`
/// (ns; 0 waits forever). Works with event upcalls masked.
///
/// # Safety
/// Must run in a Xen guest whose hypercall page is set up.
#[cfg(target_arch = "x86_64")]
pub unsafe fn poll(ports: &[EvtchnPort], timeout: u64) -> Result<u64, crate::Errno> {
    let arg = SchedPoll {
        ports: ports.as_ptr(),
        nr_ports: ports.len() as u32,
        timeout,
    };
    // SAFETY: `arg` and the port array live across the call.
    let ret = unsafe {
        hypercall::hypercall2(
            hypercall::SCHED_OP,
            SCHEDOP_POLL as u64,
            core::ptr::addr_of!(arg) as u64,
        )
    };
    crate::Errno::check(ret)
}

/// Gives up the CPU.
///
/// # Safety
/// Must run in a Xen guest whose hypercall page is set up.
#[cfg(target_arch = "x86_64")]
pub unsafe fn yield_now() {
    // SAFETY: SCHEDOP_yield takes no argument.
    unsafe { hypercall::hypercall2(hypercall::SCHED_OP, SCHEDOP_YIELD as u64, 0) };
}

/// Asks Xen for a timer event (VIRQ_TIMER) at absolute system time `deadline`
/// ns; 0 cancels.
///
/// # Safety
/// Must run in a Xen guest whose hypercall page is set up.
#[cfg(target_arch = "x86_64")]
pub unsafe fn set_timer_op(deadline: u64) -> Result<u64, crate::Errno> {
    // SAFETY: plain integer argument.
    crate::Errno::check(unsafe { hypercall::hypercall1(hypercall::SET_TIMER_OP, deadline) })
}

//! Virtual IRQ numbers (the `VIRQ_*` list of xen/include/public/xen.h),
//! bound to event channels with `EVTCHNOP_bind_virq` (the hypercall is
//! xen-sys's).

/// `VIRQ_TIMER` (xen.h): per-vCPU timer, timebase update or requested timeout.
pub const VIRQ_TIMER: u32 = 0;
/// `VIRQ_DEBUG` (xen.h): per-vCPU, request to dump debug info.
pub const VIRQ_DEBUG: u32 = 1;
/// `VIRQ_CONSOLE` (xen.h): global, dom0, bytes received on emergency console.
pub const VIRQ_CONSOLE: u32 = 2;
/// `VIRQ_DOM_EXC` (xen.h): global, dom0, exceptional event for some domain.
pub const VIRQ_DOM_EXC: u32 = 3;
/// `VIRQ_TBUF` (xen.h): global, dom0, trace buffer has records.
pub const VIRQ_TBUF: u32 = 4;
/// `VIRQ_DEBUGGER` (xen.h): global, dom0, a domain paused for debugging.
pub const VIRQ_DEBUGGER: u32 = 6;
/// `VIRQ_XENOPROF` (xen.h): per-vCPU, new oprofile sample.
pub const VIRQ_XENOPROF: u32 = 7;
/// `VIRQ_CON_RING` (xen.h): global, dom0, bytes received on console.
pub const VIRQ_CON_RING: u32 = 8;
/// `VIRQ_PCPU_STATE` (xen.h): global, dom0, physical CPU state changed.
pub const VIRQ_PCPU_STATE: u32 = 9;
/// `VIRQ_MEM_EVENT` (xen.h): global, dom0, a memory event occurred.
pub const VIRQ_MEM_EVENT: u32 = 10;
/// `VIRQ_ARGO` (xen.h): global, Argo message notification.
pub const VIRQ_ARGO: u32 = 11;
/// `VIRQ_ENOMEM` (xen.h): global, dom0, Xen is low on heap memory.
pub const VIRQ_ENOMEM: u32 = 12;
/// `VIRQ_XENPMU` (xen.h): per-vCPU PMC interrupt.
pub const VIRQ_XENPMU: u32 = 13;
/// `VIRQ_ARCH_0` (xen.h): first architecture-specific VIRQ.
pub const VIRQ_ARCH_0: u32 = 16;
/// `NR_VIRQS` (xen.h)
pub const NR_VIRQS: u32 = 24;

//! `event_channel_op` (xen/include/public/event_channel.h): ports, VIRQs, IPIs.
//!
//! Read first: xen/include/public/event_channel.h and the `VIRQ_*` list in
//! xen/include/public/xen.h. Every struct here is the argument of one
//! `EVTCHNOP_*` sub-op; the typed wrappers fill it, make the call and return
//! the OUT fields.

#[cfg(target_arch = "x86_64")]
use crate::hypercall;
use crate::xen::{DomId, EvtchnPort};

pub use xen_abi::event_channel::*;

/// `EVTCHNOP_bind_interdomain`
pub const EVTCHNOP_BIND_INTERDOMAIN: u32 = 0;
/// `EVTCHNOP_bind_virq`
pub const EVTCHNOP_BIND_VIRQ: u32 = 1;
/// `EVTCHNOP_bind_pirq`
pub const EVTCHNOP_BIND_PIRQ: u32 = 2;
/// `EVTCHNOP_close`
pub const EVTCHNOP_CLOSE: u32 = 3;
/// `EVTCHNOP_send`
pub const EVTCHNOP_SEND: u32 = 4;
/// `EVTCHNOP_status`
pub const EVTCHNOP_STATUS: u32 = 5;
/// `EVTCHNOP_alloc_unbound`
pub const EVTCHNOP_ALLOC_UNBOUND: u32 = 6;
/// `EVTCHNOP_bind_ipi`
pub const EVTCHNOP_BIND_IPI: u32 = 7;
/// `EVTCHNOP_bind_vcpu`
pub const EVTCHNOP_BIND_VCPU: u32 = 8;
/// `EVTCHNOP_unmask`
pub const EVTCHNOP_UNMASK: u32 = 9;
/// `EVTCHNOP_reset`
pub const EVTCHNOP_RESET: u32 = 10;
/// `EVTCHNOP_init_control` (FIFO ABI)
pub const EVTCHNOP_INIT_CONTROL: u32 = 11;
/// `EVTCHNOP_expand_array` (FIFO ABI)
pub const EVTCHNOP_EXPAND_ARRAY: u32 = 12;
/// `EVTCHNOP_set_priority` (FIFO ABI)
pub const EVTCHNOP_SET_PRIORITY: u32 = 13;

/// `BIND_PIRQ__WILL_SHARE`: the pirq may be shared with other domains.
pub const BIND_PIRQ_WILL_SHARE: u32 = 1;

/// `EVTCHNSTAT_closed`: the port is not in use.
pub const EVTCHNSTAT_CLOSED: u32 = 0;
/// `EVTCHNSTAT_unbound`: waiting for an interdomain connection.
pub const EVTCHNSTAT_UNBOUND: u32 = 1;
/// `EVTCHNSTAT_interdomain`: connected to a remote domain.
pub const EVTCHNSTAT_INTERDOMAIN: u32 = 2;
/// `EVTCHNSTAT_pirq`: bound to a physical IRQ.
pub const EVTCHNSTAT_PIRQ: u32 = 3;
/// `EVTCHNSTAT_virq`: bound to a virtual IRQ.
pub const EVTCHNSTAT_VIRQ: u32 = 4;
/// `EVTCHNSTAT_ipi`: bound to a virtual IPI.
pub const EVTCHNSTAT_IPI: u32 = 5;

/// `EVTCHN_2L_NR_CHANNELS`: ports of the 2-level ABI on x86_64.
pub const EVTCHN_2L_NR_CHANNELS: u32 = 4096;

/// `struct evtchn_alloc_unbound`: a port `remote_dom` may bind to.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnAllocUnbound {
    /// IN: the domain that owns the new port (`DOMID_SELF` or a domain we control).
    pub dom: DomId,
    /// IN: the domain allowed to bind to it.
    pub remote_dom: DomId,
    /// OUT: the new port.
    pub port: EvtchnPort,
}

/// `struct evtchn_bind_interdomain`: connect to a remote unbound port.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindInterdomain {
    /// IN: the remote domain.
    pub remote_dom: DomId,
    /// IN: its unbound port.
    pub remote_port: EvtchnPort,
    /// OUT: our end.
    pub local_port: EvtchnPort,
}

/// `struct evtchn_bind_virq`: bind a VIRQ on a vCPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindVirq {
    /// IN: `VIRQ_*`.
    pub virq: u32,
    /// IN: the vCPU (0 for global VIRQs).
    pub vcpu: u32,
    /// OUT: the port.
    pub port: EvtchnPort,
}

/// `struct evtchn_bind_pirq`: bind a physical IRQ (privileged or passed through).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindPirq {
    /// IN: the pirq.
    pub pirq: u32,
    /// IN: `BIND_PIRQ__*`.
    pub flags: u32,
    /// OUT: the port.
    pub port: EvtchnPort,
}

/// `struct evtchn_bind_ipi`: a port for IPIs to `vcpu`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindIpi {
    /// IN: the vCPU notified.
    pub vcpu: u32,
    /// OUT: the port.
    pub port: EvtchnPort,
}

/// `struct evtchn_close`, also `evtchn_send` and `evtchn_unmask`: one port.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnClose {
    /// IN: the port.
    pub port: EvtchnPort,
}

/// `struct evtchn_send`: notify the other end of `port`.
pub type EvtchnSend = EvtchnClose;
/// `struct evtchn_unmask`: unmask `port` (and redeliver if pending).
pub type EvtchnUnmask = EvtchnClose;

/// `evtchn_status.u.unbound`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnStatusUnbound {
    /// The domain allowed to bind.
    pub dom: DomId,
}

/// `evtchn_status.u.interdomain`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnStatusInterdomain {
    /// The remote domain.
    pub dom: DomId,
    /// Its port.
    pub port: EvtchnPort,
}

/// `evtchn_status.u`: which member is valid depends on `status`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union EvtchnStatusU {
    /// `EVTCHNSTAT_unbound`
    pub unbound: EvtchnStatusUnbound,
    /// `EVTCHNSTAT_interdomain`
    pub interdomain: EvtchnStatusInterdomain,
    /// `EVTCHNSTAT_pirq`
    pub pirq: u32,
    /// `EVTCHNSTAT_virq`
    pub virq: u32,
}

impl Default for EvtchnStatusU {
    fn default() -> Self {
        EvtchnStatusU {
            interdomain: EvtchnStatusInterdomain::default(),
        }
    }
}

/// `struct evtchn_status`: what a port is bound to.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct EvtchnStatus {
    /// IN: the domain owning the port.
    pub dom: DomId,
    /// IN: the port.
    pub port: EvtchnPort,
    /// OUT: `EVTCHNSTAT_*`.
    pub status: u32,
    /// OUT: the vCPU the port notifies.
    pub vcpu: u32,
    /// OUT: per-status details.
    pub u: EvtchnStatusU,
}

/// `struct evtchn_bind_vcpu`: deliver `port` to another vCPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindVcpu {
    /// IN: the port.
    pub port: EvtchnPort,
    /// IN: the vCPU.
    pub vcpu: u32,
}

/// `struct evtchn_reset`: close every port of `dom`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnReset {
    /// IN: the domain.
    pub dom: DomId,
}

/// Calls `event_channel_op(cmd, arg)`.
///
/// # Safety
/// `arg` must point to the structure `cmd` expects, valid for reads and
/// writes across the call, and the operation must not close or rebind a port
/// another part of the program still relies on.
#[cfg(target_arch = "x86_64")]
pub unsafe fn event_channel_op<T>(cmd: u32, arg: *mut T) -> Result<u64, crate::Errno> {
    // SAFETY: forwarded contract.
    crate::Errno::check(unsafe {
        hypercall::hypercall2(hypercall::EVENT_CHANNEL_OP, cmd as u64, arg as u64)
    })
}

/// Allocates a port of `dom` that `remote_dom` may bind to.
///
/// # Safety
/// Must run in a Xen guest whose hypercall page is set up.
#[cfg(target_arch = "x86_64")]
pub unsafe fn alloc_unbound(dom: DomId, remote_dom: DomId) -> Result<EvtchnPort, crate::Errno> {
    let mut arg = EvtchnAllocUnbound {
        dom,
        remote_dom,
        port: 0,
    };
    // SAFETY: `arg` is the EVTCHNOP_alloc_unbound structure and lives across the call.
    unsafe { event_channel_op(EVTCHNOP_ALLOC_UNBOUND, &mut arg) }?;
    Ok(arg.port)
}

/// Binds to `remote_port` of `remote_dom`; returns our local port.
///
/// # Safety
/// Must run in a Xen guest whose hypercall page is set up.
#[cfg(target_arch = "x86_64")]
pub unsafe fn bind_interdomain(
    remote_dom: DomId,
    remote_port: EvtchnPort,
) -> Result<EvtchnPort, crate::Errno> {
    let mut arg = EvtchnBindInterdomain {
        remote_dom,
        remote_port,
        local_port: 0,
    };
    // SAFETY: `arg` is the EVTCHNOP_bind_interdomain structure and lives across the call.
    unsafe { event_channel_op(EVTCHNOP_BIND_INTERDOMAIN, &mut arg) }?;
    Ok(arg.local_port)
}

/// Binds `virq` (`VIRQ_*`) on `vcpu`; returns the port.
///
/// # Safety
/// Must run in a Xen guest whose hypercall page is set up.
#[cfg(target_arch = "x86_64")]
pub unsafe fn bind_virq(virq: u32, vcpu: u32) -> Result<EvtchnPort, crate::Errno> {
    let mut arg = EvtchnBindVirq {
        virq,
        vcpu,
        port: 0,
    };
    // SAFETY: `arg` is the EVTCHNOP_bind_virq structure and lives across the call.
    unsafe { event_channel_op(EVTCHNOP_BIND_VIRQ, &mut arg) }?;
    Ok(arg.port)
}

/// Binds physical IRQ `pirq` (`BIND_PIRQ__*` flags); returns the port.
///
/// # Safety
/// Must run in a Xen guest whose hypercall page is set up; the caller must
/// own the device behind `pirq`.
#[cfg(target_arch = "x86_64")]
pub unsafe fn bind_pirq(pirq: u32, flags: u32) -> Result<EvtchnPort, crate::Errno> {
    let mut arg = EvtchnBindPirq {
        pirq,
        flags,
        port: 0,
    };
    // SAFETY: `arg` is the EVTCHNOP_bind_pirq structure and lives across the call.
    unsafe { event_channel_op(EVTCHNOP_BIND_PIRQ, &mut arg) }?;
    Ok(arg.port)
}

/// Allocates a port that sends IPIs to `vcpu`.
///
/// # Safety
/// Must run in a Xen guest whose hypercall page is set up.
#[cfg(target_arch = "x86_64")]
pub unsafe fn bind_ipi(vcpu: u32) -> Result<EvtchnPort, crate::Errno> {
    let mut arg = EvtchnBindIpi { vcpu, port: 0 };
    // SAFETY: `arg` is the EVTCHNOP_bind_ipi structure and lives across the call.
    unsafe { event_channel_op(EVTCHNOP_BIND_IPI, &mut arg) }?;
    Ok(arg.port)
}

/// Closes `port`.
///
/// # Safety
/// No part of the program may still rely on `port` (a closed port number can
/// be handed out again by the next allocation).
#[cfg(target_arch = "x86_64")]
pub unsafe fn close(port: EvtchnPort) -> Result<(), crate::Errno> {
    let mut arg = EvtchnClose { port };
    // SAFETY: `arg` is the EVTCHNOP_close structure; the caller gave up the port.
    unsafe { event_channel_op(EVTCHNOP_CLOSE, &mut arg) }?;
    Ok(())
}

/// Notifies the other end of `port`.
///
/// # Safety
/// Must run in a Xen guest whose hypercall page is set up.
#[cfg(target_arch = "x86_64")]
pub unsafe fn send(port: EvtchnPort) -> Result<(), crate::Errno> {
    let mut arg = EvtchnSend { port };
    // SAFETY: `arg` is the EVTCHNOP_send structure and lives across the call.
    unsafe { event_channel_op(EVTCHNOP_SEND, &mut arg) }?;
    Ok(())
}

/// Returns what `port` of `dom` is bound to.
///
/// # Safety
/// Must run in a Xen guest whose hypercall page is set up.
#[cfg(target_arch = "x86_64")]
pub unsafe fn status(dom: DomId, port: EvtchnPort) -> Result<EvtchnStatus, crate::Errno> {
    let mut arg = EvtchnStatus {
        dom,
        port,
        ..EvtchnStatus::default()
    };
    // SAFETY: `arg` is the EVTCHNOP_status structure and lives across the call.
    unsafe { event_channel_op(EVTCHNOP_STATUS, &mut arg) }?;
    Ok(arg)
}

/// Delivers `port` to `vcpu` from now on.
///
/// # Safety
/// Must run in a Xen guest whose hypercall page is set up, and `vcpu` must be
/// ready to handle the port's events.
#[cfg(target_arch = "x86_64")]
pub unsafe fn bind_vcpu(port: EvtchnPort, vcpu: u32) -> Result<(), crate::Errno> {
    let mut arg = EvtchnBindVcpu { port, vcpu };
    // SAFETY: `arg` is the EVTCHNOP_bind_vcpu structure and lives across the call.
    unsafe { event_channel_op(EVTCHNOP_BIND_VCPU, &mut arg) }?;
    Ok(())
}

/// Unmasks `port`; Xen re-raises the upcall if it is pending.
///
/// # Safety
/// Must run in a Xen guest whose hypercall page is set up.
#[cfg(target_arch = "x86_64")]
pub unsafe fn unmask(port: EvtchnPort) -> Result<(), crate::Errno> {
    let mut arg = EvtchnUnmask { port };
    // SAFETY: `arg` is the EVTCHNOP_unmask structure and lives across the call.
    unsafe { event_channel_op(EVTCHNOP_UNMASK, &mut arg) }?;
    Ok(())
}

/// Closes every port of `dom`.
///
/// # Safety
/// No part of the program may still rely on any port of `dom`.
#[cfg(target_arch = "x86_64")]
pub unsafe fn reset(dom: DomId) -> Result<(), crate::Errno> {
    let mut arg = EvtchnReset { dom };
    // SAFETY: `arg` is the EVTCHNOP_reset structure; the caller gave up the ports.
    unsafe { event_channel_op(EVTCHNOP_RESET, &mut arg) }?;
    Ok(())
}

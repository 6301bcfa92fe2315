//! `hvm_op` (xen/include/public/hvm/hvm_op.h) and the HVM parameter indices
//! (xen/include/public/hvm/params.h).
//!
//! Read first: hvm/params.h. A PVH or HVM guest has no start_info: it finds
//! its xenstore and console rings through `HVMOP_get_param`, and the domain
//! builder sets them with `HVMOP_set_param`.

#[cfg(target_arch = "x86_64")]
use crate::hypercall;
use crate::xen::DomId;

/// `HVMOP_set_param`
pub const HVMOP_SET_PARAM: u32 = 0;
/// `HVMOP_get_param`
pub const HVMOP_GET_PARAM: u32 = 1;
/// `HVMOP_flush_tlbs`
pub const HVMOP_FLUSH_TLBS: u32 = 5;
/// `HVMOP_pagetable_dying`
pub const HVMOP_PAGETABLE_DYING: u32 = 9;
/// `HVMOP_get_time`
pub const HVMOP_GET_TIME: u32 = 10;
/// `HVMOP_set_evtchn_upcall_vector`
pub const HVMOP_SET_EVTCHN_UPCALL_VECTOR: u32 = 23;

pub use xen_abi::hvm::*;

/// `struct xen_hvm_param`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenHvmParam {
    /// IN: the domain (`DOMID_SELF` for ourselves).
    pub domid: DomId,
    /// Padding.
    pub pad: u16,
    /// IN: `HVM_PARAM_*`.
    pub index: u32,
    /// IN (set) or OUT (get).
    pub value: u64,
}

/// Calls `hvm_op(cmd, arg)`.
///
/// # Safety
/// `arg` must point to the structure `cmd` expects, valid across the call,
/// and the operation must not change what the program relies on.
#[cfg(target_arch = "x86_64")]
pub unsafe fn hvm_op<T>(cmd: u32, arg: *mut T) -> Result<u64, crate::Errno> {
    // SAFETY: forwarded contract.
    crate::Errno::check(unsafe { hypercall::hypercall2(hypercall::HVM_OP, cmd as u64, arg as u64) })
}

/// Sets HVM parameter `index` of `domid`.
///
/// # Safety
/// The caller must be privileged over `domid` (or `DOMID_SELF` for params a
/// guest may set) and the value must be what the guest will expect.
#[cfg(target_arch = "x86_64")]
pub unsafe fn set_param(domid: DomId, index: u32, value: u64) -> Result<(), crate::Errno> {
    let mut arg = XenHvmParam {
        domid,
        pad: 0,
        index,
        value,
    };
    // SAFETY: `arg` is the HVMOP_set_param structure and lives across the call.
    unsafe { hvm_op(HVMOP_SET_PARAM, &mut arg) }?;
    Ok(())
}

/// Returns HVM parameter `index` of `domid`.
///
/// # Safety
/// Must run in a Xen guest whose hypercalls are set up.
#[cfg(target_arch = "x86_64")]
pub unsafe fn get_param(domid: DomId, index: u32) -> Result<u64, crate::Errno> {
    let mut arg = XenHvmParam {
        domid,
        pad: 0,
        index,
        value: 0,
    };
    // SAFETY: `arg` is the HVMOP_get_param structure and lives across the call.
    unsafe { hvm_op(HVMOP_GET_PARAM, &mut arg) }?;
    Ok(arg.value)
}

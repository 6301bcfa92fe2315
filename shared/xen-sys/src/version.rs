//! `xen_version` (xen/include/public/version.h).

use crate::hypercall;

/// `XENVER_version`: returns `major << 16 | minor`.
pub const XENVER_VERSION: u32 = 0;
/// `XENVER_extraversion`: `char[16]`.
pub const XENVER_EXTRAVERSION: u32 = 1;
/// `XENVER_compile_info`
pub const XENVER_COMPILE_INFO: u32 = 2;
/// `XENVER_capabilities`: `char[1024]`.
pub const XENVER_CAPABILITIES: u32 = 3;
/// `XENVER_changeset`
pub const XENVER_CHANGESET: u32 = 4;
/// `XENVER_platform_parameters`
pub const XENVER_PLATFORM_PARAMETERS: u32 = 5;
/// `XENVER_get_features`
pub const XENVER_GET_FEATURES: u32 = 6;
/// `XENVER_pagesize`
pub const XENVER_PAGESIZE: u32 = 7;
/// `XENVER_commandline`: `char[1024]`.
pub const XENVER_COMMANDLINE: u32 = 9;

/// `xen_extraversion_t`
pub type ExtraVersion = [u8; 16];
/// `xen_capabilities_info_t`
pub type CapabilitiesInfo = [u8; 1024];
/// `xen_commandline_t`
pub type Commandline = [u8; 1024];

/// `struct xen_platform_parameters`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PlatformParameters {
    /// Start of Xen's reserved virtual area.
    pub virt_start: u64,
}

/// `struct xen_feature_info`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FeatureInfo {
    /// Which 32-bit submap.
    pub submap_idx: u32,
    /// Feature bits of that submap.
    pub submap: u32,
}

/// `XENFEAT_dom0`: the kernel may run as the initial domain.
pub const XENFEAT_DOM0: u32 = 11;

/// Returns `(major, minor)`.
///
/// # Safety
/// Must run in a Xen guest whose hypercall page is set up.
#[cfg(target_arch = "x86_64")]
pub unsafe fn version() -> (u16, u16) {
    // SAFETY: XENVER_version takes no buffer.
    let v = unsafe { hypercall::hypercall2(hypercall::XEN_VERSION, XENVER_VERSION as u64, 0) };
    ((v >> 16) as u16, v as u16)
}

/// Fills `buf` with the extra version string (e.g. ".7").
///
/// # Safety
/// Must run in a Xen guest whose hypercall page is set up.
#[cfg(target_arch = "x86_64")]
pub unsafe fn extraversion(buf: &mut ExtraVersion) -> Result<u64, crate::Errno> {
    // SAFETY: the buffer has the size Xen writes for this sub-op.
    crate::Errno::check(unsafe {
        hypercall::hypercall2(
            hypercall::XEN_VERSION,
            XENVER_EXTRAVERSION as u64,
            buf.as_mut_ptr() as u64,
        )
    })
}

/// Fills `buf` with Xen's capabilities string (e.g. "xen-3.0-x86_64 hvm-3.0-x86_64").
///
/// # Safety
/// Must run in a Xen guest whose hypercall page is set up.
#[cfg(target_arch = "x86_64")]
pub unsafe fn capabilities(buf: &mut CapabilitiesInfo) -> Result<u64, crate::Errno> {
    // SAFETY: the buffer has the size Xen writes for this sub-op.
    crate::Errno::check(unsafe {
        hypercall::hypercall2(
            hypercall::XEN_VERSION,
            XENVER_CAPABILITIES as u64,
            buf.as_mut_ptr() as u64,
        )
    })
}

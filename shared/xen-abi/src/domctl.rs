//! `XEN_DOMINF_*`: the flags of `struct xen_domctl_getdomaininfo`
//! (xen/include/public/domctl.h), which the toolstack decodes to learn
//! whether a domain is dying or has shut down, and why.

/// `XEN_DOMINF_dying`
pub const XEN_DOMINF_DYING: u32 = 1 << 0;
/// `XEN_DOMINF_hvm_guest`
pub const XEN_DOMINF_HVM_GUEST: u32 = 1 << 1;
/// `XEN_DOMINF_shutdown`: the guest has shut down (reason in the shutdown bits).
pub const XEN_DOMINF_SHUTDOWN: u32 = 1 << 2;
/// `XEN_DOMINF_paused`
pub const XEN_DOMINF_PAUSED: u32 = 1 << 3;
/// `XEN_DOMINF_blocked`
pub const XEN_DOMINF_BLOCKED: u32 = 1 << 4;
/// `XEN_DOMINF_running`
pub const XEN_DOMINF_RUNNING: u32 = 1 << 5;
/// `XEN_DOMINF_debugged`
pub const XEN_DOMINF_DEBUGGED: u32 = 1 << 6;
/// `XEN_DOMINF_xs_domain`
pub const XEN_DOMINF_XS_DOMAIN: u32 = 1 << 7;
/// `XEN_DOMINF_hap`
pub const XEN_DOMINF_HAP: u32 = 1 << 8;
/// `XEN_DOMINF_shutdownmask`: `(flags >> shift) & mask` is the `SHUTDOWN_*` code.
pub const XEN_DOMINF_SHUTDOWNMASK: u32 = 255;
/// `XEN_DOMINF_shutdownshift`
pub const XEN_DOMINF_SHUTDOWNSHIFT: u32 = 16;

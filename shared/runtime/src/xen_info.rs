//! What Xen says about itself (xen_version), for banners.

use alloc::string::String;

/// Xen's version and capabilities.
pub struct XenInfo {
    /// e.g. "4.17.7".
    pub version: String,
    /// e.g. "xen-3.0-x86_64 hvm-3.0-x86_64 ...".
    pub capabilities: String,
}

fn c_string(bytes: &[u8]) -> String {
    let len = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..len]).into_owned()
}

/// Asks Xen for its version and capabilities.
pub fn xen_version() -> XenInfo {
    // SAFETY: XENVER_version takes no buffer.
    let (major, minor) = unsafe { xen_sys::version::version() };
    let mut extra = [0u8; 16];
    // SAFETY: the buffer is XENVER_extraversion's size.
    let _ = unsafe { xen_sys::version::extraversion(&mut extra) };
    let mut caps = [0u8; 1024];
    // SAFETY: the buffer is XENVER_capabilities's size.
    let _ = unsafe { xen_sys::version::capabilities(&mut caps) };
    XenInfo {
        version: alloc::format!("{major}.{minor}{}", c_string(&extra)),
        capabilities: c_string(&caps),
    }
}

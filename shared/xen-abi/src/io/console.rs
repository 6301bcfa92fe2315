//! The PV console ring page (xen/include/public/io/console.h).
//!
//! Read first: io/console.h. `in` carries bytes to the guest, `out` from it;
//! indexes are free-running and masked with the ring size. Pure data: the
//! relay (dom0's `xcp-console`) and the writer (the runtime) drive the ring.

use core::mem::{offset_of, size_of};

/// `XENCONS_RING_IDX`
pub type XenconsRingIdx = u32;

/// Size of `xencons_interface.in`.
pub const XENCONS_IN_SIZE: usize = 1024;
/// Size of `xencons_interface.out`.
pub const XENCONS_OUT_SIZE: usize = 2048;

/// `struct xencons_interface`: the console ring page.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenconsInterface {
    /// Bytes from the backend to the guest.
    pub r#in: [u8; XENCONS_IN_SIZE],
    /// Bytes from the guest to the backend.
    pub out: [u8; XENCONS_OUT_SIZE],
    /// Guest's consumer index into `in`.
    pub in_cons: XenconsRingIdx,
    /// Backend's producer index into `in`.
    pub in_prod: XenconsRingIdx,
    /// Backend's consumer index into `out`.
    pub out_cons: XenconsRingIdx,
    /// Guest's producer index into `out`.
    pub out_prod: XenconsRingIdx,
}

impl Default for XenconsInterface {
    fn default() -> Self {
        XenconsInterface {
            r#in: [0; XENCONS_IN_SIZE],
            out: [0; XENCONS_OUT_SIZE],
            in_cons: 0,
            in_prod: 0,
            out_cons: 0,
            out_prod: 0,
        }
    }
}

// sizeof(struct xencons_interface); see tests/headers.rs.
const _: () = assert!(size_of::<XenconsInterface>() == 3088);

/// Byte offset of `in[]` in the ring page.
pub const OFF_IN: usize = offset_of!(XenconsInterface, r#in);
/// Byte offset of `out[]`.
pub const OFF_OUT: usize = offset_of!(XenconsInterface, out);
/// Byte offset of `in_cons`.
pub const OFF_IN_CONS: usize = offset_of!(XenconsInterface, in_cons);
/// Byte offset of `in_prod`.
pub const OFF_IN_PROD: usize = offset_of!(XenconsInterface, in_prod);
/// Byte offset of `out_cons`.
pub const OFF_OUT_CONS: usize = offset_of!(XenconsInterface, out_cons);
/// Byte offset of `out_prod`.
pub const OFF_OUT_PROD: usize = offset_of!(XenconsInterface, out_prod);

/// `MASK_XENCONS_IDX(idx, in)`
pub const fn mask_in_idx(idx: XenconsRingIdx) -> usize {
    (idx as usize) & (XENCONS_IN_SIZE - 1)
}

/// `MASK_XENCONS_IDX(idx, out)`
pub const fn mask_out_idx(idx: XenconsRingIdx) -> usize {
    (idx as usize) & (XENCONS_OUT_SIZE - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_wrap_at_the_ring_size() {
        assert_eq!(mask_in_idx(1024), 0);
        assert_eq!(mask_in_idx(1023), 1023);
        assert_eq!(mask_out_idx(2049), 1);
        assert_eq!(mask_out_idx(u32::MAX), 2047);
    }
}

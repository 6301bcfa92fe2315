//! The PV console ring page (xen/include/public/io/console.h).
//!
//! Read first: io/console.h. `in` carries bytes to the guest, `out` from it;
//! indexes are free-running and masked with the ring size. Pure data: the
//! engine that drives the ring lives outside xen-sys.

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

// sizeof(struct xencons_interface); see tests/abi_layout.rs.
const _: () = assert!(core::mem::size_of::<XenconsInterface>() == 3088);

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

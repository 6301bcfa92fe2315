//! The PV console ring: whole lines out, never blocking.
//!
//! Read first: xen/include/public/io/console.h (`struct xencons_interface`).
//! The guest produces into `out[]` and advances `out_prod`; the backend
//! consumes and advances `out_cons`. dom0 relays only a few guests'
//! consoles, so a full ring is normal: a line that does not fit whole is
//! dropped (the debug port has it anyway), and a ring whose indexes make no
//! sense is treated as full.

use xcp_ring::SharedPage;
use xen_abi::io::console::{OFF_OUT, OFF_OUT_CONS, OFF_OUT_PROD, XENCONS_OUT_SIZE};

/// Puts `line` and a newline into the console ring if all of it fits.
/// Returns true when it was written (the caller then notifies the
/// backend), false when it was dropped.
pub fn put_line(page: &impl SharedPage, line: &[u8]) -> bool {
    let size = XENCONS_OUT_SIZE as u32;
    let cons = page.load_u32(OFF_OUT_CONS);
    let prod = page.load_u32(OFF_OUT_PROD);
    let used = prod.wrapping_sub(cons);
    if used > size {
        return false;
    }
    let room = (size - used) as usize;
    if line.len() + 1 > room {
        return false;
    }
    let mut at = prod;
    for &byte in line.iter().chain(b"\n") {
        page.write(OFF_OUT + (at % size) as usize, &[byte]);
        at = at.wrapping_add(1);
    }
    page.store_u32(OFF_OUT_PROD, at);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::RefCell;

    #[test]
    fn lines_wrap_and_a_full_ring_drops_them() {
        let page = RefCell::new([0u8; 4096]);
        page.store_u32(OFF_OUT_CONS, 2046);
        page.store_u32(OFF_OUT_PROD, 2046);
        assert!(put_line(&page, b"abc"));
        assert_eq!(page.load_u32(OFF_OUT_PROD), 2050);
        let bytes = page.borrow();
        assert_eq!(&bytes[OFF_OUT + 2046..OFF_OUT + 2048], b"ab");
        assert_eq!(&bytes[OFF_OUT..OFF_OUT + 2], b"c\n");
        drop(bytes);
        // 2048 - 4 bytes of room: a 2044-byte line (plus newline) is dropped.
        assert!(!put_line(&page, &[b'x'; 2044]));
        assert!(put_line(&page, &[b'x'; 2043]));
        assert!(!put_line(&page, b""));
        assert_eq!(page.load_u32(OFF_OUT_PROD), 2050 + 2044);
    }

    #[test]
    fn impossible_indexes_count_as_full() {
        let page = RefCell::new([0u8; 4096]);
        page.store_u32(OFF_OUT_CONS, 0);
        page.store_u32(OFF_OUT_PROD, 5000);
        assert!(!put_line(&page, b"x"));
        assert_eq!(page.load_u32(OFF_OUT_PROD), 5000);
    }
}

//! Fuzz target: a hostile frontend writes arbitrary bytes and indexes into
//! the shared page between backend operations.
//!
//! read first: io/ring.h, ../../src/back.rs.
//!
//! The input is a script. Each step takes one byte `op`: `op % 4 == 0` pokes
//! the next 2 bytes (offset) + 4 bytes (value) into the page; 1 copies a
//! request out; 2 queues a response and pushes; 3 runs the final check. The
//! backend must never panic, must only fail with protocol errors, and must
//! never hold more requests in flight than the ring has slots.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xcp_ring::fake::MemPage;
use xcp_ring::{BackRing, FrontRing, RingEntry, RingError};

struct Entry([u8; 12]);

impl RingEntry for Entry {
    const SIZE: usize = 12;
    fn encode(&self, out: &mut [u8]) {
        out.copy_from_slice(&self.0);
    }
    fn decode(bytes: &[u8]) -> Self {
        let mut b = [0u8; 12];
        b.copy_from_slice(bytes);
        Entry(b)
    }
}

fuzz_target!(|data: &[u8]| {
    let page = MemPage::new();
    let mut front = FrontRing::<_, Entry, Entry>::init(&page).expect("4096-byte page fits");
    let mut back = BackRing::<_, Entry, Entry>::init(&page).expect("4096-byte page fits");
    // A few honest requests first so responses have something to answer.
    for _ in 0..3 {
        let _ = front.queue_request(&Entry([7; 12]));
    }
    front.push_requests();
    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        let result = match op % 4 {
            0 => {
                if rest.len() < 6 {
                    break;
                }
                let offset = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
                page.poke(offset, &rest[2..6]);
                rest = &rest[6..];
                Ok(())
            }
            1 => back.next_request().map(|_| ()),
            2 => {
                match back.queue_response(&Entry([op; 12])) {
                    Ok(()) | Err(RingError::NoRequestPending) => {}
                    Err(e) => panic!("unexpected {e:?}"),
                }
                let _ = back.push_responses();
                Ok(())
            }
            _ => back.final_check_for_requests().map(|_| ()),
        };
        assert!(back.requests_in_flight() <= back.size());
        if let Err(e) = result {
            assert!(e.is_protocol_error(), "{e:?}");
            // The caller disconnects this frontend: stop here.
            return;
        }
    }
});

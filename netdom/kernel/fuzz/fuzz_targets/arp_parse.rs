//! Frames off the wire (peer bytes) into netdom's ARP reply parser: it must
//! answer Ok or a NotReply for every input, never panic, and an accepted
//! reply must really be addressed to us.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netdom::arp::{Ipv4, Mac, Reply};

fuzz_target!(|frame: &[u8]| {
    let mac = Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    let ip = Ipv4([10, 0, 2, 15]);
    if let Ok(reply) = Reply::parse(frame, mac, ip) {
        // Accepted only when the frame's target fields name us.
        assert_eq!(&frame[32..38], &mac.0);
        assert_eq!(&frame[38..42], &ip.0);
        let _ = reply;
    }
});

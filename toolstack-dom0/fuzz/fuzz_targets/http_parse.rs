//! Fuzz target: the HTTP/1.1 request parser never panics and never claims
//! more bytes than it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenapi::http::{parse, Parsed};

fuzz_target!(|data: &[u8]| {
    if let Parsed::Request(r) = parse(data) {
        assert!(r.consumed <= data.len());
        assert!(r.body.len() <= xenapi::http::MAX_BODY);
    }
});

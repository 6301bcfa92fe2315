//! Fuzz target: the XML-RPC call decoder never panics and bounds nesting.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((_, params)) = xenapi::xmlrpc::decode_call(data) {
        for p in &params {
            assert!(p.depth() <= xenapi::xmlrpc::MAX_DEPTH + 1);
        }
    }
});

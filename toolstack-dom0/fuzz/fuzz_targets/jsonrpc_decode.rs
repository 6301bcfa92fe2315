//! Fuzz target: the JSON-RPC call decoder never panics and bounds nesting.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(call) = xenapi::jsonrpc::decode_call(data) {
        for p in &call.params {
            assert!(p.depth() <= xenapi::jsonrpc::MAX_DEPTH);
        }
    }
});

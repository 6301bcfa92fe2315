//! Fuzz target: any bytes as a guest kernel image (ELF, or bzImage with an
//! xz, gzip or zstd payload). The loader must return an error or a summary
//! consistent with what the sink saw; it must never panic, and never emit
//! more than the output bound.
//!
//! Run: `cargo xtask fuzz SECS` (see toolstack-dom0/kimage/DESIGN.md).
#![no_main]

use libfuzzer_sys::fuzz_target;
use xcp_kimage::{load, CountingSink, Limits};

fuzz_target!(|data: &[u8]| {
    // Small bounds: a lucky input must not run long or hold much.
    let limits = Limits {
        max_output: 1 << 20,
        max_dictionary: 1 << 20,
        ..Limits::default()
    };
    let mut sink = CountingSink::default();
    let Ok(loaded) = load(data, &limits, &mut sink) else {
        return;
    };
    assert!(loaded.elf_size <= limits.max_output);
    let filesz: u64 = loaded.segments.iter().map(|s| s.filesz).sum();
    let memsz: u64 = loaded.segments.iter().map(|s| s.memsz).sum();
    assert_eq!(sink.written, filesz);
    assert_eq!(sink.written + sink.zeroed, memsz);
    assert!(loaded.paddr_range.end - loaded.paddr_range.start <= limits.max_span);
    let _ = loaded.pvh_entry();
});

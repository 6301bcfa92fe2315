//! Test verdicts a domain writes to QEMU's isa-debug-exit port, shared by the
//! kernels and the QEMU harness. QEMU exits with `(code << 1) | 1`, so none of
//! these can be confused with QEMU's own 0 (which proves nothing: a reboot or
//! a dom0 crash also end QEMU with 0) or 1 (QEMU error).

/// Everything the test asked for was seen.
pub const PASS: u32 = 0x10;
/// The platform bundle was refused (dom0 printed why).
pub const BAD_BUNDLE: u32 = 0x11;
/// A domain panicked.
pub const PANIC: u32 = 0x12;
/// A test step failed (the log says which).
pub const FAIL: u32 = 0x13;

/// QEMU's exit status for `code`.
pub const fn qemu_status(code: u32) -> i32 {
    ((code << 1) | 1) as i32
}

#[cfg(test)]
mod tests {
    #[test]
    fn statuses_are_distinct_and_odd() {
        let all =
            [super::PASS, super::BAD_BUNDLE, super::PANIC, super::FAIL].map(super::qemu_status);
        assert_eq!(all, [33, 35, 37, 39]);
    }
}

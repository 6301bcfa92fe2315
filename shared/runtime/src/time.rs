//! The monotonic clock: Xen system time (ns since boot) from the vCPU time
//! record in shared_info, extrapolated with the TSC.
//!
//! Read first: xen/include/public/xen.h, `struct vcpu_time_info`:
//! `ns = system_time + ((tsc - tsc_timestamp) << tsc_shift) * tsc_to_system_mul >> 32`
//! (a negative shift shifts right), read under the `version` seqlock.

/// Scales a TSC delta to nanoseconds as `vcpu_time_info` prescribes.
pub fn scale_delta(delta: u64, mul: u32, shift: i8) -> u64 {
    let shifted = if shift >= 0 {
        delta << shift
    } else {
        delta >> shift.unsigned_abs()
    };
    ((u128::from(shifted) * u128::from(mul)) >> 32) as u64
}

/// Formats ns as `seconds.micro` for log lines.
pub struct Stamp(pub u64);

impl core::fmt::Display for Stamp {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{:5}.{:06}",
            self.0 / 1_000_000_000,
            (self.0 / 1000) % 1_000_000
        )
    }
}

#[cfg(target_os = "none")]
mod xen_clock {
    use core::sync::atomic::{fence, Ordering};
    use xen_sys::xen::{SharedInfo, VcpuTimeInfo};

    static SHARED: spin::Once<usize> = spin::Once::new();

    /// Points the clock at the mapped shared_info page; called once at boot.
    pub(crate) fn init(shared_info: *const SharedInfo) {
        SHARED.call_once(|| shared_info as usize);
    }

    /// Milliseconds since the Unix epoch: Xen's wallclock at system time 0
    /// (shared_info wc_sec/wc_nsec, read under wc_version) plus system time.
    pub fn wallclock_ms() -> u64 {
        let Some(&shared) = SHARED.get() else {
            return 0;
        };
        let shared = shared as *const SharedInfo;
        loop {
            // SAFETY: shared_info stays mapped; Xen updates these fields
            // under the wc_version seqlock, hence volatile reads.
            let before =
                unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*shared).wc_version)) };
            if before & 1 != 0 {
                core::hint::spin_loop();
                continue;
            }
            fence(Ordering::Acquire);
            // SAFETY: as above.
            let sec = unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*shared).wc_sec)) };
            // SAFETY: as above.
            let sec_hi =
                unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*shared).wc_sec_hi)) };
            // SAFETY: as above.
            let nsec = unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*shared).wc_nsec)) };
            fence(Ordering::Acquire);
            // SAFETY: as above.
            let after =
                unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*shared).wc_version)) };
            if before != after {
                continue;
            }
            let secs = (u64::from(sec_hi) << 32) | u64::from(sec);
            return secs * 1000 + u64::from(nsec) / 1_000_000 + now_ns() / 1_000_000;
        }
    }

    /// Nanoseconds of Xen system time; 0 before the clock is set up.
    pub fn now_ns() -> u64 {
        let Some(&shared) = SHARED.get() else {
            return 0;
        };
        let shared = shared as *const SharedInfo;
        // SAFETY: shared_info stays mapped for the domain's life; only the
        // address of vcpu 0's time record is computed here.
        let time: *const VcpuTimeInfo = unsafe { core::ptr::addr_of!((*shared).vcpu_info[0].time) };
        loop {
            // SAFETY: `time` points into the mapped shared page; Xen writes it
            // concurrently, hence volatile reads under the version seqlock.
            let before = unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*time).version)) };
            if before & 1 != 0 {
                core::hint::spin_loop();
                continue;
            }
            fence(Ordering::Acquire);
            // SAFETY: as above.
            let record = unsafe { core::ptr::read_volatile(time) };
            // SAFETY: rdtsc has no memory effects; PV guests may execute it.
            let tsc = unsafe { core::arch::x86_64::_rdtsc() };
            fence(Ordering::Acquire);
            // SAFETY: as above.
            let after = unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*time).version)) };
            if before != after {
                continue;
            }
            let delta = tsc.wrapping_sub(record.tsc_timestamp);
            return record.system_time
                + super::scale_delta(delta, record.tsc_to_system_mul, record.tsc_shift);
        }
    }
}

#[cfg(target_os = "none")]
pub(crate) use xen_clock::init;
#[cfg(target_os = "none")]
pub use xen_clock::{now_ns, wallclock_ms};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_follows_the_header_formula() {
        // mul = 2^31 halves; shift 1 doubles: identity.
        assert_eq!(scale_delta(1000, 1 << 31, 1), 1000);
        assert_eq!(scale_delta(1000, 1 << 31, 0), 500);
        assert_eq!(scale_delta(1000, 1 << 31, -1), 250);
        // A 3 GHz TSC: mul = 2^32 / 3 (shift 0) turns 3e9 ticks into ~1 s.
        let ns = scale_delta(3_000_000_000, (1u64 << 32).div_ceil(3) as u32, 0);
        assert!((999_999_999..=1_000_000_001).contains(&ns), "{ns}");
        // No overflow on huge deltas.
        assert!(scale_delta(u64::MAX >> 2, u32::MAX, 2) > 0);
    }

    #[test]
    fn stamps_print_seconds_and_micros() {
        assert_eq!(alloc::format!("{}", Stamp(1_234_567_891)), "    1.234567");
    }
}

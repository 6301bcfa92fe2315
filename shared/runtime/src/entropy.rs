//! Randomness for session references, salts and UUIDs: the CPU's RDRAND,
//! which Xen passes through to PV guests when the host has it.

/// True when CPUID.01H:ECX.RDRAND (bit 30) is set.
pub fn have_rdrand() -> bool {
    // CPUID has no memory effects; leaf 1 exists on every x86_64.
    let leaf = core::arch::x86_64::__cpuid(1);
    leaf.ecx & (1 << 30) != 0
}

fn rdrand64() -> Option<u64> {
    let mut value = 0u64;
    for _ in 0..10 {
        // SAFETY: only called after have_rdrand(); writes our local.
        let ok = unsafe { rdrand_step(&mut value) };
        if ok {
            return Some(value);
        }
    }
    None
}

/// One RDRAND attempt.
///
/// # Safety
/// The CPU must support RDRAND (check [`have_rdrand`]).
#[target_feature(enable = "rdrand")]
unsafe fn rdrand_step(value: &mut u64) -> bool {
    core::arch::x86_64::_rdrand64_step(value) == 1
}

/// Fills `buf` with hardware random bytes. Panics without RDRAND: a
/// toolstack must not hand out guessable session references.
pub fn fill(buf: &mut [u8]) {
    assert!(have_rdrand(), "no RDRAND: cannot make unguessable secrets");
    for chunk in buf.chunks_mut(8) {
        let word = rdrand64().expect("RDRAND keeps failing").to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
}

//! Injected randomness: uuids, refs and salts come from an [`Entropy`] source
//! the board provides (getrandom on the host, RDRAND or a seeded DRBG in dom0).

use alloc::string::String;
use core::fmt::Write;

/// A source of random bytes.
pub trait Entropy {
    /// Fills `buf` with random bytes.
    fn fill(&mut self, buf: &mut [u8]);
}

/// A deterministic xorshift source for tests and simulations (not secure).
#[derive(Clone, Debug)]
pub struct SeededEntropy(pub u64);

impl Entropy for SeededEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = (self.0 >> 24) as u8;
        }
    }
}

/// A random (version 4) uuid in canonical text form.
pub fn uuid(e: &mut dyn Entropy) -> String {
    let mut b = [0u8; 16];
    e.fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut s = String::with_capacity(36);
    for (i, x) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        let _ = write!(s, "{x:02x}");
    }
    s
}

/// A fresh `OpaqueRef:<uuid>`.
pub fn opaque_ref(e: &mut dyn Entropy) -> String {
    let mut s = String::from("OpaqueRef:");
    s.push_str(&uuid(e));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_shape() {
        let mut e = SeededEntropy(7);
        let u = uuid(&mut e);
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(uuid(&mut e), u);
        assert!(opaque_ref(&mut e).starts_with("OpaqueRef:"));
    }
}

//! Password verification: PBKDF2-HMAC-SHA256 over a per-host random salt.
//!
//! The stored form is `pbkdf2-sha256$<iterations>$<salt hex>$<hash hex>`.
//! A successful verification is remembered as SHA-256(salt || password) so
//! that repeated logins (XO reconnects, 1,000 sessions) cost one hash, not
//! `iterations`; a wrong password always pays the full PBKDF2 cost.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use sha2::{Digest, Sha256};

use crate::rng::Entropy;

/// Default PBKDF2 iteration count.
pub const DEFAULT_ITERATIONS: u32 = 100_000;

/// A stored password hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswordHash {
    iterations: u32,
    salt: Vec<u8>,
    hash: [u8; 32],
    verified: Option<[u8; 32]>,
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 256 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn derive(password: &str, salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut out);
    out
}

fn quick(password: &str, salt: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(password.as_bytes());
    h.finalize().into()
}

fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// The `[toolstack] root_password_hash` form of `password`, salted from
/// the host's `/dev/urandom` (`cargo xtask hash-password`, the QEMU cases'
/// platform configs). Host tools only: the `std` feature.
#[cfg(feature = "std")]
pub fn hash_password(password: &str, iterations: u32) -> std::io::Result<String> {
    use std::io::Read;
    /// The salt, read before hashing so a read error is returned.
    struct Read16([u8; 16]);
    impl Entropy for Read16 {
        fn fill(&mut self, buf: &mut [u8]) {
            buf.copy_from_slice(&self.0[..buf.len()]);
        }
    }
    let mut salt = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut salt)?;
    Ok(PasswordHash::new(password, iterations, &mut Read16(salt)).encode())
}

impl PasswordHash {
    /// Hashes `password` with a fresh 16-byte salt.
    pub fn new(password: &str, iterations: u32, e: &mut dyn Entropy) -> PasswordHash {
        let mut salt = alloc::vec![0u8; 16];
        e.fill(&mut salt);
        let iterations = iterations.max(1);
        PasswordHash {
            iterations,
            hash: derive(password, &salt, iterations),
            salt,
            verified: None,
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<PasswordHash> {
        let mut it = s.trim().split('$');
        if it.next()? != "pbkdf2-sha256" {
            return None;
        }
        let iterations: u32 = it.next()?.parse().ok()?;
        let salt = unhex(it.next()?)?;
        let hash: [u8; 32] = unhex(it.next()?)?.try_into().ok()?;
        if it.next().is_some() || iterations == 0 || iterations > 10_000_000 {
            return None;
        }
        Some(PasswordHash {
            iterations,
            salt,
            hash,
            verified: None,
        })
    }

    /// The stored form.
    pub fn encode(&self) -> String {
        alloc::format!(
            "pbkdf2-sha256${}${}${}",
            self.iterations,
            hex(&self.salt),
            hex(&self.hash)
        )
    }

    /// True if `password` matches the remembered successful login (one
    /// SHA-256, no PBKDF2).
    pub fn verify_cached(&self, password: &str) -> bool {
        password.len() <= 1024
            && self
                .verified
                .as_ref()
                .is_some_and(|v| same(v, &quick(password, &self.salt)))
    }

    /// Checks a password (constant-time comparison).
    pub fn verify(&mut self, password: &str) -> bool {
        if password.len() > 1024 {
            return false;
        }
        if let Some(v) = &self.verified {
            if same(v, &quick(password, &self.salt)) {
                return true;
            }
        }
        let ok = same(&self.hash, &derive(password, &self.salt, self.iterations));
        if ok {
            self.verified = Some(quick(password, &self.salt));
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    #[cfg(feature = "std")]
    #[test]
    fn host_hashes_verify_and_are_salted_apart() {
        let a = super::hash_password("pw", 10).unwrap();
        let b = super::hash_password("pw", 10).unwrap();
        assert_ne!(a, b, "each hash has its own salt");
        let mut parsed = super::PasswordHash::parse(&a).unwrap();
        assert!(parsed.verify("pw"));
        assert!(!parsed.verify("other"));
        assert!(a.starts_with("pbkdf2-sha256$10$"), "{a}");
    }

    use super::*;
    use crate::rng::SeededEntropy;

    #[test]
    fn hash_roundtrip_and_verify() {
        let mut e = SeededEntropy(1);
        let h = PasswordHash::new("secret", 10, &mut e);
        let mut p = PasswordHash::parse(&h.encode()).unwrap();
        assert!(!p.verify("Secret"));
        assert!(p.verify("secret"));
        assert!(p.verify("secret"));
        assert!(!p.verify("secret2"));
        assert!(PasswordHash::parse("pbkdf2-sha256$0$00$00").is_none());
        assert!(PasswordHash::parse("md5$1$00$00").is_none());
    }
}

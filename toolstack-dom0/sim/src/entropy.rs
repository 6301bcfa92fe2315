//! Randomness for the engine from the OS (`/dev/urandom`).

use std::fs::File;
use std::io::Read;

use xenapi::rng::Entropy;

/// Reads `/dev/urandom`; falls back to a time-seeded xorshift if the device
/// cannot be read (never on Linux).
pub struct OsEntropy {
    file: Option<File>,
    fallback: xenapi::rng::SeededEntropy,
}

impl OsEntropy {
    /// Opens the OS source.
    pub fn new() -> OsEntropy {
        let seed = crate::server::now().0 | 1;
        OsEntropy {
            file: File::open("/dev/urandom").ok(),
            fallback: xenapi::rng::SeededEntropy(seed),
        }
    }
}

impl Default for OsEntropy {
    fn default() -> Self {
        OsEntropy::new()
    }
}

impl Entropy for OsEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        if let Some(f) = &mut self.file {
            if f.read_exact(buf).is_ok() {
                return;
            }
        }
        self.fallback.fill(buf);
    }
}

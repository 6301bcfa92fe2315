//! Streaming decompression of a bzImage payload into a consumer, through
//! one fixed working buffer: the whole output never exists in dom0.
//!
//! Each format decodes into [`CHUNK`] bytes at a time and hands them to
//! [`Output::emit`], which counts them against [`Limits::max_output`]
//! before the consumer sees them. The decoders' own memory is their
//! dictionary/window (bounded by [`Limits::max_dictionary`]) plus a fixed
//! state (xz ≈ 32 KiB, inflate ≈ 43 KiB, zstd ≈ its window + 128 KiB).

use alloc::vec;

use crate::error::{Bound, Compression, KimageError};
use crate::Limits;

/// Bytes decoded per step (the working buffer).
pub const CHUNK: usize = 32 * 1024;

/// Where decoded bytes go, counted against the output bound.
pub struct Output<'a> {
    total: u64,
    max: u64,
    consumer: &'a mut dyn FnMut(&[u8]) -> Result<(), KimageError>,
}

impl<'a> Output<'a> {
    /// An output of at most `max` bytes into `consumer`.
    pub fn new(max: u64, consumer: &'a mut dyn FnMut(&[u8]) -> Result<(), KimageError>) -> Self {
        Output {
            total: 0,
            max,
            consumer,
        }
    }

    /// Passes `bytes` on, or refuses them if the total would pass the bound.
    pub fn emit(&mut self, bytes: &[u8]) -> Result<(), KimageError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let total = self.total.saturating_add(bytes.len() as u64);
        if total > self.max {
            return Err(KimageError::TooLarge(Bound::Output, total));
        }
        self.total = total;
        (self.consumer)(bytes)
    }

    /// Bytes emitted so far.
    pub fn total(&self) -> u64 {
        self.total
    }
}

/// Decodes `payload` (compressed as `compression`) into `consumer`;
/// returns the decoded size. `dictionary`, if given, is the xz dictionary's
/// memory (instead of dom0's heap).
pub fn decompress(
    compression: Compression,
    payload: &[u8],
    limits: &Limits,
    dictionary: Option<&mut [u8]>,
    consumer: &mut dyn FnMut(&[u8]) -> Result<(), KimageError>,
) -> Result<u64, KimageError> {
    let mut out = Output::new(limits.max_output, consumer);
    let mut buf = vec![0u8; CHUNK];
    match compression {
        Compression::Xz => crate::xz::decode(payload, limits, dictionary, &mut buf, &mut out)?,
        Compression::Gzip => crate::gzip::decode(payload, &mut buf, &mut out)?,
        Compression::Zstd => crate::zstd::decode(payload, limits, &mut buf, &mut out)?,
        Compression::None => {
            for chunk in payload.chunks(CHUNK) {
                out.emit(chunk)?;
            }
        }
        c @ (Compression::Bzip2 | Compression::Lzma | Compression::Lzo | Compression::Lz4) => {
            return Err(KimageError::Unsupported(c))
        }
    }
    Ok(out.total())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_bound_is_enforced_before_the_consumer() {
        let mut seen = 0usize;
        let mut f = |b: &[u8]| {
            seen += b.len();
            Ok(())
        };
        let mut out = Output::new(10, &mut f);
        out.emit(&[0; 6]).expect("fits");
        assert_eq!(
            out.emit(&[0; 5]),
            Err(KimageError::TooLarge(Bound::Output, 11))
        );
        out.emit(&[0; 4]).expect("fits exactly");
        assert_eq!(out.total(), 10);
        assert_eq!(seen, 10);
    }

    #[test]
    fn refused_formats_say_which() {
        let mut f = |_: &[u8]| Ok(());
        for c in [
            Compression::Bzip2,
            Compression::Lzma,
            Compression::Lzo,
            Compression::Lz4,
        ] {
            assert_eq!(
                decompress(c, b"x", &Limits::default(), None, &mut f),
                Err(KimageError::Unsupported(c))
            );
        }
    }
}

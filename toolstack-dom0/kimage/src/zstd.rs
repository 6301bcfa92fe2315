//! zstd through `ruzstd`'s frame decoder, a bounded number of bytes at a
//! time.
//!
//! Read first: RFC 8878 ("Frame_Header", "Window_Descriptor"). The decoder
//! keeps a window of the frame's declared size; half of
//! [`Limits::max_dictionary`] bounds it before anything is allocated
//! (ruzstd checks the frame header against `set_max_window_size`). Linux compresses kernels with
//! `zstd -22 --ultra` from a pipe, which may declare up to a 128 MiB window:
//! such kernels are refused under the default bound. The frame's optional
//! checksum is not verified (ruzstd's `hash` feature needs std); the ELF
//! checks still catch a payload that decodes into nonsense.

use ruzstd::decoding::errors::FrameDecoderError;
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};
use ruzstd::io::Read;

use crate::decompress::{Output, CHUNK};
use crate::error::{Bound, Compression, KimageError};
use crate::Limits;

/// Decodes the zstd frame at the start of `payload`.
pub fn decode(
    payload: &[u8],
    limits: &Limits,
    buf: &mut [u8],
    out: &mut Output<'_>,
) -> Result<(), KimageError> {
    let mut source = payload;
    let mut decoder = FrameDecoder::new();
    // ruzstd's ring buffer grows by doubling and briefly holds old and new
    // copies: its peak is about 1.5-2x the window (13.7 MiB measured for an
    // 8 MiB window on Debian's kernel). Half the bound keeps the heap in it.
    decoder.set_max_window_size(limits.max_dictionary as u64 / 2);
    decoder
        .init(&mut source)
        .map_err(|e| map_error(e, source.is_empty()))?;
    loop {
        let finished = decoder
            .decode_blocks(&mut source, BlockDecodingStrategy::UptoBytes(CHUNK))
            .map_err(|e| map_error(e, source.is_empty()))?;
        // Drain what may leave the window (all of it once finished).
        loop {
            let n = decoder
                .read(buf)
                .map_err(|_| KimageError::Corrupt(Compression::Zstd))?;
            if n == 0 {
                break;
            }
            out.emit(&buf[..n])?;
        }
        if finished {
            return Ok(());
        }
    }
}

fn map_error(e: FrameDecoderError, input_exhausted: bool) -> KimageError {
    match e {
        FrameDecoderError::WindowSizeTooBig { requested, .. } => {
            KimageError::TooLarge(Bound::Dictionary, requested)
        }
        _ if input_exhausted => KimageError::TruncatedStream(Compression::Zstd),
        _ => KimageError::Corrupt(Compression::Zstd),
    }
}

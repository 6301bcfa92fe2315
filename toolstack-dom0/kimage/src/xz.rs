//! xz (LZMA2, optionally behind the x86 BCJ filter) through `xz4rust`.
//!
//! Read first: the .xz file format 1.0.4 ("Block Header", "Filter Flags",
//! LZMA2's one-byte dictionary-size property) and Linux
//! scripts/xz_wrap.sh, which compresses x86 kernels with
//! `--check=crc32 --x86 --lzma2=...,dict=32MiB`.
//!
//! An LZMA2 decoder must keep the last `dict_size` bytes it produced; that
//! is the one memory cost that streaming cannot avoid. We read the size from
//! the first block header before decoding, refuse it above
//! [`Limits::max_dictionary`], and allocate it fallibly (or use the
//! caller's buffer), so a dictionary bomb is an error, never an abort.

use alloc::boxed::Box;
use alloc::vec::Vec;
use xz4rust::{XzDecoder, XzError, XzNextBlockResult};

use crate::decompress::Output;
use crate::error::{Bound, Compression, KimageError};
use crate::Limits;

/// The smallest dictionary the decoder uses (xz's own minimum).
pub const MIN_DICTIONARY: usize = 4096;
/// The LZMA2 filter ID.
const FILTER_LZMA2: u64 = 0x21;
const STREAM_HEADER: usize = 12;

/// Decodes the xz stream at the start of `payload` (trailing bytes, such
/// as Linux's appended 4-byte size, are ignored).
pub fn decode(
    payload: &[u8],
    limits: &Limits,
    dictionary: Option<&mut [u8]>,
    buf: &mut [u8],
    out: &mut Output<'_>,
) -> Result<(), KimageError> {
    let needed = dictionary_size(payload)?.max(MIN_DICTIONARY as u64);
    if needed > limits.max_dictionary as u64 {
        return Err(KimageError::TooLarge(Bound::Dictionary, needed));
    }
    let needed = needed as usize;
    let mut decoder = match dictionary {
        Some(borrowed) => {
            if borrowed.len() < needed {
                return Err(KimageError::TooLarge(Bound::Dictionary, needed as u64));
            }
            Box::new(XzDecoder::with_fixed_size_dict(borrowed))
        }
        None => {
            let mut dict = Vec::new();
            dict.try_reserve_exact(needed)
                .map_err(|_| KimageError::OutOfMemory(needed as u64))?;
            dict.resize(needed, 0);
            // A later block asking for more than this is refused by xz4rust.
            XzDecoder::in_heap_with_alloc_dict(dict, needed)
        }
    };
    let mut pos = 0usize;
    loop {
        let result = decoder.decode(&payload[pos..], buf).map_err(map_error)?;
        let (consumed, produced) = (result.input_consumed(), result.output_produced());
        pos += consumed;
        out.emit(&buf[..produced])?;
        match result {
            XzNextBlockResult::EndOfStream(..) => return Ok(()),
            XzNextBlockResult::NeedMoreData(..) => {
                if consumed == 0 && produced == 0 {
                    return Err(if pos >= payload.len() {
                        KimageError::TruncatedStream(Compression::Xz)
                    } else {
                        KimageError::Corrupt(Compression::Xz)
                    });
                }
            }
        }
    }
}

fn map_error(e: XzError) -> KimageError {
    match e {
        XzError::DictionaryTooLarge(n) => KimageError::TooLarge(Bound::Dictionary, n),
        XzError::NeedsLargerInputBuffer => KimageError::TruncatedStream(Compression::Xz),
        _ => KimageError::Corrupt(Compression::Xz),
    }
}

/// The dictionary size the stream's first block asks for (0 for a stream
/// without blocks).
pub fn dictionary_size(stream: &[u8]) -> Result<u64, KimageError> {
    let truncated = KimageError::TruncatedStream(Compression::Xz);
    let corrupt = KimageError::Corrupt(Compression::Xz);
    let size_byte = *stream.get(STREAM_HEADER).ok_or(truncated)?;
    if size_byte == 0 {
        return Ok(0); // the index: no blocks
    }
    let header_len = (usize::from(size_byte) + 1) * 4;
    let header = stream
        .get(STREAM_HEADER..STREAM_HEADER + header_len)
        .ok_or(truncated)?;
    // The header ends with its CRC32; parse only what lies before it.
    let mut r = Reader {
        bytes: &header[..header_len - 4],
        pos: 2,
    };
    let flags = header[1];
    if flags & 0x3c != 0 {
        return Err(corrupt);
    }
    if flags & 0x40 != 0 {
        r.vli()?;
    }
    if flags & 0x80 != 0 {
        r.vli()?;
    }
    let filters = usize::from(flags & 3) + 1;
    for _ in 0..filters {
        let id = r.vli()?;
        let props_len = r.vli()?;
        let props = r.take(props_len)?;
        if id == FILTER_LZMA2 {
            // The last filter; its one property byte is the dictionary.
            let [bits] = *props else { return Err(corrupt) };
            return match bits {
                0..=39 => Ok((2 | u64::from(bits & 1)) << (bits / 2 + 11)),
                40 => Ok(u64::from(u32::MAX)),
                _ => Err(corrupt),
            };
        }
    }
    Err(corrupt)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    /// A variable-length integer (7 bits per byte, at most 9 bytes).
    fn vli(&mut self) -> Result<u64, KimageError> {
        let mut value = 0u64;
        for i in 0..9 {
            let b = *self
                .bytes
                .get(self.pos)
                .ok_or(KimageError::Corrupt(Compression::Xz))?;
            self.pos += 1;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(KimageError::Corrupt(Compression::Xz))
    }

    fn take(&mut self, len: u64) -> Result<&[u8], KimageError> {
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| self.pos.checked_add(l))
            .filter(|&e| e <= self.bytes.len())
            .ok_or(KimageError::Corrupt(Compression::Xz))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_property_decodes_as_xz_defines_it() {
        // Stream header (12 bytes; not checked here), then a block header
        // with one filter: LZMA2 with property `bits`.
        let block = |bits: u8| {
            let mut s = alloc::vec![0u8; 12];
            s.extend_from_slice(&[2, 0x00, 0x21, 0x01, bits, 0, 0, 0, 0, 0, 0, 0]);
            s
        };
        assert_eq!(dictionary_size(&block(0)), Ok(4096));
        assert_eq!(dictionary_size(&block(1)), Ok(6144));
        assert_eq!(dictionary_size(&block(16)), Ok(1 << 20));
        assert_eq!(dictionary_size(&block(26)), Ok(32 << 20));
        assert_eq!(dictionary_size(&block(40)), Ok(u64::from(u32::MAX)));
        assert!(dictionary_size(&block(41)).is_err());
        assert!(dictionary_size(&block(28)[..20]).is_err());
        let mut reserved = block(0);
        reserved[13] = 0x04;
        assert!(dictionary_size(&reserved).is_err());
    }
}

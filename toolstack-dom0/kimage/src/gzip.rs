//! gzip: our own member-header and trailer checks around `miniz_oxide`'s
//! streaming inflate.
//!
//! Read first: RFC 1952 ("2.3. Member format": ID1 ID2 CM FLG MTIME XFL OS,
//! then FEXTRA, FNAME, FCOMMENT, FHCRC as FLG says; the deflate data; CRC32
//! and ISIZE). Inflate keeps a 32 KiB window inside its state, so memory is
//! fixed whatever the image.

use miniz_oxide::inflate::stream::{inflate, InflateState};
use miniz_oxide::{DataFormat, MZError, MZFlush, MZStatus};

use crate::decompress::Output;
use crate::error::{Compression, KimageError};
use crc32fast::Hasher as Crc32;

const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;
const RESERVED: u8 = 0xe0;
const CM_DEFLATE: u8 = 8;

/// Decodes the gzip member at the start of `payload`.
pub fn decode(payload: &[u8], buf: &mut [u8], out: &mut Output<'_>) -> Result<(), KimageError> {
    let truncated = KimageError::TruncatedStream(Compression::Gzip);
    let corrupt = KimageError::Corrupt(Compression::Gzip);
    let mut pos = header_len(payload)?;
    let mut state = InflateState::new_boxed(DataFormat::Raw);
    let mut crc = Crc32::new();
    let mut size = 0u32;
    loop {
        let r = inflate(&mut state, &payload[pos..], buf, MZFlush::None);
        pos += r.bytes_consumed;
        let produced = &buf[..r.bytes_written];
        crc.update(produced);
        size = size.wrapping_add(produced.len() as u32);
        out.emit(produced)?;
        match r.status {
            Ok(MZStatus::StreamEnd) => break,
            Ok(_) if r.bytes_consumed != 0 || r.bytes_written != 0 => {}
            Ok(_) | Err(MZError::Buf) if pos >= payload.len() => return Err(truncated),
            _ => return Err(corrupt),
        }
    }
    // RFC 1952: CRC32 of the uncompressed data, then its size mod 2^32.
    let trailer = payload.get(pos..pos + 8).ok_or(truncated)?;
    let want_crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let want_size = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
    if want_crc != crc.finalize() || want_size != size {
        return Err(corrupt);
    }
    Ok(())
}

/// The length of the member header, checked.
fn header_len(p: &[u8]) -> Result<usize, KimageError> {
    let truncated = KimageError::TruncatedStream(Compression::Gzip);
    let corrupt = KimageError::Corrupt(Compression::Gzip);
    let fixed = p.get(..10).ok_or(truncated)?;
    // Linux's gunzip also takes 1f 9e (old gzip); the layout is the same.
    if fixed[0] != 0x1f || (fixed[1] != 0x8b && fixed[1] != 0x9e) || fixed[2] != CM_DEFLATE {
        return Err(corrupt);
    }
    let flags = fixed[3];
    if flags & RESERVED != 0 {
        return Err(corrupt);
    }
    let mut pos = 10usize;
    if flags & FEXTRA != 0 {
        let x = p.get(pos..pos + 2).ok_or(truncated)?;
        pos += 2 + usize::from(u16::from_le_bytes([x[0], x[1]]));
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let rest = p.get(pos..).ok_or(truncated)?;
            let nul = rest.iter().position(|&b| b == 0).ok_or(truncated)?;
            pos += nul + 1;
        }
    }
    if flags & FHCRC != 0 {
        pos += 2;
    }
    if pos > p.len() {
        return Err(truncated);
    }
    Ok(pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_options_are_skipped_and_bad_ones_refused() {
        let plain = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
        assert_eq!(header_len(&plain), Ok(10));
        let mut named = plain.to_vec();
        named[3] = FNAME | FEXTRA | FHCRC;
        named.extend_from_slice(&[2, 0, 0xaa, 0xbb]);
        named.extend_from_slice(b"vmlinux\0");
        named.extend_from_slice(&[0, 0]);
        assert_eq!(header_len(&named), Ok(named.len()));
        assert!(header_len(&named[..named.len() - 1]).is_err());
        assert!(header_len(&named[..16]).is_err());
        let mut reserved = plain;
        reserved[3] = 0x20;
        assert!(header_len(&reserved).is_err());
        let mut method = plain;
        method[2] = 7;
        assert!(header_len(&method).is_err());
    }
}

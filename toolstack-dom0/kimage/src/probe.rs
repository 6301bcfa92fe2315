//! What a kernel image is: an ELF64 vmlinux, or an x86 bzImage and how its
//! payload is compressed.
//!
//! Read first: Linux Documentation/arch/x86/boot.rst ("The real-mode kernel
//! header", "Details of header fields"). The setup header starts at 0x1f1;
//! the protected-mode kernel starts at `(setup_sects + 1) * 512` (a
//! `setup_sects` of 0 means 4); from protocol 2.08 `payload_offset`
//! (relative to the protected-mode kernel) and `payload_length` locate the
//! compressed vmlinux, whose format "can be determined by the magic
//! numbers".

use core::ops::Range;

use crate::error::{Compression, KimageError};

/// `\x7fELF`.
pub const ELF_MAGIC: [u8; 4] = [0x7f, b'E', b'L', b'F'];

/// Offset of `setup_sects` (u8).
const SETUP_SECTS: usize = 0x1f1;
/// Offset of `boot_flag` (u16, 0xAA55).
const BOOT_FLAG: usize = 0x1fe;
/// Offset of `header` ("HdrS").
const HEADER: usize = 0x202;
/// Offset of `version` (u16, major << 8 | minor).
const VERSION: usize = 0x206;
/// Offset of `payload_offset` (u32, protocol 2.08+).
const PAYLOAD_OFFSET: usize = 0x248;
/// Offset of `payload_length` (u32, protocol 2.08+).
const PAYLOAD_LENGTH: usize = 0x24c;
/// The first protocol with `payload_offset`/`payload_length`.
pub const MIN_BOOT_PROTOCOL: u16 = 0x0208;

/// A bzImage's header facts this loader uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BzImage {
    /// Boot protocol version (e.g. 0x020f).
    pub version: u16,
    /// The payload's compression, from its magic.
    pub compression: Compression,
    /// Where the payload lies in the image (checked to be inside it).
    pub payload: Range<usize>,
}

/// What [`probe`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// An ELF64 image (vmlinux), loaded as is.
    Elf,
    /// A bzImage.
    BzImage(BzImage),
}

/// Identifies `image` without decompressing anything. Every offset it
/// derives is checked against `image.len()`.
pub fn probe(image: &[u8]) -> Result<Format, KimageError> {
    if image.starts_with(&ELF_MAGIC) {
        return Ok(Format::Elf);
    }
    if image.len() < PAYLOAD_LENGTH + 4 {
        // Too short for a bzImage setup header; call it by what it starts as.
        return if image.get(HEADER..HEADER + 4).is_some_and(|m| m == b"HdrS") {
            Err(KimageError::Truncated("bzImage setup header"))
        } else {
            Err(KimageError::BadMagic)
        };
    }
    if &image[HEADER..HEADER + 4] != b"HdrS" || le16(image, BOOT_FLAG) != 0xaa55 {
        return Err(KimageError::BadMagic);
    }
    let version = le16(image, VERSION);
    if version < MIN_BOOT_PROTOCOL {
        return Err(KimageError::OldBootProtocol(version));
    }
    // boot.rst: "If this field is 0, the real value is 4."
    let setup_sects = match image[SETUP_SECTS] {
        0 => 4,
        n => usize::from(n),
    };
    let pm_start = (setup_sects + 1) * 512;
    let offset = le32(image, PAYLOAD_OFFSET) as usize;
    let length = le32(image, PAYLOAD_LENGTH) as usize;
    let start = pm_start
        .checked_add(offset)
        .ok_or(KimageError::BadBzImage("payload_offset"))?;
    let end = start
        .checked_add(length)
        .ok_or(KimageError::BadBzImage("payload_length"))?;
    if start > image.len() {
        return Err(KimageError::Truncated("bzImage payload_offset past end"));
    }
    if end > image.len() {
        return Err(KimageError::Truncated("bzImage payload"));
    }
    if length == 0 {
        return Err(KimageError::BadBzImage("payload_length is 0"));
    }
    let compression = compression_of(&image[start..end])?;
    Ok(Format::BzImage(BzImage {
        version,
        compression,
        payload: start..end,
    }))
}

/// The compression of a payload, from its magic number (the same list
/// Linux's decompressors and boot.rst name).
pub fn compression_of(payload: &[u8]) -> Result<Compression, KimageError> {
    const MAGICS: [(&[u8], Compression); 10] = [
        (&[0xfd, b'7', b'z', b'X', b'Z', 0x00], Compression::Xz),
        (&[0x1f, 0x8b], Compression::Gzip),
        (&[0x1f, 0x9e], Compression::Gzip),
        (&[0x28, 0xb5, 0x2f, 0xfd], Compression::Zstd),
        (b"BZh", Compression::Bzip2),
        (&[0x5d, 0x00, 0x00], Compression::Lzma),
        (&[0x89, b'L', b'Z', b'O'], Compression::Lzo),
        (&[0x02, 0x21, 0x4c, 0x18], Compression::Lz4),
        (&[0x04, 0x22, 0x4d, 0x18], Compression::Lz4),
        (&ELF_MAGIC, Compression::None),
    ];
    MAGICS
        .iter()
        .find(|(magic, _)| payload.starts_with(magic))
        .map(|&(_, c)| c)
        .ok_or(KimageError::UnknownCompression)
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Builds a minimal bzImage around `payload` (tests and fuzz seeds).
#[cfg(test)]
pub(crate) fn make_bzimage(payload: &[u8]) -> alloc::vec::Vec<u8> {
    let setup_sects = 3usize;
    let pm_start = (setup_sects + 1) * 512;
    let mut img = alloc::vec![0u8; pm_start + 16];
    img[SETUP_SECTS] = setup_sects as u8;
    img[BOOT_FLAG..BOOT_FLAG + 2].copy_from_slice(&0xaa55u16.to_le_bytes());
    img[HEADER..HEADER + 4].copy_from_slice(b"HdrS");
    img[VERSION..VERSION + 2].copy_from_slice(&0x020fu16.to_le_bytes());
    img[PAYLOAD_OFFSET..PAYLOAD_OFFSET + 4].copy_from_slice(&16u32.to_le_bytes());
    img[PAYLOAD_LENGTH..PAYLOAD_LENGTH + 4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    img.extend_from_slice(payload);
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elf_and_each_compression_are_recognised() {
        assert_eq!(probe(b"\x7fELF\x02\x01"), Ok(Format::Elf));
        for (magic, c) in [
            (&[0xfd, b'7', b'z', b'X', b'Z', 0][..], Compression::Xz),
            (&[0x1f, 0x8b, 8][..], Compression::Gzip),
            (&[0x28, 0xb5, 0x2f, 0xfd][..], Compression::Zstd),
            (b"BZh9", Compression::Bzip2),
            (&[0x5d, 0, 0, 0x80][..], Compression::Lzma),
            (b"\x89LZO", Compression::Lzo),
            (&[0x02, 0x21, 0x4c, 0x18][..], Compression::Lz4),
            (b"\x7fELF", Compression::None),
        ] {
            let img = make_bzimage(magic);
            let Ok(Format::BzImage(bz)) = probe(&img) else {
                panic!("{c:?} not a bzImage");
            };
            assert_eq!(bz.compression, c);
            assert_eq!(&img[bz.payload], magic);
            assert_eq!(bz.version, 0x020f);
        }
        assert_eq!(
            probe(&make_bzimage(b"????")),
            Err(KimageError::UnknownCompression)
        );
    }

    #[test]
    fn header_fields_are_checked() {
        assert_eq!(probe(b""), Err(KimageError::BadMagic));
        assert_eq!(probe(&[0u8; 4096]), Err(KimageError::BadMagic));
        let good = make_bzimage(b"\x1f\x8b");

        let mut old = good.clone();
        old[VERSION..VERSION + 2].copy_from_slice(&0x0207u16.to_le_bytes());
        assert_eq!(probe(&old), Err(KimageError::OldBootProtocol(0x0207)));

        let mut flag = good.clone();
        flag[BOOT_FLAG] = 0;
        assert_eq!(probe(&flag), Err(KimageError::BadMagic));

        let mut long = good.clone();
        long[PAYLOAD_LENGTH..PAYLOAD_LENGTH + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(probe(&long), Err(KimageError::Truncated("bzImage payload")));

        let mut far = good.clone();
        far[PAYLOAD_OFFSET..PAYLOAD_OFFSET + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(probe(&far), Err(KimageError::Truncated(_))));

        let mut empty = good.clone();
        empty[PAYLOAD_LENGTH..PAYLOAD_LENGTH + 4].copy_from_slice(&0u32.to_le_bytes());
        assert!(matches!(probe(&empty), Err(KimageError::BadBzImage(_))));

        // setup_sects = 0 means 4: the payload moves one sector further.
        let mut zero = good.clone();
        zero[SETUP_SECTS] = 0;
        zero.splice(2048..2048, [0u8; 512]);
        assert!(matches!(probe(&zero), Ok(Format::BzImage(_))));

        assert_eq!(
            probe(&good[..0x210]),
            Err(KimageError::Truncated("bzImage setup header"))
        );
    }
}

//! Why a kernel image was refused: one small `Copy` value per cause.
//!
//! Each `Display` is one line meant for a XenAPI error's parameters (the
//! toolstack fails `VM.start` with it); it names the cause, not the code.

use core::fmt;

/// A compression format found at the start of a bzImage's payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// xz (LZMA2, usually behind the x86 BCJ filter): Debian's kernels.
    Xz,
    /// gzip (deflate).
    Gzip,
    /// zstd.
    Zstd,
    /// bzip2 (refused).
    Bzip2,
    /// Legacy `.lzma` (refused).
    Lzma,
    /// lzop (refused).
    Lzo,
    /// LZ4 legacy frame (refused).
    Lz4,
    /// Not compressed: the payload is the ELF itself.
    None,
}

impl Compression {
    /// The name users know it by.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Xz => "xz",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Bzip2 => "bzip2",
            Compression::Lzma => "lzma",
            Compression::Lzo => "lzo",
            Compression::Lz4 => "lz4",
            Compression::None => "none",
        }
    }
}

/// Which bound of [`crate::Limits`] an image went past.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// Decompressed (ELF) bytes: [`crate::Limits::max_output`].
    Output,
    /// xz dictionary or zstd window: [`crate::Limits::max_dictionary`].
    Dictionary,
    /// ELF and program headers' extent: [`crate::Limits::max_header_bytes`].
    Headers,
    /// Program header count: [`crate::Limits::max_program_headers`].
    ProgramHeaders,
    /// PT_NOTE bytes kept: [`crate::Limits::max_note_bytes`].
    Notes,
    /// Guest-physical span of the loaded image: [`crate::Limits::max_span`].
    Span,
}

impl Bound {
    fn name(self) -> &'static str {
        match self {
            Bound::Output => "decompressed size",
            Bound::Dictionary => "decompressor dictionary/window",
            Bound::Headers => "ELF header area",
            Bound::ProgramHeaders => "program header count",
            Bound::Notes => "ELF note bytes",
            Bound::Span => "loaded image span",
        }
    }
}

/// Why a sink refused a write (the sink says; [`crate::Sink`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The guest-physical address of the refused write or zero-fill.
    pub paddr: u64,
    /// A short reason, e.g. "outside guest RAM".
    pub reason: &'static str,
}

/// Why an image was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KimageError {
    /// The image (or a header inside it) ends early; the field names what.
    Truncated(&'static str),
    /// Neither an ELF64 nor a bzImage.
    BadMagic,
    /// A bzImage whose boot protocol predates `payload_offset` (2.08).
    OldBootProtocol(u16),
    /// A bzImage header field is inconsistent; the field is named.
    BadBzImage(&'static str),
    /// A payload compression this loader does not decompress.
    Unsupported(Compression),
    /// The payload's compression is not recognised at all.
    UnknownCompression,
    /// The compressed stream is corrupt; the format is named.
    Corrupt(Compression),
    /// The compressed stream ended before its end marker.
    TruncatedStream(Compression),
    /// A bound was exceeded: which, and the value asked for (saturated).
    TooLarge(Bound, u64),
    /// dom0 could not get memory for the decompressor (dictionary/window).
    OutOfMemory(u64),
    /// The ELF is not a 64-bit little-endian x86-64 executable, or a header
    /// field is inconsistent; the field is named.
    BadElf(&'static str),
    /// A Xen ELF note has a bad value; its type is given.
    BadNote(u32),
    /// The ELF has no `XEN_ELFNOTE_PHYS32_ENTRY` (PVH) note.
    MissingPvhEntry,
    /// The ELF has no PV entry (`XEN_ELFNOTE_ENTRY` or `e_entry`).
    MissingPvEntry,
    /// The sink refused a write.
    SinkRefused(Refusal),
}

impl fmt::Display for KimageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            KimageError::Truncated(what) => write!(f, "kernel image truncated: {what}"),
            KimageError::BadMagic => f.write_str("kernel image is neither ELF64 nor bzImage"),
            KimageError::OldBootProtocol(v) => write!(
                f,
                "bzImage boot protocol {}.{:02} is older than 2.08",
                v >> 8,
                v & 0xff
            ),
            KimageError::BadBzImage(what) => write!(f, "bad bzImage header: {what}"),
            KimageError::Unsupported(c) => {
                write!(f, "kernel compressed with {}: not supported", c.name())
            }
            KimageError::UnknownCompression => f.write_str("bzImage payload compression unknown"),
            KimageError::Corrupt(c) => write!(f, "corrupt {} stream in kernel image", c.name()),
            KimageError::TruncatedStream(c) => {
                write!(f, "{} stream in kernel image ends early", c.name())
            }
            KimageError::TooLarge(b, n) => write!(f, "kernel image {} too large: {n}", b.name()),
            KimageError::OutOfMemory(n) => {
                write!(f, "not enough dom0 memory to decompress kernel ({n} bytes)")
            }
            KimageError::BadElf(what) => write!(f, "bad kernel ELF: {what}"),
            KimageError::BadNote(t) => write!(f, "bad value for Xen ELF note {t}"),
            KimageError::MissingPvhEntry => {
                f.write_str("kernel has no PVH entry (XEN_ELFNOTE_PHYS32_ENTRY)")
            }
            KimageError::MissingPvEntry => f.write_str("kernel has no PV entry point"),
            KimageError::SinkRefused(r) => {
                write!(f, "kernel load at {:#x} refused: {}", r.paddr, r.reason)
            }
        }
    }
}

impl core::error::Error for KimageError {}

impl From<Refusal> for KimageError {
    fn from(r: Refusal) -> Self {
        KimageError::SinkRefused(r)
    }
}

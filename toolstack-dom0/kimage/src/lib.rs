//! Guest kernel loader: ELF vmlinux or bzImage, streamed into guest memory.
//!
//! Read first: Linux Documentation/arch/x86/boot.rst (the bzImage header),
//! the ELF gABI (program headers, notes), xen/include/public/elfnote.h, and
//! DESIGN.md beside this file (what is accepted, the bounds and why).
//!
//! [`load`] probes the image ([`probe`]), decompresses a bzImage's payload
//! (xz with the x86 BCJ filter, gzip, zstd; the rest refused) through a
//! fixed working buffer, and feeds the ELF bytes to an [`ElfStream`], which
//! writes each PT_LOAD segment to a [`Sink`] by guest-physical address as
//! the bytes pass by. dom0 never holds the decompressed kernel: its memory
//! for a load is the decompressor's dictionary (bounded by
//! [`Limits::max_dictionary`]) plus a few fixed buffers, whatever the
//! kernel's size. Every size read from the image is bounded; a corrupt,
//! truncated or hostile image is a [`KimageError`] (for `VM.start`'s XenAPI
//! error), never a panic.

#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

mod decompress;
mod elf;
mod error;
mod gzip;
mod notes;
mod probe;
mod sink;
mod xz;
mod zstd;

use alloc::vec::Vec;
use core::ops::Range;

pub use decompress::CHUNK;
pub use elf::{ElfStream, ElfSummary, Segment};
pub use error::{Bound, Compression, KimageError, Refusal};
pub use probe::{compression_of, probe, BzImage, Format, MIN_BOOT_PROTOCOL};
pub use sink::{CountingSink, MemorySink, Sink};
pub use xcp_builder::XenNotes;
pub use xz::dictionary_size as xz_dictionary_size;

const MIB: u64 = 1 << 20;

/// The bounds a load is held to. [`Limits::default`] fits Debian's kernels
/// and dom0's heap; DESIGN.md gives the reasons for each number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most ELF bytes (decompressed size, or the image's size for an ELF).
    pub max_output: u64,
    /// dom0 heap for the decompressor's history: the largest xz dictionary
    /// accepted; a zstd window may be half of it (its buffer grows to
    /// about twice the window).
    pub max_dictionary: usize,
    /// The ELF and program headers must lie within this many first bytes.
    pub max_header_bytes: usize,
    /// Most program headers.
    pub max_program_headers: usize,
    /// Most PT_NOTE bytes kept for note parsing.
    pub max_note_bytes: usize,
    /// Largest guest-physical span of the loaded segments (and of any one).
    pub max_span: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_output: 128 * MIB,
            max_dictionary: 32 * MIB as usize,
            max_header_bytes: 64 * 1024,
            max_program_headers: 64,
            max_note_bytes: 64 * 1024,
            max_span: 256 * MIB,
        }
    }
}

/// What a load put in the guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loaded {
    /// The image's compression ([`Compression::None`] for an ELF, or a
    /// bzImage carrying an uncompressed ELF).
    pub compression: Compression,
    /// `e_entry` (a virtual address for Linux).
    pub e_entry: u64,
    /// The PT_LOAD segments, in file order.
    pub segments: Vec<Segment>,
    /// Lowest to one past the highest guest-physical byte loaded or zeroed.
    pub paddr_range: Range<u64>,
    /// Size of the ELF (decompressed bytes).
    pub elf_size: u64,
    /// The Xen ELF notes.
    pub notes: XenNotes,
    /// The ELF was ELF32 (i386): a PVH guest's 32-bit entry can run it,
    /// a PV domain cannot.
    pub class32: bool,
}

impl Loaded {
    /// The 32-bit physical PVH entry (`XEN_ELFNOTE_PHYS32_ENTRY`), checked
    /// to lie in a loaded segment's file bytes.
    pub fn pvh_entry(&self) -> Result<u32, KimageError> {
        let entry = self
            .notes
            .phys32_entry
            .ok_or(KimageError::MissingPvhEntry)?;
        let bad = KimageError::BadNote(xen_abi::elfnote::XEN_ELFNOTE_PHYS32_ENTRY);
        let entry = u32::try_from(entry).map_err(|_| bad)?;
        let inside = self
            .segments
            .iter()
            .any(|s| (s.paddr..s.paddr + s.filesz).contains(&u64::from(entry)));
        if !inside {
            return Err(bad);
        }
        Ok(entry)
    }

    /// The PV entry: `XEN_ELFNOTE_ENTRY`, else `e_entry` (as libelf does).
    pub fn pv_entry(&self) -> Result<u64, KimageError> {
        match self.notes.entry {
            Some(e) => Ok(e),
            None if self.e_entry != 0 => Ok(self.e_entry),
            None => Err(KimageError::MissingPvEntry),
        }
    }
}

/// The dictionary an xz `image` needs lent to [`load_with_dictionary`]:
/// its first block's, at least xz's 4 KiB minimum. `None` for an image that
/// is not xz (an ELF, or a gzip, zstd or uncompressed payload: nothing to
/// lend). Reads only the headers, so the caller can find the memory before
/// loading; the size is the image's claim: check it against
/// [`Limits::max_dictionary`] before providing that much.
pub fn xz_dictionary_needed(image: &[u8]) -> Result<Option<u64>, KimageError> {
    match probe(image)? {
        Format::BzImage(bz) if bz.compression == Compression::Xz => {
            let size = xz::dictionary_size(&image[bz.payload])?;
            Ok(Some(size.max(xz::MIN_DICTIONARY as u64)))
        }
        _ => Ok(None),
    }
}

/// Loads `image` into `sink`, with the decompressor's dictionary (if any)
/// on dom0's heap, allocated fallibly.
pub fn load(image: &[u8], limits: &Limits, sink: &mut impl Sink) -> Result<Loaded, KimageError> {
    load_inner(image, limits, None, sink)
}

/// As [`load`], with the xz dictionary in `dictionary` (memory the caller
/// found elsewhere than its heap). It must be at least as large as the
/// stream asks ([`xz_dictionary_size`]), and is still held to
/// [`Limits::max_dictionary`]. zstd keeps its window on the heap.
pub fn load_with_dictionary(
    image: &[u8],
    limits: &Limits,
    dictionary: &mut [u8],
    sink: &mut impl Sink,
) -> Result<Loaded, KimageError> {
    load_inner(image, limits, Some(dictionary), sink)
}

fn load_inner(
    image: &[u8],
    limits: &Limits,
    dictionary: Option<&mut [u8]>,
    sink: &mut impl Sink,
) -> Result<Loaded, KimageError> {
    let (compression, payload) = match probe(image)? {
        Format::Elf => (Compression::None, image),
        Format::BzImage(bz) => (bz.compression, &image[bz.payload]),
    };
    let mut elf = ElfStream::new(limits);
    let mut feed = |bytes: &[u8]| elf.feed(bytes, sink);
    decompress::decompress(compression, payload, limits, dictionary, &mut feed)?;
    let summary = elf.finish()?;
    Ok(Loaded {
        compression,
        e_entry: summary.e_entry,
        segments: summary.segments,
        paddr_range: summary.paddr_range,
        elf_size: summary.elf_size,
        notes: summary.notes,
        class32: summary.class32,
    })
}

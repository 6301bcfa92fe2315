//! Reading a PV kernel image: ELF64 x86-64 `ET_EXEC`, its `PT_LOAD`
//! segments and its Xen notes.
//!
//! Read first: xen/common/libelf/libelf-loader.c and libelf-dominfo.c (what
//! Xen accepts), xen/include/public/elfnote.h. The `object` crate parses the
//! headers (bounds-checked, no panics); this file adds the PV-specific
//! checks. Nothing here trusts the image: every size and offset is checked
//! before use and every failure is an [`Error`].

use alloc::vec::Vec;

use object::elf::{FileHeader64, ELFCLASS64, ELFDATA2LSB, EM_X86_64, ET_EXEC, PT_LOAD, PT_NOTE};
use object::read::elf::{FileHeader, NoteIterator, ProgramHeader, SectionHeader};
use object::LittleEndian as LE;

use crate::notes::XenNotes;
use crate::Error;

/// Most program headers an image may have.
pub const MAX_PROGRAM_HEADERS: usize = 64;
/// Most `PT_LOAD` segments an image may have.
pub const MAX_LOAD_SEGMENTS: usize = 16;
/// Most section headers searched for notes when there is no `PT_NOTE`.
pub const MAX_SECTION_HEADERS: usize = 4096;
/// Largest `p_align` accepted (2 MiB, what Linux uses).
pub const MAX_SEGMENT_ALIGN: u64 = 1 << 21;

/// One `PT_LOAD` segment as the image states it (not yet placed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadSegment {
    /// `p_offset`: where its bytes start in the file.
    pub offset: u64,
    /// `p_filesz`: bytes copied from the file.
    pub filesz: u64,
    /// `p_memsz`: bytes in memory; the rest after `filesz` is zeroed.
    pub memsz: u64,
    /// `p_paddr`: Xen places segments by paddr (plus the virt offset).
    pub paddr: u64,
    /// `p_vaddr`.
    pub vaddr: u64,
}

/// A parsed and checked image: its entry, segments and Xen notes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElfImage {
    /// `e_entry`.
    pub e_entry: u64,
    /// `PT_LOAD` segments with `p_memsz > 0`, in program-header order.
    pub segments: Vec<LoadSegment>,
    /// The Xen notes (from `PT_NOTE`, else from `SHT_NOTE` sections).
    pub notes: XenNotes,
}

impl ElfImage {
    /// Parses `data`. Checks the ELF identity and every segment's file
    /// range, sizes and alignment, and decodes the Xen notes. Placement
    /// checks (overlap, VIRT_BASE, entry) happen in the layout, which knows
    /// the virt offset.
    pub fn parse(data: &[u8]) -> Result<Self, Error> {
        let ident = data.get(..16).ok_or(Error::Malformed)?;
        if ident[..4] != *b"\x7fELF" {
            return Err(Error::Malformed);
        }
        if ident[4] != ELFCLASS64 {
            return Err(Error::NotElf64);
        }
        if ident[5] != ELFDATA2LSB {
            return Err(Error::NotLittleEndian);
        }
        let header = FileHeader64::<LE>::parse(data).map_err(|_| Error::Malformed)?;
        let endian = header.endian().map_err(|_| Error::NotLittleEndian)?;
        if header.e_machine(endian) != EM_X86_64 {
            return Err(Error::NotX86_64);
        }
        if header.e_type(endian) != ET_EXEC {
            return Err(Error::NotExecutable);
        }
        let phnum = header.phnum(endian, data).map_err(|_| Error::Malformed)?;
        if phnum > MAX_PROGRAM_HEADERS {
            return Err(Error::TooManyProgramHeaders);
        }
        let phdrs = header
            .program_headers(endian, data)
            .map_err(|_| Error::Malformed)?;

        let mut segments = Vec::new();
        let mut notes = XenNotes::default();
        for ph in phdrs {
            match ph.p_type(endian) {
                PT_LOAD => {
                    let seg = LoadSegment {
                        offset: ph.p_offset(endian),
                        filesz: ph.p_filesz(endian),
                        memsz: ph.p_memsz(endian),
                        paddr: ph.p_paddr(endian),
                        vaddr: ph.p_vaddr(endian),
                    };
                    check_segment(&seg, ph.p_align(endian), data.len())?;
                    if seg.memsz == 0 {
                        continue;
                    }
                    if segments.len() == MAX_LOAD_SEGMENTS {
                        return Err(Error::TooManySegments);
                    }
                    segments.push(seg);
                }
                PT_NOTE => {
                    let it = ph.notes(endian, data).map_err(|_| Error::BadNote)?;
                    if let Some(it) = it {
                        read_notes(it, &mut notes)?;
                    }
                }
                _ => {}
            }
        }
        if segments.is_empty() {
            return Err(Error::NoLoadSegments);
        }
        if notes.count == 0 {
            // Fallback: SHT_NOTE sections (an image linked without PT_NOTE).
            // Section headers only: names are not needed, so a missing or
            // bad string table does not matter.
            let sections = header
                .section_headers(endian, data)
                .map_err(|_| Error::Malformed)?;
            if sections.len() > MAX_SECTION_HEADERS {
                return Err(Error::Malformed);
            }
            for section in sections {
                let it = section.notes(endian, data).map_err(|_| Error::BadNote)?;
                if let Some(it) = it {
                    read_notes(it, &mut notes)?;
                }
            }
        }
        Ok(ElfImage {
            e_entry: header.e_entry(endian),
            segments,
            notes,
        })
    }
}

/// Checks one `PT_LOAD` segment against the file and the ELF rules.
fn check_segment(seg: &LoadSegment, align: u64, file_len: usize) -> Result<(), Error> {
    if seg.filesz > seg.memsz {
        return Err(Error::FileSizeExceedsMemSize);
    }
    let end = seg
        .offset
        .checked_add(seg.filesz)
        .ok_or(Error::SegmentPastFile)?;
    if end > file_len as u64 {
        return Err(Error::SegmentPastFile);
    }
    if seg.vaddr.checked_add(seg.memsz).is_none() || seg.paddr.checked_add(seg.memsz).is_none() {
        return Err(Error::AddressOverflow);
    }
    // The gABI's `p_vaddr ≡ p_offset (mod p_align)` is not required:
    // segments are copied byte for byte (as Xen's libelf does), and GRUB's
    // x86_64-xen image has a module segment at file offset 0x...ef that
    // says 8-byte alignment.
    if align > 1 && (!align.is_power_of_two() || align > MAX_SEGMENT_ALIGN) {
        return Err(Error::BadAlignment);
    }
    Ok(())
}

/// Records every note with owner "Xen" from one note table.
fn read_notes(
    mut it: NoteIterator<'_, FileHeader64<LE>>,
    notes: &mut XenNotes,
) -> Result<(), Error> {
    while let Some(note) = it.next().map_err(|_| Error::BadNote)? {
        if note.name() == b"Xen" {
            notes.record(note.n_type(LE), note.desc())?;
        }
    }
    Ok(())
}

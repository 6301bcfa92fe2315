//! A streaming ELF loader: fed the image's bytes in order, it writes each
//! PT_LOAD segment to a [`Sink`] as its bytes pass by.
//!
//! Read first: the System V gABI "ELF Header", "Program Header" and "Note
//! Section"; the x86-64 psABI (EM_X86_64 = 62). ELF64 x86-64 is what
//! kernels are; ELF32 i386 is accepted too, because a PVH guest starts at
//! its 32-bit `PHYS32_ENTRY` and some PVH images are 32-bit (GRUB's
//! `i386-xen_pvh`). The summary says which class it was
//! ([`ElfSummary::class32`]) so a PV build can refuse one. The ELF and program headers
//! must lie in the first [`Limits::max_header_bytes`]; they are the only
//! bytes buffered (plus PT_NOTE contents, up to [`Limits::max_note_bytes`]).
//! Every segment is checked before the first write, so a hostile header
//! writes nothing.

use alloc::vec::Vec;
use core::ops::Range;

use crate::error::{Bound, KimageError};
use crate::notes;
use crate::probe::ELF_MAGIC;
use crate::sink::Sink;
use crate::Limits;
use xcp_builder::XenNotes;

/// Size of an ELF64 header (an ELF32 header, 52 bytes, fits in it).
pub const EHDR_SIZE: usize = 64;
/// Size of an ELF64 program header.
pub const PHDR_SIZE: usize = 56;
/// Size of an ELF32 header.
pub const EHDR32_SIZE: usize = 52;
/// Size of an ELF32 program header.
pub const PHDR32_SIZE: usize = 32;
const ELFCLASS32: u8 = 1;
const ELFCLASS64: u8 = 2;
const EM_386: u16 = 3;
const ELFDATA2LSB: u8 = 1;
const EV_CURRENT: u8 = 1;
const ET_EXEC: u16 = 2;
const EM_X86_64: u16 = 62;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;

/// One PT_LOAD segment, as checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// `p_offset`: where its bytes start in the ELF.
    pub offset: u64,
    /// `p_filesz`: bytes from the file.
    pub filesz: u64,
    /// `p_memsz`: bytes in memory (the rest zero-filled).
    pub memsz: u64,
    /// `p_paddr`: where it is loaded (guest-physical).
    pub paddr: u64,
    /// `p_vaddr`: where the kernel expects it mapped.
    pub vaddr: u64,
}

/// A PT_NOTE segment being collected.
#[derive(Debug)]
struct NoteSegment {
    offset: u64,
    filesz: u64,
    align: u64,
    data: Vec<u8>,
}

/// What a finished stream loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElfSummary {
    /// `e_entry`.
    pub e_entry: u64,
    /// The PT_LOAD segments, in file order.
    pub segments: Vec<Segment>,
    /// Lowest `p_paddr` to highest `p_paddr + p_memsz`.
    pub paddr_range: Range<u64>,
    /// ELF bytes consumed (the whole image, headers and trailing sections).
    pub elf_size: u64,
    /// The Xen notes of the PT_NOTE segments.
    pub notes: XenNotes,
    /// The image was ELF32 (i386): only a PVH guest, which starts in
    /// 32-bit mode at `PHYS32_ENTRY`, can run it.
    pub class32: bool,
}

/// The streaming loader. Feed it with [`ElfStream::feed`], then call
/// [`ElfStream::finish`].
#[derive(Debug)]
pub struct ElfStream {
    limits: Limits,
    /// Header bytes buffered until the program headers are complete.
    header: Vec<u8>,
    /// How many header bytes are needed before parsing the next part.
    need: usize,
    parsed: bool,
    /// File offset of the next byte fed (after parsing).
    pos: u64,
    e_entry: u64,
    /// ELF32 rather than ELF64 (known once the ELF header is parsed).
    class32: bool,
    loads: Vec<Segment>,
    /// The first load segment not yet complete.
    next_load: usize,
    notes: Vec<NoteSegment>,
}

impl ElfStream {
    /// A stream checked against `limits`.
    pub fn new(limits: &Limits) -> Self {
        ElfStream {
            limits: *limits,
            header: Vec::new(),
            need: EHDR_SIZE,
            parsed: false,
            pos: 0,
            e_entry: 0,
            class32: false,
            loads: Vec::new(),
            next_load: 0,
            notes: Vec::new(),
        }
    }

    /// Takes the next `bytes` of the image; writes what belongs to PT_LOAD
    /// segments to `sink`.
    pub fn feed(&mut self, mut bytes: &[u8], sink: &mut impl Sink) -> Result<(), KimageError> {
        while !self.parsed {
            let take = (self.need - self.header.len()).min(bytes.len());
            self.header.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.header.len() < self.need {
                return Ok(());
            }
            if self.need == EHDR_SIZE {
                (self.need, self.class32) = parse_ehdr(&self.header, &self.limits)?;
                if self.need > EHDR_SIZE {
                    // Grow once, fallibly: the bound already holds.
                    self.header
                        .try_reserve_exact(self.need - EHDR_SIZE)
                        .map_err(|_| KimageError::OutOfMemory(self.need as u64))?;
                }
            } else {
                self.parse_headers()?;
                self.parsed = true;
                let buffered = core::mem::take(&mut self.header);
                self.body(&buffered, sink)?;
            }
        }
        self.body(bytes, sink)
    }

    /// Ends the stream: every segment must be complete. Parses the notes.
    pub fn finish(self) -> Result<ElfSummary, KimageError> {
        if !self.parsed {
            return Err(KimageError::Truncated("ELF headers"));
        }
        // `body` completes empty segments as it reaches them: what is left
        // waits for bytes that never came.
        if self.next_load < self.loads.len() {
            return Err(KimageError::Truncated("ELF PT_LOAD segment"));
        }
        let mut found = XenNotes::default();
        for n in &self.notes {
            if n.data.len() as u64 != n.filesz {
                return Err(KimageError::Truncated("ELF PT_NOTE segment"));
            }
            notes::parse(&n.data, n.align, &mut found)?;
        }
        let (start, end) = physical_extent(&self.loads);
        Ok(ElfSummary {
            e_entry: self.e_entry,
            segments: self.loads,
            paddr_range: start..end,
            elf_size: self.pos,
            notes: found,
            class32: self.class32,
        })
    }

    /// Parses and checks every program header (all of them are buffered).
    fn parse_headers(&mut self) -> Result<(), KimageError> {
        let h = &self.header;
        let (phoff, phnum, phsize) = if self.class32 {
            self.e_entry = u64::from(le32(h, 24));
            (le32(h, 28) as usize, usize::from(le16(h, 44)), PHDR32_SIZE)
        } else {
            self.e_entry = le64(h, 24);
            (le64(h, 32) as usize, usize::from(le16(h, 56)), PHDR_SIZE)
        };
        let mut note_bytes = 0u64;
        for i in 0..phnum {
            let p = &h[phoff + i * phsize..phoff + (i + 1) * phsize];
            let p_type = le32(p, 0);
            let (offset, vaddr, paddr, filesz, memsz, align) = if self.class32 {
                let w = |at| u64::from(le32(p, at));
                (w(4), w(8), w(12), w(16), w(20), w(28))
            } else {
                (
                    le64(p, 8),
                    le64(p, 16),
                    le64(p, 24),
                    le64(p, 32),
                    le64(p, 40),
                    le64(p, 48),
                )
            };
            let file_end = offset
                .checked_add(filesz)
                .ok_or(KimageError::BadElf("segment offset + size overflows"))?;
            if file_end > self.limits.max_output {
                return Err(KimageError::TooLarge(Bound::Output, file_end));
            }
            match p_type {
                PT_LOAD => {
                    if filesz > memsz {
                        return Err(KimageError::BadElf("PT_LOAD p_filesz > p_memsz"));
                    }
                    paddr
                        .checked_add(memsz)
                        .ok_or(KimageError::BadElf("PT_LOAD address + size overflows"))?;
                    vaddr
                        .checked_add(memsz)
                        .ok_or(KimageError::BadElf("PT_LOAD address + size overflows"))?;
                    if memsz > self.limits.max_span {
                        return Err(KimageError::TooLarge(Bound::Span, memsz));
                    }
                    // Streaming needs file order: each segment's bytes after
                    // the previous one's (and no byte in two segments).
                    if let Some(prev) = self.loads.iter().rev().find(|s| s.filesz != 0) {
                        if filesz != 0 && prev.offset + prev.filesz > offset {
                            return Err(KimageError::BadElf(
                                "PT_LOAD segments out of file order or overlapping",
                            ));
                        }
                    }
                    self.loads.push(Segment {
                        offset,
                        filesz,
                        memsz,
                        paddr,
                        vaddr,
                    });
                }
                PT_NOTE => {
                    note_bytes = note_bytes.saturating_add(filesz);
                    if note_bytes > self.limits.max_note_bytes as u64 {
                        return Err(KimageError::TooLarge(Bound::Notes, note_bytes));
                    }
                    self.notes.push(NoteSegment {
                        offset,
                        filesz,
                        align: if align == 8 { 8 } else { 4 },
                        data: Vec::with_capacity(filesz as usize),
                    });
                }
                _ => {}
            }
        }
        if self.loads.is_empty() {
            return Err(KimageError::BadElf("no PT_LOAD segment"));
        }
        check_physical(&self.loads, self.limits.max_span)
    }

    /// Handles `chunk`, the bytes at file offset `self.pos`.
    fn body(&mut self, chunk: &[u8], sink: &mut impl Sink) -> Result<(), KimageError> {
        let start = self.pos;
        let end = start.saturating_add(chunk.len() as u64);
        if end > self.limits.max_output {
            return Err(KimageError::TooLarge(Bound::Output, end));
        }
        while let Some(s) = self.loads.get(self.next_load).copied() {
            // A segment with no file bytes is complete at once: its
            // `p_offset` means nothing, and waiting for it would let a later
            // segment's bytes pass unwritten.
            if s.filesz == 0 {
                zero_fill(&s, sink)?;
                self.next_load += 1;
                continue;
            }
            if s.offset >= end {
                break;
            }
            let file_end = s.offset + s.filesz;
            let lo = s.offset.max(start);
            let hi = file_end.min(end);
            if lo < hi {
                let bytes = &chunk[(lo - start) as usize..(hi - start) as usize];
                sink.write(s.paddr + (lo - s.offset), bytes)?;
            }
            if file_end > end {
                break;
            }
            zero_fill(&s, sink)?;
            self.next_load += 1;
        }
        for n in &mut self.notes {
            let lo = n.offset.max(start);
            let hi = (n.offset + n.filesz).min(end);
            if lo < hi {
                n.data
                    .extend_from_slice(&chunk[(lo - start) as usize..(hi - start) as usize]);
            }
        }
        self.pos = end;
        Ok(())
    }
}

/// Zeroes a completed segment's tail.
fn zero_fill(s: &Segment, sink: &mut impl Sink) -> Result<(), KimageError> {
    if s.memsz > s.filesz {
        sink.zero(s.paddr + s.filesz, s.memsz - s.filesz)?;
    }
    Ok(())
}

/// Checks the ELF header; returns how many bytes the headers need and
/// whether it is ELF32 (i386) rather than ELF64 (x86-64).
fn parse_ehdr(h: &[u8], limits: &Limits) -> Result<(usize, bool), KimageError> {
    if h[..4] != ELF_MAGIC {
        return Err(KimageError::BadMagic);
    }
    let class32 = match h[4] {
        ELFCLASS64 => false,
        ELFCLASS32 => true,
        _ => return Err(KimageError::BadElf("not ELFCLASS64 or ELFCLASS32")),
    };
    if h[5] != ELFDATA2LSB {
        return Err(KimageError::BadElf("not little endian"));
    }
    if h[6] != EV_CURRENT {
        return Err(KimageError::BadElf("e_ident EI_VERSION"));
    }
    if le16(h, 16) != ET_EXEC {
        return Err(KimageError::BadElf("not an executable (ET_EXEC)"));
    }
    let (machine, ehsize, phsize, phentsize, phnum, phoff) = if class32 {
        (
            EM_386,
            EHDR32_SIZE,
            PHDR32_SIZE,
            le16(h, 42),
            le16(h, 44),
            u64::from(le32(h, 28)),
        )
    } else {
        (
            EM_X86_64,
            EHDR_SIZE,
            PHDR_SIZE,
            le16(h, 54),
            le16(h, 56),
            le64(h, 32),
        )
    };
    if le16(h, 18) != machine {
        return Err(KimageError::BadElf(if class32 {
            "ELF32 but not i386"
        } else {
            "not x86-64"
        }));
    }
    if usize::from(phentsize) != phsize {
        return Err(KimageError::BadElf("e_phentsize"));
    }
    let phnum = usize::from(phnum);
    if phnum == 0 {
        return Err(KimageError::BadElf("no program headers"));
    }
    if phnum > limits.max_program_headers {
        return Err(KimageError::TooLarge(Bound::ProgramHeaders, phnum as u64));
    }
    // phnum * phsize is small (phnum is a u16): only phoff can overflow.
    let end = phoff.saturating_add((phnum * phsize) as u64);
    if phoff < ehsize as u64 {
        return Err(KimageError::BadElf(
            "program headers overlap the ELF header",
        ));
    }
    if end > limits.max_header_bytes as u64 {
        return Err(KimageError::TooLarge(Bound::Headers, end));
    }
    // At least 52 + 32 bytes: past the EHDR_SIZE bytes buffered already,
    // so `feed` moves on to the program headers.
    Ok((end as usize, class32))
}

/// Checks that load segments are pairwise disjoint in physical memory and
/// span at most `max_span` bytes.
fn check_physical(loads: &[Segment], max_span: u64) -> Result<(), KimageError> {
    let with_memory = || loads.iter().filter(|s| s.memsz != 0);
    for (i, a) in with_memory().enumerate() {
        for b in with_memory().skip(i + 1) {
            if a.paddr < b.paddr + b.memsz && b.paddr < a.paddr + a.memsz {
                return Err(KimageError::BadElf("PT_LOAD segments overlap in memory"));
            }
        }
    }
    let (start, end) = physical_extent(loads);
    if end - start > max_span {
        return Err(KimageError::TooLarge(Bound::Span, end - start));
    }
    Ok(())
}

/// Lowest `p_paddr` to highest `p_paddr + p_memsz` of the segments that
/// occupy memory (0..0 if none does).
fn physical_extent(loads: &[Segment]) -> (u64, u64) {
    let with_memory = || loads.iter().filter(|s| s.memsz != 0);
    let start = with_memory().map(|s| s.paddr).min().unwrap_or(0);
    let end = with_memory().map(|s| s.paddr + s.memsz).max().unwrap_or(0);
    (start, end)
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

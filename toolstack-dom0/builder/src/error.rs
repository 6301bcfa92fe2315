//! Why a build plan was refused: one small `Copy` value per cause.
//!
//! Image errors come from bytes a hostile image controls; request errors from
//! the caller's `BuildRequest`; content errors from the p2m the executor
//! passes to the generators. None of them panics on the way here.

use core::fmt;

/// Everything that stops a plan or a generator. Each variant names one cause
/// so a test (and the operator's log) can tell them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The ELF header or program/section header table is truncated or
    /// malformed (the ELF parser refused it).
    Malformed,
    /// Not `ELFCLASS64`.
    NotElf64,
    /// Not little endian.
    NotLittleEndian,
    /// `e_machine` is not `EM_X86_64`.
    NotX86_64,
    /// `e_type` is not `ET_EXEC`.
    NotExecutable,
    /// More program headers than [`crate::MAX_PROGRAM_HEADERS`].
    TooManyProgramHeaders,
    /// More `PT_LOAD` segments than [`crate::MAX_LOAD_SEGMENTS`].
    TooManySegments,
    /// No `PT_LOAD` segment with memory behind it.
    NoLoadSegments,
    /// A segment's file range runs past the end of the image.
    SegmentPastFile,
    /// A segment has `p_filesz > p_memsz`.
    FileSizeExceedsMemSize,
    /// A segment's `p_align` is not a power of two, is larger than
    /// [`crate::MAX_SEGMENT_ALIGN`], or `p_vaddr`/`p_offset` disagree modulo it.
    BadAlignment,
    /// Two `PT_LOAD` segments overlap in guest memory.
    OverlappingSegments,
    /// A segment's load address (after `PADDR_OFFSET`) lies below `VIRT_BASE`.
    SegmentBelowVirtBase,
    /// Address arithmetic wrapped (a segment, the image or the mapping would
    /// run past the top of the address space).
    AddressOverflow,
    /// A note header or descriptor runs past its segment or section, or the
    /// note table is otherwise malformed.
    BadNote,
    /// A Xen note's descriptor has the wrong size or encoding for its type.
    BadNoteValue(u32),
    /// A required Xen note is missing (the note type from elfnote.h).
    MissingNote(u32),
    /// `XEN_VERSION` is not `xen-3.0`.
    BadXenVersion,
    /// Neither `LOADER` = `generic` nor a `GUEST_OS` starting with `linux`.
    BadLoader,
    /// The `FEATURES` string names an unknown feature.
    UnknownFeature,
    /// The kernel requires a feature a PV guest cannot have.
    UnsupportedFeature(u32),
    /// The entry point is outside the loaded image.
    EntryOutsideImage,
    /// The hypercall page is outside the loaded image or not page aligned.
    HypercallPageOutsideImage,
    /// `VIRT_BASE` is not page aligned or not a canonical kernel address.
    BadVirtBase,
    /// The initial mapping would touch Xen's reserved range
    /// 0xffff800000000000..0xffff880000000000 or cross the canonical hole.
    MappingInXenHole,
    /// The image plus boot structures need more pages than requested.
    MemoryTooSmall,
    /// The request asks for more memory than a plan supports.
    MemoryTooLarge,
    /// The command line is longer than `MAX_GUEST_CMDLINE - 1` bytes or
    /// contains a NUL.
    BadCmdline,
    /// The request asks for no vCPU or more than [`crate::MAX_PV_VCPUS`].
    BadVcpuCount,
    /// The p2m passed to a generator is shorter than `nr_pages`.
    P2mTooShort,
    /// A machine frame number does not fit in a page-table entry.
    MfnTooLarge,
    /// A pfn passed to a generator is not one of the pages it writes.
    NotThisKind,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Error::Malformed => "malformed ELF headers",
            Error::NotElf64 => "not an ELF64 image",
            Error::NotLittleEndian => "not a little-endian ELF",
            Error::NotX86_64 => "not an x86-64 ELF",
            Error::NotExecutable => "not an ET_EXEC ELF",
            Error::TooManyProgramHeaders => "too many program headers",
            Error::TooManySegments => "too many PT_LOAD segments",
            Error::NoLoadSegments => "no PT_LOAD segment",
            Error::SegmentPastFile => "segment runs past the end of the file",
            Error::FileSizeExceedsMemSize => "segment p_filesz > p_memsz",
            Error::BadAlignment => "bad segment alignment",
            Error::OverlappingSegments => "PT_LOAD segments overlap",
            Error::SegmentBelowVirtBase => "segment below VIRT_BASE",
            Error::AddressOverflow => "address arithmetic wraps",
            Error::BadNote => "malformed ELF note",
            Error::BadNoteValue(t) => return write!(f, "bad value for Xen ELF note {t}"),
            Error::MissingNote(t) => return write!(f, "missing Xen ELF note {t}"),
            Error::BadXenVersion => "XEN_VERSION is not xen-3.0",
            Error::BadLoader => "neither LOADER=generic nor a linux GUEST_OS",
            Error::UnknownFeature => "unknown feature in FEATURES note",
            Error::UnsupportedFeature(b) => {
                return write!(f, "kernel requires unsupported feature {b}")
            }
            Error::EntryOutsideImage => "entry point outside the image",
            Error::HypercallPageOutsideImage => "hypercall page outside the image",
            Error::BadVirtBase => "bad VIRT_BASE",
            Error::MappingInXenHole => "initial mapping overlaps Xen's reserved range",
            Error::MemoryTooSmall => "memory too small for image and boot structures",
            Error::MemoryTooLarge => "memory too large",
            Error::BadCmdline => "command line too long or contains NUL",
            Error::BadVcpuCount => "vCPU count out of range",
            Error::P2mTooShort => "p2m shorter than nr_pages",
            Error::MfnTooLarge => "mfn does not fit in a page-table entry",
            Error::NotThisKind => "pfn is not a page of this kind",
        };
        f.write_str(text)
    }
}

impl core::error::Error for Error {}

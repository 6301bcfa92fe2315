//! Malformed and hostile images: each gets its own error, never a panic.

mod common;

use common::*;
use xcp_builder::*;

fn err(f: &Fixture) -> Error {
    plan_of(f, 4096).unwrap_err()
}

fn bytes_err(image: &[u8]) -> Error {
    let req = BuildRequest {
        memory_pages: 4096,
        cmdline: b"",
        module_len: 0,
        vcpus: 1,
    };
    PvPlan::new(image, &req).unwrap_err()
}

#[test]
fn truncated_headers() {
    let image = Fixture::valid().build();
    assert_eq!(bytes_err(&[]), Error::Malformed);
    assert_eq!(bytes_err(&image[..10]), Error::Malformed);
    assert_eq!(bytes_err(&image[..63]), Error::Malformed);
    // Header whole, program headers cut.
    assert_eq!(bytes_err(&image[..64 + 56]), Error::Malformed);
    assert_eq!(
        bytes_err(b"MZ\x90\0 not an elf at all, but long enough to parse...."),
        Error::Malformed
    );
}

#[test]
fn identity() {
    let mut f = Fixture::valid();
    f.class = 1;
    assert_eq!(err(&f), Error::NotElf64);
    let mut f = Fixture::valid();
    f.data_enc = 2;
    assert_eq!(err(&f), Error::NotLittleEndian);
    let mut f = Fixture::valid();
    f.machine = 3;
    assert_eq!(err(&f), Error::NotX86_64);
    let mut f = Fixture::valid();
    f.e_type = 3; // ET_DYN
    assert_eq!(err(&f), Error::NotExecutable);
}

#[test]
fn too_many_headers_and_segments() {
    let mut f = Fixture::valid();
    f.extra_phdrs = MAX_PROGRAM_HEADERS;
    assert_eq!(err(&f), Error::TooManyProgramHeaders);
    let mut f = Fixture::valid();
    f.segs = (0..=MAX_LOAD_SEGMENTS as u64)
        .map(|i| Seg {
            vaddr: VIRT_BASE + i * 0x1000,
            paddr: VIRT_BASE + i * 0x1000,
            data: vec![1; 16],
            memsz: 0x1000,
            align: 0x1000,
        })
        .collect();
    assert_eq!(err(&f), Error::TooManySegments);
    let mut f = Fixture::valid();
    f.segs.clear();
    assert_eq!(err(&f), Error::NoLoadSegments);
    // A PT_LOAD with p_memsz 0 does not count.
    let mut f = Fixture::valid();
    f.segs = vec![Seg {
        vaddr: VIRT_BASE,
        paddr: VIRT_BASE,
        data: vec![],
        memsz: 0,
        align: 0,
    }];
    assert_eq!(err(&f), Error::NoLoadSegments);
}

#[test]
fn segment_past_file() {
    let image = Fixture::valid().build();
    assert_eq!(bytes_err(&image[..image.len() - 1]), Error::SegmentPastFile);
}

#[test]
fn filesz_above_memsz() {
    let mut f = Fixture::valid();
    f.segs[1].memsz = 10;
    assert_eq!(err(&f), Error::FileSizeExceedsMemSize);
}

#[test]
fn overlapping_segments() {
    let mut f = Fixture::valid();
    f.segs[1].memsz = 0x4000;
    f.segs[1].vaddr = VIRT_BASE + 0x1000;
    f.segs[1].paddr = VIRT_BASE + 0x1000;
    assert_eq!(err(&f), Error::OverlappingSegments);
    // Sharing a page without sharing bytes is fine.
    let mut f = Fixture::valid();
    f.segs[0].memsz = 0x1800;
    f.segs[0].data.truncate(0x1800);
    f.segs[1].vaddr = VIRT_BASE + 0x1800;
    f.segs[1].paddr = VIRT_BASE + 0x1800;
    f.drop_note(XEN_ELFNOTE_HYPERCALL_PAGE);
    let plan = plan_of(&f, 4096).unwrap();
    check_invariants(&plan);
}

#[test]
fn below_virt_base_and_wrapping() {
    let mut f = Fixture::valid();
    f.segs[0].vaddr = VIRT_BASE - 0x1000;
    f.segs[0].paddr = VIRT_BASE - 0x1000;
    assert_eq!(err(&f), Error::SegmentBelowVirtBase);
    let mut f = Fixture::valid();
    f.segs[1].vaddr = u64::MAX - 0xfff;
    f.segs[1].paddr = u64::MAX - 0xfff;
    f.segs[1].memsz = 0x2000;
    assert_eq!(err(&f), Error::AddressOverflow);
    // PADDR_OFFSET above VIRT_BASE makes paddr + (virt_base - offset) wrap
    // below virt_base.
    let mut f = Fixture::valid();
    f.set_note(XEN_ELFNOTE_PADDR_OFFSET, q(VIRT_BASE + 0x10_0000));
    assert_eq!(err(&f), Error::SegmentBelowVirtBase);
}

#[test]
fn image_larger_than_memory() {
    let mut f = Fixture::valid();
    f.segs[1].memsz = 1 << 40; // a terabyte of bss: past the top
    assert_eq!(err(&f), Error::AddressOverflow);
    f.segs[1].memsz = 1 << 30; // a gigabyte of bss: fits, too big
    assert_eq!(err(&f), Error::MemoryTooSmall);
    let mut f = Fixture::valid();
    f.segs[1].memsz = 4096 * 4096;
    assert_eq!(err(&f), Error::MemoryTooSmall);
    let image = Fixture::valid().build();
    let req = BuildRequest {
        memory_pages: MAX_MEMORY_PAGES + 1,
        cmdline: b"",
        module_len: 0,
        vcpus: 1,
    };
    assert_eq!(
        PvPlan::new(&image, &req).unwrap_err(),
        Error::MemoryTooLarge
    );
    let req = BuildRequest {
        memory_pages: 4096,
        cmdline: b"",
        module_len: 1 << 40,
        vcpus: 1,
    };
    assert_eq!(
        PvPlan::new(&image, &req).unwrap_err(),
        Error::MemoryTooSmall
    );
}

#[test]
fn entry_and_hypercall_page() {
    let mut f = Fixture::valid();
    f.set_note(XEN_ELFNOTE_ENTRY, q(VIRT_BASE + 0x10_0000));
    assert_eq!(err(&f), Error::EntryOutsideImage);
    // Without the ENTRY note, e_entry is used.
    let mut f = Fixture::valid();
    f.drop_note(XEN_ELFNOTE_ENTRY);
    f.entry = 0x1000;
    assert_eq!(err(&f), Error::EntryOutsideImage);
    f.entry = VIRT_BASE + 0x10;
    assert_eq!(plan_of(&f, 4096).unwrap().layout().entry, VIRT_BASE + 0x10);
    let mut f = Fixture::valid();
    f.set_note(XEN_ELFNOTE_HYPERCALL_PAGE, q(VIRT_BASE + 0x6000));
    assert_eq!(err(&f), Error::HypercallPageOutsideImage);
    f.set_note(XEN_ELFNOTE_HYPERCALL_PAGE, q(VIRT_BASE + 0x1010));
    assert_eq!(err(&f), Error::HypercallPageOutsideImage);
    f.drop_note(XEN_ELFNOTE_HYPERCALL_PAGE);
    assert_eq!(
        plan_of(&f, 4096).unwrap().layout().hypercall_page_gpfn,
        None
    );
}

#[test]
fn notes_past_their_segment() {
    let mut f = Fixture::valid();
    let len = f.build().len() as u64;
    f.note_filesz = Some(len);
    assert_eq!(err(&f), Error::BadNote);
    // Cut inside the last note: its descriptor runs past the segment.
    let mut f = Fixture::valid();
    let full: usize = f
        .notes
        .iter()
        .map(|(_, d)| 16 + d.len().next_multiple_of(4))
        .sum();
    f.note_filesz = Some(full as u64 - 2);
    assert_eq!(err(&f), Error::BadNote);
    // A descsz that claims 4 GiB.
    let mut image = Fixture::valid().build();
    let note_off = 64 + 56 * 3;
    image[note_off + 4..note_off + 8].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(bytes_err(&image), Error::BadNote);
}

#[test]
fn missing_and_bad_notes() {
    let mut f = Fixture::valid();
    f.notes.clear();
    assert_eq!(err(&f), Error::MissingNote(XEN_ELFNOTE_XEN_VERSION));
    let mut f = Fixture::valid();
    f.drop_note(XEN_ELFNOTE_XEN_VERSION);
    assert_eq!(err(&f), Error::MissingNote(XEN_ELFNOTE_XEN_VERSION));
    let mut f = Fixture::valid();
    f.set_note(XEN_ELFNOTE_XEN_VERSION, s("xen-2.0"));
    assert_eq!(err(&f), Error::BadXenVersion);
    let mut f = Fixture::valid();
    f.drop_note(XEN_ELFNOTE_LOADER);
    assert_eq!(err(&f), Error::BadLoader);
    f.set_note(XEN_ELFNOTE_GUEST_OS, s("linux"));
    assert!(plan_of(&f, 4096).is_ok());
    let mut f = Fixture::valid();
    f.drop_note(XEN_ELFNOTE_VIRT_BASE);
    assert_eq!(err(&f), Error::MissingNote(XEN_ELFNOTE_VIRT_BASE));
    let mut f = Fixture::valid();
    f.set_note(XEN_ELFNOTE_VIRT_BASE, vec![0, 0, 0]);
    assert_eq!(err(&f), Error::BadNoteValue(XEN_ELFNOTE_VIRT_BASE));
    let mut f = Fixture::valid();
    f.set_note(XEN_ELFNOTE_SUPPORTED_FEATURES, vec![1, 2]);
    assert_eq!(err(&f), Error::BadNoteValue(XEN_ELFNOTE_SUPPORTED_FEATURES));
    let mut f = Fixture::valid();
    f.set_note(XEN_ELFNOTE_GUEST_OS, vec![b'a'; 1000]);
    assert_eq!(err(&f), Error::BadNoteValue(XEN_ELFNOTE_GUEST_OS));
    let mut f = Fixture::valid();
    f.set_note(XEN_ELFNOTE_FEATURES, s("!auto_translated_physmap"));
    assert_eq!(err(&f), Error::UnsupportedFeature(2));
    f.set_note(XEN_ELFNOTE_FEATURES, s("!no_such_feature"));
    assert_eq!(err(&f), Error::UnknownFeature);
}

#[test]
fn absurd_alignments() {
    for align in [3u64, 0x1800, 1 << 40, MAX_SEGMENT_ALIGN * 2] {
        let mut f = Fixture::valid();
        f.segs[0].align = align;
        assert_eq!(err(&f), Error::BadAlignment, "align {align:#x}");
    }
    // p_vaddr and p_offset disagreeing modulo p_align is accepted, as
    // Xen's libelf accepts it (GRUB's x86_64-xen image has such a
    // segment): the bytes are copied where p_paddr says.
    let mut f = Fixture::valid();
    f.segs[1].align = 0x20_0000;
    assert!(plan_of(&f, 4096).is_ok());
    for align in [0u64, 1, 0x1000] {
        let mut f = Fixture::valid();
        f.segs[0].align = align;
        assert!(plan_of(&f, 4096).is_ok(), "align {align:#x}");
    }
}

#[test]
fn virt_base_in_xen_hole_or_noncanonical() {
    assert_eq!(err(&at(XEN_HOLE_START)), Error::BadVirtBase);
    assert_eq!(err(&at(XEN_HOLE_END - 0x1000)), Error::BadVirtBase);
    assert_eq!(err(&at(0x0000_8000_0000_0000)), Error::BadVirtBase);
    assert_eq!(err(&at(0x1234)), Error::BadVirtBase);
    // The mapping would run past the lower half into the hole.
    assert_eq!(err(&at(0x0000_7fff_ffff_0000)), Error::MappingInXenHole);
    // Mapping would wrap past the top of the address space.
    assert_eq!(err(&at(0xffff_ffff_ffe0_0000)), Error::AddressOverflow);
    // Just past the hole and at 0 are fine.
    // ... and a mapping that ends exactly at the top of the lower half.
    for base in [
        XEN_HOLE_END,
        0,
        0x40_0000,
        0x0000_7fff_0000_0000,
        0x0000_7fff_ffe0_0000,
    ] {
        let plan = plan_of(&at(base), 4096).unwrap();
        check_invariants(&plan);
        check_walk(&plan, &fake_p2m(4096));
    }
}

#[test]
fn bad_cmdline() {
    let image = Fixture::valid().build();
    let long = vec![b'a'; MAX_GUEST_CMDLINE];
    let req = BuildRequest {
        memory_pages: 4096,
        cmdline: &long,
        module_len: 0,
        vcpus: 1,
    };
    assert_eq!(PvPlan::new(&image, &req).unwrap_err(), Error::BadCmdline);
}

#[test]
fn notes_from_sections() {
    let mut f = Fixture::valid();
    f.notes_in_section = true;
    let plan = plan_of(&f, 4096).unwrap();
    assert_eq!(plan.notes().virt_base, Some(VIRT_BASE));
    assert_eq!(plan.notes().supported_features, Some(0x800));
    check_invariants(&plan);
}

#[test]
fn linux_style_paddrs() {
    // Linux: physical p_paddr, no PADDR_OFFSET -> virt = paddr + virt_base.
    let mut f = Fixture::valid();
    for seg in &mut f.segs {
        seg.paddr = seg.vaddr - VIRT_BASE + 0x100_0000;
        seg.vaddr = seg.paddr + VIRT_BASE;
    }
    f.drop_note(XEN_ELFNOTE_PADDR_OFFSET);
    f.set_note(XEN_ELFNOTE_ENTRY, q(VIRT_BASE + 0x100_0000));
    f.set_note(XEN_ELFNOTE_HYPERCALL_PAGE, q(VIRT_BASE + 0x100_1000));
    let plan = plan_of(&f, 16384).unwrap();
    let l = plan.layout();
    assert_eq!(
        l.kernel,
        PfnRange {
            start: 0x1000,
            count: 6
        }
    );
    assert_eq!(l.hypercall_page_gpfn, Some(0x1001));
    check_invariants(&plan);
    check_walk(&plan, &fake_p2m(16384));
}

#[test]
fn generator_inputs() {
    let plan = plan_of(&Fixture::valid(), 2048).unwrap();
    let short = fake_p2m(2047);
    assert_eq!(
        plan.page_table_pages(&short).err(),
        Some(Error::P2mTooShort)
    );
    assert_eq!(
        plan.start_info(&short, &StartInfoArgs::default()).err(),
        Some(Error::P2mTooShort)
    );
    assert_eq!(plan.vcpu_context(&short).err(), Some(Error::P2mTooShort));
    let mut big = fake_p2m(2048);
    big[100] = MAX_MFN + 1;
    assert_eq!(plan.page_table_pages(&big).err(), Some(Error::MfnTooLarge));
    let mut page = [0u8; 4096];
    let image = Fixture::valid().build();
    // The wrong (shorter) image at write time is an error, not a panic.
    assert_eq!(
        plan.write_kernel_page(&image[..0x1100], 2, &mut page),
        Err(Error::SegmentPastFile)
    );
}

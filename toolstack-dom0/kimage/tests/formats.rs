//! Every accepted format end to end, and every refusal: small kernels
//! compressed at test time, loaded into a fake guest RAM.

mod common;

use common::*;
use xcp_kimage::{
    load, load_with_dictionary, Bound, Compression, CountingSink, ElfStream, KimageError, Limits,
    MemorySink, Sink,
};

const RAM_BASE: u64 = 0x100_0000;
const RAM: usize = 4 << 20;

fn ram() -> MemorySink {
    MemorySink::new(RAM_BASE, RAM)
}

/// The segments' bytes are in RAM, their bss zeroed, and the note found.
#[track_caller]
fn check_loaded(m: &MemorySink, segs: &[Seg], loaded: &xcp_kimage::Loaded) {
    for s in segs {
        let at = (s.paddr - RAM_BASE) as usize;
        assert_eq!(&m.ram[at..at + s.data.len()], &s.data[..]);
        let bss = &m.ram[at + s.data.len()..at + s.memsz as usize];
        assert!(bss.iter().all(|&b| b == 0), "bss zeroed");
    }
    assert_eq!(loaded.pvh_entry(), Ok(0x100_0040));
    assert_eq!(loaded.pv_entry(), Ok(0xffff_ffff_8100_0000));
    assert_eq!(loaded.notes.guest_os.as_deref(), Some(&b"linux"[..]));
    assert_eq!(loaded.segments.len(), segs.len());
    assert_eq!(loaded.paddr_range, 0x100_0000..0x120_0000 + 12_000);
}

fn images() -> Vec<(Compression, Vec<u8>)> {
    let (elf, _) = kernel();
    vec![
        (Compression::None, elf.clone()),
        (Compression::None, bzimage(&elf, elf.len())),
        (Compression::Gzip, bzimage(&gzip(&elf), elf.len())),
        (Compression::Xz, bzimage(&xz(&elf), elf.len())),
        (Compression::Zstd, bzimage(&zstd(&elf), elf.len())),
    ]
}

#[test]
fn each_format_loads_the_same_kernel() {
    let (elf, segs) = kernel();
    for (compression, image) in images() {
        let mut m = ram();
        let loaded = load(&image, &Limits::default(), &mut m)
            .unwrap_or_else(|e| panic!("{compression:?}: {e}"));
        assert_eq!(loaded.compression, compression);
        // An uncompressed bzImage payload keeps Linux's 4-byte size trailer.
        let trailer = if compression == Compression::None && image.len() != elf.len() {
            4
        } else {
            0
        };
        assert_eq!(loaded.elf_size, (elf.len() + trailer) as u64);
        check_loaded(&m, &segs, &loaded);
    }
}

#[test]
fn a_borrowed_dictionary_works_and_must_be_big_enough() {
    let (elf, segs) = kernel();
    let image = bzimage(&xz(&elf), elf.len());
    let mut dict = vec![0u8; 1 << 20];
    let mut m = ram();
    let loaded = load_with_dictionary(&image, &Limits::default(), &mut dict, &mut m)
        .expect("1 MiB is the stream's dictionary");
    check_loaded(&m, &segs, &loaded);
    let mut small = vec![0u8; 64 << 10];
    assert_eq!(
        load_with_dictionary(&image, &Limits::default(), &mut small, &mut ram()),
        Err(KimageError::TooLarge(Bound::Dictionary, 1 << 20))
    );
}

#[test]
fn the_dictionary_to_lend_is_read_from_the_headers() {
    let (elf, segs) = kernel();
    for (compression, image) in images() {
        let needed = xcp_kimage::xz_dictionary_needed(&image);
        if compression == Compression::Xz {
            // xz_wrap.sh's settings at test size: the stream asks 1 MiB.
            assert_eq!(needed, Ok(Some(1 << 20)));
            let mut dict = vec![0u8; 1 << 20];
            let mut m = ram();
            let loaded = load_with_dictionary(&image, &Limits::default(), &mut dict, &mut m)
                .expect("exactly the size asked is enough");
            check_loaded(&m, &segs, &loaded);
        } else {
            assert_eq!(needed, Ok(None), "{compression:?}");
        }
    }
    // A bomb's claim is reported as is (the caller bounds it), and a
    // damaged header is an error, not a size.
    let mut x = xz(&elf);
    let prop = x.iter().position(|&b| b == 16).expect("dict property");
    x[prop] = 39; // the LZMA2 property byte: 3 GiB
    let bomb = bzimage(&x, elf.len());
    assert_eq!(xcp_kimage::xz_dictionary_needed(&bomb), Ok(Some(3 << 30)));
    let cut = bzimage(&x[..13], elf.len());
    assert!(xcp_kimage::xz_dictionary_needed(&cut).is_err());
    assert!(xcp_kimage::xz_dictionary_needed(b"not a kernel").is_err());
}

#[test]
fn any_chunking_of_the_stream_gives_the_same_writes() {
    let (elf, segs) = kernel();
    for chunk in [1, 3, 56, 63, 64, 65, 4096, 100_000] {
        let mut m = ram();
        let mut s = ElfStream::new(&Limits::default());
        for c in elf.chunks(chunk) {
            s.feed(c, &mut m).expect("feeds");
        }
        let summary = s.finish().expect("finishes");
        assert_eq!(summary.elf_size, elf.len() as u64);
        assert_eq!(summary.notes.phys32_entry, Some(0x100_0040));
        for sg in &segs {
            let at = (sg.paddr - RAM_BASE) as usize;
            assert_eq!(
                &m.ram[at..at + sg.data.len()],
                &sg.data[..],
                "chunk {chunk}"
            );
        }
    }
}

#[test]
fn truncated_images_are_refused() {
    for (compression, image) in images() {
        // Cut anywhere (sampled): an error, never a panic, never Ok. An
        // uncompressed ELF may lose its trailing 3000 unloaded bytes.
        let end = match compression {
            Compression::None => image.len() - 3004,
            _ => image.len() - 4,
        };
        let step = (image.len() / 97).max(1);
        for cut in (0..end).step_by(step) {
            let r = load(
                &image[..cut],
                &Limits::default(),
                &mut CountingSink::default(),
            );
            assert!(r.is_err(), "{compression:?} cut at {cut} loaded");
        }
    }
    let (elf, _) = kernel();
    assert_eq!(
        load(
            &elf[..100],
            &Limits::default(),
            &mut CountingSink::default()
        ),
        Err(KimageError::Truncated("ELF headers"))
    );
    assert_eq!(
        load(
            &elf[..5000],
            &Limits::default(),
            &mut CountingSink::default()
        ),
        Err(KimageError::Truncated("ELF PT_LOAD segment"))
    );
}

#[test]
fn corrupt_streams_are_refused() {
    let (elf, _) = kernel();
    for (compression, payload) in [(Compression::Gzip, gzip(&elf)), (Compression::Xz, xz(&elf))] {
        // Both carry a CRC32 of the data: every flipped byte is caught.
        for at in (20..payload.len() - 8).step_by(101) {
            let mut bad = payload.clone();
            bad[at] ^= 0x55;
            let r = load(&bzimage(&bad, elf.len()), &Limits::default(), &mut ram());
            assert!(r.is_err(), "{compression:?} flip at {at} loaded");
        }
    }
    // zstd without a checksum may decode a flip into other bytes: no panic.
    let z = zstd(&elf);
    for at in (4..z.len()).step_by(37) {
        let mut bad = z.clone();
        bad[at] ^= 0x55;
        let _ = load(&bzimage(&bad, elf.len()), &Limits::default(), &mut ram());
    }
}

#[test]
fn dictionary_and_window_bombs_are_refused_before_allocating() {
    let (elf, _) = kernel();
    let mut x = xz(&elf);
    // The block header's LZMA2 property is its last byte before padding
    // and CRC; a 1 MiB dictionary is property 16. Ask for 3 GiB (39).
    let prop = x.iter().position(|&b| b == 16).expect("dict property");
    assert_eq!(xcp_kimage::xz_dictionary_size(&x), Ok(1 << 20));
    x[prop] = 39;
    assert_eq!(xcp_kimage::xz_dictionary_size(&x), Ok(3 << 30));
    assert_eq!(
        load(&bzimage(&x, 0), &Limits::default(), &mut ram()),
        Err(KimageError::TooLarge(Bound::Dictionary, 3 << 30))
    );
    let tight = Limits {
        max_dictionary: 64 << 10,
        ..Limits::default()
    };
    assert_eq!(
        load(&bzimage(&xz(&elf), 0), &tight, &mut ram()),
        Err(KimageError::TooLarge(Bound::Dictionary, 1 << 20))
    );
    let tiny = Limits {
        max_dictionary: 1024,
        ..Limits::default()
    };
    assert!(matches!(
        load(&bzimage(&zstd(&elf), 0), &tiny, &mut ram()),
        Err(KimageError::TooLarge(Bound::Dictionary, _))
    ));
}

#[test]
fn decompression_bombs_stop_at_the_output_bound() {
    // A kernel followed by 8 MiB of zeros: the compressed images are small.
    let (elf, _) = kernel();
    let mut big = elf.clone();
    big.resize(elf.len() + (8 << 20), 0);
    let limits = Limits {
        max_output: 1 << 20,
        ..Limits::default()
    };
    for (c, payload) in [
        (Compression::Gzip, gzip(&big)),
        (Compression::Xz, xz(&big)),
        (Compression::Zstd, zstd(&big)),
    ] {
        assert!(payload.len() < (1 << 20), "{c:?} compresses");
        let r = load(&bzimage(&payload, 0), &limits, &mut CountingSink::default());
        assert!(
            matches!(r, Err(KimageError::TooLarge(Bound::Output, n)) if n <= (1 << 20) + 32 * 1024),
            "{c:?}: {r:?}"
        );
    }
}

#[test]
fn a_sink_refusal_ends_the_load() {
    let (elf, _) = kernel();
    let mut small = MemorySink::new(RAM_BASE, 0x1000);
    let r = load(&bzimage(&gzip(&elf), 0), &Limits::default(), &mut small);
    assert!(matches!(
        r,
        Err(KimageError::SinkRefused(xcp_kimage::Refusal {
            reason: "outside guest RAM",
            ..
        }))
    ));
    assert!(r
        .expect_err("refused")
        .to_string()
        .contains("outside guest RAM"));
}

fn load_phdrs(phdrs: &[Phdr], body_len: usize) -> Result<xcp_kimage::Loaded, KimageError> {
    let image = elf_raw(phdrs, &vec![0u8; body_len]);
    let mut counting = CountingSink::default();
    let r = load(&image, &Limits::default(), &mut counting);
    if r.is_err() {
        assert_eq!(
            counting,
            CountingSink::default(),
            "nothing written before refusal"
        );
    }
    r
}

fn seg(offset: u64, paddr: u64, filesz: u64, memsz: u64) -> Phdr {
    Phdr {
        p_type: 1,
        offset,
        vaddr: paddr,
        paddr,
        filesz,
        memsz,
        align: 16,
    }
}

#[test]
fn hostile_program_headers_are_refused_before_any_write() {
    let bad = |what: &'static str| Err(KimageError::BadElf(what));
    let base = 0x1000;
    // A sane image first: two segments, one with bss.
    let ok = load_phdrs(
        &[
            seg(base, 0x10_0000, 16, 16),
            seg(base + 16, 0x20_0000, 16, 64),
        ],
        4096,
    );
    assert!(ok.is_ok(), "{ok:?}");
    assert_eq!(
        load_phdrs(&[seg(base, 0x10_0000, 32, 16)], 4096),
        bad("PT_LOAD p_filesz > p_memsz")
    );
    assert_eq!(
        load_phdrs(
            &[
                seg(base + 16, 0x10_0000, 16, 16),
                seg(base, 0x20_0000, 16, 16)
            ],
            4096
        ),
        bad("PT_LOAD segments out of file order or overlapping")
    );
    assert_eq!(
        load_phdrs(
            &[
                seg(base, 0x10_0000, 32, 32),
                seg(base + 16, 0x20_0000, 16, 16)
            ],
            4096
        ),
        bad("PT_LOAD segments out of file order or overlapping")
    );
    assert_eq!(
        load_phdrs(
            &[
                seg(base, 0x10_0000, 16, 0x100),
                seg(base + 16, 0x10_0080, 16, 16)
            ],
            4096
        ),
        bad("PT_LOAD segments overlap in memory")
    );
    assert_eq!(
        load_phdrs(&[seg(base, u64::MAX - 8, 16, 16)], 4096),
        bad("PT_LOAD address + size overflows")
    );
    assert_eq!(
        load_phdrs(&[seg(u64::MAX, 0, 16, 16)], 4096),
        bad("segment offset + size overflows")
    );
    assert_eq!(
        load_phdrs(&[seg(base, 0, 16, 1 << 40)], 4096),
        Err(KimageError::TooLarge(Bound::Span, 1 << 40))
    );
    assert_eq!(
        load_phdrs(
            &[seg(base, 0, 16, 16), seg(base + 16, 1 << 40, 16, 16)],
            4096
        ),
        Err(KimageError::TooLarge(Bound::Span, (1 << 40) + 16))
    );
    assert_eq!(
        load_phdrs(&[seg(1 << 30, 0, 16, 16)], 4096),
        Err(KimageError::TooLarge(Bound::Output, (1 << 30) + 16))
    );
    assert_eq!(load_phdrs(&[], 4096), bad("no program headers"));
    let note = Phdr {
        p_type: 4,
        ..seg(base, 0, 16, 16)
    };
    assert_eq!(load_phdrs(&[note], 4096), bad("no PT_LOAD segment"));
    let huge_note = Phdr {
        filesz: 1 << 20,
        ..note
    };
    assert_eq!(
        load_phdrs(&[huge_note, seg(base, 0, 16, 16)], 4096),
        Err(KimageError::TooLarge(Bound::Notes, 1 << 20))
    );
    // A note segment running past the image: truncated, after the writes
    // (notes are parsed at the end), so this one goes through load directly.
    let long_note = Phdr {
        filesz: 8192,
        ..note
    };
    assert_eq!(
        load(
            &elf_raw(&[long_note, seg(base, 0, 16, 16)], &[0; 4096]),
            &Limits::default(),
            &mut CountingSink::default()
        ),
        Err(KimageError::Truncated("ELF PT_NOTE segment"))
    );
    let too_many = vec![seg(base, 0, 0, 0); 65];
    assert_eq!(
        load_phdrs(&too_many, 4096),
        Err(KimageError::TooLarge(Bound::ProgramHeaders, 65))
    );
}

#[test]
fn hostile_elf_headers_are_refused() {
    let good = elf_raw(&[seg(0x1000, 0, 16, 16)], &[0; 4096]);
    let refuse = |patch: &dyn Fn(&mut Vec<u8>)| {
        let mut e = good.clone();
        patch(&mut e);
        load(&e, &Limits::default(), &mut CountingSink::default())
    };
    assert!(refuse(&|_| {}).is_ok());
    assert_eq!(
        refuse(&|e| e[4] = 3),
        Err(KimageError::BadElf("not ELFCLASS64 or ELFCLASS32"))
    );
    // An x86-64 machine in an ELF32 header is neither kind.
    assert_eq!(
        refuse(&|e| e[4] = 1),
        Err(KimageError::BadElf("ELF32 but not i386"))
    );
    assert_eq!(
        refuse(&|e| e[5] = 2),
        Err(KimageError::BadElf("not little endian"))
    );
    assert_eq!(
        refuse(&|e| e[16] = 3),
        Err(KimageError::BadElf("not an executable (ET_EXEC)"))
    );
    assert_eq!(
        refuse(&|e| e[18] = 3),
        Err(KimageError::BadElf("not x86-64"))
    );
    assert_eq!(
        refuse(&|e| e[54] = 32),
        Err(KimageError::BadElf("e_phentsize"))
    );
    assert_eq!(
        refuse(&|e| e[32..40].copy_from_slice(&(1u64 << 20).to_le_bytes())),
        Err(KimageError::TooLarge(Bound::Headers, (1 << 20) + 56))
    );
    assert_eq!(
        refuse(&|e| e[32..40].copy_from_slice(&u64::MAX.to_le_bytes())),
        Err(KimageError::TooLarge(Bound::Headers, u64::MAX))
    );
    assert_eq!(
        refuse(&|e| e[32..40].copy_from_slice(&8u64.to_le_bytes())),
        Err(KimageError::BadElf(
            "program headers overlap the ELF header"
        ))
    );
}

/// GRUB's `i386-xen_pvh` image, in miniature: ELF32 i386, a PT_LOAD whose
/// memory runs past its file bytes (GRUB's bss and heap), a second PT_LOAD
/// of modules, and one 4-byte `PHYS32_ENTRY` note.
fn pvh_elf32() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let code = bytes(3, 300);
    let mods = bytes(4, 200);
    let note = note(b"Xen\0", 18, &0x10_0000u32.to_le_bytes());
    let phdrs_end = 52 + 3 * 32;
    let code_at = 0x1000u64;
    let mods_at = code_at + code.len() as u64;
    let note_at = mods_at + mods.len() as u64;
    let phdrs = [
        Phdr {
            p_type: 1,
            offset: code_at,
            vaddr: 0x10_0000,
            paddr: 0x10_0000,
            filesz: code.len() as u64,
            memsz: 0x2000,
            align: 0x1000,
        },
        Phdr {
            p_type: 1,
            offset: mods_at,
            vaddr: 0x10_2000,
            paddr: 0x10_2000,
            filesz: mods.len() as u64,
            memsz: mods.len() as u64,
            align: 4,
        },
        Phdr {
            p_type: 4,
            offset: note_at,
            vaddr: 0,
            paddr: 0,
            filesz: note.len() as u64,
            memsz: 0,
            align: 4,
        },
    ];
    let mut body = vec![0u8; code_at as usize - phdrs_end];
    body.extend_from_slice(&code);
    body.extend_from_slice(&mods);
    body.extend_from_slice(&note);
    (elf32_raw(&phdrs, &body), code, mods)
}

#[test]
fn a_32_bit_pvh_image_loads_and_says_it_is_32_bit() {
    let (image, code, mods) = pvh_elf32();
    let mut m = MemorySink::new(0x10_0000, 1 << 20);
    let loaded = load(&image, &Limits::default(), &mut m).expect("loads");
    assert!(loaded.class32);
    assert_eq!(loaded.pvh_entry(), Ok(0x10_0000));
    assert_eq!(loaded.e_entry, 0x10_0000);
    assert_eq!(loaded.paddr_range, 0x10_0000..0x10_2000 + mods.len() as u64);
    let at = |paddr: usize, len: usize| &m.ram[paddr - 0x10_0000..][..len];
    assert_eq!(at(0x10_0000, code.len()), &code[..]);
    // The bss past the code's file bytes is zeroed.
    assert!(at(0x10_0000 + code.len(), 0x2000 - code.len())
        .iter()
        .all(|b| *b == 0));
    assert_eq!(at(0x10_2000, mods.len()), &mods[..]);
    // An ELF64 kernel says it is not.
    let segs = [Seg {
        paddr: 0x100_0000,
        data: bytes(9, 100),
        memsz: 100,
    }];
    let elf64 = elf(&segs, &linux_notes(0x100_0000), &[]);
    assert!(
        !load(&elf64, &Limits::default(), &mut ram())
            .unwrap()
            .class32
    );
}

#[test]
fn hostile_32_bit_headers_are_refused() {
    let (good, _, _) = pvh_elf32();
    let refuse = |patch: &dyn Fn(&mut Vec<u8>)| {
        let mut e = good.clone();
        patch(&mut e);
        load(&e, &Limits::default(), &mut CountingSink::default())
    };
    assert!(refuse(&|_| {}).is_ok());
    // i386 in an ELF64 header, x86-64 in an ELF32 one.
    assert_eq!(
        refuse(&|e| e[4] = 2),
        Err(KimageError::BadElf("not x86-64"))
    );
    assert_eq!(
        refuse(&|e| e[18] = 62),
        Err(KimageError::BadElf("ELF32 but not i386"))
    );
    assert_eq!(
        refuse(&|e| e[42] = 56),
        Err(KimageError::BadElf("e_phentsize"))
    );
    assert_eq!(
        refuse(&|e| e[28..32].copy_from_slice(&40u32.to_le_bytes())),
        Err(KimageError::BadElf(
            "program headers overlap the ELF header"
        ))
    );
    assert_eq!(
        refuse(&|e| e[28..32].copy_from_slice(&u32::MAX.to_le_bytes())),
        Err(KimageError::TooLarge(
            Bound::Headers,
            u64::from(u32::MAX) + 96
        ))
    );
    // A segment's 32-bit memory size past its file size is fine; a file
    // size past its memory size is not.
    assert_eq!(
        refuse(&|e| e[52 + 16..52 + 20].copy_from_slice(&0x3000u32.to_le_bytes())),
        Err(KimageError::BadElf("PT_LOAD p_filesz > p_memsz"))
    );
}

#[test]
fn a_kernel_without_pvh_note_loads_but_has_no_pvh_entry() {
    let segs = [Seg {
        paddr: 0x100_0000,
        data: bytes(9, 100),
        memsz: 100,
    }];
    let image = elf(&segs, &note(b"GNU\0", 3, &[0; 20]), &[]);
    let loaded = load(&image, &Limits::default(), &mut ram()).expect("loads");
    assert_eq!(loaded.pvh_entry(), Err(KimageError::MissingPvhEntry));
    assert_eq!(loaded.pv_entry(), Ok(0xffff_ffff_8100_0000));
    // An entry outside the loaded bytes is refused.
    let outside = elf(&segs, &linux_notes(0x200_0000), &[]);
    let loaded = load(&outside, &Limits::default(), &mut ram()).expect("loads");
    assert_eq!(loaded.pvh_entry(), Err(KimageError::BadNote(18)));
}

#[test]
fn errors_read_well() {
    for (e, text) in [
        (
            KimageError::Unsupported(Compression::Bzip2),
            "kernel compressed with bzip2: not supported",
        ),
        (
            KimageError::TooLarge(Bound::Dictionary, 1 << 26),
            "kernel image decompressor dictionary/window too large: 67108864",
        ),
        (
            KimageError::Corrupt(Compression::Xz),
            "corrupt xz stream in kernel image",
        ),
        (
            KimageError::MissingPvhEntry,
            "kernel has no PVH entry (XEN_ELFNOTE_PHYS32_ENTRY)",
        ),
    ] {
        assert_eq!(e.to_string(), text);
    }
}

/// Found by the fuzz target: a segment with no file bytes but a late
/// `p_offset`, listed before a real one, must not let the real one's bytes
/// slip past unwritten.
#[test]
fn an_empty_segment_with_a_late_offset_does_not_hide_the_next_one() {
    let base = 0x1000;
    let phdrs = [
        seg(base + 2048, 0x30_0000, 0, 64),
        seg(base, 0x10_0000, 139, 139),
    ];
    let image = elf_raw(&phdrs, &vec![0u8; 4096]);
    let mut counting = CountingSink::default();
    let loaded = load(&image, &Limits::default(), &mut counting).expect("loads");
    let filesz: u64 = loaded.segments.iter().map(|s| s.filesz).sum();
    let memsz: u64 = loaded.segments.iter().map(|s| s.memsz).sum();
    assert_eq!(counting.written, filesz);
    assert_eq!(counting.written + counting.zeroed, memsz);
}

/// The sink sees segment bytes in file order, each address once.
#[test]
fn writes_are_in_order_and_never_overlap() {
    struct Order(Vec<(u64, usize)>);
    impl Sink for Order {
        fn write(&mut self, paddr: u64, bytes: &[u8]) -> Result<(), xcp_kimage::Refusal> {
            self.0.push((paddr, bytes.len()));
            Ok(())
        }
        fn zero(&mut self, _: u64, _: u64) -> Result<(), xcp_kimage::Refusal> {
            Ok(())
        }
    }
    let (elf, _) = kernel();
    let mut o = Order(Vec::new());
    load(&bzimage(&xz(&elf), 0), &Limits::default(), &mut o).expect("loads");
    for w in o.0.windows(2) {
        assert!(w[0].0 + w[0].1 as u64 <= w[1].0);
    }
}

/// The fuzz target's seeds are these images; `XCP_KIMAGE_CORPUS=dir`
/// (re)writes them there (fuzz/corpus/load).
#[test]
fn small_seed_images_load() {
    let elf = small_kernel();
    let seeds = [
        ("seed-elf", elf.clone()),
        ("seed-bz-none", bzimage(&elf, elf.len())),
        ("seed-bz-gzip", bzimage(&gzip(&elf), elf.len())),
        ("seed-bz-xz", bzimage(&xz(&elf), elf.len())),
        ("seed-bz-zstd", bzimage(&zstd(&elf), elf.len())),
    ];
    for (name, image) in &seeds {
        let loaded = load(image, &Limits::default(), &mut ram()).expect(name);
        assert_eq!(loaded.pvh_entry(), Ok(0x100_0040));
    }
    // GRUB's PVH image in miniature (ELF32 i386).
    let elf32 = pvh_elf32().0;
    let loaded = load(
        &elf32,
        &Limits::default(),
        &mut MemorySink::new(0x10_0000, 1 << 20),
    );
    assert_eq!(loaded.expect("seed-elf32-pvh").pvh_entry(), Ok(0x10_0000));
    if let Some(dir) = std::env::var_os("XCP_KIMAGE_CORPUS") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("corpus dir");
        for (name, image) in seeds.iter().chain([&("seed-elf32-pvh", elf32)]) {
            std::fs::write(dir.join(name), image).expect("seed written");
        }
    }
}

//! Property tests: random memory sizes and virt_bases keep every layout
//! invariant; random and mutated images never panic the planner or the
//! generators.

mod common;

use common::*;
use proptest::prelude::*;
use xcp_builder::*;

/// Runs every generator over every boot page of `plan`; none may panic.
fn exercise(plan: &PvPlan, image: &[u8]) {
    let l = plan.layout();
    let p2m = fake_p2m(l.nr_pages);
    let src = PageSources {
        image,
        module: &[],
        p2m: &p2m,
        start_info: StartInfoArgs::default(),
    };
    let mut page = [0u8; 4096];
    for (pfn, kind) in plan.pages() {
        assert_eq!(plan.write_page(pfn, &src, &mut page), Ok(kind));
    }
    plan.vcpu_context(&p2m).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_memory_size(pages in 0u64..400_000) {
        match plan_of(&Fixture::valid(), pages) {
            Ok(plan) => {
                check_invariants(&plan);
                if pages <= 70_000 {
                    check_walk(&plan, &fake_p2m(pages));
                }
            }
            Err(e) => prop_assert_eq!(e, Error::MemoryTooSmall),
        }
    }

    /// A streaming loader's summary with any segments (as a hostile
    /// image's headers could make them) is planned or refused, never a
    /// panic; a plan keeps every invariant and its kernel pfns are where
    /// the streamed bytes may go, nowhere else.
    #[test]
    fn any_summary(
        segs in proptest::collection::vec(
            // (paddr, quarters of memsz from the file: 5 is too many, memsz, vaddr)
            (any::<u64>(), 0u64..=5, 0u64..0x20_0000, any::<u64>()),
            0..20,
        ),
        vcpus in 0u32..200,
        probe in any::<u64>(),
    ) {
        let mut elf = ElfImage::parse(&linux().build()).unwrap();
        elf.segments = segs
            .iter()
            .map(|&(paddr, quarters, memsz, vaddr)| LoadSegment {
                offset: 0,
                filesz: memsz * quarters / 4 + u64::from(quarters == 5),
                memsz,
                paddr: paddr % (1 << 28),
                vaddr,
            })
            .collect();
        // The entry in the first segment, so that plans are made too.
        if let Some(first) = elf.segments.first() {
            elf.notes.entry = Some(VIRT_BASE + first.paddr);
        }
        let req = BuildRequest { memory_pages: 1 << 17, cmdline: b"", module_len: 0, vcpus };
        if let Ok(plan) = PvPlan::from_elf(&elf, &req) {
            check_invariants(&plan);
            let l = *plan.layout();
            if let Some(pfn) = plan.kernel_pfn_of(probe) {
                prop_assert!(l.kernel.contains(pfn));
            }
            for seg in plan.segments() {
                let paddr = (l.virt_base + seg.gpaddr).wrapping_sub(l.virt_offset);
                prop_assert_eq!(plan.kernel_pfn_of(paddr), Some(seg.gpfn()));
            }
        }
    }

    #[test]
    fn any_module(module_len in 0u64..(8 << 20), pages in 1024u64..12_000) {
        let image = Fixture::valid().build();
        let req = BuildRequest { memory_pages: pages, cmdline: b"", module_len, vcpus: 1 };
        match PvPlan::new(&image, &req) {
            Ok(plan) => {
                let l = *plan.layout();
                prop_assert_eq!(l.module.count, module_len.div_ceil(4096));
                prop_assert_eq!(l.module.start, l.kernel.end());
                check_invariants(&plan);
                check_walk(&plan, &fake_p2m(pages));
            }
            Err(e) => prop_assert_eq!(e, Error::MemoryTooSmall),
        }
    }

    #[test]
    fn any_virt_base(slot in prop_oneof![0u64..256, 272u64..512],
                     offset in 0u64..(1 << 27),
                     pages in 1024u64..20_000) {
        let base = if slot < 256 { slot << 39 } else { 0xffff_0000_0000_0000 | (slot << 39) }
            + ((offset << 12) & ((1 << 39) - 1));
        match plan_of(&at(base), pages) {
            Ok(plan) => {
                check_invariants(&plan);
                check_walk(&plan, &fake_p2m(pages));
            }
            Err(e) => prop_assert!(
                matches!(e, Error::MemoryTooSmall | Error::MappingInXenHole | Error::AddressOverflow),
                "{base:#x}: {e:?}"
            ),
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096),
                                pages in 0u64..10_000) {
        let req = BuildRequest { memory_pages: pages, cmdline: b"", module_len: 0, vcpus: 1 };
        if let Ok(plan) = PvPlan::new(&bytes, &req) {
            check_invariants(&plan);
            exercise(&plan, &bytes);
        }
    }

    #[test]
    fn elf_magic_then_random(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let mut image = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0".to_vec();
        image.extend_from_slice(&bytes);
        let req = BuildRequest { memory_pages: 4096, cmdline: b"", module_len: 0, vcpus: 1 };
        let _ = PvPlan::new(&image, &req);
    }

    #[test]
    fn mutated_images_never_panic(
        edits in proptest::collection::vec((0usize..0x400, any::<u8>()), 1..8),
        far_edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        cut in proptest::option::of(any::<usize>()),
        pages in 1024u64..8192,
    ) {
        let mut image = Fixture::valid().build();
        // Most edits hit the headers and notes, where the parser looks.
        for (at, byte) in edits {
            let len = image.len();
            image[at % len] = byte;
        }
        for (at, byte) in far_edits {
            let len = image.len();
            image[at % len] = byte;
        }
        if let Some(cut) = cut {
            image.truncate(cut % (image.len() + 1));
        }
        let req = BuildRequest { memory_pages: pages, cmdline: b"x", module_len: 0, vcpus: 1 };
        if let Ok(plan) = PvPlan::new(&image, &req) {
            check_invariants(&plan);
            check_walk(&plan, &fake_p2m(pages));
            exercise(&plan, &image);
        }
    }
}

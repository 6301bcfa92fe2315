//! Hand-made ELF64 PV kernels for tests: an image builder, a page-table
//! walker and a fake p2m. Nothing here is copied from Xen; images are built
//! from the ELF64 spec field by field.
#![allow(dead_code, reason = "each test file uses a different subset")]

use xcp_builder::*;

/// Our kernels' VIRT_BASE.
pub const VIRT_BASE: u64 = 0xffff_ffff_8000_0000;

/// One PT_LOAD segment of a fixture.
#[derive(Clone, Debug)]
pub struct Seg {
    pub vaddr: u64,
    pub paddr: u64,
    pub data: Vec<u8>,
    pub memsz: u64,
    pub align: u64,
}

/// A fixture image, every header field settable.
#[derive(Clone, Debug)]
pub struct Fixture {
    pub class: u8,
    pub data_enc: u8,
    pub e_type: u16,
    pub machine: u16,
    pub entry: u64,
    pub segs: Vec<Seg>,
    /// (type, descriptor) notes with owner "Xen".
    pub notes: Vec<(u32, Vec<u8>)>,
    /// Put the notes in a SHT_NOTE section instead of a PT_NOTE segment.
    pub notes_in_section: bool,
    /// Extra PT_NULL program headers.
    pub extra_phdrs: usize,
    /// Overrides the PT_NOTE p_filesz (for hostile note tests).
    pub note_filesz: Option<u64>,
}

pub fn q(v: u64) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

pub fn s(v: &str) -> Vec<u8> {
    let mut b = v.as_bytes().to_vec();
    b.push(0);
    b
}

impl Fixture {
    /// A small valid kernel: 2 pages of text (hypercall page second), one
    /// page of data and 3 pages of bss, at VIRT_BASE.
    pub fn valid() -> Self {
        let mut text = vec![0x90u8; 0x2000];
        text[0] = 0xf4;
        let mut data = vec![0u8; 100];
        for (i, b) in data.iter_mut().enumerate() {
            *b = i as u8 ^ 0x5a;
        }
        Fixture {
            class: 2,
            data_enc: 1,
            e_type: 2,
            machine: 62,
            entry: VIRT_BASE,
            segs: vec![
                Seg {
                    vaddr: VIRT_BASE,
                    paddr: VIRT_BASE,
                    data: text,
                    memsz: 0x2000,
                    align: 0x1000,
                },
                Seg {
                    vaddr: VIRT_BASE + 0x2000,
                    paddr: VIRT_BASE + 0x2000,
                    data,
                    memsz: 0x4000,
                    align: 0x1000,
                },
            ],
            notes: vec![
                (6, s("xcp-rs")),
                (5, s("xen-3.0")),
                (8, s("generic")),
                (3, q(VIRT_BASE)),
                (4, q(VIRT_BASE)),
                (1, q(VIRT_BASE)),
                (2, q(VIRT_BASE + 0x1000)),
                (17, 0x800u32.to_le_bytes().to_vec()),
            ],
            notes_in_section: false,
            extra_phdrs: 0,
            note_filesz: None,
        }
    }

    /// Replaces (or adds) the note of type `t`.
    pub fn set_note(&mut self, t: u32, desc: Vec<u8>) -> &mut Self {
        self.notes.retain(|(n, _)| *n != t);
        self.notes.push((t, desc));
        self
    }

    /// Removes the note of type `t`.
    pub fn drop_note(&mut self, t: u32) -> &mut Self {
        self.notes.retain(|(n, _)| *n != t);
        self
    }

    fn note_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (t, desc) in &self.notes {
            out.extend_from_slice(&4u32.to_le_bytes());
            out.extend_from_slice(&(desc.len() as u32).to_le_bytes());
            out.extend_from_slice(&t.to_le_bytes());
            out.extend_from_slice(b"Xen\0");
            out.extend_from_slice(desc);
            while !out.len().is_multiple_of(4) {
                out.push(0);
            }
        }
        out
    }

    /// The image bytes.
    pub fn build(&self) -> Vec<u8> {
        let notes = self.note_bytes();
        let has_pt_note = !self.notes_in_section;
        let phnum = self.segs.len() + usize::from(has_pt_note) + self.extra_phdrs;
        let mut out = vec![0u8; 64 + 56 * phnum];
        let note_off = out.len() as u64;
        out.extend_from_slice(&notes);
        // Section headers (null + .note) if asked for.
        let mut shoff = 0u64;
        let mut shnum = 0u16;
        if self.notes_in_section {
            while !out.len().is_multiple_of(8) {
                out.push(0);
            }
            shoff = out.len() as u64;
            shnum = 2;
            out.extend_from_slice(&[0u8; 64]);
            let mut sh = [0u8; 64];
            sh[4..8].copy_from_slice(&7u32.to_le_bytes()); // SHT_NOTE
            sh[24..32].copy_from_slice(&note_off.to_le_bytes());
            sh[32..40].copy_from_slice(&(notes.len() as u64).to_le_bytes());
            sh[48..56].copy_from_slice(&4u64.to_le_bytes());
            out.extend_from_slice(&sh);
        }
        let mut seg_offsets = Vec::new();
        for seg in &self.segs {
            // p_offset ≡ p_vaddr (mod 4096)
            let want = seg.vaddr % 4096;
            while out.len() as u64 % 4096 != want {
                out.push(0);
            }
            seg_offsets.push(out.len() as u64);
            out.extend_from_slice(&seg.data);
        }
        // ELF header.
        let h = &mut out[..64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = self.class;
        h[5] = self.data_enc;
        h[6] = 1;
        h[16..18].copy_from_slice(&self.e_type.to_le_bytes());
        h[18..20].copy_from_slice(&self.machine.to_le_bytes());
        h[20..24].copy_from_slice(&1u32.to_le_bytes());
        h[24..32].copy_from_slice(&self.entry.to_le_bytes());
        h[32..40].copy_from_slice(&64u64.to_le_bytes());
        h[40..48].copy_from_slice(&shoff.to_le_bytes());
        h[52..54].copy_from_slice(&64u16.to_le_bytes());
        h[54..56].copy_from_slice(&56u16.to_le_bytes());
        h[56..58].copy_from_slice(&(phnum as u16).to_le_bytes());
        h[58..60].copy_from_slice(&64u16.to_le_bytes());
        h[60..62].copy_from_slice(&shnum.to_le_bytes());
        let mut at = 64;
        for (seg, off) in self.segs.iter().zip(&seg_offsets) {
            let p = &mut out[at..at + 56];
            p[0..4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
            p[4..8].copy_from_slice(&7u32.to_le_bytes());
            p[8..16].copy_from_slice(&off.to_le_bytes());
            p[16..24].copy_from_slice(&seg.vaddr.to_le_bytes());
            p[24..32].copy_from_slice(&seg.paddr.to_le_bytes());
            p[32..40].copy_from_slice(&(seg.data.len() as u64).to_le_bytes());
            p[40..48].copy_from_slice(&seg.memsz.to_le_bytes());
            p[48..56].copy_from_slice(&seg.align.to_le_bytes());
            at += 56;
        }
        if has_pt_note {
            let p = &mut out[at..at + 56];
            p[0..4].copy_from_slice(&4u32.to_le_bytes()); // PT_NOTE
            p[8..16].copy_from_slice(&note_off.to_le_bytes());
            let filesz = self.note_filesz.unwrap_or(notes.len() as u64);
            p[32..40].copy_from_slice(&filesz.to_le_bytes());
            p[40..48].copy_from_slice(&filesz.to_le_bytes());
            p[48..56].copy_from_slice(&4u64.to_le_bytes());
        }
        out
    }
}

/// A scattered fake p2m: mfn = 0x10_0000 + pfn * 7919 % 2^20 style spread.
pub fn fake_p2m(nr_pages: u64) -> Vec<u64> {
    (0..nr_pages)
        .map(|pfn| 0x8_0000 + (pfn * 7919) % 0x10_0000 + (pfn << 20))
        .collect()
}

/// The result of walking the generated tables for one VA.
#[derive(Debug, PartialEq, Eq)]
pub struct Walk {
    pub mfn: u64,
    pub writable: bool,
}

/// Walks the generated page tables (given as mfn -> page) from `l4_mfn`.
pub fn walk(
    tables: &std::collections::HashMap<u64, [u8; 4096]>,
    l4_mfn: u64,
    va: u64,
) -> Option<Walk> {
    let mut mfn = l4_mfn;
    let mut writable = true;
    for level in (1..=4u32).rev() {
        let table = tables.get(&mfn)?;
        let index = ((va >> (12 + 9 * (level - 1))) & 511) as usize;
        let e = u64::from_le_bytes(table[index * 8..index * 8 + 8].try_into().unwrap());
        if e & PTE_PRESENT == 0 {
            return None;
        }
        assert_ne!(e & PTE_USER, 0, "64-bit PV entries are user");
        assert_ne!(e & PTE_ACCESSED, 0);
        writable &= e & PTE_RW != 0;
        mfn = (e & PTE_ADDR_MASK) >> 12;
    }
    Some(Walk { mfn, writable })
}

/// A plan of the valid fixture with `pages` of memory.
pub fn plan_of(fixture: &Fixture, pages: u64) -> Result<PvPlan, Error> {
    let image = fixture.build();
    PvPlan::new(
        &image,
        &BuildRequest {
            memory_pages: pages,
            cmdline: b"console=hvc0",
            module_len: 0,
            vcpus: 1,
        },
    )
}

/// Checks every invariant DESIGN.md promises for a plan.
pub fn check_invariants(plan: &PvPlan) {
    let l = plan.layout();
    // Boot pages in strictly increasing pfn order: no overlap.
    let pages: Vec<(u64, PageKind)> = plan.pages().collect();
    for w in pages.windows(2) {
        assert!(w[0].0 < w[1].0, "overlap or disorder at {:?}", w);
    }
    for (pfn, kind) in &pages {
        assert!(*pfn < l.nr_pages, "{kind:?} pfn {pfn} >= nr_pages");
        assert!(*pfn < l.mapped_pages, "{kind:?} pfn {pfn} not mapped");
        assert_eq!(plan.page_kind(*pfn), Some(*kind));
    }
    assert_eq!(l.mapped_pages, (l.virt_end - l.virt_base) / PAGE_SIZE);
    assert!(l.mapped_pages <= l.nr_pages);
    assert_eq!(l.virt_end % MAPPING_ALIGN, 0);
    assert!(l.virt_end - l.stack_top() > BOOT_PADDING);
    assert!(l.virt_end - l.stack_top() <= BOOT_PADDING + MAPPING_ALIGN);
    // Tables exactly cover [virt_base, virt_end).
    assert_eq!(l.pt_counts, PtCounts::for_range(l.virt_base, l.virt_end));
    assert_eq!(l.page_tables.count, l.pt_counts.total());
    assert_eq!(l.p2m.count, (l.nr_pages * 8).div_ceil(4096));
    assert_eq!(l.stack_pfn, l.page_tables.end());
    assert!(l.entry >= l.virt_kstart && l.entry < l.virt_kend);
    assert!(l.virt_end <= XEN_HOLE_START || l.virt_base >= XEN_HOLE_END);
}

/// Generates the tables with `p2m`, walks every VA and checks the result.
pub fn check_walk(plan: &PvPlan, p2m: &[u64]) {
    let l = plan.layout();
    let tables: std::collections::HashMap<u64, [u8; 4096]> = plan
        .page_table_pages(p2m)
        .unwrap()
        .map(|(pfn, page)| (p2m[pfn as usize], page))
        .collect();
    assert_eq!(tables.len() as u64, l.page_tables.count);
    let ctx = plan.vcpu_context(p2m).unwrap();
    assert_eq!(ctx.l4_mfn, p2m[l.page_tables.start as usize]);
    for pfn in 0..l.mapped_pages {
        let va = l.virt_base + pfn * 4096;
        let w = walk(&tables, ctx.l4_mfn, va).unwrap_or_else(|| panic!("{va:#x} unmapped"));
        assert_eq!(w.mfn, p2m[pfn as usize], "va {va:#x}");
        assert_eq!(w.writable, !l.page_tables.contains(pfn), "va {va:#x}");
    }
    // Just outside the mapping: nothing.
    assert_eq!(walk(&tables, ctx.l4_mfn, l.virt_end), None);
    if l.virt_base >= 4096 {
        assert_eq!(walk(&tables, ctx.l4_mfn, l.virt_base - 4096), None);
    }
}

/// A fixture whose image sits at `base` (VIRT_BASE = PADDR_OFFSET = base).
pub fn at(base: u64) -> Fixture {
    let mut f = Fixture::valid();
    for seg in &mut f.segs {
        seg.vaddr = seg.vaddr - VIRT_BASE + base;
        seg.paddr = seg.vaddr;
    }
    f.entry = base;
    f.set_note(XEN_ELFNOTE_VIRT_BASE, q(base));
    f.set_note(XEN_ELFNOTE_PADDR_OFFSET, q(base));
    f.set_note(XEN_ELFNOTE_ENTRY, q(base));
    f.set_note(XEN_ELFNOTE_HYPERCALL_PAGE, q(base + 0x1000));
    f
}

/// XEN_ELFNOTE_L1_MFN_VALID, SUSPEND_CANCEL, HV_START_LOW, PAE_MODE,
/// GUEST_VERSION: in Linux's notes, ignored by a 64-bit PV build.
pub const L1_MFN_VALID: u32 = 13;
pub const SUSPEND_CANCEL: u32 = 16;
pub const HV_START_LOW: u32 = 12;

/// Debian 6.1's layout in miniature: text at 16 MiB, data, the per-cpu
/// segment linked at vaddr 0, then init + bss (bss as memsz > filesz).
pub fn linux() -> Fixture {
    let seg = |paddr: u64, vaddr: u64, len: usize, memsz: u64| Seg {
        vaddr,
        paddr,
        data: (0..len).map(|i| (i as u8) ^ (paddr >> 12) as u8).collect(),
        memsz,
        align: 0x1000,
    };
    let text = 16 << 20;
    let data = text + 0x6000;
    let percpu = data + 0x2000;
    let init = percpu + 0x1000;
    let entry = VIRT_BASE + init + 0x1c0;
    let mut l1_mfn_valid = q(1);
    l1_mfn_valid.extend(q(1));
    Fixture {
        entry: text,
        segs: vec![
            seg(text, VIRT_BASE + text, 0x5123, 0x6000),
            seg(data, VIRT_BASE + data, 0x2000, 0x2000),
            seg(percpu, 0, 0x1000, 0x1000),
            seg(init, VIRT_BASE + init, 0x1800, 0x9000),
        ],
        notes: vec![
            (XEN_ELFNOTE_GUEST_OS, s("linux")),
            (XEN_ELFNOTE_GUEST_VERSION, s("2.6")),
            (XEN_ELFNOTE_XEN_VERSION, s("xen-3.0")),
            (XEN_ELFNOTE_VIRT_BASE, q(VIRT_BASE)),
            (XEN_ELFNOTE_INIT_P2M, q(512 << 30)),
            (XEN_ELFNOTE_ENTRY, q(entry)),
            (
                XEN_ELFNOTE_FEATURES,
                b"!writable_page_tables|pae_pgdir_above_4gb".to_vec(),
            ),
            (
                XEN_ELFNOTE_SUPPORTED_FEATURES,
                0x8801u32.to_le_bytes().to_vec(),
            ),
            (XEN_ELFNOTE_PAE_MODE, s("yes")),
            (XEN_ELFNOTE_LOADER, s("generic")),
            (L1_MFN_VALID, l1_mfn_valid),
            (XEN_ELFNOTE_MOD_START_PFN, 1u32.to_le_bytes().to_vec()),
            (SUSPEND_CANCEL, 1u32.to_le_bytes().to_vec()),
            (HV_START_LOW, q(0xffff_8000_0000_0000)),
            (XEN_ELFNOTE_PADDR_OFFSET, q(0)),
            (XEN_ELFNOTE_PHYS32_ENTRY, q(text + 0x850)),
        ],
        ..Fixture::valid()
    }
}

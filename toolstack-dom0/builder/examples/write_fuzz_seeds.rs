//! Writes the fuzz seed corpus from the hand-made fixtures:
//! `cargo run -p xcp-builder --example write_fuzz_seeds`.
//! Each seed is 2 bytes of memory size (pages - 1024, little endian) and an image.

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;

fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/plan");
    std::fs::create_dir_all(&dir).unwrap();
    let mut sections = Fixture::valid();
    sections.notes_in_section = true;
    let mut linux = Fixture::valid();
    for seg in &mut linux.segs {
        seg.paddr = seg.vaddr - VIRT_BASE + 0x100_0000;
        seg.vaddr = seg.paddr + VIRT_BASE;
    }
    linux.drop_note(4);
    linux.set_note(1, q(VIRT_BASE + 0x100_0000));
    linux.set_note(2, q(VIRT_BASE + 0x100_1000));
    linux.set_note(10, s("!writable_page_tables|pae_pgdir_above_4gb"));
    let seeds = [
        ("seed-valid", 1024u16, Fixture::valid()),
        ("seed-sections", 3072, sections),
        ("seed-linux-paddr", 16000, linux),
        ("seed-low-base", 1024, at(0x40_0000)),
    ];
    for (name, pages, fixture) in seeds {
        let mut bytes = pages.to_le_bytes().to_vec();
        bytes.extend_from_slice(&fixture.build());
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

#[test]
fn seeds_are_valid_plans() {
    for pages in [2048u64, 4096] {
        plan_of(&Fixture::valid(), pages).unwrap();
    }
}

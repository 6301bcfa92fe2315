//! Extra check on the workspace's real kernels, when they have been built:
//! `cargo build --release --target x86_64-unknown-none -p toolstack-dom0 -p xcp-testdom`.
//! Skipped (with a note) on a fresh clone; `cargo xtask test` runs it again
//! after building the kernels with `XCP_REQUIRE_KERNELS=1`, which makes a
//! missing kernel a failure.

mod common;

use std::path::PathBuf;

use common::*;
use xcp_builder::*;

fn kernel(name: &str) -> Option<Vec<u8>> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let path = target.join("x86_64-unknown-none/release").join(name);
    match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            if std::env::var_os("XCP_REQUIRE_KERNELS").is_some() {
                panic!("{}: {e}", path.display());
            }
            eprintln!("skipping: {} not built", path.display());
            None
        }
    }
}

fn check(name: &str) {
    let Some(image) = kernel(name) else { return };
    for pages in [2048u64, 4096, 16384, 65536] {
        let req = BuildRequest {
            memory_pages: pages,
            cmdline: b"xcp test",
            module_len: 0,
            vcpus: 1,
        };
        let plan = match PvPlan::new(&image, &req) {
            Ok(plan) => plan,
            Err(Error::MemoryTooSmall) if pages == 2048 => continue,
            Err(e) => panic!("{name} with {pages} pages: {e}"),
        };
        let l = *plan.layout();
        assert_eq!(l.virt_base, VIRT_BASE, "{name}");
        assert_eq!(l.virt_offset, 0, "{name}: PADDR_OFFSET = VIRT_BASE");
        assert_eq!(
            plan.notes().supported_features.map(|f| f & 0x800),
            Some(0x800)
        );
        assert!(
            l.hypercall_page_gpfn.is_some(),
            "{name} has a hypercall page"
        );
        check_invariants(&plan);
        let p2m = fake_p2m(pages);
        check_walk(&plan, &p2m);
        // Every kernel byte the ELF loads lands where the segment says.
        let mut page = [0u8; 4096];
        for seg in plan.segments() {
            let first = seg.gpfn();
            let last = (seg.gpaddr + seg.file_len).div_ceil(4096);
            for pfn in first..last {
                plan.write_kernel_page(&image, pfn, &mut page).unwrap();
                let lo = (pfn * 4096).max(seg.gpaddr);
                let hi = ((pfn + 1) * 4096).min(seg.gpaddr + seg.file_len);
                let from = (seg.file_offset + lo - seg.gpaddr) as usize;
                let at = (lo - pfn * 4096) as usize;
                assert_eq!(
                    &page[at..at + (hi - lo) as usize],
                    &image[from..from + (hi - lo) as usize]
                );
            }
        }
        eprintln!("{name} {pages} pages: {l:#x?}");
    }
}

#[test]
fn testdom() {
    check("testdom");
}

#[test]
fn toolstack_dom0() {
    check("toolstack-dom0");
}

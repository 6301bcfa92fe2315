//! Fuzz target: any bytes as a PV kernel image. The planner must return an
//! error or a plan whose generators all run; it must never panic.
//!
//! Run: see toolstack-dom0/builder/DESIGN.md ("Fuzzing").
#![no_main]

use libfuzzer_sys::fuzz_target;
use xcp_builder::{BuildRequest, PageSources, PvPlan, StartInfoArgs};

fuzz_target!(|data: &[u8]| {
    // The first two bytes choose the memory size (1024..=66559 pages).
    let (pages, image) = match data {
        [a, b, rest @ ..] => (1024 + u64::from(u16::from_le_bytes([*a, *b])), rest),
        _ => return,
    };
    let req = BuildRequest {
        memory_pages: pages,
        cmdline: b"fuzz",
        module_len: 0,
        vcpus: 1,
    };
    let Ok(plan) = PvPlan::new(image, &req) else {
        return;
    };
    let l = plan.layout();
    assert!(l.mapped_pages <= l.nr_pages);
    let p2m: Vec<u64> = (0..l.nr_pages).map(|pfn| pfn + 0x1000).collect();
    let src = PageSources {
        image,
        module: &[],
        p2m: &p2m,
        start_info: StartInfoArgs::default(),
    };
    let mut page = [0u8; 4096];
    for (pfn, kind) in plan.pages() {
        assert!(pfn < l.mapped_pages);
        assert_eq!(plan.write_page(pfn, &src, &mut page), Ok(kind));
    }
    plan.vcpu_context(&p2m).expect("p2m covers nr_pages");
});

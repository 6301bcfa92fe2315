//! Fuzz target: arbitrary requests to `PvhPlan::new`. The planner must
//! return an error or a plan whose every page, table and byte blob is
//! generated without panicking and stays inside populated memory.
//!
//! Run: see toolstack-dom0/builder/DESIGN.md ("Fuzzing").
#![no_main]

use libfuzzer_sys::fuzz_target;
use xcp_builder::{InitrdRequest, LoadedKernel, PhysRange, PvhPlan, PvhRequest};

fn take<const N: usize>(data: &mut &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let n = N.min(data.len());
    out[..n].copy_from_slice(&data[..n]);
    *data = &data[n..];
    out
}

fuzz_target!(|data: &[u8]| {
    let mut d = data;
    let u64_ = |d: &mut &[u8]| u64::from_le_bytes(take::<8>(d));
    let memory_bytes = u64_(&mut d);
    let vcpus = u32::from_le_bytes(take::<4>(&mut d));
    let start = u64_(&mut d);
    let end = u64_(&mut d);
    let entry = u64_(&mut d);
    let [flags, special] = take::<2>(&mut d);
    let len = u64_(&mut d);
    let at = u64_(&mut d);
    let initrd = match flags & 3 {
        0 => None,
        1 => Some(InitrdRequest { len, at: None }),
        _ => Some(InitrdRequest { len, at: Some(at) }),
    };
    let req = PvhRequest {
        memory_bytes,
        vcpus,
        kernel: LoadedKernel { start, end, entry },
        cmdline: d,
        initrd,
        special_pages: u32::from(special),
    };
    let Ok(plan) = PvhPlan::new(&req) else {
        return;
    };
    let e820 = plan.e820();
    let inside = |r: PhysRange| e820.iter().any(|e| e.addr <= r.start && r.end() <= e.addr + e.size);
    let l = plan.layout();
    assert!(inside(l.kernel) && inside(l.acpi) && inside(l.special));
    assert!(l.initrd.is_none_or(inside));
    let initrd = vec![0u8; l.initrd.map_or(0, |r| r.len.min(1 << 20) as usize)];
    let mut page = [0u8; 4096];
    for (gpfn, kind) in plan.pages() {
        assert!(inside(PhysRange { start: gpfn * 4096, len: 4096 }));
        assert_eq!(plan.write_page(gpfn, &initrd, &mut page), Ok(kind));
    }
    let _ = plan.e820_bytes();
    let _ = plan.vcpu_context().vcpu_hvm_context_bytes();
    let _ = plan.hvm_params(1, 2);
    assert!(plan.populated_pages() > 0);
});

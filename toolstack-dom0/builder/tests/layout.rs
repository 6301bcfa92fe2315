//! Layout invariants and page-table walks on hand-made images.

mod common;

use common::*;
use xcp_builder::*;

#[test]
fn valid_fixture_8mib() {
    let plan = plan_of(&Fixture::valid(), 2048).unwrap();
    let l = *plan.layout();
    assert_eq!(l.virt_base, VIRT_BASE);
    assert_eq!(l.entry, VIRT_BASE);
    assert_eq!(l.kernel, PfnRange { start: 0, count: 6 });
    assert_eq!(l.p2m, PfnRange { start: 6, count: 4 });
    assert_eq!(l.start_info_pfn, 10);
    assert_eq!(l.xenstore_pfn, 11);
    assert_eq!(l.console_pfn, 12);
    // 4 MiB mapping at 0xffffffff80000000: L4 + L3 + L2 + 2 L1s.
    assert_eq!(
        l.page_tables,
        PfnRange {
            start: 13,
            count: 5
        }
    );
    assert_eq!(l.stack_pfn, 18);
    assert_eq!(l.virt_end, VIRT_BASE + (4 << 20));
    assert_eq!(l.hypercall_page_gpfn, Some(1));
    check_invariants(&plan);
    check_walk(&plan, &fake_p2m(2048));
}

#[test]
fn walk_many_sizes() {
    for pages in [1024u64, 2048, 4096, 65536, 262_144] {
        let plan = plan_of(&Fixture::valid(), pages).unwrap();
        check_invariants(&plan);
        check_walk(&plan, &fake_p2m(pages));
    }
}

#[test]
fn too_small() {
    assert_eq!(
        plan_of(&Fixture::valid(), 1000).unwrap_err(),
        Error::MemoryTooSmall
    );
    assert_eq!(
        plan_of(&Fixture::valid(), 0).unwrap_err(),
        Error::MemoryTooSmall
    );
}

#[test]
fn kernel_pages_copy_segments() {
    let f = Fixture::valid();
    let image = f.build();
    let plan = plan_of(&f, 2048).unwrap();
    let mut page = [0xffu8; 4096];
    plan.write_kernel_page(&image, 0, &mut page).unwrap();
    assert_eq!(page[0], 0xf4);
    assert_eq!(page[1], 0x90);
    plan.write_kernel_page(&image, 2, &mut page).unwrap();
    assert_eq!(&page[..100], &f.segs[1].data[..]);
    assert!(page[100..].iter().all(|&b| b == 0));
    plan.write_kernel_page(&image, 5, &mut page).unwrap();
    assert!(page.iter().all(|&b| b == 0));
    assert_eq!(
        plan.write_kernel_page(&image, 6, &mut page),
        Err(Error::NotThisKind)
    );
}

#[test]
fn write_page_covers_every_boot_page() {
    let f = Fixture::valid();
    let image = f.build();
    let plan = plan_of(&f, 2048).unwrap();
    let p2m = fake_p2m(2048);
    let src = PageSources {
        image: &image,
        module: &[],
        p2m: &p2m,
        start_info: StartInfoArgs::default(),
    };
    let mut page = [0u8; 4096];
    for (pfn, kind) in plan.pages() {
        assert_eq!(plan.write_page(pfn, &src, &mut page), Ok(kind));
    }
    assert_eq!(
        plan.write_page(1000, &src, &mut page),
        Err(Error::NotThisKind)
    );
}

#[test]
fn p2m_pages_hold_the_p2m() {
    let plan = plan_of(&Fixture::valid(), 2000).unwrap();
    let p2m = fake_p2m(2000);
    let bytes = plan.p2m_bytes(&p2m).unwrap();
    assert_eq!(bytes.len(), 4 * 4096);
    for (pfn, mfn) in p2m.iter().enumerate() {
        assert_eq!(bytes[pfn * 8..pfn * 8 + 8], mfn.to_le_bytes());
    }
    assert!(bytes[2000 * 8..].iter().all(|&b| b == 0xff));
    assert_eq!(plan.p2m_pages(&p2m[..10]).err(), Some(Error::P2mTooShort));
}

#[test]
fn vcpu_context_values() {
    let plan = plan_of(&Fixture::valid(), 2048).unwrap();
    let p2m = fake_p2m(2048);
    let ctx = plan.vcpu_context(&p2m).unwrap();
    let l = plan.layout();
    assert_eq!(ctx.rip, VIRT_BASE);
    assert_eq!(ctx.rsp, VIRT_BASE + 19 * 4096);
    assert_eq!(ctx.rsi, VIRT_BASE + 10 * 4096);
    assert_eq!(ctx.cr3, p2m[13] << 12);
    assert_eq!(ctx.cs, 0xe033);
    assert_eq!(ctx.ss, 0xe02b);
    assert_eq!(ctx.flags, VGCF_IN_KERNEL | VGCF_ONLINE);
    assert_eq!((ctx.ds, ctx.es, ctx.fs, ctx.gs), (0, 0, 0, 0));
    assert_eq!(ctx.kernel_ss, 0xe02b);
    assert_eq!(ctx.rflags, 0x200);
    assert_eq!((ctx.dr6, ctx.dr7), (0xffff_0ff0, 0x400));
    assert_eq!(plan.hypercall_page_mfn(&p2m), Ok(Some(p2m[1])));
    assert_eq!(ctx.kernel_sp, l.stack_top());
}

#[test]
fn image_at_any_alignment() {
    // dom0 gets images out of a cpio archive: 4-byte aligned at best.
    let image = Fixture::valid().build();
    for shift in 0..8 {
        let mut buf = vec![0u8; shift];
        buf.extend_from_slice(&image);
        let plan = PvPlan::new(
            &buf[shift..],
            &BuildRequest {
                memory_pages: 2048,
                cmdline: b"",
                module_len: 0,
                vcpus: 1,
            },
        );
        assert!(plan.is_ok(), "shift {shift}: {plan:?}");
    }
}

//! A Linux-shaped PV kernel: the notes and segments of Debian 12's 6.1
//! vmlinux (arch/x86/xen/xen-head.S, `readelf -lnW vmlinux`), scaled down.
//!
//! What Linux needs from the plan, checked here: its image placed by
//! physical address from 16 MiB (pfns below it are ordinary RAM, mapped),
//! the per-cpu segment (vaddr 0) placed by its paddr, no hypercall page
//! (Linux 6.1.x after XSA-466 makes hypercalls without one), the initrd as
//! a module whose pfn start_info gives with `SIF_MOD_START_PFN` (the
//! `MOD_START_PFN` note), the p2m in the initial mapping (`INIT_P2M` is
//! recorded, not used, so `first_p2m_pfn`/`nr_p2m_frames` stay 0), and the
//! vCPU count bounded.

mod common;

use common::*;
use xcp_builder::*;

const MIB: u64 = 1 << 20;
const PAGES: u64 = 65536; // 256 MiB, as the QEMU case gives it
const MODULE_LEN: u64 = 2 * MIB + 5;

fn request(vcpus: u32) -> BuildRequest<'static> {
    BuildRequest {
        memory_pages: PAGES,
        cmdline: b"console=hvc0",
        module_len: MODULE_LEN,
        vcpus,
    }
}

#[test]
fn linux_is_placed_by_paddr_from_16_mib_with_its_initrd_after_it() {
    let image = linux().build();
    let plan = PvPlan::new(&image, &request(2)).unwrap();
    let l = *plan.layout();
    assert_eq!((l.virt_base, l.virt_offset), (VIRT_BASE, VIRT_BASE));
    let kernel_pages = (0x6000 + 0x2000 + 0x1000 + 0x9000) / 4096;
    assert_eq!(
        l.kernel,
        PfnRange {
            start: 0x1000,
            count: kernel_pages
        }
    );
    assert_eq!(l.virt_kstart, VIRT_BASE + 16 * MIB);
    // The per-cpu segment (vaddr 0) lands by its paddr.
    let percpu = plan.segments()[2];
    assert_eq!(percpu.gpaddr, 16 * MIB + 0x8000);
    assert_eq!(l.entry, VIRT_BASE + 16 * MIB + 0x9000 + 0x1c0);
    assert_eq!(l.hypercall_page_gpfn, None);
    assert_eq!(plan.notes().init_p2m, Some(512 << 30));
    assert_eq!(plan.notes().mod_start_pfn, Some(1));
    assert_eq!(plan.notes().features_required, 1);
    assert!(l.module_by_pfn);
    assert_eq!(
        l.module,
        PfnRange {
            start: l.kernel.end(),
            count: MODULE_LEN.div_ceil(4096)
        }
    );
    assert_eq!(l.p2m.start, l.module.end());
    assert_eq!(l.p2m.count, PAGES * 8 / 4096);
    assert_eq!(l.vcpus, 2);
    // What Linux needs mapped: everything up to the stack, then at least
    // 512 KiB; pfns below the kernel are mapped RAM, not boot pages.
    assert!(l.virt_end - l.stack_top() > 512 << 10);
    assert_eq!(plan.page_kind(0), None);
    assert_eq!(plan.page_kind(0xfff), None);
    assert!(l.mapped_pages > 0x1000);
    check_invariants(&plan);
    check_walk(&plan, &fake_p2m(PAGES));
}

#[test]
fn start_info_names_the_initrd_by_pfn_and_the_p2m_by_address() {
    let image = linux().build();
    let plan = PvPlan::new(&image, &request(2)).unwrap();
    let l = *plan.layout();
    let p2m = fake_p2m(PAGES);
    let args = StartInfoArgs {
        shared_info_maddr: 0x7000,
        store_evtchn: 1,
        console_evtchn: 2,
        flags: 0,
    };
    let page = plan.start_info(&p2m, &args).unwrap();
    let u64_at = |off: usize| u64::from_le_bytes(page[off..off + 8].try_into().unwrap());
    let u32_at = |off: usize| u32::from_le_bytes(page[off..off + 4].try_into().unwrap());
    assert_eq!(&page[..START_INFO_MAGIC.len()], START_INFO_MAGIC);
    assert_eq!(u64_at(OFF_NR_PAGES), PAGES);
    assert_eq!(u32_at(OFF_FLAGS), SIF_MOD_START_PFN);
    assert_eq!(u64_at(OFF_MOD_START), l.module.start);
    assert_eq!(u64_at(OFF_MOD_LEN), MODULE_LEN);
    assert_eq!(u64_at(OFF_MFN_LIST), VIRT_BASE + l.p2m.start * 4096);
    assert_eq!(u64_at(OFF_PT_BASE), VIRT_BASE + l.page_tables.start * 4096);
    assert_eq!(u64_at(OFF_NR_PT_FRAMES), l.page_tables.count);
    assert_eq!(u64_at(OFF_FIRST_P2M_PFN), 0);
    assert_eq!(u64_at(OFF_NR_P2M_FRAMES), 0);
    assert_eq!(u64_at(OFF_STORE_MFN), p2m[l.xenstore_pfn as usize]);
    assert_eq!(u64_at(OFF_CONSOLE_MFN), p2m[l.console_pfn as usize]);
    assert_eq!(&page[OFF_CMD_LINE..OFF_CMD_LINE + 13], b"console=hvc0\0");
    // The module's bytes are in its pages, zero after its end.
    let module: Vec<u8> = (0..MODULE_LEN).map(|i| (i % 251) as u8).collect();
    let mut dst = [0xaau8; 4096];
    let last = l.module.end() - 1;
    plan.write_module_page(&module, last, &mut dst).unwrap();
    assert_eq!(dst[..5], module[(MODULE_LEN - 5) as usize..]);
    assert!(dst[5..].iter().all(|&b| b == 0));
}

#[test]
fn without_the_note_the_initrd_is_named_by_address() {
    let mut f = linux();
    f.drop_note(XEN_ELFNOTE_MOD_START_PFN);
    let image = f.build();
    let plan = PvPlan::new(&image, &request(1)).unwrap();
    let l = *plan.layout();
    assert!(!l.module_by_pfn);
    let page = plan
        .start_info(&fake_p2m(PAGES), &StartInfoArgs::default())
        .unwrap();
    let u64_at = |off: usize| u64::from_le_bytes(page[off..off + 8].try_into().unwrap());
    assert_eq!(u64_at(OFF_FLAGS) & u64::from(SIF_MOD_START_PFN), 0);
    assert_eq!(u64_at(OFF_MOD_START), VIRT_BASE + l.module.start * 4096);
    // A zero MOD_START_PFN note means "no" too.
    let mut f = linux();
    f.set_note(XEN_ELFNOTE_MOD_START_PFN, 0u32.to_le_bytes().to_vec());
    let plan = PvPlan::new(&f.build(), &request(1)).unwrap();
    assert!(!plan.layout().module_by_pfn);
}

#[test]
fn the_vcpu_count_is_bounded() {
    let image = linux().build();
    for (vcpus, ok) in [(0, false), (1, true), (2, true), (MAX_PV_VCPUS, true)] {
        let got = PvPlan::new(&image, &request(vcpus)).map(|p| p.layout().vcpus);
        assert_eq!(got.ok(), ok.then_some(vcpus), "{vcpus}");
    }
    assert_eq!(
        PvPlan::new(&image, &request(MAX_PV_VCPUS + 1)).unwrap_err(),
        Error::BadVcpuCount
    );
    assert_eq!(
        PvPlan::new(&image, &request(u32::MAX)).unwrap_err(),
        Error::BadVcpuCount
    );
}

#[test]
fn memory_below_the_kernel_does_not_count_as_room_for_it() {
    // 16 MiB of RAM cannot hold a kernel that starts at 16 MiB.
    let image = linux().build();
    let small = BuildRequest {
        memory_pages: 4096,
        ..request(1)
    };
    assert_eq!(
        PvPlan::new(&image, &small).unwrap_err(),
        Error::MemoryTooSmall
    );
}

#[test]
fn a_plan_from_a_streaming_loaders_summary_is_the_plan_from_the_elf() {
    let image = linux().build();
    let from_bytes = PvPlan::new(&image, &request(2)).unwrap();
    let elf = ElfImage::parse(&image).unwrap();
    let from_summary = PvPlan::from_elf(&elf, &request(2)).unwrap();
    assert_eq!(from_bytes, from_summary);
    // Where a loader writing by p_paddr lands: the kernel's pages only.
    let l = from_summary.layout();
    assert_eq!(from_summary.kernel_pfn_of(16 * MIB), Some(0x1000));
    assert_eq!(from_summary.kernel_pfn_of(16 * MIB + 0x1234), Some(0x1001));
    let last = (l.virt_kend - l.virt_offset) - 1;
    assert_eq!(from_summary.kernel_pfn_of(last), Some(l.kernel.end() - 1));
    assert_eq!(from_summary.kernel_pfn_of(last + 1), None);
    assert_eq!(from_summary.kernel_pfn_of(16 * MIB - 1), None);
    assert_eq!(from_summary.kernel_pfn_of(u64::MAX), None);
    // A summary no ELF parse would give is refused, not planned.
    let mut bad = elf.clone();
    bad.segments[0].filesz = bad.segments[0].memsz + 1;
    assert_eq!(
        PvPlan::from_elf(&bad, &request(1)).unwrap_err(),
        Error::FileSizeExceedsMemSize
    );
    let mut empty = elf.clone();
    empty.segments.clear();
    assert_eq!(
        PvPlan::from_elf(&empty, &request(1)).unwrap_err(),
        Error::NoLoadSegments
    );
    let mut many = elf.clone();
    let extra = many.segments[0];
    many.segments
        .extend(std::iter::repeat_n(extra, MAX_LOAD_SEGMENTS));
    assert_eq!(
        PvPlan::from_elf(&many, &request(1)).unwrap_err(),
        Error::TooManySegments
    );
    let mut overlapping = elf;
    overlapping.segments[1].paddr = overlapping.segments[0].paddr + 0x1000;
    assert_eq!(
        PvPlan::from_elf(&overlapping, &request(1)).unwrap_err(),
        Error::OverlappingSegments
    );
}

//! PvhPlan: placement invariants, the e820, hvm_start_info bytes parsed
//! back, ACPI checksums and MADT entries, the boot vCPU, and proptests that
//! every request gives a valid plan or a clean error.

use proptest::prelude::*;
use xcp_builder::acpi;
use xcp_builder::*;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

fn request(memory: u64, vcpus: u32, initrd: Option<InitrdRequest>) -> PvhRequest<'static> {
    PvhRequest {
        memory_bytes: memory,
        vcpus,
        // Where a Linux PVH vmlinux loads: 16 MiB up.
        kernel: LoadedKernel {
            start: 16 * MIB,
            end: 16 * MIB + 0x2a3_4567,
            entry: 16 * MIB + 0x1000,
        },
        cmdline: b"console=hvc0 earlyprintk=xen",
        initrd,
        special_pages: 2,
    }
}

/// Everything a plan promises.
fn check(plan: &PvhPlan, req: &PvhRequest<'_>) {
    let l = plan.layout();
    // The e820: sorted, non-overlapping, non-empty entries.
    let e = plan.e820();
    assert!(e.len() <= MAX_E820);
    for w in e.windows(2) {
        assert!(w[0].addr + w[0].size <= w[1].addr, "{e:?}");
    }
    assert!(e
        .iter()
        .all(|x| x.size > 0 && x.addr % 4096 == 0 && x.size % 4096 == 0));
    let ram: u64 = e.iter().filter(|x| x.kind == 1).map(|x| x.size).sum();
    assert_eq!(ram, req.memory_bytes & !4095);
    // Populated = every e820 entry, page by page.
    let populated: u64 = plan.populate().map(|(_, n)| n).sum();
    assert_eq!(populated, e.iter().map(|x| x.size / 4096).sum::<u64>());
    assert_eq!(populated, plan.populated_pages());
    let in_populated = |r: PhysRange| {
        e.iter()
            .any(|x| x.addr <= r.start && r.end() <= x.addr + x.size)
    };
    // Placements: inside populated memory, page aligned where they must
    // be, and pairwise disjoint.
    let start_info = PhysRange {
        start: l.start_info,
        len: 4096,
    };
    let mut placed = vec![l.kernel, start_info, l.acpi, l.special];
    placed.extend(l.initrd);
    for r in &placed {
        assert!(in_populated(*r), "{r:?} outside {e:?}");
    }
    for (i, a) in placed.iter().enumerate() {
        for b in &placed[i + 1..] {
            assert!(!a.overlaps(b), "{a:?} overlaps {b:?}");
        }
    }
    // The kernel, initrd and start info are in RAM below 4 GiB.
    for r in [l.kernel, start_info].into_iter().chain(l.initrd) {
        assert!(l.low_ram.contains(&r));
    }
    assert_eq!(l.start_info % 4096, 0);
    assert!(l.initrd.is_none_or(|r| r.start % 4096 == 0));
    assert_eq!(l.kernel.start, req.kernel.start);
    assert_eq!(l.kernel.end(), req.kernel.end);
    // ACPI and special pages are typed as such.
    assert!(e.iter().any(|x| x.addr == l.acpi.start && x.kind == 3));
    assert!(e.iter().any(|x| x.addr == l.special.start && x.kind == 2));

    // Every page the executor writes is written without error, once.
    let mut page = [0u8; 4096];
    let initrd = vec![0x5au8; l.initrd.map_or(0, |r| r.len as usize)];
    let mut last = None;
    for (gpfn, kind) in plan.pages() {
        assert!(last < Some(gpfn), "pages in gpfn order");
        last = Some(gpfn);
        assert_eq!(plan.page_kind(gpfn), Some(kind));
        assert_eq!(plan.write_page(gpfn, &initrd, &mut page), Ok(kind));
    }
    for wild in [l.kernel.start / 4096, u64::MAX, u64::MAX / 4096] {
        assert_eq!(
            plan.write_page(wild, &initrd, &mut page),
            Err(PvhError::NotThisKind)
        );
    }

    check_start_info(plan);
    check_acpi(&plan.acpi_tables(), l.vcpus);
    let ctx = plan.vcpu_context();
    assert_eq!(u64::from(ctx.eip), req.kernel.entry);
    assert_eq!(u64::from(ctx.ebx), l.start_info);
    check_grant_seed(plan);
}

/// The grant seed: its scratch frame is a hole (nothing populated, no
/// e820 entry), and the entries grant the two rings by gfn.
fn check_grant_seed(plan: &PvhPlan) {
    let l = plan.layout();
    let scratch = plan.grant_scratch_gfn();
    assert!(plan
        .populate()
        .all(|(first, count)| !(first..first + count).contains(&scratch)));
    let at = scratch * 4096;
    assert!(plan
        .e820()
        .iter()
        .all(|e| !(e.addr..e.addr + e.size).contains(&at)));
    let entry = |flags: u16, domid: u16, frame: u64| {
        let mut e = [0u8; 8];
        e[0..2].copy_from_slice(&flags.to_le_bytes());
        e[2..4].copy_from_slice(&domid.to_le_bytes());
        e[4..8].copy_from_slice(&u32::try_from(frame).unwrap().to_le_bytes());
        e
    };
    assert_eq!(
        plan.gnttab_seed(0, Some(7)),
        vec![
            (0, entry(1, 0, l.console_pfn())),
            (1, entry(1, 7, l.xenstore_pfn())),
        ]
    );
    assert_eq!(
        plan.gnttab_seed(3, None),
        vec![(0, entry(1, 3, l.console_pfn()))]
    );
}

/// hvm_start_info parses back to the plan's values.
fn check_start_info(plan: &PvhPlan) {
    let l = plan.layout();
    let p = plan.start_info_page();
    let off = |paddr: u64| (paddr - l.start_info) as usize;
    assert_eq!(u32_at(&p, 0), 0x336e_c578);
    assert_eq!(u32_at(&p, 4), 1);
    assert_eq!(u32_at(&p, 8), 0);
    assert_eq!(u32_at(&p, 12), u32::from(l.initrd.is_some()));
    assert_eq!(u64_at(&p, 32), l.rsdp);
    let cmd = off(u64_at(&p, 24));
    let cmdline: Vec<u8> = p[cmd..].iter().copied().take_while(|&b| b != 0).collect();
    assert_eq!(cmdline, plan.cmdline());
    if let Some(r) = l.initrd {
        let m = off(u64_at(&p, 16));
        assert_eq!((u64_at(&p, m), u64_at(&p, m + 8)), (r.start, r.len));
    }
    let mm = off(u64_at(&p, 40));
    let n = u32_at(&p, 48) as usize;
    assert_eq!(n, plan.e820().len());
    let bytes = plan.e820_bytes();
    assert_eq!(bytes.len(), n * 20);
    for (i, e) in plan.e820().iter().enumerate() {
        let at = mm + i * 24;
        assert_eq!(
            (
                u64_at(&p, at),
                u64_at(&p, at + 8),
                u32_at(&p, at + 16),
                u32_at(&p, at + 20)
            ),
            (e.addr, e.size, e.kind, 0)
        );
        let b = i * 20;
        assert_eq!(
            (
                u64_at(&bytes, b),
                u64_at(&bytes, b + 8),
                u32_at(&bytes, b + 16)
            ),
            (e.addr, e.size, e.kind)
        );
    }
}

/// Walks RSDP -> XSDT -> FADT/DSDT and MADT by their own pointers.
fn check_acpi(t: &[u8], vcpus: u32) {
    let base = ACPI_BASE;
    let at = |paddr: u64| (paddr - base) as usize;
    let sums_to_zero = |b: &[u8]| b.iter().fold(0u8, |a, &x| a.wrapping_add(x)) == 0;
    assert_eq!(&t[..8], b"RSD PTR ");
    assert!(sums_to_zero(&t[..20]) && sums_to_zero(&t[..36]));
    assert_eq!(t[15], 2);
    let table = |paddr: u64, sig: &[u8; 4]| -> &[u8] {
        let o = at(paddr);
        assert_eq!(&t[o..o + 4], sig);
        let len = u32_at(t, o + 4) as usize;
        let b = &t[o..o + len];
        assert!(sums_to_zero(b), "{} checksum", String::from_utf8_lossy(sig));
        b
    };
    let xsdt = table(u64_at(t, 24), b"XSDT");
    assert_eq!(xsdt.len(), 36 + 16);
    let fadt = table(u64_at(xsdt, 36), b"FACP");
    assert_eq!(fadt.len(), 276);
    assert_ne!(u32_at(fadt, 112) & (1 << 20), 0, "HW_REDUCED_ACPI");
    let dsdt = table(u64_at(fadt, 140), b"DSDT");
    assert_eq!(u64::from(u32_at(fadt, 40)), u64_at(fadt, 140));
    assert_eq!(dsdt.len(), 36);
    let madt = table(u64_at(xsdt, 44), b"APIC");
    assert_eq!(madt.len(), 44 + 8 * vcpus as usize);
    assert_eq!(u32_at(madt, 36), 0xfee0_0000);
    for (i, e) in madt[44..].chunks_exact(8).enumerate() {
        assert_eq!(e[0], 0, "Processor Local APIC");
        assert_eq!(e[1], 8);
        assert_eq!(e[2] as usize, i);
        assert_eq!(e[3] as usize, 2 * i);
        assert_eq!(u32_at(e, 4), 1, "enabled");
    }
}

#[test]
fn small_guest_with_initrd() {
    let req = request(
        512 * MIB,
        2,
        Some(InitrdRequest {
            len: 1_100_000,
            at: None,
        }),
    );
    let plan = PvhPlan::new(&req).unwrap();
    check(&plan, &req);
    let l = plan.layout();
    assert_eq!(l.initrd.unwrap().start, 16 * MIB + 0x2a3_5000);
    assert_eq!(
        l.start_info,
        (16 * MIB + 0x2a3_5000 + 1_100_000).next_multiple_of(4096)
    );
    assert_eq!(l.high_ram, None);
    assert_eq!((l.xenstore_pfn(), l.console_pfn()), (0xfeffe, 0xfefff));
    assert_eq!(plan.populated_pages(), 512 * 256 + 1 + 2);
    let e: Vec<_> = plan
        .e820()
        .iter()
        .map(|e| (e.addr, e.size, e.kind))
        .collect();
    assert_eq!(
        e,
        [
            (0, 512 * MIB, 1),
            (0xfc00_0000, 4096, 3),
            (0xfeff_e000, 8192, 2)
        ]
    );
    assert_eq!(
        plan.hvm_params(7, 8),
        [(1, 0xfeffe), (2, 7), (17, 0xfefff), (18, 8)]
    );
    let cfg = plan.domain_config();
    assert_eq!((cfg.flags, cfg.emulation_flags, cfg.max_vcpus), (3, 1, 2));
}

#[test]
fn large_guest_splits_above_4g() {
    let req = request(6 * GIB, 4, None);
    let plan = PvhPlan::new(&req).unwrap();
    check(&plan, &req);
    let l = plan.layout();
    assert_eq!(l.low_ram.len, 0xf000_0000);
    assert_eq!(
        l.high_ram,
        Some(PhysRange {
            start: 4 * GIB,
            len: 6 * GIB - 0xf000_0000
        })
    );
}

#[test]
fn vcpu_context_is_flat_32_bit() {
    let plan = PvhPlan::new(&request(256 * MIB, 1, None)).unwrap();
    let ctx = plan.vcpu_context();
    assert_eq!(ctx.cr0, 0x11);
    assert_eq!((ctx.cs.base, ctx.cs.limit, ctx.cs.ar), (0, !0, 0xc9b));
    assert_eq!((ctx.data.base, ctx.data.limit, ctx.data.ar), (0, !0, 0xc93));
    assert_eq!(ctx.tr.ar, 0x8b);
    let b = ctx.vcpu_hvm_context_bytes();
    assert_eq!(u32_at(&b, 0), 0, "VCPU_HVM_MODE_32B");
    assert_eq!(u32_at(&b, 8 + 12), ctx.ebx);
    assert_eq!(u32_at(&b, 8 + 32), ctx.eip);
    assert_eq!(u32_at(&b, 8 + 40), 0x11);
    // cs..tr limits, then ars.
    assert_eq!(u32_at(&b, 8 + 84), !0);
    assert_eq!(u32_at(&b, 8 + 100), 0x67);
    assert_eq!(
        &b[8 + 104..8 + 114],
        &[0x9b, 0xc, 0x93, 0xc, 0x93, 0xc, 0x93, 0xc, 0x8b, 0]
    );
}

#[test]
fn refusals() {
    let ok = request(256 * MIB, 1, None);
    let err = |f: &dyn Fn(&mut PvhRequest<'static>)| {
        let mut r = ok;
        f(&mut r);
        PvhPlan::new(&r).unwrap_err()
    };
    assert_eq!(err(&|r| r.memory_bytes = MIB), PvhError::MemoryTooSmall);
    assert_eq!(err(&|r| r.memory_bytes = 2 << 40), PvhError::MemoryTooLarge);
    assert_eq!(
        err(&|r| r.memory_bytes = 17 * MIB),
        PvhError::KernelOutsideRam
    );
    assert_eq!(err(&|r| r.vcpus = 0), PvhError::BadVcpuCount);
    assert_eq!(err(&|r| r.vcpus = 129), PvhError::BadVcpuCount);
    assert_eq!(err(&|r| r.cmdline = &[b'a'; 2048]), PvhError::BadCmdline);
    assert_eq!(err(&|r| r.cmdline = b"a\0b"), PvhError::BadCmdline);
    assert_eq!(
        err(&|r| r.kernel.end = r.kernel.start),
        PvhError::BadKernelRange
    );
    assert_eq!(
        err(&|r| r.kernel.entry = r.kernel.end),
        PvhError::EntryOutsideKernel
    );
    assert_eq!(err(&|r| r.special_pages = 1), PvhError::BadSpecialPages);
    assert_eq!(err(&|r| r.special_pages = 9), PvhError::BadSpecialPages);
    let initrd = |len, at| Some(InitrdRequest { len, at });
    assert_eq!(
        err(&|r| r.initrd = initrd(0, None)),
        PvhError::BadInitrdSize
    );
    assert_eq!(
        err(&|r| r.initrd = initrd(GIB + 1, None)),
        PvhError::BadInitrdSize
    );
    assert_eq!(
        err(&|r| r.initrd = initrd(300 * MIB, None)),
        PvhError::MemoryTooSmall
    );
    assert_eq!(
        err(&|r| r.initrd = initrd(10, Some(17 * MIB))),
        PvhError::Overlap
    );
    assert_eq!(
        err(&|r| r.initrd = initrd(10, Some(MIB + 1))),
        PvhError::InitrdMisaligned
    );
    assert_eq!(
        err(&|r| r.initrd = initrd(MIB, Some(256 * MIB))),
        PvhError::InitrdOutsideRam
    );
    assert_eq!(
        err(&|r| r.initrd = initrd(MIB, Some(!4095))),
        PvhError::InitrdOutsideRam
    );
    // Exactly full: the start-info page is RAM's last page.
    let mut r = ok;
    r.memory_bytes = (r.kernel.end).next_multiple_of(4096) + 4096;
    check(&PvhPlan::new(&r).unwrap(), &r);
    r.memory_bytes -= 4096;
    assert_eq!(PvhPlan::new(&r).unwrap_err(), PvhError::MemoryTooSmall);
}

#[test]
fn stated_initrd_below_the_kernel() {
    let req = request(
        128 * MIB,
        8,
        Some(InitrdRequest {
            len: 5 * MIB,
            at: Some(2 * MIB),
        }),
    );
    let plan = PvhPlan::new(&req).unwrap();
    check(&plan, &req);
    // The initrd's pages carry its bytes.
    let data: Vec<u8> = (0..5 * MIB).map(|i| (i % 251) as u8).collect();
    let mut page = [0u8; 4096];
    plan.write_page(2 * MIB / 4096 + 3, &data, &mut page)
        .unwrap();
    assert_eq!(&page[..], &data[3 * 4096..4 * 4096]);
}

/// `iasl -d` (Debian acpica-tools) disassembles our tables without
/// complaint, when it is installed.
#[test]
fn iasl_accepts_the_tables() {
    let Ok(out) = std::process::Command::new("iasl").arg("-v").output() else {
        eprintln!("note: iasl not installed (apt-get install acpica-tools); skipped");
        return;
    };
    assert!(out.status.success() || !out.stdout.is_empty());
    let plan = PvhPlan::new(&request(256 * MIB, 4, None)).unwrap();
    let t = plan.acpi_tables();
    let dir = std::env::temp_dir().join(format!("xcp-pvh-acpi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, off) in [
        ("facp", acpi::OFF_FADT),
        ("dsdt", acpi::OFF_DSDT),
        ("apic", acpi::OFF_MADT),
        ("xsdt", acpi::OFF_XSDT),
    ] {
        let len = u32_at(&t, off + 4) as usize;
        let file = dir.join(format!("{name}.dat"));
        std::fs::write(&file, &t[off..off + len]).unwrap();
        let out = std::process::Command::new("iasl")
            .arg("-d")
            .arg(&file)
            .current_dir(&dir)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "iasl -d {name}: {text}");
        assert!(
            !text.to_lowercase().contains("invalid checksum"),
            "{name}: {text}"
        );
        assert!(!text.contains("Error"), "{name}: {text}");
        let dsl = std::fs::read_to_string(dir.join(format!("{name}.dsl"))).unwrap();
        if name == "apic" {
            assert_eq!(dsl.matches("Processor Enabled : 1").count(), 4, "{dsl}");
        }
        if name == "facp" {
            let line = dsl
                .lines()
                .find(|l| l.contains("Hardware Reduced"))
                .unwrap();
            assert!(line.trim_end().ends_with(": 1"), "{dsl}");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_request_is_a_plan_or_a_clean_error(
        memory in prop_oneof![0u64..64 * MIB, 0u64..8 * GIB, any::<u64>()],
        vcpus in prop_oneof![0u32..=130, any::<u32>()],
        kstart in prop_oneof![0u64..64 * MIB, any::<u64>()],
        klen in prop_oneof![0u64..32 * MIB, any::<u64>()],
        entry_off in any::<u64>(),
        initrd_len in prop::option::of(prop_oneof![0u64..64 * MIB, any::<u64>()]),
        initrd_at in prop::option::of(prop_oneof![(0u64..64).prop_map(|p| p * MIB), any::<u64>()]),
        cmd_len in 0usize..2100,
        special in 0u32..10,
    ) {
        let cmdline = vec![b'x'; cmd_len];
        let kend = kstart.wrapping_add(klen);
        let req = PvhRequest {
            memory_bytes: memory,
            vcpus,
            kernel: LoadedKernel {
                start: kstart,
                end: kend,
                entry: kstart.wrapping_add(entry_off % klen.max(1)),
            },
            cmdline: &cmdline,
            initrd: initrd_len.map(|len| InitrdRequest { len, at: initrd_at }),
            special_pages: special,
        };
        if let Ok(plan) = PvhPlan::new(&req) {
            check(&plan, &req);
        }
    }
}

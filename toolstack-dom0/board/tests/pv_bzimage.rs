//! The PV build of a bzImage on the fake platform: the kernel streamed
//! through `xcp_kimage` lands in the same guest pages, byte for byte, as
//! the same ELF copied from memory; a stream that strays from the kernel's
//! pages, a broken payload, and a failure at each step leave nothing.

#[path = "../../builder/tests/common/mod.rs"]
mod elf;
#[path = "../../kimage/tests/common/mod.rs"]
mod kimage;

use xcp_dom0_board::build::{build, Built, DomainRole};
use xcp_dom0_board::fake::Fake;
use xcp_dom0_board::{BoardError, Platform, Step};

const MIB: u32 = 64;

fn role() -> DomainRole {
    DomainRole {
        vcpus: 2,
        ..Default::default()
    }
}

#[track_caller]
fn assert_clean(fake: &Fake) {
    let left = fake.leftovers();
    assert!(
        left.is_empty(),
        "left behind: {left:?}\njournal: {:#?}",
        fake.journal
    );
}

/// The bytes of every page of `built`'s domain, by pfn (through the p2m
/// the fake handed out: frames are written by mfn).
fn pages(fake: &Fake, built: &Built, pfns: std::ops::Range<u64>) -> Vec<Vec<u8>> {
    let d = &fake.domains[&built.domid];
    pfns.map(|pfn| {
        d.memory
            .get(&Fake::mfn_of(built.domid, pfn))
            .map_or_else(|| vec![0; 4096], |page| page.clone())
    })
    .collect()
}

#[test]
fn a_gzip_bzimage_lands_where_its_elf_does() {
    let elf = elf::linux().build();
    let plan = xcp_builder::PvPlan::new(
        &elf,
        &xcp_builder::BuildRequest {
            memory_pages: u64::from(MIB) * 256,
            cmdline: b"console=hvc0",
            module_len: 6,
            vcpus: 2,
        },
    )
    .unwrap();
    let l = *plan.layout();
    let bz = kimage::bzimage(&kimage::gzip(&elf), elf.len());
    let mut fake = Fake::new();
    let from_elf = build(&mut fake, &elf, b"initrd", MIB, role(), "console=hvc0").unwrap();
    let from_bz = build(&mut fake, &bz, b"initrd", MIB, role(), "console=hvc0").unwrap();
    // Everything the plan writes, kernel included: the same bytes.
    let a = pages(&fake, &from_elf, 0..l.mapped_pages);
    let b = pages(&fake, &from_bz, 0..l.mapped_pages);
    for pfn in 0..l.mapped_pages as usize {
        // Page tables, start_info and p2m hold each domain's own mfns.
        if plan.page_kind(pfn as u64) == Some(xcp_builder::PageKind::Kernel) {
            assert_eq!(a[pfn], b[pfn], "kernel pfn {pfn:#x}");
        }
    }
    // The kernel's bytes really are there (not two empty domains).
    let text = &b[l.kernel.start as usize];
    assert_eq!(text[..16], elf::linux().segs[0].data[..16]);
    assert_eq!(
        fake.domains[&from_bz.domid].vcpus, 2,
        "the bzImage domain got its vCPUs"
    );
}

#[test]
fn a_bzimage_whose_payload_is_not_a_kernel_is_refused_before_xen_is_asked() {
    let elf = elf::linux().build();
    let mut gz = kimage::gzip(&elf);
    let mid = gz.len() / 2;
    gz[mid] ^= 0xff;
    let broken = kimage::bzimage(&gz, elf.len());
    let mut fake = Fake::new();
    let calls = fake.calls;
    let err = build(&mut fake, &broken, &[], MIB, role(), "").unwrap_err();
    assert!(matches!(err, BoardError::Kernel(_)), "{err:?}");
    assert_eq!(fake.calls, calls, "no platform call");
    assert_clean(&fake);
}

/// Builds `image` once per platform call, failing that call: each build
/// fails and leaves nothing (no domain, no run, no dictionary left in a
/// guest). Returns how many failures the build named as the kernel's load.
fn fail_each_step(image: &[u8]) -> usize {
    let mut probe = Fake::new();
    build(&mut probe, image, b"initrd", MIB, role(), "").unwrap();
    let steps = probe.calls;
    let mut loads = 0;
    for n in 1..=steps {
        let mut fake = Fake::new();
        fake.fail_at = Some(fake.calls + n);
        let err = build(&mut fake, image, b"initrd", MIB, role(), "").unwrap_err();
        if matches!(
            err,
            BoardError::Platform {
                step: Step::LoadKernel,
                ..
            }
        ) {
            loads += 1;
        }
        assert_clean(&fake);
        assert_eq!(fake.runs.borrow().returned_dirty, 0, "step {n}: {err}");
    }
    loads
}

#[test]
fn a_failure_at_each_step_of_a_streamed_build_leaves_nothing() {
    let elf = elf::linux().build();
    let bz = kimage::bzimage(&kimage::gzip(&elf), elf.len());
    // The kernel's writes are platform calls too, and a failed one is
    // named as the load.
    assert!(
        fail_each_step(&bz) > 0,
        "no failure landed in the kernel's load"
    );
}

#[test]
fn the_sink_refuses_bytes_outside_the_kernels_pages() {
    use xcp_dom0_board::build::PvKernelSink;
    use xcp_kimage::Sink;
    let elf = elf::linux().build();
    let plan = xcp_builder::PvPlan::new(
        &elf,
        &xcp_builder::BuildRequest {
            memory_pages: 8192,
            cmdline: b"",
            module_len: 0,
            vcpus: 1,
        },
    )
    .unwrap();
    let l = *plan.layout();
    let mut fake = Fake::new();
    let domid = fake
        .create_domain(0, &xen_sys::domctl_payloads::XenDomctlCreatedomain::pv(1))
        .unwrap();
    let p2m = fake.populate_physmap(domid, 8192).unwrap();
    let mut sink = PvKernelSink::new(&mut fake, domid, &plan, &p2m);
    let first = l.kernel.start * 4096;
    let end = l.kernel.end() * 4096;
    assert!(sink.write(first, &[1; 4096]).is_ok());
    assert!(sink.zero(end - 10, 10).is_ok());
    // Below the kernel, past it, straddling its end, wrapping.
    assert!(sink.write(first - 1, &[1]).is_err());
    assert!(sink.write(end, &[1]).is_err());
    assert!(sink.zero(end - 10, 11).is_err());
    assert!(sink.zero(u64::MAX - 1, 4).is_err());
    assert!(sink.write(0, &[1]).is_err());
}

/// An xz kernel's dictionary is lent from the top of the new domain's own
/// RAM: the kernel lands where its ELF does, the run is given back zeroed
/// (nothing of the dictionary stays in the guest), and dom0 never holds
/// it.
#[test]
fn an_xz_bzimage_borrows_its_dictionary_from_the_guest() {
    let elf = elf::linux().build();
    let bz = kimage::bzimage(&kimage::xz(&elf), elf.len());
    let plan = xcp_builder::PvPlan::new(
        &elf,
        &xcp_builder::BuildRequest {
            memory_pages: u64::from(MIB) * 256,
            cmdline: b"console=hvc0",
            module_len: 6,
            vcpus: 2,
        },
    )
    .unwrap();
    let l = *plan.layout();
    let mut fake = Fake::new();
    let from_elf = build(&mut fake, &elf, b"initrd", MIB, role(), "console=hvc0").unwrap();
    let from_xz = build(&mut fake, &bz, b"initrd", MIB, role(), "console=hvc0").unwrap();
    let a = pages(&fake, &from_elf, 0..l.mapped_pages);
    let b = pages(&fake, &from_xz, 0..l.mapped_pages);
    for pfn in 0..l.mapped_pages as usize {
        if plan.page_kind(pfn as u64) == Some(xcp_builder::PageKind::Kernel) {
            assert_eq!(a[pfn], b[pfn], "kernel pfn {pfn:#x}");
        }
    }
    assert_eq!(
        b[l.kernel.start as usize][..16],
        elf::linux().segs[0].data[..16]
    );
    // The run: the top of the domain's RAM, mapped by its frames.
    let runs = fake.runs.borrow();
    assert!(runs.live.is_empty(), "the run was unmapped");
    assert_eq!(runs.returned_dirty, 0, "the run was zeroed before it went");
    drop(runs);
    let maps: Vec<_> = fake
        .journal
        .iter()
        .filter(|c| c.starts_with("map_guest_frames"))
        .collect();
    assert_eq!(maps.len(), 1, "{maps:?}");
    assert_eq!(
        *maps[0],
        format!("map_guest_frames {} 256", from_xz.domid),
        "1 MiB (the test image's dictionary) of domid {}",
        from_xz.domid
    );
}

#[test]
fn a_failure_at_each_step_of_an_xz_build_leaves_nothing() {
    let elf = elf::linux().build();
    let bz = kimage::bzimage(&kimage::xz(&elf), elf.len());
    // The run's mapping and the kernel's writes.
    assert!(
        fail_each_step(&bz) > 1,
        "no failure landed in the mapping or the load"
    );
}

#[test]
fn an_xz_kernel_that_would_load_into_its_dictionary_is_refused() {
    let elf = elf::linux().build();
    // An 8 MiB dictionary (the stream says so, whatever its data needs).
    let payload = kimage::pipe(
        std::process::Command::new("xz").args([
            "--check=crc32",
            "--x86",
            "--lzma2=dict=8MiB",
            "-c",
        ]),
        &elf,
    );
    let bz = kimage::bzimage(&payload, elf.len());
    let mut fake = Fake::new();
    // 20 MiB: the fixture loads from 16 MiB, the last 8 MiB would be lent.
    let err = build(&mut fake, &bz, b"", 20, role(), "").unwrap_err();
    assert!(
        matches!(
            err,
            BoardError::NoRoomForDictionary {
                dictionary: 0x80_0000,
                at: Some(_),
                ..
            }
        ),
        "{err:?}"
    );
    assert_clean(&fake);
    assert_eq!(fake.runs.borrow().returned_dirty, 0);
    // The dictionary alone would take more than half the RAM.
    let err = build(&mut fake, &bz, b"", 12, role(), "").unwrap_err();
    assert!(
        matches!(err, BoardError::NoRoomForDictionary { at: None, .. }),
        "{err:?}"
    );
    assert_clean(&fake);
}

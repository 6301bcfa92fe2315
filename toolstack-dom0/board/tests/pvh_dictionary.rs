//! An xz kernel's dictionary lent from the guest's own RAM
//! (`Dictionary::GuestRam`) on the fake platform: where the run is, that
//! the kernel never loads into it, that it is zeroed and unmapped on every
//! path (before the domain is destroyed), and the errors when it does not
//! fit.

#[path = "../../kimage/tests/common/mod.rs"]
mod kimage;

use xcp_dom0_board::fake::Fake;
use xcp_dom0_board::pvh::{build_pvh, Dictionary, PvhSpec};
use xcp_dom0_board::{BoardError, Platform, Step};
use xcp_kimage::{Bound, Compression, KimageError};

/// The fixture's xz stream asks 1 MiB (xz_wrap.sh's settings at test size).
const DICT_PAGES: u64 = 256;

fn spec(kernel: &[u8], memory_mib: u32) -> PvhSpec<'_> {
    PvhSpec {
        kernel,
        initrd: &[],
        memory_mib,
        vcpus: 1,
        cmdline: "console=hvc0",
        handle: [3; 16],
        xenstore: None,
        dictionary: Dictionary::GuestRam,
    }
}

fn xz_kernel() -> (Vec<u8>, Vec<kimage::Seg>) {
    let (elf, segs) = kimage::kernel();
    (kimage::bzimage(&kimage::xz(&elf), elf.len()), segs)
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

/// The journal lines from `map_guest_run` to the next call that is not a
/// kernel write (the load).
fn load_calls(fake: &Fake) -> Vec<&str> {
    let start = fake.position("map_guest_run").expect("a run was mapped");
    fake.journal[start + 1..]
        .iter()
        .map(String::as_str)
        .take_while(|l| l.starts_with("write_foreign"))
        .collect()
}

#[test]
fn the_dictionary_is_the_top_of_low_ram_and_the_kernel_loads_below_it() {
    let (image, segs) = xz_kernel();
    let mut fake = Fake::new();
    let built = build_pvh(&mut fake, spec(&image, 32)).expect("built");
    let first = 32 * 256 - DICT_PAGES;
    assert!(
        fake.journal.contains(&format!(
            "map_guest_run {} {first:#x} {DICT_PAGES}",
            built.domid
        )),
        "{:#?}",
        fake.journal
    );
    let d = &fake.domains[&built.domid];
    for s in &segs {
        assert_eq!(
            d.read(s.paddr, s.data.len()),
            s.data,
            "segment {:#x}",
            s.paddr
        );
    }
    // Every kernel write went below the run.
    let writes = load_calls(&fake);
    assert!(!writes.is_empty());
    for w in writes {
        let gfn = u64::from_str_radix(w.rsplit("0x").next().expect("gfn"), 16).expect("hex");
        assert!(gfn < first, "{w} is in the dictionary");
    }
    // Unmapped, and zeroed before: the guest does not get the history.
    assert_eq!(fake.runs.borrow().live.len(), 0);
    assert_eq!(fake.runs.borrow().returned_dirty, 0);
    fake.destroy_domain(built.domid).expect("destroy");
    assert_clean(&fake);
}

#[test]
fn kernels_that_are_not_xz_borrow_nothing() {
    let (elf, segs) = kimage::kernel();
    for (compression, image) in [
        (Compression::None, elf.clone()),
        (
            Compression::Gzip,
            kimage::bzimage(&kimage::gzip(&elf), elf.len()),
        ),
    ] {
        let mut fake = Fake::new();
        let built = build_pvh(&mut fake, spec(&image, 32)).expect("built");
        assert_eq!(fake.position("map_guest_run"), None, "{compression:?}");
        let d = &fake.domains[&built.domid];
        assert_eq!(d.read(segs[0].paddr, segs[0].data.len()), segs[0].data);
    }
}

#[test]
fn a_failure_at_each_step_leaves_nothing_behind() {
    let (image, _) = xz_kernel();
    let mut failures = 0;
    let mut map_failed = false;
    for n in 1.. {
        let mut fake = Fake::new();
        fake.fail_at = Some(n);
        let result = build_pvh(&mut fake, spec(&image, 32));
        let injected = fake.journal.iter().any(|l| l.ends_with(" failed"));
        map_failed |= fake.journal.iter().any(|l| l == "map_guest_run failed");
        fake.fail_at = None;
        if !injected {
            let built = result.expect("no failure: built");
            fake.destroy_domain(built.domid).expect("destroy");
            assert_clean(&fake);
            break;
        }
        result.expect_err("an injected failure fails the build");
        // The run was gone before the undo destroyed the domain.
        assert_clean(&fake);
        failures += 1;
    }
    assert!(map_failed, "the mapping was failed once");
    assert!(failures > 20, "{failures} steps failed in turn");
}

#[test]
fn a_mapping_failure_is_the_kernel_steps() {
    let (image, _) = xz_kernel();
    let mut fake = Fake::new();
    fake.fail_op = Some(("map_guest_run", 1));
    match build_pvh(&mut fake, spec(&image, 32)) {
        Err(BoardError::Platform {
            step: Step::LoadKernel,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_clean(&fake);
    // A run longer than dom0 can map is refused by the platform the same way.
    let mut fake = Fake::new();
    fake.max_run_bytes = 512 << 10;
    assert!(matches!(
        build_pvh(&mut fake, spec(&image, 32)),
        Err(BoardError::Platform {
            step: Step::LoadKernel,
            ..
        })
    ));
    assert_clean(&fake);
}

#[test]
fn a_write_failure_during_the_load_releases_the_run() {
    let (image, _) = xz_kernel();
    let mut fake = Fake::new();
    fake.fail_op = Some(("write_foreign", 3));
    match build_pvh(&mut fake, spec(&image, 32)) {
        Err(BoardError::Platform {
            step: Step::LoadKernel,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_clean(&fake);
}

#[test]
fn a_corrupt_stream_releases_the_run() {
    let (elf, _) = kimage::kernel();
    let mut payload = kimage::xz(&elf);
    let at = payload.len() / 2;
    payload[at] ^= 0x55;
    let image = kimage::bzimage(&payload, elf.len());
    let mut fake = Fake::new();
    assert_eq!(
        build_pvh(&mut fake, spec(&image, 32)),
        Err(BoardError::Kernel(KimageError::Corrupt(Compression::Xz)))
    );
    assert!(fake.position("map_guest_run").is_some());
    assert_clean(&fake);
}

#[test]
fn a_kernel_that_would_load_into_the_dictionary_is_refused_clearly() {
    // The fixture loads at 16 MiB; with 17 MiB the top 1 MiB (the
    // dictionary) starts at 16 MiB.
    let (image, _) = xz_kernel();
    let mut fake = Fake::new();
    let e = build_pvh(&mut fake, spec(&image, 17)).expect_err("no room");
    assert_eq!(
        e,
        BoardError::NoRoomForDictionary {
            dictionary: 1 << 20,
            low_ram: 17 << 20,
            at: Some(0x100_0000),
        }
    );
    assert!(e.to_string().contains("give the VM more memory"), "{e}");
    assert_clean(&fake);
    // A dictionary that fills low RAM by itself is refused before mapping.
    let mut fake = Fake::new();
    assert_eq!(
        build_pvh(&mut fake, spec(&image, 1)),
        Err(BoardError::NoRoomForDictionary {
            dictionary: 1 << 20,
            low_ram: 1 << 20,
            at: None,
        })
    );
    assert_eq!(fake.position("map_guest_run"), None);
    assert_clean(&fake);
}

#[test]
fn a_dictionary_bomb_is_refused_before_anything_is_mapped() {
    let (elf, _) = kimage::kernel();
    let mut x = kimage::xz(&elf);
    let prop = x.iter().position(|&b| b == 16).expect("dict property");
    x[prop] = 39; // 3 GiB
    let image = kimage::bzimage(&x, elf.len());
    let mut fake = Fake::new();
    assert_eq!(
        build_pvh(&mut fake, spec(&image, 4096)),
        Err(BoardError::Kernel(KimageError::TooLarge(
            Bound::Dictionary,
            3 << 30
        )))
    );
    assert_eq!(fake.position("map_guest_run"), None);
    assert_clean(&fake);
}

#[test]
fn the_fake_catches_a_domain_destroyed_while_mapped() {
    // The guard the tests above rely on: a run still held at destroy is a
    // leftover.
    let (image, _) = xz_kernel();
    let mut fake = Fake::new();
    let built = build_pvh(&mut fake, spec(&image, 32)).expect("built");
    let run = fake.map_guest_run(built.domid, 0, 1).expect("mapped");
    fake.destroy_domain(built.domid).expect("destroy");
    drop(run);
    assert_eq!(
        fake.leftovers(),
        vec![format!("domid {} destroyed while mapped", built.domid)]
    );
}

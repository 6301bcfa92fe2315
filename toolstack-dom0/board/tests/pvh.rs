//! The PVH build on the fake platform: the kernel streamed into guest
//! memory, the plan's pages, e820, params and boot vCPU, and a failure
//! injected at every step leaving nothing behind.

#[path = "../../kimage/tests/common/mod.rs"]
mod kimage;

use xcp_builder::{boot_records, PvhPlan};
use xcp_dom0_board::fake::{fake_hvm_context, Fake, FakeError};
use xcp_dom0_board::pvh::{build_pvh, Dictionary, PvhBuild, PvhBuilt, PvhSpec};
use xcp_dom0_board::{BoardError, Platform, Step};
use xen_abi::hvm::{
    HVM_PARAM_CONSOLE_EVTCHN, HVM_PARAM_CONSOLE_PFN, HVM_PARAM_STORE_EVTCHN, HVM_PARAM_STORE_PFN,
};
use xen_abi::hvm_save::offsets as o;
use xen_abi::hvm_start_info::XEN_HVM_START_MAGIC_VALUE;

const ENTRY: u64 = 0x100_0040;

/// The xenstore domain the tests' guests are introduced to.
const XS_DOMID: u16 = 1;

fn spec<'a>(kernel: &'a [u8], initrd: &'a [u8], memory_mib: u32) -> PvhSpec<'a> {
    PvhSpec {
        kernel,
        initrd,
        memory_mib,
        vcpus: 1,
        cmdline: "console=hvc0 earlyprintk=xen",
        handle: [7; 16],
        xenstore: Some(XS_DOMID),
        dictionary: Dictionary::Heap,
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

#[test]
fn a_pvh_build_puts_the_kernel_and_the_plan_in_guest_memory() {
    let (kernel, segs) = kimage::kernel();
    let initrd = kimage::bytes(9, 10_000);
    let mut fake = Fake::new();
    let built = build_pvh(&mut fake, spec(&kernel, &initrd, 64)).expect("built");
    let d = &fake.domains[&built.domid];
    assert!(d.paused && d.hvm, "a paused PVH domain");
    assert_eq!(d.handle, [7; 16]);
    assert_eq!(built.entry, ENTRY);
    // RAM, the ACPI page, two special pages.
    assert_eq!(d.pages, 64 * 256 + 1 + 2);
    assert!(d.paging_pool >= 1 << 20);
    for s in &segs {
        assert_eq!(
            d.read(s.paddr, s.data.len()),
            s.data,
            "segment at {:#x}",
            s.paddr
        );
        let bss = (s.memsz - s.data.len() as u64) as usize;
        assert_eq!(d.read(s.paddr + s.data.len() as u64, bss), vec![0; bss]);
    }
    // The plan the executor made, remade from what was loaded.
    let end = segs
        .iter()
        .map(|s| s.paddr + s.memsz)
        .max()
        .expect("segments");
    let plan = PvhPlan::new(&xcp_builder::PvhRequest {
        memory_bytes: 64 << 20,
        vcpus: 1,
        kernel: xcp_builder::LoadedKernel {
            start: 0x100_0000,
            end,
            entry: ENTRY,
        },
        cmdline: b"console=hvc0 earlyprintk=xen",
        initrd: Some(xcp_builder::InitrdRequest {
            len: initrd.len() as u64,
            at: None,
        }),
        special_pages: 2,
    })
    .expect("plan");
    let l = plan.layout();
    assert_eq!(d.e820, plan.e820_bytes());
    let magic = d.read(l.start_info, 4);
    assert_eq!(magic, XEN_HVM_START_MAGIC_VALUE.to_le_bytes());
    let r = l.initrd.expect("an initrd");
    assert_eq!(d.read(r.start, initrd.len()), initrd);
    assert_eq!(d.read(l.acpi.start, 8), b"RSD PTR ");
    assert_eq!(d.hvm_params[&HVM_PARAM_STORE_PFN], built.store_gfn);
    assert_eq!(d.hvm_params[&HVM_PARAM_CONSOLE_PFN], built.console_gfn);
    assert_eq!(built.store_gfn, l.xenstore_pfn());
    let store_port = built.store_port.expect("a xenstore ring");
    assert_eq!(d.hvm_params[&HVM_PARAM_STORE_EVTCHN], u64::from(store_port));
    assert_eq!(
        d.hvm_params[&HVM_PARAM_CONSOLE_EVTCHN],
        u64::from(built.console_port)
    );
    // The grant seed: the table left the guest's physmap again, and its
    // reserved refs grant the console ring to dom0 and the xenstore ring
    // to the xenstore domain, by gfn.
    assert_eq!(d.grant_table_gfn, None);
    for (gref, entry) in plan.gnttab_seed(0, Some(XS_DOMID)) {
        let at = gref as usize * 8;
        assert_eq!(d.grant_frame[at..at + 8], entry, "grant ref {gref}");
    }
    assert_eq!(&d.grant_frame[10..12], &XS_DOMID.to_le_bytes());
    let records = d.hvm_context.clone().expect("the boot vCPU is set");
    assert_eq!(
        records,
        boot_records(&fake_hvm_context(), &plan.vcpu_context()).expect("records")
    );
    let cpu = 8 + 24 + 8;
    let rip = &records[cpu + o::OFF_CPU_RIP..cpu + o::OFF_CPU_RIP + 8];
    assert_eq!(rip, ENTRY.to_le_bytes());
    let rbx = &records[cpu + o::OFF_CPU_RBX..cpu + o::OFF_CPU_RBX + 8];
    assert_eq!(rbx, l.start_info.to_le_bytes());
    // The caller runs it, and its destroy leaves nothing.
    fake.unpause_domain(built.domid).expect("unpause");
    fake.destroy_domain(built.domid).expect("destroy");
    assert_clean(&fake);
}

#[test]
fn compressed_kernels_load_the_same() {
    let (elf, segs) = kimage::kernel();
    for image in [
        kimage::bzimage(&kimage::gzip(&elf), elf.len()),
        kimage::bzimage(&kimage::xz(&elf), elf.len()),
    ] {
        let mut fake = Fake::new();
        let built = build_pvh(&mut fake, spec(&image, &[], 32)).expect("built");
        let d = &fake.domains[&built.domid];
        assert_eq!(d.read(segs[0].paddr, segs[0].data.len()), segs[0].data);
        assert!(d.hvm_context.is_some());
    }
}

#[test]
fn a_lent_dictionary_is_used_for_xz() {
    let (elf, segs) = kimage::kernel();
    let image = kimage::bzimage(&kimage::xz(&elf), elf.len());
    let mut dictionary = vec![0u8; 1 << 20];
    let mut fake = Fake::new();
    let mut s = spec(&image, &[], 32);
    s.dictionary = Dictionary::Lent(&mut dictionary);
    let built = build_pvh(&mut fake, s).expect("built");
    let d = &fake.domains[&built.domid];
    assert_eq!(d.read(segs[1].paddr, segs[1].data.len()), segs[1].data);
}

/// Fails each platform call of `build` in turn (a fresh fake each time)
/// until a build injects no failure: every failed build leaves nothing
/// behind (`check` looks at its error), and so does the destroy of the
/// one that succeeds. Returns how many calls were failed.
fn fail_each_call(
    mut build: impl FnMut(&mut Fake) -> Result<PvhBuilt, BoardError<FakeError>>,
    check: impl Fn(&BoardError<FakeError>),
) -> usize {
    let mut failures = 0;
    for n in 1.. {
        let mut fake = Fake::new();
        fake.fail_at = Some(n);
        let result = build(&mut fake);
        let injected = fake.journal.iter().any(|l| l.ends_with(" failed"));
        fake.fail_at = None;
        if !injected {
            let built = result.expect("no failure: built");
            fake.destroy_domain(built.domid).expect("destroy");
            assert_clean(&fake);
            break;
        }
        check(&result.expect_err("an injected failure fails the build"));
        assert_clean(&fake);
        failures += 1;
    }
    failures
}

#[test]
fn a_failure_at_each_step_leaves_nothing_behind() {
    let (kernel, _) = kimage::kernel();
    let initrd = kimage::bytes(9, 5000);
    let failures = fail_each_call(
        |fake| build_pvh(fake, spec(&kernel, &initrd, 32)),
        |e| {
            // The destroy itself is never the failing call here: undo runs after.
            assert!(!matches!(
                e,
                BoardError::Platform {
                    step: Step::Unpause,
                    ..
                }
            ));
        },
    );
    // createdomain, max_mem, paging pool, 2 populates (low RAM; ACPI and
    // special), kernel pages, e820, plan pages, 2 ports, 4 params, get and
    // set context: every one of them was failed once.
    assert!(failures > 20, "{failures} steps failed in turn");
}

#[test]
fn the_failing_step_is_named() {
    let (kernel, _) = kimage::kernel();
    for (op, step) in [
        ("create_domain", Step::CreateDomain),
        ("set_max_vcpus", Step::MaxVcpus),
        ("set_max_mem", Step::MaxMem),
        ("set_paging_pool", Step::PagingPool),
        ("populate_gfns", Step::PopulatePhysmap),
        ("set_memory_map", Step::MemoryMap),
        ("alloc_unbound_for", Step::ConsolePort),
        (
            "set_hvm_param",
            Step::HvmParam {
                index: xen_abi::hvm::HVM_PARAM_TIMER_MODE,
            },
        ),
        ("hvm_context", Step::HvmContext),
        ("set_hvm_context", Step::HvmContext),
        ("write_foreign", Step::LoadKernel),
    ] {
        let mut fake = Fake::new();
        fake.fail_op = Some((op, 1));
        match build_pvh(&mut fake, spec(&kernel, &[], 32)) {
            Err(BoardError::Platform { step: s, .. }) => assert_eq!(s, step, "{op}"),
            other => panic!("{op}: {other:?}"),
        }
        assert_clean(&fake);
    }
}

#[test]
fn a_kernel_outside_the_guests_ram_is_refused() {
    // The fixture loads at 16 MiB: a 16 MiB guest has no room for it.
    let (kernel, _) = kimage::kernel();
    let mut fake = Fake::new();
    match build_pvh(&mut fake, spec(&kernel, &[], 16)) {
        Err(BoardError::Kernel(xcp_kimage::KimageError::SinkRefused(r))) => {
            assert_eq!(r.paddr, 0x100_0000)
        }
        other => panic!("{other:?}"),
    }
    assert!(!fake.journal.iter().any(|l| l.starts_with("write_foreign")));
    assert_clean(&fake);
}

#[test]
fn a_kernel_without_a_pvh_entry_is_refused() {
    let segs = [kimage::Seg {
        paddr: 0x100_0000,
        data: kimage::bytes(1, 5000),
        memsz: 5000,
    }];
    let kernel = kimage::elf(&segs, &[], &[]);
    let mut fake = Fake::new();
    assert_eq!(
        build_pvh(&mut fake, spec(&kernel, &[], 32)),
        Err(BoardError::Kernel(xcp_kimage::KimageError::MissingPvhEntry))
    );
    assert_clean(&fake);
}

#[test]
fn without_xenstore_the_store_params_stay_unset() {
    let (kernel, _) = kimage::kernel();
    let mut fake = Fake::new();
    let mut s = spec(&kernel, &[], 32);
    s.xenstore = None;
    let built = build_pvh(&mut fake, s).expect("built");
    assert_eq!(built.store_port, None);
    let d = &fake.domains[&built.domid];
    assert!(!d.hvm_params.contains_key(&HVM_PARAM_STORE_PFN));
    assert!(!d.hvm_params.contains_key(&HVM_PARAM_STORE_EVTCHN));
    assert_eq!(d.hvm_params[&HVM_PARAM_CONSOLE_PFN], built.console_gfn);
    assert_eq!(d.ports, 1, "only the console's port");
    // Only the console's grant: no xenstore domain may map anything.
    assert_eq!(d.grant_frame[8..16], [0; 8]);
    assert_eq!(&d.grant_frame[2..4], &0u16.to_le_bytes());
}

/// The stepped build of `spec`: create, steps until low RAM is in, finish;
/// the steps taken.
fn build_in_steps(
    fake: &mut Fake,
    spec: PvhSpec<'_>,
) -> (
    Result<xcp_dom0_board::pvh::PvhBuilt, BoardError<xcp_dom0_board::fake::FakeError>>,
    u32,
) {
    let mut build = match PvhBuild::create(fake, &spec) {
        Ok(b) => b,
        Err(e) => return (Err(e), 0),
    };
    let mut steps = 0;
    loop {
        steps += 1;
        match build.step(fake) {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => {
                build.abort(fake);
                return (Err(e), steps);
            }
        }
    }
    (build.finish(fake, spec), steps)
}

#[test]
fn a_build_in_steps_makes_the_same_domain_a_bounded_run_at_a_time() {
    let (kernel, _) = kimage::kernel();
    let initrd = kimage::bytes(9, 10_000);
    let mut whole = Fake::new();
    let once = build_pvh(&mut whole, spec(&kernel, &initrd, 64)).expect("built");
    let mut fake = Fake::new();
    let (built, steps) = build_in_steps(&mut fake, spec(&kernel, &initrd, 64));
    let built = built.expect("built in steps");
    // 64 MiB of low RAM, 16 MiB a step.
    assert_eq!(steps, 4);
    assert_eq!(built, once);
    let (a, b) = (&whole.domains[&once.domid], &fake.domains[&built.domid]);
    assert_eq!(a.pages, b.pages);
    assert_eq!(a.e820, b.e820);
    assert_eq!(a.hvm_params, b.hvm_params);
    assert_eq!(a.hvm_context, b.hvm_context);
    assert_eq!(a.read(0x100_0000, 4096), b.read(0x100_0000, 4096));
    fake.destroy_domain(built.domid).expect("destroy");
    assert_clean(&fake);
}

#[test]
fn a_build_in_steps_given_up_or_failing_anywhere_leaves_nothing() {
    let (kernel, _) = kimage::kernel();
    let initrd = kimage::bytes(9, 5000);
    // Given up after each step.
    for after in 0..3 {
        let mut fake = Fake::new();
        let s = spec(&kernel, &initrd, 48);
        let mut build = PvhBuild::create(&mut fake, &s).expect("created");
        for _ in 0..after {
            build.step(&mut fake).expect("step");
        }
        build.abort(&mut fake);
        assert_clean(&fake);
    }
    // A failure at each call.
    let failures = fail_each_call(
        |fake| build_in_steps(fake, spec(&kernel, &initrd, 48)).0,
        |_| {},
    );
    assert!(failures > 20, "{failures} steps failed in turn");
}

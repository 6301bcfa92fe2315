//! GRUB's PV image (`grub-mkimage -O x86_64-xen`, the bundle's
//! `pvgrub-pv.elf`, built by `cargo xtask build` into target/xcp) is
//! planned as Xen's libxc plans it: VIRT_BASE 0, entry 0, no hypercall
//! page note, a module segment whose offset and address disagree modulo
//! its alignment. Skipped (with a note) before the build; `cargo xtask
//! test` runs it after with `XCP_REQUIRE_KERNELS=1`.

mod common;

use common::*;
use xcp_builder::*;

#[test]
fn grub_pv_image_plans_with_its_low_virt_base() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/xcp/pvgrub-x86_64-xen.elf");
    let image = match std::fs::read(&path) {
        Ok(image) => image,
        Err(e) if std::env::var_os("XCP_REQUIRE_KERNELS").is_some() => {
            panic!("{}: {e}", path.display())
        }
        Err(_) => {
            eprintln!("skipping: {} not built", path.display());
            return;
        }
    };
    let req = BuildRequest {
        memory_pages: 65536,
        cmdline: b"",
        module_len: 0,
        vcpus: 1,
    };
    let plan = PvPlan::new(&image, &req).expect("GRUB's PV image plans");
    let l = *plan.layout();
    assert_eq!((l.virt_base, l.entry), (0, 0));
    assert!(l.virt_kend > 0x40_0000, "GRUB's heap is in its image");
    check_invariants(&plan);
    check_walk(&plan, &fake_p2m(65536));
}

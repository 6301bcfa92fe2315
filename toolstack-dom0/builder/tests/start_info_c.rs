//! start_info offsets against the C header, and the bytes of a start_info.
//!
//! Compiles a tiny C program against /usr/include/xen/xen.h (Debian
//! `libxen-dev`) that prints `offsetof()` of every field we write, and the
//! SIF_*, FLAT_KERNEL_*, VGCF_*, shared_info and grant-entry layout.

mod common;

use std::process::Command;

use common::*;
use xcp_builder::*;

const C_PROGRAM: &str = r#"
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <xen/xen.h>
#include <xen/grant_table.h>
#define P(f) printf(#f " %zu\n", offsetof(struct start_info, f))
int main(void) {
    P(magic); P(nr_pages); P(shared_info); P(flags); P(store_mfn);
    P(store_evtchn); P(console.domU.mfn); P(console.domU.evtchn); P(pt_base);
    P(nr_pt_frames); P(mfn_list); P(mod_start); P(mod_len); P(cmd_line);
    P(first_p2m_pfn); P(nr_p2m_frames);
    printf("sizeof %zu\n", sizeof(struct start_info));
    printf("MAX_GUEST_CMDLINE %d\n", MAX_GUEST_CMDLINE);
    printf("SIF_MOD_START_PFN %d\n", SIF_MOD_START_PFN);
    printf("SIF_PRIVILEGED %d\n", SIF_PRIVILEGED);
    printf("SIF_INITDOMAIN %d\n", SIF_INITDOMAIN);
    printf("FLAT_KERNEL_CS %d\n", FLAT_KERNEL_CS);
    printf("FLAT_KERNEL_SS %d\n", FLAT_KERNEL_SS);
    printf("FLAT_KERNEL_DS %d\n", FLAT_KERNEL_DS);
    printf("VGCF_in_kernel %d\n", VGCF_in_kernel);
    printf("VGCF_online %d\n", VGCF_online);
    printf("XEN_LEGACY_MAX_VCPUS %d\n", XEN_LEGACY_MAX_VCPUS);
    printf("sizeof_vcpu_info %zu\n", sizeof(struct vcpu_info));
    printf("evtchn_upcall_mask %zu\n", offsetof(struct vcpu_info, evtchn_upcall_mask));
    printf("vcpu_info_in_shared_info %zu\n", offsetof(struct shared_info, vcpu_info));
    printf("sizeof_shared_info %zu\n", sizeof(struct shared_info));
    printf("GNTTAB_RESERVED_CONSOLE %d\n", GNTTAB_RESERVED_CONSOLE);
    printf("GNTTAB_RESERVED_XENSTORE %d\n", GNTTAB_RESERVED_XENSTORE);
    printf("GTF_permit_access %d\n", GTF_permit_access);
    printf("sizeof_grant_entry_v1 %zu\n", sizeof(grant_entry_v1_t));
    printf("grant_domid %zu\n", offsetof(grant_entry_v1_t, domid));
    printf("grant_frame %zu\n", offsetof(grant_entry_v1_t, frame));
    return 0;
}
"#;

#[test]
fn offsets_match_c_header() {
    assert!(
        std::path::Path::new("/usr/include/xen/xen.h").exists(),
        "/usr/include/xen/xen.h is missing: apt-get install libxen-dev"
    );
    let dir = std::env::temp_dir().join(format!("xcp-builder-si-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("si.c");
    let exe = dir.join("si");
    std::fs::write(&src, C_PROGRAM).unwrap();
    let out = Command::new("cc")
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .output()
        .expect("run cc (apt-get install gcc)");
    assert!(
        out.status.success(),
        "cc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(&exe).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let expect: [(&str, usize); 37] = [
        ("magic", OFF_MAGIC),
        ("nr_pages", OFF_NR_PAGES),
        ("shared_info", OFF_SHARED_INFO),
        ("flags", OFF_FLAGS),
        ("store_mfn", OFF_STORE_MFN),
        ("store_evtchn", OFF_STORE_EVTCHN),
        ("console.domU.mfn", OFF_CONSOLE_MFN),
        ("console.domU.evtchn", OFF_CONSOLE_EVTCHN),
        ("pt_base", OFF_PT_BASE),
        ("nr_pt_frames", OFF_NR_PT_FRAMES),
        ("mfn_list", OFF_MFN_LIST),
        ("mod_start", OFF_MOD_START),
        ("mod_len", OFF_MOD_LEN),
        ("cmd_line", OFF_CMD_LINE),
        ("first_p2m_pfn", OFF_FIRST_P2M_PFN),
        ("nr_p2m_frames", OFF_NR_P2M_FRAMES),
        ("sizeof", START_INFO_SIZE),
        ("MAX_GUEST_CMDLINE", MAX_GUEST_CMDLINE),
        ("SIF_MOD_START_PFN", SIF_MOD_START_PFN as usize),
        ("SIF_PRIVILEGED", SIF_PRIVILEGED as usize),
        ("SIF_INITDOMAIN", SIF_INITDOMAIN as usize),
        ("FLAT_KERNEL_CS", FLAT_KERNEL_CS as usize),
        ("FLAT_KERNEL_SS", FLAT_KERNEL_SS as usize),
        ("FLAT_KERNEL_DS", FLAT_KERNEL_DS as usize),
        ("VGCF_in_kernel", VGCF_IN_KERNEL as usize),
        ("VGCF_online", VGCF_ONLINE as usize),
        ("XEN_LEGACY_MAX_VCPUS", XEN_LEGACY_MAX_VCPUS),
        ("sizeof_vcpu_info", VCPU_INFO_SIZE),
        ("evtchn_upcall_mask", OFF_EVTCHN_UPCALL_MASK),
        ("vcpu_info_in_shared_info", 0),
        ("sizeof_shared_info", SHARED_INFO_SIZE),
        ("GNTTAB_RESERVED_CONSOLE", GNTTAB_RESERVED_CONSOLE as usize),
        (
            "GNTTAB_RESERVED_XENSTORE",
            GNTTAB_RESERVED_XENSTORE as usize,
        ),
        ("GTF_permit_access", GTF_PERMIT_ACCESS as usize),
        ("sizeof_grant_entry_v1", GRANT_ENTRY_V1_SIZE),
        ("grant_domid", 2),
        ("grant_frame", 4),
    ];
    for (name, value) in expect {
        let line = text
            .lines()
            .find(|l| l.rsplit_once(' ').map(|(n, _)| n) == Some(name))
            .unwrap_or_else(|| panic!("{name} not printed"));
        let c: usize = line.rsplit_once(' ').unwrap().1.parse().unwrap();
        assert_eq!(value, c, "{name}: ours {value}, C {c}");
    }
}

fn u64_at(p: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(p[off..off + 8].try_into().unwrap())
}

fn u32_at(p: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(p[off..off + 4].try_into().unwrap())
}

#[test]
fn start_info_bytes() {
    let plan = plan_of(&Fixture::valid(), 2048).unwrap();
    let p2m = fake_p2m(2048);
    let l = *plan.layout();
    let args = StartInfoArgs {
        shared_info_maddr: 0x1234_5000,
        store_evtchn: 3,
        console_evtchn: 4,
        flags: 0,
    };
    let p = plan.start_info(&p2m, &args).unwrap();
    assert_eq!(&p[..15], b"xen-3.0-x86_64\0");
    assert_eq!(u64_at(&p, OFF_NR_PAGES), 2048);
    assert_eq!(u64_at(&p, OFF_SHARED_INFO), 0x1234_5000);
    assert_eq!(u32_at(&p, OFF_FLAGS), 0);
    assert_eq!(u64_at(&p, OFF_STORE_MFN), p2m[l.xenstore_pfn as usize]);
    assert_eq!(u32_at(&p, OFF_STORE_EVTCHN), 3);
    assert_eq!(u64_at(&p, OFF_CONSOLE_MFN), p2m[l.console_pfn as usize]);
    assert_eq!(u32_at(&p, OFF_CONSOLE_EVTCHN), 4);
    assert_eq!(u64_at(&p, OFF_PT_BASE), VIRT_BASE + 13 * 4096);
    assert_eq!(u64_at(&p, OFF_NR_PT_FRAMES), 5);
    assert_eq!(u64_at(&p, OFF_MFN_LIST), VIRT_BASE + 6 * 4096);
    assert_eq!(u64_at(&p, OFF_MOD_START), 0);
    assert_eq!(u64_at(&p, OFF_MOD_LEN), 0);
    assert_eq!(&p[OFF_CMD_LINE..OFF_CMD_LINE + 13], b"console=hvc0\0");
    // Only set for an INIT_P2M layout (libxc): ours keeps them 0.
    assert_eq!(u64_at(&p, OFF_FIRST_P2M_PFN), 0);
    assert_eq!(u64_at(&p, OFF_NR_P2M_FRAMES), 0);
    assert!(p[START_INFO_SIZE..].iter().all(|&b| b == 0));
}

#[test]
fn longest_cmdline_stays_nul_terminated() {
    let image = Fixture::valid().build();
    let cmdline = vec![b'x'; MAX_GUEST_CMDLINE - 1];
    let req = BuildRequest {
        memory_pages: 2048,
        cmdline: &cmdline,
        module_len: 0,
        vcpus: 1,
    };
    let plan = PvPlan::new(&image, &req).unwrap();
    let p = plan
        .start_info(&fake_p2m(2048), &StartInfoArgs::default())
        .unwrap();
    assert_eq!(p[OFF_CMD_LINE + MAX_GUEST_CMDLINE - 2], b'x');
    assert_eq!(p[OFF_CMD_LINE + MAX_GUEST_CMDLINE - 1], 0);
    let long = vec![b'x'; MAX_GUEST_CMDLINE];
    let req = BuildRequest {
        cmdline: &long,
        ..req
    };
    assert_eq!(PvPlan::new(&image, &req).unwrap_err(), Error::BadCmdline);
    let req = BuildRequest {
        cmdline: b"a\0b",
        ..req
    };
    assert_eq!(PvPlan::new(&image, &req).unwrap_err(), Error::BadCmdline);
}

#[test]
fn module_in_start_info() {
    let image = Fixture::valid().build();
    let module: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
    let req = BuildRequest {
        memory_pages: 4096,
        cmdline: b"",
        module_len: module.len() as u64,
        vcpus: 1,
    };
    let plan = PvPlan::new(&image, &req).unwrap();
    let l = *plan.layout();
    assert_eq!(l.module, PfnRange { start: 6, count: 3 });
    assert_eq!(l.p2m.start, 9);
    let p2m = fake_p2m(4096);
    let p = plan.start_info(&p2m, &StartInfoArgs::default()).unwrap();
    assert_eq!(u64_at(&p, OFF_MOD_START), VIRT_BASE + 6 * 4096);
    assert_eq!(u64_at(&p, OFF_MOD_LEN), 10_000);
    let args = StartInfoArgs {
        flags: SIF_MOD_START_PFN,
        ..Default::default()
    };
    let p = plan.start_info(&p2m, &args).unwrap();
    assert_eq!(u64_at(&p, OFF_MOD_START), 6);
    assert_eq!(u32_at(&p, OFF_FLAGS), SIF_MOD_START_PFN);
    let mut page = [0u8; 4096];
    plan.write_module_page(&module, 8, &mut page).unwrap();
    assert_eq!(&page[..10_000 - 8192], &module[8192..]);
    assert!(page[10_000 - 8192..].iter().all(|&b| b == 0));
}

#[test]
fn gnttab_seed_entries() {
    let plan = plan_of(&Fixture::valid(), 2048).unwrap();
    let p2m = fake_p2m(2048);
    let l = plan.layout();
    let seed = gnttab_seed(l, &p2m, 0, 1).unwrap();
    assert_eq!(seed[0].0, 0);
    assert_eq!(seed[0].1[2..4], [0, 0]);
    assert_eq!(
        seed[0].1[4..8],
        (p2m[l.console_pfn as usize] as u32).to_le_bytes()
    );
    assert_eq!(seed[1].0, 1);
    assert_eq!(seed[1].1[2..4], [1, 0]);
    assert_eq!(
        seed[1].1[4..8],
        (p2m[l.xenstore_pfn as usize] as u32).to_le_bytes()
    );
    let mut big = p2m.clone();
    big[l.console_pfn as usize] = 1 << 32;
    assert_eq!(gnttab_seed(l, &big, 0, 1).err(), Some(Error::MfnTooLarge));
}

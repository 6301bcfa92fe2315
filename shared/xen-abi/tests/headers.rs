//! Pins every size, offset and value of xen-abi to the numbers of the Xen
//! 4.17 public headers, hard-coded here (read from Debian `libxen-dev`
//! 4.17, /usr/include/xen) so the test runs on machines without them.
//! xen-sys's `tests/abi_layout.rs` additionally compiles C against the
//! installed headers where they exist.

use core::mem::{align_of, offset_of, size_of};

use xen_abi::domctl::*;
use xen_abi::elfnote::*;
use xen_abi::event_channel::*;
use xen_abi::grant_table::*;
use xen_abi::hvm::*;
use xen_abi::hvm_start_info::*;
use xen_abi::hvm_vcpu::*;
use xen_abi::io::console::*;
use xen_abi::io::xs_wire::*;
use xen_abi::memory::*;
use xen_abi::sched::*;
use xen_abi::vcpu::*;
use xen_abi::xen::*;

/// xen.h (with arch-x86/xen.h, arch-x86/xen-x86_64.h): `struct start_info`,
/// x86_64.
#[test]
fn start_info_matches_xen_h() {
    assert_eq!(size_of::<StartInfo>(), 1168);
    assert_eq!(align_of::<StartInfo>(), 8);
    let offsets = [
        (start_info::OFF_MAGIC, 0),
        (start_info::OFF_NR_PAGES, 32),
        (start_info::OFF_SHARED_INFO, 40),
        (start_info::OFF_FLAGS, 48),
        (start_info::OFF_STORE_MFN, 56),
        (start_info::OFF_STORE_EVTCHN, 64),
        (start_info::OFF_CONSOLE_MFN, 72),
        (start_info::OFF_CONSOLE_EVTCHN, 80),
        (start_info::OFF_PT_BASE, 88),
        (start_info::OFF_NR_PT_FRAMES, 96),
        (start_info::OFF_MFN_LIST, 104),
        (start_info::OFF_MOD_START, 112),
        (start_info::OFF_MOD_LEN, 120),
        (start_info::OFF_CMD_LINE, 128),
        (start_info::OFF_FIRST_P2M_PFN, 1152),
        (start_info::OFF_NR_P2M_FRAMES, 1160),
        (start_info::OFF_END, 1168),
    ];
    for (i, (ours, header)) in offsets.into_iter().enumerate() {
        assert_eq!(ours, header, "start_info offset #{i}");
    }
    // The console union: domU {mfn, evtchn}, dom0 {info_off, info_size}.
    assert_eq!(size_of::<StartInfoConsole>(), 16);
    assert_eq!(offset_of!(StartInfoConsoleDom0, info_size), 4);
    assert_eq!(MAX_GUEST_CMDLINE, 1024);
    assert_eq!(START_INFO_MAGIC_PREFIX, b"xen-3.0-x86_64");
    assert_eq!(
        [
            SIF_PRIVILEGED,
            SIF_INITDOMAIN,
            SIF_MULTIBOOT_MOD,
            SIF_MOD_START_PFN,
            SIF_VIRT_P2M_4TOOLS
        ],
        [1, 2, 4, 8, 16]
    );
}

/// xen.h: `struct vcpu_info`, `struct vcpu_time_info`, `struct
/// shared_info` (x86_64, `XEN_LEGACY_MAX_VCPUS` 32).
#[test]
fn shared_info_matches_xen_h() {
    assert_eq!(XEN_LEGACY_MAX_VCPUS, 32);
    assert_eq!(size_of::<VcpuTimeInfo>(), 32);
    assert_eq!(size_of::<VcpuInfo>(), 64);
    assert_eq!(offset_of!(VcpuInfo, evtchn_upcall_mask), 1);
    assert_eq!(offset_of!(VcpuInfo, evtchn_pending_sel), 8);
    assert_eq!(offset_of!(VcpuInfo, arch), 16);
    assert_eq!(offset_of!(VcpuInfo, time), 32);
    assert_eq!(size_of::<SharedInfo>(), 3136);
    assert_eq!(offset_of!(SharedInfo, evtchn_pending), 2048);
    assert_eq!(offset_of!(SharedInfo, evtchn_mask), 2560);
    assert_eq!(offset_of!(SharedInfo, wc_version), 3072);
    assert_eq!(offset_of!(SharedInfo, wc_sec_hi), 3084);
    assert_eq!(offset_of!(SharedInfo, arch), 3088);
    assert_eq!(shared_info::OFF_VCPU_INFO_STRIDE, 64);
    assert_eq!(shared_info::OFF_EVTCHN_UPCALL_MASK, 1);
    assert_eq!(shared_info::OFF_END, 3136);
    assert_eq!(size_of::<MmuUpdate>(), 16);
    assert_eq!(size_of::<MmuextOp>(), 24);
    assert_eq!(
        (DOMID_SELF, DOMID_IO, DOMID_XEN, DOMID_INVALID),
        (0x7FF0, 0x7FF1, 0x7FF2, 0x7FF4)
    );
    assert_eq!(xen_abi::PAGE_SIZE, 4096);
}

/// io/console.h: `struct xencons_interface`.
#[test]
fn console_ring_matches_io_console_h() {
    assert_eq!(size_of::<XenconsInterface>(), 3088);
    assert_eq!((XENCONS_IN_SIZE, XENCONS_OUT_SIZE), (1024, 2048));
    assert_eq!(
        [
            OFF_IN,
            OFF_OUT,
            OFF_IN_CONS,
            OFF_IN_PROD,
            OFF_OUT_CONS,
            OFF_OUT_PROD
        ],
        [0, 1024, 3072, 3076, 3080, 3084]
    );
}

/// io/xs_wire.h: `struct xenstore_domain_interface`, `struct xsd_sockmsg`,
/// `enum xsd_sockmsg_type`, the limits, features, connection and error
/// values, and `xsd_errors[]`.
#[test]
fn xenstore_ring_and_wire_match_io_xs_wire_h() {
    assert_eq!(size_of::<XenstoreDomainInterface>(), 2076);
    assert_eq!(
        [
            OFF_REQ,
            OFF_RSP,
            OFF_REQ_CONS,
            OFF_REQ_PROD,
            OFF_RSP_CONS,
            OFF_RSP_PROD,
            OFF_SERVER_FEATURES,
            OFF_CONNECTION,
            OFF_ERROR
        ],
        [0, 1024, 2048, 2052, 2056, 2060, 2064, 2068, 2072]
    );
    assert_eq!(size_of::<XsdSockmsg>(), 16);
    assert_eq!(XSD_SOCKMSG_SIZE, 16);
    assert_eq!(XENSTORE_RING_SIZE, 1024);
    assert_eq!(XENSTORE_PAYLOAD_MAX, 4096);
    assert_eq!(XENSTORE_ABS_PATH_MAX, 3072);
    assert_eq!(XENSTORE_REL_PATH_MAX, 2048);
    assert_eq!(
        (
            XENSTORE_SERVER_FEATURE_RECONNECTION,
            XENSTORE_SERVER_FEATURE_ERROR
        ),
        (1, 2)
    );
    assert_eq!((XENSTORE_CONNECTED, XENSTORE_RECONNECT), (0, 1));
    assert_eq!(
        [
            XENSTORE_ERROR_NONE,
            XENSTORE_ERROR_COMM,
            XENSTORE_ERROR_RINGIDX,
            XENSTORE_ERROR_PROTO
        ],
        [0, 1, 2, 3]
    );
    // The enum counts from 0; XS_RESET_WATCHES = XS_SET_TARGET + 2.
    let codes = [
        XS_CONTROL,
        XS_DIRECTORY,
        XS_READ,
        XS_GET_PERMS,
        XS_WATCH,
        XS_UNWATCH,
        XS_TRANSACTION_START,
        XS_TRANSACTION_END,
        XS_INTRODUCE,
        XS_RELEASE,
        XS_GET_DOMAIN_PATH,
        XS_WRITE,
        XS_MKDIR,
        XS_RM,
        XS_SET_PERMS,
        XS_WATCH_EVENT,
        XS_ERROR,
        XS_IS_DOMAIN_INTRODUCED,
        XS_RESUME,
        XS_SET_TARGET,
    ];
    for (i, code) in codes.into_iter().enumerate() {
        assert_eq!(code, i as u32);
    }
    assert_eq!((XS_RESET_WATCHES, XS_DIRECTORY_PART), (21, 22));
    assert_eq!((XS_TYPE_COUNT, XS_INVALID), (23, 0xffff));
    // Xen 4.18's additions, after the 4.17 count.
    assert_eq!(
        [XS_GET_FEATURE, XS_SET_FEATURE, XS_GET_QUOTA, XS_SET_QUOTA],
        [23, 24, 25, 26]
    );
    assert_eq!((XS_WATCH_PATH, XS_WATCH_TOKEN), (0, 1));
    assert_eq!(
        [XS_WRITE_NONE, XS_WRITE_CREATE, XS_WRITE_CREATE_EXCL],
        ["NONE", "CREATE", "CREATE|EXCL"]
    );
    assert_eq!(
        XSD_ERRORS,
        [
            "EINVAL",
            "EACCES",
            "EEXIST",
            "EISDIR",
            "ENOENT",
            "ENOMEM",
            "ENOSPC",
            "EIO",
            "ENOTEMPTY",
            "ENOSYS",
            "EROFS",
            "EBUSY",
            "EAGAIN",
            "EISCONN",
            "E2BIG",
            "EPERM"
        ]
    );
    // docs/misc/xenstore.txt: permissions are a letter and a domid.
    assert_eq!(
        [XS_PERM_NONE, XS_PERM_READ, XS_PERM_WRITE, XS_PERM_BOTH],
        *b"nrwb"
    );
}

/// elfnote.h.
#[test]
fn elf_notes_match_elfnote_h() {
    let notes = [
        XEN_ELFNOTE_INFO,
        XEN_ELFNOTE_ENTRY,
        XEN_ELFNOTE_HYPERCALL_PAGE,
        XEN_ELFNOTE_VIRT_BASE,
        XEN_ELFNOTE_PADDR_OFFSET,
        XEN_ELFNOTE_XEN_VERSION,
        XEN_ELFNOTE_GUEST_OS,
        XEN_ELFNOTE_GUEST_VERSION,
        XEN_ELFNOTE_LOADER,
        XEN_ELFNOTE_PAE_MODE,
        XEN_ELFNOTE_FEATURES,
        XEN_ELFNOTE_BSD_SYMTAB,
        XEN_ELFNOTE_HV_START_LOW,
        XEN_ELFNOTE_L1_MFN_VALID,
        XEN_ELFNOTE_SUSPEND_CANCEL,
        XEN_ELFNOTE_INIT_P2M,
        XEN_ELFNOTE_MOD_START_PFN,
        XEN_ELFNOTE_SUPPORTED_FEATURES,
        XEN_ELFNOTE_PHYS32_ENTRY,
    ];
    for (i, note) in notes.into_iter().enumerate() {
        assert_eq!(note, i as u32);
    }
    assert_eq!(XEN_ELFNOTE_MAX, 18);
    assert_eq!(
        (XEN_ELFNOTE_CRASH_INFO, XEN_ELFNOTE_CRASH_REGS),
        (0x1000001, 0x1000002)
    );
    assert_eq!(
        [
            XEN_ELFNOTE_DUMPCORE_NONE,
            XEN_ELFNOTE_DUMPCORE_HEADER,
            XEN_ELFNOTE_DUMPCORE_XEN_VERSION,
            XEN_ELFNOTE_DUMPCORE_FORMAT_VERSION
        ],
        [0x2000000, 0x2000001, 0x2000002, 0x2000003]
    );
    assert_eq!(XEN_ELFNOTE_OWNER, b"Xen\0");
}

/// xen.h (`VIRQ_*`), sched.h (`SHUTDOWN_*`), domctl.h (`XEN_DOMINF_*`).
#[test]
fn virqs_shutdown_codes_and_dominf_match_the_headers() {
    assert_eq!(
        [
            VIRQ_TIMER,
            VIRQ_DEBUG,
            VIRQ_CONSOLE,
            VIRQ_DOM_EXC,
            VIRQ_TBUF,
            VIRQ_DEBUGGER,
            VIRQ_XENOPROF,
            VIRQ_CON_RING,
            VIRQ_PCPU_STATE,
            VIRQ_MEM_EVENT,
            VIRQ_ARGO,
            VIRQ_ENOMEM,
            VIRQ_XENPMU,
            VIRQ_ARCH_0,
            NR_VIRQS
        ],
        [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 16, 24]
    );
    assert_eq!(
        [
            SHUTDOWN_POWEROFF,
            SHUTDOWN_REBOOT,
            SHUTDOWN_SUSPEND,
            SHUTDOWN_CRASH,
            SHUTDOWN_WATCHDOG,
            SHUTDOWN_SOFT_RESET
        ],
        [0, 1, 2, 3, 4, 5]
    );
    assert_eq!(
        [
            XEN_DOMINF_DYING,
            XEN_DOMINF_HVM_GUEST,
            XEN_DOMINF_SHUTDOWN,
            XEN_DOMINF_PAUSED,
            XEN_DOMINF_BLOCKED,
            XEN_DOMINF_RUNNING,
            XEN_DOMINF_DEBUGGED,
            XEN_DOMINF_XS_DOMAIN,
            XEN_DOMINF_HAP
        ],
        [1, 2, 4, 8, 16, 32, 64, 128, 256]
    );
    assert_eq!(
        (XEN_DOMINF_SHUTDOWNMASK, XEN_DOMINF_SHUTDOWNSHIFT),
        (255, 16)
    );
}

/// grant_table.h: `grant_entry_v1_t`, `GTF_*`, `GNTTAB_RESERVED_*`.
#[test]
fn grant_entry_matches_grant_table_h() {
    assert_eq!(size_of::<GrantEntryV1>(), 8);
    assert_eq!(
        [OFF_GRANT_FLAGS, OFF_GRANT_DOMID, OFF_GRANT_FRAME],
        [0, 2, 4]
    );
    assert_eq!(
        (
            GNTTAB_NR_RESERVED_ENTRIES,
            GNTTAB_RESERVED_CONSOLE,
            GNTTAB_RESERVED_XENSTORE
        ),
        (8, 0, 1)
    );
    assert_eq!(
        [
            GTF_INVALID,
            GTF_PERMIT_ACCESS,
            GTF_ACCEPT_TRANSFER,
            GTF_TRANSITIVE,
            GTF_TYPE_MASK,
            GTF_READONLY,
            GTF_READING,
            GTF_WRITING,
            GTF_PWT,
            GTF_PCD,
            GTF_PAT,
            GTF_SUB_PAGE
        ],
        [0, 1, 2, 3, 3, 4, 8, 16, 32, 64, 128, 256]
    );
}

/// arch-x86/xen.h (`VGCF_*`), arch-x86/xen-x86_64.h (`FLAT_KERNEL_*64`).
#[test]
fn vcpu_flags_and_selectors_match_arch_x86() {
    assert_eq!(
        [
            VGCF_I387_VALID,
            VGCF_IN_KERNEL,
            VGCF_FAILSAFE_DISABLES_EVENTS,
            VGCF_SYSCALL_DISABLES_EVENTS,
            VGCF_ONLINE,
            VGCF_IN_SYSCALL
        ],
        [1, 4, 8, 16, 32, 256]
    );
    assert_eq!(
        (FLAT_KERNEL_CS64, FLAT_KERNEL_SS64, FLAT_KERNEL_DS64),
        (0xe033, 0xe02b, 0)
    );
}

/// arch-x86/hvm/start_info.h: `struct hvm_start_info` (version 1),
/// `hvm_modlist_entry`, `hvm_memmap_table_entry`, the magic and the types.
#[test]
fn hvm_start_info_matches_start_info_h() {
    use xen_abi::hvm_start_info::offsets as o;
    assert_eq!(XEN_HVM_START_MAGIC_VALUE, 0x336e_c578);
    assert_eq!(size_of::<HvmStartInfo>(), 56);
    let offsets = [
        (o::OFF_MAGIC, 0),
        (o::OFF_VERSION, 4),
        (o::OFF_FLAGS, 8),
        (o::OFF_NR_MODULES, 12),
        (o::OFF_MODLIST_PADDR, 16),
        (o::OFF_CMDLINE_PADDR, 24),
        (o::OFF_RSDP_PADDR, 32),
        (o::OFF_MEMMAP_PADDR, 40),
        (o::OFF_MEMMAP_ENTRIES, 48),
        (o::OFF_END, 56),
        (o::OFF_MOD_PADDR, 0),
        (o::OFF_MOD_SIZE, 8),
        (o::OFF_MOD_CMDLINE_PADDR, 16),
        (o::OFF_MOD_END, 32),
        (o::OFF_MEMMAP_ADDR, 0),
        (o::OFF_MEMMAP_SIZE, 8),
        (o::OFF_MEMMAP_TYPE, 16),
        (o::OFF_MEMMAP_END, 24),
    ];
    for (i, (ours, header)) in offsets.into_iter().enumerate() {
        assert_eq!(ours, header, "hvm_start_info offset #{i}");
    }
    assert_eq!(
        [
            XEN_HVM_MEMMAP_TYPE_RAM,
            XEN_HVM_MEMMAP_TYPE_RESERVED,
            XEN_HVM_MEMMAP_TYPE_ACPI,
            XEN_HVM_MEMMAP_TYPE_NVS,
            XEN_HVM_MEMMAP_TYPE_UNUSABLE,
            XEN_HVM_MEMMAP_TYPE_DISABLED,
            XEN_HVM_MEMMAP_TYPE_PMEM
        ],
        [1, 2, 3, 4, 5, 6, 7]
    );
}

/// memory.h: the BIOS-format e820 entry of `XENMEM_{set_,}memory_map`.
#[test]
fn e820_entry_is_the_bios_format() {
    use xen_abi::memory::e820;
    assert_eq!(size_of::<E820Entry>(), 20);
    assert_eq!(align_of::<E820Entry>(), 1);
    assert_eq!(
        (
            e820::OFF_ADDR,
            e820::OFF_SIZE,
            e820::OFF_TYPE,
            e820::OFF_END
        ),
        (0, 8, 16, 20)
    );
}

/// hvm/params.h: the indices the PVH builder sets.
#[test]
fn hvm_params_match_params_h() {
    assert_eq!(HVM_PARAM_CALLBACK_IRQ, 0);
    assert_eq!(HVM_PARAM_STORE_PFN, 1);
    assert_eq!(HVM_PARAM_STORE_EVTCHN, 2);
    assert_eq!(HVM_PARAM_IDENT_PT, 12);
    assert_eq!(HVM_PARAM_CONSOLE_PFN, 17);
    assert_eq!(HVM_PARAM_CONSOLE_EVTCHN, 18);
    assert_eq!(HVM_PARAM_PAGING_RING_PFN, 27);
    assert_eq!(HVM_PARAM_MONITOR_RING_PFN, 28);
    assert_eq!(HVM_PARAM_SHARING_RING_PFN, 29);
    assert_eq!(HVM_NR_PARAMS, 39);
}

/// hvm/hvm_vcpu.h: `struct vcpu_hvm_context` and its 32-bit registers.
#[test]
fn vcpu_hvm_context_matches_hvm_vcpu_h() {
    use xen_abi::hvm_vcpu::offsets as o;
    assert_eq!((VCPU_HVM_MODE_32B, VCPU_HVM_MODE_64B), (0, 1));
    assert_eq!(size_of::<VcpuHvmX86_32>(), 120);
    assert_eq!(size_of::<VcpuHvmX86_64>(), 112);
    assert_eq!(size_of::<VcpuHvmContext>(), 128);
    assert_eq!(offset_of!(VcpuHvmX86_32, efer), 56);
    assert_eq!(offset_of!(VcpuHvmX86_32, tr_limit), 100);
    assert_eq!(offset_of!(VcpuHvmX86_32, pad2), 114);
    assert_eq!(offset_of!(VcpuHvmX86_64, efer), 104);
    let offsets = [
        (o::OFF_MODE, 0),
        (o::OFF_EBX, 20),
        (o::OFF_EIP, 40),
        (o::OFF_EFLAGS, 44),
        (o::OFF_CR0, 48),
        (o::OFF_CR4, 56),
        (o::OFF_CS_BASE, 72),
        (o::OFF_CS_LIMIT, 92),
        (o::OFF_CS_AR, 112),
        (o::OFF_END, 128),
    ];
    for (i, (ours, header)) in offsets.into_iter().enumerate() {
        assert_eq!(ours, header, "vcpu_hvm_context offset #{i}");
    }
}

/// domctl.h, arch-x86/xen.h: createdomain flags.
#[test]
fn createdomain_flags_match_domctl_h() {
    assert_eq!(XEN_DOMCTL_CDF_HVM, 1);
    assert_eq!(XEN_DOMCTL_CDF_HAP, 2);
    assert_eq!(XEN_DOMCTL_CDF_XS_DOMAIN, 16);
    assert_eq!(XEN_DOMCTL_CDF_IOMMU, 32);
    assert_eq!(XEN_X86_EMU_LAPIC, 1);
    assert_eq!(XEN_X86_EMU_ALL, 0x7ff);
}

/// hvm/save.h, arch-x86/hvm/save.h: the save descriptor, `hvm_hw_cpu`,
/// `hvm_hw_mtrr` and the record codes (numbers from a C program compiled
/// against libxen-dev 4.17).
#[test]
fn hvm_save_records_match_save_h() {
    use xen_abi::hvm_save::offsets as o;
    use xen_abi::hvm_save::*;
    assert_eq!(
        (
            HVM_SAVE_CODE_END,
            HVM_SAVE_CODE_HEADER,
            HVM_SAVE_CODE_CPU,
            HVM_SAVE_CODE_MTRR
        ),
        (0, 1, 2, 14)
    );
    let offsets = [
        (o::OFF_DESCRIPTOR_END, 8),
        (o::OFF_CPU_END, 1032),
        (o::OFF_MTRR_END, 240),
        (o::OFF_CPU_RBX, 520),
        (o::OFF_CPU_RIP, 640),
        (o::OFF_CPU_RFLAGS, 648),
        (o::OFF_CPU_CR0, 656),
        (o::OFF_CPU_DR6, 720),
        (o::OFF_CPU_DR7, 728),
        (o::OFF_CPU_LIMITS, 768),
        (o::OFF_CPU_LIMITS + 4 * seg::SS, 788),
        (o::OFF_CPU_LIMITS + 4 * seg::TR, 792),
        (o::OFF_CPU_BASES, 808),
        (o::OFF_CPU_BASES + 8 * seg::TR, 856),
        (o::OFF_CPU_ARBYTES, 888),
        (o::OFF_CPU_ARBYTES + 4 * seg::TR, 912),
        (o::OFF_CPU_EFER, 992),
        (o::OFF_MTRR_DEF_TYPE, 232),
    ];
    for (i, (ours, header)) in offsets.into_iter().enumerate() {
        assert_eq!(ours, header, "hvm save offset #{i}");
    }
}

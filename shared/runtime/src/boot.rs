//! PV entry: the Xen ELF notes, `_start`, and the bring-up sequence that
//! ends in the kernel's `main`.
//!
//! Read first: xen/include/public/elfnote.h. Xen enters `_start` in 64-bit
//! mode on its own small stack with `%rsi` = start_info; we switch to our
//! stack in .bss and call `xcp_rust_start`.

use xen_sys::elfnote;
use xen_sys::version::XENFEAT_DOM0;
use xen_sys::xen::{StartInfo, SIF_INITDOMAIN, SIF_PRIVILEGED, START_INFO_MAGIC_PREFIX};

use crate::console::{self, Console};

const STACK_SIZE: usize = 256 * 1024;

#[repr(C, align(4096))]
struct Stack([u8; STACK_SIZE]);

#[no_mangle]
static mut XCP_BOOT_STACK: Stack = Stack([0; STACK_SIZE]);

// The notes Xen's ELF loader reads (owner "Xen"): GUEST_OS, XEN_VERSION,
// LOADER, VIRT_BASE, PADDR_OFFSET, ENTRY, HYPERCALL_PAGE and
// SUPPORTED_FEATURES (XENFEAT_dom0), their types from xen-abi's elfnote.h.
core::arch::global_asm!(
    ".macro xen_note type, kind, value",
    ".balign 4",
    ".long 4",
    ".long 3f - 2f",
    ".long \\type",
    ".asciz \"Xen\"",
    ".balign 4",
    "2: \\kind \\value",
    "3: .balign 4",
    ".endm",
    ".macro xen_note_str type, value",
    ".balign 4",
    ".long 4",
    ".long 3f - 2f",
    ".long \\type",
    ".asciz \"Xen\"",
    ".balign 4",
    "2: .asciz \"\\value\"",
    "3: .balign 4",
    ".endm",
    ".pushsection .note.Xen, \"a\", @note",
    "xen_note_str {guest_os}, xcp-rs",
    "xen_note_str {xen_version}, xen-3.0",
    "xen_note_str {loader}, generic",
    "xen_note {virt_base}, .quad, 0xffffffff80000000",
    "xen_note {paddr_offset}, .quad, 0xffffffff80000000",
    "xen_note {entry}, .quad, _start",
    "xen_note {hypercall_page}, .quad, hypercall_page",
    "xen_note {supported_features}, .long, {dom0_feature}",
    ".popsection",
    ".pushsection .text._start, \"ax\"",
    ".globl _start",
    "_start:",
    "cld",
    "lea rsp, [rip + {stack} + {size}]",
    "mov rdi, rsi",
    "call {start}",
    "ud2",
    ".popsection",
    stack = sym XCP_BOOT_STACK,
    size = const STACK_SIZE,
    start = sym xcp_rust_start,
    guest_os = const elfnote::XEN_ELFNOTE_GUEST_OS,
    xen_version = const elfnote::XEN_ELFNOTE_XEN_VERSION,
    loader = const elfnote::XEN_ELFNOTE_LOADER,
    virt_base = const elfnote::XEN_ELFNOTE_VIRT_BASE,
    paddr_offset = const elfnote::XEN_ELFNOTE_PADDR_OFFSET,
    entry = const elfnote::XEN_ELFNOTE_ENTRY,
    hypercall_page = const elfnote::XEN_ELFNOTE_HYPERCALL_PAGE,
    supported_features = const elfnote::XEN_ELFNOTE_SUPPORTED_FEATURES,
    dom0_feature = const 1u32 << XENFEAT_DOM0,
);

/// What the kernel's `main` receives.
pub struct Boot {
    /// Xen's start_info, as it was at entry.
    pub start_info: &'static StartInfo,
    /// The domain's command line.
    pub cmdline: &'static str,
    /// The boot module (dom0: the platform bundle).
    pub module: Option<&'static [u8]>,
    /// Frames the domain owns.
    pub nr_pages: u64,
    /// Bytes given to the heap.
    pub heap_bytes: usize,
    /// SIF_PRIVILEGED: may use privileged hypercalls.
    pub privileged: bool,
    /// SIF_INITDOMAIN: this is dom0.
    pub initdomain: bool,
}

extern "Rust" {
    fn __xcp_main(boot: Boot) -> !;
    fn __xcp_domain_name() -> &'static str;
    fn __xcp_frame_pool_cap() -> u64;
}

extern "C" fn xcp_rust_start(si: *const StartInfo) -> ! {
    // SAFETY: Xen passes a valid start_info in the initial mapping, which is
    // never unmapped or written by us.
    let si: &'static StartInfo = unsafe { &*si };
    let initdomain = si.flags & SIF_INITDOMAIN != 0;
    if initdomain {
        console::init(Console::Hypervisor);
    } else {
        // SAFETY: reading the domU arm of the union, which is what Xen (or
        // our domain builder) filled for an unprivileged domain.
        let domu = unsafe { si.console.domu };
        let page = crate::paging::pfn_to_va(crate::paging::mfn_to_pfn(domu.mfn));
        console::init(Console::Ring {
            page: page as usize,
            evtchn: domu.evtchn,
        });
    }
    // SAFETY: provided by the kernel through `entry!`.
    let name = unsafe { __xcp_domain_name() };
    crate::logger::init(name);
    if !si.magic.starts_with(START_INFO_MAGIC_PREFIX) {
        panic!("start_info magic is not xen-3.0-x86_64");
    }
    // SAFETY: first and only call, before any other memory use.
    let memory = unsafe { crate::paging::init(si, __xcp_frame_pool_cap()) };
    // SAFETY: paging::init reserved this range of the direct map for the heap.
    unsafe { crate::heap::init(memory.heap_start, memory.heap_bytes) };
    // SAFETY: once, after paging::init and the heap.
    unsafe { crate::paging::init_window(si) };
    if let Some(shared) = crate::paging::shared_info() {
        crate::time::init(shared);
    }
    let boot = Boot {
        start_info: si,
        cmdline: crate::cmdline::from_start_info(&si.cmd_line),
        module: crate::paging::boot_module(si),
        nr_pages: crate::paging::nr_pages(),
        heap_bytes: memory.heap_bytes,
        privileged: si.flags & SIF_PRIVILEGED != 0,
        initdomain,
    };
    // SAFETY: provided by the kernel through `entry!`.
    unsafe { __xcp_main(boot) }
}

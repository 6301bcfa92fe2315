//! Everything tinyvm does to the machine: all its `unsafe`.
//!
//! Read first: xen docs/misc/pvh.pandoc (the 32-bit entry state),
//! xen/include/public/elfnote.h, xen/include/public/arch-x86/cpuid.h (the
//! hypervisor leaves and the hypercall-page MSR), xen/include/public/xen.h
//! (`shared_info`), Intel SDM vol. 3 §9.8.5 (entering long mode).
//!
//! The trampoline builds an identity map of the low 4 GiB with 2 MiB pages
//! (the image at 1 MiB, RAM, and the special pages just below 0xff000000
//! all live there), turns on PAE, `EFER.LME` and paging, loads a 64-bit
//! GDT and calls `tinyvm_main(start_info)` on a static stack. Interrupts
//! stay off for ever: the guest waits with `SCHEDOP_poll`.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use talc::{ClaimOnOom, Span, Talc, Talck};
use xcp_ring::SharedPage;
use xcp_tinyvm::store::Channel;
use xen_abi::hvm::{
    HVM_PARAM_CONSOLE_EVTCHN, HVM_PARAM_CONSOLE_PFN, HVM_PARAM_STORE_EVTCHN, HVM_PARAM_STORE_PFN,
};
use xen_abi::hvm_start_info::XEN_HVM_START_MAGIC_VALUE;
use xen_abi::xen::{DomId, EvtchnPort, SharedInfo, DOMID_SELF};
use xen_sys::memory::XENMAPSPACE_SHARED_INFO;

const PAGE: usize = 4096;

// The entry, its page tables and stack, and the Xen notes. Xen enters
// `_start32` (XEN_ELFNOTE_PHYS32_ENTRY) in flat 32-bit protected mode,
// paging off, interrupts off, `%ebx` = hvm_start_info's physical address.
core::arch::global_asm!(
    r#"
    .pushsection .text.boot32, "ax", @progbits
    .code32
    .globl _start32
_start32:
    cli
    cld
    movl %ebx, %esi
    /* Zero .bss (page tables, stack, heap). */
    movl $__bss_start, %edi
    movl $__bss_end, %ecx
    subl %edi, %ecx
    xorl %eax, %eax
    rep stosb
    /* PML4[0] -> PDPT; PDPT[0..4] -> the four PDs. */
    movl $tinyvm_pdpt, %eax
    orl $3, %eax
    movl %eax, tinyvm_pml4
    movl $tinyvm_pd, %eax
    orl $3, %eax
    xorl %ecx, %ecx
1:  movl %eax, tinyvm_pdpt(,%ecx,8)
    addl $4096, %eax
    incl %ecx
    cmpl $4, %ecx
    jne 1b
    /* 2048 PD entries: 2 MiB pages, present | writable | PS. */
    movl $0x83, %eax
    xorl %ecx, %ecx
2:  movl %eax, tinyvm_pd(,%ecx,8)
    addl $0x200000, %eax
    incl %ecx
    cmpl $2048, %ecx
    jne 2b
    movl $tinyvm_pml4, %eax
    movl %eax, %cr3
    movl %cr4, %eax
    orl $0x20, %eax             /* CR4.PAE */
    movl %eax, %cr4
    movl $0xc0000080, %ecx      /* EFER */
    rdmsr
    orl $0x100, %eax            /* EFER.LME */
    wrmsr
    movl %cr0, %eax
    orl $0x80000001, %eax       /* CR0.PG | CR0.PE */
    movl %eax, %cr0
    lgdt tinyvm_gdt_pointer
    ljmp $0x08, $3f
    .code64
3:  movl $0x10, %eax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
    movq $tinyvm_stack_top, %rsp
    movl %esi, %edi
    call tinyvm_main
    ud2
    .popsection

    .pushsection .rodata.tinyvm_gdt, "a", @progbits
    .balign 16
tinyvm_gdt:
    .quad 0
    .quad 0x00af9a000000ffff    /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff    /* 0x10: data */
tinyvm_gdt_pointer:
    .word tinyvm_gdt_pointer - tinyvm_gdt - 1
    .long tinyvm_gdt
    .popsection

    .pushsection .bss.tinyvm_boot, "aw", @nobits
    .balign 4096
tinyvm_pml4: .skip 4096
tinyvm_pdpt: .skip 4096
tinyvm_pd: .skip 4 * 4096
tinyvm_stack: .skip 16384
tinyvm_stack_top:
    .popsection

    .pushsection .note.Xen, "a", @note
    .balign 4
    .long 4, 8f - 7f, 6         /* XEN_ELFNOTE_GUEST_OS */
    .asciz "Xen"
7:  .asciz "tinyvm"
8:  .balign 4
    .long 4, 8f - 7f, 5         /* XEN_ELFNOTE_XEN_VERSION */
    .asciz "Xen"
7:  .asciz "xen-3.0"
8:  .balign 4
    .long 4, 8f - 7f, 8         /* XEN_ELFNOTE_LOADER */
    .asciz "Xen"
7:  .asciz "generic"
8:  .balign 4
    .long 4, 4, 18              /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .long _start32
    .popsection
    "#,
    options(att_syntax)
);

/// Heap bytes: the xenstore client's one message in and one out (each at
/// most 16 + 4096 bytes) and the log lines, with room to spare.
const HEAP: usize = 32 * 1024;

/// A page-aligned page of the image's own memory.
#[repr(C, align(4096))]
struct Frame(UnsafeCell<[u8; PAGE]>);

// SAFETY: one vCPU and no interrupts: nothing runs concurrently with the
// code that touches a frame (only Xen, through the atomics below).
unsafe impl Sync for Frame {}

static mut ARENA: [u8; HEAP] = [0; HEAP];

#[global_allocator]
// SAFETY: ARENA is used by nothing but this allocator (its only mention).
static ALLOCATOR: Talck<spin::Mutex<()>, ClaimOnOom> =
    Talc::new(unsafe { ClaimOnOom::new(Span::from_array(core::ptr::addr_of_mut!(ARENA))) }).lock();

/// Where Xen's shared_info page is mapped (`XENMAPSPACE_shared_info`).
static SHARED_INFO: Frame = Frame(UnsafeCell::new([0; PAGE]));

/// One byte to Xen's debug port.
fn debug_byte(byte: u8) {
    // SAFETY: port 0xE9 is Xen's HVM debug port: writing it only makes Xen
    // buffer and print the byte; no memory is touched.
    unsafe { core::arch::asm!("out 0xe9, al", in("al") byte, options(nomem, nostack)) };
}

/// `line` and a newline on Xen's debug port: Xen prints `(dN) line` on
/// its console (with `guest_loglvl=all`).
pub fn debug_line(line: &str) {
    for &byte in line.as_bytes() {
        debug_byte(byte);
    }
    debug_byte(b'\n');
}

/// Finds Xen's CPUID leaves and writes the hypercall page's address to
/// the MSR they name: Xen fills the page with the stubs xen-sys calls.
pub fn install_hypercall_page() -> Result<(), &'static str> {
    extern "C" {
        /// xen-sys's page of stubs (`.text.hypercall_page`), int3 until
        /// Xen fills it.
        static hypercall_page: [u8; PAGE];
    }
    for base in (0x4000_0000u32..0x4001_0000).step_by(0x100) {
        let id = core::arch::x86_64::__cpuid(base);
        let xen = id.ebx == u32::from_le_bytes(*b"XenV")
            && id.ecx == u32::from_le_bytes(*b"MMXe")
            && id.edx == u32::from_le_bytes(*b"nVMM");
        if !xen || id.eax < base + 2 {
            continue;
        }
        let msr = core::arch::x86_64::__cpuid(base + 2).ebx;
        // Identity mapped: the symbol's address is its physical address.
        let page = core::ptr::addr_of!(hypercall_page) as u64;
        // SAFETY: Xen's hypercall-page MSR: Xen writes the stubs into the
        // page at `page`, which is xen-sys's page of int3 in our text,
        // reserved for exactly this; nothing else lives there.
        unsafe {
            core::arch::asm!(
                "wrmsr",
                in("ecx") msr,
                in("eax") page as u32,
                in("edx") (page >> 32) as u32,
                options(nostack),
            )
        };
        return Ok(());
    }
    Err("tinyvm: no Xen CPUID leaves: cannot make hypercalls")
}

/// Whether `hvm_start_info` at `addr` starts with its magic.
pub fn start_info_magic_ok(addr: u32) -> bool {
    if addr == 0 || !addr.is_multiple_of(4) {
        return false;
    }
    // SAFETY: Xen passes the physical address of the start-info page,
    // which lies in our RAM (identity mapped) and is 4-aligned (checked).
    let magic = unsafe { core::ptr::read_volatile(addr as usize as *const u32) };
    magic == XEN_HVM_START_MAGIC_VALUE
}

fn param(index: u32) -> Option<u64> {
    // SAFETY: the hypercall page is installed before anything asks.
    unsafe { xen_sys::hvm::get_param(DOMID_SELF, index) }.ok()
}

/// A page the builder shares with a backend (the console or xenstore
/// ring), reached through the identity map.
pub struct RingPage(*mut u8);

impl RingPage {
    /// The page at guest frame `pfn`, if it lies in the identity map.
    fn at(pfn: u64) -> Option<RingPage> {
        (pfn != 0 && pfn < (4 << 30) / PAGE as u64)
            .then(|| RingPage((pfn as usize * PAGE) as *mut u8))
    }

    fn byte(&self, offset: usize) -> *mut u8 {
        assert!(offset < PAGE, "offset inside the page");
        self.0.wrapping_add(offset)
    }
}

impl SharedPage for RingPage {
    fn len(&self) -> usize {
        PAGE
    }

    fn read(&self, offset: usize, out: &mut [u8]) {
        for (i, b) in out.iter_mut().enumerate() {
            // SAFETY: a byte of the mapped page (`byte` checks the bound);
            // the backend may write it any time: volatile, copied once.
            *b = unsafe { core::ptr::read_volatile(self.byte(offset + i)) };
        }
    }

    fn write(&self, offset: usize, data: &[u8]) {
        for (i, &b) in data.iter().enumerate() {
            // SAFETY: as in `read`.
            unsafe { core::ptr::write_volatile(self.byte(offset + i), b) };
        }
    }

    fn load_u32(&self, offset: usize) -> u32 {
        assert!(
            offset.is_multiple_of(4) && offset + 4 <= PAGE,
            "aligned index"
        );
        // SAFETY: 4-aligned and inside the page (checked); the page is only
        // accessed atomically or bytewise-volatile at this offset.
        unsafe { AtomicU32::from_ptr(self.byte(offset).cast()) }.load(Ordering::Acquire)
    }

    fn store_u32(&self, offset: usize, v: u32) {
        assert!(
            offset.is_multiple_of(4) && offset + 4 <= PAGE,
            "aligned index"
        );
        // SAFETY: as in `load_u32`.
        unsafe { AtomicU32::from_ptr(self.byte(offset).cast()) }.store(v, Ordering::Release)
    }
}

fn notify(port: EvtchnPort) {
    // SAFETY: EVTCHNOP_send on our own port; hypercalls are installed.
    let _ = unsafe { xen_sys::event_channel::send(port) };
}

/// The PV console ring, written when it has room.
pub struct Console {
    page: RingPage,
    port: EvtchnPort,
}

impl Console {
    /// The console the builder set up, if any.
    pub fn open() -> Option<Console> {
        let page = RingPage::at(param(HVM_PARAM_CONSOLE_PFN)?)?;
        let port = EvtchnPort::try_from(param(HVM_PARAM_CONSOLE_EVTCHN)?).ok()?;
        Some(Console { page, port })
    }

    /// `line` into the ring if it fits whole (never waits: dom0 relays
    /// only a few consoles).
    pub fn put_line(&self, line: &str) {
        if xcp_tinyvm::console::put_line(&self.page, line.as_bytes()) {
            notify(self.port);
        }
    }
}

/// The xenstore event channel, waited on with `SCHEDOP_poll`.
pub struct StoreChannel {
    port: EvtchnPort,
}

impl Channel for StoreChannel {
    fn notify(&mut self) {
        notify(self.port);
    }

    fn wait(&mut self) {
        // SAFETY: hypercalls are installed; the port array lives across it.
        let _ = unsafe { xen_sys::sched::poll(&[self.port], 0) };
        // Clear the pending bit (else the next poll returns at once); the
        // caller looks at the ring after this, so nothing is missed.
        let word = (self.port / 64) as usize;
        let offset = core::mem::offset_of!(SharedInfo, evtchn_pending) + word * 8;
        if word < 64 {
            let at = SHARED_INFO.0.get().cast::<u8>().wrapping_add(offset);
            // SAFETY: inside the shared_info frame (word < 64), 8-aligned;
            // Xen sets these bits atomically, so we clear them atomically.
            unsafe { AtomicU64::from_ptr(at.cast()) }
                .fetch_and(!(1u64 << (self.port % 64)), Ordering::SeqCst);
        }
    }
}

/// Maps shared_info at [`SHARED_INFO`] and returns the xenstore ring and
/// channel, if the builder gave the guest xenstore.
pub fn xenstore() -> Option<(RingPage, StoreChannel)> {
    let page = RingPage::at(param(HVM_PARAM_STORE_PFN)?)?;
    let port = EvtchnPort::try_from(param(HVM_PARAM_STORE_EVTCHN)?).ok()?;
    let gpfn = SHARED_INFO.0.get() as u64 / PAGE as u64;
    let domid: DomId = DOMID_SELF;
    // SAFETY: SHARED_INFO is a page of our own, used only through the
    // atomics in `StoreChannel::wait` after this; Xen replaces its RAM
    // page with shared_info.
    unsafe { xen_sys::memory::add_to_physmap(domid, XENMAPSPACE_SHARED_INFO, 0, gpfn) }.ok()?;
    Some((page, StoreChannel { port }))
}

/// Ends the domain with `reason` (`SHUTDOWN_*`).
pub fn shutdown(reason: u32) -> ! {
    // SAFETY: hypercalls are installed; Xen does not return on success.
    unsafe { xen_sys::sched::shutdown(reason) };
    halt()
}

/// Waits for ever (each wake-up by an event goes back to sleep).
pub fn halt() -> ! {
    loop {
        // SAFETY: SCHEDOP_poll with no port blocks until any event; an
        // empty array is valid for the call.
        let _ = unsafe { xen_sys::sched::poll(&[], 0) };
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    struct Debug;
    impl core::fmt::Write for Debug {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            s.bytes().for_each(debug_byte);
            Ok(())
        }
    }
    let _ = core::fmt::write(&mut Debug, format_args!("tinyvm: panic: {info}"));
    debug_byte(b'\n');
    shutdown(xen_abi::sched::SHUTDOWN_CRASH)
}

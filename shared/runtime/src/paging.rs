//! Memory of a 64-bit PV domain: the direct map, the frame allocator and the
//! reserved window for foreign and grant mappings.
//!
//! Read first: xen/include/public/xen.h ("MMU-UPDATE REQUESTS") and
//! arch-x86/xen-x86_64.h. Xen builds the initial mapping at VIRT_BASE with
//! pseudo-physical frame `pfn` at `VIRT_BASE + pfn * 4096`. We extend that same
//! linear mapping to every frame of the domain (the direct map), so a pfn's
//! address is always `pfn_to_va(pfn)`. Page-table pages are never mapped
//! writable (Xen refuses to use them otherwise): each new one is zeroed, then
//! remapped read-only, then hooked into its parent with `mmu_update`.
//!
//! The window is a separate 4 MiB range with its own tables and no frames
//! behind it; slot 0 holds shared_info, the rest are handed out for foreign
//! frames (the domain builder) and grant mappings. Above it, under the same
//! L2 table, runs of foreign frames are mapped on demand
//! ([`crate::foreign_run`]).

use core::sync::atomic::{AtomicUsize, Ordering};

use xen_sys::xen::{
    MmuUpdate, SharedInfo, StartInfo, DOMID_SELF, PTE_ACCESSED, PTE_ADDR_MASK, PTE_DIRTY,
    PTE_PRESENT, PTE_RW, PTE_USER, SIF_MOD_START_PFN, UVMF_INVLPG,
};

use crate::frames::{FrameAllocator, FrameError, Pfn};
use crate::slots::Slots;

/// Where Xen maps the image and where the direct map lives (`XEN_ELFNOTE_VIRT_BASE`).
pub const VIRT_BASE: u64 = 0xffff_ffff_8000_0000;
/// Frames the direct map can cover: the 2 GiB from VIRT_BASE to the top.
pub const MAX_DIRECT_PAGES: u64 = 1 << 19;
/// Start of the reserved window.
pub const WINDOW_BASE: u64 = 0xffff_c900_0000_0000;
/// Page slots in the window (4 MiB).
pub const WINDOW_PAGES: usize = 1024;

const PAGE: u64 = xen_sys::PAGE_SIZE as u64;
pub(crate) const TABLE_PROT: u64 = PTE_PRESENT | PTE_RW | PTE_USER | PTE_ACCESSED | PTE_DIRTY;
pub(crate) const DATA_PROT: u64 = PTE_PRESENT | PTE_RW | PTE_USER | PTE_ACCESSED | PTE_DIRTY;
pub(crate) const RO_PROT: u64 = PTE_PRESENT | PTE_USER | PTE_ACCESSED;

struct State {
    p2m: usize,
    nr_pages: u64,
}

static STATE: spin::Once<State> = spin::Once::new();
static SHARED_INFO: AtomicUsize = AtomicUsize::new(0);
static FRAMES: spin::Mutex<Option<FrameAllocator>> = spin::Mutex::new(None);
static WINDOW: spin::Mutex<Option<Slots>> = spin::Mutex::new(None);

/// The virtual address of pseudo-physical frame `pfn` in the direct map.
pub fn pfn_to_va(pfn: Pfn) -> u64 {
    VIRT_BASE + pfn * PAGE
}

/// The pfn behind a direct-map address.
pub fn va_to_pfn(va: u64) -> Pfn {
    (va - VIRT_BASE) / PAGE
}

/// Number of frames the domain owns.
pub fn nr_pages() -> u64 {
    STATE.get().map_or(0, |s| s.nr_pages)
}

/// The machine frame behind `pfn` (from the P2M list), if `pfn` is ours.
pub fn pfn_to_mfn(pfn: Pfn) -> Option<u64> {
    let state = STATE.get()?;
    if pfn >= state.nr_pages {
        return None;
    }
    // SAFETY: the P2M list Xen built has nr_pages entries and stays mapped.
    Some(unsafe { core::ptr::read_volatile((state.p2m as *const u64).add(pfn as usize)) })
}

/// The pfn Xen's M2P table gives for machine frame `mfn`.
pub fn mfn_to_pfn(mfn: u64) -> Pfn {
    // SAFETY: we are a 64-bit PV guest, so the M2P table is mapped; Xen
    // returns garbage (not a fault) for frames that are not ours.
    unsafe { xen_sys::xen::machine_to_phys(mfn) }
}

/// Points P2M entry `pfn` at `mfn` (after XENMEM_exchange gave the domain
/// a new frame for `pfn`).
///
/// # Safety
/// The caller makes the direct map and the M2P agree with the new entry
/// before anything reads `pfn`'s memory or machine address again.
pub(crate) unsafe fn set_pfn_to_mfn(pfn: Pfn, mfn: u64) {
    let state = STATE.get().expect("paging is initialised");
    assert!(pfn < state.nr_pages, "pfn {pfn} is not ours");
    // SAFETY: the P2M list Xen built is ours, writable, nr_pages entries
    // long (checked above) and mapped for the domain's life.
    unsafe { core::ptr::write_volatile((state.p2m as *mut u64).add(pfn as usize), mfn) };
}

/// Machine address of a direct-map address (for DMA and hypercalls).
pub fn virt_to_machine(va: u64) -> Option<u64> {
    pfn_to_mfn(va_to_pfn(va)).map(|mfn| (mfn << 12) | (va & (PAGE - 1)))
}

/// The mapped shared_info page, once boot mapped it.
pub fn shared_info() -> Option<*mut SharedInfo> {
    match SHARED_INFO.load(Ordering::Acquire) {
        0 => None,
        va => Some(va as *mut SharedInfo),
    }
}

/// Takes one free frame (mapped, contents undefined).
pub fn alloc_frame() -> Result<Pfn, FrameError> {
    FRAMES
        .lock()
        .as_mut()
        .ok_or(FrameError::OutOfFrames)?
        .alloc()
}

/// Gives a frame back.
pub fn free_frame(pfn: Pfn) -> Result<(), FrameError> {
    FRAMES
        .lock()
        .as_mut()
        .ok_or(FrameError::NotAllocated(pfn))?
        .free(pfn)
}

/// Frames the frame allocator can still hand out.
pub fn free_frames() -> u64 {
    FRAMES.lock().as_ref().map_or(0, |f| f.free_frames())
}

/// Frames the frame allocator manages, and how many are (and were at
/// most) handed out.
pub fn frame_use() -> (u64, crate::usage::Meter) {
    FRAMES
        .lock()
        .as_ref()
        .map_or((0, crate::usage::Meter::new()), |f| {
            (f.total_frames(), f.used())
        })
}

fn table_index(va: u64, level: u32) -> usize {
    ((va >> (12 + 9 * (level - 1))) & 511) as usize
}

/// The direct-map address of the table an entry points to.
fn table_va(entry: u64) -> u64 {
    pfn_to_va(mfn_to_pfn((entry & PTE_ADDR_MASK) >> 12))
}

fn read_entry(table: u64, index: usize) -> u64 {
    // SAFETY: `table` is a page-table page in the direct map (mapped
    // read-only, readable), and index < 512.
    unsafe { core::ptr::read_volatile((table as *const u64).add(index)) }
}

fn update(ptr: u64, val: u64) {
    let req = [MmuUpdate { ptr, val }];
    // SAFETY: callers only write entries of tables the runtime owns, for
    // ranges nothing else maps yet.
    let done = unsafe { xen_sys::mm::mmu_update(&req, DOMID_SELF) };
    done.expect("mmu_update of a runtime-owned table");
}

/// Boot-time frame source: the frames after the bootstrap tables, which Xen
/// has already mapped.
struct Bump {
    next: Pfn,
}

impl Bump {
    /// A zeroed, read-only-mapped page ready to become a page table.
    fn new_table(&mut self) -> u64 {
        let pfn = self.next;
        self.next += 1;
        let va = pfn_to_va(pfn);
        // SAFETY: `pfn` is past everything Xen placed in the initial mapping
        // and mapped writable there; nothing else uses it.
        unsafe { core::ptr::write_bytes(va as *mut u8, 0, PAGE as usize) };
        let mfn = pfn_to_mfn(pfn).expect("bump frame is ours");
        // SAFETY: remaps a page we own read-only so Xen accepts it as a table.
        let r = unsafe { xen_sys::mm::update_va_mapping(va, (mfn << 12) | RO_PROT, UVMF_INVLPG) };
        r.expect("remap new table read-only");
        mfn
    }

    /// Returns the table below entry `index` of `table` (machine frame
    /// `table_mfn`), creating it if absent. Returns (va, mfn).
    fn ensure(&mut self, table: u64, table_mfn: u64, index: usize) -> (u64, u64) {
        let entry = read_entry(table, index);
        if entry & PTE_PRESENT != 0 {
            return (table_va(entry), (entry & PTE_ADDR_MASK) >> 12);
        }
        let mfn = self.new_table();
        update(
            (table_mfn << 12) + index as u64 * 8,
            (mfn << 12) | TABLE_PROT,
        );
        (pfn_to_va(mfn_to_pfn(mfn)), mfn)
    }
}

/// Walks (building as needed) to the L1 table covering `va`.
fn l1_for(bump: &mut Bump, l4: u64, l4_mfn: u64, va: u64) -> (u64, u64) {
    let (l3, l3_mfn) = bump.ensure(l4, l4_mfn, table_index(va, 4));
    let (l2, l2_mfn) = bump.ensure(l3, l3_mfn, table_index(va, 3));
    bump.ensure(l2, l2_mfn, table_index(va, 2))
}

/// What boot hands on to the heap and the kernel.
pub(crate) struct Memory {
    pub heap_start: u64,
    pub heap_bytes: usize,
}

/// Builds the direct map and the window's tables and sets up the frame
/// allocator with at most `frame_cap` frames ([`crate::frames::split`]).
/// Returns the heap range. Allocates nothing from the heap.
///
/// # Safety
/// Call once, at boot, before anything else touches memory past the image.
pub(crate) unsafe fn init(si: &StartInfo, frame_cap: u64) -> Memory {
    let nr_pages = si.nr_pages.min(MAX_DIRECT_PAGES);
    STATE.call_once(|| State {
        p2m: si.mfn_list as usize,
        nr_pages,
    });
    let l4 = si.pt_base;
    let l4_mfn = pfn_to_mfn(va_to_pfn(l4)).expect("pt_base is ours");
    // The boot stack page Xen places after the tables is skipped too.
    let mut bump = Bump {
        next: va_to_pfn(l4) + si.nr_pt_frames + 1,
    };

    // Direct map: every frame not yet mapped, one L1 table (2 MiB) at a time.
    let mut batch = [MmuUpdate::default(); 512];
    let mut chunk = 0;
    while chunk < nr_pages {
        let va = pfn_to_va(chunk);
        let (l1, l1_mfn) = l1_for(&mut bump, l4, l4_mfn, va);
        let mut n = 0;
        for i in 0..512u64 {
            let pfn = chunk + i;
            if pfn >= nr_pages {
                break;
            }
            if read_entry(l1, i as usize) & PTE_PRESENT != 0 {
                continue;
            }
            let mfn = pfn_to_mfn(pfn).expect("pfn below nr_pages");
            batch[n] = MmuUpdate {
                ptr: (l1_mfn << 12) + i * 8,
                val: (mfn << 12) | DATA_PROT,
            };
            n += 1;
        }
        if n > 0 {
            // SAFETY: fills empty entries of our own L1 with our own frames.
            let r = unsafe { xen_sys::mm::mmu_update(&batch[..n], DOMID_SELF) };
            r.expect("direct map");
        }
        chunk += 512;
    }

    // The window: tables only, every slot empty.
    for page in (0..WINDOW_PAGES as u64).step_by(512) {
        l1_for(&mut bump, l4, l4_mfn, WINDOW_BASE + page * PAGE);
    }
    // The L2 above it also covers the foreign-run region, whose L1 tables
    // come and go with each run (crate::foreign_run).
    let (l3, l3_mfn) = bump.ensure(l4, l4_mfn, table_index(WINDOW_BASE, 4));
    let (_, l2_mfn) = bump.ensure(l3, l3_mfn, table_index(WINDOW_BASE, 3));
    crate::foreign_run::set_l2(l2_mfn);
    // What is left: the heap, and single frames (a quarter, at most the cap).
    let free = nr_pages.saturating_sub(bump.next);
    let (heap_pages, _) = crate::frames::split(free, frame_cap);
    let heap_start = pfn_to_va(bump.next);
    *FRAMES.lock() = Some(FrameAllocator::new(bump.next + heap_pages, nr_pages));
    Memory {
        heap_start,
        heap_bytes: (heap_pages * PAGE) as usize,
    }
}

/// A page of the initial mapping by machine frame (start_info's xenstore
/// and console rings): these are never unmapped, so the view is 'static.
/// None if `mfn` is not one of our frames.
pub fn boot_page(mfn: u64) -> Option<crate::shared_page::PageView<'static>> {
    let pfn = mfn_to_pfn(mfn);
    if pfn_to_mfn(pfn)? != mfn {
        return None;
    }
    // SAFETY: the frame is ours (checked through both tables) and the direct
    // map covers every frame for the domain's life.
    Some(unsafe { crate::shared_page::PageView::new(pfn_to_va(pfn)) })
}

/// Starts handing out window slots and maps shared_info into slot 0; needs
/// the heap.
///
/// # Safety
/// Call once, after [`init`] and the heap.
pub(crate) unsafe fn init_window(si: &StartInfo) {
    let mut slots = Slots::new(WINDOW_PAGES);
    let shared_slot = slots.take().expect("window has room");
    let shared_va = WINDOW_BASE + shared_slot as u64 * PAGE;
    // SAFETY: maps the shared_info frame Xen gave us into an empty window slot.
    let r = unsafe {
        xen_sys::mm::update_va_mapping(shared_va, si.shared_info | DATA_PROT, UVMF_INVLPG)
    };
    r.expect("map shared_info");
    SHARED_INFO.store(shared_va as usize, Ordering::Release);
    *WINDOW.lock() = Some(slots);
    // We never register event callbacks: the event loop polls. Xen starts a
    // domU's vCPU with upcalls unmasked, and an upcall with no callback
    // crashes the domain, so mask them before any event channel exists.
    let shared = shared_va as *mut SharedInfo;
    // SAFETY: shared_info was just mapped writable at `shared_va`; the mask
    // byte of vCPU 0 is ours to write.
    unsafe {
        core::ptr::write_volatile(
            core::ptr::addr_of_mut!((*shared).vcpu_info[0].evtchn_upcall_mask),
            1,
        );
    }
}

/// The boot module (dom0's platform bundle), if Xen passed one.
pub(crate) fn boot_module(si: &StartInfo) -> Option<&'static [u8]> {
    if si.mod_start == 0 || si.mod_len == 0 {
        return None;
    }
    let start = if si.flags & SIF_MOD_START_PFN != 0 {
        pfn_to_va(si.mod_start)
    } else {
        si.mod_start
    };
    // SAFETY: Xen placed the module in our initial mapping and nothing frees
    // or writes it; it lives as long as the domain.
    Some(unsafe { core::slice::from_raw_parts(start as *const u8, si.mod_len as usize) })
}

/// A slot of the window, owned; its mapping is cleared and the slot given
/// back on drop.
pub struct WindowSlot {
    slot: usize,
    leaked: bool,
}

impl WindowSlot {
    /// Takes a free slot (empty, nothing mapped).
    pub fn take() -> Option<WindowSlot> {
        let slot = WINDOW.lock().as_mut()?.take()?;
        Some(WindowSlot {
            slot,
            leaked: false,
        })
    }

    /// The slot's virtual address.
    pub fn va(&self) -> u64 {
        WINDOW_BASE + self.slot as u64 * PAGE
    }

    /// Never reuse this slot (its entry could not be cleared).
    pub fn leak(&mut self) {
        self.leaked = true;
    }
}

impl Drop for WindowSlot {
    fn drop(&mut self) {
        if self.leaked {
            return;
        }
        // SAFETY: clears the entry of the slot this guard owns; no reference
        // into it outlives the guard.
        let r = unsafe { xen_sys::mm::update_va_mapping(self.va(), 0, UVMF_INVLPG) };
        if r.is_ok() {
            if let Some(w) = WINDOW.lock().as_mut() {
                w.release(self.slot);
            }
        }
    }
}

/// Takes `n` consecutive free window slots (nothing mapped); returns the
/// first one's address. Give them back with [`release_window_run`].
pub(crate) fn take_window_run(n: usize) -> Option<u64> {
    let first = WINDOW.lock().as_mut()?.take_run(n)?;
    Some(WINDOW_BASE + first as u64 * PAGE)
}

/// Gives back `n` slots from `va` taken with [`take_window_run`], whose
/// entries the caller has cleared.
pub(crate) fn release_window_run(va: u64, n: usize) {
    let first = ((va - WINDOW_BASE) / PAGE) as usize;
    if let Some(w) = WINDOW.lock().as_mut() {
        for slot in first..first + n {
            w.release(slot);
        }
    }
}

/// Window slots in use (shared_info and grant-table frames included).
pub fn window_slots_used() -> usize {
    WINDOW.lock().as_ref().map_or(0, |w| w.taken())
}

/// A foreign frame mapped into a window slot; unmapped on drop.
pub struct ForeignPage {
    slot: WindowSlot,
}

impl ForeignPage {
    /// Where the frame is mapped.
    pub fn va(&self) -> u64 {
        self.slot.va()
    }

    /// Volatile access to the page (it is shared with its owner).
    pub fn view(&self) -> crate::shared_page::PageView<'_> {
        // SAFETY: the slot maps one whole page for as long as this guard lives.
        unsafe { crate::shared_page::PageView::new(self.va()) }
    }

    /// The page's bytes.
    pub fn bytes_mut(&mut self) -> &mut [u8; 4096] {
        // SAFETY: the slot maps one whole page writable for as long as this
        // guard lives, and the guard is borrowed mutably.
        unsafe { &mut *(self.va() as *mut [u8; 4096]) }
    }
}

/// Maps machine frame `mfn` owned by `domid` into the window (the domain
/// builder's foreign mapping; dom0 only).
pub fn map_foreign(mfn: u64, domid: u16, writable: bool) -> Result<ForeignPage, xen_sys::Errno> {
    let slot = WindowSlot::take().ok_or(xen_sys::Errno::ENOMEM)?;
    let prot = if writable { DATA_PROT } else { RO_PROT };
    // SAFETY: maps into a window slot we just took; on failure the slot's
    // drop clears the (unchanged) entry and frees it.
    unsafe {
        xen_sys::mm::update_va_mapping_otherdomain(
            slot.va(),
            (mfn << 12) | prot,
            UVMF_INVLPG,
            domid,
        )
    }?;
    Ok(ForeignPage { slot })
}

/// Maps machine frames (e.g. our grant table) at consecutive window slots for
/// the domain's life; returns the first address.
pub(crate) fn map_machine_frames(mfns: &[u64], writable: bool) -> Result<u64, xen_sys::Errno> {
    let first = WINDOW
        .lock()
        .as_mut()
        .and_then(|w| w.take_run(mfns.len()))
        .ok_or(xen_sys::Errno::ENOMEM)?;
    let prot = if writable { DATA_PROT } else { RO_PROT };
    for (i, mfn) in mfns.iter().enumerate() {
        let va = WINDOW_BASE + (first + i) as u64 * PAGE;
        // SAFETY: maps frames Xen gave us into slots we just reserved forever.
        unsafe { xen_sys::mm::update_va_mapping(va, (mfn << 12) | prot, UVMF_INVLPG) }?;
    }
    Ok(WINDOW_BASE + first as u64 * PAGE)
}

/// One frame of our own memory, owned; given back on drop.
pub struct Frame {
    pfn: Pfn,
}

impl Frame {
    /// Takes a zeroed frame.
    pub fn alloc() -> Result<Frame, FrameError> {
        let pfn = alloc_frame()?;
        let mut frame = Frame { pfn };
        frame.bytes_mut().fill(0);
        Ok(frame)
    }

    /// Its pseudo-physical frame number.
    pub fn pfn(&self) -> Pfn {
        self.pfn
    }

    /// Its machine frame number.
    pub fn mfn(&self) -> u64 {
        pfn_to_mfn(self.pfn).expect("an allocated frame is ours")
    }

    /// Its contents.
    pub fn bytes(&self) -> &[u8; 4096] {
        // SAFETY: the frame is in the direct map and owned by this guard.
        unsafe { &*(pfn_to_va(self.pfn) as *const [u8; 4096]) }
    }

    /// Its contents, writable.
    pub fn bytes_mut(&mut self) -> &mut [u8; 4096] {
        // SAFETY: the frame is in the direct map, writable, and owned by this
        // guard, which is borrowed mutably.
        unsafe { &mut *(pfn_to_va(self.pfn) as *mut [u8; 4096]) }
    }

    /// Volatile access, for a frame granted to a peer that writes it too.
    pub fn view(&self) -> crate::shared_page::PageView<'_> {
        // SAFETY: mapped for as long as this guard lives.
        unsafe { crate::shared_page::PageView::new(pfn_to_va(self.pfn)) }
    }
}

impl Drop for Frame {
    fn drop(&mut self) {
        if free_frame(self.pfn).is_err() {
            log::error!("frame {} freed twice", self.pfn);
        }
    }
}

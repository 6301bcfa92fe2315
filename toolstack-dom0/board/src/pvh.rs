//! The PVH domain build: creates an HVM domain without a device model and
//! carries out `xcp_builder::PvhPlan` through the [`Platform`].
//!
//! Read first: ../builder/DESIGN.md ("PVH"), xen docs/misc/pvh.pandoc,
//! ../kimage/src/lib.rs. The order:
//!
//! 1. `XEN_DOMCTL_createdomain` with the PVH flags, `XEN_DOMCTL_max_vcpus`
//!    (which creates the vCPUs), max_mem for every page
//!    the plan populates, the paging (HAP) pool;
//! 2. low RAM populated, then the kernel streamed into it by `xcp_kimage`
//!    through a [`GuestSink`] that refuses any address outside low RAM
//!    (the plan needs the kernel's range and entry, so it is made after);
//!    an xz kernel's dictionary is lent from the top of low RAM, mapped
//!    into dom0 for the load ([`Dictionary::GuestRam`]), so dom0's memory
//!    does not grow with the guest's kernel;
//! 3. the plan's other runs populated (ACPI, special pages, high RAM), its
//!    e820 set, its pages written (initrd, start-info page, ACPI tables,
//!    zeroed rings);
//! 4. the console and xenstore event channels, the grant seed, the HVM
//!    params naming the channels and the ring pages;
//! 5. the boot vCPU: Xen's save records, rewritten by
//!    `xcp_builder::boot_records`, loaded back.
//!
//! The domain is handed back paused, as the PV build does. Every step goes
//! on an [`UndoLog`] (the domain, which takes its memory and ports with it).
//!
//! The grant seed (as libxc's `xc_dom_gnttab_hvm_seed`): grant-table frame
//! 0 is mapped into the guest's physmap at a scratch gfn, entries 0 and 1
//! (console to dom0, xenstore ring to the xenstore domain) are written
//! there, and the gfn is emptied again. Pages are written by gfn with the
//! guest's domid (Xen translates the gfn), one mapping per page written.

use xcp_builder::{
    boot_records, InitrdRequest, LoadedKernel, PhysRange, PvhPlan, PvhRequest, LOW_RAM_END,
    MAX_SPECIAL_PAGES, MIN_SPECIAL_PAGES,
};
use xcp_kimage::{Bound, KimageError, Limits, Loaded, Refusal, Sink};
use xen_abi::hvm::{HVM_PARAM_STORE_EVTCHN, HVM_PARAM_STORE_PFN, HVM_PARAM_TIMER_MODE};
use xen_sys::domctl_payloads::XenDomctlCreatedomain;

use crate::undo::{Undo, UndoLog};
use crate::{BoardError, Platform, Step};

const PAGE: u64 = 4096;
/// `HVMPTM_no_delay_for_missed_ticks` (hvm/params.h).
const HVMPTM_NO_DELAY_FOR_MISSED_TICKS: u64 = 1;
/// Grant and maptrack frames, as for PV domains.
const MAX_GRANT_FRAMES: i32 = 32;
const MAX_MAPTRACK_FRAMES: i32 = 1024;
/// Slack above the populated pages for max_mem, as libxl adds.
const MAXMEM_SLACK_KIB: u64 = 1024;
/// The special pages: the xenstore ring and the console ring.
const SPECIAL_PAGES: u32 = MIN_SPECIAL_PAGES;
const _: () = assert!(SPECIAL_PAGES <= MAX_SPECIAL_PAGES);

/// What a PVH build is asked for.
pub struct PvhSpec<'a> {
    /// The kernel: an ELF vmlinux or a bzImage with a `PHYS32_ENTRY` note.
    pub kernel: &'a [u8],
    /// The initrd (empty: none).
    pub initrd: &'a [u8],
    /// RAM, MiB.
    pub memory_mib: u32,
    /// vCPUs.
    pub vcpus: u32,
    /// The command line.
    pub cmdline: &'a str,
    /// The domain handle (a XenAPI VM's uuid).
    pub handle: [u8; 16],
    /// The xenstore domain, if the domain gets a xenstore ring: its event
    /// channel is bound for that domain, and grant ref 1 grants it the ring
    /// (it maps rings by grant). Without one the store params stay unset
    /// (0), which Linux takes as "no xenstore" and boots on without
    /// xenbus; with a ring no one serves, its xenbus initcall waits for
    /// ever, so pass `None` when no xenstore domain runs.
    pub xenstore: Option<u16>,
    /// Where an xz kernel's dictionary lives.
    pub dictionary: Dictionary<'a>,
}

/// Where an xz kernel's decompressor keeps its dictionary (the last
/// `dict_size` bytes it produced: 32 MiB for Debian's kernels).
pub enum Dictionary<'a> {
    /// dom0's heap, allocated by `xcp_kimage` (the heap must have room).
    Heap,
    /// Memory the caller lends.
    Lent(&'a mut [u8]),
    /// The guest's own RAM: the top of its low RAM, mapped into dom0 for
    /// the load ([`Platform::map_guest_run`]), zeroed and unmapped after.
    /// The kernel may not load there: the guest needs RAM for both, else
    /// [`BoardError::NoRoomForDictionary`]. Only an xz image borrows;
    /// others load as with `Heap` (they keep nothing to lend).
    GuestRam,
}

/// What the PVH build made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PvhBuilt {
    /// The new domain (paused).
    pub domid: u16,
    /// Guest frame of its console ring.
    pub console_gfn: u64,
    /// Its end of the console event channel (remote: dom0).
    pub console_port: u32,
    /// Guest frame of its xenstore ring.
    pub store_gfn: u64,
    /// Its end of the xenstore event channel (remote: dom0), if it has a
    /// xenstore ring.
    pub store_port: Option<u32>,
    /// The kernel's entry (`PHYS32_ENTRY`).
    pub entry: u64,
}

/// The paging pool a HAP guest needs: 1 MiB per vCPU and 8 KiB per MiB of
/// RAM (libxl's default `shadow_memkb`), at least Xen's own 1 MiB.
pub fn paging_pool_bytes(memory_mib: u32, vcpus: u32) -> u64 {
    (u64::from(vcpus) * 1024 + u64::from(memory_mib) * 8).max(1024) * 1024
}

/// Writes a kernel into a PVH guest's low RAM through the platform, one
/// guest page at a time; refuses anything outside `ram` or inside the
/// dictionary lent from it.
pub struct GuestSink<'a, P: Platform> {
    pf: &'a mut P,
    domid: u16,
    ram: PhysRange,
    /// Guest RAM lent to the decompressor (never written through the sink).
    lent: Option<PhysRange>,
    /// The platform error that ended the load, if one did.
    failed: Option<P::Error>,
    /// Where the kernel tried to write into the lent range, if it did.
    hit_lent: Option<u64>,
    /// Bytes written or zeroed.
    pub bytes: u64,
}

impl<'a, P: Platform> GuestSink<'a, P> {
    /// A sink over `ram` of `domid`.
    pub fn new(pf: &'a mut P, domid: u16, ram: PhysRange) -> Self {
        GuestSink {
            pf,
            domid,
            ram,
            lent: None,
            failed: None,
            hit_lent: None,
            bytes: 0,
        }
    }

    /// The same sink, refusing writes into `lent` (the dictionary's guest
    /// RAM, in use by the decompressor while the kernel streams in).
    pub fn lending(mut self, lent: PhysRange) -> Self {
        self.lent = Some(lent);
        self
    }

    fn put(&mut self, paddr: u64, len: u64, bytes: Option<&[u8]>) -> Result<(), Refusal> {
        let Some(end) = paddr.checked_add(len) else {
            return Err(Refusal {
                paddr,
                reason: "outside the guest's RAM",
            });
        };
        if let Some(lent) = self.lent {
            if paddr < lent.end() && lent.start < end {
                self.hit_lent = Some(paddr.max(lent.start));
                return Err(Refusal {
                    paddr,
                    reason: "inside the xz dictionary lent from the guest's RAM",
                });
            }
        }
        if !(self.ram.start <= paddr && end <= self.ram.end()) {
            return Err(Refusal {
                paddr,
                reason: "outside the guest's RAM",
            });
        }
        let mut done = 0u64;
        while done < len {
            let at = paddr + done;
            let offset = (at % PAGE) as usize;
            let n = (PAGE - at % PAGE).min(len - done) as usize;
            let src = bytes.map(|b| &b[done as usize..done as usize + n]);
            let result = self
                .pf
                .write_foreign(self.domid, at / PAGE, &mut |dst| match src {
                    Some(s) => dst[offset..offset + n].copy_from_slice(s),
                    None => dst[offset..offset + n].fill(0),
                });
            if let Err(e) = result {
                self.failed = Some(e);
                return Err(Refusal {
                    paddr: at,
                    reason: "guest page write failed",
                });
            }
            done += n as u64;
        }
        self.bytes += len;
        Ok(())
    }
}

impl<P: Platform> Sink for GuestSink<'_, P> {
    fn write(&mut self, paddr: u64, bytes: &[u8]) -> Result<(), Refusal> {
        self.put(paddr, bytes.len() as u64, Some(bytes))
    }

    fn zero(&mut self, paddr: u64, len: u64) -> Result<(), Refusal> {
        self.put(paddr, len, None)
    }
}

/// Streams `kernel` into `low_ram` of `domid`, its xz dictionary (if any)
/// where `dictionary` says. A run of guest frames lent as the dictionary
/// is zeroed and unmapped before this returns, whatever the outcome (so
/// the caller's undo can destroy the domain).
fn load_kernel<P: Platform>(
    pf: &mut P,
    domid: u16,
    low_ram: PhysRange,
    kernel: &[u8],
    dictionary: Dictionary<'_>,
) -> Result<Loaded, BoardError<P::Error>> {
    let limits = Limits::default();
    let lend = match dictionary {
        Dictionary::GuestRam => {
            xcp_kimage::xz_dictionary_needed(kernel).map_err(BoardError::Kernel)?
        }
        Dictionary::Heap | Dictionary::Lent(_) => None,
    };
    let Some(needed) = lend else {
        let mut sink = GuestSink::new(pf, domid, low_ram);
        let loaded = match dictionary {
            Dictionary::Lent(d) => xcp_kimage::load_with_dictionary(kernel, &limits, d, &mut sink),
            Dictionary::Heap | Dictionary::GuestRam => xcp_kimage::load(kernel, &limits, &mut sink),
        };
        let failed = sink.failed.take();
        return crate::error::kernel_result(loaded, failed);
    };
    // The image's claim is checked before any memory is found for it.
    if needed > limits.max_dictionary as u64 {
        return Err(BoardError::Kernel(KimageError::TooLarge(
            Bound::Dictionary,
            needed,
        )));
    }
    // The top of low RAM: Linux loads at 16 MiB and up (its
    // LOAD_PHYSICAL_ADDR), and the plan places the initrd and boot pages
    // after the kernel once the dictionary is gone.
    let pages = needed.div_ceil(PAGE);
    let lent = PhysRange {
        start: low_ram.end().saturating_sub(pages * PAGE),
        len: pages * PAGE,
    };
    if pages * PAGE >= low_ram.len {
        return Err(BoardError::NoRoomForDictionary {
            dictionary: pages * PAGE,
            low_ram: low_ram.len,
            at: None,
        });
    }
    let mut run = pf
        .map_guest_run(domid, lent.start / PAGE, pages)
        .map_err(BoardError::at(Step::LoadKernel))?;
    let mut sink = GuestSink::new(pf, domid, low_ram).lending(lent);
    let loaded =
        xcp_kimage::load_with_dictionary(kernel, &limits, P::guest_run_bytes(&mut run), &mut sink);
    let (failed, hit) = (sink.failed.take(), sink.hit_lent);
    // The guest gets its RAM as Xen gave it: zeroed, not the kernel's
    // last 32 MiB of history.
    P::guest_run_bytes(&mut run).fill(0);
    drop(run);
    if let (Err(KimageError::SinkRefused(_)), Some(at)) = (&loaded, hit) {
        return Err(BoardError::NoRoomForDictionary {
            dictionary: lent.len,
            low_ram: low_ram.len,
            at: Some(at),
        });
    }
    crate::error::kernel_result(loaded, failed)
}

fn pvh_err<E>(step: Step) -> impl FnOnce(xcp_builder::PvhError) -> BoardError<E> {
    move |error| BoardError::Pvh { step, error }
}

/// Builds a paused PVH domain from `spec`, recording each step on `log`
/// (the caller undoes it on failure, or commits it).
pub fn build_pvh_domain<P: Platform>(
    pf: &mut P,
    log: &mut UndoLog,
    spec: PvhSpec<'_>,
) -> Result<PvhBuilt, BoardError<P::Error>> {
    let (domid, low_ram) = create_pvh_domain(pf, log, &spec)?;
    pf.populate_gfns(domid, 0, low_ram.len / PAGE)
        .map_err(BoardError::at(Step::PopulatePhysmap))?;
    finish_pvh_domain(pf, domid, low_ram, spec)
}

/// The domain of `spec`, made and sized (vCPUs, max_mem, paging pool),
/// with no memory yet: its domid and the low RAM to populate.
fn create_pvh_domain<P: Platform>(
    pf: &mut P,
    log: &mut UndoLog,
    spec: &PvhSpec<'_>,
) -> Result<(u16, PhysRange), BoardError<P::Error>> {
    let memory = u64::from(spec.memory_mib) << 20;
    let low_ram = PhysRange {
        start: 0,
        len: memory.min(LOW_RAM_END),
    };
    // Every page the plan will populate: RAM, ACPI, special pages.
    let populated = memory / PAGE + xcp_builder::ACPI_PAGES + u64::from(SPECIAL_PAGES);
    let mut config = XenDomctlCreatedomain::pvh(spec.vcpus);
    config.handle = spec.handle;
    config.max_grant_frames = MAX_GRANT_FRAMES;
    config.max_maptrack_frames = MAX_MAPTRACK_FRAMES;
    let domid = pf
        .create_domain(0, &config)
        .map_err(BoardError::at(Step::CreateDomain))?;
    log.push(Undo::Domain(domid));
    // createdomain only bounds the vCPUs; this creates them. Xen 4.17's
    // gethvmcontext on a domain without vCPU 0 dereferences NULL and
    // panics the host (vpic_save), so it must come first.
    pf.set_max_vcpus(domid, spec.vcpus)
        .map_err(BoardError::at(Step::MaxVcpus))?;
    pf.set_max_mem(domid, populated * 4 + MAXMEM_SLACK_KIB)
        .map_err(BoardError::at(Step::MaxMem))?;
    pf.set_paging_pool(domid, paging_pool_bytes(spec.memory_mib, spec.vcpus))
        .map_err(BoardError::at(Step::PagingPool))?;
    Ok((domid, low_ram))
}

/// The rest of the build of `domid` once its low RAM is populated: the
/// kernel, the plan's other pages, ports, grants, params, the boot vCPU.
fn finish_pvh_domain<P: Platform>(
    pf: &mut P,
    domid: u16,
    low_ram: PhysRange,
    spec: PvhSpec<'_>,
) -> Result<PvhBuilt, BoardError<P::Error>> {
    let memory = u64::from(spec.memory_mib) << 20;
    // The kernel, straight into guest memory.
    let loaded = load_kernel(pf, domid, low_ram, spec.kernel, spec.dictionary)?;
    let entry = loaded.pvh_entry().map_err(BoardError::Kernel)?;

    let cmdline = spec.cmdline.as_bytes();
    let plan = PvhPlan::new(&PvhRequest {
        memory_bytes: memory,
        vcpus: spec.vcpus,
        kernel: LoadedKernel {
            start: loaded.paddr_range.start,
            end: loaded.paddr_range.end,
            entry: u64::from(entry),
        },
        cmdline,
        initrd: (!spec.initrd.is_empty()).then_some(InitrdRequest {
            len: spec.initrd.len() as u64,
            at: None,
        }),
        special_pages: SPECIAL_PAGES,
    })
    .map_err(pvh_err(Step::PvhPlan))?;
    let layout = *plan.layout();
    // Low RAM is in already; the plan's first run must be it.
    let mut runs = plan.populate();
    if runs.next() != Some((0, low_ram.len / PAGE)) {
        return Err(BoardError::Pvh {
            step: Step::PvhPlan,
            error: xcp_builder::PvhError::MemoryTooSmall,
        });
    }
    for (first, count) in runs {
        pf.populate_gfns(domid, first, count)
            .map_err(BoardError::at(Step::PopulatePhysmap))?;
    }
    pf.set_memory_map(domid, &plan.e820_bytes())
        .map_err(BoardError::at(Step::MemoryMap))?;
    for (gfn, _) in plan.pages() {
        let mut result = Ok(());
        pf.write_foreign(domid, gfn, &mut |dst| {
            result = plan.write_page(gfn, spec.initrd, dst).map(|_| ());
        })
        .map_err(BoardError::at(Step::WritePage { pfn: gfn }))?;
        result.map_err(pvh_err(Step::WritePage { pfn: gfn }))?;
    }
    // Ports of the new domain, for dom0 (the console relay) and the
    // xenstore domain: they go with it.
    let console_port = pf
        .alloc_unbound_for(domid, 0)
        .map_err(BoardError::at(Step::ConsolePort))?;
    let store_port = match spec.xenstore {
        Some(xs) => Some(
            pf.alloc_unbound_for(domid, xs)
                .map_err(BoardError::at(Step::XenstorePort))?,
        ),
        None => None,
    };
    // The grant seed: dom0 (console) and the xenstore domain map the
    // rings through the reserved refs. An HVM guest's grant table is
    // reached through its physmap: mapped at a scratch gfn, written,
    // taken out again (its frame stays the domain's; it goes with it).
    let scratch = plan.grant_scratch_gfn();
    pf.map_grant_table_at(domid, scratch)
        .map_err(BoardError::at(Step::GrantTable))?;
    let seed = plan.gnttab_seed(0, spec.xenstore);
    pf.write_foreign(domid, scratch, &mut |dst| {
        for (gref, entry) in &seed {
            let at = *gref as usize * entry.len();
            dst[at..at + entry.len()].copy_from_slice(entry);
        }
    })
    .map_err(BoardError::at(Step::GrantSeed))?;
    pf.remove_gfn(domid, scratch)
        .map_err(BoardError::at(Step::GrantTable))?;
    // As libxl sets for every HVM and PVH guest: timer_mode
    // no_delay_for_missed_ticks (Xen's default, delay_for_missed_ticks,
    // freezes guest time while the vCPU is descheduled).
    let timer_mode = (HVM_PARAM_TIMER_MODE, HVMPTM_NO_DELAY_FOR_MISSED_TICKS);
    let no_store = [HVM_PARAM_STORE_PFN, HVM_PARAM_STORE_EVTCHN];
    let params = plan
        .hvm_params(store_port.unwrap_or(0), console_port)
        .into_iter()
        .filter(|(index, _)| store_port.is_some() || !no_store.contains(index));
    for (index, value) in core::iter::once(timer_mode).chain(params) {
        pf.set_hvm_param(domid, index, value)
            .map_err(BoardError::at(Step::HvmParam { index }))?;
    }
    let current = pf
        .hvm_context(domid)
        .map_err(BoardError::at(Step::HvmContext))?;
    let records =
        boot_records(&current, &plan.vcpu_context()).map_err(pvh_err(Step::HvmContext))?;
    pf.set_hvm_context(domid, &records)
        .map_err(BoardError::at(Step::HvmContext))?;
    Ok(PvhBuilt {
        domid,
        console_gfn: layout.console_pfn(),
        console_port,
        store_gfn: layout.xenstore_pfn(),
        store_port,
        entry: layout.entry,
    })
}

/// Low RAM populated by one [`PvhBuild::step`], pages (16 MiB).
pub const POPULATE_STEP_PAGES: u64 = 4096;

/// A PVH build carried out a bounded step at a time, so the caller (dom0's
/// one event loop) serves other work between steps: [`PvhBuild::create`]
/// makes the domain, each [`PvhBuild::step`] populates at most
/// [`POPULATE_STEP_PAGES`] of its low RAM (the part that grows with the
/// guest's memory), and [`PvhBuild::finish`] does the rest (the kernel
/// load, which grows with the kernel, not the guest, and the plan's few
/// pages). Its undo log lives across the steps; a build given up
/// ([`PvhBuild::abort`]) or failed leaves nothing behind.
pub struct PvhBuild {
    log: UndoLog,
    domid: u16,
    low_ram: PhysRange,
    /// Low RAM pages populated so far.
    populated: u64,
}

impl PvhBuild {
    /// Makes `spec`'s domain (no memory yet). On failure nothing is left.
    pub fn create<P: Platform>(
        pf: &mut P,
        spec: &PvhSpec<'_>,
    ) -> Result<PvhBuild, BoardError<P::Error>> {
        let mut log = UndoLog::new();
        match create_pvh_domain(pf, &mut log, spec) {
            Ok((domid, low_ram)) => Ok(PvhBuild {
                log,
                domid,
                low_ram,
                populated: 0,
            }),
            Err(e) => {
                log.undo(pf);
                Err(e)
            }
        }
    }

    /// The domain being built.
    pub fn domid(&self) -> u16 {
        self.domid
    }

    /// Populates the next run of low RAM; whether it is all in. On an
    /// error the caller [`Self::abort`]s.
    pub fn step<P: Platform>(&mut self, pf: &mut P) -> Result<bool, BoardError<P::Error>> {
        let total = self.low_ram.len / PAGE;
        let count = (total - self.populated).min(POPULATE_STEP_PAGES);
        if count > 0 {
            pf.populate_gfns(self.domid, self.populated, count)
                .map_err(BoardError::at(Step::PopulatePhysmap))?;
            self.populated += count;
        }
        Ok(self.populated == total)
    }

    /// The rest of the build (low RAM not yet in first, at once); `spec`
    /// as given to [`Self::create`]. On failure nothing is left; on
    /// success the domain is the caller's (paused).
    pub fn finish<P: Platform>(
        self,
        pf: &mut P,
        spec: PvhSpec<'_>,
    ) -> Result<PvhBuilt, BoardError<P::Error>> {
        let PvhBuild {
            log,
            domid,
            low_ram,
            populated,
        } = self;
        let rest = low_ram.len / PAGE - populated;
        let built = if rest > 0 {
            pf.populate_gfns(domid, populated, rest)
                .map_err(BoardError::at(Step::PopulatePhysmap))
        } else {
            Ok(())
        }
        .and_then(|()| finish_pvh_domain(pf, domid, low_ram, spec));
        match built {
            Ok(built) => {
                log.commit();
                Ok(built)
            }
            Err(e) => {
                log.undo(pf);
                Err(e)
            }
        }
    }

    /// Gives the build up: its domain (and what went with it) is destroyed.
    pub fn abort<P: Platform>(self, pf: &mut P) {
        self.log.undo(pf);
    }
}

/// Builds a paused PVH domain; on failure nothing is left behind. On
/// success the domain is the caller's to unpause and destroy.
pub fn build_pvh<P: Platform>(
    pf: &mut P,
    spec: PvhSpec<'_>,
) -> Result<PvhBuilt, BoardError<P::Error>> {
    UndoLog::run(pf, |pf, log| build_pvh_domain(pf, log, spec))
}

//! The PV domain build: creates the domain and carries out the pure plan
//! of `xcp-builder` through the [`Platform`]: populate memory, copy the
//! image, write the P2M, start_info and page tables, let Xen fill the
//! hypercall page, pin the top-level table, set the vCPU, and hand back a
//! paused domain. Every step goes on an [`UndoLog`]; the caller undoes it
//! if the build (or what it does with the domain next) fails, so the
//! half-built domain's memory returns to Xen.
//!
//! The kernel is an ELF, copied page by page from dom0's memory, or a
//! bzImage (gzip, zstd or xz), which `xcp_kimage` decompresses twice
//! without keeping it: once into a counting sink for the ELF's summary
//! (segments, notes, entry) that the plan is made from, and once into the
//! new domain's kernel pages through a sink that refuses any address
//! outside them ([`PvKernelSink`]). A gzip or zstd kernel's first pass runs
//! before the domain exists; an xz kernel's dictionary (32 MiB for
//! Debian's) is lent from the new domain's own RAM (its top pages, mapped
//! into dom0 as one run), so both its passes run once that memory exists,
//! and the run is zeroed and unmapped before the build goes on.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use xcp_builder::{
    BuildRequest, ElfImage, LoadSegment, PageKind, PageSources, PvPlan, StartInfoArgs,
};
use xcp_kimage::{Bound, CountingSink, Format, KimageError, Limits, Refusal, Sink};
use xen_sys::domctl_payloads::{
    XenDomctlCreatedomain, XEN_DOMCTL_CDF_IOMMU, XEN_DOMCTL_CDF_XS_DOMAIN,
};

use crate::error::kernel_result;
use crate::undo::{Undo, UndoLog};
use crate::{BoardError, Platform, Step};

/// What the builder made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Built {
    /// The new domain (paused).
    pub domid: u16,
    /// Machine frame of its console ring.
    pub console_mfn: u64,
    /// Its end of the console event channel.
    pub console_port: u32,
    /// Machine frame of its xenstore ring.
    pub store_mfn: u64,
    /// Its end of the xenstore event channel.
    pub store_port: u32,
}

/// Grant frames and maptrack frames every service domain gets (libxl's defaults).
const MAX_GRANT_FRAMES: i32 = 32;
const MAX_MAPTRACK_FRAMES: i32 = 1024;
/// Slack above the domain's pages for max_mem, as libxl adds.
const MAXMEM_SLACK_KIB: u64 = 1024;
const PAGE: u64 = 4096;

/// How a domain relates to xenstore and devices, and its vCPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainRole {
    /// It will be given PCI devices: built with its IOMMU context
    /// (XEN_DOMCTL_CDF_iommu), without which Xen refuses assignment.
    pub passthrough: bool,
    /// The xenstore domain, if one runs: the new domain's xenstore channel
    /// and grant entry 1 are for it.
    pub server: Option<u16>,
    /// This domain is the xenstore domain (XEN_DOMCTL_CDF_xs_domain).
    pub is_server: bool,
    /// The domain handle Xen keeps for it (`xen_domain_handle_t`): a XenAPI
    /// VM's uuid; zero for the service domains.
    pub handle: [u8; 16],
    /// vCPUs the domain gets (createdomain's `max_vcpus` and
    /// `XEN_DOMCTL_max_vcpus`; the plan refuses 0 and more than
    /// `xcp_builder::MAX_PV_VCPUS`). vCPU 0 starts at the kernel's entry;
    /// the kernel brings up the others (Linux: `VCPUOP_initialise`).
    pub vcpus: u32,
    /// The domid it must have (0: any). netdom is rebuilt under its old
    /// domid so guests' frontends, whose grants and event channels name
    /// that domid, can be served again in place.
    pub domid: u16,
}

impl Default for DomainRole {
    /// A service domain: one vCPU, no xenstore, no devices, the zero handle.
    fn default() -> Self {
        DomainRole {
            passthrough: false,
            server: None,
            is_server: false,
            handle: [0; 16],
            vcpus: 1,
            domid: 0,
        }
    }
}

/// A PV kernel as the build sees it.
enum Kernel<'a> {
    /// An ELF: the plan reads it, its pages are copied from it.
    Elf(&'a [u8]),
    /// A bzImage: `elf` is its payload's summary, the bytes are streamed.
    Streamed {
        /// The bzImage.
        image: &'a [u8],
        /// What the first pass saw of the ELF inside (boxed: it is large
        /// beside a slice).
        elf: Box<ElfImage>,
    },
    /// A bzImage whose xz payload needs a dictionary of `dictionary`
    /// bytes: lent from the new domain's own RAM, so both passes wait
    /// until its memory exists ([`lend_dictionary`]).
    Deferred {
        /// The bzImage.
        image: &'a [u8],
        /// The dictionary it asks, bytes (checked against the bound).
        dictionary: u64,
    },
}

impl<'a> Kernel<'a> {
    /// Tells an ELF from a bzImage; a bzImage is decompressed once to see
    /// its ELF. Anything else goes to the plan as an ELF, whose parser
    /// says what is wrong with it.
    fn of<E>(image: &'a [u8]) -> Result<Self, BoardError<E>> {
        if !matches!(xcp_kimage::probe(image), Ok(Format::BzImage(_))) {
            return Ok(Kernel::Elf(image));
        }
        // An xz payload's dictionary (32 MiB for Debian's kernels) is never
        // dom0's to hold: the guest lends it, once it has memory.
        if let Some(dictionary) =
            xcp_kimage::xz_dictionary_needed(image).map_err(BoardError::Kernel)?
        {
            let bound = Limits::default().max_dictionary as u64;
            if dictionary > bound {
                return Err(BoardError::Kernel(KimageError::TooLarge(
                    Bound::Dictionary,
                    dictionary,
                )));
            }
            return Ok(Kernel::Deferred { image, dictionary });
        }
        let loaded = xcp_kimage::load(image, &Limits::default(), &mut CountingSink::default())
            .map_err(BoardError::Kernel)?;
        Ok(Kernel::Streamed {
            image,
            elf: Box::new(elf_of(&loaded).map_err(BoardError::Image)?),
        })
    }

    /// Its plan, if it can be made yet (a deferred kernel's cannot).
    fn plan(&self, req: &BuildRequest<'_>) -> Option<Result<PvPlan, xcp_builder::Error>> {
        match self {
            Kernel::Elf(image) => Some(PvPlan::new(image, req)),
            Kernel::Streamed { elf, .. } => Some(PvPlan::from_elf(elf, req)),
            Kernel::Deferred { .. } => None,
        }
    }
}

/// What the plan needs of a streamed kernel: its first pass's summary.
/// A 32-bit ELF is refused as the PV plan refuses one unpacked (a PV
/// domain starts in 64-bit mode; only PVH runs an i386 image).
fn elf_of(loaded: &xcp_kimage::Loaded) -> Result<ElfImage, xcp_builder::Error> {
    if loaded.class32 {
        return Err(xcp_builder::Error::NotElf64);
    }
    let segments = loaded
        .segments
        .iter()
        .filter(|s| s.memsz > 0)
        .map(|s| LoadSegment {
            offset: s.offset,
            filesz: s.filesz,
            memsz: s.memsz,
            paddr: s.paddr,
            vaddr: s.vaddr,
        })
        .collect();
    Ok(ElfImage {
        e_entry: loaded.e_entry,
        segments,
        notes: loaded.notes.clone(),
    })
}

/// Writes a streamed kernel into a PV domain's kernel pages (by the plan's
/// placement and the domain's p2m), refusing every other address.
pub struct PvKernelSink<'a, P: Platform> {
    pf: &'a mut P,
    domid: u16,
    plan: &'a PvPlan,
    p2m: &'a [u64],
    /// The platform error that ended the load, if one did.
    failed: Option<P::Error>,
}

impl<'a, P: Platform> PvKernelSink<'a, P> {
    /// A sink into `domid`'s kernel pages as `plan` places them, `p2m`
    /// being the domain's pfn -> mfn.
    pub fn new(pf: &'a mut P, domid: u16, plan: &'a PvPlan, p2m: &'a [u64]) -> Self {
        PvKernelSink {
            pf,
            domid,
            plan,
            p2m,
            failed: None,
        }
    }

    fn put(&mut self, paddr: u64, len: u64, bytes: Option<&[u8]>) -> Result<(), Refusal> {
        let refuse = |paddr, reason| Err(Refusal { paddr, reason });
        let mut done = 0u64;
        while done < len {
            let at = paddr.checked_add(done).ok_or(Refusal {
                paddr,
                reason: "address wraps",
            })?;
            let Some(pfn) = self.plan.kernel_pfn_of(at) else {
                return refuse(at, "outside the kernel's pages");
            };
            let Some(&mfn) = self.p2m.get(pfn as usize) else {
                return refuse(at, "outside the domain's memory");
            };
            // The va, hence the page offset, is paddr + virt_offset.
            let va = at.wrapping_add(self.plan.layout().virt_offset);
            let offset = (va % 4096) as usize;
            let n = (4096 - offset as u64).min(len - done) as usize;
            let src = bytes.map(|b| &b[done as usize..done as usize + n]);
            let result = self
                .pf
                .write_foreign(self.domid, mfn, &mut |dst| match src {
                    Some(s) => dst[offset..offset + n].copy_from_slice(s),
                    None => dst[offset..offset + n].fill(0),
                });
            if let Err(e) = result {
                self.failed = Some(e);
                return refuse(at, "guest page write failed");
            }
            done += n as u64;
        }
        Ok(())
    }
}

impl<P: Platform> Sink for PvKernelSink<'_, P> {
    fn write(&mut self, paddr: u64, bytes: &[u8]) -> Result<(), Refusal> {
        self.put(paddr, bytes.len() as u64, Some(bytes))
    }

    fn zero(&mut self, paddr: u64, len: u64) -> Result<(), Refusal> {
        self.put(paddr, len, None)
    }
}

/// The command line of a domain being built: called once the domain
/// exists (for parameters that name it: grants, ports), with the build's
/// undo log for what it acquires.
pub type Cmdline<'a, P> =
    dyn FnMut(&mut P, &mut UndoLog, u16) -> Result<String, BoardError<<P as Platform>::Error>> + 'a;

/// Builds a paused 64-bit PV domain from the kernel `image` (an ELF, or a
/// bzImage streamed through `xcp_kimage`) with the initial ramdisk
/// `module` (empty: none), recording each step on `log` (the caller undoes
/// it on failure, or commits it).
pub fn build_domain<P: Platform>(
    pf: &mut P,
    log: &mut UndoLog,
    image: &[u8],
    module: &[u8],
    memory_mib: u32,
    role: DomainRole,
    cmdline: &mut Cmdline<'_, P>,
) -> Result<Built, BoardError<P::Error>> {
    let nr_pages = u64::from(memory_mib) * 256;
    // Check the image before Xen is asked for anything.
    let probe = BuildRequest {
        memory_pages: nr_pages,
        cmdline: b"",
        module_len: module.len() as u64,
        vcpus: role.vcpus,
    };
    let kernel = Kernel::of(image)?;
    let vcpus = match kernel.plan(&probe) {
        Some(plan) => plan.map_err(BoardError::Image)?.layout().vcpus,
        // Checked as the plan would, before Xen is asked for anything.
        None if (1..=xcp_builder::MAX_PV_VCPUS).contains(&role.vcpus) => role.vcpus,
        None => return Err(BoardError::Image(xcp_builder::Error::BadVcpuCount)),
    };
    let mut config = XenDomctlCreatedomain::pv(vcpus);
    config.handle = role.handle;
    if role.is_server {
        config.flags |= XEN_DOMCTL_CDF_XS_DOMAIN;
    }
    if role.passthrough {
        config.flags |= XEN_DOMCTL_CDF_IOMMU;
    }
    config.max_grant_frames = MAX_GRANT_FRAMES;
    config.max_maptrack_frames = MAX_MAPTRACK_FRAMES;
    let domid = pf
        .create_domain(role.domid, &config)
        .map_err(BoardError::at(Step::CreateDomain))?;
    log.push(Undo::Domain(domid));
    let text = cmdline(pf, log, domid)?;
    fill(pf, domid, &kernel, module, nr_pages, role, &text)
}

/// Builds a paused domain with a fixed command line (and the ramdisk
/// `module`, empty for none); on failure nothing is left behind. On success
/// the domain is the caller's to destroy.
pub fn build<P: Platform>(
    pf: &mut P,
    image: &[u8],
    module: &[u8],
    memory_mib: u32,
    role: DomainRole,
    cmdline: &str,
) -> Result<Built, BoardError<P::Error>> {
    UndoLog::run(pf, |pf, log| {
        build_domain(pf, log, image, module, memory_mib, role, &mut |_, _, _| {
            Ok(String::from(cmdline))
        })
    })
}

/// Loads a deferred (xz) kernel into `domid` with its `dictionary` lent
/// from the top of the domain's RAM (the last pfns of `p2m`, mapped into
/// dom0 as one run): a counting pass to plan from, then the pass that
/// writes the kernel's pages (which must lie below the lent frames). The
/// run is zeroed and unmapped on every path before this returns, so the
/// guest gets its RAM as Xen gave it and an undo can destroy the domain.
/// Returns the plan.
fn lend_dictionary<P: Platform>(
    pf: &mut P,
    domid: u16,
    image: &[u8],
    dictionary: u64,
    req: &BuildRequest<'_>,
    p2m: &[u64],
) -> Result<PvPlan, BoardError<P::Error>> {
    let pages = dictionary.div_ceil(PAGE);
    let nr = p2m.len() as u64;
    // The kernel needs the rest: at most half the RAM is lent.
    if pages > nr / 2 {
        return Err(BoardError::NoRoomForDictionary {
            dictionary: pages * PAGE,
            low_ram: nr * PAGE,
            at: None,
        });
    }
    let first = nr - pages;
    let mut run = pf
        .map_guest_frames(domid, &p2m[first as usize..])
        .map_err(BoardError::at(Step::LoadKernel))?;
    let result = two_passes(
        pf,
        domid,
        image,
        P::guest_run_bytes(&mut run),
        req,
        p2m,
        first,
    );
    P::guest_run_bytes(&mut run).fill(0);
    drop(run);
    result
}

/// [`lend_dictionary`]'s passes over `image` with `dictionary` (the run),
/// the lent frames starting at pfn `lent`.
fn two_passes<P: Platform>(
    pf: &mut P,
    domid: u16,
    image: &[u8],
    dictionary: &mut [u8],
    req: &BuildRequest<'_>,
    p2m: &[u64],
    lent: u64,
) -> Result<PvPlan, BoardError<P::Error>> {
    let limits = Limits::default();
    let loaded =
        xcp_kimage::load_with_dictionary(image, &limits, dictionary, &mut CountingSink::default())
            .map_err(BoardError::Kernel)?;
    let plan = elf_of(&loaded)
        .and_then(|elf| PvPlan::from_elf(&elf, req))
        .map_err(BoardError::Image)?;
    let kernel = plan.layout().kernel;
    if kernel.end() > lent {
        return Err(BoardError::NoRoomForDictionary {
            dictionary: (p2m.len() as u64 - lent) * PAGE,
            low_ram: p2m.len() as u64 * PAGE,
            at: Some(kernel.end() * PAGE),
        });
    }
    let mut sink = PvKernelSink::new(pf, domid, &plan, p2m);
    let loaded = xcp_kimage::load_with_dictionary(image, &limits, dictionary, &mut sink);
    let failed = sink.failed.take();
    kernel_result(loaded, failed).map(|_| plan)
}

fn plan_err<E>(step: Step) -> impl FnOnce(xcp_builder::Error) -> BoardError<E> {
    move |error| BoardError::Plan { step, error }
}

/// Writes `mfn` of `domid` with `fill`, which may fail with a plan error.
fn write_frame<P: Platform>(
    pf: &mut P,
    domid: u16,
    mfn: u64,
    step: Step,
    fill: &mut dyn FnMut(&mut [u8; 4096]) -> Result<(), xcp_builder::Error>,
) -> Result<(), BoardError<P::Error>> {
    let mut result = Ok(());
    pf.write_foreign(domid, mfn, &mut |dst| result = fill(dst))
        .map_err(BoardError::at(step))?;
    result.map_err(plan_err(step))
}

fn fill<P: Platform>(
    pf: &mut P,
    domid: u16,
    kernel: &Kernel<'_>,
    module: &[u8],
    nr_pages: u64,
    role: DomainRole,
    text: &str,
) -> Result<Built, BoardError<P::Error>> {
    let xenstored = role.server;
    let req = BuildRequest {
        memory_pages: nr_pages,
        cmdline: text.as_bytes(),
        module_len: module.len() as u64,
        vcpus: role.vcpus,
    };
    pf.set_max_vcpus(domid, role.vcpus)
        .map_err(BoardError::at(Step::MaxVcpus))?;
    pf.set_max_mem(domid, nr_pages * 4 + MAXMEM_SLACK_KIB)
        .map_err(BoardError::at(Step::MaxMem))?;
    let p2m = pf
        .populate_physmap(domid, nr_pages)
        .map_err(BoardError::at(Step::PopulatePhysmap))?;
    // A deferred kernel is decompressed twice now, its dictionary lent
    // from the top of the domain's RAM: once to plan from, once into its
    // kernel pages.
    let plan = match kernel {
        Kernel::Elf(image) => PvPlan::new(image, &req).map_err(BoardError::Image)?,
        Kernel::Streamed { elf, .. } => PvPlan::from_elf(elf, &req).map_err(BoardError::Image)?,
        Kernel::Deferred { image, dictionary } => {
            lend_dictionary(pf, domid, image, *dictionary, &req, &p2m)?
        }
    };
    let layout = *plan.layout();
    // Ports of the new domain: they go with it.
    let console_port = pf
        .alloc_unbound_for(domid, 0)
        .map_err(BoardError::at(Step::ConsolePort))?;
    let store_port = pf
        .alloc_unbound_for(domid, xenstored.unwrap_or(0))
        .map_err(BoardError::at(Step::XenstorePort))?;
    let info = pf
        .domain_info(domid)
        .map_err(BoardError::at(Step::DomainInfo))?;
    // A streamed kernel goes straight into its pages; the pages between
    // and around its segments stay as Xen handed them out: scrubbed.
    let image = match kernel {
        Kernel::Elf(image) => image,
        // Its second pass wrote it.
        Kernel::Deferred { .. } => &[][..],
        Kernel::Streamed { image, .. } => {
            let mut sink = PvKernelSink::new(pf, domid, &plan, &p2m);
            let loaded = xcp_kimage::load(image, &Limits::default(), &mut sink);
            let failed = sink.failed.take();
            kernel_result(loaded, failed)?;
            &[][..]
        }
    };
    let streamed = !matches!(kernel, Kernel::Elf(_));
    let sources = PageSources {
        image,
        module,
        p2m: &p2m,
        start_info: StartInfoArgs {
            shared_info_maddr: info.shared_info_frame << 12,
            store_evtchn: store_port,
            console_evtchn: console_port,
            flags: 0,
        },
    };
    // Every boot page; the page tables come after everything else in pfn
    // order, and each foreign mapping is gone before Xen validates them at
    // pin time.
    let pages: Vec<(u64, PageKind)> = plan.pages().collect();
    for (pfn, kind) in pages {
        if streamed && kind == PageKind::Kernel {
            continue;
        }
        let mfn = *p2m.get(pfn as usize).ok_or(BoardError::Plan {
            step: Step::WritePage { pfn },
            error: xcp_builder::Error::P2mTooShort,
        })?;
        write_frame(pf, domid, mfn, Step::WritePage { pfn }, &mut |dst| {
            plan.write_page(pfn, &sources, dst).map(|_| ())
        })?;
    }
    // As libxc's xc_dom_gnttab_seed: grant entry 0 gives dom0 the console
    // ring, entry 1 gives the xenstore domain the xenstore ring, so neither
    // needs to map foreign frames.
    if let Some(server) = xenstored {
        let seed = xcp_builder::gnttab_seed(&layout, &p2m, 0, server)
            .map_err(plan_err(Step::GrantSeed))?;
        let frame = pf
            .grant_table_frame(domid)
            .map_err(BoardError::at(Step::GrantTable))?;
        write_frame(pf, domid, frame, Step::GrantSeed, &mut |dst| {
            for (gref, entry) in seed.iter() {
                let at = *gref as usize * entry.len();
                dst[at..at + entry.len()].copy_from_slice(entry);
            }
            Ok(())
        })?;
    }
    // As libxc does: shared_info starts zeroed with every vCPU's upcalls
    // masked (our runtime polls and registers no callback).
    write_frame(
        pf,
        domid,
        info.shared_info_frame,
        Step::SharedInfo,
        &mut |dst| {
            xcp_builder::write_shared_info(dst);
            Ok(())
        },
    )?;
    let hypercall_mfn = plan
        .hypercall_page_mfn(&p2m)
        .map_err(plan_err(Step::HypercallInit))?;
    if let Some(mfn) = hypercall_mfn {
        pf.hypercall_init(domid, mfn)
            .map_err(BoardError::at(Step::HypercallInit))?;
    }
    let regs = plan
        .vcpu_context(&p2m)
        .map_err(plan_err(Step::VcpuContext))?;
    pf.pin_l4(domid, regs.l4_mfn)
        .map_err(BoardError::at(Step::PinL4))?;
    pf.set_vcpu_context(domid, &regs)
        .map_err(BoardError::at(Step::VcpuContext))?;
    Ok(Built {
        domid,
        console_mfn: p2m[layout.console_pfn as usize],
        console_port,
        store_mfn: p2m[layout.xenstore_pfn as usize],
        store_port,
    })
}

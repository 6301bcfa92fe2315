//! The domain builder's executor: creates the domain and carries out the
//! pure plan of `xcp-builder` with hypercalls — populate memory, copy the
//! image, write the P2M, start_info and page tables, let Xen fill the
//! hypercall page, pin the top-level table, set the vCPU, and hand back a
//! paused domain. Any failure destroys the half-built domain, so its memory
//! returns to Xen.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use xcp_builder::{BuildRequest, PageKind, PageSources, PvPlan, StartInfoArgs};
use xcp_runtime::control;
use xen_sys::domctl_payloads::XenDomctlCreatedomain;

/// What the builder made.
pub struct Built {
    /// The new domain (paused).
    pub domid: u16,
    /// Machine frame of its console ring.
    pub console_mfn: u64,
    /// Its end of the console event channel.
    pub console_port: u32,
    /// Machine frame of its xenstore ring.
    #[allow(dead_code)] // read once dom0 introduces domains to xenstore
    pub store_mfn: u64,
    /// Its end of the xenstore event channel.
    #[allow(dead_code)] // read once dom0 introduces domains to xenstore
    pub store_port: u32,
}

/// Grant frames and maptrack frames every service domain gets (libxl's defaults).
const MAX_GRANT_FRAMES: i32 = 32;
const MAX_MAPTRACK_FRAMES: i32 = 1024;
/// Slack above the domain's pages for max_mem, as libxl adds.
const MAXMEM_SLACK_KIB: u64 = 1024;

/// Writes machine frame `mfn` of `domid` through a foreign mapping.
fn write_frame(
    domid: u16,
    mfn: u64,
    fill: impl FnOnce(&mut [u8; 4096]) -> Result<(), String>,
) -> Result<(), String> {
    let mut page = xcp_runtime::paging::map_foreign(mfn, domid, true)
        .map_err(|e| format!("map frame {mfn:#x}: {e}"))?;
    fill(page.bytes_mut())
}

/// How a domain relates to xenstore and devices.
#[derive(Clone, Copy, Debug, Default)]
pub struct DomainRole {
    /// It will be given PCI devices: built with its IOMMU context
    /// (XEN_DOMCTL_CDF_iommu), without which Xen refuses assignment.
    pub passthrough: bool,
    /// The xenstore domain, if one runs: the new domain's xenstore channel
    /// and grant entry 1 are for it.
    pub server: Option<u16>,
    /// This domain is the xenstore domain (XEN_DOMCTL_CDF_xs_domain).
    pub is_server: bool,
}

/// Builds a paused 64-bit PV domain from the ELF `image`.
pub fn build_domain(
    name: &str,
    image: &[u8],
    memory_mib: u32,
    xenstore: DomainRole,
    cmdline: &mut dyn FnMut(u16) -> String,
) -> Result<Built, String> {
    let nr_pages = u64::from(memory_mib) * 256;
    // Check the image before Xen is asked for anything.
    let probe = BuildRequest {
        memory_pages: nr_pages,
        cmdline: b"",
        module_len: 0,
    };
    PvPlan::new(image, &probe).map_err(|e| format!("{name}: bad image: {e}"))?;
    let mut config = XenDomctlCreatedomain::pv(1);
    if xenstore.is_server {
        config.flags |= xen_sys::domctl_payloads::XEN_DOMCTL_CDF_XS_DOMAIN;
    }
    if xenstore.passthrough {
        config.flags |= xen_sys::domctl_payloads::XEN_DOMCTL_CDF_IOMMU;
    }
    config.max_grant_frames = MAX_GRANT_FRAMES;
    config.max_maptrack_frames = MAX_MAPTRACK_FRAMES;
    let domid = control::create_domain(&config).map_err(|e| format!("createdomain: {e}"))?;
    match fill(domid, image, nr_pages, xenstore.server, cmdline) {
        Ok(built) => Ok(built),
        Err(e) => {
            let _ = control::destroy_domain(domid);
            Err(format!("{name} (domid {domid}): {e}"))
        }
    }
}

fn fill(
    domid: u16,
    image: &[u8],
    nr_pages: u64,
    xenstored: Option<u16>,
    cmdline: &mut dyn FnMut(u16) -> String,
) -> Result<Built, String> {
    let text = cmdline(domid);
    let req = BuildRequest {
        memory_pages: nr_pages,
        cmdline: text.as_bytes(),
        module_len: 0,
    };
    let plan = PvPlan::new(image, &req).map_err(|e| format!("plan: {e}"))?;
    let layout = *plan.layout();
    control::set_max_vcpus(domid, 1).map_err(|e| format!("max_vcpus: {e}"))?;
    control::set_max_mem(domid, nr_pages * 4 + MAXMEM_SLACK_KIB)
        .map_err(|e| format!("max_mem: {e}"))?;
    let p2m =
        control::populate_physmap(domid, nr_pages).map_err(|e| format!("populate_physmap: {e}"))?;
    let console_port = xcp_runtime::evtchn::alloc_unbound_for(domid, 0)
        .map_err(|e| format!("console evtchn: {e}"))?;
    let store_port = xcp_runtime::evtchn::alloc_unbound_for(domid, xenstored.unwrap_or(0))
        .map_err(|e| format!("xenstore evtchn: {e}"))?;
    let info = control::domain_info(domid).map_err(|e| format!("getdomaininfo: {e}"))?;
    let sources = PageSources {
        image,
        module: &[],
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
    for (pfn, _) in pages {
        write_frame(domid, p2m[pfn as usize], |dst| {
            plan.write_page(pfn, &sources, dst)
                .map(|_| ())
                .map_err(|e| format!("pfn {pfn}: {e}"))
        })?;
    }
    // As libxc's xc_dom_gnttab_seed: grant entry 0 gives dom0 the console
    // ring, entry 1 gives the xenstore domain the xenstore ring, so neither
    // needs to map foreign frames.
    if let Some(server) = xenstored {
        let seed = xcp_builder::gnttab_seed(&layout, &p2m, 0, server)
            .map_err(|e| format!("grant seed: {e}"))?;
        let frame = control::grant_table_frame(domid).map_err(|e| format!("grant table: {e:?}"))?;
        write_frame(domid, frame, |dst| {
            for (gref, entry) in seed.iter() {
                let at = *gref as usize * entry.len();
                dst[at..at + entry.len()].copy_from_slice(entry);
            }
            Ok(())
        })?;
    }
    // As libxc does: shared_info starts zeroed with every vCPU's upcalls
    // masked (our runtime polls and registers no callback).
    write_frame(domid, info.shared_info_frame, |dst| {
        xcp_builder::write_shared_info(dst);
        Ok(())
    })?;
    let hypercall_mfn = plan
        .hypercall_page_mfn(&p2m)
        .map_err(|e| format!("hypercall page: {e}"))?;
    if let Some(mfn) = hypercall_mfn {
        control::hypercall_init(domid, mfn).map_err(|e| format!("hypercall_init: {e}"))?;
    }
    let regs = plan
        .vcpu_context(&p2m)
        .map_err(|e| format!("vcpu context: {e}"))?;
    control::pin_l4(domid, regs.l4_mfn).map_err(|e| format!("pin L4: {e}"))?;
    let mut ctxt = control::new_vcpu_context();
    ctxt.flags = regs.flags;
    ctxt.user_regs.rip = regs.rip;
    ctxt.user_regs.rsp = regs.rsp;
    ctxt.user_regs.rsi = regs.rsi;
    ctxt.user_regs.rflags = regs.rflags;
    ctxt.user_regs.cs = regs.cs;
    ctxt.user_regs.ss = regs.ss;
    ctxt.user_regs.ds = regs.ds;
    ctxt.user_regs.es = regs.es;
    ctxt.user_regs.fs = regs.fs;
    ctxt.user_regs.gs = regs.gs;
    ctxt.kernel_ss = regs.kernel_ss;
    ctxt.kernel_sp = regs.kernel_sp;
    ctxt.ctrlreg[3] = regs.cr3;
    ctxt.debugreg[6] = regs.dr6;
    ctxt.debugreg[7] = regs.dr7;
    control::set_vcpu_context(domid, 0, &mut ctxt).map_err(|e| format!("setvcpucontext: {e}"))?;
    Ok(Built {
        domid,
        console_mfn: p2m[layout.console_pfn as usize],
        console_port,
        store_mfn: p2m[layout.xenstore_pfn as usize],
        store_port,
    })
}

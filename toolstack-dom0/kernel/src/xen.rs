//! dom0's [`Platform`] on real Xen: every hypercall the board makes,
//! through the runtime. No state about domains lives here; only the
//! event-loop watches the board asked for, applied by [`Xen::sync`] (the
//! loop is the caller's while the board runs).

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;

use log::error;
use xcp_builder::PvVcpuContext;
use xcp_dom0_board::{CpuShare, DomainInfo, Platform};
use xcp_pci::{Bdf, ConfigAccess};
use xcp_runtime::control;
use xcp_runtime::event_loop::Loop;
use xcp_runtime::gnttab::GrantError;
use xcp_runtime::paging::Frame;
use xcp_runtime::pci_conf::PortConfig;
use xen_sys::domctl_payloads::XenDomctlCreatedomain;
use xen_sys::Errno;

use crate::relay::ConsoleLink;
use crate::xs::XsLink;

/// Reads of `device_status` waited for after the virtio reset write.
const RESET_POLLS: u32 = 1000;

/// What a hypercall (or the runtime) said.
#[derive(Clone, Copy, Debug)]
pub enum XenError {
    /// A hypercall's errno.
    Errno(Errno),
    /// The grant table.
    Grant(GrantError),
    /// Xen's grant-table operation.
    Gnttab(xen_sys::grant_table::GnttabError),
    /// No free frame.
    NoFrame,
    /// A xenstore request (`what`) failed.
    Xenstore(&'static str, xcp_xenbus::Error),
}

impl fmt::Display for XenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XenError::Errno(e) => write!(f, "{e}"),
            XenError::Grant(e) => write!(f, "{e:?}"),
            XenError::Gnttab(e) => write!(f, "{e:?}"),
            XenError::NoFrame => f.write_str("out of frames"),
            XenError::Xenstore(what, e) => write!(f, "xenstore {what}: {e:?}"),
        }
    }
}

impl From<Errno> for XenError {
    fn from(e: Errno) -> Self {
        XenError::Errno(e)
    }
}

impl From<GrantError> for XenError {
    fn from(e: GrantError) -> Self {
        XenError::Grant(e)
    }
}

/// dom0's board on real Xen.
pub type Dom0Board = xcp_dom0_board::Board<Xen>;

/// The real platform.
#[derive(Default)]
pub struct Xen {
    /// Watches (true) and unwatches the board asked for, in order.
    watches: Vec<(u32, bool)>,
    /// Config access, once dom0 got port I/O.
    conf: Option<PortConfig>,
    /// The running scheduler (`XEN_SCHEDULER_*`), once asked: every
    /// `XEN_DOMCTL_scheduler_op` must name it.
    sched_id: Option<u32>,
}

impl Xen {
    /// A platform with nothing pending.
    pub fn new() -> Self {
        Xen::default()
    }

    /// Config access through ports 0xCF8/0xCFC, if dom0 may use them.
    fn config(&mut self) -> Option<&mut PortConfig> {
        if self.conf.is_none() {
            match PortConfig::new() {
                Ok(c) => self.conf = Some(c),
                Err(e) => error!("no PCI config access: {e}"),
            }
        }
        self.conf.as_mut()
    }

    /// Applies the watches the board asked for to dom0's event loop.
    pub fn sync(&mut self, lp: &mut Loop) {
        for (port, watch) in self.watches.drain(..) {
            if !watch {
                lp.unwatch(port);
            } else if let Err(e) = lp.watch(port) {
                error!("watch port {port}: {e}");
            }
        }
    }
}

impl Xen {
    /// The running scheduler's id (`XEN_SCHEDULER_*`), asked once.
    pub fn sched_id(&mut self) -> Result<u32, XenError> {
        if let Some(id) = self.sched_id {
            return Ok(id);
        }
        let id = control::sched_id()?;
        self.sched_id = Some(id);
        Ok(id)
    }
}

impl Platform for Xen {
    type Error = XenError;
    type Page = Frame;
    type Console = ConsoleLink;
    type Xs = XsLink;
    type GuestRun = xcp_runtime::foreign_run::ForeignRun;

    fn now_ns(&mut self) -> u64 {
        xcp_runtime::time::now_ns()
    }

    fn create_domain(
        &mut self,
        domid: u16,
        config: &XenDomctlCreatedomain,
    ) -> Result<u16, XenError> {
        Ok(control::create_domain(domid, config)?)
    }

    fn destroy_domain(&mut self, domid: u16) -> Result<(), XenError> {
        Ok(control::destroy_domain(domid)?)
    }

    fn pause_domain(&mut self, domid: u16) -> Result<(), XenError> {
        Ok(control::pause_domain(domid)?)
    }

    fn unpause_domain(&mut self, domid: u16) -> Result<(), XenError> {
        Ok(control::unpause_domain(domid)?)
    }

    fn domain_info(&mut self, domid: u16) -> Result<DomainInfo, XenError> {
        let info = control::domain_info(domid)?;
        Ok(DomainInfo {
            domain: info.domain,
            flags: info.flags,
            tot_pages: info.tot_pages,
            max_pages: info.max_pages,
            shared_info_frame: info.shared_info_frame,
        })
    }

    fn remote_shutdown(&mut self, domid: u16, reason: u32) -> Result<(), XenError> {
        Ok(control::remote_shutdown(domid, reason)?)
    }

    fn set_cpu_share(&mut self, domid: u16, share: CpuShare) -> Result<(), XenError> {
        let sched = self.sched_id()?;
        Ok(control::set_sched_credit(
            domid,
            sched,
            share.weight,
            share.cap,
        )?)
    }

    fn cpu_share(&mut self, domid: u16) -> Result<CpuShare, XenError> {
        let sched = self.sched_id()?;
        let (weight, cap) = control::sched_credit(domid, sched)?;
        Ok(CpuShare { weight, cap })
    }

    fn set_virq_handler(&mut self, domid: u16, virq: u32) -> Result<(), XenError> {
        Ok(control::set_virq_handler(domid, virq)?)
    }

    fn set_max_vcpus(&mut self, domid: u16, max: u32) -> Result<(), XenError> {
        Ok(control::set_max_vcpus(domid, max)?)
    }

    fn set_max_mem(&mut self, domid: u16, kib: u64) -> Result<(), XenError> {
        Ok(control::set_max_mem(domid, kib)?)
    }

    fn populate_physmap(&mut self, domid: u16, nr_pages: u64) -> Result<Vec<u64>, XenError> {
        Ok(control::populate_physmap(domid, nr_pages)?)
    }

    fn write_foreign(
        &mut self,
        domid: u16,
        mfn: u64,
        fill: &mut dyn FnMut(&mut [u8; 4096]),
    ) -> Result<(), XenError> {
        let mut page = xcp_runtime::paging::map_foreign(mfn, domid, true)?;
        fill(page.bytes_mut());
        Ok(())
    }

    fn map_guest_run(
        &mut self,
        domid: u16,
        first: u64,
        count: u64,
    ) -> Result<Self::GuestRun, XenError> {
        let count = usize::try_from(count).map_err(|_| xen_sys::Errno::EINVAL)?;
        Ok(xcp_runtime::foreign_run::ForeignRun::map(
            domid, first, count,
        )?)
    }

    fn map_guest_frames(&mut self, domid: u16, frames: &[u64]) -> Result<Self::GuestRun, XenError> {
        Ok(xcp_runtime::foreign_run::ForeignRun::map_frames(
            domid, frames,
        )?)
    }

    fn guest_run_bytes(run: &mut Self::GuestRun) -> &mut [u8] {
        run.bytes_mut()
    }

    fn populate_gfns(&mut self, domid: u16, first: u64, count: u64) -> Result<(), XenError> {
        Ok(control::populate_gfns(domid, first, count)?)
    }

    fn set_paging_pool(&mut self, domid: u16, bytes: u64) -> Result<(), XenError> {
        Ok(control::set_paging_pool(domid, bytes)?)
    }

    fn set_memory_map(&mut self, domid: u16, e820: &[u8]) -> Result<(), XenError> {
        Ok(control::set_memory_map(domid, e820)?)
    }

    fn set_hvm_param(&mut self, domid: u16, index: u32, value: u64) -> Result<(), XenError> {
        Ok(control::set_hvm_param(domid, index, value)?)
    }

    fn hvm_context(&mut self, domid: u16) -> Result<Vec<u8>, XenError> {
        Ok(control::hvm_context(domid)?)
    }

    fn set_hvm_context(&mut self, domid: u16, records: &[u8]) -> Result<(), XenError> {
        Ok(control::set_hvm_context(domid, records)?)
    }

    fn map_grant_table_at(&mut self, domid: u16, gfn: u64) -> Result<(), XenError> {
        Ok(control::map_grant_table_at(domid, gfn)?)
    }

    fn remove_gfn(&mut self, domid: u16, gfn: u64) -> Result<(), XenError> {
        Ok(control::remove_gfn(domid, gfn)?)
    }

    fn grant_table_frame(&mut self, domid: u16) -> Result<u64, XenError> {
        control::grant_table_frame(domid).map_err(XenError::Gnttab)
    }

    fn hypercall_init(&mut self, domid: u16, mfn: u64) -> Result<(), XenError> {
        Ok(control::hypercall_init(domid, mfn)?)
    }

    fn pin_l4(&mut self, domid: u16, mfn: u64) -> Result<(), XenError> {
        Ok(control::pin_l4(domid, mfn)?)
    }

    fn set_vcpu_context(&mut self, domid: u16, regs: &PvVcpuContext) -> Result<(), XenError> {
        let mut ctxt: Box<_> = control::new_vcpu_context();
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
        Ok(control::set_vcpu_context(domid, 0, &mut ctxt)?)
    }

    fn alloc_unbound(&mut self, remote: u16) -> Result<u32, XenError> {
        Ok(xcp_runtime::evtchn::alloc_unbound(remote)?)
    }

    fn alloc_unbound_for(&mut self, domid: u16, remote: u16) -> Result<u32, XenError> {
        Ok(xcp_runtime::evtchn::alloc_unbound_for(domid, remote)?)
    }

    fn close_port(&mut self, port: u32) -> Result<(), XenError> {
        Ok(xcp_runtime::evtchn::close(port)?)
    }

    fn watch(&mut self, port: u32) {
        self.watches.push((port, true));
    }

    fn unwatch(&mut self, port: u32) {
        self.watches.push((port, false));
    }

    fn alloc_page(&mut self) -> Result<Frame, XenError> {
        Frame::alloc().map_err(|_| XenError::NoFrame)
    }

    fn write_page(&mut self, page: &mut Frame, offset: usize, bytes: &[u8]) {
        page.bytes_mut()[offset..offset + bytes.len()].copy_from_slice(bytes);
    }

    fn grant_access(&mut self, domid: u16, page: &Frame, readonly: bool) -> Result<u32, XenError> {
        Ok(xcp_runtime::gnttab::grant_access(
            domid,
            page.pfn(),
            readonly,
        )?)
    }

    fn end_access(&mut self, gref: u32) -> Result<(), XenError> {
        Ok(xcp_runtime::gnttab::end_access(gref)?)
    }

    fn pci_read32(&mut self, bdf: Bdf, offset: u8) -> u32 {
        self.config().map_or(0xffff_ffff, |c| c.read32(bdf, offset))
    }

    fn pci_write32(&mut self, bdf: Bdf, offset: u8, value: u32) {
        if let Some(c) = self.config() {
            c.write32(bdf, offset, value);
        }
    }

    fn pci_write16(&mut self, bdf: Bdf, offset: u8, value: u16) {
        if let Some(c) = self.config() {
            c.write16(bdf, offset, value);
        }
    }

    fn virtio_reset(&mut self, status_at: u64) -> Result<(u8, u8), XenError> {
        let page = status_at & !0xfff;
        let regs = xcp_runtime::mmio::MmioRegion::map(page, 0x1000)?;
        let at = status_at - page;
        let before = regs.read8(at);
        regs.write8(at, 0);
        let mut after = regs.read8(at);
        for _ in 0..RESET_POLLS {
            if after == 0 {
                break;
            }
            after = regs.read8(at);
        }
        Ok((before, after))
    }

    fn assign_pci(&mut self, domid: u16, bdf: Bdf) -> Result<(), XenError> {
        Ok(control::assign_pci(domid, bdf)?)
    }

    fn deassign_pci(&mut self, domid: u16, bdf: Bdf) -> Result<(), XenError> {
        Ok(control::deassign_pci(domid, bdf)?)
    }

    fn iomem_permission(
        &mut self,
        domid: u16,
        first: u64,
        count: u64,
        allow: bool,
    ) -> Result<(), XenError> {
        Ok(control::iomem_permission(domid, first, count, allow)?)
    }

    fn ioport_permission(
        &mut self,
        domid: u16,
        first: u32,
        count: u32,
        allow: bool,
    ) -> Result<(), XenError> {
        Ok(control::ioport_permission(domid, first, count, allow)?)
    }

    fn prepare_msix(&mut self, bdf: Bdf) -> Result<(), XenError> {
        Ok(control::prepare_msix(bdf)?)
    }

    fn release_msix(&mut self, bdf: Bdf) -> Result<(), XenError> {
        Ok(control::release_msix(bdf)?)
    }

    fn map_msix_pirq(
        &mut self,
        domid: u16,
        bdf: Bdf,
        entry: u16,
        table_base: u64,
    ) -> Result<u32, XenError> {
        Ok(control::map_msix_pirq(domid, bdf, entry, table_base)?)
    }

    fn unmap_pirq(&mut self, domid: u16, pirq: u32) -> Result<(), XenError> {
        Ok(control::unmap_pirq(domid, pirq)?)
    }

    fn console_connect(
        &mut self,
        name: &str,
        domid: u16,
        mfn: u64,
        remote_port: u32,
    ) -> Result<ConsoleLink, XenError> {
        Ok(ConsoleLink::connect(name, domid, mfn, remote_port)?)
    }

    fn console_port(console: &ConsoleLink) -> u32 {
        console.port
    }

    fn console_drain(&mut self, console: &mut ConsoleLink) -> usize {
        console.drain()
    }

    fn console_close(&mut self, console: ConsoleLink) {
        console.close();
    }

    fn xs_connect(&mut self, _xs_domid: u16, ring: Frame, port: u32) -> XsLink {
        XsLink::connect(ring, port)
    }

    fn xs_introduce(
        &mut self,
        xs: &mut XsLink,
        domid: u16,
        name: &str,
        store_mfn: u64,
        store_port: u32,
    ) -> Result<bool, XenError> {
        xs.introduce(domid, name, store_mfn, store_port)
    }

    fn xs_release(&mut self, xs: &mut XsLink, domid: u16) -> Result<(), XenError> {
        xs.release(domid)
    }

    fn xs_watch_lifecycle(&mut self, xs: &mut XsLink) -> Result<(), XenError> {
        xs.watch_lifecycle()
    }

    fn xs_lifecycle_fired(&mut self, xs: &mut XsLink) -> bool {
        xs.lifecycle_fired()
    }
}

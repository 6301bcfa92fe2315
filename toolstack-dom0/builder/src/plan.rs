//! The build plan: a checked layout plus generators for every boot page.
//!
//! Read first: tools/libs/guest/xg_dom_core.c (`xc_dom_build_image`: the
//! order libxc allocates and fills segments) and xg_dom_x86.c
//! (`start_info_x86_64`, `vcpu_x86_64`). A plan is made before the domain
//! exists, from the image alone; the generators then take the p2m (pfn ->
//! mfn) the executor got from `populate_physmap` and return page bytes.

use alloc::vec::Vec;
use core::iter;

use crate::elf::ElfImage;
use crate::layout::{self, BuildRequest, PvLayout, SegmentCopy, PAGE_SIZE};
use crate::notes::XenNotes;
use crate::pagetable::{self, MAX_MFN};
use crate::start_info::{self, StartInfoArgs};
use crate::vcpu::{self, PvVcpuContext};
use crate::{Error, Page};

/// Which kind of guest to plan. Only PV exists now; PVH (hvm_start_info,
/// HVM params, identity-mapped low layout) will be a second arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GuestKind {
    /// 64-bit PV.
    Pv,
}

/// A build plan for some kind of guest.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Plan {
    /// A 64-bit PV plan.
    Pv(PvPlan),
}

impl Plan {
    /// Parses and checks `image` and lays out a guest of `kind`.
    pub fn new(image: &[u8], req: &BuildRequest<'_>, kind: GuestKind) -> Result<Self, Error> {
        match kind {
            GuestKind::Pv => PvPlan::new(image, req).map(Plan::Pv),
        }
    }
}

/// What a boot page holds (all pages not listed by [`PvPlan::pages`] are
/// ordinary RAM and left as Xen hands them out: scrubbed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageKind {
    /// Part of the kernel image (segment bytes and zero fill).
    Kernel,
    /// Part of the module (initrd).
    Module,
    /// Part of the p2m list.
    P2m,
    /// The start_info page.
    StartInfo,
    /// The xenstore ring (zeroed).
    Xenstore,
    /// The console ring (zeroed).
    Console,
    /// A page-table frame.
    PageTable,
    /// The boot stack (zeroed).
    Stack,
}

/// What the executor passes to [`PvPlan::write_page`].
#[derive(Clone, Copy, Debug)]
pub struct PageSources<'a> {
    /// The same image bytes the plan was made from.
    pub image: &'a [u8],
    /// The module bytes (`module_len` of them), or empty.
    pub module: &'a [u8],
    /// pfn -> mfn for every pfn below `nr_pages`.
    pub p2m: &'a [u64],
    /// Values for start_info.
    pub start_info: StartInfoArgs,
}

/// A checked 64-bit PV plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PvPlan {
    layout: PvLayout,
    segments: Vec<SegmentCopy>,
    cmdline: Vec<u8>,
    notes: XenNotes,
}

impl PvPlan {
    /// Parses and checks `image`, and lays out a PV guest for `req`.
    pub fn new(image: &[u8], req: &BuildRequest<'_>) -> Result<Self, Error> {
        Self::from_elf(&ElfImage::parse(image)?, req)
    }

    /// Lays out a PV guest for `req` around a kernel whose ELF another
    /// reader summarised (`xcp_kimage` streaming a bzImage's payload: it
    /// checked the segments against the ELF it decompressed). Every
    /// placement check of [`PvPlan::new`] applies; the kernel's bytes are
    /// then the loader's to write ([`PvPlan::write_kernel_page`] needs the
    /// ELF in memory), the plan's other pages the executor's.
    pub fn from_elf(elf: &ElfImage, req: &BuildRequest<'_>) -> Result<Self, Error> {
        if elf.segments.is_empty() {
            return Err(Error::NoLoadSegments);
        }
        if elf.segments.len() > crate::MAX_LOAD_SEGMENTS {
            return Err(Error::TooManySegments);
        }
        for seg in &elf.segments {
            if seg.filesz > seg.memsz {
                return Err(Error::FileSizeExceedsMemSize);
            }
            if seg.memsz == 0 {
                return Err(Error::NoLoadSegments);
            }
        }
        let (layout, segments) = layout::place(elf, req)?;
        Ok(PvPlan {
            layout,
            segments,
            cmdline: req.cmdline.to_vec(),
            notes: elf.notes.clone(),
        })
    }

    /// The guest page a kernel loader's guest-physical address `paddr`
    /// (an ELF `p_paddr`) lands in, if that page is one of the kernel's:
    /// where a streaming loader's bytes go (`paddr + virt_offset` is their
    /// virtual address, as for the segments [`PvPlan::new`] placed).
    pub fn kernel_pfn_of(&self, paddr: u64) -> Option<u64> {
        let l = &self.layout;
        let va = paddr.wrapping_add(l.virt_offset);
        if va < l.virt_kstart || va >= l.virt_kend {
            return None;
        }
        Some((va - l.virt_base) / PAGE_SIZE)
    }

    /// The layout: every pfn and address of the plan.
    pub fn layout(&self) -> &PvLayout {
        &self.layout
    }

    /// The placed `PT_LOAD` segments, in guest address order.
    pub fn segments(&self) -> &[SegmentCopy] {
        &self.segments
    }

    /// The image's Xen notes.
    pub fn notes(&self) -> &XenNotes {
        &self.notes
    }

    /// The command line (no NUL).
    pub fn cmdline(&self) -> &[u8] {
        &self.cmdline
    }

    /// Every pfn the executor must write, in pfn order, with its kind.
    pub fn pages(&self) -> impl Iterator<Item = (u64, PageKind)> + '_ {
        let l = &self.layout;
        let range = |r: layout::PfnRange, kind| (r.start..r.end()).map(move |p| (p, kind));
        range(l.kernel, PageKind::Kernel)
            .chain(range(l.module, PageKind::Module))
            .chain(range(l.p2m, PageKind::P2m))
            .chain(iter::once((l.start_info_pfn, PageKind::StartInfo)))
            .chain(iter::once((l.xenstore_pfn, PageKind::Xenstore)))
            .chain(iter::once((l.console_pfn, PageKind::Console)))
            .chain(range(l.page_tables, PageKind::PageTable))
            .chain(iter::once((l.stack_pfn, PageKind::Stack)))
    }

    /// The kind of boot page `pfn` is, if it is one.
    pub fn page_kind(&self, pfn: u64) -> Option<PageKind> {
        let l = &self.layout;
        if l.kernel.contains(pfn) {
            Some(PageKind::Kernel)
        } else if l.module.contains(pfn) {
            Some(PageKind::Module)
        } else if l.p2m.contains(pfn) {
            Some(PageKind::P2m)
        } else if pfn == l.start_info_pfn {
            Some(PageKind::StartInfo)
        } else if pfn == l.xenstore_pfn {
            Some(PageKind::Xenstore)
        } else if pfn == l.console_pfn {
            Some(PageKind::Console)
        } else if l.page_tables.contains(pfn) {
            Some(PageKind::PageTable)
        } else if pfn == l.stack_pfn {
            Some(PageKind::Stack)
        } else {
            None
        }
    }

    /// Writes boot page `pfn` into `dst` (a mapping of its mfn) and says
    /// what it was. Fails with `NotThisKind` for a pfn that is not a boot page.
    pub fn write_page(
        &self,
        pfn: u64,
        src: &PageSources<'_>,
        dst: &mut Page,
    ) -> Result<PageKind, Error> {
        let kind = self.page_kind(pfn).ok_or(Error::NotThisKind)?;
        match kind {
            PageKind::Kernel => self.write_kernel_page(src.image, pfn, dst)?,
            PageKind::Module => self.write_module_page(src.module, pfn, dst)?,
            PageKind::P2m => self.write_p2m_page(src.p2m, pfn, dst)?,
            PageKind::StartInfo => *dst = self.start_info(src.p2m, &src.start_info)?,
            PageKind::PageTable => pagetable::write_table(&self.layout, src.p2m, pfn, dst)?,
            PageKind::Xenstore | PageKind::Console | PageKind::Stack => dst.fill(0),
        }
        Ok(kind)
    }

    /// Writes kernel page `pfn`: the segment bytes that fall in it, zero
    /// elsewhere. `image` must be the image the plan was made from.
    pub fn write_kernel_page(&self, image: &[u8], pfn: u64, dst: &mut Page) -> Result<(), Error> {
        if !self.layout.kernel.contains(pfn) {
            return Err(Error::NotThisKind);
        }
        dst.fill(0);
        let page_lo = pfn * PAGE_SIZE;
        let page_hi = page_lo + PAGE_SIZE;
        for seg in &self.segments {
            // Bytes of the segment that come from the file and land in this page.
            let lo = seg.gpaddr.max(page_lo);
            let hi = (seg.gpaddr + seg.file_len).min(page_hi);
            if lo >= hi {
                continue;
            }
            let from = seg.file_offset + (lo - seg.gpaddr);
            let bytes = usize::try_from(from)
                .ok()
                .and_then(|f| image.get(f..f + (hi - lo) as usize))
                .ok_or(Error::SegmentPastFile)?;
            let at = (lo - page_lo) as usize;
            dst[at..at + bytes.len()].copy_from_slice(bytes);
        }
        Ok(())
    }

    /// Writes module page `pfn` from `module` (zero past its end).
    pub fn write_module_page(&self, module: &[u8], pfn: u64, dst: &mut Page) -> Result<(), Error> {
        let l = &self.layout;
        if !l.module.contains(pfn) {
            return Err(Error::NotThisKind);
        }
        dst.fill(0);
        let lo = ((pfn - l.module.start) * PAGE_SIZE) as usize;
        let hi = (lo + PAGE_SIZE as usize).min(module.len());
        if lo < hi {
            dst[..hi - lo].copy_from_slice(&module[lo..hi]);
        }
        Ok(())
    }

    /// Writes p2m page `pfn`: the mfns of its 512 pfns, little endian;
    /// entries past `nr_pages` are `!0` (INVALID_MFN).
    pub fn write_p2m_page(&self, p2m: &[u64], pfn: u64, dst: &mut Page) -> Result<(), Error> {
        let l = &self.layout;
        if !l.p2m.contains(pfn) {
            return Err(Error::NotThisKind);
        }
        check_p2m(l, p2m)?;
        let first = (pfn - l.p2m.start) * 512;
        for (i, chunk) in dst.chunks_exact_mut(8).enumerate() {
            let gpfn = first + i as u64;
            let mfn = if gpfn < l.nr_pages {
                p2m[gpfn as usize]
            } else {
                u64::MAX
            };
            chunk.copy_from_slice(&mfn.to_le_bytes());
        }
        Ok(())
    }

    /// The p2m list pages, `(pfn, bytes)`, after checking `p2m`.
    pub fn p2m_pages<'a>(
        &'a self,
        p2m: &'a [u64],
    ) -> Result<impl Iterator<Item = (u64, Page)> + 'a, Error> {
        check_p2m(&self.layout, p2m)?;
        let r = self.layout.p2m;
        Ok((r.start..r.end()).map(move |pfn| {
            let mut page = [0u8; 4096];
            self.write_p2m_page(p2m, pfn, &mut page)
                .expect("p2m checked and pfn in the p2m range");
            (pfn, page)
        }))
    }

    /// The whole p2m list as bytes (`p2m.count` pages, starting at pfn
    /// `p2m.start`), after checking `p2m`.
    pub fn p2m_bytes(&self, p2m: &[u64]) -> Result<Vec<u8>, Error> {
        Ok(self.p2m_pages(p2m)?.flat_map(|(_, page)| page).collect())
    }

    /// The page-table pages, `(pfn, bytes)` in pfn order (L4 first), after
    /// checking `p2m`.
    pub fn page_table_pages<'a>(
        &'a self,
        p2m: &'a [u64],
    ) -> Result<impl Iterator<Item = (u64, Page)> + 'a, Error> {
        check_p2m(&self.layout, p2m)?;
        let r = self.layout.page_tables;
        Ok((r.start..r.end()).map(move |pfn| {
            let mut page = [0u8; 4096];
            pagetable::write_table(&self.layout, p2m, pfn, &mut page)
                .expect("p2m checked and pfn in the page-table range");
            (pfn, page)
        }))
    }

    /// The start_info page.
    pub fn start_info(&self, p2m: &[u64], args: &StartInfoArgs) -> Result<Page, Error> {
        check_p2m(&self.layout, p2m)?;
        let mut page = [0u8; 4096];
        start_info::write(&self.layout, &self.cmdline, p2m, args, &mut page)?;
        Ok(page)
    }

    /// The mfn to pass as `gmfn` to `XEN_DOMCTL_hypercall_init` (for a PV
    /// guest Xen wants the machine frame), if the kernel has a hypercall page.
    pub fn hypercall_page_mfn(&self, p2m: &[u64]) -> Result<Option<u64>, Error> {
        check_p2m(&self.layout, p2m)?;
        Ok(self.layout.hypercall_page_gpfn.map(|pfn| p2m[pfn as usize]))
    }

    /// Register values for vCPU 0.
    pub fn vcpu_context(&self, p2m: &[u64]) -> Result<PvVcpuContext, Error> {
        check_p2m(&self.layout, p2m)?;
        let l = &self.layout;
        let l4_mfn = p2m[l.page_tables.start as usize];
        let rsp = l.stack_top();
        Ok(PvVcpuContext {
            flags: vcpu::VGCF_IN_KERNEL | vcpu::VGCF_ONLINE,
            rip: l.entry,
            rsp,
            rsi: l.start_info_va(),
            rflags: vcpu::RFLAGS_IF,
            cs: vcpu::FLAT_KERNEL_CS,
            ss: vcpu::FLAT_KERNEL_SS,
            ds: vcpu::FLAT_KERNEL_DS,
            es: vcpu::FLAT_KERNEL_DS,
            fs: vcpu::FLAT_KERNEL_DS,
            gs: vcpu::FLAT_KERNEL_DS,
            dr6: vcpu::DR6_DEFAULT,
            dr7: vcpu::DR7_DEFAULT,
            kernel_ss: u64::from(vcpu::FLAT_KERNEL_SS),
            kernel_sp: rsp,
            cr3: l4_mfn << 12,
            l4_mfn,
        })
    }
}

/// The p2m must cover `nr_pages` and every mfn must fit in a PTE.
fn check_p2m(layout: &PvLayout, p2m: &[u64]) -> Result<(), Error> {
    let n = usize::try_from(layout.nr_pages).map_err(|_| Error::P2mTooShort)?;
    let used = p2m.get(..n).ok_or(Error::P2mTooShort)?;
    if used.iter().any(|&mfn| mfn > MAX_MFN) {
        return Err(Error::MfnTooLarge);
    }
    Ok(())
}

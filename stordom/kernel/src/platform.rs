//! The VBD board's [`Platform`] on Xen: xenstore through the domain's own
//! connection, ring grants mapped into the runtime's window, interdomain
//! event channels, and `GNTTABOP_copy` for the datapath.
//!
//! A multi-page ring is its grants mapped one by one (window slots need
//! not be adjacent) behind one `stordom::multipage::MultiPage`, so the
//! engine sees one run and `max-ring-page-order` 2 is offered.

use alloc::string::String;
use alloc::vec::Vec;

use log::{debug, warn};
use stordom::multipage::MultiPage;
use stordom::vbds::Platform;
use xcp_blkback::{IndirectFetch, Segment};
use xcp_runtime::gnttab::{self, CopyEnd, GrantMapping};
use xcp_runtime::xenstore::Store;
use xcp_xenbus::TxId;
use xen_sys::grant_table::GnttabCopy;

const PAGE: usize = 4096;

/// stordom's handles, as the board uses them.
pub struct Kernel {
    /// stordom's xenstore connection (none: no VBDs are served).
    pub store: Option<Store>,
    /// Grant-copy batches Xen refused (a frontend's bad grant, mostly).
    pub copy_errors: u64,
}

impl Kernel {
    /// Our end of the xenstore event channel.
    pub fn store_port(&self) -> Option<u32> {
        self.store.as_ref().map(|s| s.waiter().port)
    }
}

/// Appends the operations copying `len` bytes between grant `gref` of
/// `domid` at `offset` and our bytes at `local` (a direct-map address),
/// split where `local` crosses one of our pages.
fn push_ops(
    ops: &mut Vec<GnttabCopy>,
    domid: u16,
    gref: u32,
    offset: u16,
    len: usize,
    local: u64,
    to_grant: bool,
) -> bool {
    let page = PAGE as u64;
    let mut done = 0u64;
    let len = len as u64;
    while done < len {
        let va = local + done;
        let in_page = (page - (va & (page - 1))).min(len - done);
        let ours = CopyEnd::Local {
            pfn: xcp_runtime::paging::va_to_pfn(va),
            offset: (va & (page - 1)) as u16,
        };
        let theirs = CopyEnd::Grant {
            domid,
            gref,
            offset: offset + done as u16,
        };
        let (source, dest) = if to_grant {
            (ours, theirs)
        } else {
            (theirs, ours)
        };
        match gnttab::copy_op(source, dest, in_page as u16) {
            Ok(op) => ops.push(op),
            Err(_) => return false,
        }
        done += in_page;
    }
    true
}

impl Kernel {
    fn run(&mut self, ops: &mut [GnttabCopy]) -> bool {
        match gnttab::copy(ops) {
            Ok(()) => true,
            Err(e) => {
                self.copy_errors += 1;
                if self.copy_errors <= 8 {
                    debug!("grant copy refused: {e:?}");
                }
                false
            }
        }
    }

    /// Copies between `buf` and the segments, in order.
    fn copy_segments(
        &mut self,
        domid: u16,
        segments: &[Segment],
        buf: u64,
        to_grant: bool,
    ) -> bool {
        let mut ops = Vec::new();
        if ops.try_reserve(segments.len() * 2).is_err() {
            return false;
        }
        let mut at = 0u64;
        for s in segments {
            let len = usize::from(s.len);
            if !push_ops(&mut ops, domid, s.gref, s.offset, len, buf + at, to_grant) {
                return false;
            }
            at += len as u64;
        }
        self.run(&mut ops)
    }
}

/// The segments cover exactly `len` bytes of buffer (the board sizes it
/// so; a copy past our buffer must never be issued).
fn fits(segments: &[Segment], len: usize) -> bool {
    segments.iter().map(|s| usize::from(s.len)).sum::<usize>() == len
}

impl Platform for Kernel {
    type Page = MultiPage<GrantMapping>;

    fn read(&mut self, path: &str) -> Option<Vec<u8>> {
        self.store.as_mut()?.read(TxId::NONE, path).ok()
    }

    fn write(&mut self, path: &str, value: &[u8]) -> bool {
        let Some(store) = self.store.as_mut() else {
            return false;
        };
        match store.write(TxId::NONE, path, value) {
            Ok(()) => true,
            Err(e) => {
                warn!("xenstore write {path}: {e:?}");
                false
            }
        }
    }

    fn directory(&mut self, path: &str) -> Vec<String> {
        self.store
            .as_mut()
            .and_then(|s| s.directory(TxId::NONE, path).ok())
            .unwrap_or_default()
    }

    fn watch(&mut self, path: &str, token: &str) -> bool {
        let Some(store) = self.store.as_mut() else {
            return false;
        };
        match store.watch(path, token) {
            Ok(()) => true,
            Err(e) => {
                warn!("xenstore watch {path}: {e:?}");
                false
            }
        }
    }

    fn unwatch(&mut self, path: &str, token: &str) {
        if let Some(store) = self.store.as_mut() {
            if let Err(e) = store.unwatch(path, token) {
                debug!("xenstore unwatch {path}: {e:?}");
            }
        }
    }

    fn map_ring(&mut self, domid: u16, grefs: &[u32]) -> Option<MultiPage<GrantMapping>> {
        let mut pages = Vec::new();
        pages.try_reserve_exact(grefs.len()).ok()?;
        for &gref in grefs {
            match gnttab::map_grant(domid, gref, false) {
                Ok(m) => pages.push(m),
                Err(e) => {
                    // Those mapped so far are unmapped on drop.
                    warn!("map ring grant {gref} of domain {domid}: {e:?}");
                    return None;
                }
            }
        }
        MultiPage::new(pages)
    }

    fn bind(&mut self, domid: u16, port: u32) -> Option<u32> {
        match xcp_runtime::evtchn::bind_interdomain(domid, port) {
            Ok(p) => Some(p),
            Err(e) => {
                warn!("bind port {port} of domain {domid}: {e}");
                None
            }
        }
    }

    fn unbind(&mut self, port: u32) {
        if let Err(e) = xcp_runtime::evtchn::close(port) {
            warn!("close port {port}: {e}");
        }
    }

    fn notify(&mut self, port: u32) {
        xcp_runtime::evtchn::send(port);
    }

    fn copy_in(&mut self, domid: u16, segments: &[Segment], buf: &mut [u8]) -> bool {
        if !fits(segments, buf.len()) {
            return false;
        }
        let base = buf.as_mut_ptr() as u64;
        self.copy_segments(domid, segments, base, false)
    }

    fn copy_out(&mut self, domid: u16, segments: &[Segment], buf: &[u8]) -> bool {
        if !fits(segments, buf.len()) {
            return false;
        }
        let base = buf.as_ptr() as u64;
        self.copy_segments(domid, segments, base, true)
    }

    fn fetch(&mut self, fetch: &IndirectFetch) -> Option<Vec<u8>> {
        let mut buf = Vec::new();
        buf.try_reserve_exact(fetch.len()).ok()?;
        buf.resize(fetch.len(), 0);
        let base = buf.as_mut_ptr() as u64;
        let mut ops = Vec::new();
        let mut at = 0u64;
        for &(gref, n) in &fetch.pages {
            if n > PAGE || !push_ops(&mut ops, fetch.domid, gref, 0, n, base + at, false) {
                return None;
            }
            at += n as u64;
        }
        self.run(&mut ops).then_some(buf)
    }
}

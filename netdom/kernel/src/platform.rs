//! The switch's [`Platform`] on Xen: xenstore through the domain's own
//! connection, ring grants mapped into the runtime's window, interdomain
//! event channels, `GNTTABOP_copy` for the datapath, and the virtio-net
//! NIC as the uplink.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use log::{debug, warn};
use netdom::switch::Platform;
use xcp_netback::{GrantCopy, RxPlan, TxPlan};
use xcp_runtime::gnttab::{self, CopyEnd, GrantMapping};
use xcp_runtime::xenstore::Store;
use xcp_xenbus::TxId;
use xen_sys::grant_table::GnttabCopy;

use crate::domain::Net;

const PAGE: u64 = 4096;

/// netdom's handles, as the switch uses them.
pub struct Kernel {
    /// The NIC.
    pub net: Box<Net>,
    /// netdom's xenstore connection (none: no VIFs are served).
    pub store: Option<Store>,
    /// Frames the NIC refused.
    pub uplink_errors: u64,
    /// Grant-copy batches Xen refused (a frontend's bad grant, mostly).
    pub copy_errors: u64,
}

impl Kernel {
    /// Our end of the xenstore event channel.
    pub fn store_port(&self) -> Option<u32> {
        self.store.as_ref().map(|s| s.waiter().port)
    }
}

/// Appends the operations for one engine copy between a grant and the
/// bytes at `local` (a direct-map address), split where `local` crosses
/// one of our pages (the grant side is within its page by the plan).
fn push_ops(ops: &mut Vec<GnttabCopy>, c: &GrantCopy, local: u64, to_grant: bool) -> bool {
    let mut done = 0u64;
    let len = u64::from(c.len);
    while done < len {
        let va = local + done;
        let in_page = (PAGE - (va & (PAGE - 1))).min(len - done);
        let ours = CopyEnd::Local {
            pfn: xcp_runtime::paging::va_to_pfn(va),
            offset: (va & (PAGE - 1)) as u16,
        };
        let theirs = CopyEnd::Grant {
            domid: c.domid,
            gref: c.gref,
            offset: c.page_offset + done as u16,
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
}

impl Platform for Kernel {
    type Page = GrantMapping;

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

    fn map_ring(&mut self, domid: u16, gref: u32) -> Option<GrantMapping> {
        match gnttab::map_grant(domid, gref, false) {
            Ok(m) => Some(m),
            Err(e) => {
                warn!("map ring grant {gref} of domain {domid}: {e:?}");
                None
            }
        }
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

    fn copy_tx(&mut self, plan: &mut TxPlan) -> bool {
        let base = plan.buf.as_ptr() as u64;
        let mut ops = Vec::with_capacity(plan.copies.len() * 2);
        for c in &plan.copies {
            if !push_ops(&mut ops, c, base + u64::from(c.buf_offset), false) {
                return false;
            }
        }
        self.run(&mut ops)
    }

    fn copy_rx(&mut self, plan: &RxPlan, packet: &[u8]) -> bool {
        let base = packet.as_ptr() as u64;
        let mut ops = Vec::with_capacity(plan.copies.len() * 2);
        for c in &plan.copies {
            if !push_ops(&mut ops, c, base + u64::from(c.buf_offset), true) {
                return false;
            }
        }
        self.run(&mut ops)
    }

    fn uplink_send(&mut self, frame: &[u8]) {
        let mut tx = self.net.new_tx_buffer(frame.len());
        tx.packet_mut().copy_from_slice(frame);
        // `send` waits for the device to take the frame.
        if let Err(e) = self.net.send(tx) {
            self.uplink_errors += 1;
            if self.uplink_errors <= 8 {
                warn!("transmit: {e}");
            }
        }
    }
}

//! dom0's side of the xenstore domain (xenstore-dom/DESIGN.md, "The
//! domain"): dom0's own connection, over a ring page the board granted to
//! the xenstore domain at its build, and the introduction and release of
//! every other domain, and the trees of XenAPI VMs' domains.
//!
//! The board owns dom0's one connection; the XenAPI toolstack borrows a
//! handle to it (a clone: both name the same connection, and dom0 runs on
//! one vCPU with no re-entry, so their uses never overlap) for the calls in
//! which it builds and destroys VMs.

use alloc::format;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::{RefCell, RefMut};

use xcp_dom0_board::guest_tree;
use xcp_runtime::paging::Frame;
use xcp_runtime::xenstore::PortWait;
use xcp_xenbus::{Access, Client, Perm, TxId, Xenbus};

use crate::xen::XenError;

/// dom0's connection to the xenstore domain (a handle: clones share it).
#[derive(Clone)]
pub struct XsLink {
    store: Rc<RefCell<Xenbus<Frame, PortWait>>>,
}

fn xs_err(what: &'static str) -> impl FnOnce(xcp_xenbus::Error) -> XenError {
    move |e| XenError::Xenstore(what, e)
}

impl XsLink {
    /// The connection over `ring` and dom0's `port` (requests queue in the
    /// ring until the xenstore domain serves them).
    pub fn connect(ring: Frame, port: u32) -> XsLink {
        XsLink {
            store: Rc::new(RefCell::new(Xenbus::new(
                Client::default(),
                ring,
                PortWait { port },
            ))),
        }
    }

    /// The blocking handle, for dom0's own reads and writes (the `mem`
    /// command's, the `xenstore` self-test's).
    pub fn store(&mut self) -> RefMut<'_, Xenbus<Frame, PortWait>> {
        self.store.borrow_mut()
    }

    /// Gives domain `domid` its home (readable by it, `data/` writable by
    /// it, as libxl lays homes out) and introduces it to xenstored.
    /// Returns whether xenstored took it.
    pub fn introduce(
        &mut self,
        domid: u16,
        name: &str,
        store_mfn: u64,
        store_port: u32,
    ) -> Result<bool, XenError> {
        let home = format!("/local/domain/{domid}");
        let s = &mut *self.store.borrow_mut();
        s.mkdir(TxId::NONE, &home).map_err(xs_err("mkdir"))?;
        s.set_perms(
            TxId::NONE,
            &home,
            &[Perm::new(0, Access::None), Perm::new(domid, Access::Read)],
        )
        .map_err(xs_err("set_perms"))?;
        s.write(TxId::NONE, &format!("{home}/name"), name.as_bytes())
            .map_err(xs_err("write name"))?;
        s.write(
            TxId::NONE,
            &format!("{home}/domid"),
            format!("{domid}").as_bytes(),
        )
        .map_err(xs_err("write domid"))?;
        let data = format!("{home}/data");
        s.mkdir(TxId::NONE, &data).map_err(xs_err("mkdir data"))?;
        s.set_perms(TxId::NONE, &data, &[Perm::new(domid, Access::None)])
            .map_err(xs_err("set_perms data"))?;
        s.introduce(domid, store_mfn, store_port)
            .map_err(xs_err("INTRODUCE"))?;
        s.is_domain_introduced(domid)
            .map_err(xs_err("IS_DOMAIN_INTRODUCED"))
    }

    /// Releases a dead domain and removes its home. The xenstore domain
    /// may have released it already (it handles VIRQ_DOM_EXC): ENOENT then.
    pub fn release(&mut self, domid: u16) -> Result<(), XenError> {
        let s = &mut *self.store.borrow_mut();
        match s.release(domid) {
            Ok(()) | Err(xcp_xenbus::Error::Xs(xcp_xenbus::XsErrno::Enoent)) => {}
            Err(e) => return Err(XenError::Xenstore("RELEASE", e)),
        }
        s.rm(TxId::NONE, &format!("/local/domain/{domid}"))
            .map_err(xs_err("rm home"))
    }

    /// Writes a VM's tree (`guest_tree::nodes`: each node, then its
    /// permissions) and introduces its domain to xenstored. Returns whether
    /// xenstored took it. On failure the caller removes what was written
    /// ([`XsLink::forget_vm`]).
    pub fn introduce_vm(
        &mut self,
        nodes: &[guest_tree::Node],
        domid: u16,
        store_mfn: u64,
        store_port: u32,
    ) -> Result<bool, XenError> {
        let s = &mut *self.store.borrow_mut();
        for node in nodes {
            s.write(TxId::NONE, &node.path, node.value.as_bytes())
                .map_err(xs_err("write"))?;
            s.set_perms(TxId::NONE, &node.path, &node.perms)
                .map_err(xs_err("set_perms"))?;
        }
        s.introduce(domid, store_mfn, store_port)
            .map_err(xs_err("INTRODUCE"))?;
        s.is_domain_introduced(domid)
            .map_err(xs_err("IS_DOMAIN_INTRODUCED"))
    }

    /// Releases a VM's dead domain and removes its tree (`/local/domain/N`
    /// and `/vm/UUID`); what is gone already (xenstored released it on
    /// VIRQ_DOM_EXC, a build failed before writing) is no error.
    pub fn forget_vm(&mut self, domid: u16, uuid: &str) -> Result<(), XenError> {
        use xcp_xenbus::{Error::Xs, XsErrno::Enoent};
        let s = &mut *self.store.borrow_mut();
        match s.release(domid) {
            Ok(()) | Err(Xs(Enoent)) => {}
            Err(e) => return Err(XenError::Xenstore("RELEASE", e)),
        }
        for path in guest_tree::removals(domid, uuid) {
            match s.rm(TxId::NONE, &path) {
                Ok(()) | Err(Xs(Enoent)) => {}
                Err(e) => return Err(XenError::Xenstore("rm", e)),
            }
        }
        Ok(())
    }

    /// Writes `word` (`poweroff`, `reboot`) to a guest's
    /// `control/shutdown`, which its kernel watches.
    pub fn request_shutdown(&mut self, domid: u16, word: &str) -> Result<(), XenError> {
        self.store
            .borrow_mut()
            .write(
                TxId::NONE,
                &format!("/local/domain/{domid}/control/shutdown"),
                word.as_bytes(),
            )
            .map_err(xs_err("write control/shutdown"))
    }

    /// A guest's `control/shutdown` (empty once it acknowledged a
    /// request).
    pub fn shutdown_request(&mut self, domid: u16) -> Result<Vec<u8>, XenError> {
        self.store
            .borrow_mut()
            .read(
                TxId::NONE,
                &format!("/local/domain/{domid}/control/shutdown"),
            )
            .map_err(xs_err("read control/shutdown"))
    }

    /// The value of `path` below guest `domid`'s home (what its agent
    /// wrote: `data/os_name`...). The guest's claim: the engine bounds
    /// and checks it (`xenapi::guest_metrics`); xenstore bounds a value
    /// to 4 KiB.
    pub fn guest_read(&mut self, domid: u16, path: &str) -> Result<Vec<u8>, XenError> {
        self.store
            .borrow_mut()
            .read(TxId::NONE, &format!("/local/domain/{domid}/{path}"))
            .map_err(xs_err("read guest key"))
    }

    /// The children of `path` below guest `domid`'s home (one xenstore
    /// reply: at most 4 KiB of names).
    pub fn guest_list(
        &mut self,
        domid: u16,
        path: &str,
    ) -> Result<Vec<alloc::string::String>, XenError> {
        self.store
            .borrow_mut()
            .directory(TxId::NONE, &format!("/local/domain/{domid}/{path}"))
            .map_err(xs_err("list guest directory"))
    }

    /// Watches `@releaseDomain`: the xenstore domain fires it when a
    /// domain shuts down or dies (it gets VIRQ_DOM_EXC, not dom0).
    pub fn watch_lifecycle(&mut self) -> Result<(), XenError> {
        self.store
            .borrow_mut()
            .watch("@releaseDomain", LIFECYCLE_TOKEN)
            .map_err(xs_err("watch @releaseDomain"))
    }

    /// Reads what arrived on the ring; true if `@releaseDomain` fired
    /// since the last call (events other calls received are kept by the
    /// client and counted here too).
    pub fn lifecycle_fired(&mut self) -> bool {
        let s = &mut *self.store.borrow_mut();
        if let Err(e) = s.pump() {
            log::warn!("xenstore: {e:?}");
        }
        let mut fired = false;
        while let Some(event) = s.next_event() {
            fired |= event.token == LIFECYCLE_TOKEN;
        }
        fired
    }
}

/// The watch token dom0's lifecycle code uses on `@releaseDomain`.
pub const LIFECYCLE_TOKEN: &str = "dom0-lifecycle";

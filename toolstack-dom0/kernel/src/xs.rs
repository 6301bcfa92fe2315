//! dom0's side of the xenstore domain (xenstore-dom/DESIGN.md, "The
//! domain"): dom0's own connection, granted to the xenstore domain at its
//! build, and the introduction and release of every other domain.

use alloc::format;
use alloc::string::String;

use xcp_runtime::paging::Frame;
use xcp_runtime::xenstore::PortWait;
use xcp_xenbus::{Access, Client, Perm, SharedRing, TxId, Xenbus};

/// dom0's connection to the xenstore domain.
pub struct XsLink {
    /// The xenstore domain.
    pub domid: u16,
    /// dom0's end of the ring's event channel.
    pub port: u32,
    store: Xenbus<SharedRing<Frame>, PortWait>,
}

/// What dom0 prepares inside the xenstore domain's command-line closure.
pub struct Pending {
    frame: Frame,
    port: u32,
}

impl Pending {
    /// Grants dom0's ring page to `xs_domid` and allocates the channel;
    /// returns the command-line words the xenstore domain expects.
    pub fn prepare(xs_domid: u16) -> Result<(Pending, String), String> {
        let frame = Frame::alloc().map_err(|e| format!("ring frame: {e:?}"))?;
        let gref = xcp_runtime::gnttab::grant_access(xs_domid, frame.pfn(), false)
            .map_err(|e| format!("grant dom0's ring: {e:?}"))?;
        let port = xcp_runtime::evtchn::alloc_unbound(xs_domid)
            .map_err(|e| format!("xenstore port: {e}"))?;
        let words = format!("dom0-ring={gref},{port} xs-domid={xs_domid}");
        Ok((Pending { frame, port }, words))
    }

    /// The connection, once the xenstore domain was built (requests queue in
    /// the ring until it serves them).
    pub fn connect(self, domid: u16) -> XsLink {
        XsLink {
            domid,
            port: self.port,
            store: Xenbus::new(
                Client::default(),
                SharedRing(self.frame),
                PortWait { port: self.port },
            ),
        }
    }
}

fn xs_err(what: &str, e: xcp_xenbus::Error) -> String {
    format!("xenstore {what}: {e:?}")
}

impl XsLink {
    /// The blocking handle, for dom0's own reads and writes (the `mem`
    /// command's, the `xenstore` self-test's).
    pub fn store(&mut self) -> &mut Xenbus<SharedRing<Frame>, PortWait> {
        &mut self.store
    }

    /// Gives domain `domid` its home (readable by it, `data/` writable by
    /// it, as libxl lays homes out) and introduces it to xenstored.
    pub fn introduce(
        &mut self,
        domid: u16,
        name: &str,
        store_mfn: u64,
        store_port: u32,
    ) -> Result<(), String> {
        let home = format!("/local/domain/{domid}");
        let s = &mut self.store;
        s.mkdir(TxId::NONE, &home).map_err(|e| xs_err("mkdir", e))?;
        s.set_perms(
            TxId::NONE,
            &home,
            &[Perm::new(0, Access::None), Perm::new(domid, Access::Read)],
        )
        .map_err(|e| xs_err("set_perms", e))?;
        s.write(TxId::NONE, &format!("{home}/name"), name.as_bytes())
            .map_err(|e| xs_err("write name", e))?;
        s.write(
            TxId::NONE,
            &format!("{home}/domid"),
            format!("{domid}").as_bytes(),
        )
        .map_err(|e| xs_err("write domid", e))?;
        let data = format!("{home}/data");
        s.mkdir(TxId::NONE, &data)
            .map_err(|e| xs_err("mkdir data", e))?;
        s.set_perms(TxId::NONE, &data, &[Perm::new(domid, Access::None)])
            .map_err(|e| xs_err("set_perms data", e))?;
        s.introduce(domid, store_mfn, store_port)
            .map_err(|e| xs_err("INTRODUCE", e))?;
        if !s
            .is_domain_introduced(domid)
            .map_err(|e| xs_err("IS_DOMAIN_INTRODUCED", e))?
        {
            return Err(format!("xenstore-dom refused domain {domid}"));
        }
        Ok(())
    }

    /// Releases a dead domain and removes its home. The xenstore domain
    /// may have released it already (it handles VIRQ_DOM_EXC): ENOENT then.
    pub fn release(&mut self, domid: u16) -> Result<(), String> {
        match self.store.release(domid) {
            Ok(()) | Err(xcp_xenbus::Error::Xs(xcp_xenbus::XsErrno::Enoent)) => {}
            Err(e) => return Err(xs_err("RELEASE", e)),
        }
        self.store
            .rm(TxId::NONE, &format!("/local/domain/{domid}"))
            .map_err(|e| xs_err("rm home", e))
    }
}

/// The watch token dom0's lifecycle code uses on `@releaseDomain`.
pub const LIFECYCLE_TOKEN: &str = "dom0-lifecycle";

impl XsLink {
    /// Watches `@releaseDomain`: the xenstore domain fires it when a
    /// domain shuts down or dies (it gets VIRQ_DOM_EXC, not dom0).
    pub fn watch_lifecycle(&mut self) -> Result<(), String> {
        self.store
            .watch("@releaseDomain", LIFECYCLE_TOKEN)
            .map_err(|e| xs_err("watch @releaseDomain", e))
    }

    /// Reads what arrived on the ring; true if `@releaseDomain` fired
    /// since the last call (events other calls received are kept by the
    /// client and counted here too).
    pub fn lifecycle_fired(&mut self) -> bool {
        if let Err(e) = self.store.pump() {
            log::warn!("xenstore: {e:?}");
        }
        let mut fired = false;
        while let Some(event) = self.store.next_event() {
            fired |= event.token == LIFECYCLE_TOKEN;
        }
        fired
    }
}

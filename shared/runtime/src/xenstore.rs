//! The domain's xenstore connection: the xenbus client over the ring page
//! and event channel from start_info (or, for dom0, a page it granted to
//! the xenstore domain), waiting in Xen between requests.

use xcp_xenbus::{Client, Error, SharedRing, Wait, Xenbus};

use crate::shared_page::PageView;

/// Longest wait for xenstored before a call fails with `Timeout`.
pub const TIMEOUT_NS: u64 = 5_000_000_000;
/// How often a waiting client kicks xenstored again. Under load on the rig a
/// kick was seen lost (both clients of xenstore-dom stalled until their
/// next request); a repeated kick costs nothing and bounds such a stall.
pub const REKICK_NS: u64 = 50_000_000;

/// The event channel to xenstored, waited on with SCHEDOP_poll.
pub struct PortWait {
    /// Our end of the xenstore event channel.
    pub port: u32,
}

impl Wait for PortWait {
    fn notify(&mut self) {
        crate::evtchn::send(self.port);
    }

    fn wait(&mut self) -> Result<(), Error> {
        let deadline = crate::time::now_ns() + TIMEOUT_NS;
        let mut rekicks = 0u32;
        loop {
            let slice = (crate::time::now_ns() + REKICK_NS).min(deadline);
            if crate::event_loop::poll_one(self.port, slice) {
                if rekicks > 0 {
                    log::warn!(
                        "xenstore answered after {rekicks} extra kick(s) on port {}",
                        self.port
                    );
                }
                return Ok(());
            }
            if crate::time::now_ns() >= deadline {
                return Err(Error::Timeout);
            }
            rekicks += 1;
            crate::evtchn::send(self.port);
        }
    }
}

/// A blocking xenstore handle over a page that lives as long as the domain.
pub type Store = Xenbus<SharedRing<PageView<'static>>, PortWait>;

/// A domU's connection from its start_info (`store_mfn`, `store_evtchn`);
/// None when the builder gave it no xenstore.
pub fn connect(boot: &crate::Boot) -> Option<Store> {
    let si = boot.start_info;
    if si.store_mfn == 0 {
        return None;
    }
    let page = crate::paging::boot_page(si.store_mfn)?;
    Some(Xenbus::new(
        Client::default(),
        SharedRing(page),
        PortWait {
            port: si.store_evtchn,
        },
    ))
}

//! The console relay (xenconsoled's role): each built domain's PV console
//! ring, mapped from its frame, drained on its event channel, and written to
//! Xen's console one prefixed line at a time.

use alloc::vec::Vec;

use xcp_console::{
    copy_out, pending, DomainConsole, Pending, OUT_CONS, OUT_OFFSET, OUT_PROD, OUT_RING,
};
use xcp_runtime::paging::ForeignPage;

/// One domain's console as dom0 sees it.
pub struct ConsoleLink {
    page: ForeignPage,
    /// dom0's end of the console event channel.
    pub port: u32,
    state: DomainConsole,
}

impl ConsoleLink {
    /// Maps `mfn` of `domid` and connects to its console port.
    pub fn connect(
        name: &str,
        domid: u16,
        mfn: u64,
        remote_port: u32,
    ) -> Result<Self, xen_sys::Errno> {
        let page = xcp_runtime::paging::map_foreign(mfn, domid, true)?;
        let port = xcp_runtime::evtchn::bind_interdomain(domid, remote_port)?;
        Ok(ConsoleLink {
            page,
            port,
            state: DomainConsole::new(name),
        })
    }

    /// Copies out what the domain wrote, frees the ring, prints whole lines.
    /// Returns how many lines were printed.
    pub fn drain(&mut self) -> usize {
        let view = self.page.view();
        let cons = view.load_u32(OUT_CONS);
        let prod = view.load_u32(OUT_PROD);
        let mut bytes = Vec::new();
        let mut lines = Vec::new();
        match pending(cons, prod) {
            Pending::Empty => return 0,
            Pending::Overrun => lines.push(self.state.overrun()),
            Pending::Bytes { start, len } => {
                let mut out = [0u8; OUT_RING as usize];
                view.read(OUT_OFFSET, &mut out);
                copy_out(&out, start, len, &mut bytes);
            }
        }
        view.store_u32(OUT_CONS, prod);
        // The domain may be waiting for room.
        xcp_runtime::evtchn::send(self.port);
        lines.extend(self.state.feed(&bytes));
        for line in &lines {
            let mut text = line.clone();
            text.push('\n');
            xcp_runtime::console::write(text.as_bytes());
        }
        lines.len()
    }

    /// The last 64 KiB the domain wrote (the self-tests read it; dom0
    /// itself learns a domain's state by protocol, never from its log).
    #[cfg(feature = "selftest")]
    pub fn history(&self) -> Vec<u8> {
        self.state.history()
    }

    /// Closes dom0's end of the console channel.
    pub fn close(self) {
        let _ = xcp_runtime::evtchn::close(self.port);
    }
}

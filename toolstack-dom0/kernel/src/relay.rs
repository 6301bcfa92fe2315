//! The console relay (xenconsoled's role): each built domain's PV console
//! ring, mapped from its frame, drained on its event channel, and written
//! one prefixed line at a time: a service domain's to Xen's console, a
//! XenAPI VM's to dom0's log at DEBUG (not on the operator's terminal by
//! default). Input a client types into a VM's text console goes into the
//! ring's `in[]`.

use alloc::vec::Vec;

use xcp_console::{
    copy_out, input_room, pending, runs, DomainConsole, Pending, Room, IN_CONS, IN_OFFSET, IN_PROD,
    IN_RING, OUT_CONS, OUT_OFFSET, OUT_PROD, OUT_RING,
};
use xcp_runtime::paging::ForeignPage;

/// Where a console's lines go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lines {
    /// Xen's console (the operator sees them): service domains.
    Console,
    /// dom0's log at DEBUG: XenAPI VMs.
    Debug,
}

/// One domain's console as dom0 sees it.
pub struct ConsoleLink {
    page: ForeignPage,
    /// dom0's end of the console event channel.
    pub port: u32,
    state: DomainConsole,
    lines: Lines,
}

impl ConsoleLink {
    /// Maps `mfn` of `domid` and connects to its console port.
    pub fn connect(
        name: &str,
        domid: u16,
        mfn: u64,
        remote_port: u32,
    ) -> Result<Self, xen_sys::Errno> {
        Self::connect_to(name, domid, mfn, remote_port, Lines::Console)
    }

    /// As [`Self::connect`], with the lines going to `lines`.
    pub fn connect_to(
        name: &str,
        domid: u16,
        mfn: u64,
        remote_port: u32,
        lines: Lines,
    ) -> Result<Self, xen_sys::Errno> {
        let page = xcp_runtime::paging::map_foreign(mfn, domid, true)?;
        let port = xcp_runtime::evtchn::bind_interdomain(domid, remote_port)?;
        Ok(ConsoleLink {
            page,
            port,
            state: DomainConsole::new(name),
            lines,
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
            match self.lines {
                Lines::Console => {
                    let mut text = line.clone();
                    text.push('\n');
                    xcp_runtime::console::write(text.as_bytes());
                }
                Lines::Debug => log::debug!("{line}"),
            }
        }
        lines.len()
    }

    /// Puts as much of `bytes` as `in[]` has room for into it and kicks
    /// the domain; returns how many bytes went in (0 when the ring is full
    /// or the domain's `in_cons` is corrupt).
    pub fn write_input(&mut self, bytes: &[u8]) -> usize {
        let view = self.page.view();
        // Copy the domain's index out once; ours is what we last stored.
        let cons = view.load_u32(IN_CONS);
        let prod = view.load_u32(IN_PROD);
        let Room::Bytes { start, len } = input_room(cons, prod) else {
            return 0;
        };
        let n = bytes.len().min(len as usize);
        if n == 0 {
            return 0;
        }
        let mut from = 0;
        for (at, run) in runs(start, n as u32, IN_RING) {
            view.write(IN_OFFSET + at, &bytes[from..from + run]);
            from += run;
        }
        view.store_u32(IN_PROD, prod.wrapping_add(n as u32));
        xcp_runtime::evtchn::send(self.port);
        n
    }

    /// What the domain wrote since it connected, as [`DomainConsole`]
    /// keeps it (the last 64 KiB).
    pub fn state(&self) -> &DomainConsole {
        &self.state
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

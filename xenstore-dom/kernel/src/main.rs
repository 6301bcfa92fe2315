//! xenstore-dom: the xenstore stub domain kernel (a 64-bit PV domU).
//!
//! Read first: ../DESIGN.md "The domain" (the contract with dom0). Boots
//! with `dom0-ring=<gref>,<port> [xs-domid=<domid>] [max-guests=<n>]`,
//! maps dom0's ring through the grant, binds dom0's port, introduces dom0
//! to the engine, logs `ready` (a DEBUG line), then serves: the runtime's
//! event loop (SCHEDOP_poll on every bound port) calls the board, whose
//! effects map guests' rings (grant 1 of each guest) and bind their
//! channels. All logic is in the board (`xenstore_dom::Board`); this file
//! only wires it to the runtime.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod domain {
    use xcp_runtime::event_loop::{App, Loop, MAX_POLL_PORTS};
    use xcp_runtime::gnttab::{self, GrantMapping};
    use xcp_runtime::{cmdline, evtchn, Boot};
    use xenstore_dom::args;
    use xenstore_dom::{Board, Failure, GuestState, Platform};
    use xenstore_engine::Config;

    // It shares no page of its own (guests grant their rings): a few single
    // frames, the rest heap.
    xcp_runtime::entry!(main, "xenstore-dom", frames = 64);

    /// Token of the zero-delay timer that gives busy connections a turn.
    const TURN: u64 = 1;
    /// Token of the timer that publishes our memory figures under our home
    /// (`data/memory/`, for dom0's `mem` command), when they changed.
    const MEMORY: u64 = 2;
    const MEMORY_NS: u64 = 1_000_000_000;

    /// The runtime as the board's platform, for the duration of one call.
    struct Xen<'a> {
        lp: &'a mut Loop,
    }

    impl Platform for Xen<'_> {
        type Page = GrantMapping;

        fn map_ring(&mut self, domid: u16, gref: u32) -> Result<Self::Page, Failure> {
            match gnttab::map_grant(domid, gref, false) {
                Ok(m) => Ok(m),
                Err(e) => {
                    log::error!("map grant {gref} of domain {domid}: {e:?}");
                    Err(Failure::Map)
                }
            }
        }

        fn bind(&mut self, domid: u16, remote_port: u32) -> Result<u32, Failure> {
            let port = match evtchn::bind_interdomain(domid, remote_port) {
                Ok(p) => p,
                Err(e) => {
                    log::error!("bind port {remote_port} of domain {domid}: {e:?}");
                    return Err(Failure::Bind);
                }
            };
            if let Err(e) = self.lp.watch(port) {
                log::error!("watch port {port}: {e:?}");
                let _ = evtchn::close(port);
                return Err(Failure::Bind);
            }
            Ok(port)
        }

        fn unbind(&mut self, port: u32) {
            self.lp.unwatch(port);
            if let Err(e) = evtchn::close(port) {
                log::warn!("close port {port}: {e:?}");
            }
        }

        fn notify(&mut self, port: u32) {
            evtchn::send(port);
        }
    }

    struct Kernel {
        board: Board<GrantMapping>,
        log_budget: xenstore_dom::budget::LogBudget,
        turn_armed: bool,
        /// The port bound to VIRQ_DOM_EXC (it fires once dom0 makes us
        /// its handler).
        dom_exc: Option<u32>,
        /// Our domid (our home's), when dom0 said it.
        xs_domid: Option<u16>,
        /// The memory figures last written under our home.
        published: xcp_runtime::usage::MemoryUse,
        /// Rings that held unread requests at the last check, by domid
        /// and `req_cons` ([`Kernel::check_unread`]).
        unread: alloc::vec::Vec<(u16, u32)>,
    }

    /// What Xen says about `domid` (`XEN_DOMCTL_getdomaininfo`, allowed to
    /// the xenstore domain).
    fn guest_state(domid: u16) -> GuestState {
        use xen_sys::domctl_payloads::{XEN_DOMINF_DYING, XEN_DOMINF_SHUTDOWN};
        match xcp_runtime::control::domain_info(domid) {
            Ok(info) if info.domain == domid => {
                if info.flags & XEN_DOMINF_DYING != 0 {
                    GuestState::Dead
                } else if info.flags & XEN_DOMINF_SHUTDOWN != 0 {
                    GuestState::Shutdown
                } else {
                    GuestState::Alive
                }
            }
            // Xen answers with the next domain, or none: it is gone.
            Ok(_) | Err(xen_sys::Errno::ESRCH) => GuestState::Dead,
            Err(e) => {
                log::warn!("getdomaininfo {domid}: {e:?}");
                GuestState::Alive
            }
        }
    }

    impl Kernel {
        /// Writes our memory figures under `/local/domain/<xs_domid>/data/
        /// memory/` if they changed since the last time.
        fn publish_memory(&mut self, lp: &mut Loop) {
            let Some(domid) = self.xs_domid else {
                return;
            };
            let now = xcp_runtime::usage::memory_use();
            if now == self.published {
                return;
            }
            for (key, value) in now.entries() {
                let path = alloc::format!("/local/domain/{domid}/data/memory/{key}");
                let value = alloc::format!("{value}");
                let written = self
                    .board
                    .write_own(&mut Xen { lp }, domid, &path, value.as_bytes());
                if let Err(e) = written {
                    log::warn!("memory figures not published: {e:?}");
                    return;
                }
            }
            self.published = now;
        }

        /// Logs the engine's memory notices (soft crossings at WARN,
        /// rationed; refusals at DEBUG).
        fn log_notices(&mut self) {
            let notices = self.board.take_notices();
            if notices.is_empty() {
                return;
            }
            let now_ms = xcp_runtime::time::now_ns() / 1_000_000;
            for notice in notices {
                let (level, text) = xenstore_dom::budget::describe(notice);
                log::log!(self.log_budget.level(now_ms, level), "{text}");
            }
        }

        /// A ring whose unread requests did not move for a whole check
        /// period while its port is not pending lost a kick (each ring is
        /// read when its port fires): say so and serve it. Never seen on
        /// the rig (see `xcp_runtime::xenstore::SLOW_NS`); the check keeps
        /// a lost kick from stalling a guest for good.
        fn check_unread(&mut self, lp: &mut Loop) {
            let now = self.board.unread_rings();
            for &(domid, port, unread, cons) in &now {
                let stuck = self.unread.contains(&(domid, cons));
                if stuck && !evtchn::is_pending(port) {
                    log::warn!(
                        "domain {domid}: {unread} request bytes unread for a second with no \
                         event on port {port}: serving them"
                    );
                    // As if its port had fired.
                    let owed = self.board.on_event(&mut Xen { lp }, port);
                    self.owe_turn(lp, owed);
                }
            }
            self.unread = now.iter().map(|&(d, _, _, c)| (d, c)).collect();
        }

        fn owe_turn(&mut self, lp: &mut Loop, owed: bool) {
            self.log_notices();
            if owed && !self.turn_armed {
                lp.after(0, TURN);
                self.turn_armed = true;
            }
        }
    }

    impl App for Kernel {
        fn on_event(&mut self, lp: &mut Loop, port: u32) {
            if Some(port) == self.dom_exc {
                let (released, owed) = self.board.on_dom_exc(&mut Xen { lp }, &mut guest_state);
                for domid in released {
                    log::debug!("domain {domid} is dead (VIRQ_DOM_EXC): released");
                }
                self.owe_turn(lp, owed);
                return;
            }
            let owed = self.board.on_event(&mut Xen { lp }, port);
            self.owe_turn(lp, owed);
        }

        fn on_timer(&mut self, lp: &mut Loop, token: u64) {
            if token == TURN {
                self.turn_armed = false;
                let owed = self.board.run(&mut Xen { lp });
                self.owe_turn(lp, owed);
            }
            if token == MEMORY {
                self.check_unread(lp);
                self.publish_memory(lp);
                lp.after(MEMORY_NS, MEMORY);
            }
        }
    }

    fn main(boot: Boot) -> ! {
        let line = boot.cmdline;
        let ring = args::dom0_ring(cmdline::get(line, "dom0-ring"))
            .unwrap_or_else(|e| panic!("command line {line:?}: {e:?}"));
        let xs_domid = args::xs_domid(cmdline::get(line, "xs-domid"))
            .unwrap_or_else(|e| panic!("command line {line:?}: {e:?}"));
        // SCHEDOP_poll takes at most MAX_POLL_PORTS ports; dom0 has one.
        let default_guests = MAX_POLL_PORTS - 1;
        let max_guests = args::max_guests(cmdline::get(line, "max-guests"), default_guests)
            .unwrap_or_else(|e| panic!("command line {line:?}: {e:?}"))
            .min(default_guests);
        log::debug!(
            "{} pages, dom0 ring gref {} port {}, xs-domid {:?}, at most {} guests",
            boot.nr_pages,
            ring.gref,
            ring.port,
            xs_domid,
            max_guests
        );
        // All guests together may hold half the heap (DESIGN.md "Budgets").
        let memory_global = xenstore_dom::budget::memory_global(boot.heap_bytes);
        log::debug!(
            "heap {} KiB: guests may hold {} KiB together",
            boot.heap_bytes / 1024,
            memory_global / 1024
        );
        let config = Config {
            xenstore_domid: xs_domid,
            memory_global,
            ..Config::default()
        };
        let mut lp = Loop::new();
        // A global VIRQ reaches only its handler domain: dom0 hands
        // VIRQ_DOM_EXC over when it built us.
        let dom_exc = match evtchn::bind_virq(xen_sys::event_channel::VIRQ_DOM_EXC)
            .and_then(|port| lp.watch(port).map(|()| port))
        {
            Ok(port) => Some(port),
            Err(e) => {
                log::warn!("VIRQ_DOM_EXC not bound ({e:?}): dom0 must RELEASE dead domains");
                None
            }
        };
        let mut kernel = Kernel {
            board: Board::new(config, max_guests),
            log_budget: Default::default(),
            turn_armed: false,
            dom_exc,
            xs_domid,
            published: Default::default(),
            unread: alloc::vec::Vec::new(),
        };
        kernel
            .board
            .start_dom0(&mut Xen { lp: &mut lp }, ring.gref, ring.port)
            .unwrap_or_else(|e| panic!("dom0's ring: {e:?}"));
        log::debug!("ready");
        kernel.publish_memory(&mut lp);
        lp.after(MEMORY_NS, MEMORY);
        lp.run(&mut kernel);
        panic!("event loop ended");
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "xenstore-dom is a Xen PV kernel: build it with \
         `cargo build -p xenstore-dom --release --target x86_64-unknown-none`"
    );
    std::process::exit(2);
}

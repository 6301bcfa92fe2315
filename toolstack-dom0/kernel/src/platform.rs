//! The service domains dom0 runs: built from the bundle, their consoles
//! relayed, watched through VIRQ_DOM_EXC, destroyed and rebuilt by policy.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use log::{debug, error, info, warn};
use xcp_bundle::{Bundle, DomainConfig};
use xcp_domains::{observe, Action, Domains, Observed};
use xcp_runtime::event_loop::Loop;

use crate::build::{build_domain, DomainRole};
use crate::relay::ConsoleLink;

/// A running domain's dom0-side handles.
pub struct Live {
    /// Its console.
    pub console: ConsoleLink,
    /// Index in the platform config.
    pub config: usize,
}

/// All service domains.
pub struct Platform {
    configs: Vec<DomainConfig>,
    images: BTreeMap<String, &'static [u8]>,
    /// Policy and history.
    pub domains: Domains,
    /// Running domains by domid.
    pub live: BTreeMap<u16, Live>,
    /// Domains dom0 stopped restarting (name, restarts), in order.
    pub gave_up: Vec<(String, u64)>,
    /// dom0's connection to the xenstore domain, once it runs.
    pub xs: Option<crate::xs::XsLink>,
    /// PCI functions on bus 0 (enumerated at boot).
    pub devices: Vec<xcp_pci::Device>,
    /// Domains holding the NIC that stopped: dom0's main loop, which owns
    /// the device, takes it back (its interrupts must be unmapped before
    /// the domain is destroyed), destroys the domain and acts on the
    /// policy's decision: (domid, config, action).
    pub nic_stops: Vec<(u16, usize, Action)>,
    /// The management network setting (`[platform] management`), which
    /// dom0 hands netdom.
    pub management: String,
    dom_exc: u32,
}

impl Platform {
    /// Binds VIRQ_DOM_EXC and prepares to build `configs` from `bundle`.
    pub fn new(
        bundle: &Bundle<'static>,
        configs: Vec<DomainConfig>,
        lp: &mut Loop,
    ) -> Result<Self, xen_sys::Errno> {
        let images = configs
            .iter()
            .filter_map(|c| bundle.get(&c.image).map(|e| (c.image.clone(), e.data)))
            .collect();
        let dom_exc = xcp_runtime::evtchn::bind_virq(xen_sys::event_channel::VIRQ_DOM_EXC)?;
        lp.watch(dom_exc)?;
        Ok(Platform {
            configs,
            images,
            domains: Domains::new(),
            live: BTreeMap::new(),
            gave_up: Vec::new(),
            xs: None,
            devices: Vec::new(),
            nic_stops: Vec::new(),
            management: String::from("dhcp"),
            dom_exc,
        })
    }

    /// The configured domains.
    pub fn configs(&self) -> &[DomainConfig] {
        &self.configs
    }

    /// Builds every domain whose config says `start = true`, the xenstore
    /// domain first.
    pub fn start_configured(&mut self, lp: &mut Loop) {
        // The network domain is started by dom0 with the NIC (see dom0.rs).
        let mut order: Vec<usize> = (0..self.configs.len())
            .filter(|&i| self.configs[i].start && !self.configs[i].nic)
            .collect();
        order.sort_by_key(|&i| !self.configs[i].xenstore);
        for i in order {
            let _ = self.start(lp, i, None);
        }
    }

    /// Builds config `index` (with `cmdline` overriding the configured one).
    pub fn start(&mut self, lp: &mut Loop, index: usize, cmdline: Option<&str>) -> Result<u16, ()> {
        let text = String::from(cmdline.unwrap_or(&self.configs[index].cmdline));
        self.start_with(lp, index, &mut |_| text.clone())
    }

    /// Builds config `index` with the command line `cmdline(domid)` returns
    /// once the domain exists (for parameters that name it: grants, ports).
    pub fn start_with(
        &mut self,
        lp: &mut Loop,
        index: usize,
        cmdline: &mut dyn FnMut(u16) -> String,
    ) -> Result<u16, ()> {
        let config = self.configs[index].clone();
        let Some(&image) = self.images.get(&config.image) else {
            error!(
                "domain {}: image {} not in the bundle",
                config.name, config.image
            );
            return Err(());
        };
        let started = xcp_runtime::time::now_ns();
        debug!("building {}", config.name);
        let role = DomainRole {
            server: self.xs.as_ref().map(|x| x.domid),
            is_server: config.xenstore,
            passthrough: config.passthrough,
        };
        let mut pending = None;
        let mut with_ring = |domid: u16| {
            let mut text = cmdline(domid);
            if config.xenstore {
                match crate::xs::Pending::prepare(domid) {
                    Ok((p, words)) => {
                        pending = Some(p);
                        text = alloc::format!("{text} {words}");
                    }
                    Err(e) => error!("{}: {e}", config.name),
                }
            }
            text
        };
        let built = match build_domain(&config.name, image, config.memory_mib, role, &mut with_ring)
        {
            Ok(b) => b,
            Err(e) => {
                error!("domain {}: build failed: {e}", config.name);
                return Err(());
            }
        };
        if let Some(xs) = self.xs.as_mut() {
            if let Err(e) =
                xs.introduce(built.domid, &config.name, built.store_mfn, built.store_port)
            {
                error!("domain {}: {e}", config.name);
                let _ = xcp_runtime::control::destroy_domain(built.domid);
                let _ = xs.release(built.domid);
                return Err(());
            }
        }
        let console = match ConsoleLink::connect(
            &config.name,
            built.domid,
            built.console_mfn,
            built.console_port,
        ) {
            Ok(c) => c,
            Err(e) => {
                error!("domain {}: console connect failed: {e}", config.name);
                let _ = xcp_runtime::control::destroy_domain(built.domid);
                return Err(());
            }
        };
        let _ = lp.watch(console.port);
        let domid = built.domid;
        if config.xenstore {
            // As with C xenstored in a stub domain: the xenstore domain
            // gets VIRQ_DOM_EXC, releases dead domains itself and fires
            // @releaseDomain, which dom0 watches.
            match xcp_runtime::control::set_virq_handler(
                domid,
                xen_sys::event_channel::VIRQ_DOM_EXC,
            ) {
                Ok(()) => debug!("VIRQ_DOM_EXC goes to {} (domid {domid})", config.name),
                Err(e) => warn!("VIRQ_DOM_EXC stays with dom0: {e}"),
            }
        }
        if let Err(e) = xcp_runtime::control::unpause_domain(domid) {
            error!("domain {}: unpause failed: {e}", config.name);
        }
        if let Some(p) = pending {
            let mut xs = p.connect(domid);
            debug!("xenstore is domain {} (domid {domid})", config.name);
            match xs.watch_lifecycle().and_then(|()| {
                lp.watch(xs.port)
                    .map_err(|e| alloc::format!("watch port {}: {e}", xs.port))
            }) {
                Ok(()) => debug!("dom0 watches @releaseDomain"),
                Err(e) => error!("{e}"),
            }
            self.xs = Some(xs);
        }
        self.domains.insert(domid, &config.name, config.restart);
        info!(
            "built {} as domid {} ({} MiB) in {} us",
            config.name,
            domid,
            config.memory_mib,
            (xcp_runtime::time::now_ns() - started) / 1000
        );
        self.live.insert(
            domid,
            Live {
                console,
                config: index,
            },
        );
        Ok(domid)
    }

    /// Stops managing `domid` and destroys it.
    pub fn stop(&mut self, lp: &mut Loop, domid: u16) {
        self.domains.remove(domid);
        self.destroy(lp, domid);
    }

    /// Destroys `domid` and drops dom0's handles for it.
    pub fn destroy(&mut self, lp: &mut Loop, domid: u16) {
        if let Some(live) = self.live.remove(&domid) {
            let mut live = live;
            live.console.drain();
            lp.unwatch(live.console.port);
            live.console.close();
        }
        if let Err(e) = xcp_runtime::control::destroy_domain(domid) {
            warn!("destroy domid {domid}: {e}");
        }
        if self.xs.as_ref().is_some_and(|x| x.domid == domid) {
            // The xenstore domain itself: its connection is gone.
            if let Some(xs) = self.xs.take() {
                lp.unwatch(xs.port);
                let _ = xcp_runtime::evtchn::close(xs.port);
            }
        }
        if let Some(xs) = self.xs.as_mut() {
            match xs.release(domid) {
                Ok(()) => debug!("released domid {domid} from xenstore"),
                Err(e) => warn!("domid {domid}: {e}"),
            }
        }
    }

    /// Handles an event on `port`; true if it was ours.
    pub fn on_event(&mut self, lp: &mut Loop, port: u32) -> bool {
        if port == self.dom_exc {
            self.check_domains(lp);
            return true;
        }
        // The xenstore ring: dom0's loop reads it (`poll_lifecycle`) after
        // every event, since any xenstore call may have received events.
        if self.xs.as_ref().is_some_and(|x| x.port == port) {
            return true;
        }
        for live in self.live.values_mut() {
            if live.console.port == port {
                live.console.drain();
                return true;
            }
        }
        false
    }

    /// Whether `port` carries domain-lifecycle news: VIRQ_DOM_EXC, or the
    /// xenstore connection that delivers `@releaseDomain`.
    pub fn is_lifecycle_port(&self, port: u32) -> bool {
        port == self.dom_exc || self.xs.as_ref().is_some_and(|x| x.port == port)
    }

    /// Checks the managed domains when the xenstore domain fired
    /// `@releaseDomain` (events received during other xenstore calls
    /// count: call this after any). Returns whether it fired.
    pub fn poll_lifecycle(&mut self, lp: &mut Loop) -> bool {
        let fired = self.xs.as_mut().is_some_and(|x| x.lifecycle_fired());
        if fired {
            self.check_domains(lp);
        }
        fired
    }

    /// The xenstore domain holds VIRQ_DOM_EXC, so its own death reaches
    /// nobody: dom0 looks at it on a timer. Checks every domain when it
    /// stopped (destroying it gives the VIRQ back to dom0).
    pub fn check_xenstore_domain(&mut self, lp: &mut Loop) {
        let Some(domid) = self.xs.as_ref().map(|x| x.domid) else {
            return;
        };
        let alive = matches!(
            xcp_runtime::control::domain_info(domid),
            Ok(info) if info.domain == domid && observe(info.flags) == Observed::Alive
        );
        if !alive {
            warn!("the xenstore domain (domid {domid}) stopped");
            self.check_domains(lp);
        }
    }

    /// Looks at every managed domain after VIRQ_DOM_EXC.
    pub fn check_domains(&mut self, lp: &mut Loop) {
        let now = xcp_runtime::time::now_ns();
        let domids: Vec<u16> = self.domains.domids().collect();
        for domid in domids {
            if self.nic_stops.iter().any(|&(d, _, _)| d == domid) {
                continue;
            }
            let observed = match xcp_runtime::control::domain_info(domid) {
                Ok(info) if info.domain == domid => observe(info.flags),
                _ => Observed::Gone,
            };
            let Observed::Shutdown(reason) = observed else {
                if observed == Observed::Gone {
                    warn!("domid {domid} vanished");
                }
                if observed != Observed::Gone {
                    continue;
                }
                self.domains.remove(domid);
                continue;
            };
            let name = self
                .domains
                .get(domid)
                .map(|m| m.name.clone())
                .unwrap_or_default();
            // Print what it said before it died.
            if let Some(live) = self.live.get_mut(&domid) {
                live.console.drain();
            }
            let action = self.domains.decide(domid, observed, now);
            info!("domain {name} (domid {domid}) stopped: {}", reason.as_str());
            let config = self.live.get(&domid).map(|l| l.config);
            if let Some(index) = config.filter(|&i| self.configs[i].nic) {
                self.nic_stops.push((domid, index, action));
                continue;
            }
            self.destroy(lp, domid);
            match (action, config) {
                (Action::Restart, Some(index)) => {
                    info!("restarting {name}");
                    match self.start(lp, index, None) {
                        Ok(new) => self.domains.rebuilt(domid, new),
                        Err(()) => {
                            self.domains.remove(domid);
                        }
                    }
                }
                (Action::Destroy, _) | (Action::Restart, None) => self.stays_down(domid),
                (Action::None, _) => {}
            }
        }
    }

    /// Stops managing `domid`, which the policy leaves down (its config
    /// says so, or it crash-loops).
    pub fn stays_down(&mut self, domid: u16) {
        match self.domains.remove(domid) {
            Some(m) if m.restart => {
                error!(
                    "{} keeps crashing: giving up after {} restarts",
                    m.name, m.restarts
                );
                self.gave_up.push((m.name, m.restarts));
            }
            Some(m) => info!("{} stays down (restart = false)", m.name),
            None => {}
        }
    }
}

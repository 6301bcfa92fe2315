//! The service domains dom0 runs: built from the bundle, their consoles
//! relayed, watched through VIRQ_DOM_EXC and `@releaseDomain`, destroyed
//! and rebuilt by policy; netdom with the NIC, stordom with the disk.
//!
//! The kernel calls in on events ([`Board::on_event`], after which
//! [`Board::poll_lifecycle`]), on the xenstore domain's health timer
//! ([`Board::check_xenstore_domain`]) and for the operator; what the
//! kernel must act on besides (a XenAPI relay link that appeared or went
//! with netdom) comes back as [`Notice`]s.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use log::{debug, error, info, warn};
use xcp_bundle::{DomainConfig, Management};
use xcp_domains::{observe, Action, Domains, Observed};
use xen_sys::event_channel::VIRQ_DOM_EXC;

use crate::build::{build_domain, DomainRole};
use crate::nic::{Handed, Parts};
use crate::undo::{Undo, UndoLog};
use crate::{BoardError, Platform, Step};

/// A running domain's dom0-side handles.
pub struct Live<P: Platform> {
    /// Its console.
    pub console: P::Console,
    /// Index in the platform config.
    pub config: usize,
}

/// dom0's connection to the xenstore domain and what it holds for it.
struct XsLink<P: Platform> {
    /// The xenstore domain.
    domid: u16,
    /// dom0's end of the ring's event channel.
    port: u32,
    /// The grant of dom0's ring page.
    gref: u32,
    link: P::Xs,
}

/// What the kernel must act on after a board call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    /// netdom `domid` was built with the NIC; with a relay, its channel's
    /// pages are in [`Board::netdom_mut`] to take.
    NetdomBuilt {
        /// The new netdom.
        domid: u16,
    },
    /// netdom `domid` is gone and the NIC back; its relay port (if any)
    /// is closed: drop the link and its connections.
    NetdomReleased {
        /// The old netdom.
        domid: u16,
        /// dom0's port of its relay channel.
        relay_port: Option<u32>,
    },
    /// stordom `domid` was built with the disk; with a channel, its pages
    /// are in [`Board::stordom_mut`] to take.
    StordomBuilt {
        /// The new stordom.
        domid: u16,
    },
    /// stordom `domid` is gone and the disk back; its channel's port (if
    /// any) is closed.
    StordomReleased {
        /// The old stordom.
        domid: u16,
        /// dom0's port of its channel.
        relay_port: Option<u32>,
    },
}

/// Which device a driver domain is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceRole {
    /// netdom: the first virtio-net NIC, `ip=` and a XenAPI relay.
    Nic,
    /// stordom: the first virtio-blk disk and a channel to dom0.
    Disk,
}

impl DeviceRole {
    /// The role config `c` gives its domain, if any.
    pub fn of(c: &DomainConfig) -> Option<DeviceRole> {
        if c.nic {
            Some(DeviceRole::Nic)
        } else if c.disk {
            Some(DeviceRole::Disk)
        } else {
            None
        }
    }

    /// What the logs call the device.
    fn noun(self) -> &'static str {
        match self {
            DeviceRole::Nic => "nic",
            DeviceRole::Disk => "disk",
        }
    }

    fn word(self) -> &'static str {
        match self {
            DeviceRole::Nic => "xenapi-relay",
            DeviceRole::Disk => "dom0-channel",
        }
    }

    fn built(self, domid: u16) -> Notice {
        match self {
            DeviceRole::Nic => Notice::NetdomBuilt { domid },
            DeviceRole::Disk => Notice::StordomBuilt { domid },
        }
    }

    fn released(self, domid: u16, relay_port: Option<u32>) -> Notice {
        match self {
            DeviceRole::Nic => Notice::NetdomReleased { domid, relay_port },
            DeviceRole::Disk => Notice::StordomReleased { domid, relay_port },
        }
    }
}

/// Error type of the board's calls on platform `P`.
pub type Error<P> = BoardError<<P as Platform>::Error>;

/// All service domains.
pub struct Board<P: Platform> {
    /// The hypervisor, devices and runtime.
    pub platform: P,
    configs: Vec<DomainConfig>,
    images: BTreeMap<String, &'static [u8]>,
    /// Policy and history.
    pub domains: Domains,
    /// Running domains by domid.
    pub live: BTreeMap<u16, Live<P>>,
    /// Domains dom0 stopped restarting (name, restarts), in order.
    pub gave_up: Vec<(String, u64)>,
    xs: Option<XsLink<P>>,
    /// PCI functions on bus 0 (enumerated at boot).
    pub devices: Vec<xcp_pci::Device>,
    /// The management network setting (`[platform] management`), which
    /// dom0 hands netdom.
    pub management: Management,
    /// Whether netdom gets a XenAPI relay channel (the toolstack runs).
    pub relay: bool,
    /// What dom0 handed netdom (the NIC, the config snapshot it maps):
    /// kept for netdom's life.
    netdom: Option<Handed<P>>,
    /// What dom0 handed stordom (the disk, its snapshot): kept for its life.
    stordom: Option<Handed<P>>,
    notices: Vec<Notice>,
    dom_exc: u32,
    /// The domid the next build must have (0: any): netdom is rebuilt
    /// under its old one ([`DomainRole::domid`]).
    want_domid: u16,
}

impl<P: Platform> Board<P> {
    /// A board for `configs`, their images from the bundle, with dom0's
    /// port of VIRQ_DOM_EXC `dom_exc`.
    pub fn new(
        platform: P,
        images: BTreeMap<String, &'static [u8]>,
        configs: Vec<DomainConfig>,
        dom_exc: u32,
    ) -> Self {
        Board {
            platform,
            configs,
            images,
            domains: Domains::new(),
            live: BTreeMap::new(),
            gave_up: Vec::new(),
            xs: None,
            devices: Vec::new(),
            management: Management::Dhcp,
            relay: false,
            netdom: None,
            stordom: None,
            notices: Vec::new(),
            dom_exc,
            want_domid: 0,
        }
    }

    /// The configured domains.
    pub fn configs(&self) -> &[DomainConfig] {
        &self.configs
    }

    /// The xenstore domain, once it runs.
    pub fn xs_domid(&self) -> Option<u16> {
        self.xs.as_ref().map(|x| x.domid)
    }

    /// dom0's connection to the xenstore domain (for dom0's own reads and
    /// writes), once it runs.
    pub fn xs_mut(&mut self) -> Option<&mut P::Xs> {
        self.xs.as_mut().map(|x| &mut x.link)
    }

    /// The platform and the xenstore connection together.
    pub fn xs_with_platform(&mut self) -> Option<(&mut P, &mut P::Xs)> {
        let xs = self.xs.as_mut()?;
        Some((&mut self.platform, &mut xs.link))
    }

    /// netdom's domain, while it runs: the backend of guests' VIFs.
    pub fn netdom_domid(&self) -> Option<u16> {
        self.netdom.as_ref().map(|h| h.domid)
    }

    /// What dom0 handed netdom, while netdom runs.
    pub fn netdom_mut(&mut self) -> Option<&mut Handed<P>> {
        self.netdom.as_mut()
    }

    /// stordom's domain, while it runs: the backend of guests' VBDs.
    pub fn stordom_domid(&self) -> Option<u16> {
        self.stordom.as_ref().map(|h| h.domid)
    }

    /// What dom0 handed stordom, while stordom runs.
    pub fn stordom_mut(&mut self) -> Option<&mut Handed<P>> {
        self.stordom.as_mut()
    }

    fn slot(&mut self, role: DeviceRole) -> &mut Option<Handed<P>> {
        match role {
            DeviceRole::Nic => &mut self.netdom,
            DeviceRole::Disk => &mut self.stordom,
        }
    }

    /// The driver domain's hand-over held for `domid`, taken.
    fn take_handed(&mut self, domid: u16) -> Option<(DeviceRole, Handed<P>)> {
        for role in [DeviceRole::Nic, DeviceRole::Disk] {
            if let Some(h) = self.slot(role).take_if(|h| h.domid == domid) {
                return Some((role, h));
            }
        }
        None
    }

    /// What the kernel must act on since the last call.
    pub fn take_notices(&mut self) -> Vec<Notice> {
        core::mem::take(&mut self.notices)
    }

    /// Builds every domain whose config says `start = true`, the xenstore
    /// domain first (netdom is started with the NIC, [`Board::start_netdom`],
    /// stordom with the disk, [`Board::start_stordom`]).
    pub fn start_configured(&mut self) {
        let mut order: Vec<usize> = (0..self.configs.len())
            .filter(|&i| self.configs[i].start && DeviceRole::of(&self.configs[i]).is_none())
            .collect();
        order.sort_by_key(|&i| !self.configs[i].xenstore);
        for i in order {
            let _ = self.start(i, None);
        }
    }

    /// Builds config `index` (with `cmdline` overriding the configured one).
    pub fn start(&mut self, index: usize, cmdline: Option<&str>) -> Result<u16, Error<P>> {
        let text = String::from(cmdline.unwrap_or(&self.configs[index].cmdline));
        self.start_with(index, &mut |_, _, _| Ok(text.clone()))
    }

    /// Builds config `index` with the command line `cmdline` returns once
    /// the domain exists (for parameters that name it: grants, ports; what
    /// it acquires goes on the build's undo log).
    pub fn start_with(
        &mut self,
        index: usize,
        cmdline: &mut crate::build::Cmdline<'_, P>,
    ) -> Result<u16, Error<P>> {
        self.start_plan(index, UndoLog::new(), cmdline)
    }

    /// The build of config `index` after the steps already on `log`; on
    /// failure every step is undone.
    fn start_plan(
        &mut self,
        index: usize,
        mut log: UndoLog,
        cmdline: &mut crate::build::Cmdline<'_, P>,
    ) -> Result<u16, Error<P>> {
        let config = self.configs[index].clone();
        let Some(&image) = self.images.get(&config.image) else {
            error!(
                "domain {}: image {} not in the bundle",
                config.name, config.image
            );
            log.undo(&mut self.platform);
            return Err(BoardError::NoImage { config: index });
        };
        let started = self.platform.now_ns();
        debug!("building {}", config.name);
        let role = DomainRole {
            server: self.xs_domid(),
            is_server: config.xenstore,
            passthrough: config.passthrough,
            domid: core::mem::take(&mut self.want_domid),
            ..DomainRole::default()
        };
        // The xenstore domain's build also makes dom0's connection to it:
        // a ring page granted to it and a port, named on its command line.
        let mut ring: Option<(P::Page, u32, u32)> = None;
        let mut with_ring = |pf: &mut P, log: &mut UndoLog, domid: u16| {
            let mut text = cmdline(pf, log, domid)?;
            if config.xenstore {
                let page = pf
                    .alloc_page()
                    .map_err(BoardError::at(Step::XenstoreRing))?;
                let gref = pf
                    .grant_access(domid, &page, false)
                    .map_err(BoardError::at(Step::XenstoreGrant))?;
                log.push(Undo::Grant(gref));
                let port = pf
                    .alloc_unbound(domid)
                    .map_err(BoardError::at(Step::XenstoreLink))?;
                log.push(Undo::Port(port));
                text = alloc::format!("{text} dom0-ring={gref},{port} xs-domid={domid}");
                ring = Some((page, gref, port));
            }
            Ok(text)
        };
        let pf = &mut self.platform;
        let built = match build_domain(
            pf,
            &mut log,
            image,
            &[],
            config.memory_mib,
            role,
            &mut with_ring,
        ) {
            Ok(b) => b,
            Err(e) => {
                error!("domain {}: build failed: {e}", config.name);
                log.undo(pf);
                return Err(e);
            }
        };
        let domid = built.domid;
        let console =
            match pf.console_connect(&config.name, domid, built.console_mfn, built.console_port) {
                Ok(c) => c,
                Err(e) => {
                    error!("domain {}: console connect failed: {e}", config.name);
                    log.undo(pf);
                    return Err(BoardError::Platform {
                        step: Step::ConsoleConnect,
                        error: e,
                    });
                }
            };
        let console_port = P::console_port(&console);
        pf.watch(console_port);
        if let Some(xs) = self.xs.as_mut() {
            let refused = match pf.xs_introduce(
                &mut xs.link,
                domid,
                &config.name,
                built.store_mfn,
                built.store_port,
            ) {
                Ok(true) => None,
                Ok(false) => Some(BoardError::NotIntroduced { domid }),
                Err(e) => Some(BoardError::Platform {
                    step: Step::Introduce,
                    error: e,
                }),
            };
            if let Some(e) = refused {
                error!("domain {}: {e}", config.name);
                pf.unwatch(console_port);
                pf.console_close(console);
                log.undo(pf);
                let _ = pf.xs_release(&mut xs.link, domid);
                return Err(e);
            }
        }
        if config.xenstore {
            // As with C xenstored in a stub domain: the xenstore domain
            // gets VIRQ_DOM_EXC, releases dead domains itself and fires
            // @releaseDomain, which dom0 watches.
            match pf.set_virq_handler(domid, VIRQ_DOM_EXC) {
                Ok(()) => debug!("VIRQ_DOM_EXC goes to {} (domid {domid})", config.name),
                Err(e) => warn!("VIRQ_DOM_EXC stays with dom0: {e}"),
            }
        }
        // Before it runs: a service domain outweighs any default guest
        // (`sched`); a refusal is logged and the domain runs anyway.
        crate::sched::apply(pf, domid, crate::sched::SERVICE_SHARE);
        if let Err(e) = pf.unpause_domain(domid) {
            error!("domain {}: unpause failed: {e}", config.name);
        }
        // From here the domain and what was made for it are kept.
        log.commit();
        if let Some((page, gref, port)) = ring {
            let mut link = pf.xs_connect(domid, page, port);
            debug!("xenstore is domain {} (domid {domid})", config.name);
            match pf.xs_watch_lifecycle(&mut link) {
                Ok(()) => {
                    pf.watch(port);
                    debug!("dom0 watches @releaseDomain");
                }
                Err(e) => error!(
                    "{}",
                    BoardError::<P::Error>::Platform {
                        step: Step::WatchLifecycle,
                        error: e
                    }
                ),
            }
            self.xs = Some(XsLink {
                domid,
                port,
                gref,
                link,
            });
        }
        self.domains.insert(domid, &config.name, config.restart);
        info!(
            "built {} as domid {} ({} MiB) in {} us",
            config.name,
            domid,
            config.memory_mib,
            (self.platform.now_ns() - started) / 1000
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

    /// Builds config `index` (netdom) with the first virtio-net NIC on
    /// bus 0 and, with `relay`, a XenAPI relay channel to dom0. `extra` is
    /// appended to netdom's command line (self-tests only; empty
    /// otherwise). The hand-over and the build share one undo log.
    pub fn start_with_nic(
        &mut self,
        index: usize,
        relay: bool,
        extra: &str,
    ) -> Result<Handed<P>, Error<P>> {
        self.start_with_device(index, DeviceRole::Nic, relay, extra)
    }

    /// Builds config `index` with the device `role` names (the first
    /// virtio-net NIC or virtio-blk disk on bus 0) and, with `relay`, a
    /// channel to dom0. `extra` is appended to its command line (self-tests
    /// only). The hand-over and the build share one undo log.
    pub fn start_with_device(
        &mut self,
        index: usize,
        role: DeviceRole,
        relay: bool,
        extra: &str,
    ) -> Result<Handed<P>, Error<P>> {
        let nic = match role {
            DeviceRole::Nic => self
                .devices
                .iter()
                .find(|d| d.is_virtio_net())
                .cloned()
                .ok_or(BoardError::NoNic)?,
            DeviceRole::Disk => self
                .devices
                .iter()
                .find(|d| d.is_virtio_blk())
                .cloned()
                .ok_or(BoardError::NoDisk)?,
        };
        if !self.configs[index].passthrough {
            return Err(BoardError::NoPassthrough { config: index });
        }
        let mut log = UndoLog::new();
        let pf = &mut self.platform;
        let (snapshot, before, after) = match crate::nic::prepare(pf, &mut log, &nic) {
            Ok(p) => p,
            Err(e) => {
                log.undo(pf);
                return Err(e);
            }
        };
        debug!(
            "{} {} ({}): command {before:#06x} -> {after:#06x}, config space snapshot taken",
            role.noun(),
            nic.bdf,
            nic.name()
        );
        let msix = crate::nic::prepare_msix(pf, &mut log, &nic);
        let pages = if relay {
            let tx = pf.alloc_page().map_err(BoardError::at(Step::RelayPage));
            let rx = pf.alloc_page().map_err(BoardError::at(Step::RelayPage));
            match (tx, rx) {
                (Ok(tx), Ok(rx)) => Some((tx, rx)),
                (Err(e), _) | (_, Err(e)) => {
                    log.undo(pf);
                    return Err(e);
                }
            }
        } else {
            None
        };
        let mut parts = Parts::<P> {
            snapshot,
            msix,
            relay: pages,
            handed: None,
            offered: None,
            words: String::new(),
        };
        let management = (role == DeviceRole::Nic).then_some(self.management);
        let built = self.start_plan(index, log, &mut |pf, log, domid| {
            let handed = crate::nic::hand_over(
                pf,
                log,
                domid,
                &nic,
                &parts.snapshot,
                management,
                parts.msix.as_ref(),
            )?;
            let mut line = handed.line.clone();
            parts.handed = Some(handed);
            if let Some((tx, rx)) = &parts.relay {
                let offer = crate::nic::offer_relay(pf, log, domid, tx, rx, role.word())?;
                line.push_str(&offer.words);
                parts.offered = Some(offer);
            }
            line.push_str(extra);
            parts.words = line.clone();
            Ok(line)
        });
        // On failure the log was undone (grants ended): the pages go now.
        let domid = built?;
        let handed = parts.into_handed(domid, nic);
        let line = &handed.words;
        if let Some(port) = handed.relay_port {
            self.platform.watch(port);
        }
        debug!(
            "{} {} handed to domid {domid}: {line}",
            role.noun(),
            handed.nic.bdf
        );
        Ok(handed)
    }

    /// Builds netdom (config `index`) with the NIC and, with
    /// [`Board::relay`], a XenAPI relay channel; keeps what it was handed.
    /// Returns its domid ([`Notice::NetdomBuilt`] follows).
    pub fn start_netdom(&mut self, index: usize) -> Result<u16, Error<P>> {
        self.start_driver(index, DeviceRole::Nic)
    }

    /// Builds stordom (config `index`) with the disk and, with
    /// [`Board::relay`], a channel to dom0; keeps what it was handed.
    /// Returns its domid ([`Notice::StordomBuilt`] follows).
    pub fn start_stordom(&mut self, index: usize) -> Result<u16, Error<P>> {
        self.start_driver(index, DeviceRole::Disk)
    }

    fn start_driver(&mut self, index: usize, role: DeviceRole) -> Result<u16, Error<P>> {
        let handed = self.start_with_device(index, role, self.relay, "")?;
        let domid = handed.domid;
        *self.slot(role) = Some(handed);
        self.notices.push(role.built(domid));
        Ok(domid)
    }

    /// Destroys the domain holding `handed`'s NIC (its pirqs unmapped
    /// first), stops managing it, and takes the NIC back.
    pub fn reclaim(&mut self, mut handed: Handed<P>) -> Result<(), Error<P>> {
        crate::nic::quiesce(&mut self.platform, &mut handed);
        self.domains.remove(handed.domid);
        self.destroy(handed.domid);
        crate::nic::release(&mut self.platform, handed)
    }

    /// Stops managing `domid` and destroys it (netdom or stordom: the
    /// device taken back, [`Notice::NetdomReleased`] or
    /// [`Notice::StordomReleased`]).
    pub fn stop(&mut self, domid: u16) {
        match self.take_handed(domid) {
            Some((role, handed)) => {
                let relay_port = handed.relay_port;
                if let Err(e) = self.reclaim(handed) {
                    error!("device back from domid {domid}: {e}");
                }
                self.notices.push(role.released(domid, relay_port));
            }
            None => {
                self.domains.remove(domid);
                self.destroy(domid);
            }
        }
    }

    /// Destroys `domid` and drops dom0's handles for it.
    pub fn destroy(&mut self, domid: u16) {
        let pf = &mut self.platform;
        if let Some(mut live) = self.live.remove(&domid) {
            pf.console_drain(&mut live.console);
            pf.unwatch(P::console_port(&live.console));
            pf.console_close(live.console);
        }
        if let Err(e) = pf.destroy_domain(domid) {
            warn!("destroy domid {domid}: {e}");
        }
        if let Some(xs) = self.xs.take_if(|x| x.domid == domid) {
            // The xenstore domain itself: its connection is gone.
            pf.unwatch(xs.port);
            if let Err(e) = pf.close_port(xs.port) {
                warn!("xenstore port {}: {e}", xs.port);
            }
            if let Err(e) = pf.end_access(xs.gref) {
                warn!("dom0's xenstore ring (grant {}): {e}", xs.gref);
            }
            drop(xs.link);
        }
        if let Some(xs) = self.xs.as_mut() {
            match pf.xs_release(&mut xs.link, domid) {
                Ok(()) => debug!("released domid {domid} from xenstore"),
                Err(e) => warn!("domid {domid}: {e}"),
            }
        }
    }

    /// Drops dom0's handles for `domid`, which Xen no longer knows: its
    /// console link, its xenstore connection (the xenstore domain) or
    /// registration, and (netdom) the NIC, whose pirqs went with it.
    fn drop_handles(&mut self, domid: u16) {
        let pf = &mut self.platform;
        if let Some(mut live) = self.live.remove(&domid) {
            pf.console_drain(&mut live.console);
            pf.unwatch(P::console_port(&live.console));
            pf.console_close(live.console);
        }
        if let Some(xs) = self.xs.take_if(|x| x.domid == domid) {
            pf.unwatch(xs.port);
            let _ = pf.close_port(xs.port);
            let _ = pf.end_access(xs.gref);
        } else if let Some(xs) = self.xs.as_mut() {
            let _ = pf.xs_release(&mut xs.link, domid);
        }
        if let Some((role, handed)) = self.take_handed(domid) {
            let relay_port = handed.relay_port;
            if let Err(e) = crate::nic::release(&mut self.platform, handed) {
                error!("device back from domid {domid}: {e}");
            }
            self.notices.push(role.released(domid, relay_port));
        }
    }

    /// Handles an event on `port`; true if it was ours.
    pub fn on_event(&mut self, port: u32) -> bool {
        if port == self.dom_exc {
            self.check_domains();
            return true;
        }
        // The xenstore ring: the kernel calls `poll_lifecycle` after every
        // event, since any xenstore call may have received events.
        if self.xs.as_ref().is_some_and(|x| x.port == port) {
            return true;
        }
        let pf = &mut self.platform;
        for live in self.live.values_mut() {
            if P::console_port(&live.console) == port {
                pf.console_drain(&mut live.console);
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
    pub fn poll_lifecycle(&mut self) -> bool {
        let fired = match self.xs.as_mut() {
            Some(xs) => self.platform.xs_lifecycle_fired(&mut xs.link),
            None => false,
        };
        if fired {
            self.check_domains();
        }
        fired
    }

    /// What Xen says of `domid`.
    fn observe(&mut self, domid: u16) -> Observed {
        match self.platform.domain_info(domid) {
            Ok(info) if info.domain == domid => observe(info.flags),
            _ => Observed::Gone,
        }
    }

    /// The xenstore domain holds VIRQ_DOM_EXC, so its own death reaches
    /// nobody: dom0 looks at it on a timer. Checks every domain when it
    /// stopped (destroying it gives the VIRQ back to dom0).
    pub fn check_xenstore_domain(&mut self) {
        let Some(domid) = self.xs_domid() else {
            return;
        };
        if self.observe(domid) != Observed::Alive {
            warn!("the xenstore domain (domid {domid}) stopped");
            self.check_domains();
        }
    }

    /// Looks at every managed domain after VIRQ_DOM_EXC.
    pub fn check_domains(&mut self) {
        let now = self.platform.now_ns();
        let domids: Vec<u16> = self.domains.domids().collect();
        for domid in domids {
            let observed = self.observe(domid);
            let Observed::Shutdown(reason) = observed else {
                if observed == Observed::Gone {
                    warn!("domid {domid} vanished");
                    self.domains.remove(domid);
                    self.drop_handles(domid);
                }
                continue;
            };
            let name = self
                .domains
                .get(domid)
                .map(|m| m.name.clone())
                .unwrap_or_default();
            // Print what it said before it died.
            if let Some(live) = self.live.get_mut(&domid) {
                self.platform.console_drain(&mut live.console);
            }
            let action = self.domains.decide(domid, observed, now);
            info!("domain {name} (domid {domid}) stopped: {}", reason.as_str());
            let config = self.live.get(&domid).map(|l| l.config);
            if let Some((index, role)) =
                config.and_then(|i| DeviceRole::of(&self.configs[i]).map(|r| (i, r)))
            {
                self.device_stopped(domid, index, role, action);
                continue;
            }
            self.destroy(domid);
            match (action, config) {
                (Action::Restart, Some(index)) => {
                    info!("restarting {name}");
                    match self.start(index, None) {
                        Ok(new) => self.domains.rebuilt(domid, new),
                        Err(_) => {
                            self.domains.remove(domid);
                        }
                    }
                }
                (Action::Destroy, _) | (Action::Restart, None) => self.stays_down(domid),
                (Action::None, _) => {}
            }
        }
    }

    /// Acts on a stopped driver domain holding the NIC or the disk (the
    /// restart policy decided `action`): interrupts unmapped while the
    /// domain still exists, the domain destroyed, the device taken back,
    /// then (on Restart) handed over to a new build with a new channel.
    fn device_stopped(&mut self, old: u16, index: usize, role: DeviceRole, action: Action) {
        let started = self.platform.now_ns();
        let name = self.configs[index].name.clone();
        match self.slot(role).take_if(|h| h.domid == old) {
            Some(mut handed) => {
                crate::nic::quiesce(&mut self.platform, &mut handed);
                self.destroy(old);
                let relay_port = handed.relay_port;
                if let Err(e) = crate::nic::release(&mut self.platform, handed) {
                    error!("device back from domid {old}: {e}");
                }
                self.notices.push(role.released(old, relay_port));
            }
            None => self.destroy(old),
        }
        if action != Action::Restart {
            self.stays_down(old);
            return;
        }
        let noun = if role == DeviceRole::Nic {
            "NIC"
        } else {
            "disk"
        };
        info!("restarting {name} with the {noun}");
        // Under its old domid: guests' frontends granted their rings and
        // bound their event channels to that domid, so the new backend can
        // take them over in place (netdom/DESIGN.md, "Restart"). While Xen
        // still holds the old domain (a mapping of its pages not yet
        // dropped), any domid: the devices must then be plugged again.
        self.want_domid = old;
        let history = self.domains.remove(old);
        let rebuilt = match self.start_driver(index, role) {
            Err(e) => {
                warn!("{name} not rebuilt as domid {old} ({e}): building it under a new domid");
                self.start_driver(index, role)
            }
            built => built,
        };
        match rebuilt {
            Ok(new) => {
                if let Some(m) = history {
                    self.domains.rebuilt_as(m, new);
                }
                info!(
                    "rebuilt {name} as domid {new} with the {noun} in {} us",
                    (self.platform.now_ns() - started) / 1000
                );
            }
            Err(e) => {
                error!("could not rebuild {name}: {e}");
                self.domains.remove(old);
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

//! dom0's main: banner, bundle check, the configured domains, the
//! toolstack and the operator console, then the event loop.
//!
//! The QEMU self-tests (`selftest=<name>`, [`crate::selftest`]) exist only
//! in the test image, built with the `selftest` feature; the shipped dom0
//! has none of their code.

use log::{debug, error, info};
use xcp_bundle::{Bundle, PlatformConfig};
use xcp_runtime::event_loop::{App, Loop};
use xcp_runtime::{cmdline, verdict, Boot};

use xcp_dom0_board::{Notice, Platform as _};

#[cfg(feature = "selftest")]
use crate::selftest::{SelfTest, DEADLINE_TOKEN};
use crate::shell::say;
use crate::storage::Db;
use crate::toolstack::{RelayLink, Shown, Toolstack};
use crate::xen::{Dom0Board, Xen};

// Single frames are pages dom0 shares with peers (relay channels, the
// NIC's config snapshot, its xenstore ring): `cargo xtask bench memory`
// saw 4 in use at most; the rest of the quarter boot would keep is heap.
// The grant self-test shares 256 more (`xcp_selftest::GRANT_PAGES`).
#[cfg(not(feature = "selftest"))]
xcp_runtime::entry!(main, "dom0", frames = 256);
#[cfg(feature = "selftest")]
xcp_runtime::entry!(main, "dom0", frames = 512);

/// Ends the boot on an error: prints it, and in test mode reports `code`.
fn fail(test_mode: bool, code: u32, what: core::fmt::Arguments<'_>) -> ! {
    error!("{what}");
    if test_mode {
        xcp_runtime::io::debug_exit(code);
    }
    idle()
}

fn idle() -> ! {
    loop {
        xcp_runtime::event_loop::idle();
    }
}

fn main(boot: Boot) -> ! {
    let test_mode = cmdline::has(boot.cmdline, "test-exit");
    if test_mode {
        xcp_runtime::set_panic_exit(verdict::PANIC);
    }
    let xen = xcp_runtime::xen_version();
    info!(
        "xcp-rs toolstack-dom0 {} on Xen {} ({})",
        env!("CARGO_PKG_VERSION"),
        xen.version,
        xen.capabilities
    );
    debug!(
        "memory: {} MiB ({} pages), heap {} KiB, {} frames free",
        boot.nr_pages / 256,
        boot.nr_pages,
        boot.heap_bytes / 1024,
        xcp_runtime::paging::free_frames()
    );
    debug!("command line: {}", boot.cmdline);
    if boot.heap_bytes < xenapi::budget::HEAP_BYTES {
        log::warn!(
            "heap {} KiB is less than the {} KiB dom0's budget plans (xenapi budget.rs; a \
             larger bundle?): bounds may refuse before they are reached",
            boot.heap_bytes / 1024,
            xenapi::budget::HEAP_BYTES / 1024
        );
    }
    let Some(module) = boot.module else {
        fail(
            test_mode,
            verdict::BAD_BUNDLE,
            format_args!("bundle error: Xen passed no boot module (the platform bundle)"),
        )
    };
    let bundle = match Bundle::parse(module) {
        Ok(b) => b,
        Err(e) => fail(
            test_mode,
            verdict::BAD_BUNDLE,
            format_args!("bundle error: {e} ({} bytes)", module.len()),
        ),
    };
    debug!(
        "bundle: {} entries, {} bytes",
        bundle.entries().len(),
        module.len()
    );
    for entry in bundle.entries() {
        debug!("  {:<24} {:>9} bytes", entry.name, entry.data.len());
    }
    let config = match PlatformConfig::from_bundle(&bundle) {
        Ok(c) => c,
        Err(e) => fail(
            test_mode,
            verdict::BAD_BUNDLE,
            format_args!("bundle error: {e}"),
        ),
    };
    debug!(
        "platform {}: {} service domain(s) configured",
        config.platform.name,
        config.domains.len()
    );
    for d in &config.domains {
        debug!(
            "  domain {:<16} image {} {} MiB restart={}",
            d.name, d.image, d.memory_mib, d.restart
        );
    }
    let devices = match xcp_runtime::pci_conf::PortConfig::new() {
        Ok(mut conf) => xcp_pci::enumerate_bus(&mut conf, 0),
        Err(e) => {
            error!("no PCI config access: {e}");
            alloc::vec::Vec::new()
        }
    };
    for d in &devices {
        debug!(
            "pci {} {:04x}:{:04x} {}",
            d.bdf,
            d.vendor,
            d.device,
            d.name()
        );
    }
    let mut lp = Loop::new();
    let dom_exc = match xcp_runtime::evtchn::bind_virq(xen_sys::event_channel::VIRQ_DOM_EXC)
        .and_then(|port| lp.watch(port).map(|()| port))
    {
        Ok(port) => port,
        Err(e) => fail(
            test_mode,
            verdict::FAIL,
            format_args!("platform setup failed: {e}"),
        ),
    };
    let images = config
        .domains
        .iter()
        .filter_map(|c| bundle.get(&c.image).map(|e| (c.image.clone(), e.data)))
        .collect();
    let mut platform = Dom0Board::new(Xen::new(), images, config.domains.clone(), dom_exc);
    // dom0 outweighs every domain it serves before it builds any
    // (`xcp_dom0_board::sched`); a refusal is logged and the boot goes on.
    xcp_dom0_board::sched::apply(&mut platform.platform, 0, xcp_dom0_board::sched::DOM0_SHARE);
    if let Err(e) = xcp_runtime::gnttab::init() {
        error!("grant table setup failed: {e:?}");
    }
    // The self-test the command line names (`selftest=<name>`): only the
    // test image knows the argument; the shipped dom0 boots as configured.
    #[cfg(feature = "selftest")]
    let selftest = cmdline::get(boot.cmdline, "selftest");
    #[cfg(not(feature = "selftest"))]
    let selftest: Option<&str> = None;
    if selftest.is_none() {
        platform.start_configured();
        platform.platform.sync(&mut lp);
    }
    debug!("dom0 ready");
    if test_mode && selftest.is_none() {
        xcp_runtime::io::debug_exit(verdict::PASS);
    }
    platform.devices = devices;
    platform.relay = config.toolstack.is_some();
    // The database log lives in stordom's SR: stordom first, when the
    // machine has a disk and the toolstack runs.
    let db = match (&config.toolstack, selftest) {
        (Some(_), None) => open_db(&mut platform, &mut lp),
        _ => Db::Volatile(Default::default()),
    };
    let toolstack = config.toolstack.as_ref().and_then(|t| {
        let images = crate::toolstack::vm_images(&bundle);
        match Toolstack::new(&t.root_password_hash, images, db) {
            Ok(ts) => {
                debug!("xenapi toolstack ready");
                Some(ts)
            }
            Err(e) => {
                error!("xenapi toolstack not started: {e}");
                None
            }
        }
    });
    // netdom relays XenAPI only to a toolstack that runs.
    platform.relay = toolstack.is_some();
    // Checked when the bundle was read.
    match xcp_bundle::Management::parse(&config.platform.management) {
        Ok(m) => platform.management = m,
        Err(e) => error!("management: {e}"),
    }
    #[cfg_attr(not(feature = "selftest"), allow(unused_mut))] // reason: self-tests add links
    let mut relays = alloc::vec::Vec::new();
    // netdom's domid while its readiness is not announced yet.
    #[cfg_attr(not(feature = "selftest"), allow(unused_mut))] // reason: self-tests set it
    let mut netdom_ready = None;
    #[cfg(feature = "selftest")]
    let test = selftest.map(|name| {
        let mut test = SelfTest::start(name, &mut platform, &mut lp);
        for link in test.relay_links(&mut platform, &mut lp, boot.cmdline) {
            if test.relays_netdom() {
                netdom_ready = Some(link.domid);
            }
            relays.push(link);
        }
        platform.platform.sync(&mut lp);
        test
    });
    let shell = match crate::shell::Shell::bind(&mut lp) {
        Ok(s) => Some(s),
        Err(e) => {
            error!("operator console unavailable: {e}");
            None
        }
    };
    let mut app = Dom0 {
        platform,
        #[cfg(feature = "selftest")]
        test,
        toolstack,
        relays,
        tick_armed: false,
        netdom_ready,
        xenapi_url: cmdline::get(boot.cmdline, "xenapi-url").map(alloc::string::String::from),
        shell,
    };
    // The storage domain, with the disk, when the machine has one (and
    // it was not started for the database above).
    if selftest.is_none() && app.platform.stordom_domid().is_none() {
        if let Some(index) = app
            .platform
            .configs()
            .iter()
            .position(|c| c.disk && c.start)
        {
            app.start_stordom(&mut lp, index);
        }
    }
    // The network domain, with the NIC and (when the toolstack runs) a
    // XenAPI relay channel.
    if selftest.is_none() {
        if let Some(index) = app.platform.configs().iter().position(|c| c.nic && c.start) {
            if let Err(e) = app.start_netdom(&mut lp, index) {
                error!("network domain not started: {e}");
            }
        }
    }
    // A relay's peer kicks only a consumer that said it waits: look once.
    app.pump_relays(&mut lp, None);
    if app.platform.xs_domid().is_some() {
        lp.after(XS_CHECK_NS, XS_CHECK_TOKEN);
    }
    if app.toolstack.is_some() {
        lp.after(VM_CHECK_NS, VM_CHECK_TOKEN);
    }
    lp.run(&mut app);
    idle()
}

/// Builds stordom with the disk and its channel and asks it for the SR's
/// state: the database log's storage. Without a disk (or a stordom that
/// does not answer) nothing is kept, and the log says so.
fn open_db(platform: &mut Dom0Board, lp: &mut Loop) -> Db {
    let volatile = Db::Volatile(Default::default());
    let Some(index) = platform.configs().iter().position(|c| c.disk && c.start) else {
        info!("no storage domain configured: the XenAPI database is not kept across reboots");
        return volatile;
    };
    if !platform.devices.iter().any(|d| d.is_virtio_blk()) {
        info!("no virtio-blk disk: the XenAPI database is not kept across reboots");
        return volatile;
    }
    let built = platform.start_stordom(index);
    platform.platform.sync(lp);
    if let Err(e) = built {
        error!("storage domain not started: {e}; the XenAPI database is not kept");
        return volatile;
    }
    let Some((tx, rx, port)) = platform.stordom_mut().and_then(|h| h.take_relay()) else {
        error!("stordom has no channel: the XenAPI database is not kept");
        return volatile;
    };
    // The pages came zeroed before they were granted and stordom may run
    // already: attach without zeroing (as for netdom's relay).
    let channel = match xcp_channel::Channel::new(tx, rx, xcp_channel::Role::Prepared) {
        Ok(c) => c.with_max_message(xcp_storwire::MAX_MESSAGE),
        Err(e) => {
            error!("stordom channel: {e:?}; the XenAPI database is not kept");
            return volatile;
        }
    };
    let domid = platform.stordom_domid().unwrap_or_default();
    let mut client = xcp_storwire::client::Client::new(
        crate::storage::StordomLink::new(channel, port, domid),
        crate::storage::CALL_TIMEOUT_NS,
    );
    match client.status() {
        Ok(status) => {
            match &status.read_only {
                Some(why) => error!("the SR is read-only: {why}"),
                None if status.formatted => info!("stordom made a new SR on the disk"),
                None => {}
            }
            info!(
                "XenAPI database log on stordom's SR: {} bytes",
                status.log_len
            );
            Db::Stordom(alloc::rc::Rc::new(core::cell::RefCell::new(client)))
        }
        Err(e) => {
            error!("stordom does not answer ({e:?}): the XenAPI database is not kept");
            volatile
        }
    }
}

/// Timer token of the xenstore domain's health check (it holds
/// VIRQ_DOM_EXC, so its own death reaches nobody).
const XS_CHECK_TOKEN: u64 = 0x75c;
const XS_CHECK_NS: u64 = 1_000_000_000;

/// Timer token of the XenAPI VMs' backstop check: a VM's domain that
/// stopped without a VIRQ_DOM_EXC reaching dom0 (the xenstore domain holds
/// it and fires `@releaseDomain` only for domains it knows) is noticed
/// within this period.
const VM_CHECK_TOKEN: u64 = 0x7c4;
const VM_CHECK_NS: u64 = 1_000_000_000;

/// Timer token of the parked-call re-check.
const TICK_TOKEN: u64 = 0x71c;
const TICK_NS: u64 = 100_000_000;

/// dom0's event loop: the platform, the toolstack's relays, then the
/// self-test if one runs.
struct Dom0 {
    platform: Dom0Board,
    #[cfg(feature = "selftest")]
    test: Option<SelfTest>,
    toolstack: Option<Toolstack>,
    relays: alloc::vec::Vec<RelayLink>,
    tick_armed: bool,
    /// netdom's domid until it says it listens (`ToToolstack::Ready`) and
    /// dom0 announces XenAPI.
    netdom_ready: Option<u16>,
    /// The URL `xenapi-url=` names, announced when netdom listens.
    xenapi_url: Option<alloc::string::String>,
    /// The operator console.
    shell: Option<crate::shell::Shell>,
}

impl Dom0 {
    /// Builds netdom (config `index`) with the NIC and, when the toolstack
    /// runs, a XenAPI relay link. Returns its domid.
    fn start_netdom(&mut self, lp: &mut Loop, index: usize) -> Result<u16, alloc::string::String> {
        let built = self.platform.start_netdom(index);
        self.after_board(lp);
        built.map_err(|e| alloc::format!("{e}"))
    }

    /// Builds stordom (config `index`) with the disk, if the machine has
    /// one.
    fn start_stordom(&mut self, lp: &mut Loop, index: usize) {
        if !self.platform.devices.iter().any(|d| d.is_virtio_blk()) {
            info!("no virtio-blk disk: the storage domain is not started");
            return;
        }
        if let Err(e) = self.platform.start_stordom(index) {
            error!("storage domain not started: {e}");
        }
        self.after_board(lp);
    }

    /// Acts on what the board reports (netdom's relay link appeared or
    /// went) and applies its event-loop watches.
    fn after_board(&mut self, lp: &mut Loop) {
        let mut pump = false;
        for notice in self.platform.take_notices() {
            match notice {
                Notice::NetdomBuilt { domid } => {
                    // A rebuilt netdom: the VIFs the old one served.
                    self.lend_xenstore();
                    if let Some(ts) = self.toolstack.as_mut() {
                        let n = ts.netdom_rebuilt(domid);
                        if n > 0 {
                            info!("{n} guest VIF(s) handed to the rebuilt netdom");
                        }
                    }
                    let Some((tx, rx, port)) =
                        self.platform.netdom_mut().and_then(|h| h.take_relay())
                    else {
                        continue;
                    };
                    // The pages came zeroed (`Platform::alloc_page`) before
                    // they were granted, and netdom may already run: attach
                    // without zeroing (zeroing now could wipe its waiting
                    // flag and lose its wake-up).
                    match xcp_channel::Channel::new(tx, rx, xcp_channel::Role::Prepared) {
                        Ok(channel) => {
                            debug!("xenapi relay channel to netdom on port {port}");
                            self.relays.push(RelayLink::new(channel, port, domid));
                            self.netdom_ready = Some(domid);
                            pump = true;
                        }
                        Err(e) => error!("relay channel: {e:?}"),
                    }
                }
                Notice::NetdomReleased { domid, relay_port } => {
                    if let Some(port) = relay_port {
                        self.relays.retain(|r| r.port != port);
                        let dropped = self.toolstack.as_mut().map_or(0, |ts| ts.drop_link(port));
                        debug!(
                            "relay link on port {port} closed ({dropped} relayed connection(s) dropped)"
                        );
                    }
                    if self.netdom_ready == Some(domid) {
                        self.netdom_ready = None;
                    }
                }
                Notice::StordomBuilt { domid } => {
                    // At boot `open_db` took the channel already; a rebuilt
                    // stordom's goes to the database's client.
                    let Some((tx, rx, port)) =
                        self.platform.stordom_mut().and_then(|h| h.take_relay())
                    else {
                        continue;
                    };
                    let Some(ts) = self.toolstack.as_mut() else {
                        continue;
                    };
                    match xcp_channel::Channel::new(tx, rx, xcp_channel::Role::Prepared) {
                        Ok(channel) => {
                            let channel = channel.with_max_message(xcp_storwire::MAX_MESSAGE);
                            let link = crate::storage::StordomLink::new(channel, port, domid);
                            if ts.stordom_rebuilt(domid, link) {
                                info!(
                                    "the XenAPI database is on the rebuilt stordom (domid {domid})"
                                );
                            }
                        }
                        Err(e) => error!("stordom channel: {e:?}"),
                    }
                }
                Notice::StordomReleased { domid, .. } => {
                    debug!("stordom (domid {domid}) is gone");
                }
            }
        }
        self.platform.platform.sync(lp);
        // VM consoles connected or closed by engine calls.
        if let Some(ts) = self.toolstack.as_mut() {
            for (port, watch) in ts.take_watches() {
                if !watch {
                    lp.unwatch(port);
                } else if let Err(e) = lp.watch(port) {
                    error!("watch VM console port {port}: {e}");
                }
            }
        }
        if pump {
            // A relay's peer kicks only a consumer that said it waits: look once.
            self.pump_relays(lp, None);
        }
    }

    /// The managed domain the operator named.
    fn find(&self, target: xcp_domains::shell::Target<'_>) -> Option<u16> {
        use xcp_domains::shell::Target;
        self.platform.domains.domids().find(|&d| match target {
            Target::Domid(t) => t == d,
            Target::Name(n) => self.platform.domains.get(d).is_some_and(|m| m.name == n),
        })
    }

    /// Runs one operator command; the answers are console lines
    /// ([`say`]), the command a DEBUG record for the log.
    fn run_command(&mut self, lp: &mut Loop, line: &str) {
        use xcp_domains::shell::{parse, Command, HELP};
        let command = parse(line);
        if !matches!(command, Ok(None)) {
            debug!("console> {}", line.trim());
        }
        let command = match command {
            Ok(Some(c)) => c,
            Ok(None) => return,
            Err(e) => return say(format_args!("{e}")),
        };
        match command {
            Command::Help => HELP.iter().for_each(|l| say(format_args!("  {l}"))),
            Command::List => {
                let mut any = false;
                for domid in self.platform.domains.domids() {
                    if let Some(m) = self.platform.domains.get(domid) {
                        any = true;
                        say(format_args!(
                            "  {:<16} domid {domid:<5} restart={} restarts={}",
                            m.name, m.restart, m.restarts
                        ));
                    }
                }
                if !any {
                    say(format_args!("no managed domains"));
                }
            }
            Command::Crash(target) => match self.find(target) {
                Some(domid) => {
                    match self
                        .platform
                        .platform
                        .remote_shutdown(domid, xen_sys::sched::SHUTDOWN_CRASH)
                    {
                        Ok(()) => say(format_args!("domid {domid} shut down as crashed")),
                        Err(e) => say(format_args!("crash domid {domid}: {e}")),
                    }
                }
                None => say(format_args!("no managed domain {target}")),
            },
            Command::Destroy(target) => match self.find(target) {
                Some(domid) => {
                    self.platform.stop(domid);
                    self.after_board(lp);
                    say(format_args!("destroyed domid {domid}"));
                }
                None => say(format_args!("no managed domain {target}")),
            },
            Command::Stats => {
                if self.relays.is_empty() {
                    say(format_args!("no relay domain to ask for counters"));
                }
                // Each answers when it next runs; `pump_relays` shows it.
                let want = Shown {
                    counters: true,
                    memory: false,
                };
                self.relays.iter_mut().for_each(|r| r.request_stats(want));
                self.pump_relays(lp, None);
            }
            Command::Mem => {
                crate::memory::show_dom0();
                for domid in self
                    .platform
                    .domains
                    .domids()
                    .collect::<alloc::vec::Vec<_>>()
                {
                    if self.relays.iter().any(|r| r.domid == domid) {
                        continue;
                    }
                    let figures = crate::memory::xenstore_figures(&mut self.platform, domid);
                    say(format_args!("{}", self.memory_row(domid, figures).line()));
                }
                // A relay's line comes with its answer (`show_stats`).
                let want = Shown {
                    counters: false,
                    memory: true,
                };
                self.relays.iter_mut().for_each(|r| r.request_stats(want));
                self.pump_relays(lp, None);
            }
        }
    }

    /// The `mem` line of managed domain `domid`, with the runtime
    /// figures it reported.
    fn memory_row(
        &mut self,
        domid: u16,
        figures: Option<xcp_domains::memory::MemoryFigures>,
    ) -> xcp_domains::memory::MemoryRow {
        let name = self
            .platform
            .domains
            .get(domid)
            .map_or(alloc::string::String::from("relay"), |m| m.name.clone());
        let name = name.as_str();
        let configured = self
            .platform
            .configs()
            .iter()
            .find(|c| c.name == name)
            .map_or(0, |c| u64::from(c.memory_mib));
        crate::memory::row(
            &mut self.platform.platform,
            name,
            domid,
            configured,
            figures,
        )
    }

    /// Shows the counters relay domains sent (the `stats` command).
    fn show_stats(&mut self) {
        let mut answers = alloc::vec::Vec::new();
        for r in &mut self.relays {
            if let Some((s, shown)) = r.take_stats() {
                answers.push((r.domid, s, shown));
            }
        }
        for (domid, s, shown) in answers {
            let name = self
                .platform
                .domains
                .get(domid)
                .map_or("relay", |m| m.name.as_str());
            if shown.counters {
                say(format_args!(
                    "{name} (domid {domid}): {} NIC interrupt wake-ups, {} timer wake-ups, \
                     {} relayed connections open ({} accepted, {} refused)",
                    s.nic_interrupts, s.timer_wakeups, s.connections, s.accepted, s.refused
                ));
            }
            if shown.memory {
                say(format_args!(
                    "{}",
                    self.memory_row(domid, Some(s.memory)).line()
                ));
            }
        }
    }

    /// Applies the policy of XenAPI VMs whose domains stopped, then serves
    /// the calls that waited for such a change.
    fn check_vms(&mut self, lp: &mut Loop) {
        self.lend_xenstore();
        if self.toolstack.as_mut().is_some_and(|ts| ts.check_vms()) {
            self.pump_relays(lp, None);
        }
    }

    /// Lends the toolstack the board's xenstore connection as it is now
    /// (before each engine call: the xenstore domain may have gone or been
    /// rebuilt since the last).
    fn lend_xenstore(&mut self) {
        let Some(ts) = self.toolstack.as_mut() else {
            return;
        };
        let domid = self.platform.xs_domid();
        let link = self.platform.xs_mut().map(|l| l.clone());
        ts.lend_xenstore(domid.zip(link));
        let netdom = self.platform.netdom_domid();
        // A self-test's netdom (`netdom-xenapi`) is not the board's.
        #[cfg(feature = "selftest")]
        let netdom = netdom.or_else(|| self.test.as_ref().and_then(|t| t.netdom_domid()));
        ts.lend_netdom(netdom);
        ts.lend_stordom(self.platform.stordom_domid());
    }

    fn pump_relays(&mut self, lp: &mut Loop, only: Option<u32>) {
        self.lend_xenstore();
        let Some(ts) = self.toolstack.as_mut() else {
            return;
        };
        // The link that was kicked first, then the others: a change it
        // carried may release calls parked on them.
        if let Some(first) = only.and_then(|p| self.relays.iter().position(|r| r.port == p)) {
            self.relays.swap(0, first);
        }
        let mut pump_all = |relays: &mut alloc::vec::Vec<RelayLink>, ts: &mut Toolstack| {
            relays.retain_mut(|r| match r.pump(ts) {
                Ok(()) => true,
                Err(e) => {
                    error!("dropping a XenAPI relay: {e}");
                    lp.unwatch(r.port);
                    ts.drop_link(r.port);
                    false
                }
            })
        };
        pump_all(&mut self.relays, ts);
        // A VM start's domain build goes a step per pass, every relay
        // served between steps (a sync start parked on one carries its
        // build on there; an `Async` one is carried on by run_next_job,
        // which also gives up a build nobody carries on any more).
        while ts.building() {
            ts.run_next_job();
            pump_all(&mut self.relays, ts);
        }
        if ts.has_parked() && !self.tick_armed {
            self.tick_armed = true;
            lp.after(TICK_NS, TICK_TOKEN);
        }
        self.show_stats();
        self.announce_ready();
    }

    /// Announces XenAPI once netdom said (`ToToolstack::Ready`, over its
    /// relay channel) that it listens; later announcements (a new DHCP
    /// address) are logged as moves.
    fn announce_ready(&mut self) {
        for r in &mut self.relays {
            let Some((address, port)) = r.take_ready() else {
                continue;
            };
            let at = core::net::Ipv4Addr::from(address);
            if self.netdom_ready != Some(r.domid) {
                info!(
                    "XenAPI relay of domid {} now listens at {at}:{port}",
                    r.domid
                );
                continue;
            }
            self.netdom_ready = None;
            match &self.xenapi_url {
                Some(url) => info!("XenAPI ready at {url}"),
                None => info!("XenAPI ready at http://{at}:{port}/"),
            }
            #[cfg(feature = "selftest")]
            if let Some(test) = self.test.as_mut() {
                test.relay_ready(r.domid);
            }
        }
    }
}

impl App for Dom0 {
    fn on_event(&mut self, lp: &mut Loop, port: u32) {
        if self.relays.iter().any(|r| r.port == port) {
            self.pump_relays(lp, Some(port));
        }
        if self
            .toolstack
            .as_mut()
            .is_some_and(|ts| ts.on_console_event(port))
        {
            // Attached text consoles get the new output now, not at the
            // next tick.
            self.pump_relays(lp, None);
            self.after_board(lp);
            return;
        }
        if let Some(shell) = self.shell.as_mut().filter(|s| s.port == port) {
            for line in shell.read_lines() {
                self.run_command(lp, &line);
            }
        }
        let lifecycle = self.platform.is_lifecycle_port(port);
        #[cfg_attr(not(feature = "selftest"), allow(unused_variables))] // reason: self-tests look
        let ours = self.platform.on_event(port);
        // Calls to xenstore above may have received @releaseDomain.
        let released = self.platform.poll_lifecycle();
        self.after_board(lp);
        if lifecycle || released {
            self.check_vms(lp);
        }
        #[cfg(feature = "selftest")]
        if let Some(test) = self.test.as_mut() {
            if ours || released {
                test.check(&mut self.platform, lp);
            } else {
                test.on_event(&mut self.platform, lp, port);
            }
        }
        self.after_board(lp);
    }

    fn on_timer(&mut self, lp: &mut Loop, token: u64) {
        match token {
            XS_CHECK_TOKEN => {
                self.platform.check_xenstore_domain();
                #[cfg_attr(not(feature = "selftest"), allow(unused_variables))]
                // reason: self-tests look
                let fired = self.platform.poll_lifecycle();
                self.after_board(lp);
                #[cfg(feature = "selftest")]
                if let Some(test) = self.test.as_mut().filter(|_| fired) {
                    test.check(&mut self.platform, lp);
                }
                if self.platform.xs_domid().is_some() {
                    lp.after(XS_CHECK_NS, XS_CHECK_TOKEN);
                }
            }
            VM_CHECK_TOKEN => {
                self.check_vms(lp);
                lp.after(VM_CHECK_NS, VM_CHECK_TOKEN);
            }
            TICK_TOKEN => {
                self.tick_armed = false;
                self.pump_relays(lp, None);
            }
            #[cfg(feature = "selftest")]
            _ => {
                if token == DEADLINE_TOKEN && !self.test.as_ref().is_some_and(SelfTest::serving) {
                    crate::selftest::fail("deadline", "the self-test did not finish in time");
                }
                if let Some(test) = self.test.as_mut() {
                    test.on_timer(&mut self.platform, lp, token);
                }
            }
            #[cfg(not(feature = "selftest"))]
            _ => {}
        }
        self.after_board(lp);
    }
}

//! dom0's main: banner, bundle check, then idle.

use log::{error, info};
use xcp_bundle::{Bundle, PlatformConfig};
use xcp_runtime::event_loop::{App, Loop};
use xcp_runtime::{cmdline, verdict, Boot};

use crate::platform::Platform;
use crate::selftest::{SelfTest, DEADLINE_TOKEN};
use crate::toolstack::{RelayLink, Toolstack};

xcp_runtime::entry!(main, "dom0");

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
    info!(
        "memory: {} MiB ({} pages), heap {} KiB, {} frames free",
        boot.nr_pages / 256,
        boot.nr_pages,
        boot.heap_bytes / 1024,
        xcp_runtime::paging::free_frames()
    );
    info!("command line: {}", boot.cmdline);
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
    info!(
        "bundle: {} entries, {} bytes",
        bundle.entries().len(),
        module.len()
    );
    for entry in bundle.entries() {
        info!("  {:<24} {:>9} bytes", entry.name, entry.data.len());
    }
    let config = match PlatformConfig::from_bundle(&bundle) {
        Ok(c) => c,
        Err(e) => fail(
            test_mode,
            verdict::BAD_BUNDLE,
            format_args!("bundle error: {e}"),
        ),
    };
    info!(
        "platform {}: {} service domain(s) configured",
        config.platform.name,
        config.domains.len()
    );
    for d in &config.domains {
        info!(
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
        info!(
            "pci {} {:04x}:{:04x} {}",
            d.bdf,
            d.vendor,
            d.device,
            d.name()
        );
    }
    let mut lp = Loop::new();
    let mut platform = match Platform::new(&bundle, config.domains.clone(), &mut lp) {
        Ok(p) => p,
        Err(e) => fail(
            test_mode,
            verdict::FAIL,
            format_args!("platform setup failed: {e}"),
        ),
    };
    if let Err(e) = xcp_runtime::gnttab::init() {
        error!("grant table setup failed: {e:?}");
    }
    let selftest = cmdline::get(boot.cmdline, "selftest");
    if selftest.is_none() {
        platform.start_configured(&mut lp);
    }
    info!("dom0 ready");
    if test_mode && selftest.is_none() {
        xcp_runtime::io::debug_exit(verdict::PASS);
    }
    let toolstack = config.toolstack.as_ref().and_then(|t| {
        let images = bundle
            .entries()
            .iter()
            .filter(|e| e.name.ends_with(".elf"))
            .map(|e| (alloc::string::String::from(e.name), e.data))
            .collect();
        match Toolstack::new(&t.root_password_hash, images) {
            Ok(ts) => {
                info!("xenapi toolstack ready");
                Some(ts)
            }
            Err(e) => {
                error!("xenapi toolstack not started: {e}");
                None
            }
        }
    });
    platform.devices = devices;
    platform.management = config.platform.management.clone();
    let mut test = selftest.map(|name| SelfTest::start(name, &mut platform, &mut lp));
    let mut relays = alloc::vec::Vec::new();
    if let Some(t) = test.as_mut().filter(|t| t.wants_relay()) {
        let password = cmdline::get(boot.cmdline, "xenapi-password").unwrap_or("");
        let extra = alloc::format!("xenapi-password={password}");
        let (domid, channel, port) =
            crate::selftest::channel_to_testdom(&mut platform, &mut lp, "xenapi-relay", &extra);
        t.set_relay_domid(domid);
        relays.push(RelayLink::new(channel, port));
    }
    // The network domain, with the NIC and (when the toolstack runs) a
    // XenAPI relay channel.
    let mut netdom_ready = None;
    let mut netdom = None;
    if selftest.is_none() {
        if let Some(index) = platform.configs().iter().position(|c| c.nic && c.start) {
            match crate::nic::start_with_nic(&mut platform, &mut lp, index, toolstack.is_some()) {
                Ok(mut handed) => {
                    if let Some((channel, port)) = handed.take_relay() {
                        info!("xenapi relay channel to netdom on port {port}");
                        relays.push(RelayLink::new(channel, port));
                        let url = cmdline::get(boot.cmdline, "xenapi-url")
                            .map(alloc::string::String::from);
                        netdom_ready = Some((handed.domid, url));
                    }
                    netdom = Some(handed);
                }
                Err(e) => error!("network domain not started: {e}"),
            }
        }
    }
    if let Some(t) = test.as_mut() {
        if let Some((channel, port)) = t.take_netdom_relay() {
            info!("xenapi relay channel to netdom on port {port}");
            relays.push(RelayLink::new(channel, port));
        }
        if let Some(url) = cmdline::get(boot.cmdline, "xenapi-url") {
            t.set_xenapi_url(url);
        }
    }
    let mut app = Dom0 {
        platform,
        test,
        toolstack,
        relays,
        tick_armed: false,
        netdom_ready,
        _netdom: netdom,
    };
    // A relay's peer kicks only a consumer that said it waits: look once.
    app.pump_relays(&mut lp, None);
    lp.run(&mut app);
    idle()
}

/// Timer token of the parked-call re-check.
const TICK_TOKEN: u64 = 0x71c;
const TICK_NS: u64 = 100_000_000;

/// dom0's event loop: the platform, the toolstack's relays, then the
/// self-test if one runs.
struct Dom0 {
    platform: Platform,
    test: Option<SelfTest>,
    toolstack: Option<Toolstack>,
    relays: alloc::vec::Vec<RelayLink>,
    tick_armed: bool,
    /// netdom's domid and the URL to announce once it listens.
    netdom_ready: Option<(u16, Option<alloc::string::String>)>,
    /// What dom0 handed netdom (the NIC, the config snapshot it maps):
    /// kept for netdom's life.
    _netdom: Option<crate::nic::Handed>,
}

impl Dom0 {
    fn pump_relays(&mut self, lp: &mut Loop, only: Option<u32>) {
        let Some(ts) = self.toolstack.as_mut() else {
            return;
        };
        self.relays.retain_mut(|r| {
            if only.is_some_and(|p| p != r.port) {
                return true;
            }
            match r.pump(ts) {
                Ok(()) => true,
                Err(e) => {
                    error!("dropping a XenAPI relay: {e}");
                    lp.unwatch(r.port);
                    false
                }
            }
        });
        if ts.has_parked() && !self.tick_armed {
            self.tick_armed = true;
            lp.after(TICK_NS, TICK_TOKEN);
        }
    }
}

impl App for Dom0 {
    fn on_event(&mut self, lp: &mut Loop, port: u32) {
        if self.relays.iter().any(|r| r.port == port) {
            self.pump_relays(lp, Some(port));
        }
        let ours = self.platform.on_event(lp, port);
        if let Some((domid, url)) = &self.netdom_ready {
            let listening = self.platform.live.get(domid).is_some_and(|l| {
                let text = b"XenAPI relay listening on";
                l.console.history().windows(text.len()).any(|w| w == text)
            });
            if listening {
                match url {
                    Some(url) => info!("XenAPI ready at {url}"),
                    None => info!("XenAPI ready on netdom's port 80"),
                }
                self.netdom_ready = None;
            }
        }
        if let Some(test) = self.test.as_mut() {
            if ours {
                test.check(&mut self.platform, lp);
            } else {
                test.on_event(&mut self.platform, lp, port);
            }
        }
    }

    fn on_timer(&mut self, lp: &mut Loop, token: u64) {
        if token == TICK_TOKEN {
            self.tick_armed = false;
            self.pump_relays(lp, None);
            return;
        }
        if token == DEADLINE_TOKEN && !self.test.as_ref().is_some_and(SelfTest::serving) {
            crate::selftest::fail("deadline", "the self-test did not finish in time");
        }
        if let Some(test) = self.test.as_mut() {
            test.on_timer(&mut self.platform, lp, token);
        }
    }
}

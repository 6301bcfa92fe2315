//! netdom: the network domain. dom0 builds it with the virtio-net NIC
//! assigned through the IOMMU (netdom/DESIGN.md). It brings the NIC up with
//! virtio-drivers, takes its management address (static from dom0, or a
//! DHCPv4 lease through smoltcp), and proves both directions with an ARP
//! exchange with the gateway. With `xenapi-relay=` on its command line it
//! then serves XenAPI: smoltcp over the NIC, the relay's listener pool on
//! port 80, each connection relayed over the channel to dom0's toolstack
//! (netdom/DESIGN.md; `xcp_netrelay`).
//!
//! On the host this crate builds a stub that says how to build the kernel.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![cfg_attr(target_os = "none", forbid(unsafe_code))]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(all(target_os = "none", feature = "dma-escape"))]
mod escape;
#[cfg(target_os = "none")]
mod irq;
#[cfg(target_os = "none")]
mod platform;

#[cfg(target_os = "none")]
mod domain {
    use alloc::boxed::Box;
    use alloc::vec::Vec;

    use log::{debug, error, warn};
    use netdom::args::Args;
    use netdom::arp::{self, Ipv4, Mac};
    use virtio_drivers::device::net::VirtIONet;
    use virtio_drivers::transport::pci::PciTransport;
    use xcp_runtime::assigned::{self, Assigned};
    use xcp_runtime::device_args::DeviceArgs;
    use xcp_runtime::mmio::MmioRegion;
    use xcp_runtime::pci_snapshot::CONFIG_BYTES;
    use xcp_runtime::virtio_hal::XenHal;
    use xcp_runtime::virtio_platform::{AccessPlatform, Negotiated};
    use xcp_runtime::Boot;

    use crate::irq::Wake;

    // It shares no page of its own (dom0 grants the relay channel; DMA
    // buffers come from the heap): a few single frames, the rest heap.
    xcp_runtime::entry!(main, "netdom", frames = 64);

    /// Virtqueue entries: 256 makes the transmit queue's descriptor table
    /// and available ring span two pages, so bring-up uses an exchanged,
    /// machine-contiguous extent and not just single frames.
    const QUEUE_SIZE: usize = 256;
    /// Receive buffer bytes (a full Ethernet frame and the virtio header).
    const RX_BUFFER: usize = 2048;
    const ARP_RETRY_NS: u64 = 1_000_000_000;
    const ARP_TRIES: u32 = 10;

    /// The driver, as netdom instantiates it: over the PCI transport, with
    /// VIRTIO_F_ACCESS_PLATFORM accepted when the device offers it (its DMA
    /// then goes through the IOMMU).
    pub(crate) type Net = VirtIONet<XenHal, AccessPlatform<PciTransport>, QUEUE_SIZE>;

    fn stop(why: core::fmt::Arguments<'_>) -> ! {
        error!("FAIL: {why}");
        loop {
            xcp_runtime::event_loop::idle();
        }
    }

    fn main(boot: Boot) -> ! {
        debug!("command line {:?}", boot.cmdline);
        debug!("heap {} KiB", boot.heap_bytes / 1024);
        if boot.heap_bytes < xcp_netrelay::budget::HEAP_BYTES {
            warn!(
                "heap {} KiB is less than the {} KiB netdom's budget plans (netdom/relay budget.rs): \
                 bounds may refuse before they are reached",
                boot.heap_bytes / 1024,
                xcp_netrelay::budget::HEAP_BYTES / 1024
            );
        }
        let args =
            Args::parse(boot.cmdline).unwrap_or_else(|e| stop(format_args!("command line: {e:?}")));
        let BroughtUp {
            config_space,
            writes: shadow,
            bars,
            mut net,
            features,
        } = bring_up(&args);
        check_confinement(&bars);
        let mac = Mac(net.mac_address());
        debug!("MAC {mac}");
        assigned::log_features("netdom", &features);
        let (direct, bounced) = xcp_runtime::virtio_hal::share_counts();
        debug!(
            "virtio-net up: {QUEUE_SIZE}-entry queues, {} DMA extents exchanged, \
             {direct} buffers shared in place, {bounced} bounced",
            xcp_runtime::dma::exchanges()
        );
        let counts = shadow.get();
        debug!(
            "config writes: {} BAR sizing, {} decode toggles, {} refused",
            counts.bar, counts.decode, counts.refused
        );
        #[cfg_attr(not(feature = "dma-escape"), allow(unused_mut))] // reason: the probe borrows it
        let mut wake = crate::irq::setup(&args, &config_space, &bars, &mut net);
        #[cfg(feature = "dma-escape")]
        if let Some(target) = args.dma_escape {
            let netdom::args::Args {
                ip: xcp_netrelay::ipconfig::IpMode::Static(config),
                ..
            } = args
            else {
                stop(format_args!("dma-escape needs a static address"));
            };
            let Some(gw) = config.gateway else {
                stop(format_args!("dma-escape needs a gateway"));
            };
            crate::escape::probe(
                &mut net,
                mac,
                Ipv4(config.cidr.address().octets()),
                Ipv4(gw.octets()),
                &mut wake,
                target,
            );
        }
        // The toolstack writes guest VIFs' backend directories there.
        let store = xcp_runtime::xenstore::connect(&boot);
        if store.is_none() {
            warn!("no xenstore connection: guest VIFs cannot be served");
        }
        let mut stack = crate::stack::Stack::new(net, mac, wake, store);
        let config = stack.configure(&args.ip);
        match config.gateway {
            Some(gw) => {
                let ip = Ipv4(config.cidr.address().octets());
                let (net, wake) = stack.net();
                arp_gateway(net, mac, ip, Ipv4(gw.octets()), wake);
            }
            None => debug!("no gateway configured: no ARP proof"),
        }
        stack.serve(args.relay)
    }

    /// What bring-up leaves.
    struct BroughtUp {
        /// The config space as dom0 copied it.
        config_space: [u8; CONFIG_BYTES],
        /// virtio-drivers' config writes, by kind.
        writes: xcp_runtime::virtio_pci::WriteCounter,
        /// The memory BARs by BAR index (they must outlive the driver).
        bars: Vec<(usize, MmioRegion)>,
        /// The driver.
        net: Box<Net>,
        /// The features offered and accepted.
        features: Negotiated,
    }

    /// Maps the config snapshot and the BARs and starts the driver.
    fn bring_up(args: &Args) -> BroughtUp {
        let device = DeviceArgs {
            bdf: args.bdf,
            config_gref: args.config_gref,
            bar_sizes: args.bar_sizes,
        };
        let Assigned {
            config_space,
            writes,
            bars,
            transport,
            features,
        } = assigned::bring_up(&device).unwrap_or_else(|e| stop(format_args!("{e:?}")));
        #[cfg(feature = "dma-escape")]
        if let Some(target) = args.dma_escape {
            // Self-test only: the driver's first receive buffer goes to the
            // device at dom0's bait frame (crate::escape).
            warn!(
                "dma-escape: the first receive buffer will be handed to the device at {target:#x}"
            );
            xcp_runtime::virtio_hal::escape_next_receive_buffer(target);
        }
        let mut net = Net::new(transport, RX_BUFFER)
            .unwrap_or_else(|e| stop(format_args!("virtio-net: {e}")));
        // No notifications until `irq::setup` routes them (it re-enables
        // them; without pirqs netdom polls).
        net.disable_interrupts();
        BroughtUp {
            config_space,
            writes,
            bars,
            net: Box::new(net),
            features,
        }
    }

    /// Xen must refuse a device frame dom0 did not grant.
    fn check_confinement(bars: &[(usize, MmioRegion)]) {
        if let Err(e) = assigned::check_confinement(bars) {
            stop(format_args!("device confinement: {e:?}"));
        }
    }

    /// Sends ARP requests for `gateway` (one a second) until a reply comes;
    /// other frames are dropped (smoltcp is not polled meanwhile).
    pub(crate) fn arp_gateway(net: &mut Net, mac: Mac, ip: Ipv4, gateway: Ipv4, wake: &mut Wake) {
        let frame = arp::request(mac, ip, gateway);
        let mut next_send = 0;
        let mut tries = 0;
        let mut seen = 0u32;
        loop {
            let now = xcp_runtime::time::now_ns();
            if now >= next_send {
                if tries == ARP_TRIES {
                    stop(format_args!(
                        "no ARP reply from {gateway} after {ARP_TRIES} requests ({seen} other frames)"
                    ));
                }
                let mut tx = net.new_tx_buffer(frame.len());
                tx.packet_mut().copy_from_slice(&frame);
                if let Err(e) = net.send(tx) {
                    stop(format_args!("transmit: {e}"));
                }
                tries += 1;
                debug!("ARP request for {gateway} sent ({tries})");
                next_send = now + ARP_RETRY_NS;
            }
            while let Ok(rx) = net.receive() {
                let result = arp::Reply::parse(rx.packet(), mac, ip);
                let len = rx.packet_len();
                if let Err(e) = net.recycle_rx_buffer(rx) {
                    stop(format_args!("recycle a receive buffer: {e}"));
                }
                match result {
                    Ok(reply) if reply.sender_ip == gateway => {
                        debug!(
                            "ARP reply from {} (mac {})",
                            reply.sender_ip, reply.sender_mac
                        );
                        return;
                    }
                    other => {
                        seen += 1;
                        debug!("ignored a {len}-byte frame: {other:?}");
                    }
                }
            }
            wake.wait(next_send);
        }
    }
}

/// smoltcp over the virtio-net device: the management address (static or
/// DHCPv4) and, with a relay channel, the XenAPI relay's listener pool and
/// the link to dom0.
#[cfg(target_os = "none")]
mod stack {
    use alloc::boxed::Box;
    use alloc::vec;
    use alloc::vec::Vec;

    use log::{debug, error, info, warn};
    use netdom::args::RelayChannel;
    use netdom::arp::Mac;
    use smoltcp::iface::{Config as IfaceConfig, Interface, SocketHandle, SocketSet};
    use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
    use smoltcp::socket::dhcpv4;
    use smoltcp::time::Instant;
    use smoltcp::wire::{EthernetAddress, HardwareAddress};
    use xcp_channel::{Channel, Role};
    use xcp_netrelay::ipconfig::{self, IpMode, StaticConfig};
    use xcp_netrelay::listener::{Listener, PoolConfig};
    use xcp_netrelay::{Config, Link, Relay};
    use xcp_runtime::gnttab;

    use netdom::switch::{Limits, Switch};
    use xcp_runtime::xenstore::Store;

    use super::domain::Net;
    use crate::irq::Wake;
    use crate::platform::Kernel;

    /// netdom's backend directory for guest VIFs, relative to its
    /// xenstore home (`/local/domain/<netdom>/backend/vif`).
    const VIF_BACKENDS: &str = "backend/vif";
    /// How often learned MACs are aged.
    const AGE_EVERY_NS: u64 = 1_000_000_000;

    fn switch_limits() -> Limits {
        use xcp_netrelay::budget;
        Limits {
            max_vifs: budget::MAX_VIFS,
            vif_budget: budget::VIF_BYTES,
            stack_queue_bytes: budget::STACK_QUEUE_BYTES,
            bridge: xcp_bridge::Config {
                table_bytes: budget::MAC_TABLE_BYTES,
                ..xcp_bridge::Config::default()
            },
        }
    }

    /// Link pumps per turn before the NIC gets its turn again.
    const PUMPS_PER_TURN: usize = 8;
    /// How long netdom waits for its first DHCP lease before it gives up.
    const DHCP_TIMEOUT_MS: u64 = 30_000;

    /// netdom's side of the switch as a smoltcp device: frames the bridge
    /// sends to netdom's port, and frames netdom sends into the bridge
    /// (to the NIC, to guests). The NIC is drained into the bridge on every
    /// receive, so a token never holds a receive buffer.
    struct Ports {
        kernel: Kernel,
        switch: Switch<Kernel>,
        rx_errors: u64,
    }

    struct Rx(Vec<u8>);

    struct Tx<'a>(&'a mut Ports);

    impl phy::RxToken for Rx {
        fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
            f(&self.0)
        }
    }

    impl phy::TxToken for Tx<'_> {
        fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
            let mut frame = vec![0; len];
            let r = f(&mut frame);
            let ports = self.0;
            let now = xcp_runtime::time::now_ns();
            ports.switch.from_stack(&mut ports.kernel, now, &frame);
            r
        }
    }

    /// Frames taken from the NIC per call, so guests get their turn.
    const UPLINK_BATCH: usize = 64;

    impl Ports {
        /// Moves what the NIC received into the bridge.
        fn pump_uplink(&mut self) {
            for _ in 0..UPLINK_BATCH {
                let Ok(rx) = self.kernel.net.receive() else {
                    return;
                };
                let frame = rx.packet().to_vec();
                if let Err(e) = self.kernel.net.recycle_rx_buffer(rx) {
                    self.rx_errors += 1;
                    error!("recycle a receive buffer: {e}");
                }
                let now = xcp_runtime::time::now_ns();
                self.switch.from_uplink(&mut self.kernel, now, &frame);
            }
        }
    }

    impl Device for Ports {
        type RxToken<'a> = Rx;
        type TxToken<'a> = Tx<'a>;

        fn receive(&mut self, _: Instant) -> Option<(Rx, Tx<'_>)> {
            self.pump_uplink();
            let frame = self.switch.to_stack()?;
            Some((Rx(frame), Tx(self)))
        }

        fn transmit(&mut self, _: Instant) -> Option<Tx<'_>> {
            Some(Tx(self))
        }

        fn capabilities(&self) -> DeviceCapabilities {
            let mut caps = DeviceCapabilities::default();
            caps.medium = Medium::Ethernet;
            caps.max_transmission_unit = 1514;
            caps
        }
    }

    fn now_ms() -> u64 {
        xcp_runtime::time::now_ns() / 1_000_000
    }

    fn stop(why: core::fmt::Arguments<'_>) -> ! {
        error!("FAIL: {why}");
        loop {
            xcp_runtime::event_loop::idle();
        }
    }

    fn describe(config: &StaticConfig) -> alloc::string::String {
        match config.gateway {
            Some(gw) => alloc::format!("{} gw {gw}", config.cidr),
            None => alloc::format!("{} (no gateway)", config.cidr),
        }
    }

    /// The interface, its sockets and the DHCP client, if any.
    pub struct Stack {
        nic: Ports,
        iface: Interface,
        sockets: SocketSet<'static>,
        dhcp: Option<SocketHandle>,
        /// The address in use (`None` while a DHCP lease is lost).
        config: Option<StaticConfig>,
        /// The NIC's MAC (the management interface's, for dom0's PIF).
        mac: [u8; 6],
        wake: Wake,
    }

    impl Stack {
        /// An interface with no address yet.
        pub fn new(net: Box<Net>, mac: Mac, wake: Wake, store: Option<Store>) -> Stack {
            let mut nic = Ports {
                kernel: Kernel {
                    net,
                    store,
                    uplink_errors: 0,
                    copy_errors: 0,
                },
                switch: Switch::new(VIF_BACKENDS, mac.0, switch_limits()),
                rx_errors: 0,
            };
            let hw = HardwareAddress::Ethernet(EthernetAddress(mac.0));
            let mut config = IfaceConfig::new(hw);
            config.random_seed = xcp_runtime::time::now_ns();
            let start = Instant::from_millis(now_ms() as i64);
            let iface = Interface::new(config, &mut nic, start);
            Stack {
                nic,
                iface,
                sockets: SocketSet::new(vec![]),
                dhcp: None,
                config: None,
                mac: mac.0,
                wake,
            }
        }

        /// The driver, for raw frames while smoltcp is not polled, and
        /// where to sleep.
        pub fn net(&mut self) -> (&mut Net, &mut Wake) {
            (&mut self.nic.kernel.net, &mut self.wake)
        }

        /// Applies `mode`: a static address at once, or a DHCPv4 lease,
        /// waited for (polling smoltcp) up to `DHCP_TIMEOUT_MS`.
        pub fn configure(&mut self, mode: &IpMode) -> StaticConfig {
            match mode {
                IpMode::Static(config) => {
                    ipconfig::apply(&mut self.iface, config);
                    info!("static address {}", describe(config));
                    self.config = Some(*config);
                    *config
                }
                IpMode::Dhcp => {
                    self.dhcp = Some(self.sockets.add(dhcpv4::Socket::new()));
                    let deadline = now_ms() + DHCP_TIMEOUT_MS;
                    debug!("DHCP: asking for a lease");
                    loop {
                        let now = Instant::from_millis(now_ms() as i64);
                        self.iface.poll(now, &mut self.nic, &mut self.sockets);
                        self.poll_dhcp();
                        if let Some(config) = self.config {
                            return config;
                        }
                        if now_ms() >= deadline {
                            stop(format_args!("no DHCP lease in {DHCP_TIMEOUT_MS} ms"));
                        }
                        self.sleep(now);
                    }
                }
            }
        }

        /// Applies a DHCP event, if the socket has one.
        fn poll_dhcp(&mut self) {
            let Some(handle) = self.dhcp else {
                return;
            };
            let socket = self.sockets.get_mut::<dhcpv4::Socket>(handle);
            let Some(event) = socket.poll() else {
                return;
            };
            let applied = ipconfig::apply_dhcp(&mut self.iface, &event);
            match (&event, applied) {
                (dhcpv4::Event::Configured(c), Some(config)) => {
                    info!("DHCP lease {} from {}", describe(&config), c.server.address)
                }
                // The socket starts by reporting "deconfigured": only a
                // lease we had can be lost.
                _ if self.config.is_some() => {
                    warn!("DHCP lease lost: no address until a new one")
                }
                _ => {}
            }
            self.config = applied;
        }

        /// Sleeps until a NIC interrupt, dom0's kick, smoltcp's next
        /// deadline or the NIC's next poll, whichever is first.
        fn sleep(&mut self, now: Instant) {
            self.sleep_until(now, None);
        }

        /// [`Stack::sleep`], also until `deadline` (ns) and on the VIFs'
        /// event channels.
        fn sleep_until(&mut self, now: Instant, deadline: Option<u64>) {
            let max = self.wake.max_sleep_ns();
            let delay_ns = self
                .iface
                .poll_delay(now, &self.sockets)
                .map_or(max, |d| (d.total_micros() * 1000).min(max));
            if delay_ns == 0 {
                return;
            }
            let mut until = xcp_runtime::time::now_ns() + delay_ns;
            if let Some(d) = deadline {
                if d <= xcp_runtime::time::now_ns() {
                    return;
                }
                until = until.min(d);
            }
            let extra: Vec<u32> = self.nic.switch.ports().collect();
            self.wake.wait_with(until, &extra);
        }

        /// Hands the switch the xenstore watch events that arrived.
        fn xenstore_events(&mut self) {
            let ports = &mut self.nic;
            loop {
                let Some(store) = ports.kernel.store.as_mut() else {
                    return;
                };
                let Some(event) = store.next_event() else {
                    return;
                };
                let now = xcp_runtime::time::now_ns();
                ports
                    .switch
                    .on_watch(&mut ports.kernel, now, &event.path, &event.token);
            }
        }

        /// Keeps the interface (and its DHCP lease) going and, with a
        /// relay channel, serves XenAPI clients through dom0's toolstack;
        /// never returns.
        pub fn serve(mut self, relay: Option<RelayChannel>) -> ! {
            let mut relay = relay.map(|channel| Relayed::new(&mut self.sockets, channel));
            if let Some(r) = &relay {
                self.wake.watch_relay(r.evtchn);
            }
            // The configuration dom0 was last told the listener serves at.
            let mut announced = None;
            if let Some(port) = self.nic.kernel.store_port() {
                self.wake.watch_store(port);
                if self.nic.switch.start(&mut self.nic.kernel) {
                    debug!("serving guest VIFs under {VIF_BACKENDS}");
                }
            }
            let mut next_age = 0;
            // When the VIFs' counters go to dom0 (`VIF_metrics`).
            let mut vif_stats = netdom::vifstats::Pacer::new();
            loop {
                let t = now_ms();
                let now = Instant::from_millis(t as i64);
                self.xenstore_events();
                let t_ns = xcp_runtime::time::now_ns();
                let vif_deadline = self.nic.switch.poll_vifs(&mut self.nic.kernel, t_ns);
                if t_ns >= next_age {
                    self.nic.switch.age(t_ns);
                    next_age = t_ns + AGE_EVERY_NS;
                }
                self.iface.poll(now, &mut self.nic, &mut self.sockets);
                self.poll_dhcp();
                let mut deadline = vif_deadline.map_or(next_age, |d| d.min(next_age));
                if let Some(r) = relay.as_mut() {
                    // dom0 learns that we serve (and where) by protocol:
                    // `Ready` over the relay channel, at once and after a
                    // new DHCP lease changes the address; with it the
                    // management interface (`Link`, for dom0's PIF).
                    if let Some(c) = self.config.filter(|c| announced != Some(*c)) {
                        let a = c.cidr.address().octets();
                        debug!(
                            "XenAPI relay listening on {}:{}",
                            smoltcp::wire::Ipv4Address::from(a),
                            r.port
                        );
                        r.relay.announce_ready(a, r.port);
                        r.relay.send_link(
                            self.mac,
                            a,
                            c.cidr.prefix_len(),
                            c.gateway.map(|g| g.octets()),
                            self.dhcp.is_some(),
                        );
                        announced = Some(c);
                    }
                    let switch = &self.nic.switch;
                    if let Some(batch) = vif_stats.poll(t_ns, || switch.reports()) {
                        r.relay.send_vif_stats(batch);
                    }
                    deadline = deadline.min(vif_stats.deadline());
                    r.turn(&mut self.sockets, t, &self.wake);
                    self.iface.poll(now, &mut self.nic, &mut self.sockets);
                }
                self.sleep_until(now, Some(deadline));
            }
        }
    }

    /// The relay's half of the loop: the listener pool, the engine and the
    /// channel link to dom0.
    struct Relayed {
        link: Link<gnttab::GrantMapping>,
        listener: Listener,
        relay: Relay,
        evtchn: u32,
        port: u16,
    }

    impl Relayed {
        fn new(sockets: &mut SocketSet<'static>, channel: RelayChannel) -> Relayed {
            // dom0 is the channel's initiator: its tx page is our rx page.
            let rx = gnttab::map_grant(0, channel.dom0_tx, false)
                .unwrap_or_else(|e| stop(format_args!("map dom0's tx page: {e:?}")));
            let tx = gnttab::map_grant(0, channel.dom0_rx, false)
                .unwrap_or_else(|e| stop(format_args!("map dom0's rx page: {e:?}")));
            let pages = Channel::new(tx, rx, Role::Acceptor)
                .unwrap_or_else(|e| stop(format_args!("relay channel: {e:?}")));
            let evtchn = xcp_runtime::evtchn::bind_interdomain(0, channel.port)
                .unwrap_or_else(|e| stop(format_args!("bind dom0's relay port: {e:?}")));
            let pool = PoolConfig::default();
            Relayed {
                link: Link::new(pages),
                listener: Listener::new(sockets, pool),
                relay: Relay::new(Config::default()),
                evtchn,
                port: pool.port,
            }
        }

        /// Moves bytes between the sockets, the engine and dom0, and
        /// answers dom0's request for counters with `wake`'s.
        fn turn(&mut self, sockets: &mut SocketSet<'static>, t: u64, wake: &Wake) {
            self.listener.poll(sockets, &mut self.relay, t);
            self.relay.on_tick(t);
            let mut kick = false;
            for _ in 0..PUMPS_PER_TURN {
                match self.link.pump(&mut self.relay, t) {
                    Ok(pumped) => {
                        kick |= pumped.notify.kick();
                        if self.relay.take_stats_request() {
                            let m = xcp_runtime::usage::memory_use();
                            let memory = xcp_relay::MemoryFigures {
                                heap_bytes: m.heap_bytes,
                                heap_in_use: m.heap_in_use,
                                heap_peak: m.heap_peak,
                                frames: m.frames,
                                frames_in_use: m.frames_in_use,
                                frames_peak: m.frames_peak,
                            };
                            self.relay
                                .send_stats(wake.interrupts, wake.timeouts, memory);
                            continue;
                        }
                        if !pumped.again {
                            break;
                        }
                    }
                    Err(e) => stop(format_args!("relay link to dom0: {e:?}")),
                }
            }
            if kick {
                xcp_runtime::evtchn::send(self.evtchn);
            }
            self.listener.poll(sockets, &mut self.relay, t);
        }
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("netdom is a Xen PV kernel: build it with `cargo xtask build`");
    std::process::exit(2);
}

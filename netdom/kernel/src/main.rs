//! netdom: the network domain. dom0 builds it with the virtio-net NIC
//! assigned through the IOMMU (netdom/DESIGN.md). This first step brings the
//! NIC up with virtio-drivers in polling mode and proves both directions
//! with an ARP exchange with the gateway.
//!
//! On the host this crate builds a stub that says how to build the kernel.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![cfg_attr(target_os = "none", forbid(unsafe_code))]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod domain {
    use alloc::boxed::Box;
    use alloc::vec::Vec;

    use log::{error, info, warn};
    use netdom::args::Args;
    use netdom::arp::{self, Ipv4, Mac};
    use virtio_drivers::device::net::VirtIONet;
    use virtio_drivers::transport::pci::bus::{BarInfo, DeviceFunction, PciRoot};
    use virtio_drivers::transport::pci::PciTransport;
    use xcp_runtime::mmio::MmioRegion;
    use xcp_runtime::pci_snapshot::{ConfigShadow, CONFIG_BYTES};
    use xcp_runtime::virtio_hal::XenHal;
    use xcp_runtime::virtio_pci::SnapshotAccess;
    use xcp_runtime::Boot;

    xcp_runtime::entry!(main, "netdom");

    /// Virtqueue entries: 256 makes the transmit queue's descriptor table
    /// and available ring span two pages, so bring-up uses an exchanged,
    /// machine-contiguous extent and not just single frames.
    const QUEUE_SIZE: usize = 256;
    /// Receive buffer bytes (a full Ethernet frame and the virtio header).
    const RX_BUFFER: usize = 2048;
    const ARP_RETRY_NS: u64 = 1_000_000_000;
    const ARP_TRIES: u32 = 10;
    const POLL_NS: u64 = 1_000_000;

    type Net = VirtIONet<XenHal, PciTransport, QUEUE_SIZE>;

    fn stop(why: core::fmt::Arguments<'_>) -> ! {
        error!("FAIL: {why}");
        loop {
            xcp_runtime::event_loop::idle();
        }
    }

    fn main(boot: Boot) -> ! {
        info!("command line {:?}", boot.cmdline);
        let args =
            Args::parse(boot.cmdline).unwrap_or_else(|e| stop(format_args!("command line: {e:?}")));
        let (shadow, bars, mut net) = bring_up(&args);
        check_confinement(&bars);
        let mac = Mac(net.mac_address());
        info!("MAC {mac}");
        let (direct, bounced) = xcp_runtime::virtio_hal::share_counts();
        info!(
            "virtio-net up: {QUEUE_SIZE}-entry queues, {} DMA extents exchanged, \
             {direct} buffers shared in place, {bounced} bounced",
            xcp_runtime::dma::exchanges()
        );
        let counts = shadow.get();
        info!(
            "config writes: {} BAR sizing, {} decode toggles, {} refused",
            counts.bar, counts.decode, counts.refused
        );
        arp_gateway(&mut net, mac, Ipv4(args.ip), Ipv4(args.gateway));
        loop {
            xcp_runtime::event_loop::idle();
        }
    }

    /// Maps the config snapshot and the BARs and starts the driver. Returns
    /// the config-write counts, the BAR mappings (which must outlive the
    /// driver) and the driver.
    fn bring_up(
        args: &Args,
    ) -> (
        xcp_runtime::virtio_pci::WriteCounter,
        Vec<MmioRegion>,
        Box<Net>,
    ) {
        if let Err(e) = xcp_runtime::gnttab::init() {
            stop(format_args!("grant table: {e:?}"));
        }
        // Copy the snapshot out of dom0's page once.
        let mut bytes = [0u8; CONFIG_BYTES];
        match xcp_runtime::gnttab::map_grant(0, args.config_gref, true) {
            Ok(page) => page.view().read(0, &mut bytes),
            Err(e) => stop(format_args!("map the config snapshot: {e:?}")),
        }
        let shadow = ConfigShadow::new(bytes, args.bar_sizes)
            .unwrap_or_else(|e| stop(format_args!("config snapshot: {e:?}")));
        let (bus, device, function) = args.bdf;
        let df = DeviceFunction {
            bus,
            device,
            function,
        };
        info!(
            "pci {df}: {:04x}:{:04x}, command {:#06x} (set by dom0)",
            shadow.read32(0) & 0xffff,
            shadow.read32(0) >> 16,
            shadow.device_command()
        );
        let access = SnapshotAccess::new(df, shadow);
        let counter = access.counter();
        let mut root = PciRoot::new(access);
        let bar_info = root
            .bars(df)
            .unwrap_or_else(|e| stop(format_args!("BARs: {e:?}")));
        let mut bars = Vec::new();
        for (index, bar) in bar_info.iter().enumerate() {
            match bar {
                Some(BarInfo::Memory { address, size, .. }) if *size > 0 => {
                    match MmioRegion::map(*address, *size) {
                        Ok(region) => {
                            info!(
                                "BAR{index} {address:#x}+{size:#x} mapped uncached at {:#x}",
                                region.va()
                            );
                            bars.push(region);
                        }
                        Err(e) => stop(format_args!("map BAR{index} {address:#x}: {e}")),
                    }
                }
                Some(BarInfo::IO { address, size }) => {
                    info!("BAR{index} I/O {address:#x}+{size:#x} (unused: modern virtio)");
                }
                _ => {}
            }
        }
        let transport = PciTransport::new::<XenHal, _>(&mut root, df)
            .unwrap_or_else(|e| stop(format_args!("virtio transport: {e}")));
        let mut net = Net::new(transport, RX_BUFFER)
            .unwrap_or_else(|e| stop(format_args!("virtio-net: {e}")));
        // Polling mode: ask the device not to interrupt (no vector is
        // bound yet; MSI-X through pirqs is a later step).
        net.disable_interrupts();
        (counter, bars, Box::new(net))
    }

    /// Xen must refuse a device frame dom0 did not grant: the frame just
    /// below the lowest BAR (on QEMU, inside the NIC's expansion ROM, which
    /// dom0 does not hand over).
    fn check_confinement(bars: &[MmioRegion]) {
        let Some(lowest) = bars.iter().map(|b| b.phys() & !0xfff).min() else {
            stop(format_args!("no memory BAR"));
        };
        let outside = lowest - 0x1000;
        match MmioRegion::map(outside, 0x1000) {
            Err(e) => info!("device frame {outside:#x} outside the granted BARs refused: {e}"),
            Ok(_) => stop(format_args!(
                "Xen let netdom map {outside:#x}, outside its BARs"
            )),
        }
    }

    /// Sends ARP requests for `gateway` (one a second) until a reply comes.
    fn arp_gateway(net: &mut Net, mac: Mac, ip: Ipv4, gateway: Ipv4) {
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
                info!("ARP request for {gateway} sent ({tries})");
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
                        info!(
                            "ARP reply from {} (mac {})",
                            reply.sender_ip, reply.sender_mac
                        );
                        return;
                    }
                    other => {
                        seen += 1;
                        warn!("ignored a {len}-byte frame: {other:?}");
                    }
                }
            }
            xcp_runtime::event_loop::sleep_until(xcp_runtime::time::now_ns() + POLL_NS);
        }
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("netdom is a Xen PV kernel: build it with `cargo xtask build`");
    std::process::exit(2);
}

//! stordom: the storage domain. dom0 builds it with the virtio-blk disk
//! assigned through the IOMMU (stordom/DESIGN.md). It brings the disk up
//! with virtio-drivers, opens the SR on it (formatting a blank disk) and
//! serves dom0's toolstack over the storage channel and guests' VBDs
//! (blkback) from the same SR, in one loop.
//!
//! On the host this crate builds a stub that says how to build the kernel.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![cfg_attr(target_os = "none", forbid(unsafe_code))]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod disk;
#[cfg(target_os = "none")]
mod platform;

#[cfg(target_os = "none")]
mod domain {
    use log::{debug, error, info, warn};
    use stordom::args::Args;
    use stordom::repo::{self, SrRepo};
    use stordom::server::Server;
    use stordom::vbds::Vbds;
    use virtio_drivers::device::blk::VirtIOBlk;
    use virtio_drivers::transport::pci::PciTransport;
    use xcp_blkback::budget::MAX_RING_PAGE_ORDER;
    use xcp_channel::{Channel, Role};
    use xcp_runtime::assigned::{self, Assigned};
    use xcp_runtime::device_args::ChannelArgs;
    use xcp_runtime::gnttab;
    use xcp_runtime::virtio_hal::XenHal;
    use xcp_runtime::virtio_platform::AccessPlatform;
    use xcp_runtime::Boot;
    use xcp_storwire::{Reply, Request};

    use crate::platform::Kernel;
    use alloc::vec::Vec;

    xcp_runtime::entry!(main, "stordom", frames = 64);

    /// The driver, as stordom instantiates it: over the PCI transport, with
    /// VIRTIO_F_ACCESS_PLATFORM accepted when the device offers it (its DMA
    /// then goes through the IOMMU).
    pub(crate) type Disk = VirtIOBlk<XenHal, AccessPlatform<PciTransport>>;

    /// virtio-blk's sector.
    const SECTOR: u64 = 512;

    fn stop(why: core::fmt::Arguments<'_>) -> ! {
        error!("FAIL: {why}");
        loop {
            xcp_runtime::event_loop::idle();
        }
    }

    fn main(boot: Boot) -> ! {
        debug!("command line {:?}", boot.cmdline);
        debug!("heap {} KiB", boot.heap_bytes / 1024);
        let args =
            Args::parse(boot.cmdline).unwrap_or_else(|e| stop(format_args!("command line: {e:?}")));
        let Assigned {
            bars,
            transport,
            features,
            writes,
            config_space,
            ..
        } = assigned::bring_up(&args.device).unwrap_or_else(|e| stop(format_args!("{e:?}")));
        if let Err(e) = assigned::check_confinement(&bars) {
            stop(format_args!("device confinement: {e:?}"));
        }
        let mut disk =
            Disk::new(transport).unwrap_or_else(|e| stop(format_args!("virtio-blk: {e}")));
        let irq = disk_irq(&args, &config_space, &bars);
        if irq.is_some() {
            disk.enable_interrupts();
        } else {
            disk.disable_interrupts();
        }
        assigned::log_features("stordom", &features);
        let counts = writes.get();
        debug!(
            "config writes: {} BAR sizing, {} decode toggles, {} refused",
            counts.bar, counts.decode, counts.refused
        );
        let sectors = disk.capacity();
        if disk.readonly() {
            stop(format_args!("the disk is read-only"));
        }
        info!(
            "disk up: {sectors} sectors ({} MiB)",
            sectors * SECTOR / (1 << 20)
        );
        // Prove both directions and the flush before anything relies on it.
        let mut first = [0u8; SECTOR as usize];
        if let Err(e) = disk.read_blocks(0, &mut first) {
            stop(format_args!("read sector 0: {e}"));
        }
        if let Err(e) = disk.flush() {
            stop(format_args!("flush: {e}"));
        }
        info!("disk read and flushed");
        let disk = crate::disk::VirtioDisk::new(disk, sectors, irq)
            .unwrap_or_else(|e| stop(format_args!("disk buffer: {e:?}")));
        let found = repo::open_or_format(disk);
        match &found.repo {
            SrRepo::Open(sr) => {
                let info = sr.sr_info();
                info!(
                    "SR {}: {} VDIs, {} MiB of {} MiB used, database log {} bytes",
                    if found.formatted {
                        "made on the blank disk"
                    } else {
                        "opened"
                    },
                    info.vdis,
                    info.physical_utilisation >> 20,
                    info.physical_size >> 20,
                    sr.log_len()
                );
            }
            SrRepo::Unusable(why) => error!("no usable SR: {why}"),
        }
        let server = Server::new(found.repo, found.formatted);
        let store = xcp_runtime::xenstore::connect(&boot);
        if store.is_none() {
            warn!("no xenstore connection: guest VBDs cannot be served");
        }
        if args.channel.is_none() {
            warn!("no dom0-channel: dom0's toolstack cannot be served");
        }
        serve(server, args.channel, store)
    }

    /// stordom's backend directory for guest VBDs, relative to its
    /// xenstore home (`/local/domain/<stordom>/backend/vbd`).
    const VBD_BACKENDS: &str = "backend/vbd";
    /// dom0 requests answered per turn before the VBDs get theirs.
    const DOM0_REQUESTS_PER_TURN: usize = 8;
    /// xenstore watch events handled per turn.
    const XENSTORE_EVENTS_PER_TURN: usize = 64;

    type Repo = SrRepo<crate::disk::VirtioDisk>;

    /// dom0's storage channel, served without blocking: a reply that does
    /// not fit waits in `outgoing` while the loop goes on with the VBDs.
    struct Dom0 {
        channel: Channel<gnttab::GrantMapping>,
        port: u32,
        outgoing: Option<Reply>,
    }

    impl Dom0 {
        fn connect(args: ChannelArgs) -> Dom0 {
            // dom0 allocated and granted both pages: its tx page is our rx.
            let rx = gnttab::map_grant(0, args.dom0_tx, false)
                .unwrap_or_else(|e| stop(format_args!("map dom0's tx page: {e:?}")));
            let tx = gnttab::map_grant(0, args.dom0_rx, false)
                .unwrap_or_else(|e| stop(format_args!("map dom0's rx page: {e:?}")));
            let channel = Channel::new(tx, rx, Role::Acceptor)
                .unwrap_or_else(|e| stop(format_args!("dom0 channel: {e:?}")))
                .with_max_message(xcp_storwire::MAX_MESSAGE);
            let port = xcp_runtime::evtchn::bind_interdomain(0, args.port)
                .unwrap_or_else(|e| stop(format_args!("bind dom0's port: {e:?}")));
            debug!("serving dom0 on port {port}");
            Dom0 {
                channel,
                port,
                outgoing: None,
            }
        }

        fn kick(&self, n: xcp_channel::Notify) {
            if n.kick() {
                xcp_runtime::evtchn::send(self.port);
            }
        }

        /// Answers up to [`DOM0_REQUESTS_PER_TURN`] requests; true when
        /// more may wait (the loop must not sleep).
        fn turn(&mut self, server: &mut Server<Repo>) -> bool {
            for _ in 0..DOM0_REQUESTS_PER_TURN {
                if self.channel.send_pending() {
                    match self.channel.flush() {
                        Ok(n) | Err(xcp_channel::SendError::WouldBlock(n)) => self.kick(n),
                        Err(e) => stop(format_args!("dom0 channel: {e:?}")),
                    }
                    if self.channel.send_pending() {
                        // dom0 makes room and kicks.
                        return false;
                    }
                }
                if let Some(reply) = self.outgoing.take() {
                    match self.channel.send(&reply) {
                        Ok(n) => self.kick(n),
                        Err(xcp_channel::SendError::WouldBlock(n)) => {
                            self.kick(n);
                            self.outgoing = Some(reply);
                            return false;
                        }
                        Err(e) => stop(format_args!("dom0 channel: {e:?}")),
                    }
                    continue;
                }
                let request = match self.channel.recv::<Request>() {
                    Ok(r) => r,
                    Err(e) => stop(format_args!("dom0 channel: {e:?}")),
                };
                let n = self.channel.take_notify();
                self.kick(n);
                let Some(request) = request else {
                    return false;
                };
                self.outgoing = Some(server.handle(request));
            }
            true
        }
    }

    /// Routes the disk's queue to MSI-X entry 0 and binds the pirq dom0
    /// mapped for it; `None` (stordom spins on its disk, with a warning
    /// saying why) if anything is missing or refused.
    fn disk_irq(
        args: &Args,
        config: &[u8; 256],
        bars: &[(usize, xcp_runtime::mmio::MmioRegion)],
    ) -> Option<crate::disk::Irq> {
        let Some(pirqs) = args.pirqs else {
            debug!("no pirqs from dom0: stordom spins on its disk");
            return None;
        };
        let pirqs = &pirqs.as_slice()[..1];
        match assigned::bind_msix(&args.device, config, bars, pirqs, |_| alloc::vec![(0, 0)]) {
            Ok(bound) => {
                let &(pirq, port) = bound.pirqs.first()?;
                debug!(
                    "MSI-X: the disk's queue -> entry 0, pirq {pirq} (port {port}); safety poll every {} ms",
                    crate::disk::SAFETY_POLL_NS / 1_000_000
                );
                Some(crate::disk::Irq { pirq, port })
            }
            Err(why) => {
                warn!("MSI-X not used ({why}): stordom spins on its disk");
                None
            }
        }
    }

    /// Serves dom0's requests and the guests' VBDs, for ever: one loop
    /// over dom0's port, the xenstore port and every VBD queue's port, so
    /// neither waits while the other has work.
    fn serve(
        mut server: Server<Repo>,
        channel: Option<ChannelArgs>,
        store: Option<xcp_runtime::xenstore::Store>,
    ) -> ! {
        let mut dom0 = channel.map(Dom0::connect);
        let mut kernel = Kernel {
            store,
            copy_errors: 0,
        };
        let mut vbds: Vbds<Kernel> = Vbds::new(VBD_BACKENDS, MAX_RING_PAGE_ORDER);
        let store_port = kernel.store_port();
        if store_port.is_some() && vbds.start(&mut kernel) {
            debug!("serving guest VBDs under {VBD_BACKENDS}");
        }
        let mut ports: Vec<u32> = Vec::new();
        loop {
            let dom0_busy = dom0.as_mut().is_some_and(|d| d.turn(&mut server));
            // A guest rewriting its state node fires our watch as fast as
            // it likes: a bounded batch per turn, the rest next turn.
            let mut store_busy = true;
            for _ in 0..XENSTORE_EVENTS_PER_TURN {
                let Some(event) = kernel.store.as_mut().and_then(|s| s.next_event()) else {
                    store_busy = false;
                    break;
                };
                vbds.on_watch(&mut kernel, server.repo_mut(), &event.path, &event.token);
            }
            let vbds_busy = vbds.turn(&mut kernel, server.repo_mut());
            ports.clear();
            ports.extend(dom0.as_ref().map(|d| d.port));
            ports.extend(store_port);
            ports.extend(vbds.ports());
            // poll_ports takes 64: MAX_VBDS × MAX_QUEUES + 2 = 50 fit.
            ports.truncate(64);
            let fired = if dom0_busy || store_busy || vbds_busy {
                // Work waits: only collect what fired meanwhile.
                ports.iter().enumerate().fold(0u64, |m, (i, &p)| {
                    if xcp_runtime::evtchn::test_and_clear_pending(p) {
                        m | 1 << i
                    } else {
                        m
                    }
                })
            } else {
                xcp_runtime::event_loop::poll_ports(&ports, 0)
            };
            for (i, &port) in ports.iter().enumerate() {
                if fired & (1 << i) != 0 {
                    // dom0's and xenstore's are looked at every turn.
                    vbds.on_port(port);
                }
            }
        }
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "stordom is a Xen PV kernel: build it with `cargo xtask build` \
         (target x86_64-unknown-none)"
    );
    std::process::exit(2);
}

//! stordom: the storage domain. dom0 builds it with the virtio-blk disk
//! assigned through the IOMMU (stordom/DESIGN.md). It brings the disk up
//! with virtio-drivers, opens the SR on it (formatting a blank disk) and
//! serves dom0's toolstack over the storage channel.
//!
//! On the host this crate builds a stub that says how to build the kernel.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![cfg_attr(target_os = "none", forbid(unsafe_code))]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod disk;

#[cfg(target_os = "none")]
mod domain {
    use log::{debug, error, info, warn};
    use stordom::args::Args;
    use stordom::repo::{self, SrRepo};
    use stordom::server::Server;
    use virtio_drivers::device::blk::VirtIOBlk;
    use virtio_drivers::transport::pci::PciTransport;
    use xcp_channel::{Channel, Role};
    use xcp_runtime::assigned::{self, Assigned};
    use xcp_runtime::device_args::ChannelArgs;
    use xcp_runtime::gnttab;
    use xcp_runtime::virtio_hal::XenHal;
    use xcp_runtime::virtio_platform::{self, AccessPlatform};
    use xcp_runtime::Boot;
    use xcp_storwire::{Reply, Request};

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
            ..
        } = assigned::bring_up(&args.device).unwrap_or_else(|e| stop(format_args!("{e:?}")));
        if let Err(e) = assigned::check_confinement(&bars) {
            stop(format_args!("device confinement: {e:?}"));
        }
        let mut disk =
            Disk::new(transport).unwrap_or_else(|e| stop(format_args!("virtio-blk: {e}")));
        // stordom polls the disk: no notifications.
        disk.disable_interrupts();
        let accepted = features.accepted();
        debug!(
            "virtio features: device offered {:#x}, stordom accepted {accepted:#x} ({})",
            features.offered(),
            virtio_platform::feature_names(accepted).join(" ")
        );
        if accepted & virtio_platform::ACCESS_PLATFORM != 0 {
            debug!("device DMA goes through the IOMMU (VIRTIO_F_ACCESS_PLATFORM)");
        } else {
            warn!(
                "the device does not offer VIRTIO_F_ACCESS_PLATFORM: its DMA may bypass the IOMMU"
            );
        }
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
        let disk = crate::disk::VirtioDisk::new(disk, sectors)
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
        match args.channel {
            Some(channel) => serve(server, channel),
            None => {
                warn!("no dom0-channel: nothing to serve");
                loop {
                    xcp_runtime::event_loop::idle();
                }
            }
        }
    }

    /// Answers dom0's requests, one at a time, for ever.
    fn serve(mut server: Server<SrRepo<crate::disk::VirtioDisk>>, args: ChannelArgs) -> ! {
        // dom0 allocated and granted both pages: its tx page is our rx.
        let rx = gnttab::map_grant(0, args.dom0_tx, false)
            .unwrap_or_else(|e| stop(format_args!("map dom0's tx page: {e:?}")));
        let tx = gnttab::map_grant(0, args.dom0_rx, false)
            .unwrap_or_else(|e| stop(format_args!("map dom0's rx page: {e:?}")));
        let mut channel = Channel::new(tx, rx, Role::Acceptor)
            .unwrap_or_else(|e| stop(format_args!("dom0 channel: {e:?}")))
            .with_max_message(xcp_storwire::MAX_MESSAGE);
        let port = xcp_runtime::evtchn::bind_interdomain(0, args.port)
            .unwrap_or_else(|e| stop(format_args!("bind dom0's port: {e:?}")));
        debug!("serving dom0 on port {port}");
        loop {
            let request = match channel.recv::<Request>() {
                Ok(r) => r,
                Err(e) => stop(format_args!("dom0 channel: {e:?}")),
            };
            if channel.take_notify().kick() {
                xcp_runtime::evtchn::send(port);
            }
            let Some(request) = request else {
                xcp_runtime::event_loop::poll_one(port, 0);
                continue;
            };
            let reply = server.handle(request);
            send(&mut channel, port, &reply);
        }
    }

    /// Sends `reply`, waiting for dom0 to make room as long as it takes
    /// (dom0 waits for this very reply).
    fn send(channel: &mut Channel<gnttab::GrantMapping>, port: u32, reply: &Reply) {
        let mut accepted = false;
        loop {
            let result = if channel.send_pending() {
                channel.flush()
            } else if !accepted {
                channel.send(reply).inspect(|_| accepted = true)
            } else {
                return;
            };
            match result {
                Ok(n) | Err(xcp_channel::SendError::WouldBlock(n)) => {
                    if n.kick() {
                        xcp_runtime::evtchn::send(port);
                    }
                }
                Err(e) => stop(format_args!("dom0 channel: {e:?}")),
            }
            if accepted && !channel.send_pending() {
                return;
            }
            xcp_runtime::event_loop::poll_one(port, 0);
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

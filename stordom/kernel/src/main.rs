//! stordom: the storage domain. dom0 builds it with the virtio-blk disk
//! assigned through the IOMMU (stordom/DESIGN.md). It brings the disk up
//! with virtio-drivers and serves it.
//!
//! On the host this crate builds a stub that says how to build the kernel.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![cfg_attr(target_os = "none", forbid(unsafe_code))]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod domain {
    use log::{debug, error, info, warn};
    use stordom::args::Args;
    use virtio_drivers::device::blk::VirtIOBlk;
    use virtio_drivers::transport::pci::PciTransport;
    use xcp_runtime::assigned::{self, Assigned};
    use xcp_runtime::virtio_hal::XenHal;
    use xcp_runtime::virtio_platform::{self, AccessPlatform};
    use xcp_runtime::Boot;

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
        loop {
            xcp_runtime::event_loop::idle();
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

//! `pci`, `netdom`, `netdom-xenapi`, `netdom-dma`: the NIC handed through
//! the IOMMU to test domains and to netdom.

use super::*;

/// Gives the virtio-net device to three testdoms in turn, through the IOMMU,
/// with its BARs' frames and ports; each destroy hands it back.
pub(super) fn pci_cycles(platform: &mut Platform, index: usize) -> ! {
    let Some(nic) = platform.devices.iter().find(|d| d.is_virtio_net()).cloned() else {
        fail("pci", "no virtio-net device on bus 0");
    };
    for cycle in 1..=3 {
        let Ok(domid) = platform.start(index, None) else {
            fail("pci", "could not build testdom");
        };
        let t0 = xcp_runtime::time::now_ns();
        if let Err(e) = xcp_runtime::control::assign_pci(domid, nic.bdf) {
            error!("assign {} to domid {domid}: {e}", nic.bdf);
            fail("pci", "XEN_DOMCTL_assign_device failed");
        }
        for bar in nic.bars.iter().flatten() {
            let r = match *bar {
                xcp_pci::Bar::Memory { base, size, .. } => xcp_runtime::control::iomem_permission(
                    domid,
                    base >> 12,
                    size.div_ceil(4096),
                    true,
                ),
                xcp_pci::Bar::Io { base, size } => {
                    xcp_runtime::control::ioport_permission(domid, base, size, true)
                }
            };
            if let Err(e) = r {
                error!("BAR {bar:?} for domid {domid}: {e}");
                fail("pci", "could not grant the device's BAR");
            }
        }
        let t1 = xcp_runtime::time::now_ns();
        platform.stop(domid);
        let t2 = xcp_runtime::time::now_ns();
        info!(
            "pci cycle {cycle}: {} ({}) assigned to domid {domid} in {} us, domain destroyed and device back in {} us",
            nic.bdf,
            nic.name(),
            (t1 - t0) / 1000,
            (t2 - t1) / 1000
        );
    }
    pass(
        "pci",
        "virtio-net assigned through the IOMMU and handed back three times",
    );
}

/// Builds netdom with the NIC (see [`crate::nic`]).
pub(super) fn start_netdom_instance(
    platform: &mut Platform,
    lp: &mut Loop,
) -> xcp_dom0_board::nic::Handed<crate::xen::Xen> {
    start_netdom_with(platform, lp, false)
}

/// Builds netdom with the NIC and, with `relay`, a XenAPI relay channel.
pub(super) fn start_netdom_with(
    platform: &mut Platform,
    lp: &mut Loop,
    relay: bool,
) -> xcp_dom0_board::nic::Handed<crate::xen::Xen> {
    start_netdom_line(platform, lp, relay, "")
}

fn start_netdom_line(
    platform: &mut Platform,
    _lp: &mut Loop,
    relay: bool,
    extra: &str,
) -> xcp_dom0_board::nic::Handed<crate::xen::Xen> {
    let Some(index) = platform.configs().iter().position(|c| c.name == "netdom") else {
        fail("netdom", "the self-test config lists no netdom");
    };
    platform
        .start_with_nic(index, relay, extra)
        .unwrap_or_else(|e| fail("netdom", &alloc::format!("{e}")))
}

/// The byte dom0 writes at `i` in the bait frame.
fn bait_byte(i: usize) -> u8 {
    (i as u8) ^ 0xa5
}

/// `netdom-dma`: a frame of dom0's filled with a pattern, and netdom told
/// (`dma-escape=`) to give its machine address to the device as a receive
/// buffer.
pub(super) struct DmaEscape {
    handed: Option<xcp_dom0_board::nic::Handed<crate::xen::Xen>>,
    bait: Frame,
    target: u64,
}

pub(super) fn start_netdom_dma(platform: &mut Platform, lp: &mut Loop) -> State {
    let mut bait = Frame::alloc().unwrap_or_else(|e| fail("netdom-dma", &alloc::format!("{e:?}")));
    for (i, b) in bait.bytes_mut().iter_mut().enumerate() {
        *b = bait_byte(i);
    }
    let target = bait.mfn() << 12;
    info!("selftest netdom-dma: dom0's bait frame is at machine address {target:#x}");
    let extra = alloc::format!(" dma-escape={target:#x}");
    State::NetdomDma(DmaEscape {
        handed: Some(start_netdom_line(platform, lp, false, &extra)),
        bait,
        target,
    })
}

/// Passes once netdom saw the device complete a receive into the bait and
/// then work on through its own buffers, dom0's frame is as it was, and dom0
/// took the device back and reset it.
pub(super) fn check_netdom_dma(
    name: &str,
    platform: &mut Platform,
    _lp: &mut Loop,
    escape: &mut DmaEscape,
) {
    let domid = escape.handed.as_ref().expect("netdom holds the NIC").domid;
    if console_says(platform, domid, b"FAIL:") {
        fail(name, "netdom reported a failure");
    }
    if !platform.live.contains_key(&domid) {
        fail(name, "netdom died");
    }
    // netdom saw the device complete the receive into the bait, then heard
    // the gateway through its own buffers.
    if !console_says(platform, domid, b"dma-escape: the device completed a")
        || !console_says(platform, domid, b"dma-escape: done")
    {
        return;
    }
    let changed = escape
        .bait
        .bytes()
        .iter()
        .enumerate()
        .filter(|&(i, b)| *b != bait_byte(i))
        .count();
    info!(
        "selftest netdom-dma: bait frame at {:#x}: {changed} of 4096 bytes changed",
        escape.target
    );
    if changed != 0 {
        fail(name, "the device wrote into dom0's frame");
    }
    let handed = escape.handed.take().expect("netdom holds the NIC");
    if let Err(e) = platform.reclaim(handed) {
        fail(name, &alloc::format!("{e}"));
    }
    pass(
        name,
        "the device's receive into dom0's frame never reached it (IOMMU); the frame is unchanged; the NIC is back and reset",
    );
}

pub(super) fn start_netdom(platform: &mut Platform, lp: &mut Loop) -> State {
    State::Netdom {
        handed: Some(start_netdom_instance(platform, lp)),
        round: 1,
    }
}

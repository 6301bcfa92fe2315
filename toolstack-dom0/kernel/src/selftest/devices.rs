//! `pci`, `netdom`, `netdom-xenapi`: the NIC handed through the IOMMU to test
//! domains and to netdom.

use super::*;

/// Gives the virtio-net device to three testdoms in turn, through the IOMMU,
/// with its BARs' frames and ports; each destroy hands it back.
pub(super) fn pci_cycles(platform: &mut Platform, lp: &mut Loop, index: usize) -> ! {
    let Some(nic) = platform.devices.iter().find(|d| d.is_virtio_net()).cloned() else {
        fail("pci", "no virtio-net device on bus 0");
    };
    for cycle in 1..=3 {
        let Ok(domid) = platform.start(lp, index, None) else {
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
        platform.stop(lp, domid);
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
pub(super) fn start_netdom_instance(platform: &mut Platform, lp: &mut Loop) -> crate::nic::Handed {
    start_netdom_with(platform, lp, false)
}

/// Builds netdom with the NIC and, with `relay`, a XenAPI relay channel.
pub(super) fn start_netdom_with(
    platform: &mut Platform,
    lp: &mut Loop,
    relay: bool,
) -> crate::nic::Handed {
    let Some(index) = platform.configs().iter().position(|c| c.name == "netdom") else {
        fail("netdom", "the self-test config lists no netdom");
    };
    crate::nic::start_with_nic(platform, lp, index, relay).unwrap_or_else(|e| fail("netdom", &e))
}

pub(super) fn start_netdom(platform: &mut Platform, lp: &mut Loop) -> State {
    State::Netdom {
        handed: Some(start_netdom_instance(platform, lp)),
        round: 1,
    }
}

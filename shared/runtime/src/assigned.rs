//! Bringing up a virtio PCI device dom0 handed to this driver domain
//! (netdom's NIC, stordom's disk): the config-space snapshot copied out of
//! dom0's granted page, virtio-drivers' PCI access answered from it
//! ([`crate::virtio_pci`]), the memory BARs mapped uncached, the transport
//! made with VIRTIO_F_ACCESS_PLATFORM accepted when offered
//! ([`crate::virtio_platform`]), and the check that Xen refuses a device
//! frame dom0 did not hand over.

use alloc::vec::Vec;

use log::{debug, warn};
use virtio_drivers::transport::pci::bus::{BarInfo, DeviceFunction, PciRoot};
use virtio_drivers::transport::pci::PciTransport;

use crate::device_args::DeviceArgs;
use crate::mmio::MmioRegion;
use crate::pci_snapshot::{ConfigShadow, SnapshotError, CONFIG_BYTES};
use crate::virtio_hal::XenHal;
use crate::virtio_pci::{SnapshotAccess, WriteCounter};
use crate::virtio_platform::{AccessPlatform, Negotiated};

/// What bring-up leaves.
pub struct Assigned {
    /// The config space as dom0 copied it.
    pub config_space: [u8; CONFIG_BYTES],
    /// virtio-drivers' config writes, by kind.
    pub writes: WriteCounter,
    /// The memory BARs by BAR index (they must outlive the driver).
    pub bars: Vec<(usize, MmioRegion)>,
    /// The transport, for the device driver.
    pub transport: AccessPlatform<PciTransport>,
    /// The features offered and accepted.
    pub features: Negotiated,
}

/// Why bring-up stopped.
#[derive(Debug)]
pub enum BringUpError {
    /// The grant table could not be set up.
    GrantTable(crate::gnttab::GrantError),
    /// dom0's snapshot page could not be mapped.
    MapSnapshot(crate::gnttab::GrantError),
    /// The snapshot is unusable.
    Snapshot(SnapshotError),
    /// virtio-drivers could not read the BARs.
    Bars(virtio_drivers::transport::pci::bus::PciError),
    /// A memory BAR could not be mapped.
    MapBar {
        /// BAR index.
        index: usize,
        /// Its bus address.
        address: u64,
        /// What Xen said.
        error: xen_sys::Errno,
    },
    /// virtio-drivers refused the transport.
    Transport(virtio_drivers::transport::pci::VirtioPciError),
}

/// Maps the config snapshot and the BARs of the device `args` names and
/// makes its virtio transport.
pub fn bring_up(args: &DeviceArgs) -> Result<Assigned, BringUpError> {
    crate::gnttab::init().map_err(BringUpError::GrantTable)?;
    // Copy the snapshot out of dom0's page once.
    let mut bytes = [0u8; CONFIG_BYTES];
    let page =
        crate::gnttab::map_grant(0, args.config_gref, true).map_err(BringUpError::MapSnapshot)?;
    page.view().read(0, &mut bytes);
    drop(page);
    let shadow = ConfigShadow::new(bytes, args.bar_sizes).map_err(BringUpError::Snapshot)?;
    let (bus, device, function) = args.bdf;
    let df = DeviceFunction {
        bus,
        device,
        function,
    };
    debug!(
        "pci {df}: {:04x}:{:04x}, command {:#06x} (set by dom0)",
        shadow.read32(0) & 0xffff,
        shadow.read32(0) >> 16,
        shadow.device_command()
    );
    let access = SnapshotAccess::new(df, shadow);
    let writes = access.counter();
    let mut root = PciRoot::new(access);
    let bar_info = root.bars(df).map_err(BringUpError::Bars)?;
    let mut bars = Vec::new();
    for (index, bar) in bar_info.iter().enumerate() {
        match bar {
            Some(BarInfo::Memory { address, size, .. }) if *size > 0 => {
                let region =
                    MmioRegion::map(*address, *size).map_err(|error| BringUpError::MapBar {
                        index,
                        address: *address,
                        error,
                    })?;
                debug!(
                    "BAR{index} {address:#x}+{size:#x} mapped uncached at {:#x}",
                    region.va()
                );
                bars.push((index, region));
            }
            Some(BarInfo::IO { address, size }) => {
                debug!("BAR{index} I/O {address:#x}+{size:#x} (unused: modern virtio)");
            }
            _ => {}
        }
    }
    let transport =
        PciTransport::new::<XenHal, _>(&mut root, df).map_err(BringUpError::Transport)?;
    let (transport, features) = AccessPlatform::new(transport);
    Ok(Assigned {
        config_space: bytes,
        writes,
        bars,
        transport,
        features,
    })
}

/// Logs what the device offered and the driver accepted, and whether its
/// DMA goes through the IOMMU (`who` names the driver domain).
pub fn log_features(who: &str, features: &Negotiated) {
    let accepted = features.accepted();
    debug!(
        "virtio features: device offered {:#x}, {who} accepted {accepted:#x} ({})",
        features.offered(),
        crate::virtio_platform::feature_names(accepted).join(" ")
    );
    if accepted & crate::virtio_platform::ACCESS_PLATFORM != 0 {
        debug!("device DMA goes through the IOMMU (VIRTIO_F_ACCESS_PLATFORM)");
    } else {
        warn!("the device does not offer VIRTIO_F_ACCESS_PLATFORM: its DMA may bypass the IOMMU");
    }
}

/// Why the confinement check failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfinementError {
    /// No memory BAR to look below.
    NoMemoryBar,
    /// Xen let us map this frame outside the BARs.
    Mapped(u64),
}

/// Xen must refuse a device frame dom0 did not grant: the frame just below
/// the lowest BAR (on QEMU, inside the device's expansion ROM, which dom0
/// does not hand over). Returns the refused address.
pub fn check_confinement(bars: &[(usize, MmioRegion)]) -> Result<u64, ConfinementError> {
    let lowest = bars
        .iter()
        .map(|(_, b)| b.phys() & !0xfff)
        .min()
        .ok_or(ConfinementError::NoMemoryBar)?;
    let outside = lowest - 0x1000;
    match MmioRegion::map(outside, 0x1000) {
        Err(e) => {
            debug!("device frame {outside:#x} outside the granted BARs refused: {e}");
            Ok(outside)
        }
        Ok(_) => Err(ConfinementError::Mapped(outside)),
    }
}

/// The virtio common configuration structure inside its mapped BAR.
struct Common<'a> {
    bar: &'a MmioRegion,
    base: u64,
}

impl crate::msix::CommonConfig for Common<'_> {
    fn read16(&mut self, offset: u64) -> u16 {
        self.bar.read16(self.base + offset)
    }

    fn write16(&mut self, offset: u64, value: u16) {
        self.bar.write16(self.base + offset, value)
    }
}

/// A virtio device's MSI-X entries bound to event channels.
#[derive(Clone, Debug, Default)]
pub struct BoundMsix {
    /// (pirq, event channel port) of each entry, entry 0 first.
    pub pirqs: Vec<(u32, u32)>,
    /// (queue, entry) as routed.
    pub routes: Vec<(u16, u16)>,
}

/// Routes the device's queues to MSI-X entries (`routes` of how many
/// entries there are: at most as many as dom0 mapped pirqs for and the
/// device's table has) and binds the pirqs dom0 mapped for them
/// (`pci-pirqs=`) to event channels, unmasked (Xen's pirq bookkeeping
/// wants a live port; upcalls stay masked domain-wide). On an error every
/// port bound so far is closed again.
pub fn bind_msix(
    args: &DeviceArgs,
    config: &[u8; CONFIG_BYTES],
    bars: &[(usize, MmioRegion)],
    pirqs: &[u32],
    routes: impl FnOnce(usize) -> Vec<(u16, u16)>,
) -> Result<BoundMsix, alloc::string::String> {
    use alloc::format;
    use xcp_pci::caps::{self, Snapshot, VIRTIO_PCI_CAP_COMMON_CFG};
    let (bus, dev, func) = args.bdf;
    let bdf = xcp_pci::Bdf { bus, dev, func };
    let mut snapshot = Snapshot { bdf, bytes: config };
    let table = caps::msix(&mut snapshot, bdf).ok_or("no MSI-X capability")?;
    let entries = pirqs.len().min(usize::from(table.table_size));
    let common = caps::virtio_caps(&mut snapshot, bdf)
        .into_iter()
        .find(|c| c.cfg_type == VIRTIO_PCI_CAP_COMMON_CFG)
        .ok_or("no virtio common configuration")?;
    let (_, bar) = bars
        .iter()
        .find(|(index, _)| *index == usize::from(common.bar))
        .ok_or_else(|| {
            format!(
                "BAR{} of the common configuration is not mapped",
                common.bar
            )
        })?;
    let base = u64::from(common.offset);
    if base + 0x20 > bar.len() {
        return Err(format!(
            "common configuration at {base:#x} outside BAR{}",
            common.bar
        ));
    }
    let routes = routes(entries);
    crate::msix::route(&mut Common { bar, base }, &routes).map_err(|e| format!("{e:?}"))?;
    let mut bound = BoundMsix {
        pirqs: Vec::new(),
        routes,
    };
    for &pirq in &pirqs[..entries] {
        let port = match crate::evtchn::bind_pirq(pirq) {
            Ok(port) => port,
            Err(e) => {
                for &(_, port) in &bound.pirqs {
                    let _ = crate::evtchn::close(port);
                }
                return Err(format!("bind pirq {pirq}: {e}"));
            }
        };
        if let Err(e) = crate::evtchn::unmask(port) {
            warn!("unmask port {port}: {e}");
        }
        bound.pirqs.push((pirq, port));
    }
    Ok(bound)
}

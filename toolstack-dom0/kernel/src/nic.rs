//! Handing the NIC to netdom (netdom/DESIGN.md, "Config space"): dom0
//! prepares the device (memory decoding and bus mastering on), snapshots its
//! 256-byte config space into a page it grants netdom read-only, assigns the
//! device through the IOMMU, lets netdom map its BARs and use its ports, and
//! names all of it on netdom's command line before netdom first runs. When
//! netdom goes, dom0 takes the device back with bus mastering off and the
//! device reset (it may still hold ring addresses into the dead domain's
//! memory, now Xen's to reuse) and ends the snapshot's grant. dom0 also
//! resets the device before each hand-over, before bus mastering goes on.
//!
//! Interrupts (netdom/DESIGN.md, "Interrupts"): before the device leaves
//! dom0, dom0 has Xen locate its MSI-X table (PHYSDEVOP_prepare_msix);
//! once netdom owns it, dom0 maps each MSI-X entry to a pirq of netdom
//! (PHYSDEVOP_map_pirq, which also grants netdom the IRQ), sets MSI-X
//! enable in the device's config space (Xen leaves that to the hardware
//! domain) and names the pirqs as `pci-pirqs=`. Reclaim unmaps them and
//! releases the table, so a rebuilt netdom gets fresh ones. If any step
//! fails netdom gets no pirqs and polls.
//!
//! With a relay, dom0 also grants netdom two channel pages and an unbound
//! event channel (`xenapi-relay=<tx gref>,<rx gref>,<port>`, as for the
//! `xenapi` self-test's testdom) and keeps the channel's initiator end for
//! the XenAPI toolstack; reclaim ends those grants too.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use log::{debug, error};
use xcp_channel::{Channel, Role};
use xcp_pci::caps::{Msix, MSIX_ENABLE, MSIX_MASKALL, VIRTIO_PCI_CAP_COMMON_CFG};
use xcp_pci::{Bar, ConfigAccess, Device};
use xcp_runtime::event_loop::Loop;
use xcp_runtime::paging::Frame;
use xcp_runtime::pci_conf::PortConfig;
use xcp_runtime::pci_snapshot::{self, BUS_MASTER, COMMAND, CONFIG_BYTES};

use crate::platform::Platform;

/// Command bit: memory-space decoding.
const MEMORY_SPACE: u16 = 0x2;
/// Most MSI-X entries mapped for netdom (it uses two: receive, transmit).
const MAX_VECTORS: u16 = 4;
/// `device_status` in the virtio common configuration structure (virtio
/// 1.2 §4.1.4.3, `struct virtio_pci_common_cfg`); writing 0 resets the
/// device.
const COMMON_DEVICE_STATUS: u64 = 20;
/// Reads of `device_status` waited for after the reset write.
const RESET_POLLS: u32 = 1000;

/// Resets a virtio device through its common configuration structure (a
/// modern device has no legacy I/O BAR: QEMU's `iommu_platform=on` needs
/// `disable-legacy=on`): the device forgets its queues, so it DMAs nowhere
/// until a driver sets them up again. Turns memory decoding on if it was
/// off. Returns the status before and after ("the driver MUST wait for a
/// read of device_status to return 0 before reinitializing the device",
/// §4.1.4.3.2).
fn reset_virtio(nic: &Device, conf: &mut PortConfig) -> Result<(u8, u8), String> {
    let common = xcp_pci::caps::virtio_caps(conf, nic.bdf)
        .into_iter()
        .find(|c| c.cfg_type == VIRTIO_PCI_CAP_COMMON_CFG)
        .ok_or_else(|| format!("{}: no virtio common configuration", nic.bdf))?;
    let Some(Bar::Memory { base, size, .. }) = nic.bars[usize::from(common.bar)] else {
        return Err(format!(
            "{}: common configuration in BAR{}, not a memory BAR",
            nic.bdf, common.bar
        ));
    };
    let offset = u64::from(common.offset);
    if offset + COMMON_DEVICE_STATUS >= size {
        return Err(format!(
            "{}: common configuration at {offset:#x} outside BAR{}",
            nic.bdf, common.bar
        ));
    }
    let command = conf.read32(nic.bdf, COMMAND) as u16;
    if command & MEMORY_SPACE == 0 {
        conf.write32(nic.bdf, COMMAND, u32::from(command | MEMORY_SPACE));
    }
    let status_at = base + offset + COMMON_DEVICE_STATUS;
    let page = status_at & !0xfff;
    let regs = xcp_runtime::mmio::MmioRegion::map(page, 0x1000)
        .map_err(|e| format!("{}: map the common configuration: {e}", nic.bdf))?;
    let at = status_at - page;
    let before = regs.read8(at);
    regs.write8(at, 0);
    let mut after = regs.read8(at);
    for _ in 0..RESET_POLLS {
        if after == 0 {
            break;
        }
        after = regs.read8(at);
    }
    Ok((before, after))
}

/// The BAR sizes netdom's `pci-bars=` names (0 for unused and upper halves).
pub fn bar_sizes(nic: &Device) -> [u64; 6] {
    nic.bars.map(|bar| match bar {
        Some(Bar::Memory { size, .. }) => size,
        Some(Bar::Io { size, .. }) => u64::from(size),
        None => 0,
    })
}

/// Resets the device, turns on memory decoding and bus mastering, then
/// copies the config space into a fresh frame. Returns the frame and the
/// command before and after.
fn prepare(nic: &Device) -> Result<(Frame, u16, u16), String> {
    let mut conf =
        xcp_runtime::pci_conf::PortConfig::new().map_err(|e| format!("config access: {e}"))?;
    let before = conf.read32(nic.bdf, COMMAND) as u16;
    // Whatever ran before (firmware, a dead netdom) may have left queues
    // set up: reset before bus mastering goes on.
    let (_, status) = reset_virtio(nic, &mut conf)?;
    if status != 0 {
        return Err(format!(
            "{}: virtio status {status:#x} after reset",
            nic.bdf
        ));
    }
    // The status half is write-one-to-clear: write zeroes there.
    conf.write32(
        nic.bdf,
        COMMAND,
        u32::from(before | MEMORY_SPACE | BUS_MASTER),
    );
    let after = conf.read32(nic.bdf, COMMAND) as u16;
    let mut frame = Frame::alloc().map_err(|e| format!("snapshot frame: {e:?}"))?;
    let bytes = frame.bytes_mut();
    for offset in (0..CONFIG_BYTES).step_by(4) {
        let dword = conf.read32(nic.bdf, offset as u8);
        bytes[offset..offset + 4].copy_from_slice(&dword.to_le_bytes());
    }
    Ok((frame, before, after))
}

/// A NIC dom0 gave to a domain.
pub struct Handed {
    /// The domain holding it.
    pub domid: u16,
    /// The device.
    pub nic: Device,
    /// The config-space snapshot page, granted to `domid`.
    snapshot: Frame,
    gref: u32,
    /// The relay channel's initiator end and dom0's port, until taken.
    relay: Option<(Channel<Frame>, u32)>,
    /// Grants of the relay channel's pages, ended on reclaim.
    relay_grefs: Vec<u32>,
    /// dom0's port of the relay channel (it names the relay link).
    pub relay_port: Option<u32>,
    /// netdom's pirqs for the MSI-X entries, unmapped on reclaim.
    pirqs: Vec<u32>,
    /// The MSI-X capability, if Xen was told where its table is.
    msix: Option<Msix>,
}

impl Handed {
    /// Takes the relay channel (dom0's end) and its event channel port.
    pub fn take_relay(&mut self) -> Option<(Channel<Frame>, u32)> {
        self.relay.take()
    }
}

/// The pages and port of a relay channel being set up.
struct RelayPages {
    tx: Frame,
    rx: Frame,
}

/// A relay offered to netdom: its command-line words, the pages' grants
/// and dom0's port.
type Offer = (String, [u32; 2], u32);

/// Grants `domid` the relay pages and allocates the unbound port.
fn offer_relay(domid: u16, pages: &RelayPages) -> Result<Offer, String> {
    let grant = |f: &Frame| {
        xcp_runtime::gnttab::grant_access(domid, f.pfn(), false)
            .map_err(|e| format!("grant a relay page: {e:?}"))
    };
    let tx = grant(&pages.tx)?;
    let rx = match grant(&pages.rx) {
        Ok(rx) => rx,
        Err(e) => {
            let _ = xcp_runtime::gnttab::end_access(tx);
            return Err(e);
        }
    };
    let port = match xcp_runtime::evtchn::alloc_unbound(domid) {
        Ok(port) => port,
        Err(e) => {
            let _ = xcp_runtime::gnttab::end_access(tx);
            let _ = xcp_runtime::gnttab::end_access(rx);
            return Err(format!("relay port: {e}"));
        }
    };
    Ok((format!(" xenapi-relay={tx},{rx},{port}"), [tx, rx], port))
}

/// Has Xen locate the MSI-X table while dom0 owns the device (memory
/// decoding on). `None` (logged) when the device has no MSI-X or Xen
/// refuses: netdom will poll.
fn prepare_msix(nic: &Device) -> Option<Msix> {
    let mut conf = xcp_runtime::pci_conf::PortConfig::new().ok()?;
    let msix = xcp_pci::caps::msix(&mut conf, nic.bdf)?;
    match xcp_runtime::control::prepare_msix(nic.bdf) {
        Ok(()) => Some(msix),
        Err(e) => {
            error!(
                "nic {}: PHYSDEVOP_prepare_msix: {e}; netdom will poll",
                nic.bdf
            );
            None
        }
    }
}

/// Maps MSI-X entries 0.. of the NIC to pirqs of `domid` (which owns it)
/// and enables MSI-X; returns the pirqs (undone on failure).
fn map_msix(domid: u16, nic: &Device, msix: &Msix) -> Result<Vec<u32>, String> {
    let Some(Bar::Memory {
        base: table_base, ..
    }) = nic.bars[usize::from(msix.table_bar)]
    else {
        return Err(format!(
            "MSI-X table in BAR{}, not a memory BAR",
            msix.table_bar
        ));
    };
    let mut pirqs = Vec::new();
    for entry in 0..msix.table_size.min(MAX_VECTORS) {
        match xcp_runtime::control::map_msix_pirq(domid, nic.bdf, entry, table_base) {
            Ok(pirq) => pirqs.push(pirq),
            Err(e) => {
                unmap_pirqs(domid, &pirqs);
                return Err(format!("map MSI-X entry {entry}: {e}"));
            }
        }
    }
    let mut conf =
        xcp_runtime::pci_conf::PortConfig::new().map_err(|e| format!("config access: {e}"))?;
    // Xen sets the entries up masked and unmasks each when netdom binds
    // its pirq; enabling the capability is the hardware domain's job.
    let control = (msix.control | MSIX_ENABLE) & !MSIX_MASKALL;
    conf.write16(nic.bdf, msix.control_offset(), control);
    let now = (conf.read32(nic.bdf, msix.offset) >> 16) as u16;
    if now & MSIX_ENABLE == 0 {
        unmap_pirqs(domid, &pirqs);
        return Err(format!(
            "MSI-X control {now:#06x} after writing {control:#06x}"
        ));
    }
    debug!(
        "nic {}: MSI-X entries 0..{} (table in BAR{} at {table_base:#x}) mapped to pirqs {pirqs:?} of domid {domid}; MSI-X control {now:#06x}",
        nic.bdf,
        pirqs.len(),
        msix.table_bar
    );
    Ok(pirqs)
}

fn unmap_pirqs(domid: u16, pirqs: &[u32]) {
    for &pirq in pirqs {
        if let Err(e) = xcp_runtime::control::unmap_pirq(domid, pirq) {
            error!("unmap pirq {pirq} of domid {domid}: {e}");
        }
    }
}

/// What `hand_over` gives back: netdom's command line, the snapshot's
/// grant and the pirqs mapped for netdom.
type HandOver = (String, u32, Vec<u32>);

/// Gives `domid` the device, its BARs and ports, the snapshot and (with
/// `msix`) its MSI-X entries as pirqs; returns netdom's command line (with
/// `ip=`, the management setting without spaces, and `pci-pirqs=`), the
/// snapshot's grant and the pirqs.
fn hand_over(
    domid: u16,
    nic: &Device,
    snapshot: &Frame,
    management: &str,
    msix: Option<&Msix>,
) -> Result<HandOver, String> {
    // Checked when the bundle was read; a bad one here is dom0's bug.
    let ip = xcp_bundle::Management::parse(management)?.cmdline();
    xcp_runtime::control::assign_pci(domid, nic.bdf)
        .map_err(|e| format!("assign {} to domid {domid}: {e}", nic.bdf))?;
    for bar in nic.bars.iter().flatten() {
        match *bar {
            Bar::Memory { base, size, .. } => {
                xcp_runtime::control::iomem_permission(domid, base >> 12, size.div_ceil(4096), true)
            }
            Bar::Io { base, size } => {
                xcp_runtime::control::ioport_permission(domid, base, size, true)
            }
        }
        .map_err(|e| format!("BAR {bar:?} for domid {domid}: {e}"))?;
    }
    let gref = xcp_runtime::gnttab::grant_access(domid, snapshot.pfn(), true)
        .map_err(|e| format!("grant the snapshot: {e:?}"))?;
    let mut line = format!(
        "pci={} pci-config={gref} pci-bars={} ip={ip}",
        nic.bdf,
        pci_snapshot::format_bar_sizes(&bar_sizes(nic))
    );
    let pirqs = match msix.map(|m| map_msix(domid, nic, m)) {
        Some(Ok(pirqs)) => pirqs,
        Some(Err(e)) => {
            error!("nic {}: {e}; netdom will poll", nic.bdf);
            Vec::new()
        }
        None => Vec::new(),
    };
    if !pirqs.is_empty() {
        let list: Vec<String> = pirqs.iter().map(|p| format!("{p}")).collect();
        line.push_str(&format!(" pci-pirqs={}", list.join(",")));
    }
    Ok((line, gref, pirqs))
}

/// Builds config `index` (netdom) with the first virtio-net NIC on bus 0,
/// and with `relay`, a XenAPI relay channel to dom0. `extra` is appended to
/// netdom's command line (self-tests only, e.g. ` dma-escape=<address>`;
/// empty otherwise).
pub fn start_with_nic(
    platform: &mut Platform,
    lp: &mut Loop,
    index: usize,
    relay: bool,
    extra: &str,
) -> Result<Handed, String> {
    let nic = platform
        .devices
        .iter()
        .find(|d| d.is_virtio_net())
        .cloned()
        .ok_or("no virtio-net device on bus 0")?;
    if !platform.configs()[index].passthrough {
        return Err(format!(
            "{} needs passthrough = true to be given a device",
            platform.configs()[index].name
        ));
    }
    let (snapshot, before, after) = prepare(&nic)?;
    debug!(
        "nic {} ({}): command {before:#06x} -> {after:#06x}, config space snapshot taken",
        nic.bdf,
        nic.name()
    );
    let msix = prepare_msix(&nic);
    let pages = if relay {
        Some(RelayPages {
            tx: Frame::alloc().map_err(|e| format!("relay page: {e:?}"))?,
            rx: Frame::alloc().map_err(|e| format!("relay page: {e:?}"))?,
        })
    } else {
        None
    };
    let mut handed: Result<HandOver, String> = Err(String::from("not built"));
    let mut offered: Option<Result<Offer, String>> = None;
    let management = platform.management.clone();
    let built = platform.start_with(lp, index, &mut |domid| {
        handed = hand_over(domid, &nic, &snapshot, &management, msix.as_ref());
        offered = pages.as_ref().map(|p| offer_relay(domid, p));
        match (&handed, &offered) {
            (Ok((line, _, _)), None) => format!("{line}{extra}"),
            (Ok((line, _, _)), Some(Ok((words, _, _)))) => format!("{line}{words}{extra}"),
            // netdom reports the missing arguments and stops.
            _ => String::new(),
        }
    });
    let (line, gref, pirqs) = handed?;
    let (relay, relay_grefs) = match (offered, pages) {
        (Some(offer), Some(pages)) => {
            let (_, grefs, port) = offer?;
            let channel = Channel::new(pages.tx, pages.rx, Role::Initiator)
                .map_err(|e| format!("relay channel: {e:?}"))?;
            lp.watch(port)
                .map_err(|e| format!("watch the relay port: {e}"))?;
            (Some((channel, port)), grefs.to_vec())
        }
        _ => (None, Vec::new()),
    };
    let domid = built.map_err(|()| String::from("could not build netdom"))?;
    debug!("nic {} handed to domid {domid}: {line}", nic.bdf);
    let relay_port = relay.as_ref().map(|(_, port)| *port);
    Ok(Handed {
        domid,
        nic,
        snapshot,
        gref,
        relay,
        relay_grefs,
        relay_port,
        pirqs,
        msix,
    })
}

/// Destroys the domain holding the NIC, turns bus mastering off and ends
/// the snapshot's grant.
pub fn reclaim(platform: &mut Platform, lp: &mut Loop, mut handed: Handed) -> Result<(), String> {
    quiesce(&mut handed);
    platform.stop(lp, handed.domid);
    release(handed)
}

/// Unmaps the domain's pirqs while it still exists (crashed or not, but
/// not destroyed: Xen unbinds a pirq it still has bound; after the
/// destroy Xen frees them only at the domain's final, deferred teardown,
/// and the MSI-X table could not be released until then).
pub fn quiesce(handed: &mut Handed) {
    unmap_pirqs(handed.domid, &handed.pirqs);
}

/// Takes the NIC back from a domain that is already destroyed (it died and
/// dom0 tore it down): bus mastering off, the device reset, the snapshot's
/// and the relay pages' grants ended.
pub fn release(handed: Handed) -> Result<(), String> {
    let mut conf =
        xcp_runtime::pci_conf::PortConfig::new().map_err(|e| format!("config access: {e}"))?;
    let command = conf.read32(handed.nic.bdf, COMMAND) as u16;
    conf.write32(handed.nic.bdf, COMMAND, u32::from(command & !BUS_MASTER));
    let now = conf.read32(handed.nic.bdf, COMMAND) as u16;
    let (was, status) = reset_virtio(&handed.nic, &mut conf)?;
    xcp_runtime::gnttab::end_access(handed.gref)
        .map_err(|e| format!("end the snapshot grant: {e:?}"))?;
    for gref in &handed.relay_grefs {
        xcp_runtime::gnttab::end_access(*gref)
            .map_err(|e| format!("end a relay page's grant: {e:?}"))?;
    }
    drop(handed.snapshot);
    if let Some(msix) = handed.msix {
        // Every entry is unmapped: Xen forgets the table and the device
        // stops signalling until the next hand-over enables it again.
        xcp_runtime::control::release_msix(handed.nic.bdf)
            .map_err(|e| format!("PHYSDEVOP_release_msix: {e}"))?;
        conf.write16(
            handed.nic.bdf,
            msix.control_offset(),
            msix.control & !MSIX_ENABLE,
        );
        debug!(
            "nic {}: pirqs {:?} unmapped, MSI-X table released, MSI-X disabled",
            handed.nic.bdf, handed.pirqs
        );
    }
    debug!(
        "nic {} back from domid {}: command {command:#06x} -> {now:#06x} (bus mastering off), virtio reset (status {was:#x} -> {status:#x})",
        handed.nic.bdf, handed.domid
    );
    if now & BUS_MASTER != 0 || status != 0 {
        return Err(String::from("the device is still live after reclaim"));
    }
    Ok(())
}

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
//! With a relay, dom0 also grants netdom two channel pages and an unbound
//! event channel (`xenapi-relay=<tx gref>,<rx gref>,<port>`, as for the
//! `xenapi` self-test's testdom) and keeps the channel's initiator end for
//! the XenAPI toolstack; reclaim ends those grants too.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use log::info;
use xcp_channel::{Channel, Role};
use xcp_pci::{Bar, ConfigAccess, Device};
use xcp_runtime::event_loop::Loop;
use xcp_runtime::paging::Frame;
use xcp_runtime::pci_snapshot::{self, BUS_MASTER, COMMAND, CONFIG_BYTES};

use crate::platform::Platform;

/// Command bit: memory-space decoding.
const MEMORY_SPACE: u16 = 0x2;
/// Command bit: I/O-space decoding.
const IO_SPACE: u16 = 0x1;
/// Device status in the legacy virtio-pci header (virtio 0.9.5 §2.1,
/// "Virtio Header"); writing 0 resets the device.
const LEGACY_STATUS: u16 = 18;

/// Resets a transitional virtio device through its legacy I/O BAR (BAR0):
/// the device forgets its queues, so it DMAs nowhere until a driver sets
/// them up again. Needs I/O decoding on. Returns the status before and
/// after.
fn reset_virtio(nic: &Device, conf: &mut dyn ConfigAccess) -> Result<(u8, u8), String> {
    let Some(Bar::Io { base, .. }) = nic.bars[0] else {
        return Err(format!("{}: no legacy I/O BAR to reset through", nic.bdf));
    };
    let command = conf.read32(nic.bdf, COMMAND) as u16;
    if command & IO_SPACE == 0 {
        conf.write32(nic.bdf, COMMAND, u32::from(command | IO_SPACE));
    }
    let mut ports = xcp_runtime::port_io::Ports::new().map_err(|e| format!("port I/O: {e}"))?;
    let port = base as u16 + LEGACY_STATUS;
    let before = ports.read8(port);
    ports.write8(port, 0);
    Ok((before, ports.read8(port)))
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

/// Gives `domid` the device, its BARs and ports, and the snapshot;
/// returns netdom's command line (with `ip=`, the management setting
/// without spaces) and the snapshot's grant.
fn hand_over(
    domid: u16,
    nic: &Device,
    snapshot: &Frame,
    management: &str,
) -> Result<(String, u32), String> {
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
    let line = format!(
        "pci={} pci-config={gref} pci-bars={} ip={ip}",
        nic.bdf,
        pci_snapshot::format_bar_sizes(&bar_sizes(nic))
    );
    Ok((line, gref))
}

/// Builds config `index` (netdom) with the first virtio-net NIC on bus 0,
/// and with `relay`, a XenAPI relay channel to dom0.
pub fn start_with_nic(
    platform: &mut Platform,
    lp: &mut Loop,
    index: usize,
    relay: bool,
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
    info!(
        "nic {} ({}): command {before:#06x} -> {after:#06x}, config space snapshot taken",
        nic.bdf,
        nic.name()
    );
    let pages = if relay {
        Some(RelayPages {
            tx: Frame::alloc().map_err(|e| format!("relay page: {e:?}"))?,
            rx: Frame::alloc().map_err(|e| format!("relay page: {e:?}"))?,
        })
    } else {
        None
    };
    let mut handed: Result<(String, u32), String> = Err(String::from("not built"));
    let mut offered: Option<Result<Offer, String>> = None;
    let management = platform.management.clone();
    let built = platform.start_with(lp, index, &mut |domid| {
        handed = hand_over(domid, &nic, &snapshot, &management);
        offered = pages.as_ref().map(|p| offer_relay(domid, p));
        match (&handed, &offered) {
            (Ok((line, _)), None) => line.clone(),
            (Ok((line, _)), Some(Ok((words, _, _)))) => format!("{line}{words}"),
            // netdom reports the missing arguments and stops.
            _ => String::new(),
        }
    });
    let (line, gref) = handed?;
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
    info!("nic {} handed to domid {domid}: {line}", nic.bdf);
    Ok(Handed {
        domid,
        nic,
        snapshot,
        gref,
        relay,
        relay_grefs,
    })
}

/// Destroys the domain holding the NIC, turns bus mastering off and ends
/// the snapshot's grant.
pub fn reclaim(platform: &mut Platform, lp: &mut Loop, handed: Handed) -> Result<(), String> {
    platform.stop(lp, handed.domid);
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
    info!(
        "nic {} back from domid {}: command {command:#06x} -> {now:#06x} (bus mastering off), virtio reset (status {was:#x} -> {status:#x})",
        handed.nic.bdf, handed.domid
    );
    if now & BUS_MASTER != 0 || status != 0 {
        return Err(String::from("the device is still live after reclaim"));
    }
    Ok(())
}

//! Handing the NIC to netdom (netdom/DESIGN.md, "Config space"): dom0
//! prepares the device (memory decoding and bus mastering on), snapshots its
//! 256-byte config space into a page it grants netdom read-only, assigns the
//! device through the IOMMU, lets netdom map its BARs and use its ports, and
//! names all of it on netdom's command line before netdom first runs.

use alloc::format;
use alloc::string::String;

use log::info;
use xcp_pci::{Bar, ConfigAccess, Device};
use xcp_runtime::event_loop::Loop;
use xcp_runtime::paging::Frame;
use xcp_runtime::pci_snapshot::{self, BUS_MASTER, COMMAND, CONFIG_BYTES};

use crate::platform::Platform;

/// Command bit: memory-space decoding.
const MEMORY_SPACE: u16 = 0x2;

/// The BAR sizes netdom's `pci-bars=` names (0 for unused and upper halves).
pub fn bar_sizes(nic: &Device) -> [u64; 6] {
    nic.bars.map(|bar| match bar {
        Some(Bar::Memory { size, .. }) => size,
        Some(Bar::Io { size, .. }) => u64::from(size),
        None => 0,
    })
}

/// Turns on memory decoding and bus mastering, then copies the config space
/// into a fresh frame. Returns the frame and the command before and after.
fn prepare(nic: &Device) -> Result<(Frame, u16, u16), String> {
    let mut conf =
        xcp_runtime::pci_conf::PortConfig::new().map_err(|e| format!("config access: {e}"))?;
    let before = conf.read32(nic.bdf, COMMAND) as u16;
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

/// Gives `domid` the device, its BARs and ports, and the snapshot;
/// returns netdom's command line.
fn hand_over(domid: u16, nic: &Device, snapshot: &Frame) -> Result<String, String> {
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
    Ok(format!(
        "pci={} pci-config={gref} pci-bars={} ip=10.0.2.15 gateway=10.0.2.2",
        nic.bdf,
        pci_snapshot::format_bar_sizes(&bar_sizes(nic))
    ))
}

/// Builds config `index` (netdom) with the first virtio-net NIC on bus 0.
/// Returns its domid and the snapshot frame, which must live as long as
/// the grant.
pub fn start_with_nic(
    platform: &mut Platform,
    lp: &mut Loop,
    index: usize,
) -> Result<(u16, Frame), String> {
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
    let mut handed: Result<String, String> = Err(String::from("not built"));
    let built = platform.start_with(lp, index, &mut |domid| {
        handed = hand_over(domid, &nic, &snapshot);
        match &handed {
            Ok(line) => line.clone(),
            // netdom reports the missing arguments and stops.
            Err(_) => String::new(),
        }
    });
    let line = handed?;
    let domid = built.map_err(|()| String::from("could not build netdom"))?;
    info!("nic {} handed to domid {domid}: {line}", nic.bdf);
    Ok((domid, snapshot))
}

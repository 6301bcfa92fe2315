//! Handing the NIC to netdom (netdom/DESIGN.md, "Config space"): dom0
//! prepares the device (reset, then memory decoding and bus mastering on),
//! snapshots its 256-byte config space into a page it grants netdom
//! read-only, assigns the device through the IOMMU, lets netdom map its
//! BARs and use its ports, and names all of it on netdom's command line
//! before netdom first runs. When netdom goes, dom0 takes the device back
//! with bus mastering off and the device reset (it may still hold ring
//! addresses into the dead domain's memory, now Xen's to reuse) and ends
//! the snapshot's grant.
//!
//! Interrupts (netdom/DESIGN.md, "Interrupts"): before the device leaves
//! dom0, dom0 has Xen locate its MSI-X table (PHYSDEVOP_prepare_msix);
//! once netdom owns it, dom0 maps each MSI-X entry to a pirq of netdom
//! (PHYSDEVOP_map_pirq, which also grants netdom the IRQ), sets MSI-X
//! enable in the device's config space (Xen leaves that to the hardware
//! domain) and names the pirqs as `pci-pirqs=`. Reclaim unmaps them while
//! netdom still exists ([`quiesce`], before the destroy), then releases
//! the table ([`release`]), so a rebuilt netdom gets fresh ones. If the
//! MSI-X steps fail netdom gets no pirqs and polls.
//!
//! With a relay, dom0 also grants netdom two channel pages and an unbound
//! event channel (`xenapi-relay=<tx gref>,<rx gref>,<port>`) and keeps the
//! channel's pages and port for the XenAPI toolstack; reclaim ends those
//! grants and closes the port too.
//!
//! Every step of the hand-over goes on the undo log of netdom's build
//! (see [`crate::undo`]): a failure anywhere leaves nothing behind.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use log::{debug, error};
use xcp_bundle::Management;
use xcp_pci::caps::{Msix, MSIX_ENABLE, MSIX_MASKALL, VIRTIO_PCI_CAP_COMMON_CFG};
use xcp_pci::{Bar, Device};

use crate::platform::Config;
use crate::undo::{Undo, UndoLog};
use crate::{BoardError, DeviceError, Platform, Step};

/// The command register.
pub const COMMAND: u8 = 0x04;
/// Command bit: memory-space decoding.
pub const MEMORY_SPACE: u16 = 0x2;
/// Command bit: bus mastering (the device may DMA).
pub const BUS_MASTER: u16 = 0x4;
/// Bytes of a conventional config space (the snapshot).
pub const CONFIG_BYTES: usize = 256;
/// Most MSI-X entries mapped for netdom (it uses two: receive, transmit).
pub const MAX_VECTORS: u16 = 4;
/// `device_status` in the virtio common configuration structure (virtio
/// 1.2 §4.1.4.3, `struct virtio_pci_common_cfg`); writing 0 resets the
/// device.
pub const COMMON_DEVICE_STATUS: u64 = 20;

/// A NIC dom0 gave to a domain.
pub struct Handed<P: Platform> {
    /// The domain holding it.
    pub domid: u16,
    /// The device.
    pub nic: Device,
    /// The config-space snapshot page, granted to `domid`.
    snapshot: P::Page,
    gref: u32,
    /// The relay channel's pages (tx, rx), until taken.
    relay: Option<(P::Page, P::Page)>,
    /// Grants of the relay channel's pages, ended on reclaim.
    relay_grefs: Vec<u32>,
    /// dom0's port of the relay channel (it names the relay link).
    pub relay_port: Option<u32>,
    /// netdom's pirqs for the MSI-X entries, unmapped on reclaim.
    pub pirqs: Vec<u32>,
    /// Whether [`quiesce`] unmapped them already.
    quiesced: bool,
    /// The MSI-X capability, if Xen was told where its table is.
    msix: Option<Msix>,
    /// The words dom0 put on the domain's command line for the device and
    /// its channel.
    pub words: String,
}

impl<P: Platform> Handed<P> {
    /// Takes the relay channel's pages (tx, rx) and dom0's port.
    pub fn take_relay(&mut self) -> Option<(P::Page, P::Page, u32)> {
        let (tx, rx) = self.relay.take()?;
        Some((tx, rx, self.relay_port?))
    }

    /// The snapshot's grant.
    pub fn snapshot_gref(&self) -> u32 {
        self.gref
    }
}

/// The BAR sizes netdom's `pci-bars=` names (0 for unused and upper halves).
pub fn bar_sizes(nic: &Device) -> [u64; 6] {
    nic.bars.map(|bar| match bar {
        Some(Bar::Memory { size, .. }) => size,
        Some(Bar::Io { size, .. }) => u64::from(size),
        None => 0,
    })
}

/// `pci-bars=`'s text: six hex sizes.
fn format_bar_sizes(sizes: &[u64; 6]) -> String {
    let words: Vec<String> = sizes.iter().map(|s| format!("{s:x}")).collect();
    words.join(",")
}

fn device_err<E>(nic: &Device, error: DeviceError) -> BoardError<E> {
    BoardError::Device {
        bdf: nic.bdf,
        error,
    }
}

fn read_command<P: Platform>(pf: &mut P, nic: &Device) -> u16 {
    pf.pci_read32(nic.bdf, COMMAND) as u16
}

/// Resets a virtio device through its common configuration structure (a
/// modern device has no legacy I/O BAR: QEMU's `iommu_platform=on` needs
/// `disable-legacy=on`): the device forgets its queues, so it DMAs nowhere
/// until a driver sets them up again. Turns memory decoding on if it was
/// off. Returns the status before and after ("the driver MUST wait for a
/// read of device_status to return 0 before reinitializing the device",
/// §4.1.4.3.2).
pub fn reset_virtio<P: Platform>(
    pf: &mut P,
    nic: &Device,
) -> Result<(u8, u8), BoardError<P::Error>> {
    let common = xcp_pci::caps::virtio_caps(&mut Config(pf), nic.bdf)
        .into_iter()
        .find(|c| c.cfg_type == VIRTIO_PCI_CAP_COMMON_CFG)
        .ok_or(device_err(nic, DeviceError::NoCommonConfig))?;
    let Some(Bar::Memory { base, size, .. }) =
        nic.bars.get(usize::from(common.bar)).copied().flatten()
    else {
        return Err(device_err(
            nic,
            DeviceError::NotMemoryBar { bar: common.bar },
        ));
    };
    let offset = u64::from(common.offset);
    if offset + COMMON_DEVICE_STATUS >= size {
        return Err(device_err(
            nic,
            DeviceError::OutsideBar {
                bar: common.bar,
                offset,
            },
        ));
    }
    let command = read_command(pf, nic);
    if command & MEMORY_SPACE == 0 {
        pf.pci_write32(nic.bdf, COMMAND, u32::from(command | MEMORY_SPACE));
    }
    pf.virtio_reset(base + offset + COMMON_DEVICE_STATUS)
        .map_err(BoardError::at(Step::VirtioReset))
}

/// Takes a device out of use: bus mastering off, then the virtio reset.
/// Returns the command register after and the status before and after.
pub fn quiesce_device<P: Platform>(
    pf: &mut P,
    nic: &Device,
) -> Result<(u16, u16, u8, u8), BoardError<P::Error>> {
    let command = read_command(pf, nic);
    pf.pci_write32(nic.bdf, COMMAND, u32::from(command & !BUS_MASTER));
    let now = read_command(pf, nic);
    let (was, status) = reset_virtio(pf, nic)?;
    Ok((command, now, was, status))
}

/// Resets the device, turns on memory decoding and bus mastering (the
/// undo turns it off and resets again), then copies the config space into
/// a fresh page. Returns the page and the command before and after.
pub fn prepare<P: Platform>(
    pf: &mut P,
    log: &mut UndoLog,
    nic: &Device,
) -> Result<(P::Page, u16, u16), BoardError<P::Error>> {
    let before = read_command(pf, nic);
    log.push(Undo::Device(nic.clone()));
    // Whatever ran before (firmware, a dead netdom) may have left queues
    // set up: reset before bus mastering goes on.
    let (_, status) = reset_virtio(pf, nic)?;
    if status != 0 {
        return Err(device_err(nic, DeviceError::NotReset { status }));
    }
    // The status half is write-one-to-clear: write zeroes there.
    pf.pci_write32(
        nic.bdf,
        COMMAND,
        u32::from(before | MEMORY_SPACE | BUS_MASTER),
    );
    let after = read_command(pf, nic);
    let mut page = pf
        .alloc_page()
        .map_err(BoardError::at(Step::SnapshotPage))?;
    let mut bytes = [0u8; CONFIG_BYTES];
    for offset in (0..CONFIG_BYTES).step_by(4) {
        let dword = pf.pci_read32(nic.bdf, offset as u8);
        bytes[offset..offset + 4].copy_from_slice(&dword.to_le_bytes());
    }
    pf.write_page(&mut page, 0, &bytes);
    Ok((page, before, after))
}

/// Has Xen locate the MSI-X table while dom0 owns the device (memory
/// decoding on). `None` (logged) when the device has no MSI-X or Xen
/// refuses: netdom will poll.
pub fn prepare_msix<P: Platform>(pf: &mut P, log: &mut UndoLog, nic: &Device) -> Option<Msix> {
    let msix = xcp_pci::caps::msix(&mut Config(pf), nic.bdf)?;
    match pf.prepare_msix(nic.bdf) {
        Ok(()) => {
            log.push(Undo::Msix(nic.bdf));
            Some(msix)
        }
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
/// and enables MSI-X; returns the pirqs. On failure its own steps are
/// undone already.
fn map_msix<P: Platform>(
    pf: &mut P,
    log: &mut UndoLog,
    domid: u16,
    nic: &Device,
    msix: &Msix,
) -> Result<Vec<u32>, BoardError<P::Error>> {
    let Some(Bar::Memory {
        base: table_base, ..
    }) = nic.bars.get(usize::from(msix.table_bar)).copied().flatten()
    else {
        return Err(device_err(
            nic,
            DeviceError::MsixTableNotMemory {
                bar: msix.table_bar,
            },
        ));
    };
    let mut steps = UndoLog::new();
    let mut pirqs = Vec::new();
    for entry in 0..msix.table_size.min(MAX_VECTORS) {
        match pf.map_msix_pirq(domid, nic.bdf, entry, table_base) {
            Ok(pirq) => {
                steps.push(Undo::Pirq { domid, pirq });
                pirqs.push(pirq);
            }
            Err(e) => {
                steps.undo(pf);
                return Err(BoardError::Platform {
                    step: Step::MapPirq { entry },
                    error: e,
                });
            }
        }
    }
    // Xen sets the entries up masked and unmasks each when netdom binds
    // its pirq; enabling the capability is the hardware domain's job.
    let control = (msix.control | MSIX_ENABLE) & !MSIX_MASKALL;
    steps.push(Undo::MsixEnabled {
        bdf: nic.bdf,
        offset: msix.control_offset(),
        control: msix.control,
    });
    pf.pci_write16(nic.bdf, msix.control_offset(), control);
    let now = (pf.pci_read32(nic.bdf, msix.offset) >> 16) as u16;
    if now & MSIX_ENABLE == 0 {
        steps.undo(pf);
        return Err(device_err(
            nic,
            DeviceError::MsixNotEnabled { control: now },
        ));
    }
    debug!(
        "nic {}: MSI-X entries 0..{} (table in BAR{} at {table_base:#x}) mapped to pirqs {pirqs:?} of domid {domid}; MSI-X control {now:#06x}",
        nic.bdf,
        pirqs.len(),
        msix.table_bar
    );
    log.append(steps);
    Ok(pirqs)
}

/// What [`hand_over`] gives back: netdom's command line, the snapshot's
/// grant and the pirqs mapped for netdom.
pub struct HandOver {
    /// netdom's command-line words.
    pub line: String,
    /// The snapshot's grant.
    pub gref: u32,
    /// netdom's pirqs.
    pub pirqs: Vec<u32>,
}

/// Gives `domid` the device, its BARs and ports, the snapshot and (with
/// `msix`) its MSI-X entries as pirqs; returns the driver domain's command
/// line (with `pci-pirqs=` and, for netdom, `ip=` with the management
/// setting), the snapshot's grant and the pirqs.
pub fn hand_over<P: Platform>(
    pf: &mut P,
    log: &mut UndoLog,
    domid: u16,
    nic: &Device,
    snapshot: &P::Page,
    management: Option<Management>,
    msix: Option<&Msix>,
) -> Result<HandOver, BoardError<P::Error>> {
    // Without it, netdom could not use the device; the domain's destroy
    // would give it back too, but the undo says so first.
    pf.assign_pci(domid, nic.bdf)
        .map_err(BoardError::at(Step::AssignDevice))?;
    log.push(Undo::Assigned {
        domid,
        bdf: nic.bdf,
    });
    for bar in nic.bars.iter().flatten() {
        match *bar {
            Bar::Memory { base, size, .. } => {
                let (first, count) = (base >> 12, size.div_ceil(4096));
                pf.iomem_permission(domid, first, count, true)
                    .map_err(BoardError::at(Step::IomemPermission))?;
                log.push(Undo::Iomem {
                    domid,
                    first,
                    count,
                });
            }
            Bar::Io { base, size } => {
                pf.ioport_permission(domid, base, size, true)
                    .map_err(BoardError::at(Step::IoportPermission))?;
                log.push(Undo::Ioport {
                    domid,
                    first: base,
                    count: size,
                });
            }
        }
    }
    let gref = pf
        .grant_access(domid, snapshot, true)
        .map_err(BoardError::at(Step::SnapshotGrant))?;
    log.push(Undo::Grant(gref));
    let mut line = format!(
        "pci={} pci-config={gref} pci-bars={}",
        nic.bdf,
        format_bar_sizes(&bar_sizes(nic)),
    );
    if let Some(management) = management {
        line.push_str(&format!(" ip={}", management.cmdline()));
    }
    let pirqs = match msix.map(|m| map_msix(pf, log, domid, nic, m)) {
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
    Ok(HandOver { line, gref, pirqs })
}

/// A channel offered to a driver domain: its command-line words, the
/// pages' grants and dom0's port.
pub struct Offer {
    /// ` <word>=<tx>,<rx>,<port>` (`xenapi-relay` for netdom,
    /// `dom0-channel` for stordom).
    pub words: String,
    /// The grants of the tx and rx pages.
    pub grefs: [u32; 2],
    /// dom0's port.
    pub port: u32,
}

/// Grants `domid` the channel's pages and allocates the unbound port,
/// named on its command line as `word`.
pub fn offer_relay<P: Platform>(
    pf: &mut P,
    log: &mut UndoLog,
    domid: u16,
    tx: &P::Page,
    rx: &P::Page,
    word: &str,
) -> Result<Offer, BoardError<P::Error>> {
    let tx = pf
        .grant_access(domid, tx, false)
        .map_err(BoardError::at(Step::RelayGrant))?;
    log.push(Undo::Grant(tx));
    let rx = pf
        .grant_access(domid, rx, false)
        .map_err(BoardError::at(Step::RelayGrant))?;
    log.push(Undo::Grant(rx));
    let port = pf
        .alloc_unbound(domid)
        .map_err(BoardError::at(Step::RelayPort))?;
    log.push(Undo::Port(port));
    Ok(Offer {
        words: format!(" {word}={tx},{rx},{port}"),
        grefs: [tx, rx],
        port,
    })
}

/// What was made for netdom besides its build, gathered in its command
/// line closure.
pub(crate) struct Parts<P: Platform> {
    pub snapshot: P::Page,
    pub msix: Option<Msix>,
    pub relay: Option<(P::Page, P::Page)>,
    pub handed: Option<HandOver>,
    pub offered: Option<Offer>,
    /// The words put on the command line.
    pub words: String,
}

impl<P: Platform> Parts<P> {
    /// The hand-over, once netdom is built (and its undo log committed).
    pub fn into_handed(self, domid: u16, nic: Device) -> Handed<P> {
        let handed = self.handed.expect("the command line was made");
        let relay_port = self.offered.as_ref().map(|o| o.port);
        Handed {
            domid,
            nic,
            snapshot: self.snapshot,
            gref: handed.gref,
            relay: self.relay,
            relay_grefs: self.offered.map_or(Vec::new(), |o| o.grefs.to_vec()),
            relay_port,
            pirqs: handed.pirqs,
            quiesced: false,
            msix: self.msix,
            words: self.words,
        }
    }
}

/// Unmaps the domain's pirqs while it still exists (crashed or not, but
/// not destroyed: Xen unbinds a pirq it still has bound; after the
/// destroy Xen frees them only at the domain's final, deferred teardown,
/// and the MSI-X table could not be released until then).
pub fn quiesce<P: Platform>(pf: &mut P, handed: &mut Handed<P>) {
    if core::mem::replace(&mut handed.quiesced, true) {
        return;
    }
    for &pirq in &handed.pirqs {
        if let Err(e) = pf.unmap_pirq(handed.domid, pirq) {
            error!("unmap pirq {pirq} of domid {}: {e}", handed.domid);
        }
    }
}

/// Takes the NIC back from a domain that is already destroyed (it died and
/// dom0 tore it down): bus mastering off, the device reset, the
/// snapshot's and the relay pages' grants ended, the relay port closed,
/// the MSI-X table released. Every step is tried; the first error is
/// returned.
pub fn release<P: Platform>(pf: &mut P, handed: Handed<P>) -> Result<(), BoardError<P::Error>> {
    let mut first: Option<BoardError<P::Error>> = None;
    let mut keep = |e: BoardError<P::Error>| {
        if first.is_none() {
            first = Some(e);
        }
    };
    let bdf = handed.nic.bdf;
    let (command, now, was, status) = match quiesce_device(pf, &handed.nic) {
        Ok(r) => r,
        Err(e) => {
            let command = read_command(pf, &handed.nic);
            keep(e);
            (command, command, 0, 0)
        }
    };
    if let Err(e) = pf.end_access(handed.gref) {
        keep(BoardError::Platform {
            step: Step::EndGrant,
            error: e,
        });
    }
    for &gref in &handed.relay_grefs {
        if let Err(e) = pf.end_access(gref) {
            keep(BoardError::Platform {
                step: Step::EndGrant,
                error: e,
            });
        }
    }
    if let Some(port) = handed.relay_port {
        pf.unwatch(port);
        if let Err(e) = pf.close_port(port) {
            keep(BoardError::Platform {
                step: Step::RelayPort,
                error: e,
            });
        }
    }
    drop(handed.snapshot);
    drop(handed.relay);
    if let Some(msix) = handed.msix {
        // Every entry is unmapped: Xen forgets the table and the device
        // stops signalling until the next hand-over enables it again.
        if let Err(e) = pf.release_msix(bdf) {
            keep(BoardError::Platform {
                step: Step::ReleaseMsix,
                error: e,
            });
        }
        pf.pci_write16(bdf, msix.control_offset(), msix.control & !MSIX_ENABLE);
        debug!(
            "nic {bdf}: pirqs {:?} unmapped, MSI-X table released, MSI-X disabled",
            handed.pirqs
        );
    }
    debug!(
        "nic {bdf} back from domid {}: command {command:#06x} -> {now:#06x} (bus mastering off), virtio reset (status {was:#x} -> {status:#x})",
        handed.domid
    );
    if first.is_none() && (now & BUS_MASTER != 0 || status != 0) {
        return Err(device_err(
            &handed.nic,
            DeviceError::StillLive {
                command: now,
                status,
            },
        ));
    }
    first.map_or(Ok(()), Err)
}

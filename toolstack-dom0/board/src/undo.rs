//! The undo log of multi-step work on the hypervisor.
//!
//! Each step that acquires something records how to give it back; a
//! failure at any later step undoes the recorded steps in reverse, so a
//! build or a hand-over that fails midway leaves no domain, grant, event
//! channel, pirq, MSI-X table, permission or device assignment behind, and
//! the device reset with bus mastering off. Reverse order is what Xen
//! needs: a domain's pirqs are unmapped while it still exists (after the
//! destroy Xen keeps them until the domain's final teardown and
//! `PHYSDEVOP_release_msix` answers EBUSY), the domain is destroyed before
//! the MSI-X table is released and the device reset.
//!
//! Pages are not in the log: their owner (the plan's locals) drops them
//! after the log was undone, once no grant names them.

use alloc::vec::Vec;

use log::warn;
use xcp_pci::caps::MSIX_ENABLE;
use xcp_pci::{Bdf, Device};

use crate::Platform;

/// How to give back one acquired resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Undo {
    /// A domain dom0 created: destroy it.
    Domain(u16),
    /// A dom0 event channel: close it.
    Port(u32),
    /// A port dom0's loop watches: stop.
    Watched(u32),
    /// A grant of a dom0 page: end it.
    Grant(u32),
    /// A pirq mapped for `domid`: unmap it (while `domid` exists).
    Pirq {
        /// The domain.
        domid: u16,
        /// The pirq.
        pirq: u32,
    },
    /// MSI-X enable set at `offset` (Message Control) of `bdf`: write
    /// `control` without it back.
    MsixEnabled {
        /// The device.
        bdf: Bdf,
        /// Message Control's offset.
        offset: u8,
        /// Message Control before.
        control: u16,
    },
    /// A prepared MSI-X table: release it.
    Msix(Bdf),
    /// `bdf` assigned to `domid`: deassign it.
    Assigned {
        /// The domain.
        domid: u16,
        /// The device.
        bdf: Bdf,
    },
    /// Frames `first..first+count` allowed to `domid`: revoke.
    Iomem {
        /// The domain.
        domid: u16,
        /// First frame.
        first: u64,
        /// Frames.
        count: u64,
    },
    /// Ports `first..first+count` allowed to `domid`: revoke.
    Ioport {
        /// The domain.
        domid: u16,
        /// First port.
        first: u32,
        /// Ports.
        count: u32,
    },
    /// A device dom0 prepared for hand-over: bus mastering off, reset.
    Device(Device),
}

/// Steps done so far, to undo in reverse on failure.
#[derive(Debug, Default)]
pub struct UndoLog {
    entries: Vec<Undo>,
}

impl UndoLog {
    /// An empty log.
    pub fn new() -> Self {
        UndoLog::default()
    }

    /// Records a step done.
    pub fn push(&mut self, undo: Undo) {
        self.entries.push(undo);
    }

    /// Records the steps of `other` after this log's.
    pub fn append(&mut self, other: UndoLog) {
        self.entries.extend(other.entries);
    }

    /// The steps recorded, oldest first.
    pub fn entries(&self) -> &[Undo] {
        &self.entries
    }

    /// The work succeeded: its resources now belong to what it built.
    pub fn commit(self) {}

    /// Gives back every recorded resource, newest first. Errors are
    /// logged: each step is tried regardless.
    pub fn undo<P: Platform>(self, pf: &mut P) {
        for undo in self.entries.into_iter().rev() {
            undo_one(pf, undo);
        }
    }

    /// Runs `work` on a fresh log: commits it if `work` succeeds, undoes
    /// every step it recorded if it fails.
    pub fn run<P: Platform, T, E>(
        pf: &mut P,
        work: impl FnOnce(&mut P, &mut UndoLog) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut log = UndoLog::new();
        match work(pf, &mut log) {
            Ok(done) => {
                log.commit();
                Ok(done)
            }
            Err(e) => {
                log.undo(pf);
                Err(e)
            }
        }
    }
}

fn undo_one<P: Platform>(pf: &mut P, undo: Undo) {
    match undo {
        Undo::Domain(domid) => {
            if let Err(e) = pf.destroy_domain(domid) {
                warn!("undo: destroy domid {domid}: {e}");
            }
        }
        Undo::Port(port) => {
            if let Err(e) = pf.close_port(port) {
                warn!("undo: close port {port}: {e}");
            }
        }
        Undo::Watched(port) => pf.unwatch(port),
        Undo::Grant(gref) => {
            if let Err(e) = pf.end_access(gref) {
                warn!("undo: end grant {gref}: {e}");
            }
        }
        Undo::Pirq { domid, pirq } => {
            if let Err(e) = pf.unmap_pirq(domid, pirq) {
                warn!("undo: unmap pirq {pirq} of domid {domid}: {e}");
            }
        }
        Undo::MsixEnabled {
            bdf,
            offset,
            control,
        } => pf.pci_write16(bdf, offset, control & !MSIX_ENABLE),
        Undo::Msix(bdf) => {
            if let Err(e) = pf.release_msix(bdf) {
                warn!("undo: release the MSI-X table of {bdf}: {e}");
            }
        }
        Undo::Assigned { domid, bdf } => {
            if let Err(e) = pf.deassign_pci(domid, bdf) {
                warn!("undo: deassign {bdf} from domid {domid}: {e}");
            }
        }
        Undo::Iomem {
            domid,
            first,
            count,
        } => {
            if let Err(e) = pf.iomem_permission(domid, first, count, false) {
                warn!("undo: iomem {first:#x}+{count} of domid {domid}: {e}");
            }
        }
        Undo::Ioport {
            domid,
            first,
            count,
        } => {
            if let Err(e) = pf.ioport_permission(domid, first, count, false) {
                warn!("undo: ioports {first:#x}+{count} of domid {domid}: {e}");
            }
        }
        Undo::Device(nic) => {
            if let Err(e) = crate::nic::quiesce_device(pf, &nic) {
                warn!("undo: nic {}: {e}", nic.bdf);
            }
        }
    }
}

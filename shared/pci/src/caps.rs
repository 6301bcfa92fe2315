//! Two capabilities a driver domain's interrupts need: MSI-X (where its
//! table is, how many entries) and virtio's vendor capabilities (where the
//! common configuration structure is), read over any [`ConfigAccess`],
//! including [`Snapshot`], a copied config space.
//!
//! Read first: PCI Local Bus Specification 3.0 §6.8.2 (MSI-X capability
//! and table structure); virtio 1.2 §4.1.4 ("Virtio Structure PCI
//! Capabilities"). Every field is device-supplied: BAR indexes are checked.

use alloc::vec::Vec;

use crate::{read16, read8, Bdf, ConfigAccess, CAP_MSIX, CAP_VENDOR};

/// Message Control bit: MSI-X enable.
pub const MSIX_ENABLE: u16 = 1 << 15;
/// Message Control bit: function mask (every vector masked).
pub const MSIX_MASKALL: u16 = 1 << 14;
/// Bytes per MSI-X table entry.
pub const MSIX_ENTRY_BYTES: u32 = 16;
/// `cfg_type` of the virtio common configuration structure.
pub const VIRTIO_PCI_CAP_COMMON_CFG: u8 = 1;

/// The MSI-X capability of a function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Msix {
    /// Offset of the capability in config space (Message Control is at
    /// `offset + 2`).
    pub offset: u8,
    /// Message Control as read.
    pub control: u16,
    /// Number of table entries (1..=2048).
    pub table_size: u16,
    /// BAR holding the table (BIR, 0..6).
    pub table_bar: u8,
    /// Offset of the table in that BAR.
    pub table_offset: u32,
    /// BAR holding the pending-bit array.
    pub pba_bar: u8,
    /// Offset of the pending-bit array in that BAR.
    pub pba_offset: u32,
}

impl Msix {
    /// Offset of Message Control in config space.
    pub fn control_offset(&self) -> u8 {
        self.offset + 2
    }
}

/// One virtio vendor capability (`struct virtio_pci_cap`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtioCap {
    /// Offset of the capability in config space.
    pub at: u8,
    /// `cfg_type` (`VIRTIO_PCI_CAP_*`).
    pub cfg_type: u8,
    /// The BAR holding the structure (0..6).
    pub bar: u8,
    /// Offset of the structure in the BAR.
    pub offset: u32,
    /// Its length.
    pub length: u32,
}

/// The capability list as (id, offset), in list order (bounded, loop-safe).
pub fn capability_list(c: &mut impl ConfigAccess, bdf: Bdf) -> Vec<(u8, u8)> {
    crate::capabilities(c, bdf)
}

/// The MSI-X capability, if the function has a well-formed one.
pub fn msix(c: &mut impl ConfigAccess, bdf: Bdf) -> Option<Msix> {
    let (_, at) = capability_list(c, bdf)
        .into_iter()
        .find(|&(id, _)| id == CAP_MSIX)?;
    // The capability is 12 bytes; offsets are below 0xfc by the walk.
    if at > 0xf4 {
        return None;
    }
    let control = read16(c, bdf, at + 2);
    let table = c.read32(bdf, at + 4);
    let pba = c.read32(bdf, at + 8);
    let (table_bar, pba_bar) = ((table & 7) as u8, (pba & 7) as u8);
    if table_bar > 5 || pba_bar > 5 {
        return None;
    }
    Some(Msix {
        offset: at,
        control,
        table_size: (control & 0x7ff) + 1,
        table_bar,
        table_offset: table & !7,
        pba_bar,
        pba_offset: pba & !7,
    })
}

/// Every virtio vendor capability with a valid BAR index.
pub fn virtio_caps(c: &mut impl ConfigAccess, bdf: Bdf) -> Vec<VirtioCap> {
    capability_list(c, bdf)
        .into_iter()
        .filter(|&(id, at)| id == CAP_VENDOR && at <= 0xf0)
        .filter_map(|(_, at)| {
            let cap = VirtioCap {
                at,
                cfg_type: read8(c, bdf, at + 3),
                bar: read8(c, bdf, at + 4),
                offset: c.read32(bdf, at + 8),
                length: c.read32(bdf, at + 12),
            };
            // cap_len must cover offset and length (16 bytes).
            (cap.bar <= 5 && read8(c, bdf, at + 2) >= 16).then_some(cap)
        })
        .collect()
}

/// A copied 256-byte config space as a [`ConfigAccess`] for one function:
/// reads come from the copy (any other function reads as absent), writes
/// are dropped.
pub struct Snapshot<'a> {
    /// The function the bytes belong to.
    pub bdf: Bdf,
    /// The copied config space.
    pub bytes: &'a [u8; 256],
}

impl ConfigAccess for Snapshot<'_> {
    fn read32(&mut self, bdf: Bdf, offset: u8) -> u32 {
        if bdf != self.bdf {
            return 0xffff_ffff;
        }
        let at = usize::from(offset & 0xfc);
        let mut word = [0u8; 4];
        word.copy_from_slice(&self.bytes[at..at + 4]);
        u32::from_le_bytes(word)
    }

    fn write32(&mut self, _: Bdf, _: u8, _: u32) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    const NIC: Bdf = Bdf {
        bus: 0,
        dev: 5,
        func: 0,
    };

    fn put(bytes: &mut [u8; 256], at: usize, value: &[u8]) {
        bytes[at..at + value.len()].copy_from_slice(value);
    }

    fn virtio_cap(bytes: &mut [u8; 256], at: u8, next: u8, cfg_type: u8, bar: u8, offset: u32) {
        let at = usize::from(at);
        put(bytes, at, &[CAP_VENDOR, next, 16, cfg_type, bar, 0, 0, 0]);
        put(bytes, at + 8, &offset.to_le_bytes());
        put(bytes, at + 12, &0x1000u32.to_le_bytes());
    }

    /// Laid out as QEMU 7.2's virtio-net-pci (transitional): MSI-X at 0x98
    /// (4 entries, table at BAR1+0, PBA at BAR1+0x800), virtio
    /// capabilities at 0x84..0x40, common config in BAR4 at 0.
    fn qemu_virtio_net() -> [u8; 256] {
        let mut b = [0u8; 256];
        put(&mut b, 0, &[0xf4, 0x1a, 0x00, 0x10]);
        put(&mut b, 6, &[0x10, 0x00]); // status: capability list
        b[0x34] = 0x98;
        put(&mut b, 0x98, &[CAP_MSIX, 0x84, 0x03, 0x00]);
        put(&mut b, 0x9c, &1u32.to_le_bytes());
        put(&mut b, 0xa0, &(0x800u32 | 1).to_le_bytes());
        virtio_cap(&mut b, 0x84, 0x70, 5, 0, 0);
        virtio_cap(&mut b, 0x70, 0x60, 4, 4, 0x3000);
        virtio_cap(&mut b, 0x60, 0x50, 3, 4, 0x2000);
        virtio_cap(&mut b, 0x50, 0x40, 2, 4, 0x1000);
        virtio_cap(&mut b, 0x40, 0x00, VIRTIO_PCI_CAP_COMMON_CFG, 4, 0);
        b
    }

    #[test]
    fn finds_msix_and_the_common_config() {
        let bytes = qemu_virtio_net();
        let mut snap = Snapshot {
            bdf: NIC,
            bytes: &bytes,
        };
        assert_eq!(
            msix(&mut snap, NIC),
            Some(Msix {
                offset: 0x98,
                control: 3,
                table_size: 4,
                table_bar: 1,
                table_offset: 0,
                pba_bar: 1,
                pba_offset: 0x800,
            })
        );
        let caps = virtio_caps(&mut snap, NIC);
        assert_eq!(caps.len(), 5);
        let common = caps
            .iter()
            .find(|c| c.cfg_type == VIRTIO_PCI_CAP_COMMON_CFG)
            .unwrap();
        assert_eq!((common.bar, common.offset, common.at), (4, 0, 0x40));
        // Another function reads as absent.
        let other = Bdf { dev: 6, ..NIC };
        assert_eq!(msix(&mut snap, other), None);
    }

    #[test]
    fn refuses_bad_bar_indexes_and_short_caps() {
        let mut bytes = qemu_virtio_net();
        put(&mut bytes, 0x9c, &6u32.to_le_bytes());
        bytes[0x40 + 4] = 7;
        bytes[0x50 + 2] = 8;
        let mut snap = Snapshot {
            bdf: NIC,
            bytes: &bytes,
        };
        assert_eq!(msix(&mut snap, NIC), None);
        let caps = virtio_caps(&mut snap, NIC);
        assert_eq!(caps.len(), 3);
        assert!(caps
            .iter()
            .all(|c| c.cfg_type != VIRTIO_PCI_CAP_COMMON_CFG && c.cfg_type != 2));
    }

    #[test]
    fn no_capability_list() {
        let mut bytes = qemu_virtio_net();
        bytes[6] = 0;
        let mut snap = Snapshot {
            bdf: NIC,
            bytes: &bytes,
        };
        assert_eq!(msix(&mut snap, NIC), None);
        assert!(virtio_caps(&mut snap, NIC).is_empty());
    }
}

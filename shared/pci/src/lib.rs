//! PCI configuration space, pure: enumeration of bus 0, header fields, BARs
//! and the capability list, over a small [`ConfigAccess`] trait that dom0
//! implements with port I/O (and later netdom with a mediated channel).
//!
//! Read first: the PCI Local Bus Specification 3.0, chapter 6 (type 0
//! header, BARs, capability list). Every value read from a device is
//! untrusted: capability walks are bounded and loop-safe, BAR indexes and
//! offsets are checked.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec::Vec;

pub mod caps;

/// Bus, device, function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bdf {
    /// Bus number.
    pub bus: u8,
    /// Device number (0..32).
    pub dev: u8,
    /// Function number (0..8).
    pub func: u8,
}

impl Bdf {
    /// `dev << 3 | func`, as Xen's domctls and PHYSDEVOPs take it.
    pub fn devfn(&self) -> u8 {
        (self.dev << 3) | self.func
    }
}

impl core::fmt::Display for Bdf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "0000:{:02x}:{:02x}.{}", self.bus, self.dev, self.func)
    }
}

/// Reads and writes 32-bit configuration words (offset is dword-aligned,
/// below 256).
pub trait ConfigAccess {
    /// Reads the dword at `offset`.
    fn read32(&mut self, bdf: Bdf, offset: u8) -> u32;
    /// Writes the dword at `offset`.
    fn write32(&mut self, bdf: Bdf, offset: u8, value: u32);
}

/// Vendor id of virtio devices.
pub const VIRTIO_VENDOR: u16 = 0x1af4;
/// Capability id of MSI-X.
pub const CAP_MSIX: u8 = 0x11;
/// Capability id of vendor-specific capabilities (virtio uses them).
pub const CAP_VENDOR: u8 = 0x09;

/// A base address register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bar {
    /// Memory space at `base`, `size` bytes.
    Memory {
        /// Bus address.
        base: u64,
        /// Size in bytes.
        size: u64,
        /// 64-bit BAR (uses the next slot too).
        wide: bool,
    },
    /// I/O space at `base`, `size` ports.
    Io {
        /// First port.
        base: u32,
        /// Number of ports.
        size: u32,
    },
}

/// What enumeration found at one function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// Where.
    pub bdf: Bdf,
    /// Vendor id.
    pub vendor: u16,
    /// Device id.
    pub device: u16,
    /// Class, subclass, prog-if.
    pub class: [u8; 3],
    /// BARs 0..6 of a type-0 header (None: unused or the upper half of a
    /// 64-bit BAR).
    pub bars: [Option<Bar>; 6],
    /// Capabilities: (id, offset), in list order.
    pub capabilities: Vec<(u8, u8)>,
}

impl Device {
    /// A short name for known devices.
    pub fn name(&self) -> &'static str {
        match (self.vendor, self.device) {
            (VIRTIO_VENDOR, 0x1000 | 0x1041) => "virtio-net",
            (VIRTIO_VENDOR, 0x1001 | 0x1042) => "virtio-blk",
            (VIRTIO_VENDOR, _) => "virtio",
            _ => match self.class[0] {
                0x01 => "storage controller",
                0x02 => "network controller",
                0x03 => "display controller",
                0x06 => "bridge",
                0x0c => "serial bus controller",
                _ => "device",
            },
        }
    }

    /// True for a virtio network device.
    pub fn is_virtio_net(&self) -> bool {
        self.vendor == VIRTIO_VENDOR && matches!(self.device, 0x1000 | 0x1041)
    }

    /// True for a virtio block device.
    pub fn is_virtio_blk(&self) -> bool {
        self.vendor == VIRTIO_VENDOR && matches!(self.device, 0x1001 | 0x1042)
    }
}

/// Longest capability list walked (a looping list ends here).
const MAX_CAPS: usize = 48;

fn read16(c: &mut impl ConfigAccess, bdf: Bdf, offset: u8) -> u16 {
    let word = c.read32(bdf, offset & !3);
    (word >> ((offset & 2) * 8)) as u16
}

fn read8(c: &mut impl ConfigAccess, bdf: Bdf, offset: u8) -> u8 {
    let word = c.read32(bdf, offset & !3);
    (word >> ((offset & 3) * 8)) as u8
}

/// Sizes a BAR the standard way (write all ones, read back, restore).
fn bars(c: &mut impl ConfigAccess, bdf: Bdf) -> [Option<Bar>; 6] {
    let mut out = [None; 6];
    let mut i = 0;
    while i < 6 {
        let offset = 0x10 + 4 * i as u8;
        let original = c.read32(bdf, offset);
        c.write32(bdf, offset, 0xffff_ffff);
        let mask = c.read32(bdf, offset);
        c.write32(bdf, offset, original);
        if original & 1 == 1 {
            let size = (!(mask & !3)).wrapping_add(1) & 0xffff;
            if mask != 0 && size != 0 {
                out[i] = Some(Bar::Io {
                    base: original & !3,
                    size,
                });
            }
            i += 1;
            continue;
        }
        let wide = (original >> 1) & 3 == 2;
        let mut base = u64::from(original & !0xf);
        let mut size_mask = u64::from(mask & !0xf);
        if wide && i < 5 {
            let high_offset = offset + 4;
            let high = c.read32(bdf, high_offset);
            c.write32(bdf, high_offset, 0xffff_ffff);
            let high_mask = c.read32(bdf, high_offset);
            c.write32(bdf, high_offset, high);
            base |= u64::from(high) << 32;
            size_mask |= u64::from(high_mask) << 32;
        } else {
            size_mask |= 0xffff_ffff_0000_0000;
        }
        let size = (!size_mask).wrapping_add(1);
        if mask != 0 && size != 0 {
            out[i] = Some(Bar::Memory { base, size, wide });
        }
        i += if wide { 2 } else { 1 };
    }
    out
}

fn capabilities(c: &mut impl ConfigAccess, bdf: Bdf) -> Vec<(u8, u8)> {
    let status = read16(c, bdf, 0x06);
    let mut caps = Vec::new();
    if status & (1 << 4) == 0 {
        return caps;
    }
    let mut next = read8(c, bdf, 0x34) & !3;
    while next >= 0x40 && caps.len() < MAX_CAPS {
        if caps.iter().any(|&(_, at)| at == next) {
            break;
        }
        let id = read8(c, bdf, next);
        caps.push((id, next));
        next = read8(c, bdf, next + 1) & !3;
    }
    caps
}

/// Reads one function, if present.
pub fn probe(c: &mut impl ConfigAccess, bdf: Bdf) -> Option<Device> {
    let id = c.read32(bdf, 0);
    let vendor = id as u16;
    if vendor == 0xffff || vendor == 0 {
        return None;
    }
    let class = c.read32(bdf, 0x08);
    let header_type = read8(c, bdf, 0x0e) & 0x7f;
    let bars = if header_type == 0 {
        bars(c, bdf)
    } else {
        [None; 6]
    };
    Some(Device {
        bdf,
        vendor,
        device: (id >> 16) as u16,
        class: [(class >> 24) as u8, (class >> 16) as u8, (class >> 8) as u8],
        bars,
        capabilities: capabilities(c, bdf),
    })
}

/// Every function on `bus`.
pub fn enumerate_bus(c: &mut impl ConfigAccess, bus: u8) -> Vec<Device> {
    let mut found = Vec::new();
    for dev in 0..32 {
        let Some(first) = probe(c, Bdf { bus, dev, func: 0 }) else {
            continue;
        };
        let multi = read8(c, first.bdf, 0x0e) & 0x80 != 0;
        found.push(first);
        if multi {
            for func in 1..8 {
                if let Some(d) = probe(c, Bdf { bus, dev, func }) {
                    found.push(d);
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests;

//! A fake configuration space with a q35-like bus: host bridge, a virtio-net
//! with a 64-bit memory BAR and an I/O BAR, and capabilities.

use super::*;
use alloc::collections::BTreeMap;
use proptest::prelude::*;

#[derive(Default)]
struct Fake {
    space: BTreeMap<(Bdf, u8), u32>,
    /// BAR size masks: writes of all ones read back as the mask.
    masks: BTreeMap<(Bdf, u8), u32>,
    sizing: BTreeMap<(Bdf, u8), bool>,
}

impl ConfigAccess for Fake {
    fn read32(&mut self, bdf: Bdf, offset: u8) -> u32 {
        if self.sizing.get(&(bdf, offset)).copied().unwrap_or(false) {
            return self.masks.get(&(bdf, offset)).copied().unwrap_or(0);
        }
        self.space
            .get(&(bdf, offset))
            .copied()
            .unwrap_or(if offset == 0 { 0xffff_ffff } else { 0 })
    }

    fn write32(&mut self, bdf: Bdf, offset: u8, value: u32) {
        if (0x10..0x28).contains(&offset) {
            self.sizing.insert((bdf, offset), value == 0xffff_ffff);
            if value != 0xffff_ffff {
                self.space.insert((bdf, offset), value);
            }
        }
    }
}

fn bdf(dev: u8) -> Bdf {
    Bdf {
        bus: 0,
        dev,
        func: 0,
    }
}

fn q35() -> Fake {
    let mut f = Fake::default();
    f.space.insert((bdf(0), 0), 0x29c0_8086);
    f.space.insert((bdf(0), 8), 0x0600_0000);
    let nic = bdf(5);
    f.space.insert((nic, 0), 0x1041_1af4);
    f.space.insert((nic, 4), 0x0010_0000); // status: capability list
    f.space.insert((nic, 8), 0x0200_0001);
    f.space.insert((nic, 0x10), 0x0000_c001); // I/O BAR, 32 ports
    f.masks.insert((nic, 0x10), 0xffff_ffe1);
    f.space.insert((nic, 0x20), 0xfe00_000c); // 64-bit prefetchable memory
    f.masks.insert((nic, 0x20), 0xffff_c00c);
    f.space.insert((nic, 0x24), 0x0000_0000);
    f.masks.insert((nic, 0x24), 0xffff_ffff);
    f.space.insert((nic, 0x34), 0x40);
    f.space.insert((nic, 0x40), 0x0000_5011); // MSI-X, next 0x50
    f.space.insert((nic, 0x50), 0x0000_0009); // vendor, end
    f
}

#[test]
fn enumerates_and_decodes_a_virtio_nic() {
    let mut f = q35();
    let devices = enumerate_bus(&mut f, 0);
    assert_eq!(devices.len(), 2);
    let nic = &devices[1];
    assert!(nic.is_virtio_net());
    assert_eq!(nic.name(), "virtio-net");
    assert_eq!(alloc::format!("{}", nic.bdf), "0000:00:05.0");
    assert_eq!(nic.bdf.devfn(), 0x28);
    assert_eq!(
        nic.bars[0],
        Some(Bar::Io {
            base: 0xc000,
            size: 32
        })
    );
    assert_eq!(
        nic.bars[4],
        Some(Bar::Memory {
            base: 0xfe00_0000,
            size: 0x4000,
            wide: true
        })
    );
    assert_eq!(nic.bars[5], None, "upper half of the 64-bit BAR");
    assert_eq!(nic.capabilities, [(CAP_MSIX, 0x40), (CAP_VENDOR, 0x50)]);
    assert_eq!(devices[0].name(), "bridge");
    // Sizing restored the BARs.
    assert_eq!(f.read32(bdf(5), 0x20), 0xfe00_000c);
}

#[test]
fn looping_capability_lists_end() {
    let mut f = q35();
    f.space.insert((bdf(5), 0x50), 0x0000_4009); // points back to 0x40
    let d = probe(&mut f, bdf(5)).unwrap();
    assert_eq!(d.capabilities.len(), 2);
}

proptest! {
    #[test]
    fn any_config_space_is_safe(words in proptest::collection::vec(any::<u32>(), 64)) {
        let mut f = Fake::default();
        for (i, w) in words.iter().enumerate() {
            f.space.insert((bdf(3), (i * 4) as u8), *w);
        }
        let _ = probe(&mut f, bdf(3));
    }
}

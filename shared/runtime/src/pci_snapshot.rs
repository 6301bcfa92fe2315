//! A passed-through device's config space as a service domain sees it: a
//! read-only snapshot dom0 took, behind a shadow that plays BAR sizing.
//!
//! Read first: the PCI Local Bus Spec 3.0 §6.1-6.2.5 (type-0 header, BAR
//! sizing), netdom/DESIGN.md ("Config space"). Service domains never reach
//! ports 0xCF8/0xCFC. dom0 enables memory decoding and bus mastering, then
//! grants the domain a page holding the device's 256-byte config space and
//! names each BAR's size on its command line (`pci-bars=`). Drivers read
//! the snapshot; of their writes only these are accepted, and none reaches
//! the device:
//!
//! - BAR sizing (write all-ones, read the size mask, write the old value
//!   back), played from the sizes dom0 gave: BARs cannot move.
//! - Command-register writes that change nothing but the I/O and memory
//!   decode bits (drivers clear them around BAR sizing). Since sizing never
//!   reaches the device, its decoding stays on; the shadow only remembers
//!   the value so reads agree with what the driver wrote.
//!
//! Everything else (bus mastering off, INTx, MSI/MSI-X control, any other
//! register) is refused and reported as [`WriteOutcome::Refused`] for the
//! caller to log. Pure; tested on the host.

use alloc::string::String;

/// Bytes of a conventional config space.
pub const CONFIG_BYTES: usize = 256;
/// The command register.
pub const COMMAND: u8 = 0x04;
/// The first BAR register.
pub const BAR0: u8 = 0x10;
/// Command bits: I/O space and memory space decoding.
pub const DECODE_BITS: u16 = 0x3;
/// Command bit: bus mastering (the device may DMA).
pub const BUS_MASTER: u16 = 0x4;

/// What the shadow did with a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// All-ones to a BAR: it reads back the size mask until restored.
    BarSizing {
        /// Index of the BAR register (0..6).
        bar: u8,
    },
    /// A BAR written back to its snapshot value.
    BarRestored {
        /// Index of the BAR register (0..6).
        bar: u8,
    },
    /// Only the decode bits changed: remembered, the device untouched.
    DecodeToggle {
        /// The command value reads now return.
        command: u16,
    },
    /// Not allowed: nothing changed.
    Refused,
}

/// Why a snapshot cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotError {
    /// Vendor id 0xffff: no function there.
    NoDevice,
    /// Not a type-0 (endpoint) header.
    NotType0(u8),
    /// A BAR size that is not a power of two at least the BAR's minimum, or
    /// a size given for the upper half of a 64-bit BAR.
    BadBarSize(u8),
}

/// The shadow over one function's snapshot.
#[derive(Clone, Debug)]
pub struct ConfigShadow {
    bytes: [u8; CONFIG_BYTES],
    sizes: [u64; 6],
    /// `upper_of[r] = Some(l)`: register r is the upper half of 64-bit BAR l.
    upper_of: [Option<u8>; 6],
    sizing: [bool; 6],
    command: u16,
}

impl ConfigShadow {
    /// Checks `bytes` (as dom0 read them) and `sizes` (per BAR register,
    /// 0 for unused BARs and upper halves).
    pub fn new(bytes: [u8; CONFIG_BYTES], sizes: [u64; 6]) -> Result<Self, SnapshotError> {
        let dword =
            |o: usize| u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
        if dword(0) & 0xffff == 0xffff {
            return Err(SnapshotError::NoDevice);
        }
        let header = bytes[0x0e] & 0x7f;
        if header != 0 {
            return Err(SnapshotError::NotType0(header));
        }
        let mut upper_of = [None; 6];
        let mut r = 0;
        while r < 6 {
            let bar = dword(usize::from(BAR0) + 4 * r);
            let size = sizes[r];
            let io = bar & 1 == 1;
            let wide = !io && bar & 0b110 == 0b100;
            let min = if io { 4 } else { 16 };
            if size != 0 && (!size.is_power_of_two() || size < min) {
                return Err(SnapshotError::BadBarSize(r as u8));
            }
            if wide {
                if r == 5 {
                    return Err(SnapshotError::BadBarSize(5));
                }
                if sizes[r + 1] != 0 {
                    return Err(SnapshotError::BadBarSize(r as u8 + 1));
                }
                upper_of[r + 1] = Some(r as u8);
                r += 2;
            } else {
                r += 1;
            }
        }
        let command = u16::from_le_bytes([bytes[4], bytes[5]]);
        Ok(ConfigShadow {
            bytes,
            sizes,
            upper_of,
            sizing: [false; 6],
            command,
        })
    }

    fn snapshot_dword(&self, offset: u8) -> u32 {
        let o = usize::from(offset & 0xfc);
        u32::from_le_bytes([
            self.bytes[o],
            self.bytes[o + 1],
            self.bytes[o + 2],
            self.bytes[o + 3],
        ])
    }

    fn bar_register(offset: u8) -> Option<usize> {
        let o = offset & 0xfc;
        (BAR0..BAR0 + 24)
            .contains(&o)
            .then(|| usize::from((o - BAR0) / 4))
    }

    /// The size mask BAR register `r` reads while being sized.
    fn size_mask(&self, r: usize) -> u32 {
        if let Some(lower) = self.upper_of[r] {
            let size = self.sizes[usize::from(lower)];
            return if size == 0 {
                0
            } else {
                ((!(size - 1)) >> 32) as u32
            };
        }
        let size = self.sizes[r];
        if size == 0 {
            return 0;
        }
        let orig = self.snapshot_dword(BAR0 + 4 * r as u8);
        let flags = if orig & 1 == 1 { 0x3 } else { 0xf };
        (!(size - 1) as u32 & !flags) | (orig & flags)
    }

    /// Reads the dword at `offset` (rounded down to a multiple of 4).
    pub fn read32(&self, offset: u8) -> u32 {
        let o = offset & 0xfc;
        if o == COMMAND {
            return (self.snapshot_dword(o) & 0xffff_0000) | u32::from(self.command);
        }
        match Self::bar_register(o) {
            Some(r) if self.sizing[r] => self.size_mask(r),
            _ => self.snapshot_dword(o),
        }
    }

    /// Applies the policy to a dword write at `offset`.
    pub fn write32(&mut self, offset: u8, value: u32) -> WriteOutcome {
        let o = offset & 0xfc;
        if o == COMMAND {
            let original = u16::from_le_bytes([self.bytes[4], self.bytes[5]]);
            let command = value as u16;
            if (command ^ original) & !DECODE_BITS != 0 {
                return WriteOutcome::Refused;
            }
            self.command = command;
            return WriteOutcome::DecodeToggle { command };
        }
        let Some(r) = Self::bar_register(o) else {
            return WriteOutcome::Refused;
        };
        if value == u32::MAX {
            self.sizing[r] = true;
            WriteOutcome::BarSizing { bar: r as u8 }
        } else if value == self.snapshot_dword(o) {
            self.sizing[r] = false;
            WriteOutcome::BarRestored { bar: r as u8 }
        } else {
            WriteOutcome::Refused
        }
    }

    /// The command register as dom0 left it.
    pub fn device_command(&self) -> u16 {
        u16::from_le_bytes([self.bytes[4], self.bytes[5]])
    }

    /// The snapshot's bytes.
    pub fn bytes(&self) -> &[u8; CONFIG_BYTES] {
        &self.bytes
    }
}

/// `pci-bars=` as dom0 writes it: six sizes in hex, comma-separated.
pub fn format_bar_sizes(sizes: &[u64; 6]) -> String {
    let mut s = String::new();
    for (i, size) in sizes.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&alloc::format!("{size:x}"));
    }
    s
}

/// Parses [`format_bar_sizes`]'s text (None unless exactly six hex sizes).
pub fn parse_bar_sizes(text: &str) -> Option<[u64; 6]> {
    let mut sizes = [0u64; 6];
    let mut parts = text.split(',');
    for size in sizes.iter_mut() {
        *size = u64::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(sizes)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// QEMU's transitional virtio-net (1af4:1000) as SeaBIOS leaves it:
    /// BAR0 I/O 0xc000 (32 ports), BAR1 memory 0xfebd1000 (4 KiB, MSI-X),
    /// BAR4 64-bit prefetchable 0xfe000000 (16 KiB), command = I/O + memory
    /// + bus master.
    pub(crate) fn virtio_net() -> ([u8; CONFIG_BYTES], [u64; 6]) {
        let mut b = [0u8; CONFIG_BYTES];
        let mut put = |o: usize, v: u32| b[o..o + 4].copy_from_slice(&v.to_le_bytes());
        put(0x00, 0x1000_1af4);
        put(0x04, 0x0010_0007);
        put(0x08, 0x0200_0000);
        put(0x10, 0x0000_c001);
        put(0x14, 0xfebd_1000);
        put(0x20, 0xfe00_000c);
        put(0x24, 0x0000_0000);
        put(0x2c, 0x0001_1af4);
        put(0x34, 0x0000_0098);
        (b, [0x20, 0x1000, 0, 0, 0x4000, 0])
    }

    fn shadow() -> ConfigShadow {
        let (b, s) = virtio_net();
        ConfigShadow::new(b, s).unwrap()
    }

    #[test]
    fn reads_come_from_the_snapshot() {
        let s = shadow();
        assert_eq!(s.read32(0), 0x1000_1af4);
        assert_eq!(s.read32(0x2e), 0x0001_1af4);
        assert_eq!(s.read32(0x14), 0xfebd_1000);
        assert_eq!(s.device_command(), 7);
    }

    #[test]
    fn bar_sizing_is_played_from_the_given_sizes_and_restored() {
        let mut s = shadow();
        // 32-bit memory BAR1, 4 KiB.
        assert_eq!(
            s.write32(0x14, u32::MAX),
            WriteOutcome::BarSizing { bar: 1 }
        );
        assert_eq!(s.read32(0x14), 0xffff_f000);
        assert_eq!(
            s.write32(0x14, 0xfebd_1000),
            WriteOutcome::BarRestored { bar: 1 }
        );
        assert_eq!(s.read32(0x14), 0xfebd_1000);
        // I/O BAR0, 32 ports: flag bits kept.
        s.write32(0x10, u32::MAX);
        assert_eq!(s.read32(0x10), 0xffff_ffe1);
        // 64-bit BAR4, 16 KiB: low half keeps the type bits, high is all ones.
        s.write32(0x20, u32::MAX);
        s.write32(0x24, u32::MAX);
        assert_eq!(s.read32(0x20), 0xffff_c00c);
        assert_eq!(s.read32(0x24), 0xffff_ffff);
        assert_eq!(s.write32(0x24, 0), WriteOutcome::BarRestored { bar: 5 });
        assert_eq!(s.read32(0x24), 0);
        // An unused BAR sizes as zero.
        s.write32(0x18, u32::MAX);
        assert_eq!(s.read32(0x18), 0);
    }

    #[test]
    fn bars_cannot_move() {
        let mut s = shadow();
        assert_eq!(s.write32(0x14, 0x1234_0000), WriteOutcome::Refused);
        assert_eq!(s.read32(0x14), 0xfebd_1000);
    }

    #[test]
    fn only_decode_bits_of_the_command_register_are_accepted() {
        let mut s = shadow();
        assert_eq!(
            s.write32(COMMAND, 0x0000_0004),
            WriteOutcome::DecodeToggle { command: 4 }
        );
        assert_eq!(
            s.read32(COMMAND),
            0x0010_0004,
            "status stays the snapshot's"
        );
        assert_eq!(
            s.write32(COMMAND, 7),
            WriteOutcome::DecodeToggle { command: 7 }
        );
        // Bus mastering off, INTx disable on: refused.
        assert_eq!(s.write32(COMMAND, 3), WriteOutcome::Refused);
        assert_eq!(s.write32(COMMAND, 0x407), WriteOutcome::Refused);
        assert_eq!(s.read32(COMMAND) & 0xffff, 7);
        assert_eq!(s.device_command(), 7);
    }

    #[test]
    fn other_writes_are_refused() {
        let mut s = shadow();
        for offset in [0x00, 0x08, 0x0c, 0x2c, 0x30, 0x3c, 0x98, 0xfc] {
            assert_eq!(s.write32(offset, 0), WriteOutcome::Refused, "{offset:#x}");
        }
        // MSI-X enable / function mask in Message Control (the capability
        // at 0x98): dom0 and Xen own them, netdom's writes never reach them.
        for control in [0x8003u32, 0x4003, 0x0003] {
            let dword = (control << 16) | 0x8411;
            assert_eq!(s.write32(0x98, dword), WriteOutcome::Refused);
        }
        assert_eq!(s.bytes(), &virtio_net().0);
    }

    #[test]
    fn bad_snapshots_and_sizes_are_rejected() {
        let (b, sizes) = virtio_net();
        let mut none = b;
        none[0] = 0xff;
        none[1] = 0xff;
        assert_eq!(
            ConfigShadow::new(none, sizes).unwrap_err(),
            SnapshotError::NoDevice
        );
        let mut bridge = b;
        bridge[0x0e] = 0x81;
        assert_eq!(
            ConfigShadow::new(bridge, sizes).unwrap_err(),
            SnapshotError::NotType0(1)
        );
        let mut odd = sizes;
        odd[1] = 0x1800;
        assert_eq!(
            ConfigShadow::new(b, odd).unwrap_err(),
            SnapshotError::BadBarSize(1)
        );
        let mut upper = sizes;
        upper[5] = 0x1000;
        assert_eq!(
            ConfigShadow::new(b, upper).unwrap_err(),
            SnapshotError::BadBarSize(5)
        );
        let mut tiny_io = sizes;
        tiny_io[0] = 2;
        assert_eq!(
            ConfigShadow::new(b, tiny_io).unwrap_err(),
            SnapshotError::BadBarSize(0)
        );
        let mut wide_last = b;
        wide_last[0x24..0x28].copy_from_slice(&0xfe00_000cu32.to_le_bytes());
        let mut s = sizes;
        s[5] = 0x4000;
        assert_eq!(
            ConfigShadow::new(wide_last, s).unwrap_err(),
            SnapshotError::BadBarSize(5)
        );
    }

    #[test]
    fn bar_sizes_round_trip_through_the_command_line() {
        let sizes = [0x20, 0x1000, 0, 0, 0x4000, 0];
        let text = format_bar_sizes(&sizes);
        assert_eq!(text, "20,1000,0,0,4000,0");
        assert_eq!(parse_bar_sizes(&text), Some(sizes));
        assert_eq!(parse_bar_sizes("20,1000,0,0,4000"), None);
        assert_eq!(parse_bar_sizes("20,1000,0,0,4000,0,0"), None);
        assert_eq!(parse_bar_sizes("20,10x0,0,0,4000,0"), None);
        assert_eq!(parse_bar_sizes(""), None);
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Any snapshot and sizes: either refused at once, or every read
            /// and write afterwards answers without panicking, and no write
            /// ever changes the snapshot's bytes or the device command.
            #[test]
            fn any_snapshot_and_writes_are_safe(
                bytes in proptest::collection::vec(any::<u8>(), CONFIG_BYTES),
                sizes in proptest::array::uniform6(prop_oneof![Just(0u64), (2u32..40).prop_map(|b| 1u64 << b)]),
                header in prop_oneof![Just(0u8), any::<u8>()],
                writes in proptest::collection::vec((any::<u8>(), any::<u32>()), 0..64),
            ) {
                let mut bytes: [u8; CONFIG_BYTES] = bytes.try_into().unwrap();
                bytes[0x0e] = header;
                if let Ok(mut s) = ConfigShadow::new(bytes, sizes) {
                    let command = s.device_command();
                    for (offset, value) in writes {
                        s.write32(offset, value);
                        s.read32(offset);
                    }
                    prop_assert_eq!(s.bytes(), &bytes);
                    prop_assert_eq!(s.device_command(), command);
                }
            }
        }
    }
}

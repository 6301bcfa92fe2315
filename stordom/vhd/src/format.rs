//! The VHD footer and dynamic disk header: typed views, parse and emit.
//!
//! read first: "Virtual Hard Disk Image Format Specification" (Microsoft,
//! 2006), "Hard Disk Footer Format" and "Dynamic Disk Header Format". All
//! fields are big-endian. [`Footer::parse`] and [`DynamicHeader::parse`]
//! check the cookie and the checksum and nothing else; what a field must
//! hold for a given use is the reader's business.

use crate::SECTOR;

/// The footer's size (`FOOTER_SIZE`); also the size of its copy at offset 0.
pub const FOOTER_SIZE: usize = 512;
/// The dynamic disk header's size.
pub const HEADER_SIZE: usize = 1024;
/// The footer's cookie.
pub const FOOTER_COOKIE: &[u8; 8] = b"conectix";
/// The dynamic disk header's cookie.
pub const HEADER_COOKIE: &[u8; 8] = b"cxsparse";
/// "File Format Version" and "Header Version": 1.0.
pub const VERSION_1_0: u32 = 0x0001_0000;
/// "Features": bit 1 is reserved and "must always be set to 1".
pub const FEATURES_RESERVED: u32 = 0x0000_0002;
/// The footer's "Data Offset" of a fixed disk, and the header's unused
/// "Data Offset".
pub const NO_OFFSET: u64 = u64::MAX;
/// A BAT entry of a block the file does not hold.
pub const BAT_UNUSED: u32 = u32::MAX;
/// The largest disk the format describes: 2040 GiB (the spec's "2040 GB",
/// the most that CHS geometry 65535 × 16 × 255 reaches, rounded).
pub const MAX_DISK_SIZE: u64 = 2040 << 30;

/// "Disk Type".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskType {
    /// 2: the data, then the footer.
    Fixed,
    /// 3: footer copy, header, BAT, blocks, footer.
    Dynamic,
    /// 4: a dynamic disk over a parent.
    Differencing,
    /// Any other value (0 "None", 1 and 5 "Reserved (deprecated)", ...).
    Unknown(u32),
}

impl DiskType {
    /// From the footer's field.
    pub fn from_u32(n: u32) -> DiskType {
        match n {
            2 => DiskType::Fixed,
            3 => DiskType::Dynamic,
            4 => DiskType::Differencing,
            n => DiskType::Unknown(n),
        }
    }

    /// To the footer's field.
    pub fn to_u32(self) -> u32 {
        match self {
            DiskType::Fixed => 2,
            DiskType::Dynamic => 3,
            DiskType::Differencing => 4,
            DiskType::Unknown(n) => n,
        }
    }
}

/// "Disk Geometry": cylinders, heads, sectors per track.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Cylinders.
    pub cylinders: u16,
    /// Heads.
    pub heads: u8,
    /// Sectors per track.
    pub sectors_per_track: u8,
}

impl Geometry {
    /// The spec's "CHS Calculation" (Appendix) for a disk of `size` bytes.
    /// Disks beyond 65535 × 16 × 255 sectors get that maximum geometry.
    pub fn for_size(size: u64) -> Geometry {
        let total = (size / SECTOR).min(65535 * 16 * 255);
        let (sectors_per_track, heads, cylinder_times_heads);
        if total >= 65535 * 16 * 63 {
            sectors_per_track = 255;
            heads = 16;
            cylinder_times_heads = total / 255;
        } else {
            let mut spt = 17;
            let mut cth = total / spt;
            let mut h = cth.div_ceil(1024).max(4);
            if cth >= h * 1024 || h > 16 {
                spt = 31;
                h = 16;
                cth = total / spt;
            }
            if cth >= h * 1024 {
                spt = 63;
                h = 16;
                cth = total / spt;
            }
            sectors_per_track = spt;
            heads = h;
            cylinder_times_heads = cth;
        }
        // Each bound holds by the branches above: heads ≤ 16, spt ≤ 255,
        // cylinders ≤ 65535 (total ≤ 65535 × 16 × 255).
        Geometry {
            cylinders: u16::try_from(cylinder_times_heads / heads).unwrap_or(u16::MAX),
            heads: u8::try_from(heads).unwrap_or(16),
            sectors_per_track: u8::try_from(sectors_per_track).unwrap_or(255),
        }
    }
}

/// The checksum of the footer and the header: "the one's complement of
/// the sum of all the bytes in the footer without the checksum field".
/// `at` is the checksum field's offset; its 4 bytes are left out.
pub fn checksum(bytes: &[u8], at: usize) -> u32 {
    let sum = bytes
        .iter()
        .enumerate()
        .filter(|(i, _)| !(at..at + 4).contains(i))
        .fold(0u32, |s, (_, &b)| s.wrapping_add(u32::from(b)));
    !sum
}

fn be32(b: &[u8], at: usize) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(a)
}

fn be64(b: &[u8], at: usize) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

/// Why a footer or header did not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Not the right cookie.
    Cookie,
    /// The checksum does not match.
    Checksum,
}

/// The hard disk footer (512 bytes; the spec's field names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footer {
    /// "Features".
    pub features: u32,
    /// "File Format Version".
    pub file_format_version: u32,
    /// "Data Offset": the dynamic header's offset, [`NO_OFFSET`] if fixed.
    pub data_offset: u64,
    /// "Time Stamp": seconds since 2000-01-01 00:00 UTC.
    pub timestamp: u32,
    /// "Creator Application".
    pub creator_application: [u8; 4],
    /// "Creator Version".
    pub creator_version: u32,
    /// "Creator Host OS".
    pub creator_host_os: [u8; 4],
    /// "Original Size" in bytes.
    pub original_size: u64,
    /// "Current Size" in bytes: the disk's virtual size.
    pub current_size: u64,
    /// "Disk Geometry".
    pub geometry: Geometry,
    /// "Disk Type".
    pub disk_type: DiskType,
    /// "Unique Id".
    pub uuid: [u8; 16],
    /// "Saved State".
    pub saved_state: u8,
}

impl Footer {
    /// The footer xcp-vhd writes for a disk of `size` bytes. The creator
    /// application is "tap\0" (XenServer's blktap): readers that take the
    /// size from the geometry for other creators (qemu does for "vpc " and
    /// "qemu") take it from `current_size` for this one, so a size that is
    /// not a CHS multiple reads back whole.
    pub fn new(disk_type: DiskType, size: u64, uuid: [u8; 16], timestamp: u32) -> Footer {
        Footer {
            features: FEATURES_RESERVED,
            file_format_version: VERSION_1_0,
            data_offset: match disk_type {
                DiskType::Fixed => NO_OFFSET,
                _ => FOOTER_SIZE as u64,
            },
            timestamp,
            creator_application: *b"tap\0",
            creator_version: 0x0001_0003,
            creator_host_os: *b"Wi2k",
            original_size: size,
            current_size: size,
            geometry: Geometry::for_size(size),
            disk_type,
            uuid,
            saved_state: 0,
        }
    }

    /// Parses 512 bytes: cookie and checksum checked.
    pub fn parse(b: &[u8; FOOTER_SIZE]) -> Result<Footer, ParseError> {
        if &b[0..8] != FOOTER_COOKIE {
            return Err(ParseError::Cookie);
        }
        if be32(b, 64) != checksum(b, 64) {
            return Err(ParseError::Checksum);
        }
        let mut creator_application = [0; 4];
        creator_application.copy_from_slice(&b[28..32]);
        let mut creator_host_os = [0; 4];
        creator_host_os.copy_from_slice(&b[36..40]);
        let mut uuid = [0; 16];
        uuid.copy_from_slice(&b[68..84]);
        Ok(Footer {
            features: be32(b, 8),
            file_format_version: be32(b, 12),
            data_offset: be64(b, 16),
            timestamp: be32(b, 24),
            creator_application,
            creator_version: be32(b, 32),
            creator_host_os,
            original_size: be64(b, 40),
            current_size: be64(b, 48),
            geometry: Geometry {
                cylinders: u16::from_be_bytes([b[56], b[57]]),
                heads: b[58],
                sectors_per_track: b[59],
            },
            disk_type: DiskType::from_u32(be32(b, 60)),
            uuid,
            saved_state: b[84],
        })
    }

    /// The 512 bytes, checksum computed.
    pub fn emit(&self) -> [u8; FOOTER_SIZE] {
        let mut b = [0; FOOTER_SIZE];
        b[0..8].copy_from_slice(FOOTER_COOKIE);
        b[8..12].copy_from_slice(&self.features.to_be_bytes());
        b[12..16].copy_from_slice(&self.file_format_version.to_be_bytes());
        b[16..24].copy_from_slice(&self.data_offset.to_be_bytes());
        b[24..28].copy_from_slice(&self.timestamp.to_be_bytes());
        b[28..32].copy_from_slice(&self.creator_application);
        b[32..36].copy_from_slice(&self.creator_version.to_be_bytes());
        b[36..40].copy_from_slice(&self.creator_host_os);
        b[40..48].copy_from_slice(&self.original_size.to_be_bytes());
        b[48..56].copy_from_slice(&self.current_size.to_be_bytes());
        b[56..58].copy_from_slice(&self.geometry.cylinders.to_be_bytes());
        b[58] = self.geometry.heads;
        b[59] = self.geometry.sectors_per_track;
        b[60..64].copy_from_slice(&self.disk_type.to_u32().to_be_bytes());
        b[68..84].copy_from_slice(&self.uuid);
        b[84] = self.saved_state;
        let sum = checksum(&b, 64);
        b[64..68].copy_from_slice(&sum.to_be_bytes());
        b
    }
}

/// The dynamic disk header (1024 bytes). The parent fields (a
/// differencing disk's) are not kept: they are written as zeros.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DynamicHeader {
    /// "Data Offset": unused, [`NO_OFFSET`].
    pub data_offset: u64,
    /// "Table Offset": the BAT's byte offset in the file.
    pub table_offset: u64,
    /// "Header Version".
    pub header_version: u32,
    /// "Max Table Entries": the BAT's entries.
    pub max_table_entries: u32,
    /// "Block Size" in bytes (data only, without the sector bitmap).
    pub block_size: u32,
}

impl DynamicHeader {
    /// Parses 1024 bytes: cookie and checksum checked.
    pub fn parse(b: &[u8; HEADER_SIZE]) -> Result<DynamicHeader, ParseError> {
        if &b[0..8] != HEADER_COOKIE {
            return Err(ParseError::Cookie);
        }
        if be32(b, 36) != checksum(b, 36) {
            return Err(ParseError::Checksum);
        }
        Ok(DynamicHeader {
            data_offset: be64(b, 8),
            table_offset: be64(b, 16),
            header_version: be32(b, 24),
            max_table_entries: be32(b, 28),
            block_size: be32(b, 32),
        })
    }

    /// The 1024 bytes, checksum computed.
    pub fn emit(&self) -> [u8; HEADER_SIZE] {
        let mut b = [0; HEADER_SIZE];
        b[0..8].copy_from_slice(HEADER_COOKIE);
        b[8..16].copy_from_slice(&self.data_offset.to_be_bytes());
        b[16..24].copy_from_slice(&self.table_offset.to_be_bytes());
        b[24..28].copy_from_slice(&self.header_version.to_be_bytes());
        b[28..32].copy_from_slice(&self.max_table_entries.to_be_bytes());
        b[32..36].copy_from_slice(&self.block_size.to_be_bytes());
        let sum = checksum(&b, 36);
        b[36..40].copy_from_slice(&sum.to_be_bytes());
        b
    }
}

/// Bytes of a block's sector bitmap: one bit per sector, padded to a
/// sector boundary.
pub fn bitmap_bytes(block_size: u32) -> u64 {
    (u64::from(block_size) / SECTOR)
        .div_ceil(8)
        .next_multiple_of(SECTOR)
}

/// Bytes of a BAT of `entries` entries, padded to a sector boundary.
pub fn bat_bytes(entries: u32) -> u64 {
    (u64::from(entries) * 4).next_multiple_of(SECTOR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_follows_the_spec() {
        // 127 MiB: 260096 sectors → 17 spt: cth 15299, heads 15 → 1019 cyl.
        let g = Geometry::for_size(127 << 20);
        assert_eq!((g.cylinders, g.heads, g.sectors_per_track), (1019, 15, 17));
        // 5 MiB: 10240 sectors / 17 = 602 → heads 4 → 150 cylinders.
        let g = Geometry::for_size(5 << 20);
        assert_eq!((g.cylinders, g.heads, g.sectors_per_track), (150, 4, 17));
        // 1 GiB: 2097152 / 17 = 123361 → heads 121 > 16 → 31 spt:
        // 67650 ≥ 16384 → 63 spt: 33288 / 16 = 2080.
        let g = Geometry::for_size(1 << 30);
        assert_eq!((g.cylinders, g.heads, g.sectors_per_track), (2080, 16, 63));
        // Beyond the maximum: 65535 × 16 × 255.
        let g = Geometry::for_size(4 << 40);
        assert_eq!(
            (g.cylinders, g.heads, g.sectors_per_track),
            (65535, 16, 255)
        );
    }

    #[test]
    fn footer_round_trips_and_checks() {
        let f = Footer::new(DiskType::Dynamic, 5 << 20, [7; 16], 1234);
        let mut b = f.emit();
        assert_eq!(Footer::parse(&b), Ok(f));
        b[100] ^= 1;
        assert_eq!(Footer::parse(&b), Err(ParseError::Checksum));
        b[0] = b'C';
        assert_eq!(Footer::parse(&b), Err(ParseError::Cookie));
    }

    #[test]
    fn qemu_footer_checksum() {
        // The first 0x58 bytes of a footer qemu-img 7.2 wrote (5 MiB,
        // dynamic, force_size=on); the rest is zero.
        let head: [u8; 0x54] = [
            0x63, 0x6f, 0x6e, 0x65, 0x63, 0x74, 0x69, 0x78, 0, 0, 0, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0,
            0, 2, 0, 0x32, 0xa7, 0xd3, 0xe9, 0x71, 0x65, 0x6d, 0x32, 0, 5, 0, 3, 0x57, 0x69, 0x32,
            0x6b, 0, 0, 0, 0, 0, 0x50, 0, 0, 0, 0, 0, 0, 0, 0x50, 0, 0, 0xff, 0xff, 0x10, 0xff, 0,
            0, 0, 3, 0xff, 0xff, 0xea, 0xe8, 0x54, 0xc3, 0xe8, 0x57, 0xf0, 0x3d, 0x4a, 0xd1, 0xa2,
            0xfc, 0x71, 0x93, 0x6e, 0x78, 0x2b, 0x45,
        ];
        let mut b = [0; FOOTER_SIZE];
        b[..head.len()].copy_from_slice(&head);
        let f = Footer::parse(&b).expect("qemu's footer parses");
        assert_eq!(f.current_size, 5 << 20);
        assert_eq!(f.disk_type, DiskType::Dynamic);
        assert_eq!(f.data_offset, 512);
        assert_eq!(&f.creator_application, b"qem2");
    }

    #[test]
    fn header_round_trips_and_checks() {
        let h = DynamicHeader {
            data_offset: NO_OFFSET,
            table_offset: 1536,
            header_version: VERSION_1_0,
            max_table_entries: 3,
            block_size: 2 << 20,
        };
        let mut b = h.emit();
        assert_eq!(DynamicHeader::parse(&b), Ok(h));
        b[1000] = 1;
        assert_eq!(DynamicHeader::parse(&b), Err(ParseError::Checksum));
    }

    #[test]
    fn sizes() {
        assert_eq!(bitmap_bytes(2 << 20), 512);
        assert_eq!(bitmap_bytes(4096), 512);
        assert_eq!(bitmap_bytes(16 << 20), 4096);
        assert_eq!(bat_bytes(0), 0);
        assert_eq!(bat_bytes(1), 512);
        assert_eq!(bat_bytes(128), 512);
        assert_eq!(bat_bytes(129), 1024);
    }
}

//! The on-disk format: geometry, superblock, node header, VDI records.
//!
//! read first: DESIGN.md "Format".
//!
//! All integers little-endian. Every metadata block carries a CRC-32 and
//! names itself (its own block number), so a stale, misdirected or torn
//! write is caught on read. Nothing here trusts the bytes it decodes: every
//! field is checked against the geometry, which is itself derived from the
//! disk size alone.

use crate::budget::{
    BLOCK_SIZE, CLUSTER_BLOCKS, MAX_DISK_BLOCKS, MAX_VDIS, MAX_VDI_SIZE, META_FRACTION,
    MIN_DISK_BLOCKS, MIN_META_BLOCKS, SECTOR_SIZE,
};

/// A metadata block.
pub type Block = [u8; BLOCK_SIZE];

/// Superblock magic (slot 0 and slot 1).
pub const SB_MAGIC: [u8; 8] = *b"XCPSR\0v1";
/// Node magic.
pub const NODE_MAGIC: [u8; 4] = *b"SRND";
/// Bytes of a node's header; entries follow.
pub const NODE_HEADER: usize = 32;
/// 8-byte entries in a map or refcount interior node.
pub const FANOUT: u64 = ((BLOCK_SIZE - NODE_HEADER) / 8) as u64;
/// 2-byte refcounts in a refcount leaf.
pub const RC_PER_LEAF: u64 = ((BLOCK_SIZE - NODE_HEADER) / 2) as u64;
/// Highest root level of a VDI map (level 0 is a leaf of data pointers).
pub const MAX_MAP_LEVEL: u8 = 2;
/// Root level of the log's map (covers more than `MAX_LOG_BYTES`).
pub const LOG_LEVEL: u8 = 1;
/// VDI records in one table block.
pub const RECORDS_PER_BLOCK: usize = (BLOCK_SIZE - NODE_HEADER) / RECORD_SIZE;
/// Bytes of a VDI record.
pub const RECORD_SIZE: usize = 64;
/// Table blocks listed in the superblock.
pub const TABLE_BLOCKS: usize = MAX_VDIS.div_ceil(RECORDS_PER_BLOCK);

/// Node kind: a VDI or log map node (leaf: data pointers; interior: nodes).
pub const KIND_MAP: u8 = 1;
/// Node kind: a refcount tree node (leaf: u16 counts; interior: nodes).
pub const KIND_RC: u8 = 2;
/// Node kind: a block of the VDI table.
pub const KIND_TABLE: u8 = 3;

/// Where things are on a disk of a given size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Blocks the SR uses.
    pub total_blocks: u64,
    /// First block of the metadata area (after the two superblock slots).
    pub meta_start: u64,
    /// Blocks in the metadata area.
    pub meta_blocks: u64,
    /// First block of the data area (cluster-aligned).
    pub data_start: u64,
    /// Data clusters.
    pub data_clusters: u64,
    /// Root level of the refcount tree.
    pub rc_level: u8,
}

impl Geometry {
    /// The geometry of a disk of `blocks` blocks (capped at
    /// [`MAX_DISK_BLOCKS`]), or `None` if it is too small.
    pub fn for_blocks(blocks: u64) -> Option<Geometry> {
        let total_blocks = blocks.min(MAX_DISK_BLOCKS);
        if total_blocks < MIN_DISK_BLOCKS {
            return None;
        }
        let meta_blocks = (total_blocks / META_FRACTION)
            .max(MIN_META_BLOCKS)
            .min(total_blocks / 4);
        let meta_start = 2;
        let data_start = (meta_start + meta_blocks).next_multiple_of(CLUSTER_BLOCKS);
        let data_clusters = total_blocks.checked_sub(data_start)? / CLUSTER_BLOCKS;
        if data_clusters == 0 {
            return None;
        }
        let units = meta_blocks + data_clusters;
        let mut rc_level = 0u8;
        let mut cover = RC_PER_LEAF;
        while cover < units {
            cover = cover.saturating_mul(FANOUT);
            rc_level += 1;
        }
        Some(Geometry {
            total_blocks,
            meta_start,
            meta_blocks,
            data_start,
            data_clusters,
            rc_level,
        })
    }

    /// Refcount units: metadata blocks first, then data clusters.
    pub fn units(&self) -> u64 {
        self.meta_blocks + self.data_clusters
    }

    /// Whether `block` is in the metadata area.
    pub fn is_meta(&self, block: u64) -> bool {
        block >= self.meta_start && block - self.meta_start < self.meta_blocks
    }

    /// Whether `block` is the first block of a data cluster.
    pub fn is_data(&self, block: u64) -> bool {
        block >= self.data_start
            && (block - self.data_start).is_multiple_of(CLUSTER_BLOCKS)
            && (block - self.data_start) / CLUSTER_BLOCKS < self.data_clusters
    }

    /// The refcount unit of a metadata block or a data cluster's first
    /// block (the caller has checked it is one).
    pub fn unit(&self, block: u64) -> u64 {
        if block < self.data_start {
            block - self.meta_start
        } else {
            self.meta_blocks + (block - self.data_start) / CLUSTER_BLOCKS
        }
    }

    /// The block of a refcount unit.
    pub fn unit_block(&self, unit: u64) -> u64 {
        if unit < self.meta_blocks {
            self.meta_start + unit
        } else {
            self.data_start + (unit - self.meta_blocks) * CLUSTER_BLOCKS
        }
    }
}

/// Clusters a map tree with root at `level` covers.
pub fn map_cover(level: u8) -> u64 {
    FANOUT.saturating_pow(u32::from(level) + 1)
}

/// The least map level covering `clusters`.
pub fn level_for(clusters: u64) -> u8 {
    let mut level = 0;
    while map_cover(level) < clusters {
        level += 1;
    }
    level
}

/// The entry index at `level` on the path to `key`.
pub fn index_at(key: u64, level: u8) -> usize {
    ((key / FANOUT.saturating_pow(u32::from(level))) % FANOUT) as usize
}

/// Reads a little-endian u64 at `at` (callers stay inside the block).
pub fn get_u64(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        v.copy_from_slice(s);
    }
    u64::from_le_bytes(v)
}

/// Writes a little-endian u64 at `at`.
pub fn put_u64(b: &mut [u8], at: usize, v: u64) {
    if let Some(s) = b.get_mut(at..at + 8) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}

/// A node's 8-byte entry `i`.
pub fn entry(b: &Block, i: usize) -> u64 {
    get_u64(b, NODE_HEADER + i * 8)
}

/// Sets a node's 8-byte entry `i`.
pub fn set_entry(b: &mut Block, i: usize, v: u64) {
    put_u64(b, NODE_HEADER + i * 8, v)
}

/// A refcount leaf's count `i`.
pub fn count(b: &Block, i: usize) -> u16 {
    let at = NODE_HEADER + i * 2;
    b.get(at..at + 2)
        .map_or(0, |s| u16::from_le_bytes([s[0], s[1]]))
}

/// Sets a refcount leaf's count `i`.
pub fn set_count(b: &mut Block, i: usize, v: u16) {
    let at = NODE_HEADER + i * 2;
    if let Some(s) = b.get_mut(at..at + 2) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}

fn node_crc(b: &Block) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&b[..16]);
    h.update(&[0; 4]);
    h.update(&b[20..]);
    h.finalize()
}

/// A fresh, empty node of `kind` at `level`.
pub fn new_node(kind: u8, level: u8) -> Block {
    let mut b = [0u8; BLOCK_SIZE];
    b[..4].copy_from_slice(&NODE_MAGIC);
    b[4] = kind;
    b[5] = level;
    b
}

/// Stamps a node with its block number and checksum before it is written.
pub fn seal_node(b: &mut Block, block: u64) {
    put_u64(b, 8, block);
    let crc = node_crc(b);
    b[16..20].copy_from_slice(&crc.to_le_bytes());
}

/// Checks a node read from `block`: what is wrong, if anything.
pub fn verify_node(b: &Block, block: u64, kind: u8, level: u8) -> Result<(), &'static str> {
    if b[..4] != NODE_MAGIC {
        return Err("bad node magic");
    }
    let crc = u32::from_le_bytes([b[16], b[17], b[18], b[19]]);
    if crc != node_crc(b) {
        return Err("node checksum mismatch");
    }
    if get_u64(b, 8) != block {
        return Err("node names another block (misdirected write)");
    }
    if b[4] != kind {
        return Err("node of the wrong kind");
    }
    if b[5] != level {
        return Err("node at the wrong level");
    }
    Ok(())
}

/// What the superblock holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Superblock {
    /// Commit generation; the valid slot with the highest one wins.
    pub generation: u64,
    /// The geometry (derived from `total_blocks`, checked on decode).
    pub geo: Geometry,
    /// Refcount tree root (0: all counts zero).
    pub rc_root: u64,
    /// The log's map root.
    pub log_root: u64,
    /// The log's length in bytes.
    pub log_len: u64,
    /// A map being built by `log_replace`, or the old log being freed.
    pub staging_root: u64,
    /// The VDI table's blocks (0: no records there).
    pub table: [u64; TABLE_BLOCKS],
}

const SB_TABLE: usize = 96;
const SB_CRC: usize = BLOCK_SIZE - 4;

impl Superblock {
    /// Encodes into a block.
    pub fn encode(&self) -> Block {
        let mut b = [0u8; BLOCK_SIZE];
        b[..8].copy_from_slice(&SB_MAGIC);
        put_u64(&mut b, 8, self.generation);
        put_u64(&mut b, 16, self.geo.total_blocks);
        put_u64(&mut b, 24, self.rc_root);
        put_u64(&mut b, 32, self.log_root);
        put_u64(&mut b, 40, self.log_len);
        put_u64(&mut b, 48, self.staging_root);
        for (i, t) in self.table.iter().enumerate() {
            put_u64(&mut b, SB_TABLE + i * 8, *t);
        }
        let crc = crc32fast::hash(&b[..SB_CRC]);
        b[SB_CRC..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks a superblock read from a device of `dev_blocks`.
    pub fn decode(b: &Block, dev_blocks: u64) -> Result<Superblock, &'static str> {
        if b[..8] != SB_MAGIC {
            return Err("no SR superblock magic");
        }
        let crc = u32::from_le_bytes([b[SB_CRC], b[SB_CRC + 1], b[SB_CRC + 2], b[SB_CRC + 3]]);
        if crc != crc32fast::hash(&b[..SB_CRC]) {
            return Err("superblock checksum mismatch");
        }
        let total = get_u64(b, 16);
        if total > dev_blocks {
            return Err("superblock says the SR is bigger than the device");
        }
        let geo = Geometry::for_blocks(total).ok_or("superblock disk size too small")?;
        if geo.total_blocks != total {
            return Err("superblock disk size too large");
        }
        let meta = |v: u64| v == 0 || geo.is_meta(v);
        let mut sb = Superblock {
            generation: get_u64(b, 8),
            geo,
            rc_root: get_u64(b, 24),
            log_root: get_u64(b, 32),
            log_len: get_u64(b, 40),
            staging_root: get_u64(b, 48),
            table: [0; TABLE_BLOCKS],
        };
        for (i, t) in sb.table.iter_mut().enumerate() {
            *t = get_u64(b, SB_TABLE + i * 8);
            if !meta(*t) {
                return Err("superblock table pointer outside the metadata area");
            }
        }
        if !meta(sb.rc_root) || !meta(sb.log_root) || !meta(sb.staging_root) {
            return Err("superblock root pointer outside the metadata area");
        }
        if sb.generation == u64::MAX {
            return Err("superblock generation exhausted");
        }
        if sb.log_len > crate::budget::MAX_LOG_BYTES {
            return Err("superblock log length past the bound");
        }
        Ok(sb)
    }
}

/// Recomputes a superblock's checksum over its bytes as they are (tools
/// and the fuzzer use it to build hostile but well-formed superblocks).
pub fn reseal_superblock(b: &mut Block) {
    let crc = crc32fast::hash(&b[..SB_CRC]);
    b[SB_CRC..].copy_from_slice(&crc.to_le_bytes());
}

/// A VDI's flags.
pub mod flags {
    /// The record slot is in use.
    pub const IN_USE: u8 = 0x80;
    /// A snapshot (of `parent`).
    pub const SNAPSHOT: u8 = 1;
    /// Writes refused.
    pub const READ_ONLY: u8 = 2;
    /// Being destroyed (hidden; finished on open).
    pub const DELETING: u8 = 4;
    /// Every flag a record may carry.
    pub const ALL: u8 = IN_USE | SNAPSHOT | READ_ONLY | DELETING;
}

/// One VDI's record in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    /// The caller's 16-byte id.
    pub uuid: [u8; 16],
    /// Virtual size in bytes (a multiple of 512).
    pub virtual_size: u64,
    /// Map root (0: nothing written).
    pub root: u64,
    /// Data clusters mapped.
    pub allocated: u64,
    /// Root level of the map.
    pub level: u8,
    /// [`flags`].
    pub flags: u8,
    /// The VDI this one is a snapshot or clone of (zeros: none).
    pub parent: [u8; 16],
}

impl Record {
    /// Encodes into `out` (RECORD_SIZE bytes).
    pub fn encode(&self, out: &mut [u8]) {
        out.fill(0);
        out[..16].copy_from_slice(&self.uuid);
        put_u64(out, 16, self.virtual_size);
        put_u64(out, 24, self.root);
        put_u64(out, 32, self.allocated);
        out[40] = self.level;
        out[41] = self.flags | flags::IN_USE;
        out[48..64].copy_from_slice(&self.parent);
    }

    /// Decodes a slot: `Ok(None)` for an empty one, an error naming what
    /// is wrong for a bad one.
    pub fn decode(b: &[u8], geo: &Geometry) -> Result<Option<Record>, &'static str> {
        let Some(b) = b.get(..RECORD_SIZE) else {
            return Err("short record");
        };
        if b[41] & flags::IN_USE == 0 {
            return Ok(None);
        }
        let mut uuid = [0; 16];
        uuid.copy_from_slice(&b[..16]);
        let mut parent = [0; 16];
        parent.copy_from_slice(&b[48..64]);
        let r = Record {
            uuid,
            virtual_size: get_u64(b, 16),
            root: get_u64(b, 24),
            allocated: get_u64(b, 32),
            level: b[40],
            flags: b[41] & !flags::IN_USE,
            parent,
        };
        if b[41] & !flags::ALL != 0 {
            return Err("record has unknown flags");
        }
        if r.level > MAX_MAP_LEVEL {
            return Err("record map level too deep");
        }
        if r.virtual_size > MAX_VDI_SIZE || !r.virtual_size.is_multiple_of(SECTOR_SIZE as u64) {
            return Err("record virtual size bad");
        }
        let clusters = r.virtual_size.div_ceil(crate::budget::CLUSTER_SIZE as u64);
        if clusters > map_cover(r.level) {
            return Err("record virtual size larger than its map");
        }
        if r.allocated > clusters {
            return Err("record allocation larger than the VDI");
        }
        if r.root != 0 && !geo.is_meta(r.root) {
            return Err("record root outside the metadata area");
        }
        Ok(Some(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_fits_and_units_round_trip() {
        for blocks in [
            MIN_DISK_BLOCKS,
            1000,
            4096,
            1 << 20,
            MAX_DISK_BLOCKS,
            u64::MAX,
        ] {
            let g = Geometry::for_blocks(blocks).expect("big enough");
            assert!(g.data_start + g.data_clusters * CLUSTER_BLOCKS <= g.total_blocks);
            assert!(g.meta_start + g.meta_blocks <= g.data_start);
            for u in [0, g.meta_blocks - 1, g.meta_blocks, g.units() - 1] {
                let b = g.unit_block(u);
                assert!(g.is_meta(b) || g.is_data(b));
                assert_eq!(g.unit(b), u);
            }
            assert!(RC_PER_LEAF * FANOUT.pow(u32::from(g.rc_level)) >= g.units());
        }
        assert_eq!(Geometry::for_blocks(MIN_DISK_BLOCKS - 1), None);
    }

    #[test]
    fn superblock_round_trips_and_rejects_damage() {
        let geo = Geometry::for_blocks(4096).expect("fits");
        let sb = Superblock {
            generation: 7,
            geo,
            rc_root: geo.meta_start + 3,
            log_root: 0,
            log_len: 10,
            staging_root: 0,
            table: [0; TABLE_BLOCKS],
        };
        let b = sb.encode();
        assert_eq!(Superblock::decode(&b, 4096), Ok(sb));
        assert!(Superblock::decode(&b, 4095).is_err(), "device too small");
        let mut worn = sb;
        worn.generation = u64::MAX;
        assert!(
            Superblock::decode(&worn.encode(), 4096).is_err(),
            "no next generation"
        );
        let mut bad = b;
        bad[30] ^= 1;
        assert_eq!(
            Superblock::decode(&bad, 4096),
            Err("superblock checksum mismatch")
        );
    }

    #[test]
    fn node_seal_verify() {
        let mut n = new_node(KIND_MAP, 1);
        set_entry(&mut n, 5, 99);
        seal_node(&mut n, 42);
        assert_eq!(verify_node(&n, 42, KIND_MAP, 1), Ok(()));
        assert!(verify_node(&n, 43, KIND_MAP, 1).is_err());
        assert!(verify_node(&n, 42, KIND_RC, 1).is_err());
        assert!(verify_node(&n, 42, KIND_MAP, 0).is_err());
        n[100] ^= 4;
        assert_eq!(
            verify_node(&n, 42, KIND_MAP, 1),
            Err("node checksum mismatch")
        );
    }
}

//! The SR engine's memory bounds, all named here.
//!
//! read first: DESIGN.md "Memory".
//!
//! stordom has about 32 MiB of heap for everything; the SR engine's share
//! is bounded by the constants below. Nothing read off the disk sizes an
//! allocation except through these bounds (a superblock's geometry is
//! checked against [`MAX_DISK_BLOCKS`] and the device's real size first).
//!
//! ```text
//! data-cluster bitmap   MAX_DISK_BLOCKS / CLUSTER_BLOCKS bits   = 16 Mi bits = 2 MiB
//! metadata bitmap       MAX_DISK_BLOCKS / META_FRACTION bits    =  4 Mi bits = 512 KiB
//! node cache            MAX_CACHED_NODES × 4 KiB                = 256 × 4 KiB = 1 MiB
//! dirty nodes           MAX_DIRTY_NODES × ~4.1 KiB              = 2304 × 4 KiB ≈ 9.2 MiB
//! pending frees         MAX_PENDING_FREE × 8 B                  = 512 KiB
//! fresh data clusters   MAX_FRESH_DATA × ~40 B (BTreeSet)       ≤ 640 KiB
//! VDI table             MAX_VDIS × ~96 B                        ≤ 96 KiB
//! one cluster buffer    CLUSTER_SIZE                            = 64 KiB
//! commit write run      COMMIT_RUN_BYTES                        = 128 KiB
//!                                                               ≈ 14 MiB at most
//! ```
//!
//! The dirty set is the big term, and only in the worst case (a copied
//! map node whose children are scattered over 508 refcount leaves); a
//! board short of memory lowers it with `Sr::limit_dirty` (commits come
//! sooner; a single step may still pass a bound below one step's need).
//!
//! ```text
//! check() counts        CHECK_WINDOW × 2 B + metadata bitmap    = 2.5 MiB (only while it runs)
//! ```
//!
//! When the dirty set, the pending frees or the fresh-cluster set would go
//! past their bound within the next step, the engine commits early (an
//! ordinary `flush`) instead of growing. The log object is read back in a
//! vector of at most [`MAX_LOG_BYTES`] (the caller asks for it; a bounded
//! reader exists too).

/// Bytes in a device block and in a metadata node.
pub const BLOCK_SIZE: usize = 4096;
/// Bytes in a sector of the VDI I/O interface.
pub const SECTOR_SIZE: usize = 512;
/// Device blocks in a data cluster.
pub const CLUSTER_BLOCKS: u64 = 16;
/// Bytes in a data cluster (64 KiB).
pub const CLUSTER_SIZE: usize = BLOCK_SIZE * CLUSTER_BLOCKS as usize;

/// The largest disk the SR will use, in blocks (1 TiB). A bigger device is
/// used up to this size.
pub const MAX_DISK_BLOCKS: u64 = (1 << 40) / BLOCK_SIZE as u64;
/// The smallest disk an SR can be formatted on, in blocks (1 MiB).
pub const MIN_DISK_BLOCKS: u64 = 256;
/// The metadata area is this fraction of the disk (1/64), at least
/// [`MIN_META_BLOCKS`] and at most a quarter of the disk.
pub const META_FRACTION: u64 = 64;
/// The least metadata area, in blocks.
pub const MIN_META_BLOCKS: u64 = 128;

/// The most VDIs (snapshots and clones included) in one SR.
pub const MAX_VDIS: usize = 1024;
/// The largest virtual size of a VDI (2 TiB, as a VHD's).
pub const MAX_VDI_SIZE: u64 = 2 << 40;
/// The largest toolstack log object.
pub const MAX_LOG_BYTES: u64 = 64 << 20;

/// Clean metadata nodes kept in memory.
pub const MAX_CACHED_NODES: usize = 256;
/// Modified metadata nodes held until the next commit.
pub const MAX_DIRTY_NODES: usize = 2304;
/// Blocks and clusters freed since the last commit (not reusable before it).
pub const MAX_PENDING_FREE: usize = 65536;
/// Data clusters allocated since the last commit (overwritten in place).
pub const MAX_FRESH_DATA: usize = 16384;
/// Nodes one copy of a shared map node may dirty at most: it adds a
/// reference to each of its 508 children (each in at most one refcount
/// leaf) under the few refcount-tree interior nodes above them (≤ 22 on a
/// 1 TiB disk). A step (one cluster written, one leaf discarded) copies at
/// most a path of `MAX_MAP_LEVEL + 1` nodes and clears one leaf: 4 × 534 +
/// 25 = 2161 nodes at most, below [`MAX_DIRTY_NODES`].
pub const NODE_HEADROOM: usize = 530;
/// The largest write a commit issues (consecutive new nodes together).
pub const COMMIT_RUN_BYTES: usize = 32 * BLOCK_SIZE;
/// Units whose references `check()` counts in one pass over the trees.
pub const CHECK_WINDOW: u64 = 1 << 20;

const _: () = assert!(
    4 * (NODE_HEADROOM + 4) + 25 <= MAX_DIRTY_NODES,
    "a step fits"
);
const _: () = assert!(MAX_DIRTY_NODES < MAX_PENDING_FREE && MAX_DIRTY_NODES < MAX_FRESH_DATA);

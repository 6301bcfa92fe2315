//! Snapshot and clone are O(1): the device writes of `snapshot` + `flush`
//! do not grow with the VDI's size or with how much of it is written.

use xcp_sr::budget::CLUSTER_SIZE;
use xcp_sr::fake::CrashDisk;
use xcp_sr::Sr;

const A: [u8; 16] = [1; 16];
const MIB: u64 = 1 << 20;

/// Device writes (blocks and flushes) of snapshot + clone + flush of a VDI
/// of `size` bytes with `clusters` clusters written, spread over it.
fn share_cost(size: u64, clusters: u64) -> (u64, u64) {
    let mut sr = Sr::format(CrashDisk::new(16384))
        .map_err(|e| e.0)
        .expect("format");
    sr.create(A, size).expect("create");
    let stride = size / CLUSTER_SIZE as u64 / clusters;
    let data = vec![0x5au8; CLUSTER_SIZE];
    for i in 0..clusters {
        sr.write(A, i * stride * 128, &data).expect("write");
    }
    sr.flush().expect("flush");
    let before = sr.dev().ops;
    sr.snapshot(A, [2; 16]).expect("snapshot");
    sr.flush().expect("flush");
    let snap = sr.dev().ops - before;
    let before = sr.dev().ops;
    sr.clone_vdi(A, [3; 16]).expect("clone");
    sr.flush().expect("flush");
    let clone = sr.dev().ops - before;
    sr.check().expect("check");
    (snap, clone)
}

#[test]
fn snapshot_cost_does_not_grow_with_the_vdi() {
    let small = share_cost(4 * MIB, 64);
    let big = share_cost(4 << 30, 400);
    assert_eq!(small, big, "4 MiB fully written vs 4 GiB with 400 clusters");
    // The superblock, the table block, the refcount path of the root, and
    // two flushes.
    assert!(small.0 <= 8, "{small:?}");
}

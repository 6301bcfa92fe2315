//! Scenario tests of the SR engine: I/O, snapshots, clones, resize,
//! discard, destroy, the log, reopen, accounting and corruption.

use xcp_sr::budget::{BLOCK_SIZE, CLUSTER_SIZE, MAX_LOG_BYTES};
use xcp_sr::fake::{CrashDisk, MemDisk};
use xcp_sr::{Error, OpenError, Sr};

const A: [u8; 16] = [1; 16];
const B: [u8; 16] = [2; 16];
const C: [u8; 16] = [3; 16];
const MIB: u64 = 1 << 20;

fn sr(blocks: u64) -> Sr<MemDisk> {
    Sr::format(MemDisk::new(blocks))
        .map_err(|e| e.0)
        .expect("format")
}

fn reopen(sr: Sr<MemDisk>) -> Sr<MemDisk> {
    Sr::open(sr.into_dev()).map_err(|e| e.0).expect("open")
}

fn pattern(tag: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| tag.wrapping_add((i / 512) as u8))
        .collect()
}

#[test]
fn write_read_reopen() {
    let mut s = sr(4096);
    s.create(A, 8 * MIB).expect("create");
    let mut buf = vec![0xffu8; 4096];
    s.read(A, 0, &mut buf).expect("read");
    assert!(buf.iter().all(|b| *b == 0), "never written reads zero");
    let data = pattern(7, 3 * 512);
    s.write(A, 127, &data)
        .expect("write across a cluster boundary");
    let mut back = vec![0; 3 * 512];
    s.read(A, 127, &mut back).expect("read");
    assert_eq!(back, data, "reads see unflushed writes");
    s.flush().expect("flush");
    let mut s = reopen(s);
    s.read(A, 127, &mut back).expect("read");
    assert_eq!(back, data);
    assert_eq!(
        s.info(A).expect("info").physical_utilisation,
        2 * CLUSTER_SIZE as u64
    );
    s.check().expect("check");
}

#[test]
fn io_bounds() {
    let mut s = sr(4096);
    s.create(A, 4 * MIB).expect("create");
    let mut buf = vec![0u8; 1024];
    assert_eq!(s.read(A, 4 * 2048 - 1, &mut buf), Err(Error::OutOfRange));
    assert_eq!(s.write(A, u64::MAX, &buf), Err(Error::OutOfRange));
    assert_eq!(s.write(A, 0, &buf[..100]), Err(Error::Invalid));
    assert_eq!(s.read(B, 0, &mut buf), Err(Error::NotFound));
    assert_eq!(s.create(A, 512), Err(Error::Exists));
    assert_eq!(s.create(B, 513), Err(Error::Invalid));
    assert_eq!(s.create([0; 16], 512), Err(Error::Invalid));
    assert_eq!(s.resize(A, 2 * MIB), Err(Error::Shrink));
}

#[test]
fn snapshot_is_frozen_clone_diverges() {
    let mut s = sr(8192);
    s.create(A, 64 * MIB).expect("create");
    let one = pattern(1, 128 * 1024);
    s.write(A, 0, &one).expect("write");
    s.snapshot(A, B).expect("snapshot");
    s.clone_vdi(A, C).expect("clone");
    let two = pattern(2, 4096);
    s.write(A, 8, &two).expect("write A");
    let three = pattern(3, 512);
    s.write(C, 0, &three).expect("write C");
    assert_eq!(s.write(B, 0, &three), Err(Error::VdiReadOnly));
    let info = s.info(B).expect("info");
    assert!(info.snapshot && info.read_only && info.parent == Some(A));
    for _ in 0..2 {
        let mut got = vec![0; one.len()];
        s.read(B, 0, &mut got).expect("read B");
        assert_eq!(got, one, "the snapshot keeps the old content");
        s.read(A, 0, &mut got).expect("read A");
        assert_eq!(&got[8 * 512..8 * 512 + 4096], &two[..]);
        s.read(C, 0, &mut got).expect("read C");
        assert_eq!(&got[..512], &three[..]);
        assert_eq!(&got[512..], &one[512..]);
        s.check().expect("check");
        s.flush().expect("flush");
        s = reopen(s);
    }
    s.destroy(A).expect("destroy A");
    s.destroy(C).expect("destroy C");
    let mut got = vec![0; one.len()];
    s.read(B, 0, &mut got).expect("read B");
    assert_eq!(got, one);
    s.check().expect("check");
    s.destroy(B).expect("destroy B");
    s.flush().expect("flush");
    s.check().expect("check");
    let after = s.sr_info();
    assert_eq!(after.vdis, 0);
    assert_eq!(after.virtual_allocation, 0);
    // Only the superblocks and the refcount tree's own blocks remain.
    assert!(
        after.physical_utilisation < 8 * BLOCK_SIZE as u64,
        "{after:?}"
    );
}

#[test]
fn thin_resize_discard_accounting() {
    let mut s = sr(8192);
    s.create(A, 4 * MIB).expect("create");
    let info = s.sr_info();
    assert_eq!(info.physical_size, 8192 * BLOCK_SIZE as u64);
    assert_eq!(info.virtual_allocation, 4 * MIB);
    s.write(A, 0, &pattern(5, 4 * MIB as usize)).expect("fill");
    assert_eq!(s.info(A).expect("info").physical_utilisation, 4 * MIB);
    // Grow past one leaf's span: the map gets a new root.
    s.resize(A, 40 * MIB).expect("grow");
    s.write(A, 40 * 2048 - 1, &pattern(9, 512))
        .expect("write at the new end");
    s.check().expect("check");
    // Discard: whole clusters freed, partial ones zeroed.
    s.discard(A, 1, 2 * 128 + 10).expect("discard");
    let mut got = vec![0; 3 * CLUSTER_SIZE];
    s.read(A, 0, &mut got).expect("read");
    assert_eq!(&got[..512], &pattern(5, 512)[..]);
    assert!(got[512..(2 * 128 + 11) * 512].iter().all(|b| *b == 0));
    assert_eq!(
        &got[(2 * 128 + 11) * 512..],
        &pattern(5, 4 * MIB as usize)[(2 * 128 + 11) * 512..3 * CLUSTER_SIZE]
    );
    // Cluster 1 was wholly covered: 64 + 1 - 1 clusters mapped.
    assert_eq!(
        s.info(A).expect("info").physical_utilisation,
        64 * CLUSTER_SIZE as u64
    );
    s.flush().expect("flush");
    let before = s.sr_info().physical_utilisation;
    s.discard(A, 0, 40 * 2048).expect("discard all");
    s.flush().expect("flush");
    assert_eq!(s.info(A).expect("info").physical_utilisation, 0);
    assert!(s.sr_info().physical_utilisation < before - 60 * CLUSTER_SIZE as u64);
    s.check().expect("check");
    let mut s = reopen(s);
    s.check().expect("check after reopen");
}

#[test]
fn full_disk_is_refused_not_fatal() {
    let mut s = sr(1024);
    s.create(A, 64 * MIB).expect("create");
    let chunk = pattern(3, CLUSTER_SIZE);
    let mut written = 0;
    let err = loop {
        match s.write(A, written * 128, &chunk) {
            Ok(()) => written += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(err, Error::NoSpace);
    assert!(s.read_only().is_none(), "a full disk is not a broken one");
    s.flush().expect("flush");
    s.check().expect("check");
    s.discard(A, 0, 64 * 2048).expect("discard");
    s.flush().expect("flush");
    s.write(A, 0, &chunk).expect("space is back");
}

#[test]
fn log_append_truncate_replace() {
    let mut s = sr(8192);
    s.log_append(b"hello ").expect("append");
    s.log_append(&vec![7u8; 100_000])
        .expect("append across clusters");
    s.log_append(b"world").expect("append");
    assert_eq!(s.log_len(), 6 + 100_000 + 5);
    let all = s.log_read_all().expect("read");
    assert_eq!(&all[..6], b"hello ");
    assert_eq!(&all[all.len() - 5..], b"world");
    s.log_truncate(6).expect("truncate");
    s.log_append(b"again").expect("append");
    assert_eq!(s.log_read_all().expect("read"), b"hello again");
    assert_eq!(s.log_truncate(100), Err(Error::OutOfRange));
    s.flush().expect("flush");
    s.log_replace(b"compacted").expect("replace");
    s.check().expect("check");
    s.flush().expect("flush");
    let mut s = reopen(s);
    assert_eq!(s.log_read_all().expect("read"), b"compacted");
    assert_eq!(
        s.log_append(&vec![0; MAX_LOG_BYTES as usize]),
        Err(Error::LogFull)
    );
    let mut part = [0u8; 4];
    assert_eq!(s.log_read(5, &mut part).expect("read"), 4);
    assert_eq!(&part, b"cted");
    s.check().expect("check");
}

#[test]
fn early_commits_keep_everything_consistent() {
    let mut s = Sr::format(CrashDisk::new(8192))
        .map_err(|e| e.0)
        .expect("format");
    s.limit_dirty(4);
    s.create(A, 64 * MIB).expect("create");
    s.write(A, 0, &pattern(1, 2 * MIB as usize)).expect("write");
    let flushes = s.dev().flushes;
    assert!(
        flushes > 2,
        "the small dirty bound forced commits: {flushes}"
    );
    s.snapshot(A, B).expect("snapshot");
    s.write(A, 0, &pattern(2, 2 * MIB as usize)).expect("write");
    s.destroy(B).expect("destroy");
    s.check().expect("check");
}

#[test]
fn not_formatted_and_corrupt_superblock() {
    let e = Sr::open(MemDisk::new(4096)).map(|_| ()).map_err(|e| e.0);
    assert_eq!(e, Err(OpenError::NotFormatted));
    assert_eq!(
        Sr::format(MemDisk::new(10)).map(|_| ()).map_err(|e| e.0),
        Err(OpenError::TooSmall)
    );
    let mut s = sr(4096);
    s.create(A, MIB).expect("create");
    s.flush().expect("flush");
    let mut d = s.into_dev();
    // Generation 2 is in slot 0; damage it: slot 1 (generation 1) wins.
    d.image[100] ^= 1;
    let mut s = Sr::open(d).map_err(|e| e.0).expect("older slot");
    assert_eq!(s.list(), Vec::<[u8; 16]>::new());
    s.check().expect("check");
    let mut d = s.into_dev();
    d.image[BLOCK_SIZE + 100] ^= 1;
    match Sr::open(d).map(|_| ()).map_err(|e| e.0) {
        Err(OpenError::Failed(Error::Corrupt(c))) => assert!(c.block <= 1, "{c:?}"),
        other => panic!("both slots bad: {other:?}"),
    }
}

#[test]
fn corrupt_map_node_turns_read_only() {
    let mut s = sr(4096);
    s.create(A, 4 * MIB).expect("create");
    s.write(A, 0, &pattern(1, 4096)).expect("write");
    s.flush().expect("flush");
    let d = s.into_dev();
    // Damage one metadata block at a time: open reads the superblock, the
    // refcount tree and the table (and fails on them); the map leaf is
    // read only by I/O.
    let mut found = false;
    for b in 2..300usize {
        let mut d2 = d.clone();
        d2.image[b * BLOCK_SIZE + 200] ^= 0x55;
        let Ok(mut s2) = Sr::open(d2) else { continue };
        let mut buf = vec![0; 4096];
        if let Err(Error::Corrupt(c)) = s2.read(A, 0, &mut buf) {
            assert_eq!(c.block, b as u64);
            assert_eq!(s2.write(A, 0, &buf), Err(Error::ReadOnly));
            assert_eq!(s2.flush(), Err(Error::ReadOnly));
            assert!(s2.read_only().is_some());
            found = true;
        }
    }
    assert!(found, "some block was the map leaf");
}

/// The image of an SR with one written VDI, and its refcount root.
fn tamper_base() -> (MemDisk, u64) {
    let mut s = sr(8192);
    s.create(A, 4 * MIB).expect("create");
    s.write(A, 0, &pattern(1, 3 * CLUSTER_SIZE)).expect("write");
    s.flush().expect("flush");
    let d = s.into_dev();
    // Generation 2 in slot 0; its refcount root at byte 24.
    let rc_root = u64::from_le_bytes(d.image[24..32].try_into().expect("8"));
    (d, rc_root)
}

fn reseal(d: &mut MemDisk, block: u64) {
    let at = block as usize * BLOCK_SIZE;
    let b: &mut xcp_sr::format::Block = (&mut d.image[at..at + BLOCK_SIZE])
        .try_into()
        .expect("block");
    xcp_sr::format::seal_node(b, block);
}

#[test]
fn check_finds_a_leaked_cluster() {
    let (mut d, rc_root) = tamper_base();
    assert_ne!(rc_root, 0);
    // A small disk's refcount tree is one leaf: count the last data
    // cluster (never used) once.
    let geo = xcp_sr::format::Geometry::for_blocks(8192).expect("fits");
    assert_eq!(geo.rc_level, 0);
    let unit = geo.units() - 1;
    let at = rc_root as usize * BLOCK_SIZE + xcp_sr::format::NODE_HEADER + unit as usize * 2;
    d.image[at] = 1;
    reseal(&mut d, rc_root);
    let mut s = Sr::open(d)
        .map_err(|e| e.0)
        .expect("opens: the count is well-formed");
    match s.check() {
        Err(Error::Corrupt(c)) => {
            assert_eq!(c.block, geo.unit_block(unit));
            assert_eq!(c.what, "refcount differs from the references found");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.create(B, MIB), Err(Error::ReadOnly));
}

#[test]
fn check_and_reads_catch_a_redirected_pointer() {
    let (mut d, _) = tamper_base();
    // Find the VDI's leaf: the map node whose first entry is a cluster.
    let geo = xcp_sr::format::Geometry::for_blocks(8192).expect("fits");
    let leaf = (geo.meta_start..geo.data_start)
        .find(|b| {
            let n = &d.image[*b as usize * BLOCK_SIZE..][..BLOCK_SIZE];
            n[..4] == *b"SRND" && n[4] == xcp_sr::format::KIND_MAP
        })
        .expect("a map leaf");
    let at = leaf as usize * BLOCK_SIZE + xcp_sr::format::NODE_HEADER;
    // Entry 2 points at entry 0's cluster: two references, count 1.
    let first: [u8; 8] = d.image[at..at + 8].try_into().expect("8");
    d.image[at + 16..at + 24].copy_from_slice(&first);
    reseal(&mut d, leaf);
    let mut s = Sr::open(d.clone()).map_err(|e| e.0).expect("open");
    assert!(matches!(s.check(), Err(Error::Corrupt(_))));
    // A pointer outside the data area is caught by a read.
    d.image[at + 16..at + 24].copy_from_slice(&5u64.to_le_bytes());
    reseal(&mut d, leaf);
    let mut s = Sr::open(d).map_err(|e| e.0).expect("open");
    let mut buf = vec![0; 512];
    match s.read(A, 2 * 128, &mut buf) {
        Err(Error::Corrupt(c)) => {
            assert_eq!(c.block, leaf);
            assert_eq!(c.what, "data pointer not on a cluster of the data area");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_destroy_cut_short_is_finished_at_open() {
    let mut s = Sr::format(CrashDisk::new(8192))
        .map_err(|e| e.0)
        .expect("format");
    s.create(A, 64 * MIB).expect("create");
    s.create(B, MIB).expect("create");
    for i in 0..40 {
        s.write(A, i * 1024, &pattern(i as u8, 4096))
            .expect("write");
    }
    s.flush().expect("flush");
    let base = s.into_dev().crash_image(0);
    let mut finished_by_open = 0;
    for cut in 0.. {
        let mut d = CrashDisk::from_image(base.clone());
        d.cut_power_at(cut);
        let mut s = Sr::open(d).map_err(|e| e.0).expect("open");
        // Commits early at every step: the destroy is durable piecemeal.
        s.limit_dirty(1);
        let done = s.destroy(A).is_ok();
        let image = s.into_dev().crash_image(0);
        let mut s = Sr::open(CrashDisk::from_image(image))
            .map_err(|e| e.0)
            .expect("reopen");
        s.check().expect("check");
        assert!(s.list().contains(&B));
        if !s.list().contains(&A) {
            finished_by_open += 1;
        } else {
            let mut got = vec![0; 4096];
            s.read(A, 39 * 1024, &mut got).expect("read");
            assert_eq!(
                got,
                pattern(39, 4096),
                "untouched until its record is marked"
            );
        }
        if done {
            break;
        }
    }
    assert!(
        finished_by_open > 0,
        "some cut fell after the record was marked"
    );
}

#[test]
fn discarding_a_whole_shared_leaf_drops_one_share() {
    let mut s = sr(8192);
    let leaf_sectors = 508 * 128;
    s.create(A, 40 * MIB).expect("create");
    for i in 0..6 {
        s.write(A, i * 10_000, &pattern(i as u8 + 1, 4096))
            .expect("write");
    }
    s.write(A, leaf_sectors + 8, &pattern(9, 4096))
        .expect("write in leaf 1");
    s.snapshot(A, B).expect("snapshot");
    s.flush().expect("flush");
    s.write(A, leaf_sectors + 8, &pattern(10, 512))
        .expect("unshare leaf 1");
    let used = s.sr_info().physical_utilisation;
    s.discard(A, 0, leaf_sectors).expect("discard leaf 0");
    assert_eq!(
        s.info(A).expect("info").physical_utilisation,
        CLUSTER_SIZE as u64
    );
    assert_eq!(
        s.info(B).expect("info").physical_utilisation,
        7 * CLUSTER_SIZE as u64
    );
    assert!(s.sr_info().physical_utilisation <= used, "nothing copied");
    s.check().expect("check");
    let mut got = vec![0; 4096];
    for i in 0..6 {
        s.read(A, i * 10_000, &mut got).expect("read");
        assert!(got.iter().all(|b| *b == 0));
        s.read(B, i * 10_000, &mut got).expect("read");
        assert_eq!(got, pattern(i as u8 + 1, 4096));
    }
    s.destroy(B).expect("destroy");
    s.flush().expect("flush");
    s.check().expect("check");
}

/// Every allocated cluster of `uuid`, walking `next_allocated`.
fn allocated(s: &mut Sr<MemDisk>, uuid: [u8; 16]) -> Vec<u64> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = s.next_allocated(uuid, from).expect("next_allocated") {
        assert!(at >= from, "{at} before {from}");
        out.push(at / CLUSTER_SIZE as u64);
        from = (at / CLUSTER_SIZE as u64 + 1) * CLUSTER_SIZE as u64;
    }
    out
}

#[test]
fn next_allocated_finds_written_clusters_and_skips_holes_and_discards() {
    let cl = CLUSTER_SIZE as u64;
    let mut s = sr(64 * 1024);
    // 40 GiB: a level-1 root, so whole empty leaves are skipped.
    s.create(A, 40 << 30).expect("create");
    assert_eq!(allocated(&mut s, A), Vec::<u64>::new());
    let clusters = [0u64, 1, 7, 507, 508, 1_000, 300_000, (40 << 30) / cl - 1];
    for c in clusters {
        s.write(A, c * cl / 512 + 3, &pattern(c as u8, 512))
            .expect("write");
    }
    assert_eq!(allocated(&mut s, A), clusters.to_vec());
    // From the middle of an allocated cluster: that offset itself.
    assert_eq!(
        s.next_allocated(A, 7 * cl + 100).expect("next"),
        Some(7 * cl + 100)
    );
    assert_eq!(s.next_allocated(A, 8 * cl).expect("next"), Some(507 * cl));
    s.discard(A, 1_000 * cl / 512, cl / 512).expect("discard");
    s.flush().expect("flush");
    let mut s = reopen(s);
    let mut left = clusters.to_vec();
    left.retain(|&c| c != 1_000);
    assert_eq!(allocated(&mut s, A), left);
    // A clone shares the blocks: the same clusters read as allocated.
    s.clone_vdi(A, B).expect("clone");
    assert_eq!(allocated(&mut s, B), left);
    assert_eq!(s.next_allocated(C, 0), Err(Error::NotFound));
}

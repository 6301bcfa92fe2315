//! Fuzz target: a formatted SR image whose metadata blocks carry fuzzer
//! bytes, then open, check, reads and writes. No panic, no huge
//! allocation, whatever the disk holds.
//!
//! read first: ../../src/format.rs (what is on disk), ../../DESIGN.md.
//!
//! The image (built once): VDIs with data, a snapshot, a clone, a VDI
//! grown to a two-level map, a log, two commits. Input: patches, each
//! `block: u8` (a block of the metadata area and the superblocks, modulo
//! its size), `offset: u16`, `len: u8`, `flags: u8`, then `len` bytes
//! written there; with `flags & 1` the block is resealed afterwards (its
//! checksum, and a node's self-number, made right again), so hostile
//! content gets past the checksums to the parsers and tree walks.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use xcp_sr::budget::BLOCK_SIZE;
use xcp_sr::fake::MemDisk;
use xcp_sr::format::{reseal_superblock, seal_node, Block, Geometry};
use xcp_sr::Sr;

const BLOCKS: u64 = 1024;
const MIB: u64 = 1 << 20;

fn image() -> &'static Vec<u8> {
    static IMAGE: OnceLock<Vec<u8>> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let mut sr = Sr::format(MemDisk::new(BLOCKS)).map_err(|e| e.0).expect("format");
        let (a, b, c) = ([1; 16], [2; 16], [3; 16]);
        sr.create(a, 8 * MIB).expect("create");
        sr.write(a, 0, &[0x11; 8192]).expect("write");
        sr.write(a, 1000, &[0x22; 4096]).expect("write");
        sr.log_append(b"log one;").expect("log");
        sr.flush().expect("flush");
        sr.snapshot(a, b).expect("snapshot");
        sr.clone_vdi(b, c).expect("clone");
        sr.write(a, 8, &[0x33; 512]).expect("write");
        sr.resize(c, 40 * MIB).expect("resize");
        sr.write(c, 40 * 2048 - 1, &[0x44; 512]).expect("write");
        sr.log_replace(b"replaced").expect("log");
        sr.flush().expect("flush");
        sr.into_dev().image
    })
}

fuzz_target!(|data: &[u8]| {
    let mut img = image().clone();
    let geo = Geometry::for_blocks(BLOCKS).expect("fits");
    let mut at = 0;
    while at + 5 <= data.len() {
        let block = u64::from(data[at]) % geo.data_start;
        let offset = usize::from(u16::from_le_bytes([data[at + 1], data[at + 2]])) % BLOCK_SIZE;
        let len = usize::from(data[at + 3]);
        let flags = data[at + 4];
        at += 5;
        let bytes = &data[at..(at + len).min(data.len())];
        at += bytes.len();
        let start = block as usize * BLOCK_SIZE;
        let blk: &mut Block = (&mut img[start..start + BLOCK_SIZE]).try_into().expect("block");
        let n = bytes.len().min(BLOCK_SIZE - offset);
        blk[offset..offset + n].copy_from_slice(&bytes[..n]);
        if flags & 1 == 1 {
            if block < 2 {
                reseal_superblock(blk);
            } else {
                seal_node(blk, block);
            }
        }
    }
    let Ok(mut sr) = Sr::open(MemDisk { image: img }) else {
        return;
    };
    let _ = sr.check();
    let mut buf = vec![0u8; 8192];
    for u in sr.list() {
        if let Ok(info) = sr.info(u) {
            let last = (info.virtual_size / 512).saturating_sub(16);
            for s in [0, 8, 1000, last] {
                let _ = sr.read(u, s, &mut buf);
            }
            let _ = sr.write(u, 4, &buf[..1024]);
            let _ = sr.discard(u, 0, 300);
        }
    }
    let _ = sr.log_read_all();
    let _ = sr.log_append(b"more");
    if let Some(u) = sr.list().first().copied() {
        let _ = sr.snapshot(u, [9; 16]);
        let _ = sr.destroy(u);
    }
    let _ = sr.flush();
    let _ = sr.check();
});

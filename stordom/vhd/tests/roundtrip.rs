//! Writer → Reader over random sparse disks and random splits; Reader over
//! random hand-made layouts (block sizes, bitmaps, file order, gaps).

mod common;

use common::*;
use proptest::prelude::*;
use xcp_vhd::format::bitmap_bytes;
use xcp_vhd::{Kind, Summary, Writer, DEFAULT_BLOCK_SIZE, SECTOR};

const BLOCK: u64 = DEFAULT_BLOCK_SIZE as u64;

/// Deterministic bytes (xorshift), with some whole zero sectors.
fn fill(buf: &mut [u8], mut seed: u64) {
    seed |= 1;
    for (i, sector) in buf.chunks_mut(512).enumerate() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        if seed.is_multiple_of(5) {
            continue;
        }
        for (j, b) in sector.iter_mut().enumerate() {
            *b = (seed >> (j % 8 * 8)) as u8 ^ (i as u8).wrapping_mul(31) ^ j as u8;
        }
    }
}

/// A disk of `sectors` sectors with data in the blocks `mask` selects.
fn sparse_disk(sectors: u64, mask: u64, seed: u64) -> (Vec<u8>, Vec<u32>) {
    let size = sectors * SECTOR;
    let blocks = size.div_ceil(BLOCK) as u32;
    let allocated: Vec<u32> = (0..blocks).filter(|b| mask >> (b % 64) & 1 == 1).collect();
    let mut disk = vec![0u8; size as usize];
    for &b in &allocated {
        let start = u64::from(b) * BLOCK;
        let end = (start + BLOCK).min(size);
        fill(&mut disk[start as usize..end as usize], seed ^ u64::from(b));
    }
    (disk, allocated)
}

fn cuts_every(len: usize, chunk: usize) -> Vec<usize> {
    (0..len).step_by(chunk.max(1)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn writer_to_reader(
        sectors in 0u64..=(2 * 4096 + 700),
        mask in any::<u64>(),
        seed in any::<u64>(),
        max in 1usize..300_000,
        chunk in 1usize..70_000,
        cuts in prop::collection::vec(any::<usize>(), 0..20),
    ) {
        let (disk, allocated) = sparse_disk(sectors, mask, seed);
        let size = disk.len() as u64;
        let writer = Writer::dynamic(size, allocated.clone(), [1; 16], 42).unwrap();
        let img = write_all(writer, &disk, max);
        let mut all_cuts = cuts_every(img.len(), chunk);
        all_cuts.extend(cuts);
        let run = read(&img, &all_cuts, disk.len());
        let data_bytes: u64 = allocated
            .iter()
            .map(|&b| (u64::from(b) * BLOCK + BLOCK).min(size) - u64::from(b) * BLOCK)
            .sum();
        prop_assert_eq!(
            run.result,
            Ok(Summary { virtual_size: size, kind: Kind::Dynamic, data_bytes })
        );
        prop_assert_eq!(run.sunk, data_bytes);
        prop_assert!(run.disk == disk, "the disk read back differs");
    }

    #[test]
    fn fixed_reads_back(
        sectors in 0u64..=5000,
        seed in any::<u64>(),
        chunk in 1usize..70_000,
        cuts in prop::collection::vec(any::<usize>(), 0..20),
    ) {
        let mut disk = vec![0u8; (sectors * SECTOR) as usize];
        fill(&mut disk, seed);
        let img = fixed_image(&disk);
        let mut all_cuts = cuts_every(img.len(), chunk);
        all_cuts.extend(cuts);
        let run = read(&img, &all_cuts, disk.len());
        let size = disk.len() as u64;
        prop_assert_eq!(
            run.result,
            Ok(Summary { virtual_size: size, kind: Kind::Fixed, data_bytes: size })
        );
        prop_assert!(run.disk == disk, "the disk read back differs");
    }

    /// Hand-made layouts: any block size the reader takes (up to 64 KiB
    /// here), blocks in any file order with gaps, random bitmaps, more
    /// BAT entries than the disk needs.
    #[test]
    fn reader_takes_any_layout(
        shift in 12u32..=16,
        blocks_needed in 0u32..12,
        spare_entries in 0u32..140,
        size_cut in 0u64..128,
        present in any::<u64>(),
        order_seed in any::<u64>(),
        gaps in prop::collection::vec(0u64..3, 12),
        bitmap_seed in any::<u64>(),
        data_seed in any::<u64>(),
        chunk in 1usize..9000,
    ) {
        let block_size = 1u32 << shift;
        let bs = u64::from(block_size);
        let sectors_per_block = bs / SECTOR;
        // The size: within the last needed block, whole sectors.
        let size = if blocks_needed == 0 {
            0
        } else {
            (u64::from(blocks_needed) * bs - (size_cut % sectors_per_block) * SECTOR).max(SECTOR)
        };
        let entries = blocks_needed + spare_entries;
        let mut chosen: Vec<u32> = (0..blocks_needed).filter(|b| present >> b & 1 == 1).collect();
        // A shuffle of the file order.
        let mut s = order_seed | 1;
        for i in (1..chosen.len()).rev() {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            chosen.swap(i, (s % (i as u64 + 1)) as usize);
        }
        let bat_end = 1536 + xcp_vhd::format::bat_bytes(entries);
        let span = bitmap_bytes(block_size) + bs;
        let mut at = bat_end;
        let mut blocks = Vec::new();
        let mut expected = vec![0u8; size as usize];
        let mut expected_bytes = 0;
        for (k, &index) in chosen.iter().enumerate() {
            at += gaps[k] * SECTOR;
            let mut bitmap = vec![0u8; bitmap_bytes(block_size) as usize];
            fill(&mut bitmap, bitmap_seed ^ u64::from(index));
            let mut data = vec![0u8; bs as usize];
            fill(&mut data, data_seed ^ u64::from(index));
            for sector in 0..sectors_per_block {
                let disk_at = u64::from(index) * bs + sector * SECTOR;
                let bit = bitmap[(sector / 8) as usize] >> (7 - sector % 8) & 1 == 1;
                if bit && disk_at < size {
                    let from = (sector * SECTOR) as usize;
                    expected[disk_at as usize..(disk_at + SECTOR) as usize]
                        .copy_from_slice(&data[from..from + 512]);
                    expected_bytes += SECTOR;
                }
            }
            blocks.push(Block { index, file_offset: at, bitmap, data });
            at += span;
        }
        let len = at + 3 * SECTOR + 512;
        let img = dynamic_image(size, block_size, entries, &blocks, len);
        let run = read(&img, &cuts_every(img.len(), chunk), size as usize);
        prop_assert_eq!(
            run.result,
            Ok(Summary { virtual_size: size, kind: Kind::Dynamic, data_bytes: expected_bytes })
        );
        prop_assert_eq!(run.sunk, expected_bytes);
        prop_assert!(run.disk == expected, "the disk read back differs");
    }
}

#[test]
fn writer_layout_is_the_expected_one() {
    // 5 MiB: blocks 0, 1, 2 (the last half used); 0 and 2 allocated.
    let size = 5 << 20;
    let w = Writer::dynamic(size, vec![0, 2], [3; 16], 7).unwrap();
    let bat = 1536 + 512;
    let span = 512 + BLOCK;
    assert_eq!(w.total_len(), bat + 2 * span + 512);
    let mut disk = vec![0u8; size as usize];
    fill(&mut disk, 99);
    let img = write_all(w, &disk, 4096);
    let entry = |i: usize| u32::from_be_bytes(img[1536 + 4 * i..1540 + 4 * i].try_into().unwrap());
    assert_eq!(entry(0), (bat / 512) as u32);
    assert_eq!(entry(1), UNUSED);
    assert_eq!(entry(2), ((bat + span) / 512) as u32);
    assert_eq!(entry(3), UNUSED, "the BAT's padding is unused entries");
    // The last block: 1 MiB of data, then zeros up to the block's end.
    let last = (bat + span + 512) as usize;
    assert_eq!(&img[last..last + (1 << 20)], &disk[4 << 20..]);
    assert!(img[last + (1 << 20)..last + (2 << 20)]
        .iter()
        .all(|&b| b == 0));
    assert_eq!(&img[..512], &img[img.len() - 512..]);
}

#[test]
fn writer_refuses_bad_requests() {
    use xcp_vhd::VhdError;
    assert_eq!(
        Writer::dynamic(1000, vec![], [0; 16], 0).err(),
        Some(VhdError::Invalid(
            "the virtual size is not a multiple of 512"
        ))
    );
    assert!(matches!(
        Writer::dynamic(2041 << 30, vec![], [0; 16], 0),
        Err(VhdError::TooLarge(_))
    ));
    assert!(matches!(
        Writer::dynamic(4 << 20, vec![1, 0], [0; 16], 0),
        Err(VhdError::Invalid(_))
    ));
    assert!(matches!(
        Writer::dynamic(4 << 20, vec![1, 1], [0; 16], 0),
        Err(VhdError::Invalid(_))
    ));
    assert!(matches!(
        Writer::dynamic(4 << 20, vec![2], [0; 16], 0),
        Err(VhdError::Invalid(_))
    ));
    // The largest disk: its BAT entries fit.
    let w = Writer::dynamic(2040 << 30, vec![0, 1_044_479], [0; 16], 0).unwrap();
    assert_eq!(
        w.total_len(),
        1536 + 1_044_480 * 4 + 2 * (512 + BLOCK) + 512
    );
}

#[test]
fn writer_pieces_of_512() {
    // The smallest piece size still makes a whole, readable stream.
    let size = 3 << 20;
    let mut disk = vec![0u8; size as usize];
    fill(&mut disk, 5);
    disk[2 << 20..].fill(0);
    let img = write_all(
        Writer::dynamic(size, vec![0], [1; 16], 1).unwrap(),
        &disk,
        1,
    );
    let run = read(&img, &[], size as usize);
    assert_eq!(run.result.unwrap().data_bytes, 2 << 20);
    assert!(run.disk == disk);
}

//! Hostile streams: each a clear error, never a panic, never a sink call
//! past the virtual size.

mod common;

use common::*;
use proptest::prelude::*;
use xcp_vhd::format::{bitmap_bytes, DiskType, Footer, NO_OFFSET};
use xcp_vhd::{Kind, Limits, Reader, Summary, VhdError, Writer, DEFAULT_BLOCK_SIZE, SECTOR};

const MIB: u64 = 1 << 20;
const BLOCK: u64 = DEFAULT_BLOCK_SIZE as u64;
/// The base image's layout (5 MiB, blocks 0 and 2 allocated).
const BAT: usize = 1536;
const BLOCK0: usize = 2048;
const SPAN: usize = 512 + BLOCK as usize;

type E = VhdError<&'static str>;

/// A 5 MiB disk, blocks 0 and 2 allocated; the disk and its image.
fn base() -> (Vec<u8>, Vec<u8>) {
    let size = 5 * MIB;
    let mut disk = vec![0u8; size as usize];
    for (i, b) in disk.iter_mut().enumerate() {
        if (i as u64) < BLOCK || (i as u64) >= 2 * BLOCK {
            *b = (i / 512) as u8 ^ (i % 251) as u8 | 1;
        }
    }
    let img = write_all(
        Writer::dynamic(size, vec![0, 2], [4; 16], 8).unwrap(),
        &disk,
        65536,
    );
    (disk, img)
}

fn format(reason: &'static str) -> E {
    VhdError::Format(reason)
}

#[test]
fn the_base_image_reads() {
    let (disk, img) = base();
    let run = read(&img, &[], disk.len());
    assert_eq!(
        run.result,
        Ok(Summary {
            virtual_size: 5 * MIB,
            kind: Kind::Dynamic,
            data_bytes: 3 * MIB
        })
    );
    assert!(run.disk == disk);
}

#[test]
fn truncated_streams() {
    let (disk, img) = base();
    let mut cuts: Vec<usize> = (0..12).map(|k| k * 256).collect();
    cuts.extend([
        1,
        7,
        8,
        9,
        511,
        513,
        2560,
        BLOCK0 + SPAN,
        img.len() - 513,
        img.len() - 512,
    ]);
    cuts.extend([img.len() - 511, img.len() - 1]);
    for cut in cuts {
        // Declared whole, sent in part.
        let run = read_with(
            &img[..cut],
            img.len() as u64,
            &[],
            Limits::default(),
            disk.len(),
        );
        assert_eq!(run.result, Err(VhdError::Truncated), "cut at {cut}");
        // Declared as the part: a broken image.
        let run = read(&img[..cut], &[], disk.len());
        assert!(run.result.is_err(), "cut at {cut} read as {:?}", run.result);
    }
    let fixed = fixed_image(&disk[..4096]);
    for cut in [0, 100, 512, 4096, 4097, 4607] {
        let run = read_with(
            &fixed[..cut],
            fixed.len() as u64,
            &[],
            Limits::default(),
            4096,
        );
        assert_eq!(run.result, Err(VhdError::Truncated), "fixed cut at {cut}");
    }
}

#[test]
fn shorter_than_a_footer() {
    let run = read(&[0u8; 100], &[], 0);
    assert_eq!(
        run.result,
        Err(format("shorter than a VHD footer (512 bytes)"))
    );
    let r = Reader::new(3, Limits::default());
    assert_eq!(
        r.finish::<()>(),
        Err(VhdError::Format("shorter than a VHD footer (512 bytes)"))
    );
}

#[test]
fn trailing_bytes() {
    let (disk, mut img) = base();
    let len = img.len() as u64;
    img.push(0);
    let run = read_with(&img, len, &[], Limits::default(), disk.len());
    assert_eq!(run.result, Err(VhdError::TrailingBytes));
}

#[test]
fn bad_checksums_and_cookies() {
    let (_, img) = base();
    let mut bad = img.clone();
    bad[100] = 1;
    assert_eq!(
        error_of(&bad),
        format("the footer copy's checksum does not match")
    );
    let mut bad = img.clone();
    bad[512 + 600] = 1;
    assert_eq!(
        error_of(&bad),
        format("the dynamic header's checksum does not match")
    );
    let mut bad = img.clone();
    bad[512] = b'X';
    reseal(&mut bad);
    assert_eq!(
        error_of(&bad),
        format("no dynamic header (\"cxsparse\") at the footer's data offset")
    );
    // The footer at the end: not the copy (a byte, or the cookie).
    let n = img.len();
    for at in [n - 512, n - 300, n - 1] {
        let mut bad = img.clone();
        bad[at] ^= 0x40;
        assert_eq!(
            error_of(&bad),
            format("the footer differs from its copy at offset 0")
        );
    }
}

#[test]
fn overlapping_blocks() {
    let (_, img) = base();
    let entry0 = u32::from_be_bytes(img[BAT..BAT + 4].try_into().unwrap());
    for other in [entry0, entry0 + 1, entry0 + (SPAN / 512) as u32 - 1] {
        let mut bad = img.clone();
        put32(&mut bad, BAT + 8, other);
        assert_eq!(
            error_of(&bad),
            format("two blocks overlap"),
            "block 2 at sector {other}"
        );
    }
    // Right after block 0 (where the writer put it) is fine.
    let mut ok = img.clone();
    put32(&mut ok, BAT + 8, entry0 + (SPAN / 512) as u32);
    assert!(read(&ok, &[], (5 * MIB) as usize).result.is_ok());
}

#[test]
fn blocks_into_the_metadata() {
    let (_, img) = base();
    // Into the footer copy, the header, the BAT.
    for sector in [0, 1, 2, 3] {
        let mut bad = img.clone();
        put32(&mut bad, BAT, sector);
        assert_eq!(
            error_of(&bad),
            format("a block overlaps the header or the BAT"),
            "block at sector {sector}"
        );
    }
    // Past the footer, or into it.
    let n = img.len() as u32 / 512;
    for sector in [n - 2, n - 1, n, u32::MAX - 1] {
        let mut bad = img.clone();
        put32(&mut bad, BAT + 8, sector);
        assert_eq!(
            error_of(&bad),
            format("a block reaches past the footer"),
            "at {sector}"
        );
    }
}

#[test]
fn a_block_past_the_virtual_size() {
    let (_, mut img) = base();
    // Four BAT entries (one spare), the spare one present.
    put32(&mut img, 512 + 28, 4);
    let entry2 = u32::from_be_bytes(img[BAT + 8..BAT + 12].try_into().unwrap());
    put32(&mut img, BAT + 8, UNUSED);
    put32(&mut img, BAT + 12, entry2);
    reseal(&mut img);
    assert_eq!(
        error_of(&img),
        format("a block past the virtual size is present")
    );
}

#[test]
fn bat_entries_and_block_sizes() {
    let (_, img) = base();
    let with = |entries: u32, block_size: u32| {
        let mut bad = img.clone();
        put32(&mut bad, 512 + 28, entries);
        put32(&mut bad, 512 + 32, block_size);
        reseal(&mut bad);
        bad
    };
    let too_many = VhdError::TooLarge("more BAT entries than the limit");
    assert_eq!(error_of(&with(u32::MAX, DEFAULT_BLOCK_SIZE)), too_many);
    assert_eq!(error_of(&with(65537, DEFAULT_BLOCK_SIZE)), too_many);
    let run = read_with(
        &img,
        img.len() as u64,
        &[],
        Limits {
            max_bat_entries: 2,
            ..Limits::default()
        },
        0,
    );
    assert_eq!(run.result, Err(too_many));
    assert_eq!(run.sunk, 0);
    let not_pow2 = format("the block size is not a power of two");
    for size in [0, 3 << 20, (2 << 20) + 512, u32::MAX] {
        assert_eq!(error_of(&with(3, size)), not_pow2, "block size {size}");
    }
    let unsupported = VhdError::Unsupported("a block size below 4 KiB or above 16 MiB");
    for size in [1, 512, 2048, 32 << 20, 1 << 31] {
        assert_eq!(error_of(&with(3, size)), unsupported, "block size {size}");
    }
    assert_eq!(
        error_of(&with(3, 1 << 20)),
        format("the BAT does not cover the virtual size")
    );
    assert_eq!(
        error_of(&with(2, DEFAULT_BLOCK_SIZE)),
        format("the BAT does not cover the virtual size")
    );
    // A BAT larger than the stream.
    let huge = with(2_000_000, 4096);
    let limits = Limits {
        max_bat_entries: u32::MAX,
        ..Limits::default()
    };
    let run = read_with(&huge, huge.len() as u64, &[], limits, 0);
    assert_eq!(run.result, Err(format("the BAT reaches past the footer")));
}

#[test]
fn virtual_sizes() {
    let (_, img) = base();
    let with_size = |size: u64| {
        let mut bad = img.clone();
        put64(&mut bad, 48, size);
        reseal(&mut bad);
        bad
    };
    let not_whole = format("the virtual size is not a multiple of 512");
    assert_eq!(error_of(&with_size(5 * MIB + 1)), not_whole);
    assert_eq!(error_of(&with_size(5 * MIB - 100)), not_whole);
    let too_large = VhdError::TooLarge("the virtual size is above the limit");
    assert_eq!(error_of(&with_size(u64::MAX - 511)), too_large);
    assert_eq!(error_of(&with_size(2041 << 30)), too_large);
    let limits = Limits {
        max_virtual_size: 4 * MIB,
        ..Limits::default()
    };
    let run = read_with(&img, img.len() as u64, &[], limits, 0);
    assert_eq!(run.result, Err(too_large));
    assert_eq!(run.sunk, 0, "refused before any data");
    // Smaller than a present block's start: that block is past the size.
    assert_eq!(
        error_of(&with_size(4 * MIB)),
        format("a block past the virtual size is present")
    );
}

#[test]
fn disk_types_and_versions() {
    let (_, img) = base();
    let with = |at: usize, v: u32| {
        let mut bad = img.clone();
        put32(&mut bad, at, v);
        reseal(&mut bad);
        bad
    };
    assert_eq!(
        error_of(&with(60, 4)),
        VhdError::Unsupported(
            "a differencing disk (it needs its parent): import a dynamic or fixed VHD"
        )
    );
    assert_eq!(
        error_of(&with(60, 2)),
        format("a fixed disk's footer at the start of the stream")
    );
    for t in [0, 1, 5, 0xFFFF_FFFF] {
        assert_eq!(error_of(&with(60, t)), format("unknown disk type"));
    }
    assert_eq!(
        error_of(&with(12, 0x0002_0000)),
        VhdError::Unsupported("the file format version is not 1.x")
    );
    assert_eq!(
        error_of(&with(512 + 24, 0)),
        VhdError::Unsupported("the dynamic header version is not 1.x")
    );
}

#[test]
fn header_and_bat_offsets() {
    let (_, img) = base();
    let outside = format("the dynamic header is outside the stream");
    for offset in [
        0,
        100,
        511,
        NO_OFFSET,
        img.len() as u64 - 1024,
        img.len() as u64,
    ] {
        let mut bad = img.clone();
        put64(&mut bad, 16, offset);
        reseal(&mut bad);
        assert_eq!(error_of(&bad), outside, "header at {offset}");
    }
    let with_table = |offset: u64| {
        let mut bad = img.clone();
        put64(&mut bad, 512 + 16, offset);
        reseal(&mut bad);
        bad
    };
    for offset in [0, 512, 1024, 1535] {
        assert_eq!(
            error_of(&with_table(offset)),
            format("the BAT overlaps the header or the footer copy"),
            "BAT at {offset}"
        );
    }
    for offset in [img.len() as u64 - 512, img.len() as u64, u64::MAX] {
        assert_eq!(
            error_of(&with_table(offset)),
            format("the BAT reaches past the footer")
        );
    }
}

/// A valid layout the reader cannot take in one pass: the BAT before
/// the header.
#[test]
fn bat_before_the_header() {
    let size = 4 * MIB;
    let mut img = vec![0u8; 3072];
    let mut footer = Footer::new(DiskType::Dynamic, size, [1; 16], 0);
    footer.data_offset = 1024;
    img[..512].copy_from_slice(&footer.emit());
    img[512..1024].fill(0xFF);
    let header = xcp_vhd::format::DynamicHeader {
        data_offset: NO_OFFSET,
        table_offset: 512,
        header_version: 0x0001_0000,
        max_table_entries: 2,
        block_size: DEFAULT_BLOCK_SIZE,
    };
    img[1024..2048].copy_from_slice(&header.emit());
    let copy = img[..512].to_vec();
    img[2560..].copy_from_slice(&copy);
    assert_eq!(
        error_of(&img),
        VhdError::Unsupported(
            "the BAT before the dynamic header (a stream is read once, front to back)"
        )
    );
}

/// A valid layout the reader cannot take in one pass: a block between
/// the header and the BAT.
#[test]
fn a_block_before_the_bat() {
    let block = 4096u32;
    let span = bitmap_bytes(block) + u64::from(block);
    let bat_at = 1536 + span;
    let len = bat_at + 512 + 512;
    let mut img = dynamic_image(8192, block, 2, &[], len);
    put64(&mut img, 512 + 16, bat_at);
    img[bat_at as usize..bat_at as usize + 512].fill(0xFF);
    put32(&mut img, bat_at as usize, 3);
    reseal(&mut img);
    assert_eq!(
        error_of(&img),
        VhdError::Unsupported("a block before the BAT (a stream is read once, front to back)")
    );
}

#[test]
fn the_bitmap_is_honoured() {
    let (disk, mut img) = base();
    // Block 0: sectors 0..8 absent, 8 present, 9..16 absent; block 2
    // (file order second) all absent.
    img[BLOCK0] = 0;
    img[BLOCK0 + 1] = 0x80;
    img[BLOCK0 + SPAN..BLOCK0 + SPAN + 512].fill(0);
    let run = read(&img, &[3, 4097, 1 << 20], disk.len());
    let data = BLOCK - 15 * SECTOR;
    assert_eq!(run.result.unwrap().data_bytes, data);
    assert_eq!(run.sunk, data);
    let mut expected = disk.clone();
    expected[..4096].fill(0);
    expected[4096..4608].copy_from_slice(&disk[4096..4608]);
    expected[4608..8192].fill(0);
    expected[2 * BLOCK as usize..].fill(0);
    assert!(run.disk == expected);
}

#[test]
fn blocks_in_any_file_order() {
    let (disk, mut img) = base();
    // Swap the BAT entries: block 0's file data is now block 2's.
    let e0: [u8; 4] = img[BAT..BAT + 4].try_into().unwrap();
    let e2: [u8; 4] = img[BAT + 8..BAT + 12].try_into().unwrap();
    img[BAT..BAT + 4].copy_from_slice(&e2);
    img[BAT + 8..BAT + 12].copy_from_slice(&e0);
    let run = read(&img, &[], disk.len());
    let mut expected = vec![0u8; disk.len()];
    let b = BLOCK as usize;
    // Block 2 gets the first half of block 0's data (the disk ends there).
    expected[2 * b..].copy_from_slice(&disk[..b / 2]);
    // Block 0 gets block 2's whole 2 MiB in the file: 1 MiB of data and
    // the writer's zero padding.
    expected[..b / 2].copy_from_slice(&disk[2 * b..]);
    assert_eq!(run.result.unwrap().data_bytes, BLOCK + BLOCK / 2);
    assert!(run.disk == expected);
}

#[test]
fn fixed_disks() {
    let disk: Vec<u8> = (0..8192u32).map(|i| (i * 7) as u8).collect();
    let img = fixed_image(&disk);
    let run = read(&img, &[1, 513], disk.len());
    assert_eq!(
        run.result,
        Ok(Summary {
            virtual_size: 8192,
            kind: Kind::Fixed,
            data_bytes: 8192
        })
    );
    assert!(run.disk == disk);
    // Only a footer: a disk of size 0.
    let empty = fixed_image(&[]);
    assert_eq!(
        read(&empty, &[], 0).result,
        Ok(Summary {
            virtual_size: 0,
            kind: Kind::Fixed,
            data_bytes: 0
        })
    );
    // The footer: bad checksum, bad cookie, another size, dynamic.
    let n = img.len();
    let mut bad = img.clone();
    bad[n - 100] = 1;
    assert_eq!(
        error_of(&bad),
        format("the footer's checksum does not match")
    );
    let mut bad = img.clone();
    bad[n - 512] = b'C';
    assert_eq!(
        error_of(&bad),
        format("no footer (\"conectix\") in the last 512 bytes")
    );
    let mut other = disk.clone();
    other.extend_from_slice(&Footer::new(DiskType::Fixed, 4096, [0; 16], 0).emit());
    assert_eq!(
        error_of(&other),
        format("the footer's size is not the length of the data")
    );
    let mut other = disk.clone();
    other.extend_from_slice(&Footer::new(DiskType::Dynamic, 8192, [0; 16], 0).emit());
    assert_eq!(
        error_of(&other),
        format("the footer is not a fixed disk's, and there is no footer copy at the start")
    );
    // Not whole sectors.
    assert_eq!(
        error_of(&[1u8; 1000]),
        format("neither a dynamic disk (no footer copy at the start) nor a fixed one (its length is not whole sectors)")
    );
    // Above the limit: refused before any data.
    let limits = Limits {
        max_virtual_size: 4096,
        ..Limits::default()
    };
    let run = read_with(&img, img.len() as u64, &[], limits, disk.len());
    assert_eq!(
        run.result,
        Err(VhdError::TooLarge("the virtual size is above the limit"))
    );
    assert_eq!(run.sunk, 0);
}

#[test]
fn errors_stop_the_reader() {
    let (_, img) = base();
    let mut bad = img.clone();
    bad[100] = 1;
    let mut reader = Reader::new(img.len() as u64, Limits::default());
    let mut sink = |_: u64, _: &[u8]| -> Result<(), ()> { Ok(()) };
    assert!(matches!(
        reader.feed(&bad[..600], &mut sink),
        Err(VhdError::Format(_))
    ));
    assert_eq!(
        reader.feed(&img[600..700], &mut sink),
        Err(VhdError::Failed)
    );
    assert_eq!(reader.finish::<()>(), Err(VhdError::Failed));
    // A sink's error is passed on, then the reader is failed.
    let mut reader = Reader::new(img.len() as u64, Limits::default());
    let mut calls = 0;
    let mut sink = |_: u64, _: &[u8]| -> Result<(), &str> {
        calls += 1;
        Err("disk full")
    };
    assert_eq!(
        reader.feed(&img[..1 << 20], &mut sink),
        Err(VhdError::Sink("disk full"))
    );
    assert_eq!(
        reader.feed(&img[1 << 20..], &mut sink),
        Err(VhdError::Failed)
    );
    assert_eq!(calls, 1);
}

#[test]
fn virtual_size_is_known_before_the_data() {
    let (_, img) = base();
    let mut reader = Reader::new(img.len() as u64, Limits::default());
    let mut sink = |_: u64, _: &[u8]| -> Result<(), ()> { Ok(()) };
    reader.feed(&img[..1535], &mut sink).unwrap();
    assert_eq!(reader.virtual_size(), None);
    reader.feed(&img[1535..1536], &mut sink).unwrap();
    assert_eq!(reader.virtual_size(), Some(5 * MIB));
}

#[test]
fn messages_read_well() {
    let e: VhdError<&str> = format("two blocks overlap");
    assert_eq!(e.to_string(), "VHD: not a valid VHD: two blocks overlap");
    let e: VhdError<&str> = VhdError::Sink("disk full");
    assert_eq!(e.to_string(), "disk full");
    let e: VhdError<&str> = VhdError::Truncated;
    assert_eq!(e.to_string(), "VHD: the stream ended early");
}

/// A small dynamic image (4 KiB blocks, 6 entries, 4 blocks out of order
/// with gaps) for the mutation proptest.
fn small_image() -> Vec<u8> {
    let block = 4096u32;
    let span = bitmap_bytes(block) + u64::from(block);
    let mut blocks = Vec::new();
    let mut at = 2048 + 512;
    for (k, index) in [3u32, 0, 5, 1].into_iter().enumerate() {
        let mut bitmap = vec![0u8; 512];
        bitmap[0] = [0xFF, 0xA5, 0x0F, 0x81][k];
        let data: Vec<u8> = (0..4096u32).map(|i| (i as u8) ^ index as u8).collect();
        blocks.push(Block {
            index,
            file_offset: at,
            bitmap,
            data,
        });
        at += span + 512 * k as u64;
    }
    dynamic_image(6 * 4096 - 1024, block, 6, &blocks, at + 512)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random bytes, a random declared length: no panic, sink in bounds.
    #[test]
    fn random_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..4096),
        cookie in any::<bool>(),
        extra in 0u64..2048,
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut bytes = bytes;
        if cookie && bytes.len() >= 8 {
            bytes[..8].copy_from_slice(b"conectix");
        }
        let len = bytes.len() as u64 + extra;
        let run = read_with(&bytes, len, &cuts, Limits::default(), 8 << 20);
        if extra > 0 {
            prop_assert!(run.result.is_err());
        }
    }

    /// Mutations of a valid image (resealed or not): no panic, sink in
    /// bounds; an image the reader takes has the virtual size its footer
    /// says.
    #[test]
    fn mutated_images(
        patches in prop::collection::vec((any::<u16>(), any::<u8>(), any::<bool>()), 1..8),
        reseal_after in any::<bool>(),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut img = small_image();
        let n = img.len();
        for (at, byte, meta) in patches {
            // Half the patches in the metadata (footer copy, header, BAT).
            let at = if meta { at as usize % 2048 } else { at as usize % n };
            img[at] = byte;
        }
        if reseal_after {
            reseal(&mut img);
        }
        let run = read(&img, &cuts, 8 << 20);
        if let Ok(summary) = run.result {
            prop_assert_eq!(summary.data_bytes, run.sunk);
            prop_assert!(summary.virtual_size <= 8 << 20);
        }
    }
}

#[test]
fn the_small_image_reads() {
    let img = small_image();
    let run = read(&img, &[], 6 * 4096);
    // Bitmap bits of sectors 0..8 of each block: 0xFF (block 3: 8), 0xA5
    // (block 0: 4), 0x0F (block 5: sectors 4..8, of which 4 and 5 are
    // before the disk's end, 6 sectors into block 5), 0x81 (block 1: 2).
    assert_eq!(run.result.unwrap().data_bytes, (8 + 4 + 2 + 2) * 512);
}

/// The fuzz target's seeds (`mode`, cut count, cuts, stream) are valid
/// images, so the fuzzer starts from streams that read.
#[test]
fn fuzz_seeds_read() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/vhd_read");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("the seed corpus") {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        let ncuts = usize::from(data[1]);
        let stream = &data[2 + 2 * ncuts..];
        let limits = if data[0] & 0x80 != 0 {
            Limits {
                max_virtual_size: 1 << 20,
                max_bat_entries: 64,
            }
        } else {
            Limits::default()
        };
        let run = read_with(stream, stream.len() as u64, &[], limits, 1 << 20);
        let summary = run.result.expect("a seed reads");
        assert!(summary.data_bytes > 0 || summary.virtual_size == 0 || stream.len() < 3000);
        seen += 1;
    }
    assert!(seen >= 5);
}

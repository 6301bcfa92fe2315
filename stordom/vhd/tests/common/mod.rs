//! Helpers shared by the tests: images made by hand or by the Writer, and
//! a reader run that checks every sink call.
#![allow(dead_code, reason = "each test file uses a part")]

use xcp_vhd::format::{
    bat_bytes, bitmap_bytes, checksum, DiskType, DynamicHeader, Footer, BAT_UNUSED, NO_OFFSET,
    VERSION_1_0,
};
use xcp_vhd::{Limits, Piece, Reader, Summary, VhdError, Writer, MAX_SINK_LEN, SECTOR};

/// A block of a hand-made dynamic image.
#[derive(Clone, Debug)]
pub struct Block {
    /// Its BAT index.
    pub index: u32,
    /// Its byte offset in the file (a multiple of 512).
    pub file_offset: u64,
    /// Its sector bitmap (padded to 512 bytes by `dynamic_image`).
    pub bitmap: Vec<u8>,
    /// Its data (block_size bytes).
    pub data: Vec<u8>,
}

/// A dynamic image: footer copy at 0, header at 512, BAT at 1536 with
/// `entries` entries, `blocks` where they say, the footer at `len - 512`.
pub fn dynamic_image(
    size: u64,
    block_size: u32,
    entries: u32,
    blocks: &[Block],
    len: u64,
) -> Vec<u8> {
    let mut img = vec![0u8; len as usize];
    let footer = Footer::new(DiskType::Dynamic, size, [9; 16], 77).emit();
    img[..512].copy_from_slice(&footer);
    let header = DynamicHeader {
        data_offset: NO_OFFSET,
        table_offset: 1536,
        header_version: VERSION_1_0,
        max_table_entries: entries,
        block_size,
    }
    .emit();
    img[512..1536].copy_from_slice(&header);
    let bat_len = bat_bytes(entries) as usize;
    img[1536..1536 + bat_len].fill(0xFF);
    for b in blocks {
        let at = 1536 + 4 * b.index as usize;
        img[at..at + 4].copy_from_slice(&((b.file_offset / SECTOR) as u32).to_be_bytes());
        let start = b.file_offset as usize;
        img[start..start + b.bitmap.len()].copy_from_slice(&b.bitmap);
        let data_at = start + bitmap_bytes(block_size) as usize;
        img[data_at..data_at + b.data.len()].copy_from_slice(&b.data);
    }
    let n = img.len();
    img[n - 512..].copy_from_slice(&footer);
    img
}

/// A fixed image of `disk`.
pub fn fixed_image(disk: &[u8]) -> Vec<u8> {
    let mut img = disk.to_vec();
    img.extend_from_slice(&Footer::new(DiskType::Fixed, disk.len() as u64, [5; 16], 1).emit());
    img
}

/// Recomputes the checksums of the header (at the footer copy's data
/// offset, if inside and not over the footer copy) and of the footer
/// copy, and makes the footer the copy.
pub fn reseal(img: &mut [u8]) {
    let header = u64::from_be_bytes(img[16..24].try_into().unwrap());
    if header >= 512 && header.saturating_add(1024) <= img.len() as u64 {
        let h = header as usize;
        let sum = checksum(&img[h..h + 1024], 36);
        img[h + 36..h + 40].copy_from_slice(&sum.to_be_bytes());
    }
    let sum = checksum(&img[..512], 64);
    img[64..68].copy_from_slice(&sum.to_be_bytes());
    let n = img.len();
    let copy: Vec<u8> = img[..512].to_vec();
    img[n - 512..].copy_from_slice(&copy);
}

/// Sets a big-endian u32 at `at`.
pub fn put32(img: &mut [u8], at: usize, v: u32) {
    img[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// Sets a big-endian u64 at `at`.
pub fn put64(img: &mut [u8], at: usize, v: u64) {
    img[at..at + 8].copy_from_slice(&v.to_be_bytes());
}

/// The whole stream of `writer`, pieces of at most `max` bytes, `Data`
/// read from `disk`. Checks each piece's bounds.
pub fn write_all(mut writer: Writer, disk: &[u8], max: usize) -> Vec<u8> {
    let total = writer.total_len();
    let mut out = Vec::new();
    loop {
        match writer.next(max) {
            Piece::Bytes(b) => {
                assert!(
                    !b.is_empty() && b.len() <= max.max(512),
                    "Bytes of {}",
                    b.len()
                );
                out.extend_from_slice(&b);
            }
            Piece::Data { offset, len } => {
                assert_eq!(offset % SECTOR, 0);
                assert_eq!(u64::from(len) % SECTOR, 0);
                assert!(len > 0 && len as usize <= max.max(512));
                let end = offset + u64::from(len);
                assert!(
                    end <= disk.len() as u64,
                    "Data past the disk: {offset}+{len}"
                );
                out.extend_from_slice(&disk[offset as usize..end as usize]);
            }
            Piece::End => break,
        }
        assert!(out.len() as u64 <= total);
    }
    assert_eq!(out.len() as u64, total, "total_len is exact");
    assert_eq!(writer.next(max), Piece::End);
    out
}

/// What a reader run gave.
#[derive(Debug)]
pub struct Run {
    /// The disk as the sink wrote it (zeros elsewhere), `cap` bytes.
    pub disk: Vec<u8>,
    /// The bytes the sink got.
    pub sunk: u64,
    /// The reader's result.
    pub result: Result<Summary, VhdError<&'static str>>,
}

/// Feeds `img` to a reader in pieces cut at `cuts` (offsets, any order,
/// any value: taken modulo the length), then finishes. Every sink call is
/// checked: offset and length multiples of 512, length ≤ 64 KiB, the end
/// within the virtual size (the declared one for a fixed stream) and
/// within `cap`.
pub fn read_with(img: &[u8], stream_len: u64, cuts: &[usize], limits: Limits, cap: usize) -> Run {
    let mut reader = Reader::new(stream_len, limits);
    let mut disk = vec![0u8; cap];
    let mut sunk = 0u64;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (img.len() + 1)).collect();
    points.push(0);
    points.push(img.len());
    points.sort_unstable();
    points.dedup();
    let mut result = Ok(());
    let mut max_end = 0u64;
    for pair in points.windows(2) {
        let piece = &img[pair[0]..pair[1]];
        let bound = reader.virtual_size();
        let mut sink = |offset: u64, data: &[u8]| -> Result<(), &'static str> {
            assert_eq!(offset % SECTOR, 0, "sink offset {offset}");
            assert_eq!(data.len() as u64 % SECTOR, 0, "sink len {}", data.len());
            assert!(
                !data.is_empty() && data.len() <= MAX_SINK_LEN,
                "sink len {}",
                data.len()
            );
            let end = offset + data.len() as u64;
            if let Some(limit) = bound {
                assert!(end <= limit, "sink past the virtual size: {end} > {limit}");
            }
            assert!(end <= cap as u64, "sink past the test's disk: {end}");
            disk[offset as usize..end as usize].copy_from_slice(data);
            sunk += data.len() as u64;
            max_end = max_end.max(end);
            Ok(())
        };
        result = reader.feed(piece, &mut sink);
        // Known before any data of a dynamic disk; a fixed disk's is the
        // stream's length less the footer.
        let size = reader
            .virtual_size()
            .unwrap_or(stream_len.saturating_sub(512));
        assert!(
            max_end <= size,
            "sink past the virtual size: {max_end} > {size}"
        );
        if result.is_err() {
            break;
        }
    }
    let result = match result {
        Ok(()) => reader.finish(),
        Err(e) => Err(e),
    };
    Run { disk, sunk, result }
}

/// `read_with` the whole stream, default limits.
pub fn read(img: &[u8], cuts: &[usize], cap: usize) -> Run {
    read_with(img, img.len() as u64, cuts, Limits::default(), cap)
}

/// The error of reading `img` whole (panics if it reads).
#[track_caller]
pub fn error_of(img: &[u8]) -> VhdError<&'static str> {
    let run = read(img, &[], 64 << 20);
    run.result.expect_err("the image should be refused")
}

/// BAT_UNUSED, for the tests' tables.
pub const UNUSED: u32 = BAT_UNUSED;

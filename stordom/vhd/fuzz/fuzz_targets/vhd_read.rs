//! Fuzz target: a VHD stream of fuzzer bytes, a fuzzer-chosen declared
//! length and split points. No panic; every sink call whole sectors, at
//! most 64 KiB, within the virtual size; a stream that reads has handed
//! the sink exactly the bytes its summary says.
//!
//! read first: ../../src/reader.rs, ../../DESIGN.md.
//!
//! Input: `mode: u8`, `cuts: u8`, then `cuts` split points (u16, big
//! endian, taken modulo the length), then the stream. `mode & 3`: 0, 1
//! the stream's own length; 2 more (by `mode >> 2` sectors, the stream
//! ends early); 3 less (by `mode >> 2` bytes, it runs over). `mode & 0x80`
//! makes the limits small (1 MiB, 64 BAT entries).
#![no_main]

use libfuzzer_sys::fuzz_target;
use xcp_vhd::{Limits, Reader, MAX_SINK_LEN, SECTOR};

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let mode = data[0];
    let ncuts = usize::from(data[1]);
    let rest = &data[2..];
    let cut_bytes = (2 * ncuts).min(rest.len());
    let (cut_bytes, stream) = rest.split_at(cut_bytes);
    let len = stream.len() as u64;
    let shift = u64::from(mode >> 2);
    let stream_len = match mode & 3 {
        0 | 1 => len,
        2 => len + shift * SECTOR,
        _ => len.saturating_sub(shift),
    };
    let limits = if mode & 0x80 != 0 {
        Limits { max_virtual_size: 1 << 20, max_bat_entries: 64 }
    } else {
        Limits::default()
    };
    let mut points: Vec<usize> = cut_bytes
        .chunks_exact(2)
        .map(|c| usize::from(u16::from_be_bytes([c[0], c[1]])) % (stream.len() + 1))
        .collect();
    points.push(0);
    points.push(stream.len());
    points.sort_unstable();
    points.dedup();

    let mut reader = Reader::new(stream_len, limits);
    let mut sunk = 0u64;
    let mut max_end = 0u64;
    for pair in points.windows(2) {
        let bound = reader.virtual_size();
        let mut sink = |offset: u64, bytes: &[u8]| -> Result<(), ()> {
            assert_eq!(offset % SECTOR, 0);
            assert_eq!(bytes.len() as u64 % SECTOR, 0);
            assert!(!bytes.is_empty() && bytes.len() <= MAX_SINK_LEN);
            let end = offset + bytes.len() as u64;
            if let Some(limit) = bound {
                assert!(end <= limit, "sink past the virtual size: {end} > {limit}");
            }
            assert!(end <= limits.max_virtual_size);
            max_end = max_end.max(end);
            sunk += bytes.len() as u64;
            Ok(())
        };
        let fed = reader.feed(&stream[pair[0]..pair[1]], &mut sink);
        // A dynamic disk's size is known before its data; a fixed one's
        // data is the stream less the footer.
        let limit = reader.virtual_size().unwrap_or(stream_len.saturating_sub(512));
        assert!(max_end <= limit, "sink past the end: {max_end} > {limit}");
        if fed.is_err() {
            return;
        }
    }
    if let Ok(summary) = reader.finish::<()>() {
        assert_eq!(summary.data_bytes, sunk);
        assert!(summary.virtual_size <= limits.max_virtual_size);
        assert_eq!(stream_len, len);
    }
});

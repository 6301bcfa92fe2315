//! Fuzz target: the format-2 WAL reader against its promises. The input
//! makes a log of frames, then either cuts it anywhere (a torn tail: the
//! intact frames are a prefix and nothing is damage) or flips one bit of a
//! frame that is not the last (damage at that frame, every other frame
//! still read), or is read raw (no panic, offsets within the log).
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenapi::wal::{frame, log_header, read_log, LOG_HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    let raw = read_log(data);
    assert!(raw.good_len <= data.len());
    for d in &raw.damage {
        assert!(d.offset + d.len <= data.len());
    }
    let [mode, a, b, rest @ ..] = data else {
        return;
    };
    // Payloads: the rest, split at a byte the input picks.
    let payloads: Vec<&[u8]> = rest.split(|x| *x == *a).take(16).collect();
    let mut log = log_header().to_vec();
    let mut bounds = Vec::new();
    for (i, p) in payloads.iter().enumerate() {
        let start = log.len();
        log.extend(frame(i as u64, p));
        bounds.push((start, log.len()));
    }
    let pick = usize::from(*b) | (usize::from(*a) << 8);
    if mode % 2 == 0 {
        let cut = pick % (log.len() + 1);
        let r = read_log(&log[..cut]);
        assert!(r.damage.is_empty());
        assert!(r.good_len <= cut);
        assert_eq!(&r.payloads[..], &payloads[..r.payloads.len()]);
        if cut >= LOG_HEADER_LEN {
            let whole = bounds.iter().filter(|(_, e)| *e <= cut).count();
            assert_eq!(r.payloads.len(), whole);
        }
    } else if bounds.len() >= 2 {
        let k = usize::from(*mode / 2) % (bounds.len() - 1);
        let (start, end) = bounds[k];
        let at = start + pick % (end - start);
        log[at] ^= 1 << (mode % 8);
        let r = read_log(&log);
        let mut want = payloads.clone();
        want.remove(k);
        assert_eq!(r.damage.len(), 1);
        assert_eq!(r.damage[0].offset, start);
        assert_eq!(r.payloads, want);
    }
});

//! What a console writer does when its reader stops reading.
//!
//! A domain's PV console ring (2 KiB out) is drained by dom0's console
//! relay. If dom0 is busy (say, in a blocking xenstore call to the very
//! domain that is logging) or gone, a writer that waits for room forever
//! hangs its domain on a log line, and a domain that dom0 is waiting for
//! can deadlock it. So the writer waits for the reader only while the
//! reader makes progress: after [`STALL_NS`] with a full ring and the
//! reader's index unchanged, it drops what it was writing and every write
//! after it while the ring stays full, counting the bytes; once there is
//! room again it writes a `[console: N bytes dropped]` line first.
//!
//! Pure: the ring code feeds it the reader's index and the time.

/// How long a writer waits with the ring full and the reader's index not
/// moving before it drops bytes, ns.
pub const STALL_NS: u64 = 100_000_000;

/// What to do with a full ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Full {
    /// Kick the reader, yield and look again.
    Wait,
    /// Drop the bytes: the reader is stalled.
    Drop,
}

/// The writer's view of its reader.
#[derive(Clone, Copy, Debug)]
pub struct Stall {
    /// The reader's index when the ring was first seen full, and when.
    full_since: Option<(u32, u64)>,
    /// Past [`STALL_NS`] without progress: writes are dropped while the
    /// ring is full.
    stalled: bool,
    /// Bytes dropped since the last marker.
    dropped: u64,
    /// Bytes dropped since boot.
    total: u64,
}

impl Stall {
    /// No stall seen yet.
    pub const DEFAULT: Stall = Stall {
        full_since: None,
        stalled: false,
        dropped: 0,
        total: 0,
    };

    /// The ring is full and the reader's index is `cons` at `now_ns`.
    pub fn full(&mut self, cons: u32, now_ns: u64) -> Full {
        if self.stalled {
            return Full::Drop;
        }
        match self.full_since {
            Some((seen, at)) if seen == cons => {
                if now_ns.saturating_sub(at) >= STALL_NS {
                    self.stalled = true;
                    Full::Drop
                } else {
                    Full::Wait
                }
            }
            // First seen full, or the reader moved: wait again.
            _ => {
                self.full_since = Some((cons, now_ns));
                Full::Wait
            }
        }
    }

    /// `n` bytes were dropped.
    pub fn dropped(&mut self, n: usize) {
        self.dropped += n as u64;
        self.total += n as u64;
    }

    /// The ring has room: returns the bytes dropped since the last time,
    /// if any (the writer says so first), and forgets the stall.
    pub fn room(&mut self) -> Option<u64> {
        self.full_since = None;
        self.stalled = false;
        (self.dropped > 0).then(|| core::mem::take(&mut self.dropped))
    }

    /// Bytes dropped since boot.
    pub fn total_dropped(&self) -> u64 {
        self.total
    }
}

/// Room for the longest marker line (a `u64` count is 20 digits).
pub const MARKER_BYTES: usize = 64;

/// The marker line for `n` dropped bytes, written into `buf`; returns its
/// length.
pub fn marker(n: u64, buf: &mut [u8; MARKER_BYTES]) -> usize {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut v = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let parts: [&[u8]; 3] = [b"\r\n[console: ", &digits[at..], b" bytes dropped]\r\n"];
    let mut len = 0;
    for part in parts {
        buf[len..len + part.len()].copy_from_slice(part);
        len += part.len();
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moving_reader_is_waited_for() {
        let mut s = Stall::DEFAULT;
        assert_eq!(s.full(0, 0), Full::Wait);
        assert_eq!(s.full(0, STALL_NS - 1), Full::Wait);
        // It moved: the clock starts again.
        assert_eq!(s.full(5, STALL_NS + 10), Full::Wait);
        assert_eq!(s.full(5, 2 * STALL_NS), Full::Wait);
        assert_eq!(s.room(), None);
        assert_eq!(s.total_dropped(), 0);
    }

    #[test]
    fn a_stalled_reader_costs_one_wait_then_writes_drop_until_room() {
        let mut s = Stall::DEFAULT;
        assert_eq!(s.full(7, 1_000), Full::Wait);
        assert_eq!(s.full(7, 1_000 + STALL_NS), Full::Drop);
        s.dropped(30);
        // Later writes drop at once while the ring is full.
        assert_eq!(s.full(7, 1_000 + STALL_NS + 1), Full::Drop);
        s.dropped(12);
        assert_eq!(s.room(), Some(42));
        assert_eq!(s.room(), None);
        // After room came back, a new stall is waited for again.
        assert_eq!(s.full(9, 5 * STALL_NS), Full::Wait);
        assert_eq!(s.total_dropped(), 42);
    }

    #[test]
    fn the_marker_names_the_count() {
        let mut buf = [0u8; MARKER_BYTES];
        let n = marker(1234, &mut buf);
        assert_eq!(&buf[..n], b"\r\n[console: 1234 bytes dropped]\r\n");
        let n = marker(0, &mut buf);
        assert_eq!(&buf[..n], b"\r\n[console: 0 bytes dropped]\r\n");
        let n = marker(u64::MAX, &mut buf);
        assert_eq!(
            &buf[..n],
            b"\r\n[console: 18446744073709551615 bytes dropped]\r\n"
        );
    }
}

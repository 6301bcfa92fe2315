//! What testdom's fuzzing frontends (`netfront-fuzz`, `blkfront-fuzz`)
//! share: the frontend's side of the xenbus handshake (its directory, the
//! backend's state, bounded waits), granted frames, and the seeded PRNG
//! that makes a failing seed replay.
//!
//! Read first: xen/include/public/io/xenbus.h.

use alloc::format;
use alloc::string::{String, ToString};

use xcp_runtime::gnttab;
use xcp_runtime::paging::Frame;
use xcp_runtime::xenstore::Store;
use xcp_xenbus::TxId;

// io/xenbus.h.
pub(crate) const INITIALISING: u32 = 1;
pub(crate) const INIT_WAIT: u32 = 2;
pub(crate) const INITIALISED: u32 = 3;
pub(crate) const CONNECTED: u32 = 4;
pub(crate) const CLOSING: u32 = 5;
pub(crate) const CLOSED: u32 = 6;

const NONE: TxId = TxId::NONE;

/// Sleeps `ms` milliseconds.
pub(crate) fn sleep_ms(ms: u64) {
    let deadline = xcp_runtime::time::now_ns() + ms * 1_000_000;
    while xcp_runtime::time::now_ns() < deadline {
        xcp_runtime::event_loop::sleep_until(deadline);
    }
}

/// A frontend's xenstore side: its directory `front` (relative to our
/// home) and its backend's, once read.
pub(crate) struct Bus {
    pub(crate) xs: Store,
    pub(crate) front: &'static str,
    pub(crate) backend: String,
    pub(crate) backend_id: u16,
}

impl Bus {
    /// `front`'s side over `xs`; the backend is read later.
    pub(crate) fn new(xs: Store, front: &'static str) -> Bus {
        Bus {
            xs,
            front,
            backend: String::new(),
            backend_id: 0,
        }
    }

    pub(crate) fn read(&mut self, path: &str) -> Result<String, String> {
        self.xs
            .read_string(NONE, path)
            .map(|v| v.trim_end_matches('\0').trim().to_string())
            .map_err(|e| format!("read {path}: {e:?}"))
    }

    /// Writes `key` of our directory.
    pub(crate) fn write(&mut self, key: &str, value: &str) -> Result<(), String> {
        let path = format!("{}/{key}", self.front);
        self.xs
            .write(NONE, &path, value.as_bytes())
            .map_err(|e| format!("write {path}: {e:?}"))
    }

    pub(crate) fn set_state(&mut self, state: u32) -> Result<(), String> {
        self.write("state", &state.to_string())
    }

    /// The backend's state (0 when unreadable: gone or garbled).
    pub(crate) fn backend_state(&mut self) -> u32 {
        let path = format!("{}/state", self.backend);
        self.read(&path)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// Waits (bounded) until the backend's state is one of `want`;
    /// returns it, or the last state seen as the error.
    pub(crate) fn wait_backend(&mut self, want: &[u32], ms: u64) -> Result<u32, u32> {
        let deadline = xcp_runtime::time::now_ns() + ms * 1_000_000;
        loop {
            let s = self.backend_state();
            if want.contains(&s) {
                return Ok(s);
            }
            if xcp_runtime::time::now_ns() >= deadline {
                return Err(s);
            }
            sleep_ms(10);
        }
    }
}

/// A deterministic PRNG (splitmix64), seeded from the command line.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub(crate) fn below(&mut self, n: u32) -> u32 {
        (self.next() % u64::from(n.max(1))) as u32
    }

    pub(crate) fn u16(&mut self) -> u16 {
        self.next() as u16
    }
}

/// A frame granted to the backend.
pub(crate) struct Granted {
    pub(crate) frame: Frame,
    pub(crate) gref: u32,
}

impl Granted {
    /// A zeroed frame granted to `domid`.
    pub(crate) fn new(domid: u16, readonly: bool) -> Result<Granted, String> {
        let frame = Frame::alloc().map_err(|e| format!("a frame: {e:?}"))?;
        let gref = gnttab::grant_access(domid, frame.pfn(), readonly)
            .map_err(|e| format!("grant a frame: {e:?}"))?;
        Ok(Granted { frame, gref })
    }

    /// Takes the grant back. A grant the backend still maps keeps its
    /// frame forever (never reused under it).
    pub(crate) fn end(self) {
        for _ in 0..100 {
            match gnttab::end_access(self.gref) {
                Ok(()) => return,
                Err(gnttab::GrantError::InUse) => sleep_ms(10),
                Err(_) => break,
            }
        }
        log::warn!(
            "grant {} still mapped by the backend: its frame is kept",
            self.gref
        );
        core::mem::forget(self.frame);
    }
}

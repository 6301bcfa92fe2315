//! dom0's memory budget: every bound a client can drive in the toolstack,
//! derived from dom0's memory and written down in one place.
//!
//! dom0 is a 49 MiB PV domain ([`DOM0_BYTES`], `dom0_mem=49M` in
//! boot/platform.toml; `cargo xtask build` grows it by the bundle's guest
//! files and GRUB images, which live in it too). What is not heap: the
//! kernel image (2.4 MB), the bundle module Xen loads into dom0's memory
//! (1.75 MB shipped, without the GRUB images), the page tables, and 256
//! single frames (1 MiB: pages dom0 shares with peers; `cargo xtask bench
//! memory` saw 4 in use): [`RESERVED_BYTES`]. The rest is the heap,
//! [`HEAP_BYTES`] = 44 MiB as planned; a boot of the shipped platform
//! (49 MiB, +2 MiB for the GRUB images) logs `memory: 51 MiB ..., heap
//! 45920 KiB` (44.8 MiB), so the plan keeps 0.8 MiB in reserve (dom0 warns
//! at boot when its heap is smaller than the plan). (The plan was 43 MiB of 48 until
//! guest metrics and the performance samples (0.72 MiB) and longer
//! `allowed_operations` (0.3125 MiB more for the database) took 1 MiB
//! more, and dom0 grew by that MiB.) The heap is split as
//! follows, each part bounded where it is held and the parts asserted to
//! fit below:
//!
//! | part                          | bound (heap)  | where                                  |
//! |-------------------------------|---------------|----------------------------------------|
//! | XenAPI database               | 16.953125 MiB | [`DB_APPROX_BYTES`] (13.5625 MiB) × 5/4 ([`heap_of`]; `Config::max_db_bytes`) |
//! | event window                  | 1.171875 MiB  | [`EVENT_APPROX_BYTES`] (15/16 MiB) × 5/4 (`Config::event_bytes`) |
//! | sessions                      | 8 MiB         | [`crate::session::SESSION_TABLE_BYTES`] |
//! | relayed connections' buffers  | 4 MiB         | [`RELAYED_BYTES`] ([`crate::relayed`]), of which [`TRANSFER_BYTES`] (132 KiB) for disk image imports' batches (`crate::transfer`) |
//! | replies queued for relays     | 2 MiB         | [`BACKLOG_BYTES`] (dom0's relay link)   |
//! | console histories             | 2 MiB         | [`CONSOLES`] (32) × `xcp_console::HISTORY_BYTES` (64 KiB) |
//! | VM console histories          | 0.5 MiB       | [`VM_CONSOLES`] (8) × [`CONSOLE_HISTORY_BYTES`] (64 KiB) |
//! | one call in flight            | 8.625 MiB     | [`CALL_BYTES`]: the reply ([`REPLY_BYTES`]) or the request ([`REQUEST_BYTES`]) |
//! | guest metrics                 | 0.33 MiB      | [`GUEST_METRICS_BYTES`]: `guest_metrics::MAX_RECORDS` (60) × `RECORD_APPROX` (4.5 KiB) × 5/4, beside the database quota |
//! | performance samples           | 0.39 MiB      | [`crate::rrd::RRD_BYTES`]: 61 rings (the host, 60 running VMs) × 120 rows × 10 sources |
//! | total                         | 43.97 MiB     | ≤ [`HEAP_BYTES`] = 44 MiB               |
//!
//! The database is sized for 1,000 VMs, each with two VIFs, two VBDs and
//! two VDIs (and the VIFs' `VIF_metrics`): `tests/db_memory.rs` measures
//! such a set at ≈ 16.9 KiB of heap and ≈ 13.8 KiB against the quota's
//! approximate count
//! (`Value::approx_size`), and fails if the count drifts past
//! [`VM_SET_APPROX`] or the heap past [`heap_of`] the count.
//!
//! dom0's XenAPI database is volatile until stordom exists: a write-ahead
//! log kept in dom0's own memory would survive nothing dom0 does not, and
//! would cost up to twice the database again, so dom0 keeps none
//! (`wal::Volatile`).
//!
//! One call in flight: its request body ([`MAX_BODY`]) and the trees
//! decoded from it ([`REQUEST_BYTES`], dropped once the call has run),
//! then its reply. A reply is written from the
//! database straight into 16 KiB chunks (`crate::body`, `crate::reply`:
//! no cloned record tree, no contiguous copy, no copy into relay messages),
//! and the chunks move into the relay backlog as they are; so a call holds
//! its reply and little more. `tests/reply_memory.rs` measures it with
//! 1,000 VM sets, served as dom0 serves them (`Relayed::on_message`):
//!
//! | call (1,000 VM sets)              | reply       | peak heap (before: cloned tree, copies) |
//! |-----------------------------------|-------------|------------------------------|
//! | XML-RPC `VM.get_all_records`      | 7,610,826 B | 7,656,640 B (27,353,079 B)   |
//! | JSON-RPC `VM.get_all_records`     | 2,727,812 B | 2,755,776 B (18,556,961 B)   |
//! | JSON-RPC `event.from` from ""     | 9,584,385 B | refused: `LIMIT_REACHED reply` (was 8,772,466 B and served before VIF_metrics) |
//! | XML-RPC `event.from` from ""      | 27,902,705 B | refused: `LIMIT_REACHED reply` (102,891,496 B) |
//!
//! A reply past [`REPLY_BYTES`], or one whose next chunk cannot be
//! allocated, is given back and the call answered `LIMIT_REACHED`
//! `["reply"]`: `event.from` over every class from the empty token is
//! 28 MB (XML-RPC) or 9.6 MB (JSON-RPC) at 1,000 VMs, more than dom0
//! holds (a client subscribes to fewer classes).
//!
//! XenAPI VMs' consoles: dom0 relays the console of at most
//! [`VM_CONSOLES`] running VMs at once, each with its 64 KiB history (the
//! ring page it maps is one of the reserved single frames' worth of
//! address space, not heap). A VM started past that runs with no console
//! relayed (dom0 warns; its `console` record is still made, and attaching
//! to it gets 404): 8 fit beside the rest, and the 1,000 VMs the database
//! holds are records, not running domains, on a host of this size.
//!
//! What refuses where: a call that would take the database past its quota
//! gets `LIMIT_REACHED`; the event window drops its oldest events (a client
//! behind them gets `EVENTS_LOST`); a login past the session table is
//! refused (`session.rs`); a request body over [`crate::http::MAX_BODY`]
//! gets HTTP 413; a relayed connection whose bytes would take all
//! connections past [`RELAYED_BYTES`], or whose buffer cannot grow, gets
//! HTTP 503 and is closed. None of them panics.

use crate::http::{MAX_BODY, MAX_HEAD};
use crate::session::{DOM0_BYTES, SESSION_TABLE_BYTES};

const MIB: usize = 1 << 20;

/// dom0's memory that is not heap, bytes: the image and bundle (≤ 4.2 MB),
/// page tables, and the runtime's single-frame pool (256 frames).
pub const RESERVED_BYTES: usize = 5 * MIB;
/// dom0's heap as the budget plans it, bytes.
pub const HEAP_BYTES: usize = DOM0_BYTES - RESERVED_BYTES;

/// VMs the database is sized for.
pub const VMS: usize = 1000;
/// Most VDIs an `SR.scan` takes from the SR's listing (`storage.rs`): the
/// listing is held while the scan runs, ≈ 100 B a VDI, so at most
/// 400 KiB, within the call in flight's bound ([`CALL_BYTES`], whose
/// request part a scan does not use). Twice the VDIs of [`VMS`] sets.
pub const MAX_SCAN_VDIS: usize = 4 * VMS + 96;
/// Snapshots one VM may have at once (`VM.snapshot` beyond it:
/// LIMIT_REACHED `[snapshots]`). Each is a VM set of its own (≈ 13.5 KiB
/// against the database quota with two disks and two VIFs), taken from
/// the same quota as VMs; 32 keeps one VM's snapshots under 0.5 MiB, and
/// a copy-on-write chain short (xapi's VHD SRs stop at 30 in a chain).
pub const MAX_SNAPSHOTS: usize = 32;
/// What one VM with two VIFs, two VBDs and two VDIs counts against the
/// database quota at most, bytes (`Db::approx_bytes`; measured ≈ 13.8 KiB
/// by `tests/db_memory.rs`, with the VIFs' metrics records and the VDIs'
/// `location` and `allowed_operations` that `VDI.create` fills).
/// (13,824 until a Halted VM's `allowed_operations` listed the memory and
/// vCPU changes, `start_on` and `snapshot` it allows: +287 B measured.)
pub const VM_SET_APPROX: usize = 14144;
/// Heap held for `approx` bytes the quotas count (database records and
/// event snapshots are the same values): at most 5/4 of it (measured ≈
/// 1.18 by `tests/db_memory.rs`).
pub const fn heap_of(approx: usize) -> usize {
    approx / 4 * 5
}
/// The database quota (`Config::max_db_bytes`, approximate bytes): room
/// for [`VMS`] VM sets (13.5 MiB), the host's own records and the
/// built-in templates (`templates::BUILTIN`, ≈ 3 KiB each).
pub const DB_APPROX_BYTES: usize = 13 * MIB + MIB / 2 + MIB / 16;
/// Snapshots kept for `event.from` (`Config::event_bytes`, approximate
/// bytes): a few hundred changes of whole VM records.
/// (15/16 MiB: the sixteenth went to the built-in templates' records.)
pub const EVENT_APPROX_BYTES: usize = MIB - MIB / 16;
/// Client bytes all relayed connections together may buffer in dom0: room
/// for three whole requests of the largest size, and many small ones.
pub const RELAYED_BYTES: usize = 4 * MIB;
/// Reply bytes queued for one relay that is not reading; beyond it dom0
/// stops taking that relay's requests (one reply may overshoot it).
pub const BACKLOG_BYTES: usize = 2 * MIB;
/// Consoles dom0 keeps a history for: the platform's domains, at most
/// `xcp_bundle::config::MAX_DOMAINS` (dom0's kernel asserts it).
pub const CONSOLES: usize = 32;
/// Running XenAPI VMs whose console dom0 relays and keeps a history for
/// (`toolstack.rs` in dom0's kernel holds this cap).
pub const VM_CONSOLES: usize = 8;
/// Console history per domain, bytes (`xcp_console::HISTORY_BYTES`;
/// dom0's kernel asserts it).
pub const CONSOLE_HISTORY_BYTES: usize = 64 << 10;
/// Largest reply body, bytes: room for XML-RPC `VM.get_all_records` of
/// [`VMS`] VM sets (measured 7.26 MiB); JSON-RPC `event.from` of
/// everything from the empty token (9.14 MiB since VIF_metrics) no longer
/// fits. A bigger one is refused
/// (`LIMIT_REACHED`); see `crate::body`.
pub const REPLY_BYTES: usize = 8 * MIB + MIB / 2;
/// A request being decoded, bytes: its body copied out of the
/// connection's buffer ([`MAX_BODY`]) and the trees decoded from it,
/// bounded by `xmlrpc::MAX_ELEMENTS` and `jsonrpc::MAX_TOKENS` /
/// `jsonrpc::MAX_OBJECTS` (the parsers allocate without a way to refuse).
/// `tests/reply_memory.rs` measures the worst bodies the codecs accept:
/// 7.07 MB (XML-RPC one-member structs), 4.2 MB (XML-RPC empty values),
/// 2.8 MB (JSON-RPC one-entry maps); before those bounds a 1 MiB body
/// made 16.8 MB (XML-RPC) and 27.3 MB (JSON-RPC) before any session check.
pub const REQUEST_BYTES: usize = 7 * MIB + MIB / 2;
/// One call being served, bytes: its request ([`REQUEST_BYTES`], dropped
/// before the reply is written) or its reply ([`REPLY_BYTES`], plus its
/// head, the chunk list and the relay messages' slots: measured ≤ 90 KB
/// by `tests/reply_memory.rs`).
pub const CALL_BYTES: usize = max(REQUEST_BYTES, REPLY_BYTES + MIB / 8);

/// Disk image transfers (`transfer.rs`): one import batch each (the
/// image itself is never held), and their records. Client bytes like the
/// relayed connections' buffers: taken out of [`RELAYED_BYTES`]
/// (`relayed::MAX_TOTAL` is what is left).
pub const TRANSFER_BYTES: usize =
    crate::transfer::MAX_TRANSFERS * (crate::transfer::IMPORT_BATCH + 1024);

/// Running guests' `VM_guest_metrics` records (`guest_metrics.rs`): made
/// by dom0 from what guests write, not by clients, so outside the
/// database quota ([`DB_APPROX_BYTES`]) and bounded on their own: at most
/// `MAX_RECORDS` records of at most `RECORD_APPROX` approximate bytes
/// (`tests/guest_metrics.rs` measures the largest a guest can make), and
/// the engine's per-guest poll state (a few words per running VM).
pub const GUEST_METRICS_BYTES: usize =
    heap_of(crate::guest_metrics::MAX_RECORDS * crate::guest_metrics::RECORD_APPROX);

const fn max(a: usize, b: usize) -> usize {
    if a > b {
        a
    } else {
        b
    }
}

/// The parts, summed.
pub const TOTAL_BYTES: usize = heap_of(DB_APPROX_BYTES)
    + heap_of(EVENT_APPROX_BYTES)
    + SESSION_TABLE_BYTES
    + RELAYED_BYTES
    + BACKLOG_BYTES
    + (CONSOLES + VM_CONSOLES) * CONSOLE_HISTORY_BYTES
    + CALL_BYTES
    + GUEST_METRICS_BYTES
    + crate::rrd::RRD_BYTES;

const _: () = assert!(TOTAL_BYTES <= HEAP_BYTES, "dom0's budget must fit its heap");
const _: () = assert!(VMS * VM_SET_APPROX <= DB_APPROX_BYTES, "1,000 VMs must fit");
const _: () = assert!(
    REPLY_BYTES.is_multiple_of(crate::body::CHUNK),
    "a reply at its bound fills whole relay messages"
);
const _: () = assert!(
    RELAYED_BYTES - TRANSFER_BYTES >= MAX_HEAD + MAX_BODY,
    "one whole request must fit beside the transfers"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures() {
        assert_eq!(HEAP_BYTES, 44 * MIB);
        assert_eq!(CALL_BYTES, 8 * MIB + 5 * MIB / 8);
        assert_eq!(GUEST_METRICS_BYTES, 345_600);
        assert_eq!(crate::rrd::RRD_BYTES, 413_824);
        assert_eq!(
            TOTAL_BYTES,
            43 * MIB + MIB / 4 + GUEST_METRICS_BYTES + crate::rrd::RRD_BYTES
        );
        const { assert!(TOTAL_BYTES < 44 * MIB - 16 * 1024) };
        assert_eq!(heap_of(DB_APPROX_BYTES), 16 * MIB + 61 * MIB / 64);
        assert_eq!(heap_of(EVENT_APPROX_BYTES), MIB + 11 * MIB / 64);
    }
}

//! The `mem` console command's figures: Xen's count of each domain's pages
//! (`XEN_DOMCTL_getdomaininfo`), dom0's own runtime figures, and the ones
//! the xenstore domain keeps under its home (`data/memory/`, see
//! xenstore-dom's `publish_memory`). A relay domain's come over its relay
//! channel (`dom0.rs`, `show_stats`). The lines are
//! `xcp_domains::memory::MemoryRow`s.

use alloc::format;

use xcp_domains::memory::{MemoryFigures, MemoryRow};
use xcp_runtime::usage::MemoryUse;
use xcp_xenbus::TxId;

use xcp_dom0_board::Platform as _;

use crate::shell::say;
use crate::xen::{Dom0Board, Xen};

/// The relay's form of the runtime's figures.
fn figures(m: MemoryUse) -> MemoryFigures {
    MemoryFigures {
        heap_bytes: m.heap_bytes,
        heap_in_use: m.heap_in_use,
        heap_peak: m.heap_peak,
        frames: m.frames,
        frames_in_use: m.frames_in_use,
        frames_peak: m.frames_peak,
    }
}

/// `domid`'s line: Xen's page counts, asked now.
pub fn row(
    xen: &mut Xen,
    name: &str,
    domid: u16,
    configured_mib: u64,
    f: Option<MemoryFigures>,
) -> MemoryRow {
    let xen_pages = xen
        .domain_info(domid)
        .ok()
        .filter(|info| info.domain == domid)
        .map(|info| (info.tot_pages, info.max_pages));
    MemoryRow {
        name: name.into(),
        domid,
        configured_mib,
        xen_pages,
        figures: f,
    }
}

/// Prints dom0's own line (configured: what Xen gave it, `dom0_mem`).
pub fn show_dom0() {
    let mib = xcp_runtime::paging::nr_pages() / 256;
    let own = figures(xcp_runtime::usage::memory_use());
    say(format_args!(
        "{}",
        row(&mut Xen::new(), "dom0", 0, mib, Some(own)).line()
    ));
}

/// The figures the xenstore domain wrote under its home, if `domid` is the
/// xenstore domain and they are all there.
pub fn xenstore_figures(platform: &mut Dom0Board, domid: u16) -> Option<MemoryFigures> {
    if platform.xs_domid() != Some(domid) {
        return None;
    }
    let mut store = platform.xs_mut()?.store();
    let read = |key: &str| -> Option<u64> {
        let path = format!("/local/domain/{domid}/data/memory/{key}");
        let text = store.read_string(TxId::NONE, &path).ok()?;
        text.trim().parse().ok()
    };
    MemoryUse::from_entries(read).map(figures)
}

//! The `mem` console command's answer: one plain console line per domain
//! with its configured memory, Xen's count of its pages and what its
//! runtime says about its heap and frames; formatted here, parsed back by
//! `cargo xtask bench memory`.
//!
//! ```text
//! mem netdom (domid 2): configured 16 MiB, Xen 4096 pages (max 4352), heap 210/1093 of 11904 KiB, frames 3/7 of 992
//! mem other (domid 5): configured 8 MiB, Xen 2048 pages (max 2304), heap -, frames -
//! ```
//! Heap figures are KiB in use now / at most / given to the heap; frame
//! figures are frames handed out now / at most / managed. `-` when the
//! domain did not say (it has no way to, or did not answer).

use alloc::format;
use alloc::string::String;

pub use xcp_relay::MemoryFigures;

/// Every line of the answer starts with this.
pub const PREFIX: &str = "mem ";

/// One domain's line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryRow {
    /// Its platform.toml name (`dom0` for dom0).
    pub name: String,
    /// Its domid.
    pub domid: u16,
    /// Memory it is configured with, MiB.
    pub configured_mib: u64,
    /// Xen's `tot_pages` and `max_pages` (`XEN_DOMCTL_getdomaininfo`).
    pub xen_pages: Option<(u64, u64)>,
    /// What its runtime counts.
    pub figures: Option<MemoryFigures>,
}

fn kib(bytes: u64) -> u64 {
    bytes.div_ceil(1024)
}

impl MemoryRow {
    /// The console line (without its newline).
    pub fn line(&self) -> String {
        let xen = match self.xen_pages {
            Some((tot, max)) => format!("{tot} pages (max {max})"),
            None => String::from("-"),
        };
        let (heap, frames) = match &self.figures {
            Some(f) => (
                format!(
                    "{}/{} of {} KiB",
                    kib(f.heap_in_use),
                    kib(f.heap_peak),
                    kib(f.heap_bytes)
                ),
                format!("{}/{} of {}", f.frames_in_use, f.frames_peak, f.frames),
            ),
            None => (String::from("-"), String::from("-")),
        };
        format!(
            "{PREFIX}{} (domid {}): configured {} MiB, Xen {xen}, heap {heap}, frames {frames}",
            self.name, self.domid, self.configured_mib
        )
    }

    /// A line [`Self::line`] wrote (leading blanks allowed), heap figures
    /// in whole KiB; None for any other line.
    pub fn parse(line: &str) -> Option<MemoryRow> {
        let rest = line.trim().strip_prefix(PREFIX)?;
        let (name, rest) = rest.split_once(" (domid ")?;
        let (domid, rest) = rest.split_once("): configured ")?;
        let (configured, rest) = rest.split_once(" MiB, Xen ")?;
        let (xen, rest) = rest.split_once(", heap ")?;
        let (heap, frames) = rest.split_once(", frames ")?;
        let xen_pages = match xen {
            "-" => None,
            _ => {
                let (tot, max) = xen.strip_suffix(')')?.split_once(" pages (max ")?;
                Some((tot.parse().ok()?, max.parse().ok()?))
            }
        };
        let figures = match (heap, frames) {
            ("-", "-") => None,
            _ => {
                let heap = heap.strip_suffix(" KiB")?;
                let ([heap_in_use, heap_peak], heap_bytes) = triple(heap)?;
                let ([frames_in_use, frames_peak], frames) = triple(frames)?;
                Some(MemoryFigures {
                    heap_bytes: heap_bytes * 1024,
                    heap_in_use: heap_in_use * 1024,
                    heap_peak: heap_peak * 1024,
                    frames,
                    frames_in_use,
                    frames_peak,
                })
            }
        };
        Some(MemoryRow {
            name: String::from(name),
            domid: domid.parse().ok()?,
            configured_mib: configured.parse().ok()?,
            xen_pages,
            figures,
        })
    }
}

/// `A/B of C`.
fn triple(text: &str) -> Option<([u64; 2], u64)> {
    let (pair, of) = text.split_once(" of ")?;
    let (a, b) = pair.split_once('/')?;
    Some(([a.parse().ok()?, b.parse().ok()?], of.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn netdom() -> MemoryRow {
        MemoryRow {
            name: "netdom".into(),
            domid: 2,
            configured_mib: 16,
            xen_pages: Some((4096, 4352)),
            figures: Some(MemoryFigures {
                heap_bytes: 11904 * 1024,
                heap_in_use: 210 * 1024,
                heap_peak: 1093 * 1024,
                frames: 992,
                frames_in_use: 3,
                frames_peak: 7,
            }),
        }
    }

    #[test]
    fn lines_read_as_documented_and_parse_back() {
        let row = netdom();
        assert_eq!(
            row.line(),
            "mem netdom (domid 2): configured 16 MiB, Xen 4096 pages (max 4352), \
             heap 210/1093 of 11904 KiB, frames 3/7 of 992"
        );
        assert_eq!(MemoryRow::parse(&row.line()), Some(row));
        let bare = MemoryRow {
            name: "other".into(),
            domid: 5,
            configured_mib: 8,
            xen_pages: None,
            figures: None,
        };
        assert_eq!(
            bare.line(),
            "mem other (domid 5): configured 8 MiB, Xen -, heap -, frames -"
        );
        assert_eq!(MemoryRow::parse(&format!("  {}", bare.line())), Some(bare));
    }

    #[test]
    fn heap_bytes_round_up_to_kib() {
        let mut row = netdom();
        let f = row.figures.as_mut().unwrap();
        f.heap_in_use = 1;
        f.heap_peak = 1025;
        assert!(row.line().contains("heap 1/2 of 11904 KiB"));
    }

    #[test]
    fn other_lines_are_not_rows() {
        for line in [
            "",
            "mem",
            "mem netdom",
            "netdom (domid 2): 5 NIC interrupt wake-ups",
            "mem x (domid 70000): configured 1 MiB, Xen -, heap -, frames -",
            "mem x (domid 1): configured 1 MiB, Xen 3 pages, heap -, frames -",
            "mem x (domid 1): configured 1 MiB, Xen -, heap 1/2 KiB, frames 1/2 of 3",
            "mem x (domid 1): configured 1 MiB, Xen -, heap -, frames 1/2 of 3",
        ] {
            assert_eq!(MemoryRow::parse(line), None, "{line:?}");
        }
    }
}

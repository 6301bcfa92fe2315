//! Which `log` records reach the console, and how their level shows.
//!
//! The serial line is a person's console (issue #11): a line reads
//! `[  secs.micros] NAME: TAG message`, where TAG is `ERROR `, `WARN `,
//! `DEBUG ` or nothing (info). The host side (`cargo xtask run`) hides
//! DEBUG lines unless asked; the log file keeps them all.
//!
//! - Our own crates log at Debug and above; Trace is dropped.
//! - Third-party crates (virtio-drivers today; smoltcp, should its `log`
//!   feature ever be turned on) are held to Info and above, so their
//!   per-packet Debug/Trace chatter never reaches the line, and their Info
//!   records (virtio-drivers' `negotiated_features`) show as DEBUG: what a
//!   library says at boot is detail, not news for the operator.
//!
//! A record's crate is the first `::` segment of its target (the module
//! path unless the call names a target).

use log::Level;

/// The most verbose level any record may have: the logger's `max_level`.
pub const MAX_LEVEL: log::LevelFilter = log::LevelFilter::Debug;

/// Crate names (as module paths spell them) that are ours; every other
/// crate is third-party. `xcp_*` covers the shared crates.
const OURS: &[&str] = &[
    "xen_sys",
    "netdom",
    "stordom",
    "toolstack_dom0",
    "xenstore_dom",
    "xenstore_engine",
    "xenapi",
    "testdom",
];

/// Whether a record with `target` comes from our own code.
pub fn is_ours(target: &str) -> bool {
    let krate = target.split("::").next().unwrap_or(target);
    krate.starts_with("xcp_") || OURS.contains(&krate)
}

/// The tag written after `NAME: ` for a record of `level` from `target`,
/// or `None` when the record is dropped.
pub fn tag(level: Level, target: &str) -> Option<&'static str> {
    match (level, is_ours(target)) {
        (Level::Error, _) => Some("ERROR "),
        (Level::Warn, _) => Some("WARN "),
        (Level::Info, true) => Some(""),
        (Level::Info, false) | (Level::Debug, true) => Some("DEBUG "),
        (Level::Debug, false) | (Level::Trace, _) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_crates_are_recognised_by_their_first_segment() {
        for ours in [
            "toolstack_dom0::dom0",
            "netdom::domain",
            "netdom",
            "stordom::domain",
            "xenstore_dom::board",
            "xcp_runtime::virtio_hal",
            "xcp_netrelay::engine",
            "xenapi::relayed",
            "testdom",
        ] {
            assert!(is_ours(ours), "{ours}");
        }
        for theirs in [
            "virtio_drivers::device::net::dev_raw",
            "smoltcp::iface::interface",
            "talc",
            // A prefix of one of our names is not ours.
            "netdomx::a",
            "xenapi_client::x",
            "",
        ] {
            assert!(!is_ours(theirs), "{theirs}");
        }
    }

    #[test]
    fn tags_by_level_and_origin() {
        let ours = "netdom::domain";
        assert_eq!(tag(Level::Error, ours), Some("ERROR "));
        assert_eq!(tag(Level::Warn, ours), Some("WARN "));
        assert_eq!(tag(Level::Info, ours), Some(""));
        assert_eq!(tag(Level::Debug, ours), Some("DEBUG "));
        assert_eq!(tag(Level::Trace, ours), None);
        let theirs = "virtio_drivers::transport";
        assert_eq!(tag(Level::Error, theirs), Some("ERROR "));
        assert_eq!(tag(Level::Warn, theirs), Some("WARN "));
        assert_eq!(tag(Level::Info, theirs), Some("DEBUG "));
        assert_eq!(tag(Level::Debug, theirs), None);
        assert_eq!(tag(Level::Trace, theirs), None);
    }

    #[test]
    fn max_level_lets_every_kept_record_through() {
        for level in [
            Level::Error,
            Level::Warn,
            Level::Info,
            Level::Debug,
            Level::Trace,
        ] {
            if tag(level, "xcp_runtime").is_some() || tag(level, "smoltcp").is_some() {
                assert!(level <= MAX_LEVEL, "{level}");
            }
        }
    }
}

//! The CPU share dom0 gives itself and the service domains.
//!
//! Read first: xen/include/public/domctl.h (`XEN_DOMCTL_scheduler_op`),
//! docs/features/sched_credit2.pandoc. Under credit and credit2 a domain's
//! `weight` is its share of contended CPU time relative to the others' (a
//! guest gets Xen's default, 256, unless its VM's `VCPUs_params` says
//! otherwise) and `cap` (percent of one CPU, 0: none) its ceiling.
//!
//! A guest is a hostile peer: with many booting, it must not starve the
//! domains that serve it. dom0 builds every domain and answers every XenAPI
//! call from one event loop; the xenstore domain, netdom and stordom carry
//! every guest's xenstore, network and disk traffic. So they weigh more
//! than any default guest, and none is capped: under contention dom0 gets
//! 4 guests' worth of CPU and each service domain 2, and idle domains'
//! weight costs the guests nothing (credit schedulers are work-conserving).

use log::{info, warn};

use crate::{CpuShare, Platform};

/// Xen's default weight under credit and credit2 (`CSCHED_DEFAULT_WEIGHT`,
/// `CSCHED2_DEFAULT_WEIGHT`): what a guest gets unless set.
pub const GUEST_DEFAULT_WEIGHT: u16 = 256;

/// dom0's share: 4 × a default guest's weight, uncapped (every build and
/// every XenAPI reply runs in dom0's one loop).
pub const DOM0_SHARE: CpuShare = CpuShare {
    weight: 4 * GUEST_DEFAULT_WEIGHT,
    cap: 0,
};

/// A service domain's share (xenstore-dom, netdom, stordom): 2 × a default
/// guest's weight, uncapped; below dom0's, which builds and rebuilds them.
pub const SERVICE_SHARE: CpuShare = CpuShare {
    weight: 2 * GUEST_DEFAULT_WEIGHT,
    cap: 0,
};

// The order the module docs give: dom0 over the service domains over a
// default guest.
const _: () = assert!(DOM0_SHARE.weight > SERVICE_SHARE.weight);
const _: () = assert!(SERVICE_SHARE.weight > GUEST_DEFAULT_WEIGHT);

/// Gives `domid` `share`, reads it back and logs one line with Xen's values
/// (`sched: domid 0 weight 1024 cap 0`); returns them. A failure is logged
/// and returns `None`: a domain without its share still runs.
pub fn apply<P: Platform>(pf: &mut P, domid: u16, share: CpuShare) -> Option<CpuShare> {
    if let Err(e) = pf.set_cpu_share(domid, share) {
        warn!(
            "sched: domid {domid}: setting weight {} cap {} failed: {e}",
            share.weight, share.cap
        );
        return None;
    }
    match pf.cpu_share(domid) {
        Ok(got) => {
            info!("sched: domid {domid} weight {} cap {}", got.weight, got.cap);
            Some(got)
        }
        Err(e) => {
            warn!("sched: domid {domid}: reading the share back failed: {e}");
            None
        }
    }
}

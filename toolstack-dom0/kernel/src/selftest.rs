//! Self-tests the QEMU cases run on real Xen (dom0 command line
//! `selftest=<name>`): each drives the platform through one scenario and
//! ends QEMU with a verdict through isa-debug-exit.
//!
//! - `console`: build testdom; its greeting comes back through the relay.
//! - `crash`: testdom panics on every start; dom0 logs why, restarts it, and
//!   gives up after the crash-loop limit.
//! - `cycles`: 100 create/destroy cycles; Xen's and dom0's free memory and
//!   dom0's window slots and grants end where they started.
//! - `grant`: 16 MiB through grant mappings and GNTTABOP_copy, verified on
//!   both sides.

use alloc::string::String;
use alloc::vec::Vec;

use log::{error, info};
use xcp_runtime::event_loop::Loop;
use xcp_runtime::paging::Frame;
use xcp_runtime::verdict;
use xcp_selftest::{
    answer, fill, first_mismatch, pattern, DONE_OFFSET, GRANT_PAGES, GRANT_ROUNDS, ROUND_OFFSET,
};

use crate::platform::Platform;

/// Timer token of the overall deadline.
pub const DEADLINE_TOKEN: u64 = 0xdead;
const DEADLINE_NS: u64 = 240_000_000_000;
const CYCLES: u32 = 100;
const GREETING: &[u8] = b"hello from testdom";

struct GrantState {
    domid: u16,
    control: Frame,
    pages: Vec<Frame>,
    port: u32,
    round: u32,
}

enum State {
    Console {
        domid: u16,
    },
    Crash,
    Cycles {
        done: u32,
        domid: u16,
        baseline: Usage,
    },
    Grant(GrantState),
}

/// What "dom0's free memory" means for the cycle test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Usage {
    xen_free_pages: u64,
    dom0_free_frames: u64,
    window_slots: usize,
    grants: usize,
}

fn usage() -> Usage {
    Usage {
        xen_free_pages: xcp_runtime::control::physinfo().map_or(0, |(free, _)| free),
        dom0_free_frames: xcp_runtime::paging::free_frames(),
        window_slots: xcp_runtime::paging::window_slots_used(),
        grants: xcp_runtime::gnttab::grants_outstanding(),
    }
}

/// A running self-test.
pub struct SelfTest {
    name: String,
    state: State,
}

fn testdom(platform: &Platform) -> usize {
    platform
        .configs()
        .iter()
        .position(|c| c.name == "testdom")
        .expect("the self-test platform config names a testdom")
}

fn greeted(platform: &Platform, domid: u16) -> bool {
    platform.live.get(&domid).is_some_and(|l| {
        let h = l.console.history();
        h.windows(GREETING.len()).any(|w| w == GREETING)
    })
}

impl SelfTest {
    /// Starts the self-test named on dom0's command line.
    pub fn start(name: &str, platform: &mut Platform, lp: &mut Loop) -> SelfTest {
        lp.after(DEADLINE_NS, DEADLINE_TOKEN);
        info!("selftest {name}: start");
        let index = testdom(platform);
        let state = match name {
            "console" => match platform.start(lp, index, None) {
                Ok(domid) => State::Console { domid },
                Err(()) => fail(name, "could not build testdom"),
            },
            "crash" => match platform.start(lp, index, None) {
                Ok(_) => State::Crash,
                Err(()) => fail(name, "could not build testdom"),
            },
            "cycles" => {
                let baseline = usage();
                info!("selftest cycles: baseline {baseline:?}");
                match platform.start(lp, index, None) {
                    Ok(domid) => State::Cycles {
                        done: 0,
                        domid,
                        baseline,
                    },
                    Err(()) => fail(name, "could not build testdom"),
                }
            }
            "grant" => State::Grant(start_grant(platform, lp, index)),
            other => fail(other, "unknown self-test"),
        };
        SelfTest {
            name: String::from(name),
            state,
        }
    }

    /// Re-evaluates after any event dom0 handled.
    pub fn check(&mut self, platform: &mut Platform, lp: &mut Loop) {
        let name = self.name.clone();
        match &mut self.state {
            State::Console { domid } => {
                if greeted(platform, *domid) {
                    pass(&name, "testdom's greeting came through the relay");
                }
            }
            State::Crash => {
                if let Some((who, restarts)) = platform.gave_up.first() {
                    if who == "testdom" && *restarts == xcp_domains::MAX_RESTARTS as u64 {
                        pass(
                            &name,
                            "crash detected, logged, restarted, crash loop stopped",
                        );
                    } else {
                        fail(&name, "gave up on the wrong domain or count");
                    }
                }
            }
            State::Cycles {
                done,
                domid,
                baseline,
            } => {
                if !greeted(platform, *domid) {
                    return;
                }
                platform.stop(lp, *domid);
                *done += 1;
                if *done == CYCLES {
                    let now = usage();
                    info!("selftest cycles: after {CYCLES} cycles {now:?}");
                    if now == *baseline {
                        pass(&name, "100 create/destroy cycles, memory back where it was");
                    }
                    fail(&name, "memory after the cycles differs from the baseline");
                }
                match platform.start(lp, testdom(platform), None) {
                    Ok(d) => *domid = d,
                    Err(()) => fail(&name, "could not rebuild testdom"),
                }
            }
            State::Grant(g) => check_grant(&name, g),
        }
    }

    /// Handles an event the platform did not claim.
    pub fn on_event(&mut self, platform: &mut Platform, lp: &mut Loop, _port: u32) {
        self.check(platform, lp);
    }
}

fn start_grant(platform: &mut Platform, lp: &mut Loop, index: usize) -> GrantState {
    let mut control = Frame::alloc().expect("control frame");
    let mut pages = Vec::new();
    for _ in 0..GRANT_PAGES {
        pages.push(Frame::alloc().expect("grant-test frames"));
    }
    let mut granted: Option<(u16, Vec<u32>, u32)> = None;
    let result = platform.start_with(lp, index, &mut |domid| {
        let grefs: Vec<u32> = pages
            .iter()
            .map(|p| {
                xcp_runtime::gnttab::grant_access(domid, p.pfn(), false).expect("grant a page")
            })
            .collect();
        let bytes = control.bytes_mut();
        bytes[..4].copy_from_slice(&(grefs.len() as u32).to_le_bytes());
        for (i, g) in grefs.iter().enumerate() {
            bytes[4 + i * 4..8 + i * 4].copy_from_slice(&g.to_le_bytes());
        }
        let list = xcp_runtime::gnttab::grant_access(domid, control.pfn(), false)
            .expect("grant the control page");
        let port = xcp_runtime::evtchn::alloc_unbound(domid).expect("an unbound port");
        let cmdline = alloc::format!("grant-test={list},{},{port}", grefs.len());
        granted = Some((domid, grefs, port));
        cmdline
    });
    if result.is_err() {
        fail("grant", "could not build testdom");
    }
    let (domid, grefs, port) = granted.expect("the command line was made");
    lp.watch(port).expect("watch the grant-test port");
    info!(
        "selftest grant: testdom is domid {domid}, {} grants",
        grefs.len()
    );
    drop(grefs);
    let mut g = GrantState {
        domid,
        control,
        pages,
        port,
        round: 0,
    };
    next_round(&mut g);
    g
}

fn next_round(g: &mut GrantState) {
    g.round += 1;
    for (i, page) in g.pages.iter_mut().enumerate() {
        fill(page.bytes_mut(), |w| pattern(g.round, i as u32, w));
    }
    g.control.view().store_u32(ROUND_OFFSET, g.round);
    xcp_runtime::evtchn::send(g.port);
}

fn check_grant(name: &str, g: &mut GrantState) {
    if g.control.view().load_u32(DONE_OFFSET) != g.round {
        return;
    }
    for (i, page) in g.pages.iter().enumerate() {
        let mut copy = [0u8; 4096];
        page.view().read(0, &mut copy);
        if let Some(w) = first_mismatch(&copy, |w| answer(g.round, i as u32, w)) {
            error!("round {} page {i}: answer differs at word {w}", g.round);
            fail(name, "testdom's answer is wrong");
        }
    }
    if g.round == GRANT_ROUNDS {
        let mib = GRANT_ROUNDS as usize * GRANT_PAGES * 4096 / (1024 * 1024);
        info!(
            "selftest grant: {mib} MiB each way verified (domid {})",
            g.domid
        );
        pass(name, "grant map/copy round trip verified");
    }
    next_round(g);
}

fn pass(name: &str, what: &str) -> ! {
    info!("selftest {name}: PASS: {what}");
    xcp_runtime::io::debug_exit(verdict::PASS);
    panic!("debug-exit did not end QEMU");
}

/// Ends the test with a failure.
pub fn fail(name: &str, why: &str) -> ! {
    error!("selftest {name}: FAIL: {why}");
    xcp_runtime::io::debug_exit(verdict::FAIL);
    panic!("debug-exit did not end QEMU");
}

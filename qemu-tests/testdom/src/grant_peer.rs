//! The grant-test peer: dom0 grants GRANT_PAGES pages and a control page;
//! each round testdom maps every grant and checks dom0's pattern (the map
//! path), copies each page into a local frame with GNTTABOP_copy and checks
//! it again (the copy path), then copies the answer back into the grant.

use alloc::vec::Vec;

use xcp_runtime::event_loop::{App, Loop};
use xcp_runtime::gnttab::{self, CopyEnd};
use xcp_runtime::paging::Frame;
use xcp_selftest::{
    answer, fill, first_mismatch, pattern, three, DONE_OFFSET, MAX_GREFS, ROUND_OFFSET,
};

struct Peer {
    control: gnttab::GrantMapping,
    grefs: Vec<u32>,
    port: u32,
    scratch: Frame,
    done: u32,
}

impl Peer {
    fn round(&mut self, round: u32) {
        for (i, &gref) in self.grefs.iter().enumerate() {
            let page = i as u32;
            // Map path.
            let mapping = gnttab::map_grant(0, gref, true).expect("map dom0's grant");
            let mut copy = [0u8; 4096];
            mapping.view().read(0, &mut copy);
            drop(mapping);
            if let Some(w) = first_mismatch(&copy, |w| pattern(round, page, w)) {
                panic!("round {round} page {page}: mapped data differs at word {w}");
            }
            // Copy path, in.
            let from_grant = CopyEnd::Grant {
                domid: 0,
                gref,
                offset: 0,
            };
            let local = CopyEnd::Local {
                pfn: self.scratch.pfn(),
                offset: 0,
            };
            let mut op = [gnttab::copy_op(from_grant, local, 4096).expect("copy op")];
            gnttab::copy(&mut op).expect("GNTTABOP_copy from dom0");
            if let Some(w) = first_mismatch(self.scratch.bytes(), |w| pattern(round, page, w)) {
                panic!("round {round} page {page}: copied data differs at word {w}");
            }
            // Copy path, out.
            fill(self.scratch.bytes_mut(), |w| answer(round, page, w));
            let mut op = [gnttab::copy_op(local, from_grant, 4096).expect("copy op")];
            gnttab::copy(&mut op).expect("GNTTABOP_copy to dom0");
        }
        self.done = round;
        self.control.view().store_u32(DONE_OFFSET, round);
        xcp_runtime::evtchn::send(self.port);
    }
}

impl App for Peer {
    fn on_event(&mut self, _lp: &mut Loop, _port: u32) {
        let round = self.control.view().load_u32(ROUND_OFFSET);
        if round != self.done {
            self.round(round);
        }
    }

    fn on_timer(&mut self, _lp: &mut Loop, _token: u64) {}
}

/// Runs the peer forever (dom0 destroys us when the test ends).
pub fn run(arg: &str) -> ! {
    let (list_gref, count, dom0_port) = three(arg).expect("grant-test=<gref>,<count>,<port>");
    let count = (count as usize).min(MAX_GREFS);
    let control = gnttab::map_grant(0, list_gref, false).expect("map the control page");
    let mut raw = alloc::vec![0u8; 4 + 4 * count];
    control.view().read(0, &mut raw);
    let listed = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize;
    let grefs: Vec<u32> = raw[4..]
        .chunks_exact(4)
        .take(listed.min(count))
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let port = xcp_runtime::evtchn::bind_interdomain(0, dom0_port).expect("bind dom0's port");
    log::info!("grant peer: {} grants, port {}", grefs.len(), port);
    let mut peer = Peer {
        control,
        grefs,
        port,
        scratch: Frame::alloc().expect("a scratch frame"),
        done: 0,
    };
    let mut lp = Loop::new();
    lp.watch(port).expect("watch");
    // dom0 may have asked before we bound the port.
    peer.on_event(&mut lp, port);
    xcp_runtime::evtchn::send(port);
    lp.run(&mut peer);
    panic!("grant peer loop ended");
}

//! `grant`: 16 MiB through grant mappings and GNTTABOP_copy, verified on
//! both sides.

use super::*;

pub(super) struct GrantState {
    domid: u16,
    control: Frame,
    pages: Vec<Frame>,
    port: u32,
    round: u32,
}

pub(super) fn start_grant(platform: &mut Platform, lp: &mut Loop, index: usize) -> GrantState {
    let mut control = Frame::alloc().expect("control frame");
    let mut pages = Vec::new();
    for _ in 0..GRANT_PAGES {
        pages.push(Frame::alloc().expect("grant-test frames"));
    }
    let mut granted: Option<(u16, Vec<u32>, u32)> = None;
    let result = platform.start_with(index, &mut |_, _, domid| {
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
        Ok(cmdline)
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

pub(super) fn next_round(g: &mut GrantState) {
    g.round += 1;
    for (i, page) in g.pages.iter_mut().enumerate() {
        fill(page.bytes_mut(), |w| pattern(g.round, i as u32, w));
    }
    g.control.view().store_u32(ROUND_OFFSET, g.round);
    xcp_runtime::evtchn::send(g.port);
}

pub(super) fn check_grant(name: &str, g: &mut GrantState) {
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

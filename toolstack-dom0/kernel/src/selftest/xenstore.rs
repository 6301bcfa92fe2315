//! `xenstore`: xenstore-dom and two testdoms that use it; one dies and is
//! released.

use super::*;

pub(super) fn start_xenstore(platform: &mut Platform) -> State {
    let find = |platform: &Platform, name: &str| {
        platform
            .configs()
            .iter()
            .position(|c| c.name == name)
            .unwrap_or_else(|| {
                fail(
                    "xenstore",
                    "the self-test config lists xenstore, testa and testb",
                )
            })
    };
    let xs = find(platform, "xenstore");
    if platform.start(xs, None).is_err() || platform.xs_domid().is_none() {
        fail("xenstore", "could not start xenstore-dom");
    }
    let (ia, ib) = (find(platform, "testa"), find(platform, "testb"));
    let (Ok(a), Ok(b)) = (platform.start(ia, None), platform.start(ib, None)) else {
        fail("xenstore", "could not build the test domains");
    };
    let mut store = platform.xs_mut().expect("xenstore runs").store();
    for (me, peer) in [(a, b), (b, a)] {
        let path = alloc::format!("/local/domain/{me}/data/peer");
        if let Err(e) = store.write(
            xcp_xenbus::TxId::NONE,
            &path,
            alloc::format!("{peer}").as_bytes(),
        ) {
            error!("write {path}: {e:?}");
            fail("xenstore", "dom0 could not write through xenstore-dom");
        }
    }
    info!("selftest xenstore: testa is domid {a}, testb is domid {b}");
    State::Xenstore { a, b }
}

/// Timer token of dom0's own stress bursts.
pub const STRESS_TOKEN: u64 = 0x5757;
const STRESS_NS: u64 = 2_000_000;
/// dom0's requests per burst (a transaction is three).
const STRESS_BURST: u64 = 8;

/// What `xenstore-stress` tracks: the stress peers and dom0's own load.
pub(super) struct StressState {
    peers: Vec<u16>,
    bursts: u64,
    events: u64,
}

/// `xenstore-stress`: xenstore-dom and the `stress*` testdoms of the
/// config, each told (`data/peer`) the next one's domid; dom0 watches
/// every peer's `data/n` and runs its own bursts (a lost kick stalls a
/// call to its timeout: clients never kick twice).
pub(super) fn start_xenstore_stress(platform: &mut Platform, lp: &mut Loop) -> State {
    const NAME: &str = "xenstore-stress";
    let Some(xs) = platform.configs().iter().position(|c| c.xenstore) else {
        fail(NAME, "the self-test config lists no xenstore domain");
    };
    if platform.start(xs, None).is_err() || platform.xs_domid().is_none() {
        fail(NAME, "could not start xenstore-dom");
    }
    let indexes: Vec<usize> = platform
        .configs()
        .iter()
        .enumerate()
        .filter(|(_, c)| c.name.starts_with("stress"))
        .map(|(i, _)| i)
        .collect();
    if indexes.len() < 2 {
        fail(
            NAME,
            "the self-test config lists fewer than two stress domains",
        );
    }
    let mut peers = Vec::new();
    for index in indexes {
        match platform.start(index, None) {
            Ok(domid) => peers.push(domid),
            Err(_) => fail(NAME, "could not build a stress domain"),
        }
    }
    let mut store = platform.xs_mut().expect("xenstore runs").store();
    for (i, me) in peers.iter().enumerate() {
        let peer = peers[(i + 1) % peers.len()];
        let path = alloc::format!("/local/domain/{me}/data/peer");
        let watched = alloc::format!("/local/domain/{me}/data/n");
        let result = store
            .write(
                xcp_xenbus::TxId::NONE,
                &path,
                alloc::format!("{peer}").as_bytes(),
            )
            .and_then(|()| store.watch(&watched, "stress"));
        if let Err(e) = result {
            error!("write {path} / watch {watched}: {e:?}");
            fail(NAME, "dom0 could not set the stress domains up");
        }
    }
    info!("selftest {NAME}: stress domains {peers:?}");
    lp.after(STRESS_NS, STRESS_TOKEN);
    State::XenstoreStress(StressState {
        peers,
        bursts: 0,
        events: 0,
    })
}

/// One burst of dom0's own requests, draining the watch events that came.
pub(super) fn stress_burst(platform: &mut Platform, lp: &mut Loop, s: &mut StressState) {
    let mut store = platform.xs_mut().expect("xenstore runs").store();
    let none = xcp_xenbus::TxId::NONE;
    let value = alloc::format!("{}", s.bursts);
    let result = store
        .write(none, "/local/domain/0/stress", value.as_bytes())
        .and_then(|()| store.read(none, "/local/domain/0/stress"))
        .and_then(|_| {
            store.transaction(|xb, tx| {
                let v = xb.read(tx, "/local/domain/0/stress")?;
                xb.write(tx, "/local/domain/0/stress-t", &v)
            })
        })
        .and_then(|()| store.directory(none, "/local/domain/0"))
        .and_then(|_| store.get_perms(none, "/local/domain/0/stress"));
    if let Err(e) = result {
        error!("dom0 stress burst {}: {e:?}", s.bursts);
        fail("xenstore-stress", "a call of dom0's stalled or failed");
    }
    while let Some(event) = store.next_event() {
        s.events += u64::from(event.token == "stress");
    }
    s.bursts += 1;
    lp.after(STRESS_NS, STRESS_TOKEN);
}

/// Passes once every stress domain said done (fails if one failed).
pub(super) fn check_stress(platform: &mut Platform, s: &StressState) {
    const NAME: &str = "xenstore-stress";
    if s.peers
        .iter()
        .any(|&d| console_says(platform, d, b"xs-stress: FAIL"))
    {
        fail(NAME, "a stress domain's call stalled or failed");
    }
    if !s
        .peers
        .iter()
        .all(|&d| console_says(platform, d, b"xs-stress: done"))
    {
        return;
    }
    let w = xcp_runtime::xenstore::wait_stats();
    info!(
        "selftest {NAME}: dom0: {} bursts ({} requests), {} watch events; waits {}, longest {} us, \
         {} over 50 ms, {} timeouts; the longest ended at {} ms",
        s.bursts,
        s.bursts * STRESS_BURST,
        s.events,
        w.waits,
        w.longest_ns / 1000,
        w.slow,
        w.timeouts,
        w.longest_at_ns / 1_000_000
    );
    if w.timeouts > 0 {
        fail(NAME, "dom0's xenstore calls timed out");
    }
    pass(
        NAME,
        "stress domains and dom0 hammered xenstore-dom; no wake-up lost",
    );
}

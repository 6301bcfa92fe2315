//! `xenstore`: xenstore-dom and two testdoms that use it; one dies and is
//! released.

use super::*;

pub(super) fn start_xenstore(platform: &mut Platform, lp: &mut Loop) -> State {
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
    if platform.start(lp, xs, None).is_err() || platform.xs.is_none() {
        fail("xenstore", "could not start xenstore-dom");
    }
    let (ia, ib) = (find(platform, "testa"), find(platform, "testb"));
    let (Ok(a), Ok(b)) = (platform.start(lp, ia, None), platform.start(lp, ib, None)) else {
        fail("xenstore", "could not build the test domains");
    };
    let store = platform.xs.as_mut().expect("xenstore runs").store();
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

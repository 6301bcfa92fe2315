//! `xs-fill`: fills xenstore up to this domain's byte quota inside open
//! transactions, as a hostile guest would (XSA-326), and reports what
//! xenstore answered.
//!
//! Opens as many transactions as the quota allows (10 by default) and
//! writes the same 2,000-byte nodes in each, round-robin: every
//! transaction holds its own copies, charged to this domain, so the bytes
//! grow while the node count stays far below its quota. The first write
//! refused with ENOMEM ends the filling; then a read must still work. The
//! transactions stay open (the domain idles holding them).

use alloc::format;
use alloc::vec::Vec;

use xcp_xenbus::{Error, TxId, XsErrno};

/// Bytes per value (the `node-size` quota is 2,048).
const VALUE: usize = 2000;
/// Most nodes written per transaction before giving up.
const MAX_NODES: usize = 1000;

/// Runs the filler; never returns.
pub fn run(boot: &xcp_runtime::Boot) -> ! {
    let mut xs = xcp_runtime::xenstore::connect(boot).expect("a xenstore ring in start_info");
    let mut txns: Vec<TxId> = Vec::new();
    while txns.len() < 64 {
        match xs.transaction_start() {
            Ok(t) => txns.push(t),
            Err(Error::Xs(XsErrno::Equota | XsErrno::Enospc | XsErrno::Eagain)) => break,
            Err(e) => fail(format_args!("transaction_start: {e:?}")),
        }
    }
    log::info!("xs-fill: {} transactions open", txns.len());
    let value = [b'v'; VALUE];
    let mut writes = 0usize;
    'fill: for i in 0..MAX_NODES {
        let path = format!("data/fill/n{i}");
        for &t in &txns {
            match xs.write(t, &path, &value) {
                Ok(()) => writes += 1,
                Err(Error::Xs(XsErrno::Enomem)) => break 'fill,
                Err(e) => fail(format_args!("write {path} after {writes} writes: {e:?}")),
            }
        }
        if i + 1 == MAX_NODES {
            fail(format_args!("no ENOMEM after {writes} writes"));
        }
    }
    log::info!(
        "xs-fill: ENOMEM after {writes} writes ({} KiB of values) in {} open transactions",
        writes * VALUE / 1024,
        txns.len()
    );
    match xs.read_string(TxId::NONE, "domid") {
        Ok(d) => log::info!("xs-fill: xenstore still answers (domid {})", d.trim()),
        Err(e) => fail(format_args!("read domid after ENOMEM: {e:?}")),
    }
    loop {
        xcp_runtime::event_loop::idle();
    }
}

fn fail(why: core::fmt::Arguments<'_>) -> ! {
    log::error!("xs-fill: FAIL {why}");
    loop {
        xcp_runtime::event_loop::idle();
    }
}

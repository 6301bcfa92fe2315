//! The xenstore stress peer (`xs-test=stress`): requests in a tight loop
//! through xenstore-dom, beside other stress peers and dom0 doing the same,
//! to find lost wake-ups. dom0 gives each peer its home and writes the next
//! peer's domid to `data/peer`.
//!
//! Each round: WRITE and READ `data/n`, a transaction that reads `data/n`
//! and writes `data/t`, a WRITE to the peer's `data/box` (which fires the
//! peer's watch; EACCES/ENOENT until the peer set its box up), DIRECTORY
//! `data`, and the watch events that came meanwhile are drained. A lost
//! wake-up stalls a call to its 5 s timeout (the client never kicks
//! twice): the peer then logs `xs-stress: FAIL`. At the end it logs its figures (from
//! `xcp_runtime::xenstore::wait_stats`) and `xs-stress: done`.

use alloc::format;
use alloc::string::String;

use xcp_runtime::xenstore::Store;
use xcp_xenbus::{Access, Error, Perm, TxId, XsErrno};

/// Rounds when the command line names none (`xs-stress-rounds=`).
pub const ROUNDS: u64 = 1000;
/// Requests per round (a transaction is three).
const REQUESTS_PER_ROUND: u64 = 10;
/// Bytes of the large value written and read back each round.
const BIG: usize = 2000;

fn big_value(i: u64) -> alloc::vec::Vec<u8> {
    (0..BIG)
        .map(|j| b'a' + ((i as usize + j) % 26) as u8)
        .collect()
}

const NONE: TxId = TxId::NONE;

struct Counts {
    rounds: u64,
    events: u64,
    delivered: u64,
}

fn round(xs: &mut Store, i: u64, peer_box: &str, counts: &mut Counts) -> Result<(), Error> {
    let value = format!("{i}");
    xs.write(NONE, "data/n", value.as_bytes())?;
    if xs.read_string(NONE, "data/n")? != value {
        panic!("xs-stress: data/n does not read back {value}");
    }
    xs.transaction(|xb, tx| {
        let n = xb.read(tx, "data/n")?;
        xb.write(tx, "data/t", &n)
    })?;
    match xs.write(NONE, peer_box, value.as_bytes()) {
        Ok(()) => counts.delivered += 1,
        Err(Error::Xs(XsErrno::Eacces | XsErrno::Enoent)) => {}
        Err(e) => return Err(e),
    }
    xs.directory(NONE, "data")?;
    // Larger than either 1024-byte ring: the request goes in pieces as the
    // server makes room, the reply as we do (flow control both ways).
    let big = big_value(i);
    xs.write(NONE, "data/big", &big)?;
    if xs.read(NONE, "data/big")? != big {
        panic!("xs-stress: data/big does not read back");
    }
    while xs.next_event().is_some() {
        counts.events += 1;
    }
    counts.rounds += 1;
    if counts.rounds.is_multiple_of(100) {
        let s = xcp_runtime::xenstore::wait_stats();
        log::info!(
            "xs-stress: {} rounds; waits {}, {} over 50 ms, longest {} us",
            counts.rounds,
            s.waits,
            s.slow,
            s.longest_ns / 1000
        );
    }
    Ok(())
}

fn setup(xs: &mut Store, me: u16) -> Result<(), Error> {
    xs.mkdir(NONE, "data/box")?;
    // Owner me; everyone else may write (the previous peer in dom0's ring
    // writes it).
    xs.set_perms(NONE, "data/box", &[Perm::new(me, Access::Write)])?;
    xs.watch("data/box", "box")
}

/// Runs `rounds` rounds, logs the figures, then idles.
pub fn run(xs: &mut Store, rounds: u64) -> ! {
    let me = crate::xs_test::number(xs, "domid");
    let peer = crate::xs_test::number(xs, "data/peer");
    let peer_box: String = format!("/local/domain/{peer}/data/box");
    let mut counts = Counts {
        rounds: 0,
        events: 0,
        delivered: 0,
    };
    let started = xcp_runtime::time::now_ns();
    log::info!("xs-stress: domid {me} starts {rounds} rounds (peer {peer})");
    let result = setup(xs, me)
        .and_then(|()| (0..rounds).try_for_each(|i| round(xs, i, &peer_box, &mut counts)));
    let ms = (xcp_runtime::time::now_ns() - started) / 1_000_000;
    let s = xcp_runtime::xenstore::wait_stats();
    log::info!(
        "xs-stress: domid {me}: {} rounds ({} requests) in {ms} ms, {} watch events, \
         {} writes to the peer's box; waits {}, longest {} us, {} over 50 ms, \
         {} timeouts; the longest ended at {} ms",
        counts.rounds,
        counts.rounds * REQUESTS_PER_ROUND,
        counts.events,
        counts.delivered,
        s.waits,
        s.longest_ns / 1000,
        s.slow,
        s.timeouts,
        s.longest_at_ns / 1_000_000
    );
    match result {
        Ok(()) => log::info!("xs-stress: done"),
        Err(e) => {
            // Where the stall sits: requests the server never read
            // (req_prod ahead of req_cons), or replies we never saw
            // (rsp_prod ahead of rsp_cons), and whether our port is
            // still pending.
            let i = xs.ring_indexes();
            let port = xs.waiter().port;
            log::error!(
                "xs-stress: FAIL: {e:?} in round {}; ring req {}/{} rsp {}/{} (cons/prod), \
                 client requests in flight {}, port {port} pending {} masked {}",
                counts.rounds,
                i.req_cons,
                i.req_prod,
                i.rsp_cons,
                i.rsp_prod,
                xs.client().in_flight(),
                xcp_runtime::evtchn::is_pending(port),
                xcp_runtime::evtchn::is_masked(port)
            );
        }
    }
    loop {
        xcp_runtime::event_loop::idle();
    }
}

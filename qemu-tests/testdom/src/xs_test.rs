//! The xenstore self-test peers (`xs-test=a` / `xs-test=b`), run through
//! xenstore-dom on real Xen. dom0 gives each its home and writes the other's
//! domid to `data/peer`.
//!
//! - a: writes and reads its home; makes `data/mailbox` writable by b and
//!   watches it; sees b's write fire the watch; gets EACCES writing outside
//!   its permissions; says done and dies on purpose (dom0 then releases it).
//! - b: writes and reads its home, then floods xenstore with writes while a
//!   works, writing a's mailbox as soon as a allows it, until writing it
//!   fails again (ENOENT/EACCES): a was released and its nodes removed (dom0
//!   then checks the tree).

use alloc::format;

use xcp_runtime::xenstore::Store;
use xcp_xenbus::{Access, Error, Perm, TxId, XsErrno};

const NONE: TxId = TxId::NONE;

fn sleep_ms(ms: u64) {
    let deadline = xcp_runtime::time::now_ns() + ms * 1_000_000;
    while xcp_runtime::time::now_ns() < deadline {
        xcp_runtime::event_loop::sleep_until(deadline);
    }
}

/// The number at `path`, once it exists (dom0 writes some after the
/// domain started).
pub(crate) fn number(xs: &mut Store, path: &str) -> u16 {
    loop {
        match xs.read_string(NONE, path) {
            Ok(v) => return v.trim().parse().expect("a domid"),
            Err(Error::Xs(XsErrno::Enoent)) => sleep_ms(5),
            Err(e) => panic!("read {path}: {e:?}"),
        }
    }
}

fn home_round_trip(xs: &mut Store, value: &str) {
    xs.write(NONE, "data/hello", value.as_bytes())
        .expect("write my home");
    let back = xs.read_string(NONE, "data/hello").expect("read my home");
    assert_eq!(back, value);
}

fn a(xs: &mut Store) -> ! {
    let me = number(xs, "domid");
    home_round_trip(xs, "from a");
    log::info!("xs-test a: wrote and read its home as domid {me}");
    let peer = number(xs, "data/peer");
    xs.mkdir(NONE, "data/mailbox").expect("mkdir mailbox");
    xs.set_perms(
        NONE,
        "data/mailbox",
        &[Perm::new(me, Access::None), Perm::new(peer, Access::Write)],
    )
    .expect("let b write the mailbox");
    xs.watch("data/mailbox", "mb").expect("watch the mailbox");
    loop {
        let event = xs.wait_event().expect("a watch event");
        assert_eq!(event.token, "mb");
        match xs.read_string(NONE, "data/mailbox") {
            Ok(v) if v == "hello from b" => break,
            Ok(_) => {}
            Err(e) => panic!("read mailbox: {e:?}"),
        }
    }
    log::info!("xs-test a: the watch fired on b's permitted write");
    for path in [
        alloc::string::String::from("/local/domain/0/intrusion"),
        format!("/local/domain/{peer}/data/intrusion"),
    ] {
        match xs.write(NONE, &path, b"x") {
            Err(Error::Xs(XsErrno::Eacces)) => {}
            other => panic!("write {path}: expected EACCES, got {other:?}"),
        }
    }
    log::info!("xs-test a: writes outside its permissions get EACCES");
    log::info!("xs-test a: done");
    panic!("xs-test a: dying on purpose, so dom0 releases it");
}

fn b(xs: &mut Store) -> ! {
    let me = number(xs, "domid");
    home_round_trip(xs, "from b");
    log::info!("xs-test b: wrote and read its home as domid {me}");
    let peer = number(xs, "data/peer");
    let mailbox = format!("/local/domain/{peer}/data/mailbox");
    log::info!("xs-test b: flooding xenstore with writes");
    let mut writes: u64 = 0;
    let mut delivered = false;
    loop {
        for _ in 0..50 {
            xs.write(NONE, "data/flood", format!("{writes}").as_bytes())
                .expect("flood write");
            writes += 1;
        }
        // The mailbox is owned by a and writable by b once a sets it up;
        // once a is released the node and its ACL are gone, and creating it
        // anew needs write access to a's home, which b never had.
        match xs.write(NONE, &mailbox, b"hello from b") {
            Ok(()) if !delivered => {
                delivered = true;
                log::info!("xs-test b: wrote a's mailbox");
            }
            Ok(()) => {}
            Err(Error::Xs(XsErrno::Enoent | XsErrno::Eacces)) if delivered => break,
            Err(Error::Xs(XsErrno::Enoent | XsErrno::Eacces)) => {}
            Err(e) => panic!("write {mailbox}: {e:?}"),
        }
        assert!(writes < 2_000_000, "a was never released");
    }
    log::info!("xs-test b: a's nodes are gone after {writes} flood writes");
    log::info!("xs-test b: done");
    loop {
        xcp_runtime::event_loop::idle();
    }
}

/// Runs role `role` ("a", "b" or "stress").
pub fn run(boot: &xcp_runtime::Boot, role: &str) -> ! {
    let mut xs = xcp_runtime::xenstore::connect(boot).expect("a xenstore ring in start_info");
    match role {
        "a" => a(&mut xs),
        "b" => b(&mut xs),
        "stress" => {
            let rounds = xcp_runtime::cmdline::get(boot.cmdline, "xs-stress-rounds")
                .and_then(|r| r.parse().ok())
                .unwrap_or(crate::xs_stress::ROUNDS);
            crate::xs_stress::run(&mut xs, rounds)
        }
        other => panic!("xs-test role {other:?}"),
    }
}

//! The xenbus client against the real xenstore engine, through ring pages:
//! reads and writes, directories, watches, transactions, permissions,
//! domain management, errors and pipelining.

mod common;

use common::{attach, dom0, domu, World};
use xcp_xenbus::{Access, Error, Perm, Reply, TxId, WatchEvent, XenbusState, XsErrno};

const NO_TX: TxId = TxId::NONE;

fn event(path: &str, token: &str) -> WatchEvent {
    WatchEvent {
        path: path.into(),
        token: token.into(),
    }
}

#[test]
fn write_read_directory_rm() {
    let w = World::new();
    let mut d0 = dom0(&w);
    d0.write(NO_TX, "/vm/a", b"hello").expect("write");
    d0.write(NO_TX, "/vm/b", b"").expect("write empty");
    d0.mkdir(NO_TX, "/vm/c").expect("mkdir");
    assert_eq!(d0.read(NO_TX, "/vm/a").expect("read"), b"hello");
    assert_eq!(d0.read_string(NO_TX, "/vm/a").expect("read"), "hello");
    assert_eq!(d0.read(NO_TX, "/vm/b").expect("read"), b"");
    assert_eq!(d0.directory(NO_TX, "/vm").expect("ls"), ["a", "b", "c"]);
    assert_eq!(
        d0.directory(NO_TX, "/vm/c").expect("ls"),
        Vec::<String>::new()
    );
    d0.rm(NO_TX, "/vm").expect("rm");
    assert_eq!(d0.read(NO_TX, "/vm/a"), Err(Error::Xs(XsErrno::Enoent)));
    assert_eq!(d0.directory(NO_TX, "/vm"), Err(Error::Xs(XsErrno::Enoent)));
}

#[test]
fn binary_and_large_values_cross_the_ring_wrap() {
    let w = World::new();
    let mut d0 = dom0(&w);
    for i in 0..20u8 {
        // 2 KiB values: every request and reply wraps the 1 KiB rings.
        let value: Vec<u8> = (0..2048).map(|j| (j as u8) ^ i).collect();
        let path = format!("/big/{i}");
        d0.write(NO_TX, &path, &value).expect("write");
        assert_eq!(d0.read(NO_TX, &path).expect("read"), value);
    }
}

#[test]
fn server_errors_map_to_names() {
    let w = World::new();
    let mut d0 = dom0(&w);
    assert_eq!(d0.rm(NO_TX, "/"), Err(Error::Xs(XsErrno::Einval)));
    assert_eq!(d0.read(NO_TX, "/nope"), Err(Error::Xs(XsErrno::Enoent)));
    assert_eq!(
        d0.transaction_end(TxId(77), true),
        Err(Error::Xs(XsErrno::Enoent))
    );
    // Local refusals never reach the server.
    assert_eq!(d0.read(NO_TX, "/a/../b"), Err(Error::InvalidPath));
    assert_eq!(
        d0.write(NO_TX, "/a", &[0; 5000]),
        Err(Error::InvalidArgument)
    );
    // An unknown type is answered ENOSYS, not silence.
    let id = d0
        .client()
        .request(xcp_xenbus::MsgType::Unknown(99), NO_TX, b"")
        .expect("queued");
    assert_eq!(d0.wait_reply(id), Err(Error::Xs(XsErrno::Enosys)));
}

#[test]
fn big_directories_fall_back_to_directory_part() {
    let w = World::new();
    let mut d0 = dom0(&w);
    let names: Vec<String> = (0..600)
        .map(|i| format!("child-with-a-long-name-{i:04}"))
        .collect();
    for n in &names {
        d0.mkdir(NO_TX, &format!("/many/{n}")).expect("mkdir");
    }
    let id = d0.client().directory(NO_TX, "/many").expect("queued");
    assert_eq!(d0.wait_reply(id), Err(Error::Xs(XsErrno::E2big)));
    let mut listed = d0.directory(NO_TX, "/many").expect("ls by parts");
    listed.sort();
    assert_eq!(listed, names);
}

#[test]
fn watches_fire_and_stop() {
    let w = World::new();
    let mut d0 = dom0(&w);
    let mut other = dom0(&w);
    d0.watch("/w", "tok").expect("watch");
    assert_eq!(d0.wait_event(), Ok(event("/w", "tok")), "initial event");
    other.write(NO_TX, "/w/x", b"1").expect("write");
    assert_eq!(d0.wait_event(), Ok(event("/w/x", "tok")));
    other.rm(NO_TX, "/w/x").expect("rm");
    assert_eq!(d0.wait_event(), Ok(event("/w/x", "tok")));
    d0.unwatch("/w", "tok").expect("unwatch");
    other.write(NO_TX, "/w/y", b"1").expect("write");
    assert_eq!(d0.next_event(), None);
    assert_eq!(d0.wait_event(), Err(Error::Timeout));
}

#[test]
fn events_interleave_with_replies() {
    let w = World::new();
    let mut d0 = dom0(&w);
    d0.watch("/t", "own").expect("watch");
    // Our own writes fire our watch while we wait for their replies: the
    // events are kept, the replies returned.
    for i in 0..5 {
        d0.write(NO_TX, &format!("/t/{i}"), b"v").expect("write");
    }
    let mut seen = Vec::new();
    while let Some(e) = d0.next_event() {
        seen.push(e.path);
    }
    assert_eq!(seen, ["/t", "/t/0", "/t/1", "/t/2", "/t/3", "/t/4"]);
}

#[test]
fn guest_relative_paths_and_watches() {
    let w = World::new();
    let mut d0 = dom0(&w);
    let mut g = domu(&w, &mut d0, 5);
    assert_eq!(g.get_domain_path(5).expect("path"), "/local/domain/5");
    g.write(NO_TX, "data/x", b"1").expect("relative write");
    assert_eq!(
        d0.read(NO_TX, "/local/domain/5/data/x").expect("read"),
        b"1"
    );
    g.watch("data", "rel").expect("watch");
    assert_eq!(g.wait_event(), Ok(event("data", "rel")));
    d0.write(NO_TX, "/local/domain/5/data/y", b"2")
        .expect("write");
    assert_eq!(g.wait_event(), Ok(event("data/y", "rel")));
}

#[test]
fn permissions_are_enforced_and_reported() {
    let w = World::new();
    let mut d0 = dom0(&w);
    let mut g = domu(&w, &mut d0, 5);
    d0.write(NO_TX, "/secret", b"s").expect("write");
    assert_eq!(g.read(NO_TX, "/secret"), Err(Error::Xs(XsErrno::Eacces)));
    assert_eq!(
        g.write(NO_TX, "/secret", b"x"),
        Err(Error::Xs(XsErrno::Eacces))
    );
    d0.set_perms(
        NO_TX,
        "/secret",
        &[Perm::new(0, Access::None), Perm::new(5, Access::Read)],
    )
    .expect("chmod");
    assert_eq!(g.read(NO_TX, "/secret").expect("readable now"), b"s");
    assert_eq!(
        g.write(NO_TX, "/secret", b"x"),
        Err(Error::Xs(XsErrno::Eacces))
    );
    assert_eq!(
        g.get_perms(NO_TX, "/secret").expect("perms"),
        [Perm::new(0, Access::None), Perm::new(5, Access::Read)]
    );
    // A guest may not give its nodes away (XSA-352).
    g.write(NO_TX, "mine", b"m").expect("write");
    assert_eq!(
        g.set_perms(NO_TX, "mine", &[Perm::new(0, Access::None)]),
        Err(Error::Xs(XsErrno::Eperm))
    );
    // Domain management is privileged.
    assert_eq!(g.release(5), Err(Error::Xs(XsErrno::Eacces)));
}

#[test]
fn transactions_commit_abort_and_retry_on_conflict() {
    let w = World::new();
    let mut d0 = dom0(&w);
    let mut other = dom0(&w);
    d0.write(NO_TX, "/counter", b"0").expect("write");

    // Commit.
    d0.transaction(|xb, tx| xb.write(tx, "/counter", b"1"))
        .expect("commit");
    assert_eq!(d0.read(NO_TX, "/counter").expect("read"), b"1");

    // Abort on a body error: nothing written, the error comes back.
    let r: Result<(), Error> = d0.transaction(|xb, tx| {
        xb.write(tx, "/counter", b"2")?;
        Err(Error::Xs(XsErrno::Einval))
    });
    assert_eq!(r, Err(Error::Xs(XsErrno::Einval)));
    assert_eq!(d0.read(NO_TX, "/counter").expect("read"), b"1");

    // Conflict: the first attempt is overtaken by another writer; the
    // helper starts again and the second attempt commits.
    let mut attempts = 0;
    d0.transaction(|xb, tx| {
        attempts += 1;
        let v = xb.read(tx, "/counter")?;
        if attempts == 1 {
            other
                .write(NO_TX, "/counter", b"10")
                .expect("interfering write");
        }
        let n: u32 = std::str::from_utf8(&v)
            .expect("ascii")
            .parse()
            .expect("number");
        xb.write(tx, "/counter", (n + 1).to_string().as_bytes())
    })
    .expect("commit after retry");
    assert_eq!(attempts, 2);
    assert_eq!(d0.read(NO_TX, "/counter").expect("read"), b"11");

    // A transaction that always conflicts gives up.
    let r: Result<(), Error> = d0.transaction(|xb, tx| {
        xb.read(tx, "/counter")?;
        other
            .write(NO_TX, "/counter", b"x")
            .expect("interfering write");
        xb.write(tx, "/counter", b"y")
    });
    assert_eq!(r, Err(Error::Conflict));
}

#[test]
fn domain_management_from_dom0() {
    let w = World::new();
    let mut d0 = dom0(&w);
    d0.watch("@introduceDomain", "in").expect("watch");
    d0.watch("@releaseDomain", "out").expect("watch");
    assert_eq!(d0.wait_event(), Ok(event("@introduceDomain", "in")));
    assert_eq!(d0.wait_event(), Ok(event("@releaseDomain", "out")));
    assert!(!d0.is_domain_introduced(9).expect("query"));
    d0.introduce(9, 4321, 7).expect("introduce");
    assert!(d0.is_domain_introduced(9).expect("query"));
    assert_eq!(w.borrow().engine.domain_ring(9), Some((4321, 7)));
    assert_eq!(d0.wait_event(), Ok(event("@introduceDomain", "in")));
    d0.release(9).expect("release");
    assert_eq!(d0.wait_event(), Ok(event("@releaseDomain", "out")));
    assert_eq!(d0.release(9), Err(Error::Xs(XsErrno::Enoent)));
}

#[test]
fn xenbus_state_switching() {
    let w = World::new();
    let mut d0 = dom0(&w);
    let dir = "/local/domain/0/backend/vif/5/0";
    d0.write(NO_TX, &format!("{dir}/state"), b"1")
        .expect("write");
    assert_eq!(d0.read_state(dir), Ok(XenbusState::Initialising));
    assert_eq!(d0.switch_state(dir, XenbusState::InitWait), Ok(true));
    assert_eq!(d0.read_state(dir), Ok(XenbusState::InitWait));
    d0.write(NO_TX, &format!("{dir}/state"), b"garbage")
        .expect("write");
    assert_eq!(d0.read_state(dir), Ok(XenbusState::Invalid(u32::MAX)));
    // A removed device directory is not recreated by a late switch.
    d0.rm(NO_TX, dir).expect("rm");
    assert_eq!(d0.switch_state(dir, XenbusState::Closed), Ok(false));
    assert_eq!(d0.read_state(dir), Err(Error::Xs(XsErrno::Enoent)));
}

#[test]
fn pipelined_requests_get_their_own_replies() {
    let w = World::new();
    let conn = w.borrow_mut().engine.connect(0);
    let mut xb = attach(&w, conn);
    let c = xb.client();
    let mut ids = Vec::new();
    for i in 0..16 {
        ids.push(
            c.write(NO_TX, &format!("/p/{i}"), &[b'v'; 500])
                .expect("queued"),
        );
    }
    assert_eq!(c.read(NO_TX, "/p/0"), Err(Error::Busy));
    // Replies arrive in any order of taking.
    for id in ids.iter().rev() {
        assert_eq!(xb.wait_reply(*id), Ok(Reply::Ok));
    }
    assert_eq!(xb.client().in_flight(), 0);
    let reads: Vec<_> = (0..16)
        .map(|i| xb.client().read(NO_TX, &format!("/p/{i}")).expect("queued"))
        .collect();
    for id in reads {
        assert_eq!(xb.wait_reply(id), Ok(Reply::Value(vec![b'v'; 500])));
    }
}

#[test]
fn forgotten_requests_free_their_slot_when_answered() {
    let w = World::new();
    let conn = w.borrow_mut().engine.connect(0);
    let mut xb = attach(&w, conn);
    let id = xb.client().read(NO_TX, "/nothing").expect("queued");
    xb.client().forget(id);
    assert_eq!(xb.client().in_flight(), 1);
    let probe = xb.client().write(NO_TX, "/x", b"1").expect("queued");
    assert_eq!(xb.wait_reply(probe), Ok(Reply::Ok));
    assert_eq!(xb.client().in_flight(), 0);
    assert_eq!(xb.client().stray_replies(), 0);
}

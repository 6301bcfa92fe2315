//! Regression tests for attack classes 1-11 of protocol-notes.md: each shows
//! the engine answers correctly and stays healthy for another connection.

mod common;

use common::H;
use std::cell::RefCell;
use xenstore_engine::ring::{self, RingError, SharedPage};
use xenstore_engine::wire::{self, MsgType};
use xenstore_engine::{ConnId, Effect};

/// Another connection still gets correct service.
#[track_caller]
fn healthy(h: &mut H) {
    let c = h.dom0();
    send!(h, c, Write, b"/health\0ok" => ok);
    assert_eq!(send!(h, c, Read, b"/health\0"), Ok(b"ok".to_vec()));
    h.e.close(c);
}

fn home(h: &mut H, domid: u16) -> ConnId {
    let d0 = h.dom0();
    let conn = h.domu(domid);
    send!(h, d0, Write, format!("/local/domain/{domid}\0").as_bytes() => ok);
    send!(h, d0, SetPerms, format!("/local/domain/{domid}\0n0\0b{domid}\0").as_bytes() => ok);
    h.e.close(d0);
    let _ = h.e.take_effects();
    conn
}

#[test]
fn class01_oversize_payload_drops_connection_not_domain() {
    let mut h = H::new();
    let d0 = h.dom0();
    send!(h, d0, Watch, b"@releaseDomain\0r\0" => ok);
    recv!(h, d0, "@releaseDomain", "r");
    let d5 = home(&mut h, 5);
    send!(h, d5, Watch, b"x\0t\0" => ok);
    let mut msg = wire::Header {
        ty: MsgType::Write,
        req_id: 1,
        tx_id: 0,
        len: 4097,
    }
    .emit()
    .to_vec();
    msg.extend(std::iter::repeat_n(b'a', 100));
    assert!(h.e.receive(d5, &msg).is_err());
    assert!(h
        .e
        .take_effects()
        .contains(&Effect::ProtocolError { conn: d5, domid: 5 }));
    assert!(!h.e.wants_input(d5), "no more input from a violator");
    assert!(h.e.receive(d5, b"more").is_err());
    // The domain is still introduced; no @releaseDomain fired.
    assert_eq!(
        send!(h, d0, IsDomainIntroduced, b"5\0"),
        Ok(b"T\0".to_vec())
    );
    recv!(h, d0, none);
    // Its watch is gone: a change under its home queues nothing for it.
    let _ = h.drain(d5);
    send!(h, d0, Write, b"/local/domain/5/x\0" => ok);
    assert!(h.drain(d5).is_empty());
    healthy(&mut h);
}

#[test]
fn class02_event_exceeding_payload_max_is_not_sent() {
    let mut h = H::new();
    let d0 = h.dom0();
    let watcher = h.dom0();
    let token = vec![b't'; 4096 - 3 - 1];
    let mut payload = b"/a\0".to_vec();
    payload.extend_from_slice(&token);
    payload.push(0);
    assert_eq!(
        h.send(watcher, MsgType::Watch, 0, &payload),
        Ok(b"OK\0".to_vec())
    );
    assert_eq!(
        h.event(watcher).map(|e| e.0),
        Some("/a".into()),
        "initial event fits exactly"
    );
    send!(h, d0, Watch, b"/a\0small\0" => ok);
    recv!(h, d0, "/a", "small");
    send!(h, d0, Write, b"/a/bb\0v" => ok);
    recv!(h, watcher, none);
    recv!(h, d0, "/a/bb", "small");
    // A token that cannot even fit its request is a protocol error on parse.
    let mut big = b"/a\0".to_vec();
    big.extend(std::iter::repeat_n(b't', 4094));
    let msg = wire::encode(MsgType::Watch, 9, 0, &big);
    assert!(h.e.receive(watcher, &msg).is_err());
    healthy(&mut h);
}

#[test]
fn class03_unprivileged_watches_do_not_leak() {
    let mut h = H::new();
    let d0 = h.dom0();
    let d5 = home(&mut h, 5);
    send!(h, d5, Watch, b"/\0root\0" => ok);
    recv!(h, d5, "/", "root");
    send!(h, d5, Watch, b"@introduceDomain\0i\0" => ok);
    recv!(h, d5, "@introduceDomain", "i");
    send!(h, d5, Watch, b"@releaseDomain\0r\0" => ok);
    recv!(h, d5, "@releaseDomain", "r");
    send!(h, d0, Write, b"/secret/key\0hidden" => ok);
    send!(h, d0, Rm, b"/secret\0" => ok);
    let _d6 = h.domu(6);
    send!(h, d0, Release, b"6\0" => ok);
    recv!(h, d5, none);
    // Its own home is readable: that event arrives.
    send!(h, d5, Write, b"mine\0" => ok);
    recv!(h, d5, "/local/domain/5/mine", "root");
    // Explicitly allowed special path.
    send!(h, d0, SetPerms, b"@introduceDomain\0n0\0r5\0" => ok);
    let _d7 = h.domu(7);
    recv!(h, d5, "@introduceDomain", "i");
    recv!(h, d5, none);
    healthy(&mut h);
}

#[test]
fn class04_domid_reuse_inherits_nothing() {
    let mut h = H::new();
    let d0 = h.dom0();
    let d5 = home(&mut h, 5);
    send!(h, d0, Write, b"/shared\0granted" => ok);
    send!(h, d0, SetPerms, b"/shared\0n0\0r5\0" => ok);
    assert_eq!(send!(h, d5, Read, b"/shared\0"), Ok(b"granted".to_vec()));
    send!(h, d5, Write, b"/local/domain/5/data/a\x001" => ok);
    send!(h, d5, Write, b"/local/domain/5/data/b\x002" => ok);
    assert_eq!(h.e.owned_by(5), 3);
    let before = h.e.node_count();
    send!(h, d0, Release, b"5\0" => ok);
    assert_eq!(h.e.owned_by(5), 0, "nodes of the dead domain are removed");
    assert_eq!(h.e.node_count(), before - 3);
    assert_eq!(
        send!(h, d0, GetPerms, b"/shared\0"),
        Ok(b"n0\0".to_vec()),
        "ACL entry revoked"
    );
    assert_eq!(
        send!(h, d0, GetPerms, b"/local/domain/5\0"),
        Ok(b"n0\0".to_vec())
    );
    let new5 = h.domu(5);
    send!(h, new5, Read, b"/shared\0" => "EACCES");
    send!(h, new5, Read, b"/local/domain/5/data/a\0" => "EACCES");
    assert_eq!(h.e.transactions(new5), 0);
    healthy(&mut h);
}

#[test]
fn class05_root_and_ownership_give_away() {
    let mut h = H::new();
    let d0 = h.dom0();
    let d5 = home(&mut h, 5);
    send!(h, d5, SetPerms, b"/\0b5\0" => "EACCES");
    send!(h, d5, Rm, b"/\0" => "EINVAL");
    send!(h, d5, Directory, b"/\0" => "EACCES");
    send!(h, d5, Write, b"/x\0" => "EACCES");
    send!(h, d0, Rm, b"/\0" => "EINVAL");
    // Giving a node away to dodge the quota is refused.
    send!(h, d5, Write, b"n\0" => ok);
    send!(h, d5, SetPerms, b"n\0n0\0" => "EPERM");
    send!(h, d5, SetPerms, b"n\0n6\0" => "EPERM");
    assert_eq!(send!(h, d5, GetPerms, b"n\0"), Ok(b"n5\0b5\0".to_vec()));
    // Bad perm strings.
    send!(h, d5, SetPerms, b"n\0x5\0" => "EINVAL");
    send!(h, d5, SetPerms, b"n\0" => "EINVAL");
    healthy(&mut h);
}

#[test]
fn class06_memory_exhaustion_is_bounded() {
    let mut h = H::new();
    let d0 = h.dom0();
    let d5 = home(&mut h, 5);
    // (a) Requests sent, replies never read: input stops at 20 outstanding.
    let mut flood = Vec::new();
    for i in 0..100u32 {
        flood.extend_from_slice(&wire::encode(MsgType::Read, i, 0, b"/local/domain/5\0"));
    }
    let taken = h.e.receive(d5, &flood).unwrap();
    assert!(taken < flood.len());
    assert!(!h.e.wants_input(d5));
    assert_eq!(h.e.receive(d5, &flood[taken..]), Ok(0));
    let replies = h.drain(d5);
    assert_eq!(replies.len(), 20);
    assert!(h.e.wants_input(d5));
    // (b) Many watches, then RM of a big subtree: events are bounded.
    for i in 0..128 {
        send!(h, d5, Watch, format!("w/{i}\0t\0").as_bytes() => ok);
    }
    send!(h, d5, Watch, b"w/extra\0t\0" => "E2BIG");
    for i in 0..128 {
        send!(h, d5, Write, format!("w/{i}\0").as_bytes() => ok);
    }
    let _ = h.drain(d5);
    h.events.clear();
    // Unread: the RM fires 128 events but at most 256 are ever queued.
    for _ in 0..4 {
        let msg = wire::encode(MsgType::Rm, 1, 0, b"/local/domain/5/w\0");
        h.e.receive(d0, &msg).unwrap();
        let _ = h.drain(d0);
        let msg = wire::encode(MsgType::Mkdir, 1, 0, b"/local/domain/5/w\0");
        h.e.receive(d0, &msg).unwrap();
        let _ = h.drain(d0);
    }
    assert!(h.e.dropped_events(d5) > 0);
    let queued = h.drain(d5);
    assert!(queued.len() <= 256, "{}", queued.len());
    // (c) Transactions: at most 10, each bounded in nodes.
    let mut txs = Vec::new();
    for _ in 0..10 {
        let id = send!(h, d5, TransactionStart, b"\0").unwrap();
        txs.push(
            std::str::from_utf8(&id[..id.len() - 1])
                .unwrap()
                .parse::<u32>()
                .unwrap(),
        );
    }
    send!(h, d5, TransactionStart, b"\0" => "ENOSPC");
    let tx = txs[0];
    let mut last = Ok(Vec::new());
    for i in 0..1100 {
        last = send!(h, d5, tx tx, Write, format!("t/{i}\0").as_bytes());
        if last.is_err() {
            break;
        }
    }
    assert_eq!(
        last,
        Err("ENOSPC".into()),
        "node quota or transaction-node quota"
    );
    for tx in txs {
        assert!(send!(h, d5, tx tx, TransactionEnd, b"F\0").is_ok());
    }
    assert!(h.e.owned_by(5) <= 1000);
    healthy(&mut h);
}

#[test]
fn class07_transaction_edge_cases() {
    let mut h = H::new();
    let d0 = h.dom0();
    let d5 = home(&mut h, 5);
    let start = |h: &mut H, c| {
        let id = send!(h, c, TransactionStart, b"\0").unwrap();
        std::str::from_utf8(&id[..id.len() - 1])
            .unwrap()
            .parse::<u32>()
            .unwrap()
    };
    // Create and delete inside one transaction: nothing is left, counts exact.
    let owned = h.e.owned_by(5);
    let tx = start(&mut h, d5);
    assert!(send!(h, d5, tx tx, Write, b"tmp/a/b\0x").is_ok());
    assert!(send!(h, d5, tx tx, Rm, b"tmp\0").is_ok());
    assert!(send!(h, d5, tx tx, TransactionEnd, b"T\0").is_ok());
    send!(h, d5, Read, b"tmp\0" => "ENOENT");
    assert_eq!(h.e.owned_by(5), owned);
    // Orphans: a transaction writes below a node removed meanwhile.
    send!(h, d5, Write, b"p\0" => ok);
    let tx = start(&mut h, d5);
    assert!(send!(h, d5, tx tx, Write, b"p/child\0x").is_ok());
    send!(h, d0, Rm, b"/local/domain/5/p\0" => ok);
    assert_eq!(
        send!(h, d5, tx tx, TransactionEnd, b"T\0"),
        Err("EAGAIN".into())
    );
    send!(h, d5, Read, b"p/child\0" => "ENOENT");
    assert_eq!(h.e.owned_by(5), owned, "quota never drifts, never negative");
    // Deleting outside while a transaction deletes too: counts stay exact.
    send!(h, d5, Write, b"q\0" => ok);
    let tx = start(&mut h, d5);
    assert!(send!(h, d5, tx tx, Rm, b"q\0").is_ok());
    send!(h, d0, Rm, b"/local/domain/5/q\0" => ok);
    assert_eq!(
        send!(h, d5, tx tx, TransactionEnd, b"T\0"),
        Err("EAGAIN".into())
    );
    assert_eq!(h.e.owned_by(5), owned);
    // RESET_WATCHES inside a transaction ends it.
    let tx = start(&mut h, d5);
    assert_eq!(send!(h, d5, tx tx, ResetWatches, b""), Ok(b"OK\0".to_vec()));
    assert_eq!(h.e.transactions(d5), 0);
    assert_eq!(send!(h, d5, tx tx, Read, b"p\0"), Err("ENOENT".into()));
    assert_eq!(
        send!(h, d5, tx tx, TransactionEnd, b"T\0"),
        Err("ENOENT".into())
    );
    send!(h, d5, TransactionEnd, b"T\0" => "ENOENT");
    healthy(&mut h);
}

#[test]
fn class08_deep_tree_then_rm_iterates() {
    let mut h = H::new();
    let d0 = h.dom0();
    let mut path = String::from("/deep");
    while path.len() + 2 <= 3072 {
        path.push_str("/a");
    }
    let depth = path.matches('/').count();
    assert!(depth > 1500);
    send!(h, d0, Write, format!("{path}\0v").as_bytes() => ok);
    assert_eq!(h.e.node_count(), 1 + depth);
    send!(h, d0, Watch, format!("{path}\0deep\0").as_bytes() => ok);
    send!(h, d0, Rm, b"/deep\0" => ok);
    assert_eq!(h.e.node_count(), 1);
    assert_eq!(h.event(d0).map(|e| e.0), Some(path.clone()));
    assert_eq!(h.event(d0).map(|e| e.0), Some(path));
    healthy(&mut h);
}

#[test]
fn class09_malformed_paths() {
    let mut h = H::new();
    let d0 = h.dom0();
    let d5 = home(&mut h, 5);
    let long_rel = "a".repeat(2049);
    let long_abs = format!("/{}", "a".repeat(3072));
    for p in [
        "",
        "/a/",
        "/a//b",
        "//",
        "/a b",
        "/a.b",
        "/a\u{e9}",
        "@bogus",
        long_rel.as_str(),
        long_abs.as_str(),
    ] {
        for conn in [d0, d5] {
            let mut payload = p.as_bytes().to_vec();
            payload.push(0);
            for ty in [
                MsgType::Read,
                MsgType::Mkdir,
                MsgType::Rm,
                MsgType::Directory,
                MsgType::GetPerms,
            ] {
                assert_eq!(
                    h.send(conn, ty, 0, &payload),
                    Err("EINVAL".into()),
                    "{ty:?} len {}",
                    p.len()
                );
            }
            payload.extend_from_slice(b"v");
            assert_eq!(
                h.send(conn, MsgType::Write, 0, &payload),
                Err("EINVAL".into())
            );
        }
    }
    // Embedded nul in a one-argument request, missing arguments.
    send!(h, d0, Read, b"/a\0/b\0" => "EINVAL");
    send!(h, d0, Write, b"/a" => "EINVAL");
    send!(h, d0, Watch, b"/a\0" => "EINVAL");
    send!(h, d0, DirectoryPart, b"/\0" => "EINVAL");
    send!(h, d0, DirectoryPart, b"/\0x\0" => "EINVAL");
    send!(h, d0, TransactionEnd, b"X\0" => "EINVAL");
    send!(h, d0, Release, b"99999\0" => "EINVAL");
    send!(h, d0, GetDomainPath, b"-1\0" => "EINVAL");
    healthy(&mut h);
}

#[test]
fn class10_release_races_and_double_release() {
    let mut h = H::new();
    let d0 = h.dom0();
    let d5 = home(&mut h, 5);
    let tx = send!(h, d5, TransactionStart, b"\0").unwrap();
    assert!(!tx.is_empty());
    send!(h, d5, Watch, b"x\0t\0" => ok);
    assert_eq!(h.e.watch_count(), 1);
    send!(h, d0, Release, b"5\0" => ok);
    assert!(!h.e.is_open(d5), "connection closed");
    assert_eq!(h.e.watch_count(), 0);
    send!(h, d0, Release, b"5\0" => "ENOENT");
    send!(h, d0, Release, b"77\0" => "ENOENT");
    assert_eq!(
        send!(h, d0, IsDomainIntroduced, b"5\0"),
        Ok(b"F\0".to_vec())
    );
    // Input for the dead connection is ignored, not a panic.
    assert_eq!(
        h.e.receive(d5, &wire::encode(MsgType::Read, 1, 0, b"/\0")),
        Ok(0)
    );
    h.e.consume_output(d5, 10);
    h.e.close(d5);
    // Re-introduce after release works; introduce twice keeps one connection.
    let again = h.domu(5);
    send!(h, d0, Introduce, b"5\x001005\x0010\0" => ok);
    assert_eq!(h.e.domain_conn(5), Some(again));
    healthy(&mut h);
}

#[test]
fn class11_ring_indexes_out_of_range() {
    let mut h = H::new();
    let d5 = home(&mut h, 5);
    let page = RefCell::new([0u8; 4096]);
    // A sane request through the ring first.
    let msg = wire::encode(MsgType::Read, 1, 0, b"/local/domain/5\0");
    page.write(ring::REQ, &msg);
    page.store_u32(ring::REQ_PROD, msg.len() as u32);
    let mut bytes = Vec::new();
    assert_eq!(ring::take_requests(&page, &mut bytes, 4096), Ok(msg.len()));
    assert_eq!(h.e.receive(d5, &bytes), Ok(msg.len()));
    let out = h.e.output(d5).unwrap().to_vec();
    assert_eq!(ring::put_responses(&page, &out), Ok(out.len()));
    h.e.consume_output(d5, out.len());
    // A guest pushes req_prod beyond the ring: RINGIDX, nothing copied.
    page.store_u32(
        ring::REQ_PROD,
        page.load_u32(ring::REQ_CONS).wrapping_add(4096),
    );
    let mut junk = Vec::new();
    assert_eq!(
        ring::take_requests(&page, &mut junk, 4096),
        Err(RingError::RingIdx)
    );
    assert!(junk.is_empty());
    ring::set_error(&page, RingError::RingIdx);
    assert_eq!(page.load_u32(ring::ERROR), 2);
    // rsp_cons ahead of rsp_prod by more than the ring: RINGIDX too.
    page.store_u32(
        ring::RSP_CONS,
        page.load_u32(ring::RSP_PROD).wrapping_sub(2000),
    );
    assert_eq!(ring::put_responses(&page, b"x"), Err(RingError::RingIdx));
    healthy(&mut h);
}

#[test]
fn class01_reintroduce_after_protocol_error_gives_a_fresh_connection() {
    let mut h = H::new();
    let d0 = h.dom0();
    let d5 = home(&mut h, 5);
    let bad = wire::Header {
        ty: MsgType::Read,
        req_id: 1,
        tx_id: 0,
        len: u32::MAX,
    }
    .emit();
    assert!(h.e.receive(d5, &bad).is_err());
    send!(h, d0, Introduce, b"5\x001005\x0010\0" => ok);
    let fresh = h.e.domain_conn(5).expect("still introduced");
    assert_ne!(fresh, d5);
    assert!(!h.e.is_open(d5));
    assert_eq!(send!(h, fresh, Read, b"/local/domain/5\0"), Ok(Vec::new()));
}

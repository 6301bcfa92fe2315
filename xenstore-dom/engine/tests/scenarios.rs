//! L1: table-driven engine scenarios with dom0 and domU permission rows.

mod common;

use common::H;
use xenstore_engine::wire;
use xenstore_engine::{MsgType, Quotas};

/// (who, type, payload, expected): who 0 = dom0, else a domU domid.
type Row = (
    u16,
    MsgType,
    &'static [u8],
    Result<&'static [u8], &'static str>,
);

#[test]
fn permission_table() {
    let mut h = H::new();
    let d0 = h.dom0();
    let d5 = h.domu(5);
    let d6 = h.domu(6);
    send!(h, d0, Write, b"/local/domain/5/x\0v5" => ok);
    send!(h, d0, SetPerms, b"/local/domain/5\0n0\0b5\0" => ok);
    send!(h, d0, SetPerms, b"/local/domain/5/x\0n0\0r5\0" => ok);
    send!(h, d0, Write, b"/shared\0s" => ok);
    send!(h, d0, SetPerms, b"/shared\0r0\0" => ok);
    let rows: &[Row] = &[
        (0, MsgType::Read, b"/local/domain/5/x\0", Ok(b"v5")),
        (5, MsgType::Read, b"/local/domain/5/x\0", Ok(b"v5")),
        (5, MsgType::Read, b"x\0", Ok(b"v5")),
        (6, MsgType::Read, b"/local/domain/5/x\0", Err("EACCES")),
        (6, MsgType::Read, b"/local/domain/5/nope\0", Err("EACCES")),
        (5, MsgType::Read, b"nope\0", Err("ENOENT")),
        (5, MsgType::Write, b"x\0new", Err("EACCES")),
        (5, MsgType::Write, b"y\0mine", Ok(b"OK\0")),
        (5, MsgType::Read, b"y\0", Ok(b"mine")),
        (5, MsgType::GetPerms, b"y\0", Ok(b"n5\0b5\0")),
        (6, MsgType::Write, b"/local/domain/5/z\0v", Err("EACCES")),
        (6, MsgType::Read, b"/shared\0", Ok(b"s")),
        (6, MsgType::Write, b"/shared\0s", Err("EACCES")),
        (6, MsgType::Directory, b"/\0", Err("EACCES")),
        (0, MsgType::Directory, b"/\0", Ok(b"local\0shared\0")),
        (5, MsgType::Rm, b"x\0", Err("EACCES")),
        (5, MsgType::Rm, b"y\0", Ok(b"OK\0")),
        (5, MsgType::Rm, b"y\0", Ok(b"OK\0")),
        (5, MsgType::Rm, b"q/r\0", Err("ENOENT")),
        (5, MsgType::SetPerms, b"x\0n5\0", Err("EACCES")),
        (0, MsgType::GetDomainPath, b"5\0", Ok(b"/local/domain/5\0")),
        (6, MsgType::GetDomainPath, b"5\0", Ok(b"/local/domain/5\0")),
        (0, MsgType::IsDomainIntroduced, b"5\0", Ok(b"T\0")),
        (0, MsgType::IsDomainIntroduced, b"7\0", Ok(b"F\0")),
        (5, MsgType::IsDomainIntroduced, b"5\0", Err("EACCES")),
        (5, MsgType::Introduce, b"9\x00100\0 1\0", Err("EACCES")),
        (5, MsgType::Release, b"6\0", Err("EACCES")),
        (5, MsgType::SetTarget, b"5\x00006\0", Err("EACCES")),
        (5, MsgType::GetQuota, b"nodes\0", Err("EACCES")),
        (0, MsgType::GetQuota, b"nodes\0", Ok(b"1000\0")),
        (5, MsgType::GetFeature, b"", Ok(b"3\0")),
        (5, MsgType::GetFeature, b"5\0", Err("EACCES")),
        (0, MsgType::Unknown(20), b"", Err("ENOSYS")),
        (5, MsgType::Unknown(99), b"", Err("ENOSYS")),
        (5, MsgType::WatchEvent, b"", Err("ENOSYS")),
        (0, MsgType::Error, b"", Err("ENOSYS")),
        (0, MsgType::Control, b"check\0", Err("EACCES")),
    ];
    for (i, (who, ty, payload, want)) in rows.iter().enumerate() {
        let conn = match who {
            0 => d0,
            5 => d5,
            _ => d6,
        };
        // Control is privileged, then unimplemented: from dom0 it is ENOSYS.
        let got = h.send(conn, *ty, 0, payload);
        let want = match (ty, who) {
            (MsgType::Control, 0) => Err("ENOSYS"),
            _ => *want,
        };
        assert_eq!(
            got,
            want.map(|b| b.to_vec()).map_err(String::from),
            "row {i}: dom{who} {ty:?}"
        );
    }
}

#[test]
fn write_mkdir_read_directory() {
    let mut h = H::new();
    let c = h.dom0();
    send!(h, c, Write, b"/a/b/c\0hello" => ok);
    assert_eq!(send!(h, c, Read, b"/a/b/c\0"), Ok(b"hello".to_vec()));
    assert_eq!(send!(h, c, Read, b"/a/b\0"), Ok(b"".to_vec()));
    send!(h, c, Mkdir, b"/a/b/c\0" => ok);
    assert_eq!(
        send!(h, c, Read, b"/a/b/c\0"),
        Ok(b"hello".to_vec()),
        "mkdir leaves values"
    );
    send!(h, c, Mkdir, b"/a/d\0" => ok);
    assert_eq!(send!(h, c, Directory, b"/a\0"), Ok(b"b\0d\0".to_vec()));
    // Binary values with nuls survive.
    send!(h, c, Write, b"/bin\0a\0b\0" => ok);
    assert_eq!(send!(h, c, Read, b"/bin\0"), Ok(b"a\0b\0".to_vec()));
    send!(h, c, Rm, b"/a\0" => ok);
    send!(h, c, Read, b"/a/b/c\0" => "ENOENT");
    assert_eq!(send!(h, c, Directory, b"/\0"), Ok(b"bin\0".to_vec()));
}

#[test]
fn directory_part_pages_with_generation() {
    let mut h = H::new();
    let c = h.dom0();
    for i in 0..600 {
        send!(h, c, Write, format!("/big/child-number-{i:04}\0").as_bytes() => ok);
    }
    send!(h, c, Directory, b"/big\0" => "E2BIG");
    let mut names = Vec::new();
    let mut offset = 0usize;
    let mut generation = None;
    loop {
        let body = send!(h, c, DirectoryPart, format!("/big\0{offset}\0").as_bytes()).unwrap();
        let mut parts: Vec<&[u8]> = body.split(|b| *b == 0).collect();
        let g = String::from_utf8(parts.remove(0).to_vec()).unwrap();
        assert_eq!(*generation.get_or_insert(g.clone()), g, "generation stable");
        // A trailing empty string (two nuls) marks the end.
        let end = body.ends_with(b"\0\0");
        parts.pop();
        if end {
            parts.pop();
        }
        for p in &parts {
            offset += p.len() + 1;
            names.push(String::from_utf8(p.to_vec()).unwrap());
        }
        if end {
            break;
        }
    }
    assert_eq!(names.len(), 600);
    assert_eq!(names[0], "child-number-0000");
    // Past the end: just the generation and the end marker.
    let body = send!(h, c, DirectoryPart, b"/big\x0099999\0").unwrap();
    assert!(body.ends_with(b"\0\0"));
    // A change moves the generation.
    send!(h, c, Write, b"/big/new\0" => ok);
    let body = send!(h, c, DirectoryPart, b"/big\x000\0").unwrap();
    let g2 = String::from_utf8(body.split(|b| *b == 0).next().unwrap().to_vec()).unwrap();
    assert_ne!(Some(g2), generation);
}

#[test]
fn watches_fire_with_initial_event_and_relative_paths() {
    let mut h = H::new();
    let d0 = h.dom0();
    let d3 = h.domu(3);
    send!(h, d0, Write, b"/local/domain/3\0" => ok);
    send!(h, d0, SetPerms, b"/local/domain/3\0n0\0b3\0" => ok);
    send!(h, d3, Watch, b"dev\0tok\0" => ok);
    recv!(h, d3, "dev", "tok");
    send!(h, d0, Watch, b"/local\0root\0" => ok);
    recv!(h, d0, "/local", "root");
    send!(h, d3, Write, b"dev/vif\0x" => ok);
    recv!(h, d3, "dev/vif", "tok");
    recv!(h, d0, "/local/domain/3/dev/vif", "root");
    send!(h, d0, Rm, b"/local/domain/3\0" => ok);
    // Removal of an ancestor reports the watched path itself.
    recv!(h, d3, "dev", "tok");
    recv!(h, d0, "/local/domain/3", "root");
    send!(h, d3, Unwatch, b"dev\0tok\0" => ok);
    send!(h, d3, Unwatch, b"dev\0tok\0" => "ENOENT");
    send!(h, d0, Watch, b"/local\0root\0" => "EEXIST");
    send!(h, d0, ResetWatches, b"" => ok);
    send!(h, d0, Write, b"/local/x\0" => ok);
    recv!(h, d0, none);
}

#[test]
fn special_watches_introduce_release() {
    let mut h = H::new();
    let d0 = h.dom0();
    send!(h, d0, Watch, b"@introduceDomain\0i\0" => ok);
    send!(h, d0, Watch, b"@releaseDomain\0r\0" => ok);
    recv!(h, d0, "@introduceDomain", "i");
    recv!(h, d0, "@releaseDomain", "r");
    let _d4 = h.domu(4);
    recv!(h, d0, "@introduceDomain", "i");
    send!(h, d0, Release, b"4\0" => ok);
    recv!(h, d0, "@releaseDomain", "r");
    send!(h, d0, Release, b"4\0" => "ENOENT");
    recv!(h, d0, none);
    assert_eq!(
        send!(h, d0, GetPerms, b"@releaseDomain\0"),
        Ok(b"n0\0".to_vec())
    );
}

#[test]
fn transactions_commit_and_conflict() {
    let mut h = H::new();
    let c = h.dom0();
    let other = h.dom0();
    send!(h, c, Write, b"/t/a\x001" => ok);
    let id = send!(h, c, TransactionStart, b"\0").unwrap();
    let tx: u32 = std::str::from_utf8(&id[..id.len() - 1])
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(tx, 0);
    send!(h, other, Watch, b"/t\0w\0" => ok);
    recv!(h, other, "/t", "w");
    assert_eq!(
        send!(h, c, tx tx, Write, b"/t/a\x002"),
        Ok(b"OK\0".to_vec())
    );
    assert_eq!(send!(h, c, tx tx, Read, b"/t/a\0"), Ok(b"2".to_vec()));
    assert_eq!(send!(h, c, Read, b"/t/a\0"), Ok(b"1".to_vec()), "isolated");
    recv!(h, other, none);
    assert_eq!(
        send!(h, c, tx tx, TransactionEnd, b"T\0"),
        Ok(b"OK\0".to_vec())
    );
    recv!(h, other, "/t/a", "w");
    assert_eq!(send!(h, c, Read, b"/t/a\0"), Ok(b"2".to_vec()));
    // A conflicting write makes the commit fail with EAGAIN.
    let id = send!(h, c, TransactionStart, b"\0").unwrap();
    let tx: u32 = std::str::from_utf8(&id[..id.len() - 1])
        .unwrap()
        .parse()
        .unwrap();
    assert!(send!(h, c, tx tx, Read, b"/t/a\0").is_ok());
    send!(h, other, Write, b"/t/a\x003" => ok);
    assert_eq!(send!(h, c, tx tx, Write, b"/t/b\0x"), Ok(b"OK\0".to_vec()));
    assert_eq!(
        send!(h, c, tx tx, TransactionEnd, b"T\0"),
        Err("EAGAIN".into())
    );
    send!(h, c, Read, b"/t/b\0" => "ENOENT");
    // The id is gone after END; unknown ids are ENOENT; START inside is EBUSY.
    assert_eq!(send!(h, c, tx tx, Read, b"/t/a\0"), Err("ENOENT".into()));
    assert_eq!(
        send!(h, c, tx 77, TransactionStart, b"\0"),
        Err("EBUSY".into())
    );
    // Abort discards.
    let id = send!(h, c, TransactionStart, b"\0").unwrap();
    let tx: u32 = std::str::from_utf8(&id[..id.len() - 1])
        .unwrap()
        .parse()
        .unwrap();
    assert!(send!(h, c, tx tx, Write, b"/t/c\0x").is_ok());
    assert_eq!(
        send!(h, c, tx tx, TransactionEnd, b"F\0"),
        Ok(b"OK\0".to_vec())
    );
    send!(h, c, Read, b"/t/c\0" => "ENOENT");
}

#[test]
fn quotas_get_set_and_enforced() {
    let mut h = H::new();
    let d0 = h.dom0();
    let d7 = h.domu(7);
    send!(h, d0, Write, b"/local/domain/7\0" => ok);
    send!(h, d0, SetPerms, b"/local/domain/7\0n7\0" => ok);
    assert_eq!(
        send!(h, d0, GetQuota, b""),
        Ok(format!("{}\0", Quotas::names()).into_bytes())
    );
    send!(h, d0, SetQuota, b"7\0nodes\x003\0" => ok);
    assert_eq!(send!(h, d0, GetQuota, b"7\0nodes\0"), Ok(b"3\0".to_vec()));
    assert_eq!(send!(h, d0, GetQuota, b"nodes\0"), Ok(b"1000\0".to_vec()));
    send!(h, d0, GetQuota, b"bogus\0" => "EINVAL");
    // dom7 owns its home (1), may create 2 more.
    send!(h, d7, Write, b"a\0" => ok);
    send!(h, d7, Write, b"b\0" => ok);
    send!(h, d7, Write, b"c\0" => "ENOSPC");
    // Value size.
    let mut big = b"a\0".to_vec();
    big.extend(std::iter::repeat_n(b'x', 2049));
    assert_eq!(h.send(d7, MsgType::Write, 0, &big), Err("ENOSPC".into()));
    // Permissions per node.
    send!(h, d7, SetPerms, b"a\0n7\0r1\0r2\0r3\0r4\0r5\0" => "ENOSPC");
    send!(h, d7, SetPerms, b"a\0n7\0r1\0r2\0r3\0r4\0" => ok);
    // Features: settable only before INTRODUCE.
    send!(h, d0, SetFeature, b"7\x001\0" => "EBUSY");
    send!(h, d0, SetFeature, b"8\x001\0" => ok);
    assert_eq!(send!(h, d0, GetFeature, b"8\0"), Ok(b"1\0".to_vec()));
    send!(h, d0, SetFeature, b"8\x004\0" => "EINVAL");
}

#[test]
fn set_target_gives_device_model_the_targets_rights() {
    let mut h = H::new();
    let d0 = h.dom0();
    let guest = h.domu(10);
    let dm = h.domu(11);
    let _ = guest;
    send!(h, d0, Write, b"/local/domain/10/dm\0" => ok);
    send!(h, d0, SetPerms, b"/local/domain/10/dm\0n10\0" => ok);
    send!(h, dm, Write, b"/local/domain/10/dm/state\0running" => "EACCES");
    send!(h, d0, SetTarget, b"11\x0010\0" => ok);
    send!(h, dm, Write, b"/local/domain/10/dm/state\0running" => ok);
    send!(h, d0, SetTarget, b"11\x0099\0" => "ENOENT");
}

#[test]
fn introduce_records_ring_and_effects() {
    let mut h = H::new();
    let d0 = h.dom0();
    send!(h, d0, Introduce, b"12\0-5\x007\0" => ok);
    let effects = h.e.take_effects();
    assert!(matches!(
        effects.as_slice(),
        [xenstore_engine::Effect::MapRing {
            domid: 12,
            mfn: -5,
            evtchn: 7,
            features: 3,
            ..
        }]
    ));
    assert_eq!(h.e.domain_ring(12), Some((-5, 7)));
    send!(h, d0, Introduce, b"0\x001\x001\0" => "EINVAL");
    send!(h, d0, Introduce, b"65535\x001\x001\0" => "EINVAL");
    send!(h, d0, Introduce, b"12\0x\x001\0" => "EINVAL");
    send!(h, d0, Resume, b"12\0" => ok);
    send!(h, d0, Resume, b"13\0" => "ENOENT");
    send!(h, d0, Release, b"12\0" => ok);
    assert!(matches!(
        h.e.take_effects().as_slice(),
        [xenstore_engine::Effect::UnmapRing { domid: 12, .. }]
    ));
}

#[test]
fn shutdown_fires_release_domain_once_until_resume() {
    let mut h = H::new();
    let d0 = h.dom0();
    let _ = h.domu(3);
    send!(h, d0, Watch, b"@releaseDomain\0r\0" => ok);
    recv!(h, d0, "@releaseDomain", "r");
    h.e.domain_shutdown(3).unwrap();
    h.e.domain_shutdown(3).unwrap();
    // The harness collects events when the next request is handled.
    send!(h, d0, Read, b"/\0").unwrap();
    recv!(h, d0, "@releaseDomain", "r");
    recv!(h, d0, none);
    send!(h, d0, Resume, b"3\0" => ok);
    h.e.domain_shutdown(3).unwrap();
    send!(h, d0, Read, b"/\0").unwrap();
    recv!(h, d0, "@releaseDomain", "r");
    assert_eq!(
        h.e.domain_shutdown(9),
        Err(xenstore_engine::XsError::Enoent)
    );
}

#[test]
fn removal_of_an_unreadable_ancestor_still_tells_readable_watchers() {
    // xenstore.txt: "an application may rely on being sent a watch when a
    // path which it _is_ able to read is deleted even if that leaves only a
    // nonexistent unreadable parent".
    let mut h = H::new();
    let d0 = h.dom0();
    let d5 = h.domu(5);
    let d6 = h.domu(6);
    send!(h, d0, Write, b"/vm/dev/five\0" => ok);
    send!(h, d0, Write, b"/vm/dev/six\0" => ok);
    send!(h, d0, SetPerms, b"/vm\0n0\0" => ok);
    send!(h, d0, SetPerms, b"/vm/dev/five\0n0\0r5\0" => ok);
    send!(h, d5, Watch, b"/vm/dev/five\0t\0" => ok);
    recv!(h, d5, "/vm/dev/five", "t");
    send!(h, d6, Watch, b"/vm/dev/five\0t\0" => ok);
    recv!(h, d6, "/vm/dev/five", "t");
    send!(h, d5, Watch, b"/vm\0top\0" => ok);
    recv!(h, d5, "/vm", "top");
    send!(h, d0, Rm, b"/vm\0" => ok);
    recv!(h, d5, "/vm/dev/five", "t");
    recv!(h, d5, none);
    recv!(h, d6, none);
}

#[test]
fn board_may_introduce_dom0_the_wire_may_not() {
    let mut h = H::new();
    let d0 = h.dom0();
    send!(h, d0, Introduce, b"0\x001\x001\0" => "EINVAL");
    send!(h, d0, Release, b"0\0" => "EINVAL");
    let ring0 = h.e.introduce(0, 77, 2).expect("board introduces dom0");
    send!(h, ring0, Write, b"/tool/xenstored\0ours" => ok);
    send!(h, ring0, Introduce, b"4\x001\x001\0" => ok);
    assert_eq!(
        send!(h, ring0, IsDomainIntroduced, b"4\0"),
        Ok(b"T\0".to_vec())
    );
}

#[test]
fn privileged_domains_cannot_be_released() {
    let mut h = H::with(xenstore_engine::Config {
        xenstore_domid: Some(1),
        ..Default::default()
    });
    let d0 = h.dom0();
    send!(h, d0, Write, b"/local/domain/0/x\0" => ok);
    let _stub = h.domu(1);
    send!(h, d0, Release, b"1\0" => "EINVAL");
    assert_eq!(h.e.release(0), Err(xenstore_engine::XsError::Einval));
    assert_eq!(send!(h, d0, Read, b"/local/domain/0/x\0"), Ok(Vec::new()));
}

/// Several whole requests in one buffer (a pipelining client) are all
/// handled, replies queued in order; `take_ready` names the connections
/// that got output, each once, including one that only got a watch event.
#[test]
fn pipelined_requests_and_ready_list() {
    let mut h = H::new();
    let a = h.dom0();
    let b = h.dom0();
    send!(h, b, Watch, b"/p\0tok\0" => ok);
    let _ = h.drain(b);
    let mut ready = Vec::new();
    h.e.take_ready(&mut ready);
    ready.clear();
    let mut bytes = Vec::new();
    for (i, (ty, payload)) in [
        (MsgType::Write, &b"/p/x\0one"[..]),
        (MsgType::Read, b"/p/x\0"),
        (MsgType::Write, b"/p/x\0two"),
        (MsgType::Read, b"/p/x\0"),
    ]
    .into_iter()
    .enumerate()
    {
        bytes.extend_from_slice(&wire::encode(ty, 10 + i as u32, 0, payload));
    }
    // Split mid-message: the tail completes from the engine's buffer.
    let cut = bytes.len() - 3;
    assert_eq!(h.e.receive(a, &bytes[..cut]), Ok(cut));
    assert_eq!(h.e.receive(a, &bytes[cut..]), Ok(3));
    h.e.take_ready(&mut ready);
    ready.sort();
    assert_eq!(ready, [a, b]);
    let replies: Vec<(u32, Vec<u8>)> = h
        .drain(a)
        .into_iter()
        .map(|(hd, body)| (hd.req_id, body))
        .collect();
    assert_eq!(
        replies,
        [
            (10, b"OK\0".to_vec()),
            (11, b"one".to_vec()),
            (12, b"OK\0".to_vec()),
            (13, b"two".to_vec()),
        ]
    );
    ready.clear();
    h.e.take_ready(&mut ready);
    assert!(ready.is_empty(), "taken once");
    h.e.close(a);
    h.e.close(b);
}

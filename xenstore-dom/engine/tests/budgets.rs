//! Byte budgets (issue #12, XSA-326): per-domain `memory` / `memory-soft`
//! quotas and the global cap. A guest filling its budget, in or out of
//! transactions, is refused with ENOMEM (as C xenstored's
//! `domain_memory_add`), nothing panics, other domains are served, and
//! abort/commit/rm/release give the bytes back with no drift.

mod common;

use common::H;
use proptest::prelude::*;
use xenstore_engine::memory::{DEFAULT_HARD, DEFAULT_SOFT};
use xenstore_engine::wire::MsgType;
use xenstore_engine::{Config, ConnId, Notice};

fn home(h: &mut H, domid: u16) -> ConnId {
    let d0 = h.dom0();
    let conn = h.domu(domid);
    send!(h, d0, Write, format!("/local/domain/{domid}\0").as_bytes() => ok);
    send!(h, d0, SetPerms, format!("/local/domain/{domid}\0n0\0b{domid}\0").as_bytes() => ok);
    h.e.close(d0);
    let _ = h.e.take_effects();
    conn
}

#[track_caller]
fn exact(h: &H, domids: &[u16]) {
    for d in domids {
        assert_eq!(h.e.bytes_used(*d), h.e.audit_bytes(*d), "drift for {d}");
    }
}

fn tx_start(h: &mut H, c: ConnId) -> u32 {
    let id = send!(h, c, TransactionStart, b"\0").expect("transaction");
    String::from_utf8(id[..id.len() - 1].to_vec())
        .unwrap()
        .parse()
        .unwrap()
}

fn write_in(h: &mut H, c: ConnId, tx: u32, path: &str, len: usize) -> Result<Vec<u8>, String> {
    let mut p = format!("{path}\0").into_bytes();
    p.extend(std::iter::repeat_n(b'v', len));
    h.send(c, MsgType::Write, tx, &p)
}

#[test]
fn defaults_and_quota_names() {
    assert_eq!(
        (DEFAULT_SOFT, DEFAULT_HARD),
        (2 << 20, (2 << 20) + (512 << 10))
    );
    let mut h = H::new();
    let d0 = h.dom0();
    assert_eq!(
        send!(h, d0, GetQuota, b"memory\0"),
        Ok(b"2621440\0".to_vec())
    );
    assert_eq!(
        send!(h, d0, GetQuota, b"memory-soft\0"),
        Ok(b"2097152\0".to_vec())
    );
    let names = send!(h, d0, GetQuota, b"").unwrap();
    assert!(String::from_utf8_lossy(&names).contains("memory memory-soft"));
    send!(h, d0, SetQuota, b"7\0memory\x00123456\0" => ok);
    assert_eq!(
        send!(h, d0, GetQuota, b"7\0memory\0"),
        Ok(b"123456\0".to_vec())
    );
    assert_eq!(
        send!(h, d0, GetQuota, b"memory\0"),
        Ok(b"2621440\0".to_vec())
    );
    let d5 = home(&mut h, 5);
    send!(h, d5, GetQuota, b"memory\0" => "EACCES");
}

#[test]
fn guest_filling_its_budget_inside_transactions_gets_enomem() {
    let mut h = H::new();
    let d0 = h.dom0();
    let d5 = home(&mut h, 5);
    let d6 = home(&mut h, 6);
    send!(h, d5, Write, b"base\0x" => ok);
    let base = h.e.bytes_used(5);
    // 10 transactions x up to 1024 nodes x 2 KiB values would be ~20 MiB.
    let txs: Vec<u32> = (0..10).map(|_| tx_start(&mut h, d5)).collect();
    let mut refused = None;
    'fill: for (t, tx) in txs.iter().enumerate() {
        // 500 per transaction: below the nodes quota (1000) of each.
        for i in 0..500 {
            match write_in(&mut h, d5, *tx, &format!("t{t}/n{i}"), 2048) {
                Ok(_) => {}
                Err(e) => {
                    refused = Some((e, t, i));
                    break 'fill;
                }
            }
        }
    }
    let (errno, t, _) = refused.expect("the hard limit is reached");
    assert_eq!(errno, "ENOMEM");
    assert!(t >= 1, "more than one transaction's worth was needed");
    let used = h.e.bytes_used(5);
    assert!(used < DEFAULT_HARD as usize && used > DEFAULT_HARD as usize - 3000);
    exact(&h, &[0, 5, 6]);
    // Still refused; a read of an untouched node in a transaction is too,
    // but reads outside one and deletions are fine.
    assert_eq!(
        write_in(&mut h, d5, txs[9], "more", 2048),
        Err("ENOMEM".into())
    );
    assert_eq!(send!(h, d5, Read, b"base\0"), Ok(b"x".to_vec()));
    // Other domains are unaffected, dom0 too.
    send!(h, d6, Write, b"mine\0fine" => ok);
    send!(h, d0, Write, b"/tool\0fine" => ok);
    assert!(h
        .e
        .take_notices()
        .contains(&Notice::HardRefused { domid: 5 }));
    // Aborting gives the transactions' bytes back.
    for tx in &txs[1..] {
        assert_eq!(
            h.send(d5, MsgType::TransactionEnd, *tx, b"F\0"),
            Ok(b"OK\0".to_vec())
        );
    }
    exact(&h, &[0, 5, 6]);
    assert!(h.e.bytes_used(5) < used / 2);
    // Committing moves them to the live tree: they stay charged to 5.
    let before = h.e.bytes_used(5);
    assert_eq!(
        h.send(d5, MsgType::TransactionEnd, txs[0], b"T\0"),
        Ok(b"OK\0".to_vec())
    );
    exact(&h, &[0, 5, 6]);
    let after = h.e.bytes_used(5);
    assert!(after > base && after <= before, "{base} {before} {after}");
    // RM gives them back.
    send!(h, d5, Rm, b"t0\0" => ok);
    exact(&h, &[0, 5, 6]);
    assert_eq!(h.e.bytes_used(5), base);
    send!(h, d5, Write, b"again\0ok" => ok);
}

#[test]
fn hard_limit_out_of_transactions_rm_and_release_give_back() {
    let mut h = H::new();
    let d0 = h.dom0();
    send!(h, d0, SetQuota, b"5\0memory\x00100000\0" => ok);
    send!(h, d0, SetQuota, b"5\0memory-soft\x000\0" => ok);
    let d5 = home(&mut h, 5);
    let base = h.e.bytes_used(5);
    let mut n = 0;
    loop {
        match write_in(&mut h, d5, 0, &format!("d/n{n}"), 2000) {
            Ok(_) => n += 1,
            Err(e) => {
                assert_eq!(e, "ENOMEM");
                break;
            }
        }
        assert!(n < 1000);
    }
    assert!(n >= 40, "{n}");
    assert!(h.e.bytes_used(5) < 100_000);
    exact(&h, &[0, 5]);
    // Nothing half-done: the refused node does not exist.
    assert!(h.e.peek(&format!("/local/domain/5/d/n{n}")).is_none());
    // A smaller write still fits; shrinking a value is always allowed.
    write_in(&mut h, d5, 0, "d/n0", 10).unwrap();
    send!(h, d5, Rm, b"d\0" => ok);
    assert_eq!(h.e.bytes_used(5), base);
    write_in(&mut h, d5, 0, "d/n0", 2000).unwrap();
    // SET_PERMS adding entries is charged too.
    send!(h, d5, SetPerms, b"d/n0\0n5\0r0\0" => ok);
    exact(&h, &[0, 5]);
    send!(h, d0, Release, b"5\0" => ok);
    assert_eq!(h.e.bytes_used(5), 0);
    assert_eq!(h.e.audit_bytes(5), 0);
    let _ = d5;
}

#[test]
fn soft_limit_is_reported_once() {
    let mut h = H::new();
    let d0 = h.dom0();
    send!(h, d0, SetQuota, b"5\0memory-soft\x0020000\0" => ok);
    let d5 = home(&mut h, 5);
    let _ = h.e.take_notices();
    for i in 0..20 {
        write_in(&mut h, d5, 0, &format!("s/n{i}"), 2000).unwrap();
    }
    assert_eq!(h.e.take_notices(), vec![Notice::SoftExceeded { domid: 5 }]);
    write_in(&mut h, d5, 0, "s/more", 2000).unwrap();
    assert!(h.e.take_notices().is_empty());
    send!(h, d5, Rm, b"s\0" => ok);
    assert_eq!(h.e.take_notices(), vec![Notice::BelowSoft { domid: 5 }]);
}

#[test]
fn global_cap_bounds_all_guests_together() {
    let mut h = H::with(Config {
        memory_global: 60_000,
        ..Config::default()
    });
    let d0 = h.dom0();
    let d5 = home(&mut h, 5);
    let d6 = home(&mut h, 6);
    for i in 0..10 {
        write_in(&mut h, d5, 0, &format!("g/n{i}"), 2000).unwrap();
    }
    let mut refused = false;
    for i in 0..40 {
        if let Err(e) = write_in(&mut h, d6, 0, &format!("g/n{i}"), 2000) {
            assert_eq!(e, "ENOMEM");
            refused = true;
            break;
        }
    }
    assert!(
        refused,
        "the global cap stops guest 6 well below its own limit"
    );
    assert!(h.e.bytes_used_unprivileged() < 60_000);
    assert!(h.e.bytes_used(6) < DEFAULT_SOFT as usize);
    assert!(h
        .e
        .take_notices()
        .contains(&Notice::GlobalRefused { domid: 6 }));
    // dom0 is not limited; guest 5 freeing room lets guest 6 go on.
    write_in(&mut h, d0, 0, "/big", 4000).unwrap();
    send!(h, d5, Rm, b"g\0" => ok);
    write_in(&mut h, d6, 0, "g/after", 2000).unwrap();
    exact(&h, &[0, 5, 6]);
}

#[derive(Clone, Debug)]
enum Op {
    Write(usize, u8, u8, u16),
    Mkdir(usize, u8, u8),
    Rm(usize, u8, u8),
    Perms(usize, u8, u8),
    Read(usize, u8, u8),
    Start(usize),
    End(usize, u8, bool),
    Release6,
}

fn op() -> impl Strategy<Value = Op> {
    let who = 0usize..3;
    prop_oneof![
        4 => (who.clone(), 0u8..4, 0u8..4, 0u16..1500).prop_map(|(w, s, a, b)| Op::Write(w, s, a, b)),
        1 => (who.clone(), 0u8..4, 0u8..4).prop_map(|(w, s, a)| Op::Mkdir(w, s, a)),
        2 => (who.clone(), 0u8..4, 0u8..4).prop_map(|(w, s, a)| Op::Rm(w, s, a)),
        1 => (who.clone(), 0u8..4, 0u8..4).prop_map(|(w, s, a)| Op::Perms(w, s, a)),
        1 => (who.clone(), 0u8..4, 0u8..4).prop_map(|(w, s, a)| Op::Read(w, s, a)),
        2 => who.clone().prop_map(Op::Start),
        2 => (who, 0u8..4, any::<bool>()).prop_map(|(w, t, c)| Op::End(w, t, c)),
        1 => Just(Op::Release6),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    /// Random writes, removals, permission changes and transactions from
    /// dom0 and two guests (small byte limits, so refusals happen) never
    /// let the accounted bytes drift from a recount.
    #[test]
    fn accounting_never_drifts(ops in proptest::collection::vec(op(), 1..120)) {
        let mut h = H::with(Config { memory_global: 40_000, ..Config::default() });
        let d0 = h.dom0();
        send!(h, d0, SetQuota, b"memory\x0025000\0" => ok);
        let mut conns = [d0, home(&mut h, 5), home(&mut h, 6)];
        // Let the guests write in each other's homes too.
        send!(h, d0, SetPerms, b"/local/domain/5\0n0\0b5\0b6\0" => ok);
        let mut txs: Vec<Vec<u32>> = vec![Vec::new(); 3];
        for op in ops {
            let path = |w: usize, s: u8, a: u8| {
                let home = [5, 5, 6][w];
                let home = if s == 3 { 5 } else { home };
                format!("/local/domain/{home}/s{s}/a{a}")
            };
            let tx = |txs: &Vec<Vec<u32>>, w: usize, a: u8| {
                if a.is_multiple_of(2) { 0 } else { txs[w].last().copied().unwrap_or(0) }
            };
            match op {
                Op::Write(w, s, a, len) => {
                    let t = tx(&txs, w, a);
                    let _ = write_in(&mut h, conns[w], t, &path(w, s, a), len as usize);
                }
                Op::Mkdir(w, s, a) => {
                    let t = tx(&txs, w, a);
                    let _ = h.send(conns[w], MsgType::Mkdir, t, format!("{}/m\0", path(w, s, a)).as_bytes());
                }
                Op::Rm(w, s, a) => {
                    let t = tx(&txs, w, a);
                    let p = if a == 3 { format!("/local/domain/{}/s{s}", [5, 5, 6][w]) } else { path(w, s, a) };
                    let _ = h.send(conns[w], MsgType::Rm, t, format!("{p}\0").as_bytes());
                }
                Op::Perms(w, s, a) => {
                    let t = tx(&txs, w, a);
                    let owner = [0, 5, 6][w];
                    let _ = h.send(conns[w], MsgType::SetPerms, t,
                        format!("{}\0n{owner}\0r5\0r6\0b0\0", path(w, s, a)).as_bytes());
                }
                Op::Read(w, s, a) => {
                    let t = tx(&txs, w, a);
                    let _ = h.send(conns[w], MsgType::Read, t, format!("{}\0", path(w, s, a)).as_bytes());
                }
                Op::Start(w) => {
                    if let Ok(id) = send!(h, conns[w], TransactionStart, b"\0") {
                        let id = String::from_utf8_lossy(&id[..id.len() - 1]).parse().unwrap();
                        txs[w].push(id);
                    }
                }
                Op::End(w, i, commit) => {
                    if !txs[w].is_empty() {
                        let at = i as usize % txs[w].len();
                        let id = txs[w].remove(at);
                        let arg: &[u8] = if commit { b"T\0" } else { b"F\0" };
                        let _ = h.send(conns[w], MsgType::TransactionEnd, id, arg);
                    }
                }
                Op::Release6 => {
                    if h.e.domain_conn(6).is_some() {
                        send!(h, d0, Release, b"6\0" => ok);
                        prop_assert_eq!(h.e.bytes_used(6), 0);
                        conns[2] = home(&mut h, 6);
                        txs[2].clear();
                    }
                }
            }
            for d in [0u16, 5, 6] {
                prop_assert_eq!(h.e.bytes_used(d), h.e.audit_bytes(d), "drift for {}", d);
            }
        }
    }
}

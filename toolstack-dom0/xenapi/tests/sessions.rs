//! Session caps as xapi keys them: per originator (500), one group for the
//! empty originator (400), and a total bound from dom0's memory that refuses
//! a login rather than log another originator out.

use std::collections::BTreeMap;

use proptest::prelude::*;
use xenapi::session::{
    MAX_ANONYMOUS_SESSIONS, MAX_ORIGINATOR_BYTES, MAX_SESSIONS, MAX_SESSIONS_PER_ORIGINATOR,
};
use xenapi::value::{Instant, Value};
use xenapi::wal::MemStorage;

mod common;
use common::*;

#[track_caller]
fn login_as(e: &mut E, originator: &str) -> Value {
    ok(
        e,
        "session.login_with_password",
        vec![s("root"), s("pw"), s("1.0"), s(originator)],
    )
}

#[track_caller]
fn valid(e: &mut E, sid: &Value) {
    ok(e, "host.get_all", vec![sid.clone()]);
}

#[track_caller]
fn invalid(e: &mut E, sid: &Value) {
    fails(e, "host.get_all", vec![sid.clone()], "SESSION_INVALID");
}

#[test]
fn one_originator_cannot_evict_another() {
    let mut e = open(MemStorage::default());
    let b = login_as(&mut e, "B");
    let a: Vec<Value> = (0..600).map(|_| login_as(&mut e, "A")).collect();
    valid(&mut e, &b);
    // A keeps its newest 500; its oldest 100 are gone.
    assert_eq!(MAX_SESSIONS_PER_ORIGINATOR, 500);
    for sid in &a[..100] {
        invalid(&mut e, sid);
    }
    for sid in &a[100..] {
        valid(&mut e, sid);
    }
    assert_eq!(e.session_count(), 501);
}

#[test]
fn eviction_is_least_recently_used_within_the_originator() {
    let mut e = open(MemStorage::default());
    let first = login_as(&mut e, "A");
    let second = login_as(&mut e, "A");
    // `first` is used again later, so `second` is now the oldest.
    let later = Instant(T0.0 + 1000);
    e.call_value(later, "host.get_all", vec![first.clone()])
        .unwrap();
    for _ in 0..MAX_SESSIONS_PER_ORIGINATOR - 1 {
        e.call_value(
            later,
            "session.login_with_password",
            vec![s("root"), s("pw"), s("1.0"), s("A")],
        )
        .unwrap();
    }
    invalid(&mut e, &second);
    valid(&mut e, &first);
}

#[test]
fn empty_originator_is_one_group_of_400() {
    let mut e = open(MemStorage::default());
    let named = login_as(&mut e, "XenCenter");
    // Two-argument logins and an explicit "" share xapi's anonymous group.
    let mut anon: Vec<Value> = (0..250)
        .map(|_| {
            ok(
                &mut e,
                "session.login_with_password",
                vec![s("root"), s("pw")],
            )
        })
        .collect();
    anon.extend((0..200).map(|_| login_as(&mut e, "")));
    assert_eq!(MAX_ANONYMOUS_SESSIONS, 400);
    for sid in &anon[..50] {
        invalid(&mut e, sid);
    }
    for sid in &anon[50..] {
        valid(&mut e, sid);
    }
    valid(&mut e, &named);
    assert_eq!(e.session_count(), 401);
}

#[test]
fn a_full_table_refuses_a_new_originator_and_evicts_no_one() {
    let mut e = open(MemStorage::default());
    let a: Vec<Value> = (0..500).map(|_| login_as(&mut e, "A")).collect();
    let b: Vec<Value> = (0..500).map(|_| login_as(&mut e, "B")).collect();
    let c: Vec<Value> = (0..MAX_SESSIONS - 1000)
        .map(|_| login_as(&mut e, "C"))
        .collect();
    assert_eq!(e.session_count(), MAX_SESSIONS);
    // A newcomer has nothing of its own to give up: refused.
    let p = fails(
        &mut e,
        "session.login_with_password",
        vec![s("root"), s("pw"), s("1.0"), s("D")],
        "OPERATION_NOT_ALLOWED",
    );
    assert!(p[0].contains("session table full"), "{p:?}");
    // C is under its own cap but the table is full: C gives up its oldest.
    login_as(&mut e, "C");
    invalid(&mut e, &c[0]);
    valid(&mut e, &c[1]);
    for sid in a.iter().chain(&b) {
        valid(&mut e, sid);
    }
    assert_eq!(e.session_count(), MAX_SESSIONS);
    // A logout makes room for the newcomer.
    ok(&mut e, "session.logout", vec![a[0].clone()]);
    login_as(&mut e, "D");
}

#[test]
fn many_originators_are_refused_not_evicting() {
    let mut e = open(MemStorage::default());
    let victim = login_as(&mut e, "victim");
    let mut refused = 0;
    for i in 0..MAX_SESSIONS + 200 {
        let r = e.call_value(
            T0,
            "session.login_with_password",
            vec![s("root"), s("pw"), s("1.0"), s(&format!("hostile-{i}"))],
        );
        match r {
            Ok(_) => {}
            Err(err) => {
                assert_eq!(err.code, "OPERATION_NOT_ALLOWED");
                refused += 1;
            }
        }
    }
    assert_eq!(refused, 201);
    assert_eq!(e.session_count(), MAX_SESSIONS);
    valid(&mut e, &victim);
    // The victim can still cycle its own sessions.
    let again = login_as(&mut e, "victim");
    invalid(&mut e, &victim);
    valid(&mut e, &again);
}

#[test]
fn expired_sessions_make_room_in_a_full_table() {
    let mut e = open(MemStorage::default());
    for i in 0..MAX_SESSIONS {
        login_as(&mut e, &format!("o{i}"));
    }
    fails(
        &mut e,
        "session.login_with_password",
        vec![s("root"), s("pw"), s("1.0"), s("late")],
        "OPERATION_NOT_ALLOWED",
    );
    let next_day = Instant(T0.0 + 25 * 3600 * 1000);
    let sid = e
        .call_value(
            next_day,
            "session.login_with_password",
            vec![s("root"), s("pw"), s("1.0"), s("late")],
        )
        .unwrap();
    assert_eq!(e.session_count(), 1);
    e.call_value(next_day, "host.get_all", vec![sid]).unwrap();
}

#[test]
fn originator_length_is_bounded() {
    let mut e = open(MemStorage::default());
    login_as(&mut e, &"x".repeat(MAX_ORIGINATOR_BYTES));
    let p = fails(
        &mut e,
        "session.login_with_password",
        vec![
            s("root"),
            s("pw"),
            s("1.0"),
            s(&"x".repeat(MAX_ORIGINATOR_BYTES + 1)),
        ],
        "INVALID_VALUE",
    );
    assert_eq!(p[0], "originator");
    assert!(p[1].len() <= 32);
    assert_eq!(e.session_count(), 1);
}

#[test]
fn the_originator_is_recorded() {
    let mut e = open(MemStorage::default());
    let sid = login_as(&mut e, "XenCenter");
    let got = ok(&mut e, "session.get_originator", vec![sid.clone(), sid]);
    assert_eq!(got, s("XenCenter"));
}

#[derive(Clone, Debug)]
enum Op {
    Login(u8),
    Logout(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..5).prop_map(Op::Login),
        1 => (0usize..64).prop_map(Op::Logout),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// With small caps: groups and the table stay within bounds, and a
    /// login only ever ends sessions of its own originator.
    #[test]
    fn a_login_only_evicts_its_own(ops in proptest::collection::vec(op(), 1..80)) {
        let mut config = config();
        config.max_sessions_per_originator = 3;
        config.max_anonymous_sessions = 2;
        config.max_sessions = 7;
        let mut e = open_with(config, MemStorage::default());
        // Originator 0 is the empty one.
        let name = |o: u8| if o == 0 { String::new() } else { format!("o{o}") };
        let mut live: BTreeMap<String, u8> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Login(o) => {
                    let r = e.call_value(
                        T0,
                        "session.login_with_password",
                        vec![s("root"), s("pw"), s("1.0"), s(&name(o))],
                    );
                    let before: Vec<(String, u8)> =
                        live.iter().map(|(k, v)| (k.clone(), *v)).collect();
                    for (sid, owner) in before {
                        let still = e
                            .call_value(T0, "host.get_all", vec![s(&sid)])
                            .is_ok();
                        if !still {
                            prop_assert_eq!(owner, o, "a login of {} ended {}'s", o, owner);
                            live.remove(&sid);
                        }
                    }
                    match r {
                        Ok(sid) => {
                            live.insert(sid.as_str().unwrap().to_string(), o);
                        }
                        Err(err) => {
                            prop_assert_eq!(err.code, "OPERATION_NOT_ALLOWED");
                            prop_assert!(!live.values().any(|x| *x == o));
                            prop_assert_eq!(live.len(), 7);
                        }
                    }
                }
                Op::Logout(i) => {
                    if let Some(sid) = live.keys().nth(i % live.len().max(1)).cloned() {
                        ok(&mut e, "session.logout", vec![s(&sid)]);
                        live.remove(&sid);
                    }
                }
            }
            prop_assert_eq!(e.session_count(), live.len());
            prop_assert!(live.len() <= 7);
            for o in 0..5u8 {
                let n = live.values().filter(|x| **x == o).count();
                let cap = if o == 0 { 2 } else { 3 };
                prop_assert!(n <= cap);
            }
        }
    }
}

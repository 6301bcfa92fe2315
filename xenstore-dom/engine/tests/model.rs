//! Model-based proptest: one dom0 connection, random tree operations, in
//! and out of transactions, checked against a plain map of path -> value.

use std::collections::BTreeMap;

use proptest::prelude::*;
use xenstore_engine::wire::{self, MsgType, Parse};
use xenstore_engine::{Config, ConnId, Engine};

#[derive(Clone, Debug)]
enum Op {
    Write(String, Vec<u8>),
    Mkdir(String),
    Rm(String),
    Read(String),
    Directory(String),
    Begin,
    Commit,
    Abort,
}

fn path() -> impl Strategy<Value = String> {
    proptest::collection::vec(prop_oneof![Just("a"), Just("b"), Just("c")], 1..4)
        .prop_map(|parts| format!("/{}", parts.join("/")))
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (path(), proptest::collection::vec(any::<u8>(), 0..6)).prop_map(|(p, v)| Op::Write(p, v)),
        1 => path().prop_map(Op::Mkdir),
        2 => path().prop_map(Op::Rm),
        2 => path().prop_map(Op::Read),
        2 => prop_oneof![path(), Just(String::from("/"))].prop_map(Op::Directory),
        1 => Just(Op::Begin),
        1 => Just(Op::Commit),
        1 => Just(Op::Abort),
    ]
}

type Model = BTreeMap<String, Vec<u8>>;

fn parent(p: &str) -> String {
    match p.rfind('/') {
        Some(0) => "/".into(),
        Some(i) => p[..i].into(),
        None => "/".into(),
    }
}

fn create_ancestors(m: &mut Model, p: &str) {
    let mut cur = parent(p);
    while cur != "/" {
        m.entry(cur.clone()).or_default();
        cur = parent(&cur);
    }
}

/// Expected reply: Ok(payload) or Err(errno).
fn apply(m: &mut Model, op: &Op) -> Result<Vec<u8>, String> {
    match op {
        Op::Write(p, v) => {
            create_ancestors(m, p);
            m.insert(p.clone(), v.clone());
            Ok(b"OK\0".to_vec())
        }
        Op::Mkdir(p) => {
            create_ancestors(m, p);
            m.entry(p.clone()).or_default();
            Ok(b"OK\0".to_vec())
        }
        Op::Rm(p) => {
            let par = parent(p);
            if !m.contains_key(p) {
                return if par == "/" || m.contains_key(&par) {
                    Ok(b"OK\0".to_vec())
                } else {
                    Err("ENOENT".into())
                };
            }
            let prefix = format!("{p}/");
            m.retain(|k, _| k != p && !k.starts_with(&prefix));
            Ok(b"OK\0".to_vec())
        }
        Op::Read(p) => m.get(p).cloned().ok_or_else(|| "ENOENT".into()),
        Op::Directory(p) => {
            if p != "/" && !m.contains_key(p) {
                return Err("ENOENT".into());
            }
            let prefix = if p == "/" {
                "/".to_string()
            } else {
                format!("{p}/")
            };
            let mut out = Vec::new();
            for k in m.keys() {
                if let Some(rest) = k.strip_prefix(&prefix) {
                    if !rest.is_empty() && !rest.contains('/') {
                        out.extend_from_slice(rest.as_bytes());
                        out.push(0);
                    }
                }
            }
            Ok(out)
        }
        Op::Begin | Op::Commit | Op::Abort => unreachable!("handled by the caller"),
    }
}

fn request(
    e: &mut Engine,
    c: ConnId,
    ty: MsgType,
    tx: u32,
    payload: &[u8],
) -> Result<Vec<u8>, String> {
    e.receive(c, &wire::encode(ty, 1, tx, payload))
        .expect("well-formed");
    let out = e.output(c).expect("a reply").to_vec();
    e.consume_output(c, out.len());
    assert!(e.output(c).is_none(), "one reply, no events (no watches)");
    let Parse::Message { header, total } = wire::parse(&out) else {
        panic!("whole reply")
    };
    let body = out[16..total].to_vec();
    if header.ty == MsgType::Error {
        Err(String::from_utf8_lossy(body.strip_suffix(&[0]).expect("nul")).into_owned())
    } else {
        Ok(body)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn engine_matches_a_map(ops in proptest::collection::vec(op(), 1..60)) {
        let mut e = Engine::new(Config::default());
        let c = e.connect(0);
        let mut live = Model::new();
        // An open transaction: its id and its view of the model.
        let mut tx: Option<(u32, Model)> = None;
        for op in &ops {
            match op {
                Op::Begin => {
                    if tx.is_none() {
                        let id = request(&mut e, c, MsgType::TransactionStart, 0, b"\0").expect("start");
                        let id: u32 = std::str::from_utf8(&id[..id.len() - 1]).unwrap().parse().unwrap();
                        tx = Some((id, live.clone()));
                    }
                }
                Op::Commit | Op::Abort => {
                    if let Some((id, view)) = tx.take() {
                        let commit = matches!(op, Op::Commit);
                        let arg: &[u8] = if commit { b"T\0" } else { b"F\0" };
                        prop_assert_eq!(request(&mut e, c, MsgType::TransactionEnd, id, arg), Ok(b"OK\0".to_vec()));
                        if commit {
                            live = view;
                        }
                    }
                }
                _ => {
                    let (ty, payload) = match op {
                        Op::Write(p, v) => (MsgType::Write, [p.as_bytes(), b"\0", v].concat()),
                        Op::Mkdir(p) => (MsgType::Mkdir, [p.as_bytes(), b"\0"].concat()),
                        Op::Rm(p) => (MsgType::Rm, [p.as_bytes(), b"\0"].concat()),
                        Op::Read(p) => (MsgType::Read, [p.as_bytes(), b"\0"].concat()),
                        Op::Directory(p) => (MsgType::Directory, [p.as_bytes(), b"\0"].concat()),
                        _ => unreachable!(),
                    };
                    let (id, model) = match &mut tx {
                        Some((id, view)) => (*id, view),
                        None => (0, &mut live),
                    };
                    let want = apply(model, op);
                    prop_assert_eq!(request(&mut e, c, ty, id, &payload), want, "{:?}", op);
                }
            }
        }
        prop_assert_eq!(e.node_count(), live.len() + 1, "live tree matches the model");
    }
}

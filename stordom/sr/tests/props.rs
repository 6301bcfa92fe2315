//! Property tests: random operation sequences against a simple model (the
//! sectors each VDI holds, the clusters it maps, the log's bytes) give the
//! same reads, the same errors and the same accounting; `check()` passes
//! throughout, across flushes and reopens.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use xcp_sr::budget::{CLUSTER_SIZE, SECTOR_SIZE};
use xcp_sr::fake::MemDisk;
use xcp_sr::{Error, Sr, Uuid};

const SECTORS_PER_CLUSTER: u64 = (CLUSTER_SIZE / SECTOR_SIZE) as u64;

#[derive(Clone, Debug)]
enum Op {
    Create(u8, u64),
    Write(u8, u64, u64, u8),
    Read(u8, u64, u64),
    Discard(u8, u64, u64),
    Snapshot(u8, u8),
    Clone(u8, u8),
    Grow(u8, u64),
    Destroy(u8),
    Flush,
    Reopen,
    LogAppend(Vec<u8>),
    LogTruncate(u64),
    LogReplace(Vec<u8>),
}

fn op() -> impl Strategy<Value = Op> {
    // Sizes in sectors: small ones, and ones past a leaf's 31.75 MiB.
    let size = prop_oneof![1u64..600, 64_000u64..70_000];
    prop_oneof![
        (0u8..5, size.clone()).prop_map(|(v, s)| Op::Create(v, s)),
        (0u8..5, any::<u64>(), 1u64..300, 1u8..255).prop_map(|(v, s, n, b)| Op::Write(v, s, n, b)),
        (0u8..5, any::<u64>(), 1u64..300, 1u8..255).prop_map(|(v, s, n, b)| Op::Write(v, s, n, b)),
        (0u8..5, any::<u64>(), 1u64..400).prop_map(|(v, s, n)| Op::Read(v, s, n)),
        (0u8..5, any::<u64>(), 1u64..400).prop_map(|(v, s, n)| Op::Discard(v, s, n)),
        (0u8..5, 0u8..5).prop_map(|(a, b)| Op::Snapshot(a, b)),
        (0u8..5, 0u8..5).prop_map(|(a, b)| Op::Clone(a, b)),
        (0u8..5, size).prop_map(|(v, s)| Op::Grow(v, s)),
        (0u8..5).prop_map(Op::Destroy),
        Just(Op::Flush),
        Just(Op::Reopen),
        proptest::collection::vec(any::<u8>(), 0..5000).prop_map(Op::LogAppend),
        any::<u64>().prop_map(Op::LogTruncate),
        proptest::collection::vec(any::<u8>(), 0..3000).prop_map(Op::LogReplace),
    ]
}

fn uuid(v: u8) -> Uuid {
    [v + 1; 16]
}

#[derive(Clone, Debug, Default)]
struct Vdi {
    sectors: u64,
    /// Sector → fill byte (absent: zeros).
    data: BTreeMap<u64, u8>,
    /// Clusters mapped.
    mapped: BTreeSet<u64>,
    read_only: bool,
}

fn fill(s: u64, b: u8) -> u8 {
    b ^ (s as u8) | 1
}

/// Picks a range inside a VDI of `sectors` from arbitrary numbers.
fn within(sectors: u64, s: u64, n: u64) -> (u64, u64) {
    if sectors == 0 {
        return (0, 0);
    }
    let s = s % sectors;
    (s, n.min(sectors - s))
}

fn run(ops: Vec<Op>, dirty: Option<usize>) -> Result<(), TestCaseError> {
    let mut sr = Sr::format(MemDisk::new(8192))
        .map_err(|e| e.0)
        .expect("format");
    if let Some(n) = dirty {
        sr.limit_dirty(n);
    }
    let mut model: BTreeMap<u8, Vdi> = BTreeMap::new();
    let mut log: Vec<u8> = Vec::new();
    for op in ops {
        match op {
            Op::Create(v, sectors) => {
                let r = sr.create(uuid(v), sectors * 512);
                if let std::collections::btree_map::Entry::Vacant(e) = model.entry(v) {
                    prop_assert_eq!(r, Ok(()));
                    e.insert(Vdi {
                        sectors,
                        ..Vdi::default()
                    });
                } else {
                    prop_assert_eq!(r, Err(Error::Exists));
                }
            }
            Op::Write(v, s, n, b) => {
                let Some(m) = model.get_mut(&v) else {
                    prop_assert_eq!(sr.write(uuid(v), 0, &[0; 512]), Err(Error::NotFound));
                    continue;
                };
                let (s, n) = within(m.sectors, s, n);
                let buf: Vec<u8> = (s..s + n).flat_map(|x| [fill(x, b); 512]).collect();
                let r = sr.write(uuid(v), s, &buf);
                if m.read_only {
                    prop_assert_eq!(r, Err(Error::VdiReadOnly));
                    continue;
                }
                prop_assert_eq!(r, Ok(()));
                for x in s..s + n {
                    m.data.insert(x, b);
                    m.mapped.insert(x / SECTORS_PER_CLUSTER);
                }
                // Past the end is refused.
                prop_assert_eq!(
                    sr.write(uuid(v), m.sectors, &[1; 512]),
                    Err(Error::OutOfRange)
                );
            }
            Op::Read(v, s, n) => {
                let Some(m) = model.get(&v) else { continue };
                let (s, n) = within(m.sectors, s, n);
                let mut buf = vec![0xeeu8; (n * 512) as usize];
                sr.read(uuid(v), s, &mut buf).expect("read");
                for (k, got) in buf.chunks_exact(512).enumerate() {
                    let x = s + k as u64;
                    let want = m.data.get(&x).map_or(0, |b| fill(x, *b));
                    prop_assert!(got.iter().all(|g| *g == want), "sector {} want {}", x, want);
                }
            }
            Op::Discard(v, s, n) => {
                let Some(m) = model.get_mut(&v) else { continue };
                let (s, n) = within(m.sectors, s, n);
                let r = sr.discard(uuid(v), s, n);
                if m.read_only {
                    prop_assert_eq!(r, Err(Error::VdiReadOnly));
                    continue;
                }
                prop_assert_eq!(r, Ok(()));
                for x in s..s + n {
                    m.data.remove(&x);
                }
                // A cluster wholly covered (up to the VDI's end) is freed.
                let end = s + n;
                for c in s / SECTORS_PER_CLUSTER..=end / SECTORS_PER_CLUSTER {
                    let c0 = c * SECTORS_PER_CLUSTER;
                    let c1 = (c0 + SECTORS_PER_CLUSTER).min(m.sectors);
                    if s <= c0 && c1 <= end {
                        m.mapped.remove(&c);
                    }
                }
            }
            Op::Snapshot(a, b) | Op::Clone(a, b) => {
                let snap = matches!(op, Op::Snapshot(..));
                let r = if snap {
                    sr.snapshot(uuid(a), uuid(b))
                } else {
                    sr.clone_vdi(uuid(a), uuid(b))
                };
                match (model.get(&a).cloned(), model.contains_key(&b)) {
                    (None, _) => prop_assert_eq!(r, Err(Error::NotFound)),
                    (Some(_), true) => prop_assert_eq!(r, Err(Error::Exists)),
                    (Some(m), false) => {
                        prop_assert_eq!(r, Ok(()));
                        let info = sr.info(uuid(b)).expect("info");
                        prop_assert_eq!(info.parent, Some(uuid(a)));
                        prop_assert_eq!(info.snapshot, snap);
                        model.insert(
                            b,
                            Vdi {
                                read_only: snap,
                                ..m
                            },
                        );
                    }
                }
            }
            Op::Grow(v, sectors) => {
                let Some(m) = model.get_mut(&v) else { continue };
                let r = sr.resize(uuid(v), sectors * 512);
                if sectors < m.sectors {
                    prop_assert_eq!(r, Err(Error::Shrink));
                } else {
                    prop_assert_eq!(r, Ok(()));
                    m.sectors = sectors;
                }
            }
            Op::Destroy(v) => {
                let r = sr.destroy(uuid(v));
                if model.remove(&v).is_some() {
                    prop_assert_eq!(r, Ok(()));
                } else {
                    prop_assert_eq!(r, Err(Error::NotFound));
                }
            }
            Op::Flush => sr.flush().expect("flush"),
            Op::Reopen => {
                sr.flush().expect("flush");
                sr = Sr::open(sr.into_dev()).map_err(|e| e.0).expect("open");
                if let Some(n) = dirty {
                    sr.limit_dirty(n);
                }
            }
            Op::LogAppend(b) => {
                sr.log_append(&b).expect("append");
                log.extend_from_slice(&b);
            }
            Op::LogTruncate(n) => {
                let n = n % (log.len() as u64 + 1);
                sr.log_truncate(n).expect("truncate");
                log.truncate(n as usize);
            }
            Op::LogReplace(b) => {
                sr.log_replace(&b).expect("replace");
                log = b;
            }
        }
        // Accounting tells the truth after every step.
        let info = sr.sr_info();
        prop_assert_eq!(info.vdis, model.len());
        prop_assert_eq!(
            info.virtual_allocation,
            model.values().map(|m| m.sectors * 512).sum::<u64>()
        );
        for (v, m) in &model {
            let i = sr.info(uuid(*v)).expect("info");
            prop_assert_eq!(i.virtual_size, m.sectors * 512);
            prop_assert_eq!(
                i.physical_utilisation,
                m.mapped.len() as u64 * CLUSTER_SIZE as u64
            );
            prop_assert_eq!(i.read_only, m.read_only);
        }
        prop_assert!(info.physical_utilisation <= info.physical_size);
    }
    sr.check().expect("check");
    prop_assert_eq!(sr.log_read_all().expect("log"), log.clone());
    sr.flush().expect("flush");
    let mut sr = Sr::open(sr.into_dev()).map_err(|e| e.0).expect("open");
    sr.check().expect("check after reopen");
    prop_assert_eq!(sr.log_read_all().expect("log"), log);
    for (v, m) in &model {
        for (&x, &b) in &m.data {
            let mut got = [0u8; 512];
            sr.read(uuid(*v), x, &mut got).expect("read");
            prop_assert!(got.iter().all(|g| *g == fill(x, b)));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn ops_match_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        run(ops, None)?;
    }

    #[test]
    fn ops_match_the_model_with_early_commits(
        ops in proptest::collection::vec(op(), 1..40),
        dirty in 1usize..40,
    ) {
        run(ops, Some(dirty))?;
    }
}

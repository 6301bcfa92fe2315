//! Power cut at every device write and flush of a mixed workload, keeping several
//! subsets of the unflushed writes each time: after each cut the SR opens,
//! `check()` passes, every write a completed `flush` acknowledged reads
//! back exactly, and every other sector reads one of the values it may
//! have (its flushed one, or one written since).

use std::collections::{BTreeMap, BTreeSet};

use xcp_sr::budget::SECTOR_SIZE;
use xcp_sr::fake::CrashDisk;
use xcp_sr::{Error, Sr, Uuid};

const A: Uuid = [1; 16];
const S: Uuid = [2; 16];
const C: Uuid = [3; 16];
const MIB: u64 = 1 << 20;
const DISK_BLOCKS: u64 = 1024;

#[derive(Clone, Debug)]
enum Op {
    Create(Uuid, u64),
    Write(Uuid, u64, u64, u64),
    Discard(Uuid, u64, u64),
    Snapshot(Uuid, Uuid),
    Clone(Uuid, Uuid),
    Resize(Uuid, u64),
    Destroy(Uuid),
    LogAppend(&'static [u8]),
    LogReplace(&'static [u8]),
    Flush,
}
use Op::*;

fn workload() -> Vec<Op> {
    vec![
        Create(A, 2 * MIB),
        Write(A, 0, 16, 1),
        Write(A, 200, 300, 2),
        LogAppend(b"first record;"),
        Flush,
        Snapshot(A, S),
        Write(A, 4, 8, 3),
        Clone(S, C),
        Write(C, 100, 64, 4),
        LogAppend(b"second;"),
        Flush,
        Resize(A, 34 * MIB),
        Write(A, 34 * 2048 - 8, 8, 5),
        Discard(A, 128, 256),
        LogReplace(b"compacted log"),
        Flush,
        Destroy(S),
        Write(A, 0, 8, 6),
        Write(A, 300, 8, 9),
        LogAppend(b"+more"),
        Write(C, 0, 128, 7),
        Flush,
        Destroy(C),
        // Cluster 3 was shared with C until now: no longer shared, but
        // the last commit still reads it through C, so no overwrite.
        Write(A, 450, 8, 11),
        Write(A, 1000, 16, 8),
        Discard(A, 0, 4),
        Flush,
        Write(A, 1000, 4, 10),
        LogAppend(b"+unflushed"),
    ]
}

/// The bytes of sector `s` written with `tag` (tag 0: zeros).
fn sector(tag: u64, s: u64) -> [u8; SECTOR_SIZE] {
    let mut b = [0u8; SECTOR_SIZE];
    if tag != 0 {
        b.fill((tag as u8).wrapping_mul(31) ^ (s as u8).wrapping_mul(7) | 1);
        b[..8].copy_from_slice(&tag.to_le_bytes());
        b[8..16].copy_from_slice(&s.to_le_bytes());
    }
    b
}

#[derive(Clone, Debug, Default)]
struct Vdi {
    size: u64,
    tags: BTreeMap<u64, u64>,
}

/// What the SR may hold after a crash.
#[derive(Clone, Debug, Default)]
struct Model {
    latest: BTreeMap<Uuid, Vdi>,
    durable: BTreeMap<Uuid, Vdi>,
    /// Tags a sector may hold besides its durable one, since the flush.
    since: BTreeMap<Uuid, BTreeMap<u64, BTreeSet<u64>>>,
    /// Sizes a VDI may have since the flush.
    sizes: BTreeMap<Uuid, BTreeSet<u64>>,
    /// Created or destroyed since the flush.
    may_be_absent: BTreeSet<Uuid>,
    log: Vec<u8>,
    /// Log contents since the flush (the durable one first).
    logs: Vec<Vec<u8>>,
    /// Every sector the workload touches, per VDI.
    watch: BTreeMap<Uuid, BTreeSet<u64>>,
}

impl Model {
    fn touch(&mut self, u: Uuid, s: u64, tag: u64) {
        self.since
            .entry(u)
            .or_default()
            .entry(s)
            .or_default()
            .insert(tag);
        self.watch.entry(u).or_default().insert(s);
    }

    fn allowed(&self, u: &Uuid, s: u64) -> BTreeSet<u64> {
        let mut set = self
            .since
            .get(u)
            .and_then(|m| m.get(&s))
            .cloned()
            .unwrap_or_default();
        match self.durable.get(u) {
            Some(v) if s < v.size / 512 => {
                set.insert(v.tags.get(&s).copied().unwrap_or(0));
            }
            _ => {
                set.insert(0);
            }
        }
        set
    }

    /// Applies `op` before it runs: if the power goes out during it, its
    /// effects may or may not be there.
    fn apply(&mut self, op: &Op) {
        match *op {
            Create(u, size) => {
                self.latest.insert(
                    u,
                    Vdi {
                        size,
                        tags: BTreeMap::new(),
                    },
                );
                self.sizes.entry(u).or_default().insert(size);
                self.may_be_absent.insert(u);
            }
            Write(u, s, n, tag) => {
                for x in s..s + n {
                    self.latest.get_mut(&u).expect("exists").tags.insert(x, tag);
                    self.touch(u, x, tag);
                }
            }
            Discard(u, s, n) => {
                for x in s..s + n {
                    self.latest.get_mut(&u).expect("exists").tags.remove(&x);
                    self.touch(u, x, 0);
                }
            }
            Snapshot(src, new) | Clone(src, new) => {
                let v = self.latest[&src].clone();
                self.sizes.entry(new).or_default().insert(v.size);
                let watched: Vec<u64> = self
                    .watch
                    .get(&src)
                    .into_iter()
                    .flatten()
                    .copied()
                    .collect();
                for s in watched {
                    for t in self.allowed(&src, s) {
                        self.touch(new, s, t);
                    }
                }
                self.latest.insert(new, v);
                self.may_be_absent.insert(new);
            }
            Resize(u, size) => {
                self.latest.get_mut(&u).expect("exists").size = size;
                self.sizes.entry(u).or_default().insert(size);
            }
            Destroy(u) => {
                self.latest.remove(&u);
                self.may_be_absent.insert(u);
            }
            LogAppend(b) => {
                self.log.extend_from_slice(b);
                self.logs.push(self.log.clone());
            }
            LogReplace(b) => {
                self.log = b.to_vec();
                self.logs.push(self.log.clone());
            }
            Flush => {}
        }
    }

    fn flushed(&mut self) {
        self.durable = self.latest.clone();
        self.since.clear();
        self.may_be_absent.clear();
        self.sizes = self
            .latest
            .iter()
            .map(|(u, v)| (*u, BTreeSet::from([v.size])))
            .collect();
        self.logs = vec![self.log.clone()];
    }
}

fn run(sr: &mut Sr<CrashDisk>, op: &Op) -> Result<(), Error> {
    match *op {
        Create(u, size) => sr.create(u, size),
        Write(u, s, n, tag) => {
            let mut buf = Vec::new();
            for x in s..s + n {
                buf.extend_from_slice(&sector(tag, x));
            }
            sr.write(u, s, &buf)
        }
        Discard(u, s, n) => sr.discard(u, s, n),
        Snapshot(a, b) => sr.snapshot(a, b),
        Clone(a, b) => sr.clone_vdi(a, b),
        Resize(u, size) => sr.resize(u, size),
        Destroy(u) => sr.destroy(u),
        LogAppend(b) => sr.log_append(b),
        LogReplace(b) => sr.log_replace(b),
        Flush => sr.flush(),
    }
}

fn base_image() -> Vec<u8> {
    let mut sr = Sr::format(CrashDisk::new(DISK_BLOCKS))
        .map_err(|e| e.0)
        .expect("format");
    sr.flush().expect("flush");
    sr.into_dev().crash_image(0)
}

/// Runs the workload with the power cut at write `cut` (None: never);
/// returns the disk and the model of what it may hold.
fn cut_run(base: &[u8], cut: Option<u64>, dirty_limit: Option<usize>) -> (CrashDisk, Model, u64) {
    let mut disk = CrashDisk::from_image(base.to_vec());
    if let Some(c) = cut {
        disk.cut_power_at(c);
    }
    let mut sr = Sr::open(disk)
        .map_err(|e| e.0)
        .expect("open the base image");
    if let Some(n) = dirty_limit {
        sr.limit_dirty(n);
    }
    let mut model = Model::default();
    model.flushed();
    for op in workload() {
        model.apply(&op);
        match run(&mut sr, &op) {
            Ok(()) => {
                if matches!(op, Flush) {
                    model.flushed();
                }
            }
            Err(Error::Device(_)) => {
                assert!(sr.dev().is_dead(), "only the power cut fails: {op:?}");
                break;
            }
            Err(e) => panic!("{op:?}: {e:?}"),
        }
    }
    let ops = sr.dev().ops;
    (sr.into_dev(), model, ops)
}

fn verify(image: Vec<u8>, model: &Model, what: &str) {
    let mut sr = match Sr::open(CrashDisk::from_image(image)) {
        Ok(sr) => sr,
        Err((e, _)) => panic!("{what}: open: {e:?}"),
    };
    if let Err(e) = sr.check() {
        panic!("{what}: check: {e:?}");
    }
    let present: BTreeSet<Uuid> = sr.list().into_iter().collect();
    for u in model.durable.keys().chain(model.latest.keys()) {
        if !model.may_be_absent.contains(u) {
            assert!(present.contains(u), "{what}: VDI {u:?} lost");
        }
    }
    for u in &present {
        let sizes = model
            .sizes
            .get(u)
            .unwrap_or_else(|| panic!("{what}: unknown VDI {u:?}"));
        let info = sr.info(*u).expect("listed");
        assert!(
            sizes.contains(&info.virtual_size),
            "{what}: {u:?} size {}",
            info.virtual_size
        );
        let size = info.virtual_size / 512;
        let watched: Vec<u64> = model
            .watch
            .get(u)
            .into_iter()
            .flatten()
            .copied()
            .filter(|s| *s < size)
            .collect();
        // Contiguous runs, one read each.
        let mut i = 0;
        while i < watched.len() {
            let mut j = i + 1;
            while j < watched.len() && watched[j] == watched[j - 1] + 1 && j - i < 256 {
                j += 1;
            }
            let first = watched[i];
            let mut buf = vec![0u8; (j - i) * SECTOR_SIZE];
            sr.read(*u, first, &mut buf).expect("read");
            for (k, got) in buf.chunks_exact(SECTOR_SIZE).enumerate() {
                let s = first + k as u64;
                // The tag a sector names, then the whole sector checked.
                let tag = if got.iter().all(|b| *b == 0) {
                    0
                } else {
                    u64::from_le_bytes(got[..8].try_into().expect("8"))
                };
                let allowed = model.allowed(u, s);
                assert!(
                    allowed.contains(&tag) && sector(tag, s) == got,
                    "{what}: {u:?} sector {s} holds tag {tag}, allowed {allowed:?}"
                );
            }
            i = j;
        }
    }
    let log = sr.log_read_all().expect("log");
    assert!(
        model.logs.contains(&log),
        "{what}: log {:?} not one of {:?}",
        String::from_utf8_lossy(&log),
        model.logs.len()
    );
    // The recovered SR works: write, flush, check.
    if let Some(u) = present
        .iter()
        .find(|u| !sr.info(**u).expect("listed").read_only)
    {
        sr.write(*u, 0, &sector(99, 0))
            .expect("write after recovery");
        sr.flush().expect("flush after recovery");
        sr.check().expect("check after recovery");
    }
}

fn every_cut(dirty_limit: Option<usize>) -> u64 {
    let base = base_image();
    let (disk, model, total) = cut_run(&base, None, dirty_limit);
    assert!(!disk.is_dead());
    verify(disk.crash_image(0), &model, "no cut, unflushed tail lost");
    verify(disk.crash_image(1), &model, "no cut, unflushed tail kept");
    assert!(total > 100, "the workload writes: {total}");
    for cut in 0..total {
        let (disk, model, _) = cut_run(&base, Some(cut), dirty_limit);
        assert!(disk.is_dead(), "the power went out at {cut}");
        for seed in [0, 1, 2, 3, 4] {
            verify(
                disk.crash_image(seed),
                &model,
                &format!("cut at write {cut}, subset {seed}"),
            );
        }
    }
    total
}

#[test]
fn power_cut_at_every_write() {
    every_cut(None);
}

#[test]
fn power_cut_at_every_write_with_early_commits() {
    every_cut(Some(6));
}

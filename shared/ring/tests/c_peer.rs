//! C-peer test: our rings and Xen's io/ring.h macros produce the same bytes.
//!
//! read first: io/ring.h, tests/c_peer/ring_peer.c.
//!
//! `ring_peer.c` is compiled against the installed /usr/include/xen/io/ring.h
//! and works on a page file. One scripted sequence of RING_* operations runs
//! four ways — Rust front + Rust back, C front + C back, Rust front + C back,
//! C front + Rust back — on one 4096-byte page handed back and forth through
//! a file. Every printed result (notify decisions, work flags, requests and
//! responses copied out, free counts) and the page at every checkpoint must be
//! identical in all four runs. A missing header or compiler fails the test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use xcp_ring::fake::{MemPage, PAGE_SIZE};
use xcp_ring::{BackRing, FrontRing, RingEntry, SharedPage};

const HEADER: &str = "/usr/include/xen/io/ring.h";
const FRONT: &str = "front used before finit";
const BACK: &str = "back used before binit";
const INSTALL: &str = "apt-get install libxen-dev (Xen public headers) and a C compiler";

/// `struct test_req { uint64_t id; uint32_t op; uint32_t len; }`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Req {
    id: u64,
    op: u32,
    len: u32,
}

/// `struct test_rsp { uint32_t id; int32_t status; uint32_t extra; }`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rsp {
    id: u32,
    status: i32,
    extra: u32,
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

impl RingEntry for Req {
    const SIZE: usize = 16;
    fn encode(&self, out: &mut [u8]) {
        out[0..8].copy_from_slice(&self.id.to_le_bytes());
        out[8..12].copy_from_slice(&self.op.to_le_bytes());
        out[12..16].copy_from_slice(&self.len.to_le_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        let id = u64::from(u32_at(b, 0)) | u64::from(u32_at(b, 4)) << 32;
        Req {
            id,
            op: u32_at(b, 8),
            len: u32_at(b, 12),
        }
    }
}

impl RingEntry for Rsp {
    const SIZE: usize = 12;
    fn encode(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.id.to_le_bytes());
        out[4..8].copy_from_slice(&self.status.to_le_bytes());
        out[8..12].copy_from_slice(&self.extra.to_le_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        Rsp {
            id: u32_at(b, 0),
            status: u32_at(b, 4) as i32,
            extra: u32_at(b, 8),
        }
    }
}

/// Builds ring_peer once per test binary.
fn ring_peer() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        assert!(Path::new(HEADER).exists(), "{HEADER} is missing: {INSTALL}");
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let out = dir.join("ring_peer");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c_peer/ring_peer.c");
        let target = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
        let compiler = cc::Build::new()
            .cargo_metadata(false)
            .target(&target)
            .host(&target)
            .opt_level(1)
            .try_get_compiler()
            .unwrap_or_else(|e| panic!("no C compiler ({e}): {INSTALL}"));
        let status = compiler
            .to_command()
            .args(["-Wall", "-Werror", "-o"])
            .arg(&out)
            .arg(&src)
            .status()
            .unwrap_or_else(|e| panic!("cannot run the C compiler ({e}): {INSTALL}"));
        assert!(
            status.success(),
            "compiling ring_peer.c against {HEADER} failed: {INSTALL}"
        );
        out
    })
}

fn is_front_op(op: &str) -> bool {
    matches!(
        op,
        "finit" | "push_req" | "get_rsp" | "final_rsp" | "free" | "ursp"
    ) || op.starts_with("req:")
        || op.starts_with("fattach:")
}

/// The Rust side: rings over `page`, created by the finit/binit ops.
struct Rust<'a> {
    page: &'a MemPage,
    front: Option<FrontRing<&'a MemPage, Req, Rsp>>,
    back: Option<BackRing<&'a MemPage, Req, Rsp>>,
}

impl Rust<'_> {
    fn apply(&mut self, op: &str) -> String {
        match op {
            "finit" => {
                self.front = Some(FrontRing::init(self.page).unwrap());
                "ok".into()
            }
            "binit" => {
                self.back = Some(BackRing::init(self.page).unwrap());
                "ok".into()
            }
            "push_req" => format!(
                "notify {}",
                self.front.as_mut().expect(FRONT).push_requests() as u8
            ),
            "push_rsp" => format!(
                "notify {}",
                self.back.as_mut().expect(BACK).push_responses() as u8
            ),
            "get_req" => match self.back.as_mut().expect(BACK).next_request().unwrap() {
                Some(r) => format!("req {} {} {}", r.id, r.op, r.len),
                None => "none".into(),
            },
            "get_rsp" => match self.front.as_mut().expect(FRONT).next_response().unwrap() {
                Some(r) => format!("rsp {} {} {}", r.id, r.status, r.extra),
                None => "none".into(),
            },
            "final_req" => {
                let w = self
                    .back
                    .as_mut()
                    .expect(BACK)
                    .final_check_for_requests()
                    .unwrap();
                format!("work {}", w as u8)
            }
            "final_rsp" => {
                let w = self
                    .front
                    .as_mut()
                    .expect(FRONT)
                    .final_check_for_responses()
                    .unwrap();
                format!("work {}", w as u8)
            }
            "free" => format!("free {}", self.front.as_ref().expect(FRONT).free_requests()),
            "ureq" => format!(
                "ureq {}",
                self.back
                    .as_ref()
                    .expect(BACK)
                    .unconsumed_requests()
                    .unwrap()
            ),
            "ursp" => format!(
                "ursp {}",
                self.front
                    .as_ref()
                    .expect(FRONT)
                    .unconsumed_responses()
                    .unwrap()
            ),
            _ if op.starts_with("fattach:") => {
                // The front's half of the header, then FRONT_RING_ATTACH.
                let idx: u32 = op[8..].parse().unwrap();
                self.page.store_u32(xcp_ring::sring::REQ_PROD, idx);
                self.page
                    .store_u32(xcp_ring::sring::RSP_EVENT, idx.wrapping_add(1));
                self.front = Some(FrontRing::attach(self.page, idx).unwrap());
                "ok".into()
            }
            _ if op.starts_with("battach:") => {
                let idx: u32 = op[8..].parse().unwrap();
                self.page.store_u32(xcp_ring::sring::RSP_PROD, idx);
                self.page
                    .store_u32(xcp_ring::sring::REQ_EVENT, idx.wrapping_add(1));
                self.back = Some(BackRing::attach(self.page, idx).unwrap());
                "ok".into()
            }
            _ if op.starts_with("req:") => {
                let id: u64 = op[4..].parse().unwrap();
                let r = Req {
                    id,
                    op: 7,
                    len: (id * 3) as u32,
                };
                match self.front.as_mut().expect(FRONT).queue_request(&r) {
                    Ok(()) => "ok".into(),
                    Err(_) => "full".into(),
                }
            }
            _ if op.starts_with("rsp:") => {
                let id: u32 = op[4..].parse().unwrap();
                let r = Rsp {
                    id,
                    status: -((id % 5) as i32),
                    extra: id ^ 0xa5a5_a5a5,
                };
                self.back.as_mut().expect(BACK).queue_response(&r).unwrap();
                "ok".into()
            }
            _ => panic!("unknown op {op}"),
        }
    }
}

/// Runs `ops` in C on the page (through files in `dir`), returning its lines.
fn run_c(dir: &Path, page: &MemPage, ops: &[&str]) -> Vec<String> {
    let page_file = dir.join("page");
    std::fs::write(&page_file, page.snapshot()).unwrap();
    let out = Command::new(ring_peer())
        .arg(&page_file)
        .arg(dir.join("state"))
        .args(ops)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ring_peer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes: [u8; PAGE_SIZE] = std::fs::read(&page_file).unwrap().try_into().unwrap();
    page.restore(&bytes);
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Runs `script` with the front and back each in C or in Rust; returns the
/// printed results and the page at every `checkpoint` ops.
fn run(
    name: &str,
    script: &[String],
    front_c: bool,
    back_c: bool,
    checkpoint: usize,
) -> (Vec<String>, Vec<Vec<u8>>) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("c_peer_{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let _ = std::fs::remove_file(dir.join("state"));
    let page = MemPage::new();
    let mut rust = Rust {
        page: &page,
        front: None,
        back: None,
    };
    let (mut lines, mut pages) = (Vec::new(), Vec::new());
    let mut batch: Vec<&str> = Vec::new();
    for (i, op) in script.iter().enumerate() {
        let in_c = if is_front_op(op) { front_c } else { back_c };
        if in_c {
            batch.push(op);
        } else {
            if !batch.is_empty() {
                lines.extend(run_c(&dir, &page, &batch));
                batch.clear();
            }
            lines.push(rust.apply(op));
        }
        if (i + 1) % checkpoint == 0 || i + 1 == script.len() {
            if !batch.is_empty() {
                lines.extend(run_c(&dir, &page, &batch));
                batch.clear();
            }
            pages.push(page.snapshot().to_vec());
        }
    }
    (lines, pages)
}

/// A deterministic script of well-behaved operations that fills the ring,
/// drains it, and re-arms both event indexes.
fn script(seed: u64, len: usize, start: Option<u32>) -> Vec<String> {
    let mut s = seed;
    let mut rand = move |n: u64| {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 33) % n
    };
    let mut ops: Vec<String> = vec!["finit".into(), "binit".into()];
    if let Some(idx) = start {
        ops.push(format!("fattach:{idx}"));
        ops.push(format!("battach:{idx}"));
    }
    let (mut next_req, mut pushed_reqs, mut taken, mut answered) = (0u64, 0u64, 0u64, 0u64);
    let mut queued = 0u64;
    while ops.len() < len {
        // Phases: producer-heavy, consumer-heavy, then lockstep rounds that
        // drain the ring and re-arm both event indexes.
        const LOCKSTEP: [u64; 12] = [0, 30, 40, 85, 40, 85, 55, 70, 75, 90, 75, 90];
        let phase = (ops.len() / 300) % 3;
        let producing = phase == 0;
        let r = if phase == 2 {
            LOCKSTEP[ops.len() % LOCKSTEP.len()]
        } else {
            rand(100)
        };
        let op = match r {
            0..=29 if producing || r < 10 => {
                // May print "full": both sides must agree on it.
                if queued.saturating_sub(answered) < 128 {
                    queued += 1;
                }
                next_req += 1;
                format!("req:{next_req}")
            }
            0..=39 => {
                pushed_reqs = queued;
                "push_req".into()
            }
            40..=54 => {
                if taken < pushed_reqs {
                    taken += 1;
                }
                "get_req".into()
            }
            55..=69 if answered < taken => {
                answered += 1;
                format!("rsp:{}", rand(1 << 31))
            }
            55..=74 => "push_rsp".into(),
            75..=84 => "get_rsp".into(),
            85..=89 => "final_req".into(),
            90..=94 => "final_rsp".into(),
            95 => "free".into(),
            96 => "ureq".into(),
            97 => "ursp".into(),
            _ => "get_rsp".into(),
        };
        ops.push(op);
    }
    ops
}

#[test]
fn rust_and_c_agree_on_every_byte_and_notify() {
    agree(&script(0x5eed, 2500, None), "from0");
}

#[test]
fn rust_and_c_agree_across_index_wrap() {
    // Starts 200 below 2^32: the u32 indexes wrap a few hundred ops in.
    agree(&script(0xface, 2500, Some(u32::MAX - 200)), "wrap");
}

/// Runs `script` all four ways and asserts identical results and pages.
fn agree(script: &[String], tag: &str) {
    let (want_lines, want_pages) = run(&format!("{tag}_rust_rust"), script, false, false, 50);
    for (name, front_c, back_c) in [
        ("c_c", true, true),
        ("rust_front_c_back", false, true),
        ("c_front_rust_back", true, false),
    ] {
        let (lines, pages) = run(&format!("{tag}_{name}"), script, front_c, back_c, 50);
        assert_eq!(lines.len(), script.len(), "{name}: one line per op");
        for (i, (got, want)) in lines.iter().zip(&want_lines).enumerate() {
            assert_eq!(got, want, "{name}: op {i} ({}) differs", script[i]);
        }
        for (i, (got, want)) in pages.iter().zip(&want_pages).enumerate() {
            assert!(got == want, "{name}: page differs at checkpoint {i}");
        }
    }
    // The script exercised what it claims to.
    let count = |p: &str| want_lines.iter().filter(|l| l.as_str() == p).count();
    assert!(
        count("notify 1") > 10 && count("notify 0") > 10,
        "both notify outcomes"
    );
    assert!(
        count("work 1") > 5 && count("work 0") > 5,
        "both final-check outcomes"
    );
    assert!(count("full") > 0, "the ring filled up");
    assert!(want_lines.iter().filter(|l| l.starts_with("req ")).count() > 200);
    assert!(want_lines.iter().filter(|l| l.starts_with("rsp ")).count() > 200);
}

#[test]
fn c_initialised_page_matches_rust_fixture() {
    let page = MemPage::new();
    page.poke(0, &[0x5a; PAGE_SIZE]);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("c_peer_init");
    std::fs::create_dir_all(&dir).unwrap();
    let _ = std::fs::remove_file(dir.join("state"));
    let lines = run_c(&dir, &page, &["finit", "req:1", "push_req"]);
    assert_eq!(lines, ["ok", "ok", "notify 1"]);
    let rust_page = MemPage::new();
    rust_page.poke(0, &[0x5a; PAGE_SIZE]);
    let mut front = FrontRing::<_, Req, Rsp>::init(&rust_page).unwrap();
    front
        .queue_request(&Req {
            id: 1,
            op: 7,
            len: 3,
        })
        .unwrap();
    assert!(front.push_requests());
    assert!(page.snapshot() == rust_page.snapshot());
    assert_eq!(front.size(), 128);
}

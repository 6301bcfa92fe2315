//! The VBD board against hostile guests and a confused toolstack:
//! arbitrary bytes decide what the world does next — backend directories
//! with arbitrary key values, a frontend's `state` and keys with arbitrary
//! values, arbitrary ring contents (raw pokes and whole request slots),
//! arbitrary grants, kicks, turns, removals and closes. The board must
//! never panic, never unbind or kick a port it does not hold (the fake
//! asserts it), never keep a mapping or channel of a VBD it let go, never
//! issue a copy outside a page or its buffer (the fake asserts it), and
//! must go idle once the guests stop: no turn loops for ever.
#![no_main]

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use stordom::repo::{open_or_format, SrRepo};
use stordom::vbds::fake::{plug, Fake, Page};
use stordom::vbds::Vbds;
use xcp_blkback::fake::{frontend_keys, Blkfront, MemPages};
use xcp_blkback::wire::Request;
use xcp_sr::fake::MemDisk;
use xcp_storwire::uuid::uuid_text;

const BASE: &str = "/local/domain/1/backend/vbd";
const VDIS: [[u8; 16]; 2] = [[1; 16], [2; 16]];

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }
    fn bytes(&mut self, max: usize) -> Option<Vec<u8>> {
        let n = (usize::from(self.byte()?) % (max + 1)).min(self.0.len());
        let (b, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(b.to_vec())
    }
}

const BACK_KEYS: [&str; 9] = [
    "frontend",
    "frontend-id",
    "online",
    "state",
    "dev",
    "type",
    "mode",
    "device-type",
    "params",
];
const FRONT_KEYS: [&str; 10] = [
    "state",
    "protocol",
    "ring-page-order",
    "multi-queue-num-queues",
    "feature-persistent",
    "ring-ref",
    "ring-ref0",
    "event-channel",
    "queue-0/ring-ref",
    "queue-1/event-channel",
];

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    // Formatting is most of an iteration's cost: once, then a copy.
    static DISK: OnceLock<MemDisk> = OnceLock::new();
    let disk = DISK.get_or_init(|| {
        let mut found = open_or_format(MemDisk::new(512));
        let SrRepo::Open(sr) = &mut found.repo else {
            panic!("SR");
        };
        for v in VDIS {
            sr.create(v, 256 * 1024).expect("VDI");
        }
        sr.flush().expect("flush");
        let SrRepo::Open(sr) = found.repo else {
            panic!("SR");
        };
        sr.into_dev()
    });
    let mut repo = open_or_format(disk.clone()).repo;
    let mut pf = Fake::default();
    let mut b: Vbds<Fake> = Vbds::new(BASE, 2);
    b.start(&mut pf);
    // Each guest's blkfronts (one per queue), kept to push whole slots.
    let mut fronts: BTreeMap<u16, Vec<Blkfront<Page>>> = BTreeMap::new();
    while let Some(op) = input.byte() {
        let d = u16::from(op >> 5) % 3 + 2;
        let back = format!("{BASE}/{d}/0");
        let front = format!("/local/domain/{d}/device/vbd/0");
        let token = format!("vbd-front/{d}/0");
        match op % 14 {
            0 => {
                let mode = if op & 16 != 0 { "r" } else { "w" };
                plug(
                    &mut pf,
                    BASE,
                    d,
                    0,
                    &uuid_text(&VDIS[usize::from(op & 1)]),
                    mode,
                );
                b.on_watch(&mut pf, &repo, &back, "vbd-backends");
            }
            1 => {
                let Some(k) = input.byte() else { break };
                let Some(v) = input.bytes(40) else { break };
                let key = BACK_KEYS[usize::from(k) % BACK_KEYS.len()];
                pf.xs.insert(format!("{back}/{key}"), v);
                b.on_watch(&mut pf, &repo, &format!("{back}/{key}"), "vbd-backends");
            }
            2 => {
                let Some(k) = input.byte() else { break };
                let Some(v) = input.bytes(12) else { break };
                let key = FRONT_KEYS[usize::from(k) % FRONT_KEYS.len()];
                pf.xs.insert(format!("{front}/{key}"), v);
                b.on_watch(&mut pf, &repo, &format!("{front}/state"), &token);
            }
            3 => {
                // A well-behaved frontend connects: fresh rings, its keys,
                // Initialised then Connected.
                let Some(shape) = input.byte() else { break };
                let order = u32::from(shape & 3);
                let queues = u32::from((shape >> 2) & 3) + 1;
                let pages = 1u32 << order;
                let mut fs = Vec::new();
                for q in 0..queues {
                    let page = Page(Rc::new(MemPages::new(pages as usize)));
                    let grefs: Vec<u32> = (0..pages).map(|i| 10 + q * pages + i).collect();
                    pf.rings.insert((d, grefs), page.clone());
                    if let Ok(f) = Blkfront::new(page) {
                        fs.push(f);
                    }
                }
                fronts.insert(d, fs);
                for (k, v) in frontend_keys(order, queues, 10, 7) {
                    pf.xs.insert(format!("{front}/{k}"), v);
                }
                for s in [b"3".as_slice(), b"4"] {
                    pf.xs.insert(format!("{front}/state"), s.to_vec());
                    b.on_watch(&mut pf, &repo, &format!("{front}/state"), &token);
                }
            }
            4 => {
                // Ring bytes: the frontend writes anything anywhere.
                let Some(at) = input.byte() else { break };
                let Some(v) = input.bytes(64) else { break };
                if let Some((_, p)) = pf.rings.iter().find(|((dd, _), _)| *dd == d) {
                    p.0.poke(usize::from(at) * 16, &v);
                }
            }
            5 => {
                // Whole request slots from the fuzzer, pushed properly.
                let Some(q) = input.byte() else { break };
                let Some(n) = input.byte() else { break };
                let mut reqs = Vec::new();
                for _ in 0..(n % 8) {
                    let Some(v) = input.bytes(112) else { break };
                    let mut slot = [0u8; 112];
                    slot[..v.len()].copy_from_slice(&v);
                    reqs.push(Request::from_bytes(slot));
                }
                if let Some(fs) = fronts.get_mut(&d) {
                    let len = fs.len().max(1);
                    if let Some(f) = fs.get_mut(usize::from(q) % len) {
                        let _ = f.send(&reqs);
                        let _ = f.responses();
                    }
                }
                for p in pf.bound.clone().into_keys() {
                    b.on_port(p);
                }
            }
            6 => {
                let Some(gref) = input.byte() else { break };
                let Some(v) = input.bytes(200) else { break };
                pf.grants.grant(d, u32::from(gref), 0, &v);
            }
            7 => {
                let Some(p) = input.byte() else { break };
                b.on_port(u32::from(p) % 16);
            }
            8 | 9 => {
                b.turn(&mut pf, &mut repo);
            }
            10 => {
                pf.xs.retain(|k, _| !k.starts_with(&back));
                b.on_watch(&mut pf, &repo, &back, "vbd-backends");
            }
            11 => b.on_watch(&mut pf, &repo, BASE, "vbd-backends"),
            12 => {
                pf.xs.insert(format!("{back}/online"), b"0".to_vec());
                b.on_watch(&mut pf, &repo, &format!("{back}/online"), "vbd-backends");
            }
            _ => {
                let Some(s) = input.byte() else { break };
                pf.xs
                    .insert(format!("{front}/state"), format!("{}", s % 9).into_bytes());
                b.on_watch(&mut pf, &repo, &format!("{front}/state"), &token);
            }
        }
        // A VBD the board let go holds nothing.
        let held = b.reports().len();
        assert!(*pf.mapped.borrow() <= 4 * held, "mappings of VBDs let go");
        assert!(pf.bound.len() <= 4 * held, "channels of VBDs let go");
        assert!(held <= xcp_blkback::MAX_VBDS);
    }
    // The guests stop: the board goes idle.
    let mut turns = 0;
    while b.turn(&mut pf, &mut repo) {
        turns += 1;
        assert!(turns < 64, "the board never goes idle");
    }
});

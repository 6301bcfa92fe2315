//! The VBD board over a fake xenstore, fake grants and scripted blkfronts,
//! against the real SR on an in-memory disk: the toolstack's directory
//! brings a VBD up, writes, reads, flushes and discards reach the VDI (a
//! flush makes them durable), bad directories are refused, a read-only
//! VBD refuses writes, `online = 0` closes, removal lets everything go, a
//! hostile ring disconnects only its VBD, one busy guest cannot hold the
//! loop, and a restarted stordom takes a connected frontend over.

use std::rc::Rc;

use proptest::prelude::*;
use xcp_blkback::fake::{frontend_keys, Blkfront, MemPages};
use xcp_blkback::wire::{
    RawSegment, Request, Response, BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_READ, BLKIF_OP_WRITE,
    BLKIF_RSP_ERROR, BLKIF_RSP_OKAY, PAGE_SIZE, VDISK_READONLY,
};
use xcp_blkback::{Fault, State, MAX_VBDS};
use xcp_sr::fake::MemDisk;
use xcp_storwire::uuid::uuid_text;
use xcp_storwire::Uuid;

use crate::repo::{open_or_format, SrRepo};
use crate::vbds::fake::{plug, Fake, Page};
use crate::vbds::{Disks, Vbds};

const BASE: &str = "/local/domain/1/backend/vbd";
const VDI: Uuid = [7; 16];
const VDI_SIZE: u64 = 8 << 20;

type Repo = SrRepo<MemDisk>;

/// An SR on a 16 MiB disk with one 8 MiB VDI.
fn repo() -> Repo {
    let mut found = open_or_format(MemDisk::new(4096));
    let SrRepo::Open(sr) = &mut found.repo else {
        panic!("SR")
    };
    sr.create(VDI, VDI_SIZE).expect("VDI");
    sr.flush().expect("flush");
    found.repo
}

fn board(pf: &mut Fake) -> Vbds<Fake> {
    let mut b = Vbds::new(BASE, 2);
    assert!(b.start(pf));
    b
}

fn backend(d: u16, n: u32) -> String {
    format!("{BASE}/{d}/{n}")
}

fn frontend(d: u16, n: u32) -> String {
    format!("/local/domain/{d}/device/vbd/{n}")
}

fn xs(pf: &Fake, path: &str) -> Option<String> {
    pf.xs
        .get(path)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// The toolstack's directory for `vdi`, announced to the board.
fn plug_vbd(b: &mut Vbds<Fake>, pf: &mut Fake, r: &Repo, d: u16, n: u32, vdi: &Uuid, mode: &str) {
    plug(pf, BASE, d, n, &uuid_text(vdi), mode);
    b.on_watch(pf, r, &backend(d, n), "vbd-backends");
}

/// A guest's blkfront: queue q's ring on grants 10 + q × pages.., data
/// pages on 100...
struct Guest {
    d: u16,
    fronts: Vec<Blkfront<Page>>,
    next_id: u64,
}

fn connect_queues(
    b: &mut Vbds<Fake>,
    pf: &mut Fake,
    r: &Repo,
    d: u16,
    n: u32,
    order: u32,
    queues: u32,
) -> Guest {
    let pages = 1u32 << order;
    let mut fronts = Vec::new();
    for q in 0..queues {
        let page = Page(Rc::new(MemPages::new(pages as usize)));
        let grefs: Vec<u32> = (0..pages).map(|i| 10 + q * pages + i).collect();
        pf.rings.insert((d, grefs), page.clone());
        fronts.push(Blkfront::new(page).expect("ring"));
    }
    let dir = frontend(d, n);
    for (k, v) in frontend_keys(order, queues, 10, 7) {
        pf.xs.insert(format!("{dir}/{k}"), v);
    }
    pf.xs.insert(format!("{dir}/state"), b"3".to_vec());
    b.on_watch(
        pf,
        r,
        &format!("{dir}/state"),
        &format!("vbd-front/{d}/{n}"),
    );
    assert_eq!(
        xs(pf, &format!("{}/state", backend(d, n))).as_deref(),
        Some("4")
    );
    pf.xs.insert(format!("{dir}/state"), b"4".to_vec());
    b.on_watch(
        pf,
        r,
        &format!("{dir}/state"),
        &format!("vbd-front/{d}/{n}"),
    );
    Guest {
        d,
        fronts,
        next_id: 0,
    }
}

fn connect(b: &mut Vbds<Fake>, pf: &mut Fake, r: &Repo, d: u16, n: u32) -> Guest {
    connect_queues(b, pf, r, d, n, 0, 1)
}

/// Our port bound to guest `d`'s port `remote`.
fn port_of(pf: &Fake, d: u16, remote: u32) -> u32 {
    pf.bound
        .iter()
        .find(|(_, &v)| v == (d, remote))
        .map(|(&p, _)| p)
        .expect("bound")
}

impl Guest {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Pushes `reqs` on queue `q` and kicks the board.
    fn send_on(&mut self, b: &mut Vbds<Fake>, pf: &Fake, q: usize, reqs: &[Request]) {
        self.fronts[q].send(reqs).expect("room");
        b.on_port(port_of(pf, self.d, 7 + q as u32));
    }

    fn send(&mut self, b: &mut Vbds<Fake>, pf: &Fake, reqs: &[Request]) {
        self.send_on(b, pf, 0, reqs)
    }

    fn responses(&mut self) -> Vec<Response> {
        self.fronts[0].responses().expect("ring")
    }

    /// Writes `data` (whole sectors, ≤ 11 pages) at `sector` through data
    /// pages from `gref` on; its response.
    fn write(
        &mut self,
        b: &mut Vbds<Fake>,
        pf: &mut Fake,
        r: &mut Repo,
        sector: u64,
        data: &[u8],
        gref: u32,
    ) -> Response {
        let segs = self.grant(pf, data, gref);
        let id = self.id();
        self.send(
            b,
            pf,
            &[Request::direct(BLKIF_OP_WRITE, 0, id, sector, &segs)],
        );
        while b.turn(pf, r) {}
        let rsps = self.responses();
        assert_eq!(rsps.len(), 1, "{rsps:?}");
        assert_eq!(rsps[0].id, id);
        rsps[0]
    }

    /// Reads `len` bytes at `sector` into fresh pages from `gref` on.
    fn read(
        &mut self,
        b: &mut Vbds<Fake>,
        pf: &mut Fake,
        r: &mut Repo,
        sector: u64,
        len: usize,
        gref: u32,
    ) -> (Response, Vec<u8>) {
        let segs = self.grant(pf, &vec![0xee; len], gref);
        let id = self.id();
        self.send(
            b,
            pf,
            &[Request::direct(BLKIF_OP_READ, 0, id, sector, &segs)],
        );
        while b.turn(pf, r) {}
        let rsps = self.responses();
        assert_eq!(rsps.len(), 1, "{rsps:?}");
        let mut out = Vec::new();
        for s in &segs {
            let page = pf.grants.page(self.d, s.gref).expect("granted");
            out.extend_from_slice(&page[usize::from(s.first_sect) * 512..][..len.min(PAGE_SIZE)]);
        }
        out.truncate(len);
        (rsps[0], out)
    }

    /// Grants `data` in whole pages from `gref` on; the segments.
    fn grant(&self, pf: &mut Fake, data: &[u8], gref: u32) -> Vec<RawSegment> {
        data.chunks(PAGE_SIZE)
            .enumerate()
            .map(|(i, c)| {
                let g = gref + i as u32;
                pf.grants.grant(self.d, g, 0, c);
                RawSegment {
                    gref: g,
                    first_sect: 0,
                    last_sect: (c.len() / 512 - 1) as u8,
                }
            })
            .collect()
    }

    fn simple(&mut self, b: &mut Vbds<Fake>, pf: &mut Fake, r: &mut Repo, req: Request) -> i16 {
        self.send(b, pf, &[req]);
        while b.turn(pf, r) {}
        let rsps = self.responses();
        assert_eq!(rsps.len(), 1, "{rsps:?}");
        assert_eq!(rsps[0].id, req.id());
        rsps[0].status
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

fn vdi_bytes(r: &mut Repo, sector: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    assert_eq!(r.read(VDI, sector, &mut buf), xcp_blkback::IoStatus::Ok);
    buf
}

/// The SR as a fresh stordom would find it on the disk now (what a
/// power cut keeps: MemDisk writes are durable at once, so only the SR's
/// commits decide).
fn reopened(r: &Repo) -> Repo {
    let SrRepo::Open(sr) = r else { panic!("SR") };
    let found = open_or_format(sr.dev().clone());
    assert!(!found.formatted);
    found.repo
}

#[test]
fn a_vbd_comes_up_and_serves_writes_reads_flushes_and_discards() {
    let (mut pf, mut r) = (Fake::default(), repo());
    let mut b = board(&mut pf);
    plug_vbd(&mut b, &mut pf, &r, 5, 51712, &VDI, "w");
    let back = backend(5, 51712);
    assert_eq!(xs(&pf, &format!("{back}/state")).as_deref(), Some("2"));
    assert_eq!(
        xs(&pf, &format!("{back}/feature-flush-cache")).as_deref(),
        Some("1")
    );
    let mut g = connect(&mut b, &mut pf, &r, 5, 51712);
    assert_eq!(
        xs(&pf, &format!("{back}/sectors")),
        Some(format!("{}", VDI_SIZE / 512))
    );
    assert_eq!(xs(&pf, &format!("{back}/info")).as_deref(), Some("0"));
    assert_eq!(*pf.mapped.borrow(), 1);

    let data = pattern(3 * PAGE_SIZE, 1);
    assert_eq!(
        g.write(&mut b, &mut pf, &mut r, 64, &data, 100).status,
        BLKIF_RSP_OKAY
    );
    assert_eq!(vdi_bytes(&mut r, 64, data.len()), data, "on the VDI");
    // Not committed yet: a stordom dying now would lose it.
    assert_eq!(
        vdi_bytes(&mut reopened(&r), 64, data.len()),
        vec![0; data.len()]
    );
    let (rsp, back_data) = g.read(&mut b, &mut pf, &mut r, 64, data.len(), 200);
    assert_eq!(rsp.status, BLKIF_RSP_OKAY);
    assert_eq!(back_data, data, "read back through the guest's pages");

    // The guest's fsync: now it survives.
    let id = g.id();
    let flush = Request::direct(BLKIF_OP_FLUSH_DISKCACHE, 0, id, 0, &[]);
    assert_eq!(g.simple(&mut b, &mut pf, &mut r, flush), BLKIF_RSP_OKAY);
    assert_eq!(vdi_bytes(&mut reopened(&r), 64, data.len()), data);

    let id = g.id();
    let discard = Request::discard(0, id, 64, 8, 0);
    assert_eq!(g.simple(&mut b, &mut pf, &mut r, discard), BLKIF_RSP_OKAY);
    let left = vdi_bytes(&mut r, 64, data.len());
    assert_eq!(&left[..4096], &[0; 4096][..], "discarded");
    assert_eq!(&left[4096..], &data[4096..], "the rest kept");

    // Past the VDI's end: an error answer, the VBD stays up.
    let (rsp, _) = g.read(&mut b, &mut pf, &mut r, VDI_SIZE / 512 - 4, 4096, 300);
    assert_eq!(rsp.status, BLKIF_RSP_ERROR);
    let rep = &b.reports()[0];
    assert_eq!(rep.state, State::Connected);
    assert_eq!(
        (rep.stats.writes, rep.stats.reads, rep.stats.discards),
        (1, 1, 1)
    );
    assert!(!pf.kicks.is_empty());
}

#[test]
fn a_barrier_write_with_data_is_durable_when_answered() {
    let (mut pf, mut r) = (Fake::default(), repo());
    let mut b = board(&mut pf);
    plug_vbd(&mut b, &mut pf, &r, 5, 1, &VDI, "w");
    let mut g = connect(&mut b, &mut pf, &r, 5, 1);
    let data = pattern(PAGE_SIZE, 9);
    let segs = g.grant(&mut pf, &data, 100);
    let id = g.id();
    let req = Request::direct(BLKIF_OP_FLUSH_DISKCACHE, 0, id, 8, &segs);
    assert_eq!(g.simple(&mut b, &mut pf, &mut r, req), BLKIF_RSP_OKAY);
    assert_eq!(vdi_bytes(&mut reopened(&r), 8, data.len()), data);
}

#[test]
fn an_indirect_read_is_fetched_and_served() {
    let (mut pf, mut r) = (Fake::default(), repo());
    let mut b = board(&mut pf);
    plug_vbd(&mut b, &mut pf, &r, 5, 1, &VDI, "w");
    let mut g = connect(&mut b, &mut pf, &r, 5, 1);
    let data = pattern(16 * PAGE_SIZE, 3);
    assert_eq!(r.write(VDI, 800, &data), xcp_blkback::IoStatus::Ok);
    let segs = g.grant(&mut pf, &vec![0; data.len()], 100);
    let list: Vec<u8> = segs.iter().flat_map(|s| s.encode()).collect();
    pf.grants.grant(5, 90, 0, &list);
    let id = g.id();
    let req = Request::indirect(BLKIF_OP_READ, 16, 0, id, 800, &[90]);
    assert_eq!(g.simple(&mut b, &mut pf, &mut r, req), BLKIF_RSP_OKAY);
    let got: Vec<u8> = segs
        .iter()
        .flat_map(|s| pf.grants.page(5, s.gref).expect("page").to_vec())
        .collect();
    assert_eq!(got, data);
}

#[test]
fn directories_stordom_cannot_serve_are_refused_once() {
    let (mut pf, r) = (Fake::default(), repo());
    let mut b = board(&mut pf);
    // No such VDI.
    plug_vbd(&mut b, &mut pf, &r, 5, 1, &[9; 16], "w");
    let back = backend(5, 1);
    assert_eq!(xs(&pf, &format!("{back}/state")).as_deref(), Some("6"));
    let why = xs(&pf, &format!("{back}/hotplug-error")).expect("hotplug-error");
    assert!(why.contains("does not exist"), "{why}");
    // Our own writes fire the watch: not refused again.
    b.on_watch(
        &mut pf,
        &r,
        &format!("{back}/hotplug-error"),
        "vbd-backends",
    );
    b.on_watch(&mut pf, &r, &format!("{back}/state"), "vbd-backends");
    assert_eq!(b.counters.refused, 1);
    // Garbage params, a bad mode, a lying frontend-id, a wrong type.
    for (n, key, value, what) in [
        (2, "params", "not-a-uuid", "uuid"),
        (3, "mode", "rw", "mode"),
        (4, "frontend-id", "6", "frontend-id"),
        (5, "type", "phy", "type"),
        (6, "params", "", "medium"),
    ] {
        plug(&mut pf, BASE, 5, n, &uuid_text(&VDI), "w");
        pf.xs.insert(
            format!("{}/{key}", backend(5, n)),
            value.as_bytes().to_vec(),
        );
        b.on_watch(&mut pf, &r, &backend(5, n), "vbd-backends");
        let why = xs(&pf, &format!("{}/hotplug-error", backend(5, n))).expect("refused");
        assert!(why.contains(what), "{why}");
    }
    assert_eq!(b.counters.refused, 6);
    assert_eq!(b.counters.created, 0);
    assert!(pf.bound.is_empty());
    // Made again by dom0 (the directory node fires), right this time:
    // served.
    let n6 = backend(5, 6);
    pf.xs
        .insert(format!("{n6}/params"), uuid_text(&VDI).into_bytes());
    b.on_watch(&mut pf, &r, &n6, "vbd-backends");
    assert_eq!(xs(&pf, &format!("{n6}/state")).as_deref(), Some("2"));
    assert_eq!(b.counters.created, 1);
    // Removed and written again, right this time: served.
    pf.xs.retain(|k, _| !k.starts_with(&back));
    b.on_watch(&mut pf, &r, &back, "vbd-backends");
    plug_vbd(&mut b, &mut pf, &r, 5, 1, &VDI, "w");
    assert_eq!(b.counters.created, 2);
    assert_eq!(xs(&pf, &format!("{back}/state")).as_deref(), Some("2"));
}

#[test]
fn no_more_than_max_vbds_are_served() {
    let (mut pf, r) = (Fake::default(), repo());
    let mut b = board(&mut pf);
    for n in 0..=MAX_VBDS as u32 {
        plug_vbd(&mut b, &mut pf, &r, 5, n, &VDI, "r");
    }
    assert_eq!(b.counters.created, MAX_VBDS as u64);
    assert_eq!(b.counters.refused, 1);
    let last = backend(5, MAX_VBDS as u32);
    assert!(xs(&pf, &format!("{last}/hotplug-error")).is_some());
    assert_eq!(xs(&pf, &format!("{last}/state")).as_deref(), Some("6"));
}

#[test]
fn a_read_only_vbd_refuses_writes_and_serves_reads() {
    let (mut pf, mut r) = (Fake::default(), repo());
    let data = pattern(PAGE_SIZE, 4);
    assert_eq!(r.write(VDI, 0, &data), xcp_blkback::IoStatus::Ok);
    // A snapshot is read-only whatever the mode.
    let SrRepo::Open(sr) = &mut r else { panic!() };
    sr.snapshot(VDI, [8; 16]).expect("snapshot");
    let mut b = board(&mut pf);
    plug_vbd(&mut b, &mut pf, &r, 5, 1, &VDI, "r");
    plug_vbd(&mut b, &mut pf, &r, 6, 1, &[8; 16], "w");
    for d in [5, 6] {
        let mut g = connect(&mut b, &mut pf, &r, d, 1);
        let info: u32 = xs(&pf, &format!("{}/info", backend(d, 1)))
            .and_then(|s| s.parse().ok())
            .expect("info");
        assert_ne!(info & VDISK_READONLY, 0);
        let rsp = g.write(&mut b, &mut pf, &mut r, 0, &pattern(PAGE_SIZE, 5), 100);
        assert_eq!(rsp.status, BLKIF_RSP_ERROR);
        let (rsp, got) = g.read(&mut b, &mut pf, &mut r, 0, PAGE_SIZE, 200);
        assert_eq!(rsp.status, BLKIF_RSP_OKAY);
        assert_eq!(got, data);
    }
    assert_eq!(vdi_bytes(&mut r, 0, PAGE_SIZE), data, "untouched");
}

#[test]
fn online_zero_closes_cleanly() {
    let (mut pf, r) = (Fake::default(), repo());
    let mut b = board(&mut pf);
    plug_vbd(&mut b, &mut pf, &r, 5, 1, &VDI, "w");
    let _g = connect(&mut b, &mut pf, &r, 5, 1);
    let back = backend(5, 1);
    pf.xs.insert(format!("{back}/online"), b"0".to_vec());
    pf.xs.insert(format!("{back}/state"), b"5".to_vec());
    b.on_watch(&mut pf, &r, &format!("{back}/online"), "vbd-backends");
    assert_eq!(xs(&pf, &format!("{back}/state")).as_deref(), Some("5"));
    assert_eq!(*pf.mapped.borrow(), 0, "ring unmapped");
    assert!(pf.bound.is_empty(), "channel closed");
    assert!(b.ports().next().is_none());
    // The frontend closes: the backend is Closed.
    pf.xs
        .insert(format!("{}/state", frontend(5, 1)), b"6".to_vec());
    b.on_watch(
        &mut pf,
        &r,
        &format!("{}/state", frontend(5, 1)),
        "vbd-front/5/1",
    );
    assert_eq!(xs(&pf, &format!("{back}/state")).as_deref(), Some("6"));
}

#[test]
fn a_guest_that_closes_and_starts_again_is_served_again() {
    let (mut pf, mut r) = (Fake::default(), repo());
    let mut b = board(&mut pf);
    plug_vbd(&mut b, &mut pf, &r, 5, 1, &VDI, "w");
    let _old = connect(&mut b, &mut pf, &r, 5, 1);
    let (back, front) = (backend(5, 1), frontend(5, 1));
    // A guest rebooting its kernel: Closing, Closed, Initialising.
    for (front_state, back_state) in [("5", "5"), ("6", "6"), ("1", "2")] {
        pf.xs.insert(format!("{front}/state"), front_state.into());
        b.on_watch(&mut pf, &r, &format!("{front}/state"), "vbd-front/5/1");
        assert_eq!(
            xs(&pf, &format!("{back}/state")).as_deref(),
            Some(back_state)
        );
    }
    assert_eq!(*pf.mapped.borrow(), 0);
    assert!(pf.bound.is_empty());
    // It connects again on fresh rings.
    pf.rings.clear();
    let mut g = connect(&mut b, &mut pf, &r, 5, 1);
    assert_eq!((*pf.mapped.borrow(), pf.bound.len()), (1, 1));
    let data = pattern(PAGE_SIZE, 11);
    assert_eq!(
        g.write(&mut b, &mut pf, &mut r, 0, &data, 100).status,
        BLKIF_RSP_OKAY
    );
    assert_eq!(vdi_bytes(&mut r, 0, PAGE_SIZE), data);
}

#[test]
fn an_unusable_sr_serves_no_vbd() {
    let (mut pf, r) = (Fake::default(), SrRepo::Unusable(String::from("broken")));
    let mut b = board(&mut pf);
    plug_vbd(&mut b, &mut pf, &r, 5, 1, &VDI, "w");
    assert_eq!(b.counters.refused, 1);
    assert_eq!(
        xs(&pf, &format!("{}/state", backend(5, 1))).as_deref(),
        Some("6")
    );
}

#[test]
fn a_removed_directory_lets_everything_go() {
    let (mut pf, r) = (Fake::default(), repo());
    let mut b = board(&mut pf);
    plug_vbd(&mut b, &mut pf, &r, 5, 1, &VDI, "w");
    let _g = connect(&mut b, &mut pf, &r, 5, 1);
    assert_eq!(pf.watches.len(), 2);
    let back = backend(5, 1);
    pf.xs.retain(|k, _| !k.starts_with(&back));
    b.on_watch(&mut pf, &r, &back, "vbd-backends");
    assert_eq!(*pf.mapped.borrow(), 0);
    assert!(pf.bound.is_empty());
    assert_eq!(pf.watches.len(), 1, "only the base is watched");
    assert!(
        pf.xs.keys().all(|k| !k.starts_with(&back)),
        "nothing written back"
    );
    assert_eq!(b.counters.removed, 1);
    assert!(b.reports().is_empty());
}

#[test]
fn garbage_on_one_ring_disconnects_that_vbd_only() {
    let (mut pf, mut r) = (Fake::default(), repo());
    let mut b = board(&mut pf);
    plug_vbd(&mut b, &mut pf, &r, 5, 1, &VDI, "w");
    let mut other_vdi = [0u8; 16];
    other_vdi[0] = 3;
    let SrRepo::Open(sr) = &mut r else { panic!() };
    sr.create(other_vdi, 1 << 20).expect("VDI");
    plug_vbd(&mut b, &mut pf, &r, 6, 1, &other_vdi, "w");
    let mut bad = connect(&mut b, &mut pf, &r, 5, 1);
    let mut good = connect(&mut b, &mut pf, &r, 6, 1);
    // req_prod far past the ring: nonsense indexes.
    let ring = pf.rings.get(&(5, vec![10])).expect("ring").clone();
    ring.0.poke(0, &1000u32.to_le_bytes());
    b.on_port(port_of(&pf, 5, 7));
    let data = pattern(2 * PAGE_SIZE, 6);
    assert_eq!(
        good.write(&mut b, &mut pf, &mut r, 16, &data, 100).status,
        BLKIF_RSP_OKAY
    );
    let (rsp, got) = good.read(&mut b, &mut pf, &mut r, 16, data.len(), 200);
    assert_eq!((rsp.status, got), (BLKIF_RSP_OKAY, data));
    let reports = b.reports();
    assert!(
        matches!(reports[0].state, State::Disconnected(Fault::Ring(0, _))),
        "{:?}",
        reports[0].state
    );
    assert_eq!(reports[1].state, State::Connected);
    let back = backend(5, 1);
    assert_eq!(xs(&pf, &format!("{back}/state")).as_deref(), Some("5"));
    assert!(xs(&pf, &format!("{back}/error")).is_some());
    assert_eq!(*pf.mapped.borrow(), 1, "only the good ring mapped");
    assert!(bad.responses().is_empty());
}

#[test]
fn a_busy_guest_cannot_hold_the_loop() {
    let (mut pf, mut r) = (Fake::default(), repo());
    let mut b = board(&mut pf);
    plug_vbd(&mut b, &mut pf, &r, 5, 1, &VDI, "w");
    plug_vbd(&mut b, &mut pf, &r, 6, 1, &VDI, "r");
    // 128-slot rings.
    let mut busy = connect_queues(&mut b, &mut pf, &r, 5, 1, 2, 1);
    let mut quiet = connect_queues(&mut b, &mut pf, &r, 6, 1, 2, 1);
    pf.grants.grant(5, 100, 0, &[]);
    pf.grants.grant(6, 100, 0, &[]);
    let seg = [RawSegment {
        gref: 100,
        first_sect: 0,
        last_sect: 0,
    }];
    let reads: Vec<Request> = (0..100)
        .map(|i| Request::direct(BLKIF_OP_READ, 0, i, i, &seg))
        .collect();
    busy.send(&mut b, &pf, &reads);
    quiet.send(
        &mut b,
        &pf,
        &[Request::direct(BLKIF_OP_READ, 0, 1, 0, &seg)],
    );
    assert!(
        b.turn(&mut pf, &mut r),
        "the busy guest waits for more turns"
    );
    assert_eq!(
        quiet.responses().len(),
        1,
        "the quiet guest served in the first turn"
    );
    let first = busy.responses().len();
    assert!(first < 100 && first > 0, "{first}");
    let mut turns = 1;
    while b.turn(&mut pf, &mut r) {
        turns += 1;
    }
    assert_eq!(first + busy.responses().len(), 100);
    assert!(turns >= 3, "{turns}");
}

#[test]
fn every_queue_of_a_multi_queue_vbd_is_served() {
    let (mut pf, mut r) = (Fake::default(), repo());
    let mut b = board(&mut pf);
    plug_vbd(&mut b, &mut pf, &r, 5, 1, &VDI, "w");
    let mut g = connect_queues(&mut b, &mut pf, &r, 5, 1, 1, 3);
    assert_eq!(*pf.mapped.borrow(), 3);
    for q in 0..3 {
        let data = pattern(PAGE_SIZE, q as u8);
        let segs = g.grant(&mut pf, &data, 100 + q as u32);
        g.send_on(
            &mut b,
            &pf,
            q,
            &[Request::direct(BLKIF_OP_WRITE, 0, 1, 8 * q as u64, &segs)],
        );
    }
    while b.turn(&mut pf, &mut r) {}
    for q in 0..3 {
        let rsps = g.fronts[q].responses().expect("ring");
        assert_eq!(rsps.len(), 1);
        assert_eq!(rsps[0].status, BLKIF_RSP_OKAY);
        assert_eq!(
            vdi_bytes(&mut r, 8 * q as u64, PAGE_SIZE),
            pattern(PAGE_SIZE, q as u8)
        );
    }
}

#[test]
fn a_restarted_stordom_takes_a_connected_frontend_over() {
    let (mut pf, mut r) = (Fake::default(), repo());
    let mut b = board(&mut pf);
    plug_vbd(&mut b, &mut pf, &r, 5, 1, &VDI, "w");
    let mut g = connect(&mut b, &mut pf, &r, 5, 1);
    let data = pattern(PAGE_SIZE, 2);
    for _ in 0..5 {
        assert_eq!(
            g.write(&mut b, &mut pf, &mut r, 0, &data, 100).status,
            BLKIF_RSP_OKAY
        );
    }
    // A request the old stordom never took, then it dies.
    let id = g.id();
    let segs = g.grant(&mut pf, &pattern(PAGE_SIZE, 8), 101);
    g.fronts[0]
        .send(&[Request::direct(BLKIF_OP_WRITE, 0, id, 8, &segs)])
        .expect("room");
    drop(b);
    let mut pf2 = Fake {
        xs: pf.xs.clone(),
        rings: pf.rings.clone(),
        grants: std::mem::take(&mut pf.grants),
        ..Fake::default()
    };
    // The new stordom: the directory is there, the frontend Connected.
    let mut b = board(&mut pf2);
    b.on_watch(&mut pf2, &r, BASE, "vbd-backends");
    b.on_watch(
        &mut pf2,
        &r,
        &format!("{}/state", frontend(5, 1)),
        "vbd-front/5/1",
    );
    assert_eq!(b.reports()[0].state, State::Connected);
    assert_eq!(
        xs(&pf2, &format!("{}/state", backend(5, 1))).as_deref(),
        Some("4")
    );
    // It resumes after the last answer and takes the waiting request.
    while b.turn(&mut pf2, &mut r) {}
    let rsps = g.responses();
    assert_eq!(rsps.len(), 1, "{rsps:?}");
    assert_eq!((rsps[0].id, rsps[0].status), (id, BLKIF_RSP_OKAY));
    assert_eq!(vdi_bytes(&mut r, 8, PAGE_SIZE), pattern(PAGE_SIZE, 8));
    let rsp = g.write(&mut b, &mut pf2, &mut r, 16, &data, 102);
    assert_eq!(rsp.status, BLKIF_RSP_OKAY);
}

#[test]
fn a_failed_bind_closes_rather_than_serving_a_deaf_queue() {
    let (mut pf, r) = (Fake::default(), repo());
    let mut b = board(&mut pf);
    plug_vbd(&mut b, &mut pf, &r, 5, 1, &VDI, "w");
    pf.refuse_binds = true;
    let page = Page(Rc::new(MemPages::new(1)));
    pf.rings.insert((5, vec![10]), page.clone());
    let _front = Blkfront::new(page).expect("ring");
    let dir = frontend(5, 1);
    for (k, v) in frontend_keys(0, 1, 10, 7) {
        pf.xs.insert(format!("{dir}/{k}"), v);
    }
    pf.xs.insert(format!("{dir}/state"), b"4".to_vec());
    b.on_watch(&mut pf, &r, &format!("{dir}/state"), "vbd-front/5/1");
    assert_ne!(b.reports()[0].state, State::Connected);
    assert_eq!(*pf.mapped.borrow(), 0);
    assert_eq!(
        xs(&pf, &format!("{}/state", backend(5, 1))).as_deref(),
        Some("5")
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Any sequence of writes, discards and flushes through the board
    /// leaves the VDI as a plain model of it says, and reads back so.
    #[test]
    fn the_vdi_follows_a_model(ops in proptest::collection::vec(
        (0u8..3, 0u64..(VDI_SIZE / 512 - 24), 1usize..4, any::<u8>()), 1..12)) {
        let (mut pf, mut r) = (Fake::default(), repo());
        let mut b = board(&mut pf);
        plug_vbd(&mut b, &mut pf, &r, 5, 1, &VDI, "w");
        let mut g = connect(&mut b, &mut pf, &r, 5, 1);
        let mut model = vec![0u8; VDI_SIZE as usize];
        for (kind, sector, pages, seed) in ops {
            let at = sector as usize * 512;
            let len = pages * PAGE_SIZE;
            match kind {
                0 => {
                    let data = pattern(len, seed);
                    prop_assert_eq!(g.write(&mut b, &mut pf, &mut r, sector, &data, 100).status, BLKIF_RSP_OKAY);
                    model[at..at + len].copy_from_slice(&data);
                }
                1 => {
                    let id = g.id();
                    let req = Request::discard(0, id, sector, (len / 512) as u64, 0);
                    prop_assert_eq!(g.simple(&mut b, &mut pf, &mut r, req), BLKIF_RSP_OKAY);
                    model[at..at + len].fill(0);
                }
                _ => {
                    let id = g.id();
                    let req = Request::direct(BLKIF_OP_FLUSH_DISKCACHE, 0, id, 0, &[]);
                    prop_assert_eq!(g.simple(&mut b, &mut pf, &mut r, req), BLKIF_RSP_OKAY);
                }
            }
            let (rsp, got) = g.read(&mut b, &mut pf, &mut r, sector, len, 200);
            prop_assert_eq!(rsp.status, BLKIF_RSP_OKAY);
            prop_assert_eq!(&got[..], &model[at..at + len]);
        }
    }
}

//! Shared helpers: a scripted blkfront over `MemPages`, a handshake driver
//! and a board that runs work against an in-memory disk.
#![allow(dead_code, reason = "each test binary uses a subset")]

use xcp_blkback::fake::{frontend_keys, lookup, run, Blkfront, FakeGrants, MemDisk, MemPages};
use xcp_blkback::wire::{RawSegment, Request, Response, PAGE_SIZE};
use xcp_blkback::{
    Action, Config, DeviceType, DiskInfo, Features, IoStatus, State, Vbd, Work, XenbusState,
};

pub const DOMID: u16 = 7;
pub const SECTORS: u64 = 1024;
/// Ring grants start here (queue q page i: RING_GREF + q × pages + i).
pub const RING_GREF: u32 = 100;
/// Data pages the tests grant start here.
pub const DATA_GREF: u32 = 1000;
pub const PORT: u32 = 20;

pub type TestVbd<'a> = Vbd<&'a MemPages>;
pub type Front<'a> = Blkfront<&'a MemPages>;

pub fn disk(readonly: bool) -> DiskInfo {
    DiskInfo {
        sectors: SECTORS,
        readonly,
        device_type: DeviceType::Disk,
    }
}

pub fn config() -> Config {
    Config {
        frontend_domid: DOMID,
        features: Features::default(),
        disk: disk(false),
    }
}

pub fn drain<'a>(vbd: &mut TestVbd<'a>) -> Vec<Action<&'a MemPages>> {
    let mut out = Vec::new();
    while let Some(a) = vbd.poll_action() {
        out.push(a);
    }
    out
}

/// The keys asked for by the only ReadFrontendKeys in `acts`.
pub fn keys_asked(acts: &[Action<&MemPages>]) -> Vec<String> {
    let asked: Vec<_> = acts
        .iter()
        .filter_map(|a| match a {
            Action::ReadFrontendKeys(k) => Some(k.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(asked.len(), 1, "{acts:?}");
    asked.into_iter().next().expect("one")
}

/// `n` rings of `1 << order` pages each.
pub fn rings(n: usize, order: u32) -> Vec<MemPages> {
    (0..n).map(|_| MemPages::new(1 << order)).collect()
}

/// Answers key reads from `store` until the VBD asks for rings; returns
/// the MapRing actions' (queue, grefs).
pub fn handshake_keys<'a>(
    vbd: &mut TestVbd<'a>,
    store: &[(String, Vec<u8>)],
) -> Vec<(u16, Vec<u32>)> {
    let mut maps = Vec::new();
    for _ in 0..4 {
        let acts = drain(vbd);
        for a in &acts {
            if let Action::MapRing {
                queue,
                grefs,
                domid,
            } = a
            {
                assert_eq!(*domid, DOMID);
                maps.push((*queue, grefs.clone()));
            }
        }
        let reads: Vec<_> = acts
            .iter()
            .filter_map(|a| match a {
                Action::ReadFrontendKeys(k) => Some(k.clone()),
                _ => None,
            })
            .collect();
        match reads.as_slice() {
            [] => return maps,
            [keys] => vbd.on_frontend_keys(&lookup(store, keys)),
            more => panic!("{more:?}"),
        }
    }
    maps
}

/// Drives `vbd` from creation to Connected with Linux blkfront's keys for
/// `pages.len()` queues of `1 << order` pages; returns one front per queue.
pub fn connect<'a>(vbd: &mut TestVbd<'a>, pages: &'a [MemPages], order: u32) -> Vec<Front<'a>> {
    drain(vbd);
    vbd.on_frontend_state(Some(b"1"));
    let fronts: Vec<_> = pages
        .iter()
        .map(|p| Blkfront::new(p).expect("ring"))
        .collect();
    vbd.on_frontend_state(Some(b"3"));
    let store = frontend_keys(order, pages.len() as u32, RING_GREF, PORT);
    let maps = handshake_keys(vbd, &store);
    assert_eq!(maps.len(), pages.len());
    for (q, grefs) in &maps {
        let first = RING_GREF + u32::from(*q) * (1 << order);
        assert_eq!(grefs, &(first..first + (1 << order)).collect::<Vec<_>>());
        vbd.on_ring_mapped(*q, &pages[usize::from(*q)]);
    }
    let acts = drain(vbd);
    assert!(
        matches!(
            acts.last(),
            Some(Action::SwitchState(XenbusState::Connected))
        ),
        "{acts:?}"
    );
    assert_eq!(vbd.state(), State::Connected);
    fronts
}

/// The board: a grant table and a disk.
pub struct Board {
    pub grants: FakeGrants,
    pub disk: MemDisk,
    /// Work taken but not yet completed (for out-of-order tests).
    pub held: Vec<Work>,
}

impl Board {
    pub fn new() -> Self {
        Board {
            grants: FakeGrants::new(),
            disk: MemDisk::new(SECTORS),
            held: Vec::new(),
        }
    }

    /// Runs one piece of work to completion; true when a kick was asked.
    pub fn finish(&mut self, vbd: &mut TestVbd<'_>, work: Work) -> bool {
        match work {
            Work::Io(io) => {
                let status = run(&io, &mut self.grants, &mut self.disk);
                vbd.complete(io.token, status)
            }
            Work::Fetch(f) => {
                let bytes = self.grants.fetch(&f);
                let done = vbd.indirect_fetched(f.token, bytes.as_deref());
                let mut notify = done.notify;
                if let Some(io) = done.io {
                    let status = run(&io, &mut self.grants, &mut self.disk);
                    notify |= vbd.complete(io.token, status);
                }
                notify
            }
        }
    }

    /// Polls `queue` and runs everything until the ring is idle.
    pub fn serve(&mut self, vbd: &mut TestVbd<'_>, queue: u16) -> bool {
        let mut notify = false;
        for _ in 0..10_000 {
            let poll = vbd.poll(queue);
            notify |= poll.notify;
            let idle = poll.work.is_empty() && !poll.again && !poll.blocked;
            for w in poll.work {
                notify |= self.finish(vbd, w);
            }
            if idle {
                return notify;
            }
        }
        panic!("queue never idle");
    }

    /// Fills data page `gref` with `byte`.
    pub fn page(&mut self, gref: u32, byte: u8) {
        self.grants.grant(DOMID, gref, 0, &[byte; PAGE_SIZE]);
    }
}

pub fn seg(gref: u32, first_sect: u8, last_sect: u8) -> RawSegment {
    RawSegment {
        gref,
        first_sect,
        last_sect,
    }
}

pub fn send(front: &mut Front<'_>, reqs: &[Request]) {
    front.send(reqs).expect("room");
}

pub fn responses(front: &mut Front<'_>) -> Vec<Response> {
    front.responses().expect("sane backend")
}

pub fn ok(status: IoStatus) -> bool {
    status == IoStatus::Ok
}

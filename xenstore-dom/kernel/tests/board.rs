//! The board on the host: a fake platform (in-memory grants, recorded
//! ports), dom0 and guests as real `xcp-xenbus` clients on ring pages.
//! dom0 introduction, INTRODUCE/RELEASE of guests, watch events across
//! connections, ring abuse (RINGIDX, PROTO), the guest cap, map failures,
//! re-introduction and flow control.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use xcp_xenbus::{Access, Client, Error, Perm, Reply, RequestId, TxId, WatchEvent, XsErrno};
use xenstore_dom::{Board, Failure, GuestState, Platform, GNTTAB_RESERVED_XENSTORE};
use xenstore_engine::ring::{ERROR, REQ_CONS, REQ_PROD, SERVER_FEATURES};
use xenstore_engine::Config;

const NO_TX: TxId = TxId::NONE;
const DOM0_GREF: u32 = 8;
const DOM0_PORT: u32 = 3;

/// A ring page shared by the fake "guest" and the board.
#[derive(Clone)]
struct Page(Rc<RefCell<[u8; 4096]>>);

impl Page {
    fn new() -> Page {
        Page(Rc::new(RefCell::new([0; 4096])))
    }
    fn u32_at(&self, offset: usize) -> u32 {
        xcp_xenbus::SharedPage::load_u32(&*self.0, offset)
    }
    fn set_u32(&self, offset: usize, v: u32) {
        xcp_xenbus::SharedPage::store_u32(&*self.0, offset, v)
    }
    /// Whether the board still holds a mapping of it.
    fn mapped(&self) -> bool {
        Rc::strong_count(&self.0) > 1
    }
}

impl xenstore_engine::ring::SharedPage for Page {
    fn len(&self) -> usize {
        xenstore_engine::ring::SharedPage::len(&*self.0)
    }
    fn read(&self, offset: usize, buf: &mut [u8]) {
        xenstore_engine::ring::SharedPage::read(&*self.0, offset, buf)
    }
    fn write(&self, offset: usize, buf: &[u8]) {
        xenstore_engine::ring::SharedPage::write(&*self.0, offset, buf)
    }
    fn load_u32(&self, offset: usize) -> u32 {
        xenstore_engine::ring::SharedPage::load_u32(&*self.0, offset)
    }
    fn store_u32(&self, offset: usize, value: u32) {
        xenstore_engine::ring::SharedPage::store_u32(&*self.0, offset, value)
    }
}

// One trait serves both ends (xcp-xs-wire), so one impl does.

/// Grants that exist, ports bound, kicks sent.
#[derive(Default)]
struct Fake {
    grants: BTreeMap<(u16, u32), Page>,
    bound: BTreeMap<u32, (u16, u32)>,
    next_port: u32,
    unbound: Vec<u32>,
    kicks: Vec<u32>,
    refuse_bind: bool,
}

impl Platform for Fake {
    type Page = Page;
    fn map_ring(&mut self, domid: u16, gref: u32) -> Result<Page, Failure> {
        self.grants.get(&(domid, gref)).cloned().ok_or(Failure::Map)
    }
    fn bind(&mut self, domid: u16, remote_port: u32) -> Result<u32, Failure> {
        if self.refuse_bind {
            return Err(Failure::Bind);
        }
        self.next_port += 1;
        self.bound
            .insert(self.next_port + 100, (domid, remote_port));
        Ok(self.next_port + 100)
    }
    fn unbind(&mut self, port: u32) {
        self.bound.remove(&port);
        self.unbound.push(port);
    }
    fn notify(&mut self, port: u32) {
        self.kicks.push(port);
    }
}

struct World {
    board: Board<Page>,
    fake: Fake,
}

/// A domain's end: a xenbus client on its ring page.
struct Side {
    domid: u16,
    client: Client,
    page: Page,
}

impl World {
    fn new(max_guests: usize) -> (World, Side) {
        let mut fake = Fake::default();
        let page = Page::new();
        fake.grants.insert((0, DOM0_GREF), page.clone());
        let mut board = Board::new(Config::default(), max_guests);
        board
            .start_dom0(&mut fake, DOM0_GREF, DOM0_PORT)
            .expect("dom0 ring");
        let dom0 = Side {
            domid: 0,
            client: Client::default(),
            page,
        };
        (World { board, fake }, dom0)
    }

    /// The guest's end; its grant 1 is its ring page.
    fn guest_page(&mut self, domid: u16) -> Page {
        let page = Page::new();
        self.fake
            .grants
            .insert((domid, GNTTAB_RESERVED_XENSTORE), page.clone());
        page
    }

    /// One exchange: the side pushes/pulls, kicks its port if it moved
    /// anything, the board takes its turns.
    fn pump(&mut self, side: &mut Side) -> bool {
        let progress = side.client.poll(&mut side.page).expect("client poll");
        if progress.notify {
            if let Some(port) = self.board.port_of(side.domid) {
                let mut owed = self.board.on_event(&mut self.fake, port);
                while owed {
                    owed = self.board.run(&mut self.fake);
                }
            }
        }
        progress.moved()
    }

    fn wait(&mut self, side: &mut Side, id: RequestId) -> Result<Reply, Error> {
        for _ in 0..1000 {
            self.pump(side);
            if let Some(r) = side.client.take_reply(id) {
                return r;
            }
        }
        panic!("no reply for {id:?}");
    }

    fn call(
        &mut self,
        side: &mut Side,
        f: impl FnOnce(&mut Client) -> Result<RequestId, Error>,
    ) -> Result<Reply, Error> {
        let id = f(&mut side.client).expect("queued");
        self.wait(side, id)
    }

    /// dom0 creates the guest's home and introduces it.
    fn introduce(&mut self, dom0: &mut Side, domid: u16, evtchn: u32) -> Result<Reply, Error> {
        let home = format!("/local/domain/{domid}");
        self.call(dom0, |c| c.mkdir(NO_TX, &home)).expect("mkdir");
        self.call(dom0, |c| {
            c.set_perms(NO_TX, &home, &[Perm::new(domid, Access::None)])
        })
        .expect("chown");
        self.call(dom0, |c| {
            c.introduce(domid, 5000 + u64::from(domid), evtchn)
        })
    }

    fn introduced(&mut self, dom0: &mut Side, domid: u16) -> bool {
        self.call(dom0, |c| c.is_domain_introduced(domid)) == Ok(Reply::Bool(true))
    }
}

fn side(domid: u16, page: Page) -> Side {
    Side {
        domid,
        client: Client::default(),
        page,
    }
}

#[test]
fn dom0_introduces_a_guest_that_is_then_served() {
    let (mut w, mut d0) = World::new(8);
    assert_eq!(w.board.port_of(0), Some(101));
    assert_eq!(w.fake.bound.get(&101), Some(&(0, DOM0_PORT)));
    assert_eq!(
        d0.page.u32_at(SERVER_FEATURES),
        2,
        "error field, no reconnection"
    );
    let page = w.guest_page(5);
    assert_eq!(w.introduce(&mut d0, 5, 9), Ok(Reply::Ok));
    assert_eq!(w.board.guests(), 1);
    let port = w.board.port_of(5).expect("guest bound");
    assert_eq!(w.fake.bound.get(&port), Some(&(5, 9)));
    assert_eq!(page.u32_at(SERVER_FEATURES), 2, "server_features written");
    let mut g = side(5, page);
    assert_eq!(
        w.call(&mut g, |c| c.write(NO_TX, "data/x", b"1")),
        Ok(Reply::Ok)
    );
    assert_eq!(
        w.call(&mut g, |c| c.read(NO_TX, "data/x")),
        Ok(Reply::Value(b"1".to_vec()))
    );
    assert_eq!(
        w.call(&mut d0, |c| c.read(NO_TX, "/local/domain/5/data/x")),
        Ok(Reply::Value(b"1".to_vec()))
    );
    // A guest is not privileged.
    assert_eq!(
        w.call(&mut g, |c| c.write(NO_TX, "/local/domain/0/x", b"1")),
        Err(Error::Xs(XsErrno::Eacces))
    );
}

#[test]
fn watch_events_reach_a_guest_whose_port_did_not_fire() {
    let (mut w, mut d0) = World::new(8);
    let page = w.guest_page(5);
    w.introduce(&mut d0, 5, 9).expect("introduce");
    let mut g = side(5, page);
    assert_eq!(w.call(&mut g, |c| c.watch("data", "t")), Ok(Reply::Ok));
    w.pump(&mut g);
    assert_eq!(
        g.client.next_event(),
        Some(WatchEvent {
            path: "data".into(),
            token: "t".into()
        })
    );
    let port = w.board.port_of(5).expect("bound");
    w.fake.kicks.clear();
    w.call(&mut d0, |c| c.write(NO_TX, "/local/domain/5/data/y", b"2"))
        .expect("write");
    assert!(w.fake.kicks.contains(&port), "the guest was kicked");
    // The event is already in the guest's ring: it only has to read.
    g.client.poll(&mut g.page).expect("poll");
    assert_eq!(
        g.client.next_event(),
        Some(WatchEvent {
            path: "data/y".into(),
            token: "t".into()
        })
    );
}

#[test]
fn release_unbinds_and_unmaps() {
    let (mut w, mut d0) = World::new(8);
    let page = w.guest_page(5);
    w.introduce(&mut d0, 5, 9).expect("introduce");
    let port = w.board.port_of(5).expect("bound");
    assert!(page.mapped());
    assert_eq!(w.call(&mut d0, |c| c.release(5)), Ok(Reply::Ok));
    assert_eq!(w.fake.unbound, [port]);
    assert!(!w.fake.bound.contains_key(&port));
    w.fake.grants.clear();
    assert!(!page.mapped(), "the mapping was dropped");
    assert_eq!(w.board.guests(), 0);
    assert!(!w.introduced(&mut d0, 5));
    assert_eq!(
        w.call(&mut d0, |c| c.release(5)),
        Err(Error::Xs(XsErrno::Enoent))
    );
}

#[test]
fn bad_ring_indexes_stop_that_ring_only() {
    let (mut w, mut d0) = World::new(8);
    let page = w.guest_page(5);
    w.introduce(&mut d0, 5, 9).expect("introduce");
    let port = w.board.port_of(5).expect("bound");
    page.set_u32(REQ_PROD, page.u32_at(REQ_CONS).wrapping_add(5000));
    w.board.on_event(&mut w.fake, port);
    assert_eq!(page.u32_at(ERROR), 2, "XENSTORE_ERROR_RINGIDX");
    assert!(w.board.is_stopped(5));
    // Not treated as dead: still introduced, and dom0 is still served.
    assert!(w.introduced(&mut d0, 5));
    assert_eq!(
        w.call(&mut d0, |c| c.write(NO_TX, "/ok", b"1")),
        Ok(Reply::Ok)
    );
    // Later events from it are ignored.
    page.set_u32(REQ_PROD, page.u32_at(REQ_CONS));
    w.board.on_event(&mut w.fake, port);
    assert!(w.board.is_stopped(5));
}

#[test]
fn an_oversize_message_sets_proto() {
    let (mut w, mut d0) = World::new(8);
    let page = w.guest_page(5);
    w.introduce(&mut d0, 5, 9).expect("introduce");
    let port = w.board.port_of(5).expect("bound");
    let mut header = [0u8; 16];
    header[0..4].copy_from_slice(&2u32.to_le_bytes());
    header[12..16].copy_from_slice(&5000u32.to_le_bytes());
    let raw = page.clone();
    xcp_xenbus::ring::push_requests(&raw, &header).expect("room");
    w.board.on_event(&mut w.fake, port);
    assert_eq!(page.u32_at(ERROR), 3, "XENSTORE_ERROR_PROTO");
    assert!(w.board.is_stopped(5));
    assert!(w.introduced(&mut d0, 5));
    assert_eq!(
        w.call(&mut d0, |c| c.read(NO_TX, "/ok")),
        Err(Error::Xs(XsErrno::Enoent))
    );
}

#[test]
fn the_guest_cap_and_map_failures_refuse_introductions() {
    let (mut w, mut d0) = World::new(2);
    w.call(&mut d0, |c| c.watch("@releaseDomain", "r"))
        .expect("watch");
    for domid in [5, 6, 7] {
        w.guest_page(domid);
        // INTRODUCE is accepted by the engine; the board then refuses it.
        assert_eq!(w.introduce(&mut d0, domid, 9), Ok(Reply::Ok));
    }
    assert_eq!(w.board.guests(), 2);
    assert!(w.introduced(&mut d0, 6));
    assert!(!w.introduced(&mut d0, 7), "over the cap: released");
    // No grant 1 for domain 8: refused too.
    assert_eq!(w.introduce(&mut d0, 8, 9), Ok(Reply::Ok));
    assert!(!w.introduced(&mut d0, 8));
    // A refused bind gives the mapping back.
    w.call(&mut d0, |c| c.release(6)).expect("release");
    let page = w.guest_page(10);
    w.fake.refuse_bind = true;
    w.introduce(&mut d0, 10, 9).expect("introduce");
    assert!(!w.introduced(&mut d0, 10));
    w.fake.grants.clear();
    assert!(!page.mapped());
    // dom0 heard @releaseDomain for each refusal.
    w.pump(&mut d0);
    let mut releases = 0;
    while let Some(e) = d0.client.next_event() {
        releases += usize::from(e.path == "@releaseDomain");
    }
    assert!(releases >= 4, "initial + 7 + 8 + 6 + 10: {releases}");
}

#[test]
fn reintroduction_replaces_the_ring() {
    let (mut w, mut d0) = World::new(8);
    let page = w.guest_page(5);
    w.introduce(&mut d0, 5, 9).expect("introduce");
    let first = w.board.port_of(5).expect("bound");
    assert_eq!(w.call(&mut d0, |c| c.introduce(5, 5005, 11)), Ok(Reply::Ok));
    let second = w.board.port_of(5).expect("bound");
    assert_ne!(first, second);
    assert!(w.fake.unbound.contains(&first));
    assert_eq!(w.fake.bound.get(&second), Some(&(5, 11)));
    let mut g = side(5, page);
    assert_eq!(w.call(&mut g, |c| c.write(NO_TX, "x", b"1")), Ok(Reply::Ok));
}

#[test]
fn a_guest_that_does_not_read_is_held_in_its_ring() {
    let (mut w, mut d0) = World::new(8);
    let page = w.guest_page(5);
    w.introduce(&mut d0, 5, 9).expect("introduce");
    w.call(&mut d0, |c| {
        c.write(NO_TX, "/local/domain/5/v", &[b'x'; 200])
    })
    .expect("write");
    let port = w.board.port_of(5).expect("bound");
    // 100 READs (1800 bytes, more than the ring and the board hold) of a
    // 200-byte value, pushed raw; replies never read.
    let raw = page.clone();
    let mut stream = Vec::new();
    for i in 0..100u32 {
        let mut m = Vec::new();
        for word in [2u32, i + 1, 0, 2] {
            m.extend_from_slice(&word.to_le_bytes());
        }
        m.extend_from_slice(b"v\0");
        stream.extend(m);
    }
    let mut sent = 0;
    for _ in 0..10 {
        sent += xcp_xenbus::ring::push_requests(&raw, &stream[sent..]).expect("room");
        w.board.on_event(&mut w.fake, port);
    }
    assert_eq!(sent, stream.len(), "all requests went into the ring");
    assert_ne!(
        page.u32_at(REQ_CONS),
        page.u32_at(REQ_PROD),
        "unread requests stay in the guest's ring"
    );
    // dom0 is unaffected.
    assert_eq!(
        w.call(&mut d0, |c| c.read(NO_TX, "/local/domain/5/v"))
            .map(|_| ()),
        Ok(())
    );
    // Now the guest reads: every reply arrives, in order.
    let mut got = Vec::new();
    for _ in 0..200 {
        xcp_xenbus::ring::take_responses(&raw, &mut got, 1024).expect("sane");
        w.board.on_event(&mut w.fake, port);
    }
    let mut ids = Vec::new();
    let mut rest = &got[..];
    while rest.len() >= 16 {
        let len = u32::from_le_bytes([rest[12], rest[13], rest[14], rest[15]]) as usize;
        ids.push(u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]));
        rest = &rest[16 + len..];
    }
    assert_eq!(ids, (1..=100).collect::<Vec<_>>());
}

#[test]
fn dom0_without_its_grant_cannot_start() {
    let mut fake = Fake::default();
    let mut board: Board<Page> = Board::new(Config::default(), 8);
    assert_eq!(
        board.start_dom0(&mut fake, DOM0_GREF, DOM0_PORT),
        Err(Failure::Map)
    );
    fake.grants.insert((0, DOM0_GREF), Page::new());
    fake.refuse_bind = true;
    assert_eq!(
        board.start_dom0(&mut fake, DOM0_GREF, DOM0_PORT),
        Err(Failure::Bind)
    );
}

#[test]
fn dom_exc_releases_dead_guests_and_reports_shut_down_ones_once() {
    let (mut w, mut d0) = World::new(8);
    let pages: Vec<Page> = [5, 6, 7].iter().map(|&d| w.guest_page(d)).collect();
    for d in [5, 6, 7] {
        w.introduce(&mut d0, d, 9).expect("introduce");
    }
    w.call(&mut d0, |c| c.write(NO_TX, "/local/domain/5/data/x", b"1"))
        .expect("write");
    assert_eq!(
        w.call(&mut d0, |c| c.watch("@releaseDomain", "rd")),
        Ok(Reply::Ok)
    );
    w.pump(&mut d0);
    while d0.client.next_event().is_some() {}
    let port5 = w.board.port_of(5).expect("bound");
    // 5 died, 6 shut down, 7 runs.
    let mut asked = Vec::new();
    let (released, _) = w.board.on_dom_exc(&mut w.fake, &mut |d| {
        asked.push(d);
        match d {
            5 => GuestState::Dead,
            6 => GuestState::Shutdown,
            _ => GuestState::Alive,
        }
    });
    assert_eq!(asked, [5, 6, 7], "every introduced guest, never dom0");
    assert_eq!(released, [5]);
    assert!(w.fake.unbound.contains(&port5));
    w.fake.grants.remove(&(5, GNTTAB_RESERVED_XENSTORE));
    assert!(!pages[0].mapped(), "5's ring is unmapped");
    assert!(!w.introduced(&mut d0, 5));
    assert!(
        w.introduced(&mut d0, 6),
        "a shut-down domain stays introduced"
    );
    assert_eq!(
        w.call(&mut d0, |c| c.read(NO_TX, "/local/domain/5/data/x")),
        Err(Error::Xs(XsErrno::Enoent)),
        "the dead domain's nodes are gone"
    );
    w.pump(&mut d0);
    let mut events = 0;
    while let Some(e) = d0.client.next_event() {
        assert_eq!(e.path, "@releaseDomain");
        events += 1;
    }
    assert!(events >= 1, "dom0 heard @releaseDomain");
    // 6's shutdown is reported once; a second scan with nothing new
    // releases nothing and fires nothing.
    let (released, _) = w.board.on_dom_exc(&mut w.fake, &mut |d| {
        if d == 6 {
            GuestState::Shutdown
        } else {
            GuestState::Alive
        }
    });
    assert!(released.is_empty());
    w.pump(&mut d0);
    assert_eq!(d0.client.next_event(), None);
    // Then 6 is destroyed.
    let (released, _) = w.board.on_dom_exc(&mut w.fake, &mut |_| GuestState::Dead);
    assert_eq!(released, [6, 7]);
    assert_eq!(w.board.guests(), 0);
    // dom0's RELEASE afterwards finds nothing (dom0 treats that as done).
    assert_eq!(
        w.call(&mut d0, |c| c.release(6)),
        Err(Error::Xs(XsErrno::Enoent))
    );
}

#[test]
fn the_domain_writes_its_own_figures_and_watchers_see_them() {
    let mut fake = Fake::default();
    let page = Page::new();
    fake.grants.insert((0, DOM0_GREF), page.clone());
    let config = Config {
        xenstore_domid: Some(1),
        ..Config::default()
    };
    let mut board = Board::new(config, 8);
    board
        .start_dom0(&mut fake, DOM0_GREF, DOM0_PORT)
        .expect("dom0 ring");
    let mut w = World { board, fake };
    let mut d0 = side(0, page);
    let dir = "/local/domain/1/data/memory";
    assert_eq!(w.call(&mut d0, |c| c.watch(dir, "mem")), Ok(Reply::Ok));
    w.pump(&mut d0);
    assert!(d0.client.next_event().is_some(), "the watch's first event");
    let path = format!("{dir}/heap-peak");
    for value in [&b"4096"[..], b"8192"] {
        assert_eq!(w.board.write_own(&mut w.fake, 1, &path, value), Ok(()));
        assert_eq!(
            w.call(&mut d0, |c| c.read(NO_TX, &path)),
            Ok(Reply::Value(value.to_vec()))
        );
    }
    // dom0 heard of both writes without its port firing for them.
    w.pump(&mut d0);
    let events: Vec<_> = std::iter::from_fn(|| d0.client.next_event()).collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events.iter().all(|e| e.path == path && e.token == "mem"));
    // One connection serves every write.
    let conns = w.board.engine().connections();
    w.board
        .write_own(&mut w.fake, 1, &path, b"1")
        .expect("write");
    assert_eq!(w.board.engine().connections(), conns);
}

#[test]
fn an_own_write_the_engine_refuses_says_why() {
    let (mut w, _d0) = World::new(8);
    // Without `xenstore_domid` the domain is not privileged: dom0's home
    // is not its to write.
    assert_eq!(
        w.board.write_own(&mut w.fake, 1, "/local/domain/0/x", b"1"),
        Err(xenstore_dom::Refused(b"EACCES".to_vec()))
    );
}

#[test]
fn a_ring_whose_kick_was_lost_is_listed_and_served() {
    let (mut w, mut d0) = World::new(8);
    let page = w.guest_page(5);
    w.introduce(&mut d0, 5, 9).expect("introduce");
    let port = w.board.port_of(5).expect("bound");
    assert!(w.board.unread_rings().is_empty(), "nothing unread yet");
    // The guest queues a request and kicks, but the kick never reaches
    // the board (no on_event).
    let mut g = side(5, page);
    let id = g.client.write(NO_TX, "data/x", b"1").expect("queued");
    assert!(g.client.poll(&mut g.page).expect("poll").notify);
    let listed = w.board.unread_rings();
    assert_eq!(listed.len(), 1, "{listed:?}");
    let (domid, at, unread, cons) = listed[0];
    assert_eq!((domid, at), (5, port));
    assert_eq!(cons, g.page.u32_at(REQ_CONS));
    assert_eq!(unread, g.page.u32_at(REQ_PROD) - cons);
    // Served as if its port had fired: the reply is in the guest's ring.
    w.fake.kicks.clear();
    let mut owed = w.board.on_event(&mut w.fake, port);
    while owed {
        owed = w.board.run(&mut w.fake);
    }
    assert!(w.fake.kicks.contains(&port), "the guest was kicked");
    assert!(w.board.unread_rings().is_empty());
    g.client.poll(&mut g.page).expect("poll");
    assert_eq!(g.client.take_reply(id), Some(Ok(Reply::Ok)));
}

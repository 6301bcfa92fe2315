//! Harness: the real xenstore engine serving xenbus clients through
//! in-memory ring pages, with a fake event channel that runs the server.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::cell::RefCell;
use std::rc::Rc;

use xcp_xenbus::{Client, Error, Wait, Xenbus};
use xenstore_engine::ring as xs_ring;
use xenstore_engine::{Config, ConnId, Engine};

/// A ring page both sides hold.
#[derive(Clone)]
pub struct Page(pub Rc<RefCell<[u8; 4096]>>);

impl xcp_xenbus::SharedPage for Page {
    fn len(&self) -> usize {
        xcp_xenbus::SharedPage::len(&*self.0)
    }
    fn read(&self, offset: usize, buf: &mut [u8]) {
        xcp_xenbus::SharedPage::read(&*self.0, offset, buf)
    }
    fn write(&self, offset: usize, buf: &[u8]) {
        xcp_xenbus::SharedPage::write(&*self.0, offset, buf)
    }
    fn load_u32(&self, offset: usize) -> u32 {
        xcp_xenbus::SharedPage::load_u32(&*self.0, offset)
    }
    fn store_u32(&self, offset: usize, value: u32) {
        xcp_xenbus::SharedPage::store_u32(&*self.0, offset, value)
    }
}

/// The engine and every connection's ring, served like the board does.
pub struct World {
    pub engine: Engine,
    pub rings: Vec<(ConnId, Page, Vec<u8>)>,
}

pub type Shared = Rc<RefCell<World>>;

impl World {
    pub fn new() -> Shared {
        Rc::new(RefCell::new(World {
            engine: Engine::new(Config::default()),
            rings: Vec::new(),
        }))
    }

    /// One board pass over every ring: requests in (copied out once, flow
    /// control through `wants_input`), output out. Returns bytes moved.
    pub fn serve(&mut self) -> usize {
        let mut moved = 0;
        for (conn, page, leftover) in &mut self.rings {
            let p = &*page.0;
            if leftover.is_empty() && self.engine.wants_input(*conn) {
                moved += xs_ring::take_requests(p, leftover, 1024).expect("sane indexes");
            }
            if !leftover.is_empty() {
                let n = self
                    .engine
                    .receive(*conn, leftover)
                    .expect("clients keep the protocol");
                leftover.drain(..n);
            }
            while let Some(out) = self.engine.output(*conn) {
                let n = xs_ring::put_responses(p, out).expect("sane indexes");
                if n == 0 {
                    break;
                }
                moved += n;
                self.engine.consume_output(*conn, n);
            }
        }
        moved
    }
}

/// The fake event channel: a kick runs the server; a wait runs it too
/// and fails with `Timeout` when nothing at all is moving (a real domain
/// would sleep forever).
pub struct Port {
    pub world: Shared,
    pub kicks: usize,
}

impl Wait for Port {
    fn notify(&mut self) {
        self.kicks += 1;
        self.world.borrow_mut().serve();
    }
    fn wait(&mut self) -> Result<(), Error> {
        if self.world.borrow_mut().serve() > 0 {
            Ok(())
        } else {
            Err(Error::Timeout)
        }
    }
}

pub type Xb = Xenbus<Page, Port>;

/// A blocking client on a new ring for connection `conn`.
pub fn attach(world: &Shared, conn: ConnId) -> Xb {
    let page = Page(Rc::new(RefCell::new([0u8; 4096])));
    world
        .borrow_mut()
        .rings
        .push((conn, page.clone(), Vec::new()));
    Xenbus::new(
        Client::default(),
        page,
        Port {
            world: world.clone(),
            kicks: 0,
        },
    )
}

/// dom0 (a privileged connection) on its own ring.
pub fn dom0(world: &Shared) -> Xb {
    let conn = world.borrow_mut().engine.connect(0);
    attach(world, conn)
}

/// Introduce `domid` from `d0` and attach a client to its connection;
/// `/local/domain/<domid>` is created and given to it first.
pub fn domu(world: &Shared, d0: &mut Xb, domid: u16) -> Xb {
    use xcp_xenbus::{Access, Perm, TxId};
    let home = format!("/local/domain/{domid}");
    d0.mkdir(TxId::NONE, &home).expect("mkdir home");
    d0.set_perms(TxId::NONE, &home, &[Perm::new(domid, Access::None)])
        .expect("give home");
    d0.introduce(domid, 1000 + u64::from(domid), 10)
        .expect("introduce");
    let conn = world
        .borrow()
        .engine
        .domain_conn(domid)
        .expect("introduced");
    attach(world, conn)
}

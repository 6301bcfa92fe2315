//! proptest: a hostile guest writing anything into its ring page (bytes,
//! indexes, fields) at any time cannot panic the board, and dom0 is still
//! served correctly afterwards.

use std::cell::RefCell;
use std::rc::Rc;

use proptest::prelude::*;
use xenstore_dom::{Board, Failure, Platform, GNTTAB_RESERVED_XENSTORE};
use xenstore_engine::ring::{self, SharedPage};
use xenstore_engine::wire::{self, MsgType, Parse};
use xenstore_engine::Config;

#[derive(Clone)]
struct Page(Rc<RefCell<[u8; 4096]>>);

impl SharedPage for Page {
    fn len(&self) -> usize {
        SharedPage::len(&*self.0)
    }
    fn read(&self, offset: usize, buf: &mut [u8]) {
        SharedPage::read(&*self.0, offset, buf)
    }
    fn write(&self, offset: usize, buf: &[u8]) {
        SharedPage::write(&*self.0, offset, buf)
    }
    fn load_u32(&self, offset: usize) -> u32 {
        SharedPage::load_u32(&*self.0, offset)
    }
    fn store_u32(&self, offset: usize, value: u32) {
        SharedPage::store_u32(&*self.0, offset, value)
    }
}

struct Fake {
    dom0: Page,
    guest: Page,
    next: u32,
}

impl Platform for Fake {
    type Page = Page;
    fn map_ring(&mut self, domid: u16, gref: u32) -> Result<Page, Failure> {
        match (domid, gref) {
            (0, 8) => Ok(self.dom0.clone()),
            (5, GNTTAB_RESERVED_XENSTORE) => Ok(self.guest.clone()),
            _ => Err(Failure::Map),
        }
    }
    fn bind(&mut self, _domid: u16, _remote: u32) -> Result<u32, Failure> {
        self.next += 1;
        Ok(self.next)
    }
    fn unbind(&mut self, _port: u32) {}
    fn notify(&mut self, _port: u32) {}
}

/// dom0 sends one request and collects replies from its ring.
fn dom0_call(
    board: &mut Board<Page>,
    fake: &mut Fake,
    ty: MsgType,
    req_id: u32,
    payload: &[u8],
) -> (MsgType, Vec<u8>) {
    let msg = wire::encode(ty, req_id, 0, payload);
    let page = fake.dom0.clone();
    let prod = page.load_u32(ring::REQ_PROD);
    for (i, b) in msg.iter().enumerate() {
        page.0.borrow_mut()[ring::REQ + (prod as usize + i) % 1024] = *b;
    }
    page.store_u32(ring::REQ_PROD, prod.wrapping_add(msg.len() as u32));
    let port = board.port_of(0).expect("dom0 bound");
    let mut owed = board.on_event(fake, port);
    while owed {
        owed = board.run(fake);
    }
    // Read every reply, keep the one for req_id (watch events may precede).
    let mut got = Vec::new();
    let cons = page.load_u32(ring::RSP_CONS);
    let rprod = page.load_u32(ring::RSP_PROD);
    for i in 0..rprod.wrapping_sub(cons) {
        got.push(page.0.borrow()[ring::RSP + (cons.wrapping_add(i) % 1024) as usize]);
    }
    page.store_u32(ring::RSP_CONS, rprod);
    let mut rest = &got[..];
    while let Parse::Message { header, total } = wire::parse(rest) {
        if header.req_id == req_id && header.ty != MsgType::WatchEvent {
            return (header.ty, rest[16..total].to_vec());
        }
        rest = &rest[total..];
    }
    panic!("no reply to dom0's request {req_id}");
}

fn guest_action() -> impl Strategy<Value = (u8, Vec<u8>, u32, u32)> {
    (
        any::<u8>(),
        proptest::collection::vec(any::<u8>(), 0..300),
        any::<u32>(),
        0u32..4,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_hostile_guest_cannot_hurt_the_board_or_dom0(actions in proptest::collection::vec(guest_action(), 1..40)) {
        let mut fake = Fake {
            dom0: Page(Rc::new(RefCell::new([0; 4096]))),
            guest: Page(Rc::new(RefCell::new([0; 4096]))),
            next: 0,
        };
        let mut board: Board<Page> = Board::new(Config::default(), 4);
        board.start_dom0(&mut fake, 8, 3).expect("dom0");
        let (ty, body) = dom0_call(&mut board, &mut fake, MsgType::Introduce, 1, b"5\x009\x007\0");
        prop_assert_eq!((ty, body), (MsgType::Introduce, b"OK\0".to_vec()));
        let port = board.port_of(5).expect("guest bound");
        let mut g = fake.guest.clone();
        for (i, (what, bytes, value, field)) in actions.into_iter().enumerate() {
            match what % 4 {
                // Well-formed-looking messages of any type.
                0 => {
                    let m = wire::encode(MsgType::from_code(u32::from(bytes.first().copied().unwrap_or(0) % 30)), i as u32, value % 3, &bytes);
                    push_req(&mut g, &m);
                }
                // Raw garbage.
                1 => push_req(&mut g, &bytes),
                // Scribble on an index or field.
                2 => {
                    let at = [ring::REQ_CONS, ring::REQ_PROD, ring::RSP_CONS, ring::RSP_PROD][field as usize];
                    g.store_u32(at, value);
                }
                // Read responses like a guest.
                _ => g.store_u32(ring::RSP_CONS, g.load_u32(ring::RSP_PROD)),
            }
            let mut owed = board.on_event(&mut fake, port);
            let mut turns = 0;
            while owed {
                owed = board.run(&mut fake);
                turns += 1;
                prop_assert!(turns < 1000, "the board keeps working forever");
            }
        }
        // dom0 still gets correct service.
        let (ty, body) = dom0_call(&mut board, &mut fake, MsgType::Write, 2, b"/after\0ok");
        prop_assert_eq!((ty, body), (MsgType::Write, b"OK\0".to_vec()));
        let (ty, body) = dom0_call(&mut board, &mut fake, MsgType::Read, 3, b"/after\0");
        prop_assert_eq!((ty, body), (MsgType::Read, b"ok".to_vec()));
        // And RELEASE still works whatever state the guest left.
        let (ty, body) = dom0_call(&mut board, &mut fake, MsgType::Release, 4, b"5\0");
        prop_assert_eq!((ty, body), (MsgType::Release, b"OK\0".to_vec()));
        prop_assert_eq!(board.guests(), 0);
    }
}

/// Append bytes at the guest's req_prod as far as the (guest-visible)
/// ring allows, without trusting req_cons.
fn push_req(g: &mut Page, bytes: &[u8]) {
    let prod = g.load_u32(ring::REQ_PROD);
    let n = bytes.len().min(1024);
    for (i, b) in bytes[..n].iter().enumerate() {
        g.0.borrow_mut()[ring::REQ + (prod as usize + i) % 1024] = *b;
    }
    g.store_u32(ring::REQ_PROD, prod.wrapping_add(n as u32));
}

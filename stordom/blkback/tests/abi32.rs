//! An i386 frontend (`protocol` = `x86_32-abi`, as GRUB's `i386-xen_pvh`
//! image writes): its ring packs a request in 108 bytes (id at offset 4)
//! and a response in 12; the engine reads and answers it in that layout.
//! The first request is written into the page by hand, byte by byte as
//! blkif.h lays it out for i386, so the translation is checked against
//! the header, not against itself.

mod common;

use common::*;
use xcp_blkback::fake::{frontend_keys, MemPages};
use xcp_blkback::wire::*;
use xcp_blkback::{State, Vbd};
use xcp_ring::{sring, FrontRing, RingEntry, SharedPage};

/// The sring header before the first slot.
const SLOTS: usize = 64;

fn connect32<'a>(vbd: &mut TestVbd<'a>, page: &'a MemPages) {
    drain(vbd);
    vbd.on_frontend_state(Some(b"1"));
    vbd.on_frontend_state(Some(b"3"));
    let mut store = frontend_keys(0, 1, RING_GREF, PORT);
    for (k, v) in &mut store {
        if k == "protocol" {
            *v = b"x86_32-abi".to_vec();
        }
    }
    let maps = handshake_keys(vbd, &store);
    assert_eq!(maps.len(), 1);
    vbd.on_ring_mapped(0, page);
    drain(vbd);
    assert_eq!(vbd.state(), State::Connected);
}

#[test]
fn an_i386_frontend_reads_and_writes_through_its_packed_ring() {
    let page = MemPages::new(1);
    sring::shared_ring_init(&page);
    let mut vbd: TestVbd = Vbd::new(config());
    connect32(&mut vbd, &page);
    let mut board = Board::new();
    board.page(DATA_GREF, 0x5a);

    // A write of sectors 8..=15 (one page) at disk sector 40, written into
    // slot 0 by hand in the i386 layout, then published.
    let mut slot = [0u8; REQUEST32_SIZE];
    slot[0] = BLKIF_OP_WRITE;
    slot[1] = 1; // nr_segments
    slot[2..4].copy_from_slice(&0u16.to_le_bytes()); // handle
    slot[4..12].copy_from_slice(&0x1122_3344_5566_7788u64.to_le_bytes()); // id
    slot[12..20].copy_from_slice(&40u64.to_le_bytes()); // sector_number
    slot[20..24].copy_from_slice(&DATA_GREF.to_le_bytes()); // seg[0].gref
    slot[24] = 0; // first_sect
    slot[25] = 7; // last_sect
    page.write(SLOTS, &slot);
    page.store_u32(0, 1); // req_prod
    assert!(board.serve(&mut vbd, 0));
    // The response, in slot 0 at the i386 layout: id (0), operation (8),
    // status (10), in 12 bytes.
    let mut rsp = [0u8; RESPONSE32_SIZE];
    page.read(SLOTS, &mut rsp);
    assert_eq!(
        u64::from_le_bytes(rsp[..8].try_into().unwrap()),
        0x1122_3344_5566_7788
    );
    assert_eq!(rsp[8], BLKIF_OP_WRITE);
    assert_eq!(i16::from_le_bytes([rsp[10], rsp[11]]), BLKIF_RSP_OKAY);
    let d = &board.disk.bytes;
    assert!(d[40 * 512..48 * 512].iter().all(|&b| b == 0x5a));
    assert!(d[..40 * 512].iter().all(|&b| b == 0));
    assert!(d[48 * 512..].iter().all(|&b| b == 0));

    // A typed i386 front goes on after the hand-made request.
    let mut front = FrontRing::<&MemPages, Request32, Response32>::attach(&page, 1).expect("ring");
    // 32 slots of 108 bytes fit a page, as 32 of 112 do.
    assert_eq!(front.size(), 32);
    // A read of the same sectors into a fresh page, and a discard, through
    // the typed i386 front: 108-byte slots one after another.
    board.page(DATA_GREF + 1, 0);
    front
        .queue_request(&Request32(Request::direct(
            BLKIF_OP_READ,
            0,
            2,
            40,
            &[seg(DATA_GREF + 1, 0, 7)],
        )))
        .unwrap();
    front
        .queue_request(&Request32(Request::discard(0, 3, 40, 8, 0)))
        .unwrap();
    front.push_requests();
    board.serve(&mut vbd, 0);
    let mut got = Vec::new();
    while let Some(r) = front.next_response().unwrap() {
        got.push((r.0.id, r.0.operation, r.0.status));
    }
    assert_eq!(
        got,
        [
            (2, BLKIF_OP_READ, BLKIF_RSP_OKAY),
            (3, BLKIF_OP_DISCARD, BLKIF_RSP_OKAY)
        ]
    );
    let read = board.grants.page(DOMID, DATA_GREF + 1).expect("granted");
    assert!(read.iter().all(|&b| b == 0x5a));
    assert!(board.disk.bytes[40 * 512..48 * 512].iter().all(|&b| b == 0));
    // Its response sits in slot 1 of the i386 stride (108 bytes on).
    let mut second = [0u8; RESPONSE32_SIZE];
    page.read(SLOTS + REQUEST32_SIZE, &mut second);
    assert_eq!(u64::from_le_bytes(second[..8].try_into().unwrap()), 2);
}

#[test]
fn the_i386_layout_moves_every_view_field_by_four() {
    let segs = [seg(9, 1, 6), seg(10, 0, 7)];
    let cases = [
        Request::direct(BLKIF_OP_WRITE, 3, 0xdead_beef, 77, &segs),
        Request::discard(4, 5, 1 << 40, 123, BLKIF_DISCARD_SECURE),
        Request::indirect(BLKIF_OP_READ, 300, 6, 99, 2, &[11, 12, 13]),
    ];
    for native in cases {
        let mut slot = [0u8; REQUEST32_SIZE];
        Request32(native).encode(&mut slot);
        assert_eq!(
            u64::from_le_bytes(slot[4..12].try_into().unwrap()),
            native.id()
        );
        assert_eq!(
            u64::from_le_bytes(slot[12..20].try_into().unwrap()),
            native.sector_number()
        );
        assert_eq!(Request32::decode(&slot).0, native, "{native:?}");
    }
    // The i386 indirect: handle at 20, grefs from 24.
    let mut slot = [0u8; REQUEST32_SIZE];
    Request32(cases[2]).encode(&mut slot);
    assert_eq!(u16::from_le_bytes([slot[20], slot[21]]), 6);
    assert_eq!(u32::from_le_bytes(slot[28..32].try_into().unwrap()), 12);
    // Any 108 bytes decode (the engine validates what they say).
    let junk = [0xffu8; REQUEST32_SIZE];
    let r = Request32::decode(&junk).0;
    assert_eq!(r.operation(), 0xff);
}

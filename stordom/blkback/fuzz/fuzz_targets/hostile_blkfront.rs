//! Fuzz target: a hostile blkfront (ring bytes and xenstore values) and a
//! board that completes work in any order, against one VBD engine.
//!
//! read first: ../../src/vbd.rs (the contract), ../../src/request.rs.
//!
//! Input: byte 0 picks the offer (flush, barrier, discard and secure
//! discard, indirect segments, ring order, queues, read-only) and byte 1
//! the disk size; then steps of one `op` byte, `op % 11`: 0 frontend state
//! (next byte: 0-9 as a digit, 10 gone, else raw bytes); 1 answer the last
//! key read with fuzzer values (each key absent, good, or raw bytes);
//! 2 answer it with Linux blkfront's keys for an order and queue count
//! from the input, as an x86_64 or an i386 (`x86_32-abi`) frontend; 3 a queue's ring pages are mapped (the right size or
//! not); 4 map failed or unplug; 5 poke a queue's pages (offset, length,
//! bytes); 6 write one request slot (in the layout last asked for in 2)
//! from the input and bump req_prod;
//! 7 poll a queue; 8 complete held work (which, and OK / error /
//! unsupported / run against the disk); 9 fetch held indirect work (from
//! the grant table or raw bytes); 10 grant a page with input bytes (data
//! or indirect segments). After every step: no panic, every DiskIo stays
//! inside its pages and the disk (fake::run asserts it), work out equals
//! what the board holds, the budget holds, a step queues a bounded number
//! of actions. At the end every piece of work is completed and the VBD
//! holds nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xcp_blkback::budget::{IO_BYTES_PER_VBD, MAX_REQUESTS_PER_VBD};
use xcp_blkback::fake::{frontend_keys, lookup, run, FakeGrants, MemDisk, MemPages};
use xcp_blkback::wire::{PAGE_SIZE, REQUEST32_SIZE, REQUEST_SIZE};
use xcp_blkback::{
    Action, Config, DeviceType, DiscardOffer, DiskInfo, Features, IoStatus, Vbd, Work,
};
use xcp_ring::sring;

struct Input<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }
    fn more(&self) -> bool {
        self.at < self.data.len()
    }
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let start = self.at.min(self.data.len());
        let end = (start + n).min(self.data.len());
        self.at = end;
        &self.data[start..end]
    }
    fn u16(&mut self) -> u16 {
        u16::from(self.byte()) | (u16::from(self.byte()) << 8)
    }
}

const DOMID: u16 = 3;
const QUEUES: usize = 4;
const ORDERS: usize = 3;

fuzz_target!(|data: &[u8]| {
    let mut input = Input { data, at: 0 };
    let offer = input.byte();
    let size = input.byte();
    let sectors = match size % 4 {
        0 => 64,
        1 => 200,
        2 => 201,
        _ => 1 << 40,
    };
    let config = Config {
        frontend_domid: DOMID,
        features: Features {
            flush_cache: offer & 1 != 0,
            barrier: offer & 2 != 0,
            discard: (offer & 4 != 0).then_some(DiscardOffer {
                granularity: 4096,
                alignment: 0,
                secure: offer & 8 != 0,
            }),
            persistent: true,
            max_indirect_segments: [0, 7, 64, 1000][usize::from(offer >> 4) % 4],
            max_ring_page_order: u32::from(offer >> 6),
            max_queues: u32::from(size >> 4) % 6,
        },
        disk: DiskInfo {
            sectors,
            readonly: size & 4 != 0,
            device_type: if size & 8 != 0 {
                DeviceType::Cdrom
            } else {
                DeviceType::Disk
            },
        },
    };
    // Each queue's rings of every size the engine may ask for.
    let pages: Vec<Vec<MemPages>> = (0..QUEUES)
        .map(|_| (0..ORDERS).map(|o| MemPages::new(1 << o)).collect())
        .collect();
    let mut vbd: Vbd<&MemPages> = Vbd::new(config);
    let mut grants = FakeGrants::new();
    // A huge disk is not backed (its work is completed without running).
    let mut disk = MemDisk::new(sectors.min(201));
    let full_disk = sectors <= 201;
    // Ring sizes the board was asked to map, per queue.
    let mut asked: Vec<Option<usize>> = vec![None; QUEUES];
    let mut keys: Vec<String> = Vec::new();
    let mut held: Vec<Work> = Vec::new();
    // The layout of the last keys answered in step 2.
    let mut abi32 = false;

    while input.more() {
        let op = input.byte();
        match op % 11 {
            0 => {
                let b = input.byte();
                if b < 10 {
                    vbd.on_frontend_state(Some(&[b'0' + b]));
                } else if b == 10 {
                    vbd.on_frontend_state(None);
                } else {
                    let v = input.bytes(usize::from(b % 12));
                    vbd.on_frontend_state(Some(v));
                }
            }
            1 => {
                let mut values: Vec<(String, Vec<u8>)> = Vec::new();
                for k in &keys {
                    let b = input.byte();
                    match b & 3 {
                        0 => {}
                        1 => values.push((k.clone(), format!("{}", b >> 2).into())),
                        _ => values.push((k.clone(), input.bytes(usize::from(b >> 4)).to_vec())),
                    }
                }
                let pairs = lookup(&values, &keys);
                vbd.on_frontend_keys(&pairs);
            }
            2 => {
                let b = input.byte();
                let mut store = frontend_keys(u32::from(b % 4), u32::from(b >> 4) % 6, 10, 20);
                abi32 = b & 4 != 0;
                if abi32 {
                    for (k, v) in &mut store {
                        if k == "protocol" {
                            *v = b"x86_32-abi".to_vec();
                        }
                    }
                }
                vbd.on_frontend_keys(&lookup(&store, &keys));
            }
            3 => {
                let b = input.byte();
                let q = usize::from(b) % QUEUES;
                let order = match asked[q] {
                    Some(n) if b & 0x80 == 0 => n.trailing_zeros() as usize,
                    _ => usize::from(b >> 2) % ORDERS,
                };
                vbd.on_ring_mapped(q as u16, &pages[q][order.min(ORDERS - 1)]);
            }
            4 => {
                if input.byte() & 1 != 0 {
                    vbd.unplug();
                } else {
                    vbd.on_map_failed();
                }
            }
            5 => {
                let q = usize::from(input.byte()) % QUEUES;
                let o = usize::from(input.byte()) % ORDERS;
                let off = usize::from(input.u16());
                let n = usize::from(input.byte());
                pages[q][o].poke(off, input.bytes(n));
            }
            6 => {
                let b = input.byte();
                let q = usize::from(b) % QUEUES;
                let o = asked[q].map_or(0, |n| n.trailing_zeros() as usize).min(ORDERS - 1);
                let ring = &pages[q][o];
                let slots = xcp_blkback::wire::ring_slots(o as u32);
                // An i386 frontend's slots are 108 bytes, its id at 4.
                let (size, id_at) = if abi32 { (REQUEST32_SIZE, 4) } else { (REQUEST_SIZE, 8) };
                let mut slot = [0u8; REQUEST_SIZE];
                let body = input.bytes(size);
                slot[..body.len()].copy_from_slice(body);
                // Mostly known ops, so the checks past the op are reached.
                slot[0] = if b & 0x80 == 0 { slot[0] % 8 } else { slot[0] };
                // Mostly a few ids, so reuse while in flight is reached.
                if b & 0x40 == 0 {
                    let id = u64::from(slot[id_at] % 4);
                    slot[id_at..id_at + 8].copy_from_slice(&id.to_le_bytes());
                }
                let slot = &slot[..size];
                let prod = {
                    let mut x = [0u8; 4];
                    use xcp_ring::SharedPage;
                    ring.read(sring::REQ_PROD, &mut x);
                    u32::from_le_bytes(x)
                };
                let at = sring::HEADER_SIZE + (prod & (slots - 1)) as usize * size;
                ring.poke(at, slot);
                ring.poke(sring::REQ_PROD, &prod.wrapping_add(1).to_le_bytes());
            }
            7 => {
                let q = u16::from(input.byte()) % (QUEUES as u16 + 1);
                let poll = vbd.poll(q);
                held.extend(poll.work);
            }
            8 => {
                let b = input.byte();
                if !held.is_empty() {
                    let w = held.remove(usize::from(b) % held.len());
                    match w {
                        Work::Io(io) => {
                            let status = match b >> 6 {
                                0 if full_disk => run(&io, &mut grants, &mut disk),
                                1 => IoStatus::Error,
                                2 => IoStatus::NotSupported,
                                _ => IoStatus::Ok,
                            };
                            vbd.complete(io.token, status);
                        }
                        Work::Fetch(f) => {
                            // Completing a fetch as if it were disk work.
                            assert!(f.pages.iter().all(|&(_, n)| n > 0 && n <= PAGE_SIZE));
                            vbd.complete(f.token, IoStatus::Ok);
                        }
                    }
                }
            }
            9 => {
                let b = input.byte();
                let i = held.iter().position(|w| matches!(w, Work::Fetch(_)));
                if let Some(i) = i {
                    let Work::Fetch(f) = held.remove(i) else {
                        unreachable!()
                    };
                    let bytes = match b & 3 {
                        0 => grants.fetch(&f),
                        1 => None,
                        _ => Some(input.bytes(f.len()).to_vec()),
                    };
                    let done = vbd.indirect_fetched(f.token, bytes.as_deref());
                    if let Some(io) = done.io {
                        assert_eq!(io.token, f.token);
                        held.push(Work::Io(io));
                    }
                }
            }
            _ => {
                let gref = u32::from(input.byte() % 16);
                let n = usize::from(input.u16()) % (PAGE_SIZE + 1);
                grants.grant(DOMID, gref, 0, input.bytes(n));
            }
        }
        let mut n = 0;
        while let Some(a) = vbd.poll_action() {
            n += 1;
            match a {
                Action::ReadFrontendKeys(k) => {
                    assert!(k.len() <= 2 + 4 * 5, "{} keys", k.len());
                    keys = k;
                }
                Action::MapRing { queue, grefs, domid } => {
                    assert_eq!(domid, DOMID);
                    assert!(grefs.len().is_power_of_two() && grefs.len() <= 4);
                    if let Some(s) = asked.get_mut(usize::from(queue)) {
                        *s = Some(grefs.len());
                    }
                }
                _ => {}
            }
        }
        assert!(n <= 40, "{n} actions in one step");
        let (out, bytes) = vbd.in_flight();
        assert_eq!(out, held.len());
        assert!(out <= MAX_REQUESTS_PER_VBD && bytes <= IO_BYTES_PER_VBD);
    }
    // Everything handed out comes back.
    for w in held.drain(..) {
        match w {
            Work::Io(io) => vbd.complete(io.token, IoStatus::Error),
            Work::Fetch(f) => vbd.indirect_fetched(f.token, None).notify,
        };
    }
    assert_eq!(vbd.in_flight(), (0, 0));
});

//! Fuzz target: a hostile peer writes arbitrary stream bytes, indexes and
//! flags into both pages between our channel's operations.
//!
//! read first: ../../README.md (page layout), ../../src/lib.rs.
//!
//! Script: each step takes one byte `op`. `op % 4 == 0`: write the next
//! `1 + op / 4` bytes into our receive ring as the peer's producer would
//! (frames, garbage, anything); 1: poke 2 bytes (offset) + 4 bytes (value)
//! into our receive page; 2: the same into our transmit page; 3: we `recv`
//! and `send`. We must never panic; any error is `Disconnected` (or our own
//! back-pressure) and stays so.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};
use xcp_channel::byte_ring::Producer;
use xcp_channel::{Channel, RecvError, Role, SendError};
use xcp_ring::fake::MemPage;

#[derive(Serialize, Deserialize)]
enum Msg {
    Ping(u32),
    Data(Vec<u8>),
    Text(String),
}

fuzz_target!(|data: &[u8]| {
    let (tx, rx) = (MemPage::new(), MemPage::new());
    let ch = Channel::new(&tx, &rx, Role::Initiator).expect("4096-byte pages fit");
    let mut ch = ch.with_max_message(1024);
    let mut peer = Producer::new(&rx).expect("4096-byte page fits");
    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        match op % 4 {
            0 => {
                let n = (1 + usize::from(op / 4)).min(rest.len());
                let _ = peer.write(&rest[..n]);
                rest = &rest[n..];
            }
            1 | 2 => {
                if rest.len() < 6 {
                    break;
                }
                let page = if op % 4 == 1 { &rx } else { &tx };
                page.poke(
                    usize::from(u16::from_le_bytes([rest[0], rest[1]])),
                    &rest[2..6],
                );
                rest = &rest[6..];
            }
            _ => {
                let before = ch.disconnected();
                match ch.recv::<Msg>() {
                    Ok(_) => assert!(before.is_none()),
                    Err(RecvError::Disconnected(r)) => assert_eq!(Some(r), ch.disconnected()),
                }
                match ch.send(&Msg::Ping(u32::from(op))) {
                    Ok(_) | Err(SendError::WouldBlock(_)) => assert!(ch.disconnected().is_none()),
                    Err(SendError::Disconnected(r)) => assert_eq!(Some(r), ch.disconnected()),
                    Err(e) => panic!("unexpected {e:?}"),
                }
                if before.is_some() {
                    assert_eq!(before, ch.disconnected(), "disconnection is final");
                }
            }
        }
    }
});

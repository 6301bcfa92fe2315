//! A hostile xenstored: the input is a script of client requests, reply
//! bytes pushed into the response ring, and scribbles on the ring's indexes
//! and fields. The client must never panic and never hold more than its
//! limits.
#![no_main]

use std::cell::RefCell;
use libfuzzer_sys::fuzz_target;
use xcp_xenbus::ring::{self, SharedPage};
use xcp_xenbus::{Client, Limits, TxId};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_in_flight: 8,
        max_events: 8,
    };
    let mut client = Client::new(limits);
    let mut page = RefCell::new([0u8; 4096]);
    let mut ids = Vec::new();
    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        match op % 5 {
            0 => {
                let path = ["/a", "b/c", "@releaseDomain", "/local/domain/1"][usize::from(op / 5) % 4];
                let q = match (op / 20) % 6 {
                    0 => client.read(TxId::NONE, path),
                    1 => client.write(TxId(u32::from(op)), path, tail),
                    2 => client.directory(TxId::NONE, path),
                    3 => client.get_perms(TxId::NONE, path),
                    4 => client.transaction_start(),
                    _ => client.watch(path, "t"),
                };
                if let Ok(id) = q {
                    ids.push(id);
                }
            }
            1 => {
                // Reply bytes: a length byte, then that many bytes.
                let Some((&n, tail)) = rest.split_first() else { break };
                let n = usize::from(n).min(tail.len());
                let prod = page.load_u32(ring::RSP_PROD);
                for (i, b) in tail[..n].iter().enumerate() {
                    page.get_mut()[ring::RSP + (prod as usize + i) % 1024] = *b;
                }
                page.store_u32(ring::RSP_PROD, prod.wrapping_add(n as u32));
                rest = &tail[n..];
            }
            2 => {
                let Some((word, tail)) = rest.split_first_chunk::<5>() else { break };
                let at = [ring::REQ_CONS, ring::REQ_PROD, ring::RSP_CONS, ring::RSP_PROD, ring::SERVER_FEATURES, ring::ERROR]
                    [usize::from(word[0]) % 6];
                page.store_u32(at, u32::from_le_bytes([word[1], word[2], word[3], word[4]]));
                rest = tail;
            }
            3 => {
                // The server consumes every request.
                let prod = page.load_u32(ring::REQ_PROD);
                page.store_u32(ring::REQ_CONS, prod);
            }
            _ => {
                ids.retain(|id| client.take_reply(*id).is_none());
                while client.next_event().is_some() {}
            }
        }
        let _ = client.poll(&mut page);
        assert!(client.in_flight() <= limits.max_in_flight);
    }
});

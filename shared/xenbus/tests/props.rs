//! proptest: a hostile xenstored must not crash a domain. Reply parsing is
//! total, random bytes and random ring indexes never panic the client or
//! make it hold more than its limits, and every request gets exactly one
//! outcome when the server answers them in any order.

use proptest::prelude::*;
use std::cell::RefCell;
use xcp_xenbus::ring::{self, SharedPage};
use xcp_xenbus::wire::{self, parse, BadReason, Header, MsgType, Parse};
use xcp_xenbus::{reply, Client, Error, Limits, RequestId, TxId};

fn any_type() -> impl Strategy<Value = MsgType> {
    prop_oneof![
        (0u32..30).prop_map(MsgType::from_code),
        any::<u32>().prop_map(MsgType::from_code),
    ]
}

/// Put `bytes` into the response ring as a server would (as much as fits).
fn serve(page: &mut RefCell<[u8; 4096]>, bytes: &[u8]) -> usize {
    let cons = page.load_u32(ring::RSP_CONS);
    let prod = page.load_u32(ring::RSP_PROD);
    let room = 1024usize.saturating_sub(prod.wrapping_sub(cons) as usize);
    let n = room.min(bytes.len());
    for (i, b) in bytes[..n].iter().enumerate() {
        page.get_mut()[ring::RSP + (prod as usize + i) % 1024] = *b;
    }
    page.store_u32(ring::RSP_PROD, prod.wrapping_add(n as u32));
    n
}

/// Queue a few kinds of requests, as a domain would.
fn queue(c: &mut Client, kind: u8, i: u32) -> Result<RequestId, Error> {
    let path = format!("/p/{i}");
    match kind % 8 {
        0 => c.read(TxId::NONE, &path),
        1 => c.write(TxId::NONE, &path, b"v"),
        2 => c.directory(TxId::NONE, &path),
        3 => c.get_perms(TxId::NONE, &path),
        4 => c.transaction_start(),
        5 => c.watch(&path, "t"),
        6 => c.directory_part(TxId::NONE, &path, i),
        _ => c.is_domain_introduced(1),
    }
}

/// Either a well-formed message with a random header or raw garbage.
fn server_chunk() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (
            any_type(),
            0u32..40,
            any::<u32>(),
            proptest::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(ty, req, tx, payload)| wire::encode(ty, req, tx, &payload).expect("small")),
        (0u32..40, proptest::collection::vec(any::<u8>(), 0..40)).prop_map(|(req, payload)| {
            wire::encode(MsgType::WatchEvent, req, 0, &payload).expect("small")
        }),
        proptest::collection::vec(any::<u8>(), 0..200),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn reply_parsing_is_total(ty in any_type(), payload in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = reply::parse(ty, &payload);
    }

    #[test]
    fn framing_is_total_and_consistent(bytes in proptest::collection::vec(any::<u8>(), 0..5000)) {
        match parse(&bytes) {
            Parse::NeedMore(n) => prop_assert!(n > 0),
            Parse::Bad(BadReason::PayloadTooLong(len)) => prop_assert!(len as usize > wire::XENSTORE_PAYLOAD_MAX),
            Parse::Message { header, total } => {
                prop_assert_eq!(total, 16 + header.len as usize);
                prop_assert!(total <= bytes.len());
                prop_assert_eq!(Header::parse(&bytes).map(|h| h.emit()), Some(header.emit()));
            }
        }
    }

    #[test]
    fn a_hostile_server_cannot_crash_or_bloat_the_client(
        steps in proptest::collection::vec(
            (server_chunk(), any::<u8>(), any::<bool>(), proptest::option::of((0usize..6, any::<u32>()))),
            1..60,
        ),
    ) {
        let limits = Limits { max_in_flight: 8, max_events: 4 };
        let mut c = Client::new(limits);
        let mut page = RefCell::new([0u8; 4096]);
        let mut ids = Vec::new();
        for (i, (chunk, kind, take, poke)) in steps.into_iter().enumerate() {
            if let Ok(id) = queue(&mut c, kind, i as u32) {
                ids.push(id);
            }
            serve(&mut page, &chunk);
            // Sometimes the server scribbles on an index or field.
            if let Some((which, value)) = poke {
                let at = [ring::REQ_CONS, ring::REQ_PROD, ring::RSP_CONS, ring::RSP_PROD,
                          ring::SERVER_FEATURES, ring::ERROR][which];
                page.store_u32(at, value);
            }
            // Also drain the request ring as a server would.
            let prod = page.load_u32(ring::REQ_PROD);
            page.store_u32(ring::REQ_CONS, prod);
            match c.poll(&mut page) {
                Ok(_) => prop_assert!(c.stopped().is_none()),
                Err(_) => prop_assert!(c.stopped().is_some()),
            }
            prop_assert!(c.in_flight() <= limits.max_in_flight);
            if take {
                ids.retain(|id| c.take_reply(*id).is_none());
            }
        }
        let mut events = 0;
        while c.next_event().is_some() {
            events += 1;
        }
        prop_assert!(events <= limits.max_events);
    }

    #[test]
    fn every_request_gets_exactly_one_outcome(
        kinds in proptest::collection::vec(any::<u8>(), 1..8),
        answers in proptest::collection::vec((any::<bool>(), proptest::collection::vec(any::<u8>(), 0..30)), 8),
        order_seed in any::<u64>(),
        events in 0usize..10,
    ) {
        let mut c = Client::default();
        let mut page = RefCell::new([0u8; 4096]);
        let ids: Vec<RequestId> = kinds
            .iter()
            .enumerate()
            .map(|(i, k)| queue(&mut c, *k, i as u32).expect("room"))
            .collect();
        c.poll(&mut page).expect("sent");
        // Read back what went out: the types to answer.
        let mut sent = vec![0u8; page.load_u32(ring::REQ_PROD) as usize];
        page.read(ring::REQ, &mut sent);
        let mut headers = Vec::new();
        let mut rest = &sent[..];
        while let Parse::Message { header, total } = parse(rest) {
            headers.push(header);
            rest = &rest[total..];
        }
        prop_assert_eq!(headers.len(), ids.len());
        // Answer in a shuffled order, errors or random payloads, with
        // watch events in between.
        let mut order: Vec<usize> = (0..headers.len()).collect();
        let mut s = order_seed | 1;
        for i in (1..order.len()).rev() {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            order.swap(i, (s % (i as u64 + 1)) as usize);
        }
        let mut stream = Vec::new();
        for (n, i) in order.iter().enumerate() {
            let h = headers[*i];
            let (error, payload) = &answers[n];
            let msg = if *error {
                wire::encode(MsgType::Error, h.req_id, h.tx_id, b"EACCES\0")
            } else {
                wire::encode(h.ty, h.req_id, h.tx_id, payload)
            };
            stream.extend(msg.expect("small"));
            if n < events {
                stream.extend(wire::encode(MsgType::WatchEvent, 0, 0, b"/e\0t\0").expect("small"));
            }
        }
        let mut offset = 0;
        let mut rounds = 0;
        while offset < stream.len() {
            offset += serve(&mut page, &stream[offset..]);
            c.poll(&mut page).expect("well-framed stream");
            rounds += 1;
            prop_assert!(rounds < 1000);
        }
        for id in ids {
            prop_assert!(c.take_reply(id).is_some(), "one outcome");
            prop_assert!(c.take_reply(id).is_none(), "only one");
        }
        prop_assert_eq!(c.in_flight(), 0);
        prop_assert_eq!(c.stray_replies(), 0);
        let mut seen = 0;
        while c.next_event().is_some() {
            seen += 1;
        }
        prop_assert_eq!(seen, events.min(headers.len()));
    }
}

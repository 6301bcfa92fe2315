//! Property tests: the parser on arbitrary bytes, the engine on random
//! request sequences from dom0 and two guests.

use proptest::prelude::*;
use xenstore_engine::wire::{self, Header, MsgType, Parse, HEADER_LEN, PAYLOAD_MAX};
use xenstore_engine::{Config, ConnId, Engine};

proptest! {
    #[test]
    fn parser_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..5000)) {
        match wire::parse(&bytes) {
            Parse::NeedMore(n) => prop_assert!(n > 0 && n <= HEADER_LEN + PAYLOAD_MAX),
            Parse::Message { header, total } => {
                prop_assert_eq!(total, HEADER_LEN + header.len as usize);
                prop_assert!(total <= bytes.len());
            }
            Parse::Bad(_) => prop_assert!(u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]) as usize > PAYLOAD_MAX),
        }
    }

    #[test]
    fn encode_parse_round_trip(ty in any::<u32>(), req_id in any::<u32>(), tx_id in any::<u32>(),
                               payload in proptest::collection::vec(any::<u8>(), 0..PAYLOAD_MAX)) {
        let msg = wire::encode(MsgType::from_code(ty), req_id, tx_id, &payload);
        let Parse::Message { header, total } = wire::parse(&msg) else { panic!("whole message") };
        prop_assert_eq!(header, Header { ty: MsgType::from_code(ty), req_id, tx_id, len: payload.len() as u32 });
        prop_assert_eq!(total, msg.len());
    }
}

fn path_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"/".to_vec()),
        Just(b"".to_vec()),
        Just(b"@introduceDomain".to_vec()),
        Just(b"@releaseDomain".to_vec()),
        Just(b"/local/domain/5".to_vec()),
        Just(b"//x".to_vec()),
        proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b'/')], 1..12).prop_map(
            |mut v| {
                if v.len() > 3 {
                    v.insert(0, b'/');
                }
                v
            }
        ),
    ]
}

fn request_strategy() -> impl Strategy<Value = (usize, u32, u32, Vec<u8>)> {
    let ty = prop_oneof![
        (0u32..28),
        Just(11u32),
        Just(2u32),
        Just(6u32),
        Just(7u32),
        any::<u32>(),
    ];
    (
        0usize..3,
        ty,
        prop_oneof![Just(0u32), 1u32..4],
        (
            path_strategy(),
            proptest::collection::vec(any::<u8>(), 0..8),
            0u8..6,
        ),
    )
        .prop_map(|(who, ty, tx, (path, extra, shape))| {
            let mut payload = path;
            match shape {
                0 => payload.push(0),
                1 => {
                    payload.push(0);
                    payload.extend_from_slice(&extra);
                }
                2 => payload.extend_from_slice(b"\0tok\0"),
                3 => payload.extend_from_slice(b"\0n0\0r5\0b6\0"),
                4 => payload = extra,
                _ => payload = format!("{}\0{}\0", extra.len() % 7 + 4, extra.len()).into_bytes(),
            }
            (who, ty, tx, payload)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
    #[test]
    fn engine_replies_once_and_keeps_invariants(
        requests in proptest::collection::vec(request_strategy(), 1..80),
        chunk in 1usize..64,
    ) {
        let mut e = Engine::new(Config::default());
        let d0 = e.connect(0);
        let d5 = e.introduce(5, 1, 1).unwrap();
        let d6 = e.introduce(6, 2, 2).unwrap();
        let conns = [d0, d5, d6];
        for (i, (who, ty, tx, payload)) in requests.into_iter().enumerate() {
            let conn = conns[who];
            if !e.is_open(conn) || !e.wants_input(conn) {
                continue;
            }
            let msg = wire::encode(MsgType::from_code(ty), i as u32, tx, &payload);
            // Feed in chunks, as a ring would deliver it.
            for part in msg.chunks(chunk) {
                prop_assert_eq!(e.receive(conn, part), Ok(part.len()));
            }
            let mut replies = 0;
            for c in conns {
                while let Some(out) = e.output(c) {
                    let out = out.to_vec();
                    let Parse::Message { header, total } = wire::parse(&out) else { panic!("partial output") };
                    prop_assert_eq!(total, out.len());
                    if header.ty != MsgType::WatchEvent {
                        prop_assert_eq!(c, conn);
                        prop_assert_eq!(header.req_id, i as u32);
                        replies += 1;
                    }
                    e.consume_output(c, out.len());
                }
            }
            prop_assert_eq!(replies, 1, "exactly one reply");
            let owned: u32 = [0u16, 5, 6].iter().map(|d| e.owned_by(*d)).sum();
            prop_assert_eq!(owned as usize, e.node_count(), "every node counted once");
            for d in [0u16, 5, 6] {
                prop_assert_eq!(e.bytes_used(d), e.audit_bytes(d), "byte accounting drifted");
            }
            let _ = e.take_effects();
            if !e.is_open(ConnId(conn.0)) {
                continue;
            }
        }
    }
}

//! The xenbus handshake: keys written and read, rings mapped, states, and
//! what a frontend's bad keys or states do.

mod common;

use common::*;
use xcp_blkback::fake::{frontend_keys, lookup, MemPages};
use xcp_blkback::wire::{Request, BLKIF_OP_READ, BLKIF_RSP_OKAY, VDISK_READONLY};
use xcp_blkback::{
    Action, Config, DeviceType, DiskInfo, Fault, KeyError, State, Vbd, XenbusState, HEADER_KEYS,
};

fn written(acts: &[Action<&MemPages>]) -> Vec<(String, String)> {
    acts.iter()
        .filter_map(|a| match a {
            Action::WriteBackend { key, value } => Some((key.to_string(), value.clone())),
            _ => None,
        })
        .collect()
}

fn value(w: &[(String, String)], key: &str) -> Option<String> {
    w.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

#[test]
fn init_advertises_then_waits() {
    let mut vbd: TestVbd = Vbd::new(config());
    let acts = drain(&mut vbd);
    let w = written(&acts);
    for (k, v) in [
        ("feature-flush-cache", "1"),
        ("feature-barrier", "1"),
        ("feature-discard", "1"),
        ("discard-granularity", "4096"),
        ("discard-alignment", "0"),
        ("discard-secure", "0"),
        ("feature-persistent", "1"),
        ("feature-max-indirect-segments", "64"),
        ("max-ring-page-order", "2"),
        ("multi-queue-max-queues", "4"),
    ] {
        assert_eq!(value(&w, k).as_deref(), Some(v), "{k}");
    }
    assert!(matches!(
        acts.last(),
        Some(Action::SwitchState(XenbusState::InitWait))
    ));
    assert_eq!(vbd.state(), State::InitWait);
    // Connect keys only come at connect.
    assert_eq!(value(&w, "sectors"), None);
    // A frontend still initialising is waited for.
    vbd.on_frontend_state(Some(b"1"));
    assert!(drain(&mut vbd).is_empty());
}

#[test]
fn single_page_ring() {
    let mut vbd: TestVbd = Vbd::new(config());
    drain(&mut vbd);
    vbd.on_frontend_state(Some(b"3"));
    let acts = drain(&mut vbd);
    assert_eq!(keys_asked(&acts), HEADER_KEYS.map(String::from).to_vec());
    assert_eq!(vbd.state(), State::ReadingHeader);
    let store = frontend_keys(0, 1, RING_GREF, PORT);
    vbd.on_frontend_keys(&lookup(&store, &keys_asked(&acts)));
    let acts = drain(&mut vbd);
    assert_eq!(keys_asked(&acts), ["ring-ref", "event-channel"]);
    vbd.on_frontend_keys(&lookup(&store, &keys_asked(&acts)));
    let acts = drain(&mut vbd);
    assert_eq!(
        format!("{acts:?}"),
        "[MapRing(q0, d7, [100]), BindEventChannel(q0, d7, 20)]"
    );
    assert_eq!(vbd.state(), State::Mapping);
    let page = MemPages::new(1);
    let mut front = Front::new(&page).expect("ring");
    vbd.on_ring_mapped(0, &page);
    let acts = drain(&mut vbd);
    let w = written(&acts);
    assert_eq!(value(&w, "sectors").as_deref(), Some("1024"));
    assert_eq!(value(&w, "info").as_deref(), Some("0"));
    assert_eq!(value(&w, "sector-size").as_deref(), Some("512"));
    assert_eq!(value(&w, "physical-sector-size").as_deref(), Some("4096"));
    assert!(matches!(
        acts.last(),
        Some(Action::SwitchState(XenbusState::Connected))
    ));
    assert_eq!(vbd.num_queues(), 1);
    assert_eq!(vbd.stats().connects, 1);
    // The ring works.
    let mut board = Board::new();
    board.page(DATA_GREF, 0);
    send(
        &mut front,
        &[Request::direct(
            BLKIF_OP_READ,
            0,
            5,
            0,
            &[seg(DATA_GREF, 0, 7)],
        )],
    );
    assert!(board.serve(&mut vbd, 0));
    let r = responses(&mut front);
    assert_eq!((r[0].id, r[0].status), (5, BLKIF_RSP_OKAY));
}

#[test]
fn multi_page_ring() {
    let pages = rings(1, 2);
    let mut vbd: TestVbd = Vbd::new(config());
    let mut fronts = connect(&mut vbd, &pages, 2);
    let front = &mut fronts[0];
    assert_eq!(front.ring.size(), 128);
    let mut board = Board::new();
    board.page(DATA_GREF, 0);
    // More requests than one page's 32 slots, all in flight at once.
    let reqs: Vec<_> = (0..100)
        .map(|i| Request::direct(BLKIF_OP_READ, 0, i, i, &[seg(DATA_GREF, 0, 0)]))
        .collect();
    send(front, &reqs);
    board.serve(&mut vbd, 0);
    let r = responses(front);
    assert_eq!(r.len(), 100);
    assert!(r.iter().all(|r| r.status == BLKIF_RSP_OKAY));
    assert_eq!(vbd.ring_position(0), Some(100));
}

#[test]
fn multi_queue_rings() {
    let pages = rings(3, 1);
    let mut vbd: TestVbd = Vbd::new(config());
    let mut fronts = connect(&mut vbd, &pages, 1);
    assert_eq!(vbd.num_queues(), 3);
    let mut board = Board::new();
    board.page(DATA_GREF, 0);
    for (q, front) in fronts.iter_mut().enumerate() {
        send(
            front,
            &[Request::direct(
                BLKIF_OP_READ,
                0,
                9,
                0,
                &[seg(DATA_GREF, 0, 0)],
            )],
        );
        assert!(board.serve(&mut vbd, q as u16));
    }
    // The same id on different queues is fine: ids are per queue.
    for front in &mut fronts {
        assert_eq!(responses(front).len(), 1);
    }
    assert_eq!(vbd.stats().reads, 3);
    // A queue that does not exist does nothing.
    assert!(vbd.poll(3).work.is_empty());
}

#[test]
fn readonly_cdrom_info() {
    let pages = rings(1, 0);
    let mut vbd: TestVbd = Vbd::new(Config {
        disk: DiskInfo {
            sectors: 100,
            readonly: true,
            device_type: DeviceType::Cdrom,
        },
        ..config()
    });
    drain(&mut vbd);
    vbd.on_frontend_state(Some(b"3"));
    let store = frontend_keys(0, 1, RING_GREF, PORT);
    handshake_keys(&mut vbd, &store);
    vbd.on_ring_mapped(0, &pages[0]);
    let w = written(&drain(&mut vbd));
    let info: u32 = value(&w, "info").expect("info").parse().expect("number");
    assert_eq!(info, VDISK_READONLY | 0x1 | 0x2);
    // 100 sectors is not a whole number of 4 KiB blocks.
    assert_eq!(value(&w, "physical-sector-size").as_deref(), Some("512"));
}

#[test]
fn reconnect_after_the_frontend_closes() {
    let pages = rings(2, 0);
    let mut vbd: TestVbd = Vbd::new(config());
    connect(&mut vbd, &pages, 0);
    vbd.on_frontend_state(Some(b"5"));
    let acts = drain(&mut vbd);
    assert_eq!(
        format!("{acts:?}"),
        "[UnmapRing(q0), UnmapRing(q1), UnbindEventChannels, SwitchState(Closing)]"
    );
    vbd.on_frontend_state(Some(b"6"));
    assert_eq!(format!("{:?}", drain(&mut vbd)), "[SwitchState(Closed)]");
    assert_eq!(vbd.state(), State::Closed);
    // The frontend comes back (a guest reboot, a driver reload).
    let fresh = rings(1, 1);
    connect(&mut vbd, &fresh, 1);
    assert_eq!(vbd.stats().connects, 2);
    assert_eq!(vbd.num_queues(), 1);
}

#[test]
fn resume_after_backend_restart() {
    let pages = rings(1, 0);
    let mut board = Board::new();
    board.page(DATA_GREF, 0);
    let mut front;
    {
        let mut old: TestVbd = Vbd::new(config());
        front = connect(&mut old, &pages, 0).remove(0);
        let reqs: Vec<_> = (0..3)
            .map(|i| Request::direct(BLKIF_OP_READ, 0, i, 0, &[seg(DATA_GREF, 0, 0)]))
            .collect();
        send(&mut front, &reqs);
        // The old backend takes all three but answers only the first
        // before stordom dies.
        let poll = old.poll(0);
        assert_eq!(poll.work.len(), 3);
        let mut work = poll.work.into_iter();
        board.finish(&mut old, work.next().expect("one"));
    }
    assert_eq!(responses(&mut front).len(), 1);
    // A new stordom finds the frontend Connected with its ring as it was.
    let mut vbd: TestVbd = Vbd::new(config());
    drain(&mut vbd);
    vbd.on_frontend_state(Some(b"4"));
    let store = frontend_keys(0, 1, RING_GREF, PORT);
    handshake_keys(&mut vbd, &store);
    vbd.on_ring_mapped(0, &pages[0]);
    drain(&mut vbd);
    assert_eq!(vbd.state(), State::Connected);
    assert_eq!(vbd.ring_position(0), Some(1));
    // The two unanswered requests are taken again, then new ones.
    send(
        &mut front,
        &[Request::direct(
            BLKIF_OP_READ,
            0,
            3,
            0,
            &[seg(DATA_GREF, 0, 0)],
        )],
    );
    board.serve(&mut vbd, 0);
    let ids: Vec<_> = responses(&mut front).iter().map(|r| r.id).collect();
    assert_eq!(ids, [1, 2, 3]);
}

type Store = Vec<(String, Vec<u8>)>;

fn refused(store: Store) -> Fault {
    let mut vbd: TestVbd = Vbd::new(config());
    drain(&mut vbd);
    vbd.on_frontend_state(Some(b"3"));
    drain(&mut vbd);
    vbd.on_frontend_keys(&lookup(&store, &HEADER_KEYS.map(String::from)));
    let mut acts = drain(&mut vbd);
    if let [Action::ReadFrontendKeys(keys)] = acts.as_slice() {
        vbd.on_frontend_keys(&lookup(&store, keys));
        acts = drain(&mut vbd);
    }
    // Nothing mapped or bound; the reason written; Closing.
    assert_eq!(acts.len(), 2, "{acts:?}");
    assert!(matches!(
        &acts[0],
        Action::WriteBackend { key: "error", .. }
    ));
    assert_eq!(vbd.backend_state(), XenbusState::Closing);
    match vbd.state() {
        State::Disconnected(f) => f,
        s => panic!("{s:?}"),
    }
}

fn with(mut store: Store, key: &str, v: &[u8]) -> Store {
    store.retain(|(k, _)| k != key);
    store.push((key.to_string(), v.to_vec()));
    store
}

fn without(mut store: Store, key: &str) -> Store {
    store.retain(|(k, _)| k != key);
    store
}

#[test]
fn bad_keys_disconnect() {
    let one = || frontend_keys(0, 1, RING_GREF, PORT);
    let two = || frontend_keys(1, 2, RING_GREF, PORT);
    let cases: Vec<(Store, Fault)> = vec![
        (
            with(one(), "protocol", b"arm-abi"),
            Fault::Keys(KeyError::Protocol),
        ),
        (
            with(one(), "ring-page-order", b"3"),
            Fault::Keys(KeyError::OutOfRange("ring-page-order")),
        ),
        (
            with(one(), "ring-page-order", b"-1"),
            Fault::Keys(KeyError::NotANumber("ring-page-order")),
        ),
        (
            with(one(), "multi-queue-num-queues", b"0"),
            Fault::Keys(KeyError::OutOfRange("multi-queue-num-queues")),
        ),
        (
            with(one(), "multi-queue-num-queues", b"5"),
            Fault::Keys(KeyError::OutOfRange("multi-queue-num-queues")),
        ),
        (
            with(one(), "feature-persistent", b"yes"),
            Fault::Keys(KeyError::NotABool("feature-persistent")),
        ),
        (
            with(one(), "ring-ref", b" 100"),
            Fault::Keys(KeyError::NotANumber("ring-ref")),
        ),
        (
            with(one(), "ring-ref", b"4294967296"),
            Fault::Keys(KeyError::NotANumber("ring-ref")),
        ),
        (
            without(one(), "ring-ref"),
            Fault::Keys(KeyError::Missing("ring-ref")),
        ),
        (
            with(one(), "event-channel", b"0"),
            Fault::Keys(KeyError::OutOfRange("event-channel")),
        ),
        (
            with(one(), "event-channel", b"131072"),
            Fault::Keys(KeyError::OutOfRange("event-channel")),
        ),
        (
            without(one(), "event-channel"),
            Fault::Keys(KeyError::Missing("event-channel")),
        ),
        (
            without(two(), "queue-1/ring-ref1"),
            Fault::Keys(KeyError::Missing("ring-refN")),
        ),
        (
            with(two(), "queue-0/ring-ref0", b"0x10"),
            Fault::Keys(KeyError::NotANumber("ring-refN")),
        ),
        (
            without(two(), "queue-1/event-channel"),
            Fault::Keys(KeyError::Missing("event-channel")),
        ),
        // Two queues that wrote the one-queue keys only.
        (
            without(
                without(without(two(), "queue-0/ring-ref0"), "queue-0/ring-ref1"),
                "queue-1/ring-ref0",
            ),
            Fault::Keys(KeyError::Missing("ring-refN")),
        ),
    ];
    for (store, fault) in cases {
        assert_eq!(refused(store.clone()), fault, "{store:?}");
    }
    // Absent protocol and a trailing nul are accepted.
    let ok = with(without(one(), "protocol"), "ring-ref", b"100\0");
    let mut vbd: TestVbd = Vbd::new(config());
    drain(&mut vbd);
    vbd.on_frontend_state(Some(b"3"));
    assert_eq!(handshake_keys(&mut vbd, &ok).len(), 1);
}

#[test]
fn map_failures_release_what_was_bound() {
    let pages = rings(2, 0);
    let mut vbd: TestVbd = Vbd::new(config());
    drain(&mut vbd);
    vbd.on_frontend_state(Some(b"3"));
    handshake_keys(&mut vbd, &frontend_keys(0, 2, RING_GREF, PORT));
    vbd.on_ring_mapped(0, &pages[0]);
    vbd.on_map_failed();
    assert_eq!(vbd.state(), State::Disconnected(Fault::MapFailed));
    assert_eq!(
        format!("{:?}", drain(&mut vbd)),
        "[UnmapRing(q0), UnbindEventChannels, WriteBackend(error=MapFailed), SwitchState(Closing)]"
    );
    // A page arriving late is handed straight back.
    vbd.on_ring_mapped(1, &pages[1]);
    assert_eq!(format!("{:?}", drain(&mut vbd)), "[UnmapRing(q1)]");

    // A run of pages of the wrong size.
    let mut vbd: TestVbd = Vbd::new(config());
    drain(&mut vbd);
    vbd.on_frontend_state(Some(b"3"));
    handshake_keys(&mut vbd, &frontend_keys(1, 1, RING_GREF, PORT));
    let short = MemPages::new(1);
    vbd.on_ring_mapped(0, &short);
    assert_eq!(vbd.state(), State::Disconnected(Fault::BadRingPage));
    assert_eq!(
        format!("{:?}", drain(&mut vbd)),
        "[UnmapRing(q0), UnbindEventChannels, WriteBackend(error=BadRingPage), SwitchState(Closing)]"
    );
}

#[test]
fn frontend_states() {
    let pages = rings(1, 0);
    let mut vbd: TestVbd = Vbd::new(config());
    connect(&mut vbd, &pages, 0);
    // Rewriting the same state does nothing (XSA-349).
    for _ in 0..10 {
        vbd.on_frontend_state(Some(b"3"));
    }
    assert!(drain(&mut vbd).is_empty());
    vbd.on_frontend_state(Some(b"7"));
    assert_eq!(vbd.state(), State::Disconnected(Fault::FrontendState(7)));
    assert_eq!(
        format!("{:?}", drain(&mut vbd)),
        "[UnmapRing(q0), UnbindEventChannels, WriteBackend(error=FrontendState(7)), SwitchState(Closing)]"
    );
    // Garbage and a vanished node.
    vbd.on_frontend_state(Some(b"x"));
    assert!(drain(&mut vbd).is_empty());
    vbd.on_frontend_state(None);
    assert_eq!(vbd.state(), State::Closed);
    assert_eq!(format!("{:?}", drain(&mut vbd)), "[SwitchState(Closed)]");
    // Keys that come when not asked for are ignored.
    vbd.on_frontend_keys(&[("ring-ref", b"1")]);
    assert!(drain(&mut vbd).is_empty());
}

#[test]
fn unplug_releases() {
    let pages = rings(1, 0);
    let mut vbd: TestVbd = Vbd::new(config());
    connect(&mut vbd, &pages, 0);
    vbd.unplug();
    assert_eq!(
        format!("{:?}", drain(&mut vbd)),
        "[UnmapRing(q0), UnbindEventChannels, SwitchState(Closing)]"
    );
    assert_eq!(vbd.state(), State::Closing);
    vbd.on_frontend_state(Some(b"6"));
    assert_eq!(vbd.state(), State::Closed);
}

#[test]
fn reconnect_after_a_fault() {
    let pages = rings(1, 0);
    let mut vbd: TestVbd = Vbd::new(config());
    connect(&mut vbd, &pages, 0);
    pages[0].poke(0, &1000u32.to_le_bytes());
    assert!(vbd.poll(0).work.is_empty());
    assert!(matches!(vbd.state(), State::Disconnected(_)));
    // A faulted frontend cannot restart without closing first.
    vbd.on_frontend_state(Some(b"1"));
    vbd.on_frontend_state(Some(b"3"));
    drain(&mut vbd);
    assert!(matches!(vbd.state(), State::Disconnected(_)));
    // Linux blkfront closes when it sees Closing, then starts again.
    vbd.on_frontend_state(Some(b"6"));
    assert_eq!(vbd.state(), State::Closed);
    let fresh = rings(1, 0);
    connect(&mut vbd, &fresh, 0);
    assert_eq!(vbd.stats().connects, 2);
    assert_eq!(vbd.stats().faults, 1);
}

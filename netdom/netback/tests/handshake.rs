//! The xenbus handshake: happy path, restarts, every refused value.

mod common;

use xcp_netback::fake::FakeGrants;

use common::*;
use xcp_netback::{Action, Fault, KeyError, State, Vif, XenbusState};
use xcp_ring::fake::MemPage;

#[test]
fn advertises_then_initwait() {
    let mut vif: TestVif = new_vif(config());
    let acts = drain(&mut vif);
    let keys: Vec<(&str, String)> = acts
        .iter()
        .filter_map(|a| match a {
            Action::WriteBackend { key, value } => Some((*key, value.clone())),
            _ => None,
        })
        .collect();
    for k in [
        "feature-rx-copy",
        "feature-sg",
        "feature-gso-tcpv4",
        "feature-gso-tcpv6",
        "feature-ipv6-csum-offload",
        "feature-split-event-channels",
        "multi-queue-max-queues",
    ] {
        assert!(keys.iter().any(|(n, v)| *n == k && v == "1"), "{k}");
    }
    // The keys are written before the state says InitWait.
    assert!(matches!(
        acts.last(),
        Some(Action::SwitchState(XenbusState::InitWait))
    ));
    assert_eq!(vif.state(), State::InitWait);
}

#[test]
fn budget_too_small_is_refused() {
    let mut c = config();
    c.budget_bytes = 1000;
    assert!(Vif::<&MemPage>::new(c, 0).is_err());
}

#[test]
fn happy_path_maps_binds_connects() {
    let (txp, rxp) = (MemPage::new(), MemPage::new());
    let mut vif = new_vif(config());
    drain(&mut vif);
    vif.on_frontend_state(Some(b"1"));
    assert!(drain(&mut vif).is_empty());
    vif.on_frontend_state(Some(b"3"));
    assert!(matches!(
        drain(&mut vif).as_slice(),
        [Action::ReadFrontendKeys]
    ));
    vif.on_frontend_keys(&good_keys());
    let acts = drain(&mut vif);
    assert!(matches!(
        acts.as_slice(),
        [
            Action::MapRings {
                domid: DOMID,
                tx_ring_ref: TX_RING_REF,
                rx_ring_ref: RX_RING_REF
            },
            Action::BindEventChannels {
                domid: DOMID,
                tx_port: 21,
                rx_port: Some(22)
            }
        ]
    ));
    assert_eq!(vif.state(), State::Mapping);
    let _front = Front::new(&txp, &rxp);
    vif.on_rings_mapped(&txp, &rxp);
    assert!(matches!(
        drain(&mut vif).as_slice(),
        [Action::SwitchState(XenbusState::Connected)]
    ));
    let cfg = vif.frontend_config().expect("connected");
    assert!(cfg.sg && cfg.gso_tcpv4 && cfg.gso_tcpv6 && cfg.csum_offload);
    assert_eq!(vif.stats().connects, 1);
}

#[test]
fn single_event_channel() {
    let mut vif: TestVif = new_vif(config());
    drain(&mut vif);
    vif.on_frontend_state(Some(b"4"));
    drain(&mut vif);
    let mut keys = without("event-channel-tx");
    keys.retain(|(k, _)| *k != "event-channel-rx");
    keys.push(("event-channel", b"5"));
    vif.on_frontend_keys(&keys);
    assert!(drain(&mut vif).iter().any(|a| matches!(
        a,
        Action::BindEventChannels {
            tx_port: 5,
            rx_port: None,
            ..
        }
    )));
}

#[test]
fn close_then_restart_reconnects() {
    let (txp, rxp) = (MemPage::new(), MemPage::new());
    let mut vif = new_vif(config());
    let _front = connect(&mut vif, &txp, &rxp);
    vif.on_frontend_state(Some(b"5"));
    let acts = drain(&mut vif);
    assert!(releases(&acts), "{acts:?}");
    assert!(matches!(
        acts.last(),
        Some(Action::SwitchState(XenbusState::Closing))
    ));
    vif.on_frontend_state(Some(b"6"));
    assert!(matches!(
        drain(&mut vif).as_slice(),
        [Action::SwitchState(XenbusState::Closed)]
    ));
    assert_eq!(vif.state(), State::Closed);
    // The guest's driver (or a new kernel) starts again.
    vif.on_frontend_state(Some(b"1"));
    assert!(matches!(
        drain(&mut vif).as_slice(),
        [Action::SwitchState(XenbusState::InitWait)]
    ));
    let _front = connect(&mut vif, &txp, &rxp);
    assert_eq!(vif.stats().connects, 2);
}

#[test]
fn frontend_restart_while_connected_releases_first() {
    let (txp, rxp) = (MemPage::new(), MemPage::new());
    let mut vif = new_vif(config());
    let _front = connect(&mut vif, &txp, &rxp);
    vif.on_frontend_state(Some(b"1"));
    let acts = drain(&mut vif);
    assert!(releases(&acts));
    assert!(matches!(
        acts.last(),
        Some(Action::SwitchState(XenbusState::InitWait))
    ));
    let _front = connect(&mut vif, &txp, &rxp);
}

#[test]
fn backend_restart_finds_a_connected_frontend() {
    // netdom restarted: a new engine sees the frontend already Connected.
    let (txp, rxp) = (MemPage::new(), MemPage::new());
    let mut vif = new_vif(config());
    drain(&mut vif);
    vif.on_frontend_state(Some(b"4"));
    assert!(matches!(
        drain(&mut vif).as_slice(),
        [Action::ReadFrontendKeys]
    ));
    vif.on_frontend_keys(&good_keys());
    drain(&mut vif);
    let _front = Front::new(&txp, &rxp);
    vif.on_rings_mapped(&txp, &rxp);
    assert_eq!(vif.state(), State::Connected);
}

#[test]
fn a_rebuilt_backend_resumes_a_used_ring() {
    // netdom died mid-traffic and was rebuilt: the frontend kept its
    // rings. The new engine must go on after the last response the old
    // one published, take again what it took without answering, and
    // answer in the slots the frontend expects.
    let (txp, rxp) = (MemPage::new(), MemPage::new());
    let mut g = FakeGrants::new();
    let mut old = new_vif(config());
    let mut front = connect(&mut old, &txp, &rxp);
    let pkt: Vec<u8> = (0..100u8).collect();
    // 300 packets through the old backend: both indexes wrap past 256.
    for id in 0..300u16 {
        g.grant(DOMID, 1000, 0, &pkt);
        front.send(&[slot(1000, 0, 0, id, 100)]);
        assert_eq!(pump_tx(&mut old, &mut g, 0).len(), 1);
        assert_eq!(front.tx_responses().len(), 1);
    }
    // Two more the old backend never saw through, then it dies.
    front.send(&[slot(1000, 0, 0, 7001, 100)]);
    front.send(&[slot(1000, 0, 0, 7002, 100)]);
    drop(old);
    let mut new = new_vif(config());
    drain(&mut new);
    new.on_frontend_state(Some(b"4"));
    assert!(matches!(
        drain(&mut new).as_slice(),
        [Action::ReadFrontendKeys]
    ));
    new.on_frontend_keys(&good_keys());
    drain(&mut new);
    new.on_rings_mapped(&txp, &rxp);
    assert_eq!(new.state(), State::Connected);
    assert_eq!(
        pump_tx(&mut new, &mut g, 0).len(),
        2,
        "the two left waiting"
    );
    let ids: Vec<u16> = front.tx_responses().iter().map(|r| r.id).collect();
    assert_eq!(ids, [7001, 7002]);
    assert_eq!(new.state(), State::Connected);
}

#[test]
fn frontend_gone_closes() {
    let (txp, rxp) = (MemPage::new(), MemPage::new());
    let mut vif = new_vif(config());
    let _front = connect(&mut vif, &txp, &rxp);
    vif.on_frontend_state(None);
    let acts = drain(&mut vif);
    assert!(releases(&acts));
    assert_eq!(vif.state(), State::Closed);
}

#[test]
fn every_refused_value() {
    type Keys = Vec<(&'static str, &'static [u8])>;
    let cases: Vec<(Keys, KeyError)> = vec![
        (
            with("multi-queue-num-queues", b"0"),
            KeyError::OutOfRange("multi-queue-num-queues"),
        ),
        (
            with("multi-queue-num-queues", b"2"),
            KeyError::OutOfRange("multi-queue-num-queues"),
        ),
        (
            with("multi-queue-num-queues", b"-1"),
            KeyError::NotANumber("multi-queue-num-queues"),
        ),
        (without("tx-ring-ref"), KeyError::Missing("tx-ring-ref")),
        (without("rx-ring-ref"), KeyError::Missing("rx-ring-ref")),
        (
            with("tx-ring-ref", b"0x10"),
            KeyError::NotANumber("tx-ring-ref"),
        ),
        (
            with("rx-ring-ref", b"4294967296"),
            KeyError::NotANumber("rx-ring-ref"),
        ),
        (
            with("tx-ring-ref", b" 8"),
            KeyError::NotANumber("tx-ring-ref"),
        ),
        (
            with("tx-ring-ref", b""),
            KeyError::NotANumber("tx-ring-ref"),
        ),
        (
            with("event-channel-tx", b"0"),
            KeyError::OutOfRange("event-channel-tx"),
        ),
        (
            with("event-channel-rx", b"131072"),
            KeyError::OutOfRange("event-channel-rx"),
        ),
        (
            without("event-channel-rx"),
            KeyError::Missing("event-channel-rx"),
        ),
        (
            without("event-channel-tx"),
            KeyError::Missing("event-channel-tx"),
        ),
        (
            without("request-rx-copy"),
            KeyError::Unsupported("request-rx-copy"),
        ),
        (
            with("request-rx-copy", b"0"),
            KeyError::Unsupported("request-rx-copy"),
        ),
        (
            without("feature-rx-notify"),
            KeyError::Unsupported("feature-rx-notify"),
        ),
        (with("feature-sg", b"2"), KeyError::NotABool("feature-sg")),
        (
            with("feature-gso-tcpv4", b"yes"),
            KeyError::NotABool("feature-gso-tcpv4"),
        ),
        (
            with("feature-no-csum-offload", b"01"),
            KeyError::NotABool("feature-no-csum-offload"),
        ),
    ];
    for (keys, expected) in cases {
        let mut vif: TestVif = new_vif(config());
        drain(&mut vif);
        vif.on_frontend_state(Some(b"4"));
        drain(&mut vif);
        vif.on_frontend_keys(&keys);
        assert_eq!(
            vif.state(),
            State::Disconnected(Fault::Keys(expected)),
            "{keys:?}"
        );
        let acts = drain(&mut vif);
        // Nothing was mapped or bound: only the state changes.
        assert!(
            matches!(acts.as_slice(), [Action::SwitchState(XenbusState::Closing)]),
            "{acts:?}"
        );
    }
    // No event channel at all.
    let mut vif: TestVif = new_vif(config());
    drain(&mut vif);
    vif.on_frontend_state(Some(b"4"));
    let mut keys = without("event-channel-tx");
    keys.retain(|(k, _)| *k != "event-channel-rx");
    vif.on_frontend_keys(&keys);
    assert_eq!(
        vif.state(),
        State::Disconnected(Fault::Keys(KeyError::Missing("event-channel")))
    );
}

#[test]
fn split_channels_refused_when_not_offered() {
    let mut c = config();
    c.features.split_event_channels = false;
    let mut vif: TestVif = new_vif(c);
    drain(&mut vif);
    vif.on_frontend_state(Some(b"4"));
    vif.on_frontend_keys(&good_keys());
    assert_eq!(
        vif.state(),
        State::Disconnected(Fault::Keys(KeyError::Unsupported("event-channel-tx")))
    );
}

#[test]
fn features_not_offered_are_not_negotiated() {
    let (txp, rxp) = (MemPage::new(), MemPage::new());
    let mut c = config();
    c.features.gso_tcpv6 = false;
    let mut vif = new_vif(c);
    let _front = connect(&mut vif, &txp, &rxp);
    let cfg = vif.frontend_config().expect("connected");
    assert!(cfg.gso_tcpv4 && !cfg.gso_tcpv6);
}

#[test]
fn bad_frontend_states_disconnect() {
    for bad in [&b"7"[..], b"8", b"9", b"x", b"", b"-1"] {
        let (txp, rxp) = (MemPage::new(), MemPage::new());
        let mut vif = new_vif(config());
        let _front = connect(&mut vif, &txp, &rxp);
        vif.on_frontend_state(Some(bad));
        assert!(
            matches!(vif.state(), State::Disconnected(Fault::FrontendState(_))),
            "{bad:?}"
        );
        let acts = drain(&mut vif);
        assert!(releases(&acts));
        // Then the usual close, and a reconnect.
        vif.on_frontend_state(Some(b"6"));
        vif.on_frontend_state(Some(b"1"));
        let _front = connect(&mut vif, &txp, &rxp);
    }
}

#[test]
fn watch_flood_is_idempotent() {
    // XSA-349: a frontend rewriting its state makes no work.
    let (txp, rxp) = (MemPage::new(), MemPage::new());
    let mut vif = new_vif(config());
    let _front = connect(&mut vif, &txp, &rxp);
    for _ in 0..10_000 {
        vif.on_frontend_state(Some(b"4"));
    }
    assert!(drain(&mut vif).is_empty());
    // Flapping costs a bounded number of actions per flap, never a queue
    // the frontend controls: after each flap the board has drained.
    for _ in 0..100 {
        vif.on_frontend_state(Some(b"5"));
        vif.on_frontend_state(Some(b"6"));
        vif.on_frontend_state(Some(b"1"));
        vif.on_frontend_state(Some(b"4"));
        assert!(drain(&mut vif).len() <= 6);
        vif.on_frontend_keys(&good_keys());
        drain(&mut vif);
        vif.on_rings_mapped(&txp, &rxp);
        drain(&mut vif);
        assert_eq!(vif.state(), State::Connected);
    }
}

#[test]
fn late_and_failed_mappings_are_given_back() {
    let (txp, rxp) = (MemPage::new(), MemPage::new());
    let mut vif: TestVif = new_vif(config());
    drain(&mut vif);
    // Pages that arrive when nobody asked are unmapped at once.
    vif.on_rings_mapped(&txp, &rxp);
    assert!(matches!(
        drain(&mut vif).as_slice(),
        [Action::UnmapRings { .. }]
    ));
    // The frontend closes while the board maps.
    vif.on_frontend_state(Some(b"4"));
    vif.on_frontend_keys(&good_keys());
    drain(&mut vif);
    vif.on_frontend_state(Some(b"5"));
    assert!(drain(&mut vif)
        .iter()
        .any(|a| matches!(a, Action::UnbindEventChannels)));
    vif.on_rings_mapped(&txp, &rxp);
    assert!(matches!(
        drain(&mut vif).as_slice(),
        [Action::UnmapRings { .. }]
    ));
    // A mapping failure (bad grant) disconnects and unbinds.
    let mut vif: TestVif = new_vif(config());
    drain(&mut vif);
    vif.on_frontend_state(Some(b"4"));
    vif.on_frontend_keys(&good_keys());
    drain(&mut vif);
    vif.on_map_failed();
    assert_eq!(vif.state(), State::Disconnected(Fault::MapFailed));
    assert!(drain(&mut vif)
        .iter()
        .any(|a| matches!(a, Action::UnbindEventChannels)));
}

#[test]
fn toolstack_unplug_closes_both_sides() {
    let (txp, rxp) = (MemPage::new(), MemPage::new());
    let mut vif = new_vif(config());
    let _front = connect(&mut vif, &txp, &rxp);
    vif.unplug();
    let acts = drain(&mut vif);
    assert!(releases(&acts));
    assert!(matches!(
        acts.last(),
        Some(Action::SwitchState(XenbusState::Closing))
    ));
    vif.on_frontend_state(Some(b"5"));
    assert!(drain(&mut vif).is_empty());
    vif.on_frontend_state(Some(b"6"));
    assert!(matches!(
        drain(&mut vif).as_slice(),
        [Action::SwitchState(XenbusState::Closed)]
    ));
}

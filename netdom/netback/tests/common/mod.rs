//! Shared helpers: a scripted netfront over `MemPage`s, a handshake driver.
#![allow(dead_code, reason = "each test binary uses a subset")]

use xcp_netback::fake::{FakeGrants, Netfront};
use xcp_netback::wire::{RxResponse, TxRequest, TxResponse};
use xcp_netback::{Action, Config, Features, State, TxPacket, Vif, XenbusState};
use xcp_ring::fake::MemPage;

pub const DOMID: u16 = 7;
pub const TX_RING_REF: u32 = 8;
pub const RX_RING_REF: u32 = 9;

pub type TestVif<'a> = Vif<&'a MemPage>;

pub fn config() -> Config {
    Config {
        frontend_domid: DOMID,
        features: Features::default(),
        budget_bytes: 1 << 20,
        rate: None,
    }
}

pub fn drain<'a>(vif: &mut TestVif<'a>) -> Vec<Action<&'a MemPage>> {
    let mut out = Vec::new();
    while let Some(a) = vif.poll_action() {
        out.push(a);
    }
    out
}

/// The keys Linux netfront writes for one queue, split event channels.
pub fn good_keys() -> Vec<(&'static str, &'static [u8])> {
    vec![
        ("tx-ring-ref", b"8"),
        ("rx-ring-ref", b"9"),
        ("event-channel-tx", b"21"),
        ("event-channel-rx", b"22"),
        ("request-rx-copy", b"1"),
        ("feature-rx-notify", b"1"),
        ("feature-sg", b"1"),
        ("feature-gso-tcpv4", b"1"),
        ("feature-gso-tcpv6", b"1"),
        ("feature-ipv6-csum-offload", b"1"),
        ("multi-queue-num-queues", b"1"),
    ]
}

pub fn with(key: &'static str, value: &'static [u8]) -> Vec<(&'static str, &'static [u8])> {
    let mut keys: Vec<_> = good_keys().into_iter().filter(|(k, _)| *k != key).collect();
    keys.push((key, value));
    keys
}

pub fn without(key: &str) -> Vec<(&'static str, &'static [u8])> {
    good_keys().into_iter().filter(|(k, _)| *k != key).collect()
}

/// The scripted netfront of `xcp_netback::fake`, with panicking helpers.
pub struct Front<'a>(pub Netfront<&'a MemPage>);

impl<'a> Front<'a> {
    pub fn new(txp: &'a MemPage, rxp: &'a MemPage) -> Self {
        Front(Netfront::new(txp, rxp).expect("rings"))
    }

    pub fn send(&mut self, slots: &[TxRequest]) -> bool {
        self.0.send(slots).expect("room")
    }

    pub fn post_rx(&mut self, id: u16, gref: u32) {
        self.0.post_rx(id, gref).expect("room");
    }

    pub fn tx_responses(&mut self) -> Vec<TxResponse> {
        self.0.tx_responses().expect("sane backend")
    }

    /// (slot index, response) pairs.
    pub fn rx_responses(&mut self) -> Vec<(u32, RxResponse)> {
        self.0.rx_responses().expect("sane backend")
    }
}

impl<'a> std::ops::Deref for Front<'a> {
    type Target = Netfront<&'a MemPage>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<'a> std::ops::DerefMut for Front<'a> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

/// Drives `vif` from creation to Connected with `keys`; returns the front.
pub fn connect<'a>(vif: &mut TestVif<'a>, txp: &'a MemPage, rxp: &'a MemPage) -> Front<'a> {
    drain(vif);
    vif.on_frontend_state(Some(b"1"));
    vif.on_frontend_state(Some(b"4"));
    assert!(matches!(drain(vif).as_slice(), [Action::ReadFrontendKeys]));
    vif.on_frontend_keys(&good_keys());
    drain(vif);
    let front = Front::new(txp, rxp);
    vif.on_rings_mapped(txp, rxp);
    let acts = drain(vif);
    assert!(
        matches!(
            acts.as_slice(),
            [Action::SwitchState(XenbusState::Connected)]
        ),
        "{acts:?}"
    );
    assert_eq!(vif.state(), State::Connected);
    front
}

pub fn new_vif<'a>(config: Config) -> TestVif<'a> {
    Vif::new(config, 0).expect("budget")
}

/// A tx slot.
pub fn slot(gref: u32, offset: u16, flags: u16, id: u16, size: u16) -> TxRequest {
    TxRequest {
        gref,
        offset,
        flags,
        id,
        size,
    }
}

/// Runs every tx plan until the engine has none; returns the packets.
pub fn pump_tx(vif: &mut TestVif<'_>, grants: &mut FakeGrants, now: u64) -> Vec<TxPacket> {
    let mut out = Vec::new();
    loop {
        let poll = vif.tx_poll(now);
        let Some(mut plan) = poll.plan else {
            if poll.again {
                continue;
            }
            return out;
        };
        let ok = grants.run_tx(&mut plan);
        if let Some(p) = vif.tx_complete(plan, ok).packet {
            out.push(p);
        }
    }
}

/// True when the actions release the rings and the channels.
pub fn releases(acts: &[Action<&MemPage>]) -> bool {
    acts.iter().any(|a| matches!(a, Action::UnmapRings { .. }))
        && acts
            .iter()
            .any(|a| matches!(a, Action::UnbindEventChannels))
}

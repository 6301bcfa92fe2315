//! netdom's switch: the L2 bridge (`xcp_bridge`) joining the NIC, netdom's
//! own stack and every guest VIF, and each VIF's netback engine
//! (`xcp_netback`) driven from xenstore. Pure: xenstore, grants, event
//! channels and the NIC are reached through [`Platform`]; the PV kernel
//! (`main.rs`) implements it, host tests implement it over fakes.
//!
//! Read first: netdom/DESIGN.md ("Guest VIFs"), `xcp_netback`'s DESIGN.md
//! (the board's loop), `xcp_bridge`'s.
//!
//! The toolstack's contract (xenstore, as libxl and xapi lay it out): for
//! guest `D`'s device `N` it writes, in one transaction,
//! `<base>/D/N/{frontend,frontend-id,online,state,handle,mac,mtu,
//! locking-mode,ipv4-allowed,ipv6-allowed}` under netdom's
//! `backend/vif` (`base`), readable by `D`, and the guest's
//! `device/vif/N`. netdom watches `base` (written only by dom0) and, per
//! VIF, only the frontend's `state` node (XSA-349). `online = 0` asks for
//! a clean unplug (backend → Closing → Closed); the directory removed means
//! the device is gone (its grants and channels are let go at once).

use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::net::{Ipv4Addr, Ipv6Addr};

use xcp_bridge::{
    Bridge, Config as BridgeConfig, Locking, PortConfig, PortCounters, PortId, Verdict, VifConfig,
};
use xcp_netback::{
    Action, Config as VifEngineConfig, Features, RxMeta, RxPlan, State, Stats, TxPlan, Vif,
    FRONTEND_KEYS,
};
use xcp_ring::SharedPage;

use crate::csum;

#[cfg(any(test, feature = "fake"))]
#[path = "switch_fake.rs"]
pub mod fake;

/// The NIC's port.
pub const UPLINK: PortId = PortId(0);
/// netdom's own stack's port.
pub const MANAGEMENT: PortId = PortId(1);
/// The watch token of `base`.
const BACKENDS: &str = "vif-backends";
/// Guest packets taken from one VIF per turn of the loop (`tx_poll`
/// hands one packet per call), so one guest cannot hold the loop. A VIF
/// cut short by it is polled again at once: its frontend, which only kicks
/// when netdom has caught up (`req_event`), would not kick for what is
/// left.
pub const PACKETS_PER_TURN: usize = 64;

/// What the switch needs from the world. Failures are logged by the
/// implementation and reported as `None`/`false`.
pub trait Platform {
    /// A mapped ring page (unmapped on drop).
    type Page: SharedPage;
    /// A xenstore node's value; `None` when absent or unreadable.
    fn read(&mut self, path: &str) -> Option<Vec<u8>>;
    /// Writes a xenstore node.
    fn write(&mut self, path: &str, value: &[u8]) -> bool;
    /// A xenstore directory's children (empty when absent).
    fn directory(&mut self, path: &str) -> Vec<String>;
    /// Watches a xenstore path.
    fn watch(&mut self, path: &str, token: &str) -> bool;
    /// Stops watching it.
    fn unwatch(&mut self, path: &str, token: &str);
    /// Maps a frontend's ring grant, writable.
    fn map_ring(&mut self, domid: u16, gref: u32) -> Option<Self::Page>;
    /// Binds an interdomain event channel to `domid`'s `port`: ours.
    fn bind(&mut self, domid: u16, port: u32) -> Option<u32>;
    /// Closes one of our event channels.
    fn unbind(&mut self, port: u32);
    /// Kicks one of our event channels.
    fn notify(&mut self, port: u32);
    /// Runs a transmit plan's grant copies into `plan.buf`.
    fn copy_tx(&mut self, plan: &mut TxPlan) -> bool;
    /// Runs a receive plan's grant copies from `packet`.
    fn copy_rx(&mut self, plan: &RxPlan, packet: &[u8]) -> bool;
    /// Sends a frame out of the NIC.
    fn uplink_send(&mut self, frame: &[u8]);
}

/// The switch's bounds, from netdom's memory budget.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// VIFs at once.
    pub max_vifs: usize,
    /// Each VIF's engine budget (`xcp_netback::Config::budget_bytes`).
    pub vif_budget: usize,
    /// Frames queued for netdom's own stack, bytes.
    pub stack_queue_bytes: usize,
    /// The bridge's bounds.
    pub bridge: BridgeConfig,
}

/// What the switch counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// VIFs created.
    pub vifs_created: u64,
    /// Backend directories refused (bad keys, over the limit).
    pub vifs_refused: u64,
    /// VIFs that went away.
    pub vifs_removed: u64,
    /// Frames for netdom's stack dropped (its queue was full).
    pub stack_dropped: u64,
    /// Guest packets whose blank checksum could not be completed (sent
    /// on as they were).
    pub csum_unsupported: u64,
    /// Guest packets dropped for lying headers under a blank checksum.
    pub csum_malformed: u64,
    /// Frames a VIF could not take (no posted buffer, budget, ...).
    pub rx_dropped: u64,
}

/// One guest VIF.
struct Slot<P: SharedPage> {
    vif: Vif<P>,
    port: PortId,
    backend: String,
    frontend: String,
    token: String,
    /// Our ends of its event channels (rx is `None` unless split).
    tx_port: Option<u32>,
    rx_port: Option<u32>,
    /// When its rate limit lets it transmit again.
    wait_until: Option<u64>,
    /// The toolstack asked for an unplug (`online = 0`).
    unplugging: bool,
}

impl<P: SharedPage> Slot<P> {
    fn rx_port(&self) -> Option<u32> {
        self.rx_port.or(self.tx_port)
    }
}

/// A VIF's figures, for `VIF_metrics` and the console.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VifReport {
    /// Frontend domain.
    pub domid: u16,
    /// Device number.
    pub devid: u32,
    /// Engine state.
    pub state: State,
    /// Engine counters.
    pub stats: Stats,
    /// Its bridge port's counters.
    pub port: Option<PortCounters>,
}

/// The bridge and the VIFs.
pub struct Switch<P: Platform> {
    base: String,
    limits: Limits,
    bridge: Bridge,
    vifs: BTreeMap<(u16, u32), Slot<P::Page>>,
    ports: BTreeMap<PortId, (u16, u32)>,
    to_stack: VecDeque<Vec<u8>>,
    to_stack_bytes: usize,
    /// What it counted.
    pub counters: Counters,
}

impl<P: Platform> Switch<P> {
    /// A switch for the backend directory `base` (netdom's
    /// `/local/domain/<id>/backend/vif`) with the uplink and netdom's own
    /// port (`mac`); VIFs come from `start`.
    pub fn new(base: &str, mac: [u8; 6], limits: Limits) -> Switch<P> {
        let mut bridge = Bridge::new(limits.bridge);
        // Two ports on an empty bridge with a valid MAC: cannot fail.
        let _ = bridge.add_port(UPLINK, PortConfig::uplink());
        let _ = bridge.add_port(MANAGEMENT, PortConfig::management(mac));
        Switch {
            base: base.into(),
            limits,
            bridge,
            vifs: BTreeMap::new(),
            ports: BTreeMap::new(),
            to_stack: VecDeque::new(),
            to_stack_bytes: 0,
            counters: Counters::default(),
        }
    }

    /// Watches the backend directory (xenstore fires the watch once at
    /// once: that event brings up any VIF already there, e.g. after a
    /// netdom restart).
    pub fn start(&mut self, pf: &mut P) -> bool {
        let base = self.base.clone();
        pf.watch(&base, BACKENDS)
    }

    /// The bridge (for its counters).
    pub fn bridge(&self) -> &Bridge {
        &self.bridge
    }

    /// The VIFs' figures.
    pub fn reports(&self) -> Vec<VifReport> {
        self.vifs
            .iter()
            .map(|(&(domid, devid), s)| VifReport {
                domid,
                devid,
                state: s.vif.state(),
                stats: s.vif.stats(),
                port: self.bridge.port_counters(s.port).copied(),
            })
            .collect()
    }

    /// Our event channel ports of every VIF (to sleep on).
    pub fn ports(&self) -> impl Iterator<Item = u32> + '_ {
        self.vifs
            .values()
            .flat_map(|s| s.tx_port.into_iter().chain(s.rx_port))
    }

    /// A xenstore watch fired. Time (`now`) is ns throughout the switch
    /// (the netback engine counts µs: converted here).
    pub fn on_watch(&mut self, pf: &mut P, now: u64, path: &str, token: &str) {
        if token == BACKENDS {
            let Some(rest) = path.strip_prefix(self.base.as_str()) else {
                return;
            };
            let mut parts = rest.trim_start_matches('/').split('/');
            let d = parts.next().and_then(|d| d.parse::<u16>().ok());
            let n = parts.next().and_then(|n| n.parse::<u32>().ok());
            let key = parts.next();
            match (d, n, key) {
                (Some(d), Some(n), key) => {
                    // Our own writes (state, feature-*) fire too: only
                    // the directory itself, `online` and the rules matter.
                    match key {
                        Some("locking-mode" | "ipv4-allowed" | "ipv6-allowed")
                            if self.vifs.contains_key(&(d, n)) =>
                        {
                            self.update_rules(pf, d, n)
                        }
                        None | Some("online") => self.sync(pf, now, d, n),
                        _ if !self.vifs.contains_key(&(d, n)) => self.sync(pf, now, d, n),
                        _ => {}
                    }
                }
                _ => self.rescan(pf, now),
            }
            return;
        }
        let Some(key) = self
            .vifs
            .iter()
            .find(|(_, s)| s.token == token)
            .map(|(k, _)| *k)
        else {
            return;
        };
        let Some(slot) = self.vifs.get_mut(&key) else {
            return;
        };
        let state = pf.read(&format!("{}/state", slot.frontend));
        slot.vif.on_frontend_state(state.as_deref());
        self.drain(pf, key, true);
    }

    /// Every VIF directory under `base` against what we hold.
    fn rescan(&mut self, pf: &mut P, now: u64) {
        let mut seen = Vec::new();
        let base = self.base.clone();
        for d in pf.directory(&base) {
            let Ok(domid) = d.parse::<u16>() else {
                continue;
            };
            for n in pf.directory(&format!("{base}/{d}")) {
                if let Ok(devid) = n.parse::<u32>() {
                    seen.push((domid, devid));
                }
            }
        }
        let gone: Vec<_> = self
            .vifs
            .keys()
            .filter(|k| !seen.contains(k))
            .copied()
            .collect();
        for (d, n) in gone.into_iter().chain(seen) {
            self.sync(pf, now, d, n);
        }
    }

    /// Brings VIF `(d, n)` in line with its backend directory.
    fn sync(&mut self, pf: &mut P, now: u64, d: u16, n: u32) {
        let backend = format!("{}/{d}/{n}", self.base);
        let present = pf.read(&format!("{backend}/frontend-id")).is_some();
        if !present {
            self.remove(pf, (d, n));
            return;
        }
        if let Some(slot) = self.vifs.get_mut(&(d, n)) {
            let online = pf.read(&format!("{backend}/online"));
            if online.as_deref() == Some(b"0") && !slot.unplugging {
                log::debug!("vif{d}.{n}: unplug asked");
                slot.unplugging = true;
                slot.vif.unplug();
                self.drain(pf, (d, n), true);
            }
            return;
        }
        match self.create(pf, now, d, n, &backend) {
            Ok(()) => self.counters.vifs_created += 1,
            Err(why) => {
                self.counters.vifs_refused += 1;
                log::warn!("vif{d}.{n}: refused: {why}");
                pf.write(&format!("{backend}/hotplug-error"), why.as_bytes());
                let closed = xcp_xenbus::XenbusState::Closed.code().to_string();
                pf.write(&format!("{backend}/state"), closed.as_bytes());
            }
        }
    }

    fn create(
        &mut self,
        pf: &mut P,
        now: u64,
        d: u16,
        n: u32,
        backend: &str,
    ) -> Result<(), String> {
        if self.vifs.len() >= self.limits.max_vifs {
            return Err(format!(
                "netdom serves at most {} VIFs",
                self.limits.max_vifs
            ));
        }
        let frontend = format!("/local/domain/{d}/device/vif/{n}");
        let text = |pf: &mut P, key: &str| read_text(pf, backend, key);
        if text(pf, "frontend-id").as_deref() != Some(d.to_string().as_str()) {
            return Err("frontend-id does not name the directory's domain".into());
        }
        if text(pf, "frontend").as_deref() != Some(frontend.as_str()) {
            return Err(format!("frontend is not {frontend}"));
        }
        let mac = text(pf, "mac")
            .as_deref()
            .and_then(parse_mac)
            .ok_or("mac missing or malformed")?;
        let mtu = match text(pf, "mtu") {
            None => xcp_bridge::DEFAULT_MTU,
            Some(m) => m.parse::<u16>().map_err(|_| "mtu is not a number")?,
        };
        let rules = read_rules(pf, backend, mac)?;
        let port = self.free_port().ok_or("no bridge port left")?;
        let config = PortConfig::vif(rules).with_mtu(mtu);
        self.bridge
            .add_port(port, config)
            .map_err(|e| format!("bridge port: {e:?}"))?;
        let engine = VifEngineConfig {
            frontend_domid: d,
            // No GSO: a guest's 64 KiB segments would have to be cut
            // for the NIC and netdom's stack (netdom/DESIGN.md).
            features: Features {
                gso_tcpv4: false,
                gso_tcpv6: false,
                ..Features::default()
            },
            budget_bytes: self.limits.vif_budget,
            rate: None,
        };
        let vif = match Vif::new(engine, now / 1000) {
            Ok(v) => v,
            Err(_) => {
                let _ = self.bridge.remove_port(port);
                return Err("VIF budget below the engine's minimum".into());
            }
        };
        let token = format!("vif-front/{d}/{n}");
        self.vifs.insert(
            (d, n),
            Slot {
                vif,
                port,
                backend: backend.into(),
                frontend: frontend.clone(),
                token: token.clone(),
                tx_port: None,
                rx_port: None,
                wait_until: None,
                unplugging: false,
            },
        );
        self.ports.insert(port, (d, n));
        log::debug!(
            "vif{d}.{n}: mac {} on bridge port {}",
            format_mac(&mac),
            port.0
        );
        self.drain(pf, (d, n), true);
        // Fires once now, with the frontend's current state.
        pf.watch(&format!("{frontend}/state"), &token);
        Ok(())
    }

    /// The toolstack changed a VIF's locking mode or allowed addresses
    /// (xapi applies these to a plugged VIF at once): the bridge's rules
    /// for its port are replaced. Rules that do not parse leave the port
    /// disabled: a VIF the toolstack meant to restrict must not be left
    /// open.
    fn update_rules(&mut self, pf: &mut P, d: u16, n: u32) {
        let Some(slot) = self.vifs.get(&(d, n)) else {
            return;
        };
        let Some(xcp_bridge::PortKind::Vif(old)) =
            self.bridge.port_config(slot.port).map(|c| c.kind.clone())
        else {
            return;
        };
        let backend = slot.backend.clone();
        let port = slot.port;
        let rules = read_rules(pf, &backend, old.mac).unwrap_or_else(|why| {
            log::warn!("vif{d}.{n}: {why}: disabled until the rules are fixed");
            VifConfig {
                locking: Locking::Disabled,
                ..old.clone()
            }
        });
        if rules == old {
            return;
        }
        match self.bridge.update_vif(port, rules.clone()) {
            Ok(()) => log::debug!(
                "vif{d}.{n}: locking {:?}, {} IPv4 and {} IPv6 address(es) allowed",
                rules.locking,
                rules.ipv4_allowed.len(),
                rules.ipv6_allowed.len()
            ),
            Err(e) => log::warn!("vif{d}.{n}: rules refused: {e:?}"),
        }
    }

    fn free_port(&self) -> Option<PortId> {
        (2..=u16::MAX)
            .map(PortId)
            .find(|p| !self.ports.contains_key(p))
    }

    /// Lets VIF `key` go: its grants, channels, watch and bridge port.
    fn remove(&mut self, pf: &mut P, key: (u16, u32)) {
        let Some(slot) = self.vifs.get_mut(&key) else {
            return;
        };
        pf.unwatch(&format!("{}/state", slot.frontend), &slot.token.clone());
        slot.vif.unplug();
        // The directory is gone: release without writing into it (a write
        // would make the nodes again).
        self.drain(pf, key, false);
        if let Some(slot) = self.vifs.remove(&key) {
            for port in [slot.tx_port, slot.rx_port].into_iter().flatten() {
                pf.unbind(port);
            }
            self.ports.remove(&slot.port);
            let _ = self.bridge.remove_port(slot.port);
            self.counters.vifs_removed += 1;
            log::debug!("vif{}.{}: removed", key.0, key.1);
        }
    }

    /// Does what VIF `key`'s engine asked, until it asks nothing more.
    fn drain(&mut self, pf: &mut P, key: (u16, u32), write: bool) {
        let Some(slot) = self.vifs.get_mut(&key) else {
            return;
        };
        let before = slot.vif.state();
        while let Some(action) = slot.vif.poll_action() {
            match action {
                Action::WriteBackend { key, value } => {
                    if write {
                        pf.write(&format!("{}/{key}", slot.backend), value.as_bytes());
                    }
                }
                Action::SwitchState(s) => {
                    if let (State::Disconnected(fault), xcp_xenbus::XenbusState::Closing) =
                        (slot.vif.state(), s)
                    {
                        log::warn!("vif{}.{}: disconnected: {fault:?}", key.0, key.1);
                    }
                    if write {
                        let v = s.code().to_string();
                        pf.write(&format!("{}/state", slot.backend), v.as_bytes());
                    }
                }
                Action::ReadFrontendKeys => {
                    let values: Vec<(&str, Vec<u8>)> = FRONTEND_KEYS
                        .iter()
                        .filter_map(|k| pf.read(&format!("{}/{k}", slot.frontend)).map(|v| (*k, v)))
                        .collect();
                    let pairs: Vec<(&str, &[u8])> =
                        values.iter().map(|(k, v)| (*k, v.as_slice())).collect();
                    slot.vif.on_frontend_keys(&pairs);
                }
                Action::MapRings {
                    domid,
                    tx_ring_ref,
                    rx_ring_ref,
                } => match (
                    pf.map_ring(domid, tx_ring_ref),
                    pf.map_ring(domid, rx_ring_ref),
                ) {
                    (Some(tx), Some(rx)) => slot.vif.on_rings_mapped(tx, rx),
                    _ => slot.vif.on_map_failed(),
                },
                Action::BindEventChannels {
                    domid,
                    tx_port,
                    rx_port,
                } => {
                    slot.tx_port = pf.bind(domid, tx_port);
                    slot.rx_port = rx_port.and_then(|p| pf.bind(domid, p));
                    if slot.tx_port.is_none() || (rx_port.is_some() && slot.rx_port.is_none()) {
                        log::warn!("vif{}.{}: binding its event channels failed", key.0, key.1);
                        slot.vif.unplug();
                    }
                }
                Action::UnmapRings { tx, rx } => drop((tx, rx)),
                Action::UnbindEventChannels => {
                    for port in [slot.tx_port.take(), slot.rx_port.take()]
                        .into_iter()
                        .flatten()
                    {
                        pf.unbind(port);
                    }
                }
            }
        }
        let after = slot.vif.state();
        if after != before {
            let (d, n) = key;
            match after {
                State::Connected => {
                    let (tx, rx) = slot.vif.ring_positions().unwrap_or_default();
                    log::debug!(
                        "vif{d}.{n}: connected (ports {:?}/{:?}, rings resumed at tx {tx} rx {rx})",
                        slot.tx_port,
                        slot.rx_port
                    );
                }
                // Logged where the backend goes Closing (a tx fault
                // happens before the drain that follows it).
                State::Disconnected(_) => {}
                other => log::debug!("vif{d}.{n}: {other:?}"),
            }
        }
    }

    /// A frame from the NIC.
    pub fn from_uplink(&mut self, pf: &mut P, now: u64, frame: &[u8]) {
        self.forward(pf, now, UPLINK, frame);
    }

    /// A frame from netdom's own stack.
    pub fn from_stack(&mut self, pf: &mut P, now: u64, frame: &[u8]) {
        self.forward(pf, now, MANAGEMENT, frame);
    }

    /// The next frame for netdom's own stack.
    pub fn to_stack(&mut self) -> Option<Vec<u8>> {
        let f = self.to_stack.pop_front()?;
        self.to_stack_bytes -= f.len();
        Some(f)
    }

    /// Takes what every VIF transmitted and forwards it; returns when
    /// to call again at the latest (a rate-limited VIF), `Some(now)` when
    /// packets are left waiting.
    pub fn poll_vifs(&mut self, pf: &mut P, now: u64) -> Option<u64> {
        let keys: Vec<_> = self.vifs.keys().copied().collect();
        let mut next: Option<u64> = None;
        let mut packets = Vec::new();
        for key in keys {
            let Some(slot) = self.vifs.get_mut(&key) else {
                continue;
            };
            if slot.vif.state() != State::Connected {
                continue;
            }
            if slot.wait_until.is_some_and(|t| t > now) {
                next = min_some(next, slot.wait_until);
                continue;
            }
            slot.wait_until = None;
            let mut notify = false;
            // Cut short by the cap: come back at once.
            let mut again = true;
            for _ in 0..PACKETS_PER_TURN {
                let poll = slot.vif.tx_poll(now / 1000);
                notify |= poll.notify;
                slot.wait_until = poll.wait_until.map(|us| us.saturating_mul(1000));
                match poll.plan {
                    Some(mut plan) => {
                        let ok = pf.copy_tx(&mut plan);
                        let done = slot.vif.tx_complete(plan, ok);
                        notify |= done.notify;
                        if let Some(p) = done.packet {
                            packets.push((slot.port, p));
                        }
                    }
                    // Nothing more now (the ring is empty and netdom asked
                    // to be kicked, or the rate limit or budget holds it).
                    None if !poll.again => {
                        again = false;
                        break;
                    }
                    None => {}
                }
            }
            if notify {
                if let Some(port) = slot.tx_port {
                    pf.notify(port);
                }
            }
            if again {
                next = Some(now);
            }
            next = min_some(next, slot.wait_until);
            // A ring the frontend broke disconnects it here.
            self.drain(pf, key, true);
            // Forward as we go so a VIF's packets never pile up.
            for (port, mut p) in packets.drain(..) {
                if p.csum_blank {
                    match csum::complete(&mut p.bytes) {
                        Ok(()) => {}
                        Err(csum::CsumError::Unsupported) => self.counters.csum_unsupported += 1,
                        Err(csum::CsumError::Malformed) => {
                            self.counters.csum_malformed += 1;
                            continue;
                        }
                    }
                }
                self.forward(pf, now, port, &p.bytes);
            }
        }
        next
    }

    /// Ages the MAC table.
    pub fn age(&mut self, now: u64) {
        self.bridge.age(now);
    }

    fn forward(&mut self, pf: &mut P, now: u64, ingress: PortId, frame: &[u8]) {
        let Verdict::Forward(egress) = self.bridge.receive(now, ingress, frame) else {
            return;
        };
        let out: Vec<PortId> = self.bridge.egress(&egress).collect();
        for port in out {
            self.deliver(pf, port, frame);
        }
    }

    fn deliver(&mut self, pf: &mut P, port: PortId, frame: &[u8]) {
        match port {
            UPLINK => pf.uplink_send(frame),
            MANAGEMENT => {
                if self.to_stack_bytes + frame.len() > self.limits.stack_queue_bytes {
                    self.counters.stack_dropped += 1;
                    return;
                }
                self.to_stack_bytes += frame.len();
                self.to_stack.push_back(frame.to_vec());
            }
            _ => {
                let Some(key) = self.ports.get(&port).copied() else {
                    return;
                };
                let Some(slot) = self.vifs.get_mut(&key) else {
                    return;
                };
                match slot.vif.rx_packet(frame.len(), RxMeta::default()) {
                    Ok(plan) => {
                        let ok = pf.copy_rx(&plan, frame);
                        if slot.vif.rx_complete(plan, ok) {
                            if let Some(p) = slot.rx_port() {
                                pf.notify(p);
                            }
                        }
                    }
                    Err(_) => self.counters.rx_dropped += 1,
                }
                self.drain(pf, key, true);
            }
        }
    }
}

/// Backend key `key` of `backend` as text (a trailing NUL dropped);
/// `None` when absent or not UTF-8.
fn read_text<P: Platform>(pf: &mut P, backend: &str, key: &str) -> Option<String> {
    pf.read(&format!("{backend}/{key}"))
        .and_then(|v| String::from_utf8(v).ok())
        .map(|s| s.trim_end_matches('\0').into())
}

/// A VIF's rules from its backend directory (`mac` is its own).
fn read_rules<P: Platform>(pf: &mut P, backend: &str, mac: [u8; 6]) -> Result<VifConfig, String> {
    let mut text = |key: &str| read_text(pf, backend, key);
    let locking = match text("locking-mode").as_deref() {
        None | Some("") | Some("unlocked") | Some("network_default") => Locking::Unlocked,
        Some("locked") => Locking::Locked,
        Some("disabled") => Locking::Disabled,
        Some(other) => return Err(format!("locking-mode {other:?} unknown")),
    };
    let ipv4_allowed = parse_list::<Ipv4Addr>(text("ipv4-allowed"))
        .ok_or("ipv4-allowed is not a list of IPv4 addresses")?;
    let ipv6_allowed = parse_list::<Ipv6Addr>(text("ipv6-allowed"))
        .ok_or("ipv6-allowed is not a list of IPv6 addresses")?;
    Ok(VifConfig {
        mac,
        locking,
        ipv4_allowed,
        ipv6_allowed,
    })
}

fn min_some(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// `aa:bb:cc:dd:ee:ff` (either case).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    let [a, b, c, d, e, f] = mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

/// A comma-separated address list (absent or empty: none); `None` when an
/// entry does not parse or there are more than the bridge takes.
fn parse_list<A: core::str::FromStr>(text: Option<String>) -> Option<Vec<A>> {
    let Some(text) = text else {
        return Some(Vec::new());
    };
    let list: Option<Vec<A>> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().ok())
        .collect();
    list.filter(|l| l.len() <= xcp_bridge::MAX_ALLOWED_ADDRESSES)
}

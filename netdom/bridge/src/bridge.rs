//! The bridge engine: ports, learning, forwarding decisions, counters.
//!
//! One call per frame: [`Bridge::receive`] checks the frame's bounds and
//! the ingress port's locking mode, learns its source, and decides where it
//! goes. The caller copies the frame to each port the [`Verdict`] names
//! (for a flood, [`Bridge::egress`] lists them). Per frame nothing is
//! allocated: a learn inserts into the table's reserved array.
//!
//! Rules (see DESIGN.md for why):
//! - A frame never goes back to the port it came from.
//! - A port's own MAC (a VIF's, netdom's) is fixed: frames to it go to that
//!   port, and no other port can teach the bridge otherwise.
//! - Unicast to a known MAC goes to its port only; unknown unicast,
//!   broadcast and multicast flood to every other port that can take it.
//! - A dropped frame (runt, oversize, disabled, spoofed, bad source) is
//!   never learned.

use alloc::collections::btree_map::{self, BTreeMap};

use crate::filter::{check_locked, DropReason};
use crate::mac_table::{Learned, MacTable};
use crate::port::{
    Locking, PortConfig, PortCounters, PortId, PortKind, VifConfig, ETH_HEADER,
    MAX_ALLOWED_ADDRESSES, MAX_MTU,
};
use crate::{is_group, is_valid_source, Mac};

/// 802.1Q and 802.1ad tag protocol identifiers.
const TPID_8021Q: u16 = 0x8100;
const TPID_8021AD: u16 = 0x88a8;
/// The smallest MTU a port may have (IPv4's minimum, RFC 791).
const MIN_MTU: u16 = 68;

/// The bridge's bounds, fixed at creation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Bytes for the learned MAC table: `table_bytes / ENTRY_BYTES`
    /// (16) entries, reserved at once.
    pub table_bytes: usize,
    /// A learned MAC dies this long after it was last seen, ns.
    pub ageing_ns: u64,
    /// Ports at once.
    pub max_ports: usize,
}

impl Config {
    /// Linux bridge's and xapi's default ageing time: 300 s.
    pub const DEFAULT_AGEING_NS: u64 = 300 * 1_000_000_000;
    /// 64 KiB: 4,096 learned MACs.
    pub const DEFAULT_TABLE_BYTES: usize = 64 * 1024;
    /// 256 ports: the uplink, netdom, 254 VIFs.
    pub const DEFAULT_MAX_PORTS: usize = 256;
}

impl Default for Config {
    fn default() -> Self {
        Self {
            table_bytes: Self::DEFAULT_TABLE_BYTES,
            ageing_ns: Self::DEFAULT_AGEING_NS,
            max_ports: Self::DEFAULT_MAX_PORTS,
        }
    }
}

/// Why a port could not be added or changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortError {
    /// A port with this number is already on the bridge.
    Exists,
    /// No port with this number.
    NoSuchPort,
    /// [`Config::max_ports`] ports are already on the bridge.
    TooManyPorts,
    /// Another port owns this MAC.
    MacInUse,
    /// A group or all-zero MAC cannot be a port's own.
    BadMac,
    /// An MTU outside 68..=[`MAX_MTU`].
    BadMtu,
    /// More than [`MAX_ALLOWED_ADDRESSES`] in an allowed list.
    TooManyAddresses,
    /// The port is not a VIF.
    NotAVif,
    /// A VIF's MAC cannot change while it is plugged.
    MacChanged,
}

/// Bridge-wide counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BridgeCounters {
    /// Frames handed in for a port not on the bridge.
    pub no_such_port: u64,
    /// MACs learned (new entries).
    pub learned: u64,
    /// Learned MACs that moved to another port.
    pub moved: u64,
    /// Learned MACs removed because they aged out (by [`Bridge::age`], or
    /// swept when a full table needed room).
    pub aged_out: u64,
}

/// Where a frame goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Egress {
    /// To this port only.
    Port(PortId),
    /// To every port but `ingress` that can take a frame of `len` bytes
    /// (`tagged`: it carries a VLAN tag) and is not a disabled VIF:
    /// [`Bridge::egress`] lists them.
    Flood {
        /// The port it came from.
        ingress: PortId,
        /// Its length, bytes.
        len: usize,
        /// It carries an 802.1Q/802.1ad tag.
        tagged: bool,
    },
}

/// What to do with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send it there (at least one port).
    Forward(Egress),
    /// Drop it.
    Drop(DropReason),
}

#[derive(Clone, Debug)]
struct Port {
    config: PortConfig,
    counters: PortCounters,
    /// Entries in the MAC table on this port (alive or not yet swept).
    learned: u32,
}

impl Port {
    /// Can this port send a frame of `len` bytes out?
    fn takes(&self, len: usize, tagged: bool) -> bool {
        !self.config.is_disabled() && len <= self.config.max_frame(tagged)
    }
}

/// The L2 bridge.
#[derive(Clone, Debug)]
pub struct Bridge {
    config: Config,
    ports: BTreeMap<PortId, Port>,
    /// Ports' own MACs (VIFs', netdom's): fixed, never aged, never evicted.
    owned: BTreeMap<Mac, PortId>,
    table: MacTable,
    counters: BridgeCounters,
}

/// The ports a frame goes to (see [`Bridge::egress`]).
pub struct EgressPorts<'a> {
    one: Option<PortId>,
    flood: Option<(btree_map::Iter<'a, PortId, Port>, PortId, usize, bool)>,
}

impl Iterator for EgressPorts<'_> {
    type Item = PortId;

    fn next(&mut self) -> Option<PortId> {
        if let Some(p) = self.one.take() {
            return Some(p);
        }
        let (iter, ingress, len, tagged) = self.flood.as_mut()?;
        iter.find(|(id, port)| *id != ingress && port.takes(*len, *tagged))
            .map(|(id, _)| *id)
    }
}

impl Bridge {
    /// An empty bridge; the MAC table's memory is reserved now.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            ports: BTreeMap::new(),
            owned: BTreeMap::new(),
            table: MacTable::with_budget(config.table_bytes, config.ageing_ns),
            counters: BridgeCounters::default(),
        }
    }

    /// The bounds it was made with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Plugs a port in.
    pub fn add_port(&mut self, id: PortId, config: PortConfig) -> Result<(), PortError> {
        if self.ports.contains_key(&id) {
            return Err(PortError::Exists);
        }
        if self.ports.len() >= self.config.max_ports {
            return Err(PortError::TooManyPorts);
        }
        validate(&config)?;
        if let Some(mac) = config.own_mac() {
            if self.owned.contains_key(&mac) {
                return Err(PortError::MacInUse);
            }
            // Learned elsewhere before its owner came: the owner wins.
            if let Some(e) = self.table.remove(&mac) {
                self.uncount(e.port);
            }
            self.owned.insert(mac, id);
        }
        self.ports.insert(
            id,
            Port {
                config,
                counters: PortCounters::default(),
                learned: 0,
            },
        );
        Ok(())
    }

    /// Unplugs a port: its MACs, owned and learned, are forgotten. Returns
    /// its last counters.
    pub fn remove_port(&mut self, id: PortId) -> Result<PortCounters, PortError> {
        let port = self.ports.remove(&id).ok_or(PortError::NoSuchPort)?;
        if let Some(mac) = port.config.own_mac() {
            self.owned.remove(&mac);
        }
        self.table.forget_port(id);
        Ok(port.counters)
    }

    /// Changes a plugged VIF's locking mode and allowed addresses
    /// (`VIF.set_locking_mode`, `VIF.set_ipv4_allowed`, ... on a running
    /// VM). Its MAC must stay the same. A VIF that becomes locked or
    /// disabled forgets the MACs it had taught.
    pub fn update_vif(&mut self, id: PortId, vif: VifConfig) -> Result<(), PortError> {
        let port = self.ports.get_mut(&id).ok_or(PortError::NoSuchPort)?;
        let PortKind::Vif(old) = &port.config.kind else {
            return Err(PortError::NotAVif);
        };
        if old.mac != vif.mac {
            return Err(PortError::MacChanged);
        }
        let mut config = port.config.clone();
        let strict = matches!(vif.locking, Locking::Locked | Locking::Disabled);
        config.kind = PortKind::Vif(vif);
        validate(&config)?;
        port.config = config;
        if strict {
            port.learned = 0;
            self.table.forget_port(id);
        }
        Ok(())
    }

    /// A port's configuration.
    pub fn port_config(&self, id: PortId) -> Option<&PortConfig> {
        self.ports.get(&id).map(|p| &p.config)
    }

    /// A port's counters.
    pub fn port_counters(&self, id: PortId) -> Option<&PortCounters> {
        self.ports.get(&id).map(|p| &p.counters)
    }

    /// How many MACs a port has taught (entries in the table on it).
    pub fn port_learned(&self, id: PortId) -> Option<u32> {
        self.ports.get(&id).map(|p| p.learned)
    }

    /// The ports on the bridge, in order.
    pub fn ports(&self) -> impl Iterator<Item = PortId> + '_ {
        self.ports.keys().copied()
    }

    /// Bridge-wide counters.
    pub fn counters(&self) -> &BridgeCounters {
        &self.counters
    }

    /// The learned MAC table.
    pub fn table(&self) -> &MacTable {
        &self.table
    }

    /// Where frames to `mac` go at `now`: its owner, or where it was
    /// learned, or `None` (flooded).
    pub fn lookup(&self, mac: &Mac, now: u64) -> Option<PortId> {
        self.owned
            .get(mac)
            .copied()
            .or_else(|| self.table.lookup(mac, now))
    }

    /// The ports `egress` names.
    pub fn egress(&self, egress: &Egress) -> EgressPorts<'_> {
        match *egress {
            Egress::Port(p) => EgressPorts {
                one: Some(p),
                flood: None,
            },
            Egress::Flood {
                ingress,
                len,
                tagged,
            } => EgressPorts {
                one: None,
                flood: Some((self.ports.iter(), ingress, len, tagged)),
            },
        }
    }

    /// Removes learned MACs not seen for the ageing time before `now`;
    /// returns how many. Call it now and then (each second, as Linux's
    /// gc timer does); lookups already ignore dead entries.
    pub fn age(&mut self, now: u64) -> usize {
        let ports = &mut self.ports;
        let n = self.table.age(now, |e| uncount(ports, e.port));
        self.counters.aged_out += n as u64;
        n
    }

    /// Checks the bridge's internal consistency; for tests and fuzzing.
    /// The table is sorted, unique, within its capacity and never
    /// reallocated; every entry names a live port and no owned MAC; each
    /// port's learned count is its entries and within its quota; each owned
    /// MAC names the live port that owns it.
    pub fn check(&self) -> Result<(), &'static str> {
        let entries = self.table.entries();
        if entries.len() > self.table.capacity() {
            return Err("table over capacity");
        }
        if !self.table.reserved() {
            return Err("table reallocated");
        }
        if !entries.windows(2).all(|w| w[0].mac < w[1].mac) {
            return Err("table not sorted or not unique");
        }
        for e in entries {
            if !self.ports.contains_key(&e.port) {
                return Err("entry on a removed port");
            }
            if self.owned.contains_key(&e.mac) {
                return Err("owned MAC in the learned table");
            }
            if !is_valid_source(&e.mac) {
                return Err("group or zero MAC learned");
            }
        }
        for (id, port) in &self.ports {
            let n = entries.iter().filter(|e| e.port == *id).count();
            if n != port.learned as usize {
                return Err("learned count differs from the table");
            }
            if port.learned > port.config.max_learned {
                return Err("port over its quota");
            }
            if let Some(mac) = port.config.own_mac() {
                if self.owned.get(&mac) != Some(id) {
                    return Err("own MAC not owned");
                }
            }
        }
        if self.owned.values().any(|id| !self.ports.contains_key(id)) {
            return Err("owned MAC of a removed port");
        }
        Ok(())
    }

    fn uncount(&mut self, id: PortId) {
        uncount(&mut self.ports, id);
    }

    /// A frame arrived on `ingress` at `now` (ns): where it goes.
    pub fn receive(&mut self, now: u64, ingress: PortId, frame: &[u8]) -> Verdict {
        let Some(port) = self.ports.get_mut(&ingress) else {
            self.counters.no_such_port += 1;
            return Verdict::Drop(DropReason::NoSuchPort);
        };
        let len = frame.len();
        let c = &mut port.counters;
        c.rx_frames += 1;
        c.rx_bytes += len as u64;
        if len < ETH_HEADER {
            c.drop_runt += 1;
            return Verdict::Drop(DropReason::Runt);
        }
        let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
        let tagged = matches!(ethertype, TPID_8021Q | TPID_8021AD);
        if len > port.config.max_frame(tagged) {
            c.drop_oversize += 1;
            return Verdict::Drop(DropReason::Oversize);
        }
        let dst: Mac = frame[0..6].try_into().expect("6 bytes");
        let src: Mac = frame[6..12].try_into().expect("6 bytes");
        match &port.config.kind {
            PortKind::Vif(vif) if vif.locking == Locking::Disabled => {
                c.drop_disabled += 1;
                return Verdict::Drop(DropReason::Disabled);
            }
            _ if !is_valid_source(&src) => {
                c.drop_bad_source += 1;
                return Verdict::Drop(DropReason::BadSource);
            }
            PortKind::Vif(vif) if vif.locking == Locking::Locked => {
                if let Err(why) = check_locked(vif, frame) {
                    c.drop_spoofed += 1;
                    return Verdict::Drop(DropReason::Spoofed(why));
                }
            }
            _ => {}
        }
        self.learn(now, ingress, src);
        self.forward(now, ingress, dst, len, tagged)
    }

    fn learn(&mut self, now: u64, ingress: PortId, src: Mac) {
        if let Some(&owner) = self.owned.get(&src) {
            if owner != ingress {
                self.count(ingress, |c| c.learn_owned_elsewhere += 1);
            }
            return;
        }
        let port = self.ports.get(&ingress).expect("ingress port exists");
        let may_add = port.learned < port.config.max_learned;
        let ports = &mut self.ports;
        let mut swept = 0u64;
        let learned = self.table.learn(src, ingress, now, may_add, |e| {
            swept += 1;
            uncount(ports, e.port);
        });
        self.counters.aged_out += swept;
        let port = self.ports.get_mut(&ingress).expect("ingress port exists");
        match learned {
            Some(Learned::Refreshed) => {}
            Some(Learned::New) => {
                port.learned += 1;
                self.counters.learned += 1;
            }
            Some(Learned::Moved { from }) => {
                port.learned += 1;
                self.counters.moved += 1;
                uncount(&mut self.ports, from);
            }
            Some(Learned::Full) => port.counters.learn_table_full += 1,
            None => port.counters.learn_port_quota += 1,
        }
    }

    fn forward(
        &mut self,
        now: u64,
        ingress: PortId,
        dst: Mac,
        len: usize,
        tagged: bool,
    ) -> Verdict {
        let known = if is_group(&dst) {
            None
        } else {
            self.lookup(&dst, now)
        };
        if let Some(to) = known {
            if to == ingress {
                self.count(ingress, |c| c.drop_local += 1);
                return Verdict::Drop(DropReason::Local);
            }
            let port = self
                .ports
                .get_mut(&to)
                .expect("owned and learned MACs name live ports");
            if port.takes(len, tagged) {
                port.counters.tx_frames += 1;
                port.counters.tx_bytes += len as u64;
                return Verdict::Forward(Egress::Port(to));
            }
            if !port.config.is_disabled() {
                port.counters.tx_drop_oversize += 1;
            }
            self.count(ingress, |c| c.drop_no_egress += 1);
            return Verdict::Drop(DropReason::NoEgress);
        }
        let mut sent = 0u32;
        for (id, port) in self.ports.iter_mut() {
            if *id == ingress || port.config.is_disabled() {
                continue;
            }
            if port.takes(len, tagged) {
                port.counters.tx_frames += 1;
                port.counters.tx_bytes += len as u64;
                sent += 1;
            } else {
                port.counters.tx_drop_oversize += 1;
            }
        }
        if sent == 0 {
            self.count(ingress, |c| c.drop_no_egress += 1);
            return Verdict::Drop(DropReason::NoEgress);
        }
        Verdict::Forward(Egress::Flood {
            ingress,
            len,
            tagged,
        })
    }

    fn count(&mut self, id: PortId, f: impl FnOnce(&mut PortCounters)) {
        if let Some(p) = self.ports.get_mut(&id) {
            f(&mut p.counters);
        }
    }
}

fn uncount(ports: &mut BTreeMap<PortId, Port>, id: PortId) {
    if let Some(p) = ports.get_mut(&id) {
        p.learned = p.learned.saturating_sub(1);
    }
}

fn validate(config: &PortConfig) -> Result<(), PortError> {
    if !(MIN_MTU..=MAX_MTU).contains(&config.mtu) {
        return Err(PortError::BadMtu);
    }
    if let Some(mac) = config.own_mac() {
        if !is_valid_source(&mac) {
            return Err(PortError::BadMac);
        }
    }
    if let PortKind::Vif(v) = &config.kind {
        if v.ipv4_allowed.len() > MAX_ALLOWED_ADDRESSES
            || v.ipv6_allowed.len() > MAX_ALLOWED_ADDRESSES
        {
            return Err(PortError::TooManyAddresses);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DESIGN.md's per-port arithmetic: a port's state is at most 256
    /// bytes before its address lists.
    #[test]
    fn port_state_fits_the_budget() {
        assert!(
            core::mem::size_of::<Port>() <= 256,
            "{}",
            core::mem::size_of::<Port>()
        );
        assert!(core::mem::size_of::<PortCounters>() == 15 * 8);
    }
}

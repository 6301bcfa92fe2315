//! Ports: what is plugged into the bridge, its rules and its counters.
//!
//! A port is the physical NIC (the uplink), netdom's own management stack,
//! or a guest VIF. Only VIFs carry a `locking_mode` (xapi's
//! `VIF.locking_mode`); the uplink and the management port are trusted.

use alloc::vec::Vec;
use core::net::{Ipv4Addr, Ipv6Addr};

use crate::Mac;

/// A port's number, chosen by the caller (the board maps a VIF's
/// `(domid, devid)` to one). 16 bits keep a MAC table entry at 16 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortId(pub u16);

/// The Ethernet header: destination, source, ethertype.
pub const ETH_HEADER: usize = 14;
/// An 802.1Q tag, allowed on top of the MTU as Linux does.
pub const VLAN_TAG: usize = 4;
/// The default MTU (xapi's `network.MTU` default).
pub const DEFAULT_MTU: u16 = 1500;
/// The largest MTU a port may have (jumbo frames).
pub const MAX_MTU: u16 = 9216;
/// The most addresses in a VIF's `ipv4_allowed` (and, separately,
/// `ipv6_allowed`); a longer list is refused when the port is added.
pub const MAX_ALLOWED_ADDRESSES: usize = 32;

/// xapi's `vif_locking_mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Locking {
    /// Whatever the network's default is; the board resolves it, and the
    /// engine treats it as [`Locking::Unlocked`].
    NetworkDefault,
    /// Anything goes: any source MAC and address.
    Unlocked,
    /// Only the VIF's MAC, and only addresses in `ipv4_allowed` /
    /// `ipv6_allowed` (plus DHCP from 0.0.0.0 and IPv6 DAD from ::).
    Locked,
    /// Every frame from or to the VIF is dropped.
    Disabled,
}

/// A guest VIF's identity and rules, as in its XenAPI VIF record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VifConfig {
    /// `VIF.MAC`: frames to it go to this port, and no other port may
    /// teach the bridge otherwise.
    pub mac: Mac,
    /// `VIF.locking_mode`.
    pub locking: Locking,
    /// `VIF.ipv4_allowed` (at most [`MAX_ALLOWED_ADDRESSES`]).
    pub ipv4_allowed: Vec<Ipv4Addr>,
    /// `VIF.ipv6_allowed` (at most [`MAX_ALLOWED_ADDRESSES`]).
    pub ipv6_allowed: Vec<Ipv6Addr>,
}

impl VifConfig {
    /// An unlocked VIF with `mac` and no address lists.
    pub fn unlocked(mac: Mac) -> Self {
        Self {
            mac,
            locking: Locking::Unlocked,
            ipv4_allowed: Vec::new(),
            ipv6_allowed: Vec::new(),
        }
    }

    /// A locked VIF with `mac` and the given addresses.
    pub fn locked(mac: Mac, ipv4: &[Ipv4Addr], ipv6: &[Ipv6Addr]) -> Self {
        Self {
            mac,
            locking: Locking::Locked,
            ipv4_allowed: ipv4.to_vec(),
            ipv6_allowed: ipv6.to_vec(),
        }
    }
}

/// What a port is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortKind {
    /// The physical NIC: many stations behind it, no locking.
    Uplink,
    /// netdom's own stack, with its MAC (owned like a VIF's).
    Management {
        /// netdom's MAC on this bridge.
        mac: Mac,
    },
    /// A guest VIF.
    Vif(VifConfig),
}

/// A port's configuration when it is added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortConfig {
    /// What it is.
    pub kind: PortKind,
    /// The port's MTU: the largest payload after the Ethernet header
    /// (68..=[`MAX_MTU`]).
    pub mtu: u16,
    /// How many MACs this port may teach the bridge (its own MAC, if it
    /// has one, is apart and not counted). Bounds what one guest can take
    /// of the shared table.
    pub max_learned: u32,
}

impl PortConfig {
    /// The uplink: default MTU, may fill the whole table.
    pub fn uplink() -> Self {
        Self {
            kind: PortKind::Uplink,
            mtu: DEFAULT_MTU,
            max_learned: u32::MAX,
        }
    }

    /// netdom's management port with `mac`: it learns nothing else.
    pub fn management(mac: Mac) -> Self {
        Self {
            kind: PortKind::Management { mac },
            mtu: DEFAULT_MTU,
            max_learned: 0,
        }
    }

    /// A VIF: default MTU, up to [`PortConfig::DEFAULT_VIF_LEARNED`]
    /// MACs (a guest may bridge other stations, e.g. nested VMs).
    pub fn vif(vif: VifConfig) -> Self {
        Self {
            kind: PortKind::Vif(vif),
            mtu: DEFAULT_MTU,
            max_learned: Self::DEFAULT_VIF_LEARNED,
        }
    }

    /// MACs an unlocked VIF may teach by default.
    pub const DEFAULT_VIF_LEARNED: u32 = 64;

    /// The same with another MTU.
    pub fn with_mtu(mut self, mtu: u16) -> Self {
        self.mtu = mtu;
        self
    }

    /// The MAC this port owns, if any.
    pub fn own_mac(&self) -> Option<Mac> {
        match &self.kind {
            PortKind::Uplink => None,
            PortKind::Management { mac } => Some(*mac),
            PortKind::Vif(v) => Some(v.mac),
        }
    }

    /// The longest frame this port takes or sends: MTU + header, and a
    /// VLAN tag on top when the frame carries one.
    pub fn max_frame(&self, tagged: bool) -> usize {
        usize::from(self.mtu) + ETH_HEADER + if tagged { VLAN_TAG } else { 0 }
    }

    /// The VIF locking mode, for VIF ports.
    pub fn locking(&self) -> Option<Locking> {
        match &self.kind {
            PortKind::Vif(v) => Some(v.locking),
            _ => None,
        }
    }

    /// True if the port neither sends nor receives (a disabled VIF).
    pub fn is_disabled(&self) -> bool {
        self.locking() == Some(Locking::Disabled)
    }
}

/// One port's counters, for XenAPI `VIF_metrics` (monotonic, wrapping
/// only after 2^64).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortCounters {
    /// Frames that arrived on the port, dropped or not.
    pub rx_frames: u64,
    /// Their bytes (whole frames, header included).
    pub rx_bytes: u64,
    /// Frames the bridge sent out of the port.
    pub tx_frames: u64,
    /// Their bytes.
    pub tx_bytes: u64,
    /// Arrived shorter than an Ethernet header.
    pub drop_runt: u64,
    /// Arrived longer than MTU + header.
    pub drop_oversize: u64,
    /// Refused by the port's locking mode ([`Locking::Locked`]).
    pub drop_spoofed: u64,
    /// From a [`Locking::Disabled`] VIF.
    pub drop_disabled: u64,
    /// A group or all-zero source MAC.
    pub drop_bad_source: u64,
    /// Its destination is on the port it came from (no hairpin).
    pub drop_local: u64,
    /// Its destination (or every other port) could not take it: too long
    /// for the egress MTU, or a disabled VIF, or no other port.
    pub drop_no_egress: u64,
    /// Frames meant for this port that did not fit its MTU.
    pub tx_drop_oversize: u64,
    /// A new source MAC not learned: the table was full (the frame was
    /// still forwarded).
    pub learn_table_full: u64,
    /// A new source MAC not learned: the port had taught its
    /// `max_learned` (the frame was still forwarded).
    pub learn_port_quota: u64,
    /// A source MAC another port owns (a VIF's, netdom's): not learned
    /// (the frame was still forwarded, unless locking dropped it).
    pub learn_owned_elsewhere: u64,
}

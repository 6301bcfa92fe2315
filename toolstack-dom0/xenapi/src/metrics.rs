//! What the network driver domain reports, as xapi's records show it:
//! guest VIF counters become `VIF_metrics` rates, and its management
//! interface becomes the management PIF's `MAC`, `IP`, `netmask`,
//! `gateway` and `ip_configuration_mode`.
//!
//! Read first: `shared/relay/src/lib.rs` (`ToToolstack::VifStats`,
//! `ToToolstack::Link`), xapi's `VIF_metrics` and `PIF` classes.
//!
//! The reports are a peer's claims (a compromised netdom must not hurt
//! dom0): at most [`MAX_VIF_STATS`] entries a message are looked at, an
//! entry for a VIF dom0 does not know (no Running or Paused VM with that
//! domid, no attached VIF of it with that device) is ignored and counted,
//! and a VIF's rates change at most once per [`MIN_SAMPLE_MS`], so a
//! chatty netdom cannot flood the event log. A link with a prefix beyond
//! 32 is refused.
//!
//! - `io_read_kbs`: KiB/s the guest received (netback's rx), and
//!   `io_write_kbs`: KiB/s it sent (tx), each over the time between two
//!   samples dom0 received. The first sample of a VIF, a counter that went
//!   backwards (netdom restarted) or a VIF now of another domain starts
//!   again from that sample. Rates and `last_updated` are written only
//!   when a rate changes (an idle VIF writes nothing); a VIF that detaches
//!   has its rates set to 0.
//! - The management PIF follows the link; the network's `bridge` stays
//!   `xenbr0` (netdom's bridge serves it).

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::net::Ipv4Addr;

use xcp_relay::{VifCounters, MAX_VIF_STATS};

use crate::engine::Engine;
use crate::error::ApiError;
use crate::hypervisor::Hypervisor;
use crate::power::vm_class;
use crate::rng::Entropy;
use crate::schema::{class_id, ClassId};
use crate::value::{format_datetime, Instant, Value};
use crate::vif::{format_mac, parse_device, vif_class};
use crate::wal::Storage;

/// The shortest time between two samples of one VIF that make a rate, ms
/// (netdom samples every 2 s); a sooner one is ignored.
pub const MIN_SAMPLE_MS: u64 = 1_000;

/// A VIF's last sample (not persisted: rates start again after a restart).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct VifSample {
    domid: u16,
    rx_bytes: u64,
    tx_bytes: u64,
    at: Instant,
}

/// What the reports did, since the engine started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetricsCounters {
    /// VIF entries that set rates or started a VIF's sampling.
    pub vif_samples: u64,
    /// VIF entries for a VIF dom0 does not know (ignored).
    pub unknown_vifs: u64,
    /// VIF entries beyond [`MAX_VIF_STATS`] in one message (ignored).
    pub excess_entries: u64,
    /// VIF entries sooner than [`MIN_SAMPLE_MS`] after the last (ignored).
    pub early_samples: u64,
    /// Links refused (a prefix beyond 32).
    pub bad_links: u64,
}

/// The network driver domain's management interface
/// (`ToToolstack::Link`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ManagementLink {
    /// Its MAC.
    pub mac: [u8; 6],
    /// Its IPv4 address.
    pub address: [u8; 4],
    /// Its subnet's prefix length.
    pub prefix: u8,
    /// The default gateway, if any.
    pub gateway: Option<[u8; 4]>,
    /// The address came from DHCP.
    pub dhcp: bool,
}

fn metrics_class() -> ClassId {
    class_id("VIF_metrics").expect("schema has VIF_metrics")
}

fn pif_class() -> ClassId {
    class_id("PIF").expect("schema has PIF")
}

/// KiB/s of `bytes` over `ms` milliseconds (`ms` > 0).
fn kib_per_s(bytes: u64, ms: u64) -> f64 {
    bytes as f64 * 1000.0 / 1024.0 / ms as f64
}

/// The dotted netmask of a prefix length (at most 32).
fn netmask(prefix: u8) -> Ipv4Addr {
    let bits = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    Ipv4Addr::from(bits)
}

impl<H: Hypervisor, S: Storage, E: Entropy> Engine<H, S, E> {
    /// What the network driver domain's reports did so far.
    pub fn metrics_counters(&self) -> MetricsCounters {
        self.metrics_counters
    }

    /// Applies a `VifStats` message received at `now` (see the module
    /// documentation) and commits; returns whether a record changed
    /// (parked `event.from` calls should be served).
    pub fn vif_stats(&mut self, now: Instant, entries: &[VifCounters]) -> Result<bool, ApiError> {
        if self.poisoned {
            return Ok(false);
        }
        self.now = now;
        let (looked, excess) = entries.split_at(entries.len().min(MAX_VIF_STATS));
        self.metrics_counters.excess_entries += excess.len() as u64;
        // The VMs with a domain, by domid (one pass, not one per entry).
        let vc = vm_class();
        let mut by_domid: Vec<(u16, String)> = Vec::new();
        for (vm, _) in self.db.table(vc).objects.iter() {
            let field = |f: &str| self.db.field(vc, vm, f);
            let live = matches!(
                field("power_state").and_then(Value::as_str),
                Some("Running" | "Paused")
            );
            let control = field("is_control_domain").and_then(Value::as_bool) == Some(true);
            let domid = field("domid").and_then(Value::as_int);
            if let (true, false, Some(d)) =
                (live, control, domid.and_then(|d| u16::try_from(d).ok()))
            {
                by_domid.push((d, vm.clone()));
            }
        }
        by_domid.sort();
        let mut changed = false;
        for entry in looked {
            let Some(vif) = self.attached_vif(&by_domid, entry.domid, entry.devid) else {
                self.metrics_counters.unknown_vifs += 1;
                continue;
            };
            changed |= self.vif_sample(&vif, entry);
        }
        if changed {
            self.commit()?;
        }
        Ok(changed)
    }

    /// The attached VIF `devid` of the VM whose domain is `domid`.
    fn attached_vif(&self, by_domid: &[(u16, String)], domid: u16, devid: u32) -> Option<String> {
        let i = by_domid.binary_search_by_key(&domid, |(d, _)| *d).ok()?;
        let vm = &by_domid[i].1;
        let vifs = self.db.field(vm_class(), vm, "VIFs")?;
        let Value::Array(vifs) = vifs else {
            return None;
        };
        let c = vif_class();
        vifs.iter().filter_map(Value::as_str).find_map(|vif| {
            let device = self.db.field(c, vif, "device")?.as_str()?;
            let attached = self.db.field(c, vif, "currently_attached")?.as_bool()?;
            (attached && parse_device(device) == Some(devid)).then(|| vif.to_string())
        })
    }

    /// One VIF's sample at `self.now`; whether its metrics changed.
    fn vif_sample(&mut self, vif: &str, entry: &VifCounters) -> bool {
        let now = self.now;
        let sample = VifSample {
            domid: entry.domid,
            rx_bytes: entry.rx_bytes,
            tx_bytes: entry.tx_bytes,
            at: now,
        };
        let Some(prev) = self.vif_samples.get(vif).copied() else {
            self.vif_samples.insert(vif.to_string(), sample);
            self.metrics_counters.vif_samples += 1;
            return false;
        };
        let elapsed = now.0.saturating_sub(prev.at.0);
        let restart = prev.domid != entry.domid
            || entry.rx_bytes < prev.rx_bytes
            || entry.tx_bytes < prev.tx_bytes
            || now.0 < prev.at.0;
        if !restart && elapsed < MIN_SAMPLE_MS {
            self.metrics_counters.early_samples += 1;
            return false;
        }
        self.vif_samples.insert(vif.to_string(), sample);
        self.metrics_counters.vif_samples += 1;
        if restart {
            return false;
        }
        let read = kib_per_s(entry.rx_bytes - prev.rx_bytes, elapsed);
        let write = kib_per_s(entry.tx_bytes - prev.tx_bytes, elapsed);
        self.set_vif_rates(vif, read, write)
    }

    /// Sets a VIF's rates (and `last_updated`) if they differ; whether
    /// they did.
    fn set_vif_rates(&mut self, vif: &str, read: f64, write: f64) -> bool {
        let mc = metrics_class();
        let Some(m) = self
            .db
            .field(vif_class(), vif, "metrics")
            .and_then(Value::as_str)
            .map(ToString::to_string)
        else {
            return false;
        };
        let now_read = self.db.field(mc, &m, "io_read_kbs");
        let now_write = self.db.field(mc, &m, "io_write_kbs");
        if now_read.is_none()
            || (now_read == Some(&Value::Float(read)) && now_write == Some(&Value::Float(write)))
        {
            return false;
        }
        self.db.set_named(mc, &m, "io_read_kbs", Value::Float(read));
        self.db
            .set_named(mc, &m, "io_write_kbs", Value::Float(write));
        let ts = Value::DateTime(format_datetime(self.now));
        self.db.set_named(mc, &m, "last_updated", ts);
        true
    }

    /// A VIF detached or went: its sampling stops and its rates are 0
    /// (the caller commits).
    pub(crate) fn vif_metrics_stopped(&mut self, vif: &str) {
        if self.vif_samples.remove(vif).is_some() {
            self.set_vif_rates(vif, 0.0, 0.0);
        }
    }

    /// Forgets every VIF's last sample: the next counters of each start
    /// its rates again (the board calls this when a rebuilt netdom, whose
    /// counters start from 0, reports).
    pub fn restart_vif_samples(&mut self) {
        self.vif_samples.clear();
    }

    /// Applies a `Link` message received at `now` to the management PIF
    /// and commits; returns whether it changed.
    pub fn management_link(
        &mut self,
        now: Instant,
        link: &ManagementLink,
    ) -> Result<bool, ApiError> {
        if self.poisoned {
            return Ok(false);
        }
        self.now = now;
        if link.prefix > 32 {
            self.metrics_counters.bad_links += 1;
            return Ok(false);
        }
        let pc = pif_class();
        let Some(pif) = self
            .db
            .table(pc)
            .objects
            .keys()
            .find(|p| self.db.field(pc, p, "management").and_then(Value::as_bool) == Some(true))
            .cloned()
        else {
            return Ok(false);
        };
        let ip = |a: [u8; 4]| Value::String(Ipv4Addr::from(a).to_string());
        let fields = [
            ("MAC", Value::String(format_mac(&link.mac))),
            ("IP", ip(link.address)),
            ("netmask", Value::String(netmask(link.prefix).to_string())),
            ("gateway", link.gateway.map_or(Value::str(""), ip)),
            (
                "ip_configuration_mode",
                Value::str(if link.dhcp { "DHCP" } else { "Static" }),
            ),
        ];
        let mut changed = false;
        for (f, v) in fields {
            if self.db.field(pc, &pif, f) != Some(&v) {
                self.db.set_named(pc, &pif, f, v);
                changed = true;
            }
        }
        if changed {
            self.commit()?;
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netmasks_of_prefixes() {
        assert_eq!(netmask(0), Ipv4Addr::new(0, 0, 0, 0));
        assert_eq!(netmask(8), Ipv4Addr::new(255, 0, 0, 0));
        assert_eq!(netmask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(netmask(31), Ipv4Addr::new(255, 255, 255, 254));
        assert_eq!(netmask(32), Ipv4Addr::new(255, 255, 255, 255));
    }

    #[test]
    fn rates_are_kib_per_second() {
        assert_eq!(kib_per_s(2048, 2000), 1.0);
        assert_eq!(kib_per_s(0, 1), 0.0);
        assert!(kib_per_s(u64::MAX, 1).is_finite());
    }
}

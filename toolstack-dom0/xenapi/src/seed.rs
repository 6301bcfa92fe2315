//! Seeding: what a fresh xapi host holds before any client call — a pool,
//! the host and its metrics, the control domain, a network with a PIF, and a
//! local SR plugged through a PBD, and the built-in templates. Done once;
//! later boots replay the WAL and make any built-in template that is missing.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};

use crate::engine::Engine;
use crate::error::ApiError;
use crate::hypervisor::Hypervisor;
use crate::rng::Entropy;
use crate::schema::{class, class_id};
use crate::value::{format_datetime, Instant, Value};
use crate::wal::Storage;

/// XenAPI version this host reports (xapi 2.x series API).
pub const API_VERSION: (i64, i64) = (2, 21);

fn map(pairs: &[(&str, &str)]) -> Value {
    Value::Map(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::str(v)))
            .collect::<BTreeMap<_, _>>(),
    )
}

impl<H: Hypervisor, S: Storage, E: Entropy> Engine<H, S, E> {
    fn make(&mut self, cname: &str, fields: &[(&str, Value)]) -> String {
        let c = class_id(cname).expect("seeded classes exist");
        let cd = class(c);
        let mut rec = cd.default_record();
        if let Some(i) = cd.field_index("uuid") {
            rec[i] = Value::String(self.uuid());
        }
        for (f, v) in fields {
            rec[cd.field(f)] = v.clone();
        }
        let r = self.new_ref();
        self.db.put(c, &r, rec);
        r
    }

    /// Seeds a fresh host named `hostname` unless the database has one.
    /// Returns true if it seeded.
    pub fn seed(&mut self, now: Instant, hostname: &str, address: &str) -> Result<bool, ApiError> {
        self.now = now;
        if class_id("host").is_some_and(|h| self.db.count(h) > 0) {
            // xapi checks its built-in templates at every start.
            if self.ensure_templates() > 0 {
                self.commit()?;
            }
            return Ok(false);
        }
        let ts = Value::DateTime(format_datetime(now));
        let s = |x: &str| Value::str(x);
        let metrics = self.make(
            "host_metrics",
            &[
                ("memory_total", Value::Int(16 << 30)),
                ("memory_free", Value::Int(15 << 30)),
                ("live", Value::Bool(true)),
                ("last_updated", ts.clone()),
            ],
        );
        let host = self.make(
            "host",
            &[
                ("name_label", s(hostname)),
                ("hostname", s(hostname)),
                ("address", s(address)),
                ("enabled", Value::Bool(true)),
                ("API_version_major", Value::Int(API_VERSION.0)),
                ("API_version_minor", Value::Int(API_VERSION.1)),
                ("API_version_vendor", s("XenSource")),
                (
                    "software_version",
                    map(&[
                        ("product_brand", "xcp-rs"),
                        ("product_version", "0.1.0"),
                        ("xapi", "25.0"),
                        ("xen", "4.17"),
                    ]),
                ),
                (
                    "capabilities",
                    Value::Array(alloc::vec![s("xen-3.0-x86_64")]),
                ),
                ("sched_policy", s("credit")),
                (
                    "supported_bootloaders",
                    Value::Array(alloc::vec![s("pygrub")]),
                ),
                ("metrics", Value::String(metrics)),
                (
                    "cpu_info",
                    map(&[("cpu_count", "2"), ("vendor", "GenuineIntel")]),
                ),
            ],
        );
        let ctrl_metrics = self.make(
            "VM_metrics",
            &[("last_updated", ts.clone()), ("start_time", ts.clone())],
        );
        let dom0 = self.make(
            "VM",
            &[
                (
                    "name_label",
                    s(&alloc::format!("Control domain on host: {hostname}")),
                ),
                ("power_state", s("Running")),
                ("is_control_domain", Value::Bool(true)),
                ("domid", Value::Int(0)),
                ("resident_on", Value::String(host.clone())),
                ("memory_static_max", Value::Int(64 << 20)),
                ("VCPUs_max", Value::Int(1)),
                ("VCPUs_at_startup", Value::Int(1)),
                ("metrics", Value::String(ctrl_metrics)),
            ],
        );
        let hc = class_id("host").expect("schema has host");
        self.db
            .set_named(hc, &host, "control_domain", Value::String(dom0));
        let net = self.make(
            "network",
            &[
                ("name_label", s("Pool-wide network associated with eth0")),
                ("bridge", s("xenbr0")),
                ("MTU", Value::Int(1500)),
            ],
        );
        self.make(
            "PIF",
            &[
                ("device", s("eth0")),
                ("network", Value::String(net)),
                ("host", Value::String(host.clone())),
                ("MAC", s("00:16:3e:00:00:01")),
                ("MTU", Value::Int(1500)),
                ("VLAN", Value::Int(-1)),
                ("physical", Value::Bool(true)),
                ("currently_attached", Value::Bool(true)),
                ("management", Value::Bool(true)),
                ("ip_configuration_mode", s("DHCP")),
            ],
        );
        let sr = self.make(
            "SR",
            &[
                ("name_label", s("Local storage")),
                ("type", s("ext")),
                ("content_type", s("user")),
                ("physical_size", Value::Int(100 << 30)),
            ],
        );
        self.make(
            "PBD",
            &[
                ("host", Value::String(host.clone())),
                ("SR", Value::String(sr.clone())),
                ("device_config", map(&[("device", "/dev/sda3")])),
                ("currently_attached", Value::Bool(true)),
            ],
        );
        self.make(
            "pool",
            &[
                ("name_label", s("")),
                ("master", Value::String(host.clone())),
                ("default_SR", Value::String(sr.clone())),
                ("suspend_image_SR", Value::String(sr.clone())),
                ("crash_dump_SR", Value::String(sr)),
            ],
        );
        self.ensure_templates();
        self.commit()?;
        Ok(true)
    }
}

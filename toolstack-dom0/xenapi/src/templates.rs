//! Built-in templates, `VM.clone` / `VM.copy`, and `VM.provision` over a
//! template's `other_config:disks` spec, as xapi keeps them.
//!
//! Read first: xapi `create_templates.ml` (the templates and their
//! `recommendations`), `xapi_templates.ml` (the `disks` XML),
//! `xapi_vm_clone.ml` (what a clone keeps), `xapi_vm_lifecycle.ml`
//! (default templates are not destroyed).
//!
//! - [`BUILTIN`] templates are made when the host is seeded and checked at
//!   every open ([`Engine::ensure_templates`], called by `seed`): as xapi's
//!   `find_or_create_template`, one is made again when no template with its
//!   name and `other_config:default_template` exists. A VM whose
//!   `other_config:default_template` is "true" cannot be destroyed
//!   (VM_CANNOT_DELETE_DEFAULT_TEMPLATE `[]`, xapi's `VM.destroy`); a
//!   template is not started (VM_IS_TEMPLATE).
//! - `VM.clone(vm, name)` / `VM.copy(vm, name, sr)`: a Halted or Suspended
//!   source, not the control domain (VM_BAD_POWER_STATE / OPERATION_NOT_ALLOWED).
//!   The new VM (Halted) has the source's configuration, a new uuid, a new
//!   `other_config:mac_seed`, and loses `default_template` and
//!   `xensource_internal` (a clone of a default template is an ordinary
//!   template); `is_a_template` is kept, and a template's clone gets
//!   `other_config:base_template_name` (the template's name) unless it has
//!   one. Each VIF is copied with a MAC generated again from the new seed
//!   (xapi preserves MACs only for snapshots). Each disk VBD gets a new VDI:
//!   clone → `SrBackend::vdi_clone` (copy-on-write), copy →
//!   `SrBackend::vdi_copy` (a full copy; its default is the clone), in the
//!   source VDI's SR (copy with a different `sr`: OPERATION_NOT_ALLOWED,
//!   nothing moves data between SRs yet; an SR that does not exist means
//!   the disks' own, as in xapi; an ISO SR is OPERATION_NOT_ALLOWED). CD
//!   VBDs keep their VDI; empty ones stay empty; disk VBDs get
//!   `other_config:owner` "" (xapi's CA-58405: the new VM owns its new
//!   disks). On a failure what was made
//!   is removed again.
//! - `VM.provision(vm)`: Halted only; first clears `is_a_template` (xapi's
//!   "install time": a template's clone becomes a VM here); parses
//!   `other_config:disks` (at most
//!   [`MAX_DISKS_XML`] bytes and [`MAX_DISKS`] disks; anything else is
//!   INVALID_VALUE `["other_config:disks", reason]`), creates each disk's
//!   VDI (`name_label` "<VM name> <device>", description "Created by
//!   template provisioner", its `size`, its `type`) in the SR whose uuid
//!   `sr` names (unknown: UUID_INVALID `["sr", uuid]`), or the pool's
//!   default SR when it is empty, and a RW Disk VBD with its `device` and
//!   `bootable`, `unpluggable` unless a system disk, `other_config:owner`
//!   (xapi_templates_install's `create_disk`); then removes `disks` from
//!   `other_config`, as xapi does. No `disks` key: nothing to do.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::dispatch::{arg_str, handle_invalid};
use crate::engine::Engine;
use crate::error::*;
use crate::hypervisor::Hypervisor;
use crate::power::vm_class;
use crate::rng::Entropy;
use crate::schema::{class, class_id, Qualifier};
use crate::storage::{sr_class, vdi_class};
use crate::value::{Value, NULL_REF};
use crate::vbd::vbd_class;
use crate::vif::vif_class;
use crate::wal::Storage;

/// `other_config` key marking a built-in template (xapi's
/// `Xapi_globs.default_template_key`).
pub const DEFAULT_TEMPLATE_KEY: &str = "default_template";
/// `other_config` key a clone of a template gets: the template's name.
pub const BASE_TEMPLATE_NAME_KEY: &str = "base_template_name";
/// `other_config` key of the provisioning spec.
pub const DISKS_KEY: &str = "disks";
/// Largest `other_config:disks` accepted, bytes.
pub const MAX_DISKS_XML: usize = 16 << 10;
/// Most disks one spec may ask for.
pub const MAX_DISKS: usize = 16;
/// Largest disk one spec may ask for, bytes (2 TiB, xapi's VHD limit).
pub const MAX_DISK_SIZE: u64 = 2 << 40;

const MIB: i64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// One built-in template.
pub struct Builtin {
    /// `name_label`.
    pub name: &'static str,
    /// `name_description`.
    pub description: &'static str,
    /// `domain_type`.
    pub domain_type: &'static str,
    /// `PV_bootloader`.
    pub bootloader: &'static str,
    /// `HVM_boot_policy`.
    pub hvm_boot_policy: &'static str,
    /// `memory_static_min`, MiB; the other three are twice it
    /// (xapi's `default_memory_parameters`).
    pub memory_min_mib: i64,
    /// The root disk, GiB (0: none).
    pub root_gib: u64,
    /// `other_config:install-methods`.
    pub install_methods: &'static str,
    /// A Linux template (`other_config:linux_template`).
    pub linux: bool,
}

/// The templates every host has. Names: xapi's "Other install media";
/// the Linux ones are named for the two kinds of guest this platform
/// boots with `pygrub` (xapi ships per-distribution templates instead).
pub const BUILTIN: &[Builtin] = &[
    Builtin {
        name: "Other install media",
        description: "Template which allows VM installation from install media",
        domain_type: "hvm",
        bootloader: "",
        hvm_boot_policy: "BIOS order",
        memory_min_mib: 128,
        root_gib: 0,
        install_methods: "cdrom",
        linux: false,
    },
    Builtin {
        name: "Generic Linux PVH",
        description: "A Linux guest booted as PVH by GRUB from its own disk (pygrub)",
        domain_type: "pvh",
        bootloader: "pygrub",
        hvm_boot_policy: "",
        memory_min_mib: 128,
        root_gib: 8,
        install_methods: "cdrom,nfs,http,ftp",
        linux: true,
    },
    Builtin {
        name: "Generic Linux PV",
        description: "A Linux guest booted as PV by GRUB from its own disk (pygrub)",
        domain_type: "pv",
        bootloader: "pygrub",
        hvm_boot_policy: "",
        memory_min_mib: 128,
        root_gib: 8,
        install_methods: "cdrom,nfs,http,ftp",
        linux: true,
    },
];

/// xapi's `recommendations` XML (`create_templates.ml` defaults: 32 GiB,
/// 8 VCPUs, 7 VBDs, 7 VIFs).
pub fn recommendations() -> String {
    let mem: u64 = 32 * GIB;
    alloc::format!(
        "<restrictions><restriction field=\"memory-static-max\" max=\"{mem}\" />\
         <restriction field=\"vcpus-max\" max=\"8\" />\
         <restriction property=\"number-of-vbds\" max=\"7\" />\
         <restriction property=\"number-of-vifs\" max=\"7\" /></restrictions>"
    )
}

/// One disk of a provisioning spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskSpec {
    /// `userdevice` of its VBD.
    pub device: u32,
    /// Bytes.
    pub size: u64,
    /// SR uuid, or empty for the pool's default SR.
    pub sr: String,
    /// The VBD is bootable.
    pub bootable: bool,
    /// The VDI's type (`system`, `user`, `ephemeral`, ...).
    pub ty: String,
}

/// The `disks` XML of a list of disks, as xapi writes it.
pub fn disks_xml(disks: &[DiskSpec]) -> String {
    let mut s = String::from("<provision>");
    for d in disks {
        s.push_str(&alloc::format!(
            "<disk device=\"{}\" size=\"{}\" sr=\"{}\" bootable=\"{}\" type=\"{}\"/>",
            d.device,
            d.size,
            d.sr,
            d.bootable,
            d.ty
        ));
    }
    s.push_str("</provision>");
    s
}

const DISK_TYPES: &[&str] = &["system", "user", "ephemeral"];

/// Parses a `disks` spec: `<provision>` holding only `<disk>` elements with
/// `device` (a decimal userdevice up to 255), `size` (bytes, at most
/// [`MAX_DISK_SIZE`]), `sr` (a uuid or empty), `bootable` (`true` /
/// `false`) and `type` (`system`, `user` or `ephemeral`); unknown
/// attributes are ignored, as xapi does.
pub fn parse_disks(xml: &str) -> Result<Vec<DiskSpec>, String> {
    if xml.len() > MAX_DISKS_XML {
        return Err(alloc::format!("longer than {MAX_DISKS_XML} bytes"));
    }
    // roxmltree recurses per element: refuse deep nesting first.
    crate::xmlrpc::check_depth(xml.as_bytes())
        .map_err(|_| "too deep, too many elements or a DTD".to_string())?;
    let opts = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: 1024,
    };
    let doc = roxmltree::Document::parse_with_options(xml, opts)
        .map_err(|e| alloc::format!("not XML: {e}"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "provision" {
        return Err("the root element is not <provision>".to_string());
    }
    let mut out = Vec::new();
    for n in root.children() {
        if n.is_text() && n.text().is_some_and(|t| t.trim().is_empty()) {
            continue;
        }
        if n.is_comment() {
            continue;
        }
        if !n.is_element() || n.tag_name().name() != "disk" {
            return Err("<provision> holds something else than <disk>".to_string());
        }
        if n.children().any(|c| c.is_element()) {
            return Err("a <disk> holds elements".to_string());
        }
        if out.len() == MAX_DISKS {
            return Err(alloc::format!("more than {MAX_DISKS} disks"));
        }
        let attr = |a: &str| {
            n.attribute(a)
                .ok_or_else(|| alloc::format!("a disk has no {a}"))
        };
        let device = attr("device")?;
        let device = crate::vbd::parse_userdevice(device)
            .filter(|d| *d <= crate::vbd::MAX_USERDEVICE)
            .ok_or_else(|| alloc::format!("bad device {device:?}"))?;
        let size = attr("size")?;
        let size: u64 = size
            .parse()
            .ok()
            .filter(|s| *s <= MAX_DISK_SIZE)
            .ok_or_else(|| alloc::format!("bad size {size:?}"))?;
        let sr = attr("sr")?;
        if !sr.is_empty() && !crate::storage::is_uuid(sr) {
            return Err(alloc::format!("bad sr {sr:?}"));
        }
        let bootable = match attr("bootable")? {
            "true" => true,
            "false" => false,
            b => return Err(alloc::format!("bad bootable {b:?}")),
        };
        let ty = attr("type")?;
        if !DISK_TYPES.contains(&ty) {
            return Err(alloc::format!("bad type {ty:?}"));
        }
        if out.iter().any(|d: &DiskSpec| d.device == device) {
            return Err(alloc::format!("device {device} twice"));
        }
        out.push(DiskSpec {
            device,
            size,
            sr: sr.to_string(),
            bootable,
            ty: ty.to_string(),
        });
    }
    Ok(out)
}

fn smap(pairs: &[(&str, &str)]) -> Value {
    Value::Map(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::str(v)))
            .collect::<BTreeMap<_, _>>(),
    )
}

fn other_config(v: Value) -> BTreeMap<String, Value> {
    match v {
        Value::Map(m) => m,
        _ => BTreeMap::new(),
    }
}

/// How a VM's disks are copied (xapi_vm_clone's `disk_op`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DiskOp {
    /// `VM.clone`: a copy-on-write clone of each disk.
    Clone,
    /// `VM.copy`: a full copy of each disk.
    Copy,
    /// `VM.snapshot`: a snapshot of each disk.
    Snapshot,
}

impl<H: Hypervisor, S: Storage, E: Entropy> Engine<H, S, E> {
    /// True if `vm` is marked a default template the way xapi's
    /// `VM.destroy` checks it: `other_config:default_template` "true".
    pub(crate) fn is_default_template(&self, vm: &str) -> bool {
        other_config(self.vm_field(vm, "other_config"))
            .get(DEFAULT_TEMPLATE_KEY)
            .and_then(Value::as_str)
            == Some("true")
    }

    /// Makes every [`BUILTIN`] template the database lacks (xapi's
    /// `find_or_create_template`). Returns how many it made.
    pub fn ensure_templates(&mut self) -> usize {
        let vc = vm_class();
        let cd = class(vc);
        let mut made = 0;
        for t in BUILTIN {
            let exists = self.db.table(vc).objects.iter().any(|(r, rec)| {
                rec[cd.field("name_label")].as_str() == Some(t.name)
                    && rec[cd.field("is_a_template")] == Value::Bool(true)
                    && self.is_default_template(r)
            });
            if exists {
                continue;
            }
            self.make_template(t);
            made += 1;
        }
        made
    }

    fn make_template(&mut self, t: &Builtin) {
        let vc = vm_class();
        let cd = class(vc);
        let mut rec = cd.default_record();
        let set = |rec: &mut Vec<Value>, f: &str, v: Value| rec[cd.field(f)] = v;
        set(&mut rec, "uuid", Value::String(self.uuid()));
        set(&mut rec, "name_label", Value::str(t.name));
        set(&mut rec, "name_description", Value::str(t.description));
        set(&mut rec, "is_a_template", Value::Bool(true));
        set(&mut rec, "is_default_template", Value::Bool(true));
        set(&mut rec, "user_version", Value::Int(1));
        let min = t.memory_min_mib * MIB;
        set(&mut rec, "memory_static_min", Value::Int(min));
        set(&mut rec, "memory_dynamic_min", Value::Int(2 * min));
        set(&mut rec, "memory_dynamic_max", Value::Int(2 * min));
        set(&mut rec, "memory_static_max", Value::Int(2 * min));
        set(&mut rec, "memory_target", Value::Int(2 * min));
        set(&mut rec, "VCPUs_max", Value::Int(1));
        set(&mut rec, "VCPUs_at_startup", Value::Int(1));
        set(&mut rec, "actions_after_shutdown", Value::str("destroy"));
        set(&mut rec, "actions_after_reboot", Value::str("restart"));
        set(&mut rec, "actions_after_crash", Value::str("restart"));
        set(&mut rec, "PV_bootloader", Value::str(t.bootloader));
        for f in [
            "PV_kernel",
            "PV_ramdisk",
            "PV_args",
            "PV_bootloader_args",
            "PV_legacy_args",
        ] {
            set(&mut rec, f, Value::str(""));
        }
        set(&mut rec, "HVM_boot_policy", Value::str(t.hvm_boot_policy));
        let params = if t.hvm_boot_policy.is_empty() {
            smap(&[])
        } else {
            smap(&[("order", "dc")])
        };
        set(&mut rec, "HVM_boot_params", params);
        set(&mut rec, "HVM_shadow_multiplier", Value::Float(1.0));
        set(&mut rec, "domain_type", Value::str(t.domain_type));
        let viridian = if t.linux { "false" } else { "true" };
        set(
            &mut rec,
            "platform",
            smap(&[
                ("nx", "true"),
                ("acpi", "true"),
                ("apic", "true"),
                ("pae", "true"),
                ("viridian", viridian),
            ]),
        );
        set(
            &mut rec,
            "recommendations",
            Value::String(recommendations()),
        );
        let mut oc = BTreeMap::new();
        oc.insert(DEFAULT_TEMPLATE_KEY.to_string(), Value::str("true"));
        oc.insert("install-methods".to_string(), Value::str(t.install_methods));
        if t.linux {
            oc.insert("linux_template".to_string(), Value::str("true"));
        }
        if t.root_gib > 0 {
            let root = DiskSpec {
                device: 0,
                size: t.root_gib * GIB,
                sr: String::new(),
                bootable: true,
                ty: "system".to_string(),
            };
            oc.insert(DISKS_KEY.to_string(), Value::String(disks_xml(&[root])));
        }
        set(&mut rec, "other_config", Value::Map(oc));
        self.prepare_new_vm(&mut rec);
        let r = self.new_ref();
        self.db.put(vc, &r, rec);
        self.refresh_allowed_operations(&r);
    }

    /// `VM.clone` (`copy` false) / `VM.copy` (`copy` true, into `sr`).
    pub(crate) fn clone_vm(
        &mut self,
        vm: &str,
        name: &str,
        copy: bool,
        sr: &str,
    ) -> Result<Value, ApiError> {
        let vc = vm_class();
        let cd = class(vc);
        let Some(src) = self.db.get(vc, vm).cloned() else {
            return Err(handle_invalid(vc, vm));
        };
        if src[cd.field("is_control_domain")].as_bool() == Some(true) {
            return Err(ApiError::new(
                OPERATION_NOT_ALLOWED,
                &["cannot clone the control domain"],
            ));
        }
        let state = src[cd.field("power_state")].as_str().unwrap_or("");
        if !matches!(state, "Halted" | "Suspended") {
            return Err(ApiError::new(
                VM_BAD_POWER_STATE,
                &[vm, "halted", &state.to_ascii_lowercase()],
            ));
        }
        // xapi: an SR that does not exist means the disks' own; an ISO SR
        // is refused.
        let sr = if copy && self.db.get(sr_class(), sr).is_some() {
            sr
        } else {
            NULL_REF
        };
        if sr != NULL_REF
            && self
                .db
                .field(sr_class(), sr, "content_type")
                .and_then(Value::as_str)
                == Some("iso")
        {
            return Err(ApiError::new(
                OPERATION_NOT_ALLOWED,
                &["Cannot copy a VM's disks to an ISO SR"],
            ));
        }
        if self.db.count(vc) >= self.config.max_objects {
            return Err(ApiError::new(LIMIT_REACHED, &["VM"]));
        }
        // The VDIs to make, checked before anything is made.
        let vbds: Vec<String> = match &src[cd.field("VBDs")] {
            Value::Array(a) => a.iter().map(|v| arg_str(v).to_string()).collect(),
            _ => Vec::new(),
        };
        let bc = vbd_class();
        for b in &vbds {
            let disk = self.db.field(bc, b, "type").and_then(Value::as_str) == Some("Disk");
            let vdi = self.db.field(bc, b, "VDI").cloned().unwrap_or(Value::Nil);
            if disk && arg_str(&vdi) != NULL_REF {
                let vsr = self.vdi_sr(arg_str(&vdi))?;
                if copy && sr != NULL_REF && vsr != sr {
                    return Err(ApiError::new(
                        OPERATION_NOT_ALLOWED,
                        &["VM.copy to another SR is not supported"],
                    ));
                }
            }
        }
        let mut rec = cd.default_record();
        for (i, f) in cd.fields.iter().enumerate() {
            if f.qualifier != Qualifier::Runtime {
                rec[i] = src[i].clone();
            }
        }
        rec[cd.field("uuid")] = Value::String(self.uuid());
        rec[cd.field("name_label")] = Value::str(name);
        rec[cd.field("is_a_template")] = src[cd.field("is_a_template")].clone();
        rec[cd.field("is_default_template")] = Value::Bool(false);
        rec[cd.field("recommendations")] = src[cd.field("recommendations")].clone();
        let mut oc = other_config(src[cd.field("other_config")].clone());
        oc.remove(DEFAULT_TEMPLATE_KEY);
        oc.remove("xensource_internal");
        oc.remove(crate::vif::MAC_SEED);
        // xapi keeps the name of the template a VM came from.
        if src[cd.field("is_a_template")] == Value::Bool(true) {
            oc.entry(BASE_TEMPLATE_NAME_KEY.to_string())
                .or_insert_with(|| src[cd.field("name_label")].clone());
        }
        rec[cd.field("other_config")] = Value::Map(oc);
        self.prepare_new_vm(&mut rec);
        let new = self.new_ref();
        self.db.put(vc, &new, rec);
        let op = if copy { DiskOp::Copy } else { DiskOp::Clone };
        if let Err(e) = self.clone_devices(vm, &new, &vbds, op) {
            let _ = self.destroy_clone(&new);
            return Err(e);
        }
        self.refresh_allowed_operations(&new);
        Ok(Value::String(new))
    }

    pub(crate) fn clone_devices(
        &mut self,
        vm: &str,
        new: &str,
        vbds: &[String],
        op: DiskOp,
    ) -> Result<(), ApiError> {
        let bc = vbd_class();
        for b in vbds {
            let Some(mut old) = self.db.get(bc, b).cloned() else {
                continue;
            };
            let vdi = arg_str(&old[class(bc).field("VDI")]).to_string();
            let disk = old[class(bc).field("type")].as_str() == Some("Disk");
            // CA-58405: the new VM owns its new disks (`xe vm-uninstall`
            // destroys a VBD's VDI when `other_config:owner` is set).
            if let (true, Value::Map(oc)) = (disk, &mut old[class(bc).field("other_config")]) {
                oc.entry("owner".to_string())
                    .or_insert_with(|| Value::str(""));
            }
            let vdi = if disk && vdi != NULL_REF {
                let v = match op {
                    DiskOp::Copy => self.copy_vdi_full(&vdi)?,
                    DiskOp::Clone => self.copy_vdi(&vdi, false)?,
                    DiskOp::Snapshot => self.copy_vdi(&vdi, true)?,
                };
                arg_str(&v).to_string()
            } else {
                vdi
            };
            self.copy_vbd(&old, new, &vdi)?;
        }
        let vifs: Vec<String> = match self.vm_field(vm, "VIFs") {
            Value::Array(a) => a.iter().map(|v| arg_str(v).to_string()).collect(),
            _ => Vec::new(),
        };
        for f in vifs {
            // xapi_vif_helpers.copy: MACs are kept for snapshots only.
            self.copy_vif(&f, new, op == DiskOp::Snapshot)?;
        }
        Ok(())
    }

    /// A VBD of `vm` like `old` (a VBD record) over `vdi`
    /// (xapi_vbd_helpers.copy).
    pub(crate) fn copy_vbd(&mut self, old: &[Value], vm: &str, vdi: &str) -> Result<(), ApiError> {
        let bc = vbd_class();
        let bcd = class(bc);
        let mut given = BTreeMap::new();
        for f in [
            "userdevice",
            "bootable",
            "mode",
            "type",
            "unpluggable",
            "empty",
            "other_config",
            "qos_algorithm_type",
            "qos_algorithm_params",
        ] {
            given.insert(f.to_string(), old[bcd.field(f)].clone());
        }
        given.insert("VDI".to_string(), Value::str(vdi));
        given.insert("VM".to_string(), Value::str(vm));
        self.create(bc, Value::Map(given)).map(|_| ())
    }

    /// A VIF of `vm` like VIF `old`, with its MAC (`keep_mac`) or one
    /// generated from `vm`'s seed (xapi_vif_helpers.copy).
    pub(crate) fn copy_vif(&mut self, old: &str, vm: &str, keep_mac: bool) -> Result<(), ApiError> {
        let fc = vif_class();
        let fcd = class(fc);
        let Some(old) = self.db.get(fc, old).cloned() else {
            return Ok(());
        };
        let mut given = BTreeMap::new();
        for k in [
            "device",
            "network",
            "MTU",
            "other_config",
            "qos_algorithm_type",
            "qos_algorithm_params",
            "locking_mode",
            "ipv4_allowed",
            "ipv6_allowed",
        ] {
            given.insert(k.to_string(), old[fcd.field(k)].clone());
        }
        let mac = if keep_mac {
            old[fcd.field("MAC")].clone()
        } else {
            Value::str("")
        };
        given.insert("MAC".to_string(), mac);
        given.insert("VM".to_string(), Value::str(vm));
        self.create(fc, Value::Map(given)).map(|_| ())
    }

    /// Removes a half-made clone: its VBDs' new disk VDIs, then the VM.
    pub(crate) fn destroy_clone(&mut self, new: &str) -> Result<(), ApiError> {
        let bc = vbd_class();
        if let Value::Array(vbds) = self.vm_field(new, "VBDs") {
            for b in vbds {
                let b = arg_str(&b).to_string();
                let disk = self.db.field(bc, &b, "type").and_then(Value::as_str) == Some("Disk");
                let vdi = self.db.field(bc, &b, "VDI").cloned().unwrap_or(Value::Nil);
                if disk && arg_str(&vdi) != NULL_REF {
                    let _ = self.destroy_vdi(arg_str(&vdi));
                }
            }
        }
        self.destroy_vm(new).map(|_| ())
    }

    /// `VM.provision`.
    pub(crate) fn provision_vm(&mut self, vm: &str) -> Result<Value, ApiError> {
        let vc = vm_class();
        self.guest_vm(vm, "cannot provision the control domain")?;
        if self.vm_field(vm, "is_a_snapshot").as_bool() == Some(true) {
            return Err(ApiError::new(VM_IS_SNAPSHOT, &[vm, "provision"]));
        }
        let state = self.vm_field(vm, "power_state");
        let state = state.as_str().unwrap_or("");
        if state != "Halted" {
            return Err(ApiError::new(
                VM_BAD_POWER_STATE,
                &[vm, "halted", &state.to_ascii_lowercase()],
            ));
        }
        // xapi's provision makes the VM a VM first ("install time").
        self.db
            .set_named(vc, vm, "is_a_template", Value::Bool(false));
        self.refresh_allowed_operations(vm);
        let mut oc = other_config(self.vm_field(vm, "other_config"));
        let Some(xml) = oc.get(DISKS_KEY).and_then(Value::as_str) else {
            return Ok(Value::str(""));
        };
        let disks = parse_disks(xml)
            .map_err(|e| ApiError::new(INVALID_VALUE, &["other_config:disks", &e]))?;
        // Resolve every SR and check the devices before making anything.
        let mut plan = Vec::with_capacity(disks.len());
        for d in &disks {
            let sr = if d.sr.is_empty() {
                let pc = class_id("pool").expect("schema has pool");
                let pool = self.db.table(pc).objects.values().next().cloned();
                let sr = pool
                    .map(|p| arg_str(&p[class(pc).field("default_SR")]).to_string())
                    .unwrap_or_default();
                if self.db.get(sr_class(), &sr).is_none() {
                    return Err(ApiError::new(
                        INVALID_VALUE,
                        &["other_config:disks", "no SR given and no default SR"],
                    ));
                }
                sr
            } else {
                match self.db.by_uuid(sr_class(), &d.sr) {
                    Some(r) => r.clone(),
                    None => return Err(ApiError::new(UUID_INVALID, &["sr", &d.sr])),
                }
            };
            plan.push((d.clone(), sr));
        }
        let mut made: Vec<String> = Vec::new();
        for (d, sr) in plan {
            let r = self.provision_disk(vm, &d, &sr);
            match r {
                Ok(vdi) => made.push(vdi),
                Err(e) => {
                    for vdi in made {
                        let _ = self.destroy_vdi(&vdi);
                    }
                    return Err(e);
                }
            }
        }
        oc.remove(DISKS_KEY);
        self.db.set_named(vc, vm, "other_config", Value::Map(oc));
        Ok(Value::str(""))
    }

    fn provision_disk(&mut self, vm: &str, d: &DiskSpec, sr: &str) -> Result<String, ApiError> {
        let vdc = vdi_class();
        // xapi names a provisioned disk "<VM name> <device>".
        let name = self.vm_field(vm, "name_label");
        let name = alloc::format!("{} {}", name.as_str().unwrap_or(""), d.device);
        let mut vdi = BTreeMap::new();
        vdi.insert("name_label".to_string(), Value::String(name));
        vdi.insert(
            "name_description".to_string(),
            Value::str("Created by template provisioner"),
        );
        vdi.insert("SR".to_string(), Value::str(sr));
        vdi.insert(
            "virtual_size".to_string(),
            Value::Int(i64::try_from(d.size).unwrap_or(i64::MAX)),
        );
        vdi.insert("type".to_string(), Value::String(d.ty.clone()));
        let vdi = self.create(vdc, Value::Map(vdi))?;
        let vdi = arg_str(&vdi).to_string();
        let mut vbd = BTreeMap::new();
        vbd.insert("VM".to_string(), Value::str(vm));
        vbd.insert("VDI".to_string(), Value::String(vdi.clone()));
        vbd.insert(
            "userdevice".to_string(),
            Value::String(alloc::format!("{}", d.device)),
        );
        vbd.insert("bootable".to_string(), Value::Bool(d.bootable));
        vbd.insert("mode".to_string(), Value::str("RW"));
        vbd.insert("type".to_string(), Value::str("Disk"));
        vbd.insert("unpluggable".to_string(), Value::Bool(d.ty != "system"));
        let mut owner = BTreeMap::new();
        owner.insert("owner".to_string(), Value::str(""));
        vbd.insert("other_config".to_string(), Value::Map(owner));
        vbd.insert("empty".to_string(), Value::Bool(false));
        if let Err(e) = self.create(vbd_class(), Value::Map(vbd)) {
            let _ = self.destroy_vdi(&vdi);
            return Err(e);
        }
        Ok(vdi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disks_round_trip() {
        let d = DiskSpec {
            device: 0,
            size: 8 << 30,
            sr: String::new(),
            bootable: true,
            ty: "system".to_string(),
        };
        let xml = disks_xml(core::slice::from_ref(&d));
        assert_eq!(
            xml,
            "<provision><disk device=\"0\" size=\"8589934592\" sr=\"\" bootable=\"true\" type=\"system\"/></provision>"
        );
        assert_eq!(parse_disks(&xml).unwrap(), [d]);
    }

    #[test]
    fn bad_specs_are_refused() {
        for bad in [
            "",
            "<provision>",
            "<disks/>",
            "<provision><disk device=\"0\" size=\"1\" sr=\"\" bootable=\"true\"/></provision>",
            "<provision><disk device=\"x\" size=\"1\" sr=\"\" bootable=\"true\" type=\"system\"/></provision>",
            "<provision><disk device=\"0\" size=\"-1\" sr=\"\" bootable=\"true\" type=\"system\"/></provision>",
            "<provision><disk device=\"0\" size=\"1\" sr=\"nope\" bootable=\"true\" type=\"system\"/></provision>",
            "<provision><disk device=\"0\" size=\"1\" sr=\"\" bootable=\"yes\" type=\"system\"/></provision>",
            "<provision><disk device=\"0\" size=\"1\" sr=\"\" bootable=\"true\" type=\"suspend\"/></provision>",
            "<provision><disk device=\"0\" size=\"1\" sr=\"\" bootable=\"true\" type=\"system\"><a/></disk></provision>",
            "<provision><other/></provision>",
            "<!DOCTYPE x [<!ENTITY a \"b\">]><provision/>",
        ] {
            assert!(parse_disks(bad).is_err(), "{bad}");
        }
        let two = "<provision><disk device=\"1\" size=\"1\" sr=\"\" bootable=\"false\" type=\"user\"/>\
                   <disk device=\"1\" size=\"1\" sr=\"\" bootable=\"false\" type=\"user\"/></provision>";
        assert!(parse_disks(two).is_err());
        let many = alloc::format!(
            "<provision>{}</provision>",
            (0..=MAX_DISKS)
                .map(|i| alloc::format!(
                    "<disk device=\"{i}\" size=\"1\" sr=\"\" bootable=\"false\" type=\"user\"/>"
                ))
                .collect::<String>()
        );
        assert!(parse_disks(&many).unwrap_err().contains("more than"));
        let deep = alloc::format!(
            "{}{}",
            "<provision>".repeat(100),
            "</provision>".repeat(100)
        );
        assert!(parse_disks(&deep).is_err());
        assert!(parse_disks(&"x".repeat(MAX_DISKS_XML + 1)).is_err());
        assert_eq!(parse_disks("<provision/>").unwrap(), []);
    }
}

//! VM snapshots and revert, as xapi keeps them: `VM.snapshot`,
//! `VM.revert`, and the refusals of `VM.snapshot_with_quiesce` and
//! `VM.checkpoint`.
//!
//! Read first: xapi `xapi_vm_snapshot.ml` (`revert_vbds`, `do_not_copy`),
//! `xapi_vm_clone.ml` (`copy_vm_record` with `Disk_op_snapshot`),
//! `xapi_vm_lifecycle.ml` (`check_snapshot`, the power states of each
//! operation), `xapi_vm.ml` (`revert`, `destroy`).
//!
//! - `VM.snapshot(vm, new_name[, ignore_vdis])`: any power state (a
//!   running VM's disks are snapshotted as they are: crash consistent, as
//!   xapi's); not a template (VM_IS_TEMPLATE `[vm, snapshot]`), a snapshot
//!   (VM_IS_SNAPSHOT `[vm, snapshot]`) or the control domain; at most
//!   [`MAX_SNAPSHOTS`] snapshots of one VM (LIMIT_REACHED `[snapshots]`).
//!   The snapshot is a Halted VM record with the VM's configuration,
//!   `is_a_snapshot` and `is_a_template` true (xapi's snapshots are
//!   templates), `snapshot_of` the VM (whose `snapshots` lists it, a
//!   relation the database keeps), `snapshot_time` now, `snapshot_info`
//!   `{power-state-at-snapshot, disk-snapshot-type: crash_consistent}`,
//!   the VM's `other_config` with its `mac_seed` (minus `default_template`
//!   and `xensource_internal`), `ha_always_run` false and `parent` the VM's
//!   parent; the VM's `parent` becomes the snapshot (xapi's snapshot tree,
//!   `children` kept by the database). Each disk VBD's VDI (unless in
//!   `ignore_vdis`) is snapshotted through the SR as `VDI.snapshot` does it
//!   (copy-on-write, `is_a_snapshot`, `snapshot_of`, `snapshot_time`); CD
//!   VBDs keep their disc; disk VBDs get `other_config:owner` (CA-58405);
//!   VIFs keep their MACs. On a failure what was made
//!   is removed again.
//! - `VM.revert(snapshot)`: a snapshot only (ONLY_REVERT_SNAPSHOT `[]`);
//!   the VM it is of must be Halted (VM_BAD_POWER_STATE `[vm, halted,
//!   actual]`; xapi tries a live VM and fails midway, leaving it Halted).
//!   If that VM was destroyed, it is made again from the snapshot (xapi's
//!   `create_vm_from_snapshot`: every snapshot of it names the new VM).
//!   Each of the snapshot's disks is cloned first (nothing is removed if a
//!   clone fails); then the VM's VBDs go, and each of its VDIs that the
//!   snapshot has a snapshot of is destroyed, its snapshots now naming the
//!   clone (xapi's `revert_vbds`: a disk the snapshot lacks is kept,
//!   detached); VBDs like the snapshot's are made over the clones (CDs
//!   over the same disc), the VM's VIFs are replaced by the snapshot's
//!   (MACs kept), and the configuration comes back from the snapshot: every
//!   field but xapi's `do_not_copy` and the snapshot's own identity (its
//!   name, `is_a_snapshot`, `is_a_template`, `snapshot_*`: xapi's rule for
//!   a snapshot without `snapshot_metadata`, which xcp-rs does not keep),
//!   `ha_always_run` false. The VM's `parent` becomes the snapshot. If a
//!   device cannot be made once the old disks are gone, the clones go too
//!   and the call fails VM_REVERT_FAILED `[snapshot, vm]` (as xapi's).
//! - `VM.snapshot_with_quiesce`: Running only (VM_BAD_POWER_STATE), then
//!   VM_SNAPSHOT_WITH_QUIESCE_NOT_SUPPORTED `[vm]` (xapi removed VSS).
//!   `VM.checkpoint`: OPERATION_NOT_ALLOWED (no memory images: xcp-rs
//!   cannot suspend a VM yet).
//! - A snapshot allows `revert`, `clone`, `copy` and `destroy` (xapi's
//!   `check_snapshot` list, over the operations implemented); a VM adds
//!   `snapshot` in every power state. `VM.clone` of a snapshot makes a
//!   template (xapi: `is_a_template` is kept, `xe snapshot-clone`), not a
//!   snapshot; `VM.provision` turns it into a VM.
//! - `VM.destroy` (`power.rs`) keeps every VDI (xapi's rule); a destroyed
//!   VM's snapshots keep naming it in `snapshot_of`, as in xapi, and its
//!   children get its parent.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::dispatch::{arg_str, handle_invalid};
use crate::engine::{Engine, Outcome};
use crate::error::*;
use crate::hypervisor::Hypervisor;
use crate::power::vm_class;
use crate::rng::Entropy;
use crate::schema::{class, Qualifier};
use crate::storage::vdi_class;
use crate::templates::{DiskOp, DEFAULT_TEMPLATE_KEY};
use crate::value::{format_datetime, Value, NULL_REF};
use crate::vbd::vbd_class;
use crate::wal::Storage;

pub use crate::budget::MAX_SNAPSHOTS;

/// VM messages implemented here.
pub const SNAPSHOT_MESSAGES: &[&str] =
    &["snapshot", "snapshot_with_quiesce", "checkpoint", "revert"];

/// `snapshot_info` key: the VM's power state when it was snapshotted.
pub const POWER_STATE_AT_SNAPSHOT: &str = "power-state-at-snapshot";
/// `snapshot_info` key: how consistent the disks are.
pub const DISK_SNAPSHOT_TYPE: &str = "disk-snapshot-type";

/// The fields `VM.revert` does not take from the snapshot: xapi's
/// `do_not_copy` and `extended_do_not_copy` (a snapshot without
/// metadata), and the snapshot's own `snapshot_info`/`snapshot_metadata`.
const NOT_REVERTED: &[&str] = &[
    "uuid",
    "suspend_VDI",
    "power_state",
    "parent",
    "current_operations",
    "allowed_operations",
    "metrics",
    "guest_metrics",
    "resident_on",
    "domid",
    "protection_policy",
    "snapshot_schedule",
    "scheduled_to_be_resident_on",
    "snapshots",
    "tags",
    "affinity",
    "groups",
    "consoles",
    "VBDs",
    "VIFs",
    "VGPUs",
    "VUSBs",
    "VTPMs",
    "attached_PCIs",
    "name_label",
    "is_a_snapshot",
    "is_a_template",
    "is_default_template",
    "snapshot_of",
    "snapshot_time",
    "transportable_snapshot_id",
    "children",
    "snapshot_info",
    "snapshot_metadata",
    "is_vmss_snapshot",
    "crash_dumps",
    "blobs",
];

/// The operations a snapshot allows in `state` (xapi's `check_snapshot`
/// with each operation's power states, over those implemented).
pub fn snapshot_allowed_in(state: &str) -> &'static [&'static str] {
    match state {
        "Halted" | "Suspended" => &["revert", "clone", "copy", "destroy"],
        _ => &["revert"],
    }
}

fn refs(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a.iter().map(|x| arg_str(x).to_string()).collect(),
        _ => Vec::new(),
    }
}

impl<H: Hypervisor, S: Storage, E: Entropy> Engine<H, S, E> {
    /// Routes the messages of this module; None for others.
    pub(crate) fn snapshot_call(
        &mut self,
        cname: &str,
        m: &str,
        args: &[Value],
    ) -> Option<Outcome> {
        if cname != "VM" || !SNAPSHOT_MESSAGES.contains(&m) {
            return None;
        }
        let vm = arg_str(&args[0]);
        let r = match m {
            "snapshot" => {
                let ignore = args.get(2).map(refs).unwrap_or_default();
                self.snapshot_vm(vm, arg_str(&args[1]), &ignore)
            }
            "snapshot_with_quiesce" => self.snapshot_with_quiesce(vm),
            "checkpoint" => self.checkpoint_vm(vm),
            _ => self.revert_vm(vm),
        };
        Some(Outcome::Done(r))
    }

    /// The checks every snapshot-taking call makes: the VM exists and is
    /// neither the control domain, a snapshot nor a template.
    fn snapshottable(&self, vm: &str, op: &str) -> Result<(), ApiError> {
        self.guest_vm(vm, "This operation is not allowed on a control domain")?;
        if self.vm_field(vm, "is_a_snapshot").as_bool() == Some(true) {
            return Err(ApiError::new(VM_IS_SNAPSHOT, &[vm, op]));
        }
        if self.vm_field(vm, "is_a_template").as_bool() == Some(true) {
            return Err(ApiError::new(VM_IS_TEMPLATE, &[vm, op]));
        }
        Ok(())
    }

    /// `VM.snapshot_with_quiesce`.
    fn snapshot_with_quiesce(&mut self, vm: &str) -> Result<Value, ApiError> {
        self.snapshottable(vm, "snapshot_with_quiesce")?;
        let state = self.vm_field(vm, "power_state");
        let state = state.as_str().unwrap_or("");
        if state != "Running" {
            return Err(ApiError::new(
                VM_BAD_POWER_STATE,
                &[vm, "running", &state.to_ascii_lowercase()],
            ));
        }
        Err(ApiError::new(VM_SNAPSHOT_WITH_QUIESCE_NOT_SUPPORTED, &[vm]))
    }

    /// `VM.checkpoint`: refused, there are no memory images.
    fn checkpoint_vm(&mut self, vm: &str) -> Result<Value, ApiError> {
        self.snapshottable(vm, "checkpoint")?;
        Err(ApiError::new(
            OPERATION_NOT_ALLOWED,
            &["VM.checkpoint needs a memory image, and this host cannot suspend a VM; use VM.snapshot"],
        ))
    }

    /// `VM.snapshot`: the snapshot's ref.
    pub(crate) fn snapshot_vm(
        &mut self,
        vm: &str,
        name: &str,
        ignore_vdis: &[String],
    ) -> Result<Value, ApiError> {
        self.snapshottable(vm, "snapshot")?;
        let vc = vm_class();
        let cd = class(vc);
        let src = self.db.get(vc, vm).cloned().expect("checked above");
        if refs(&src[cd.field("snapshots")]).len() >= MAX_SNAPSHOTS {
            return Err(ApiError::new(LIMIT_REACHED, &["snapshots"]));
        }
        if self.db.count(vc) >= self.config.max_objects {
            return Err(ApiError::new(LIMIT_REACHED, &["VM"]));
        }
        // The disks to snapshot, checked before anything is made.
        let bc = vbd_class();
        let mut vbds = Vec::new();
        for b in refs(&src[cd.field("VBDs")]) {
            let vdi = self.db.field(bc, &b, "VDI").cloned().unwrap_or(Value::Nil);
            let vdi = arg_str(&vdi);
            if ignore_vdis.iter().any(|i| i == vdi) {
                continue;
            }
            let disk = self.db.field(bc, &b, "type").and_then(Value::as_str) == Some("Disk");
            if disk && vdi != NULL_REF {
                self.vdi_sr(vdi)?;
                if self.vdi_field(vdi, "sharable").as_bool() == Some(true) {
                    return Err(ApiError::new(VDI_IS_SHARABLE, &[vdi]));
                }
            }
            vbds.push(b);
        }
        let mut rec = cd.default_record();
        for (i, f) in cd.fields.iter().enumerate() {
            if f.qualifier != Qualifier::Runtime {
                rec[i] = src[i].clone();
            }
        }
        for f in ["recommendations", "memory_overhead", "bios_strings"] {
            rec[cd.field(f)] = src[cd.field(f)].clone();
        }
        let state = src[cd.field("power_state")].clone();
        let set = |rec: &mut Vec<Value>, f: &str, v: Value| rec[cd.field(f)] = v;
        set(&mut rec, "uuid", Value::String(self.uuid()));
        set(&mut rec, "name_label", Value::str(name));
        set(&mut rec, "is_a_template", Value::Bool(true));
        set(&mut rec, "is_default_template", Value::Bool(false));
        set(&mut rec, "is_a_snapshot", Value::Bool(true));
        set(&mut rec, "snapshot_of", Value::str(vm));
        set(
            &mut rec,
            "snapshot_time",
            Value::DateTime(format_datetime(self.now)),
        );
        let mut info = BTreeMap::new();
        info.insert(POWER_STATE_AT_SNAPSHOT.to_string(), state);
        info.insert(
            DISK_SNAPSHOT_TYPE.to_string(),
            Value::str("crash_consistent"),
        );
        set(&mut rec, "snapshot_info", Value::Map(info));
        set(&mut rec, "parent", src[cd.field("parent")].clone());
        set(&mut rec, "ha_always_run", Value::Bool(false));
        if let Value::Map(mut oc) = src[cd.field("other_config")].clone() {
            oc.remove(DEFAULT_TEMPLATE_KEY);
            oc.remove("xensource_internal");
            set(&mut rec, "other_config", Value::Map(oc));
        }
        self.prepare_new_vm(&mut rec);
        let snap = self.new_ref();
        self.db.put(vc, &snap, rec);
        if let Err(e) = self.clone_devices(vm, &snap, &vbds, DiskOp::Snapshot) {
            let _ = self.destroy_clone(&snap);
            return Err(e);
        }
        self.set_vm(vm, "parent", Value::str(&snap));
        self.refresh_allowed_operations(&snap);
        Ok(Value::String(snap))
    }

    /// `VM.revert`.
    pub(crate) fn revert_vm(&mut self, snapshot: &str) -> Result<Value, ApiError> {
        let vc = vm_class();
        if self.db.get(vc, snapshot).is_none() {
            return Err(handle_invalid(vc, snapshot));
        }
        if self.vm_field(snapshot, "is_a_snapshot").as_bool() != Some(true) {
            return Err(ApiError::new(ONLY_REVERT_SNAPSHOT, &[]));
        }
        let of = self.vm_field(snapshot, "snapshot_of");
        let vm = match arg_str(&of) {
            r if self.db.get(vc, r).is_some() => r.to_string(),
            _ => self.vm_from_snapshot(snapshot)?,
        };
        let state = self.vm_field(&vm, "power_state");
        let state = state.as_str().unwrap_or("");
        if state != "Halted" {
            return Err(ApiError::new(
                VM_BAD_POWER_STATE,
                &[&vm, "halted", &state.to_ascii_lowercase()],
            ));
        }
        // Clone the snapshot's disks first: a failure leaves the VM as it
        // was.
        let bc = vbd_class();
        let snap_vbds = refs(&self.vm_field(snapshot, "VBDs"));
        let mut clones: Vec<(String, String)> = Vec::new(); // (snapshot VBD, clone)
        for b in &snap_vbds {
            let disk = self.db.field(bc, b, "type").and_then(Value::as_str) == Some("Disk");
            let vdi = self.db.field(bc, b, "VDI").cloned().unwrap_or(Value::Nil);
            if !disk || arg_str(&vdi) == NULL_REF {
                continue;
            }
            match self.copy_vdi(arg_str(&vdi), false) {
                Ok(c) => clones.push((b.clone(), arg_str(&c).to_string())),
                Err(e) => {
                    for (_, c) in &clones {
                        let _ = self.destroy_vdi(c);
                    }
                    return Err(e);
                }
            }
        }
        // The VM's disks the snapshot has a snapshot of go; their
        // snapshots (the reverted one's too) now name the clone.
        let vdc = vdi_class();
        let mut replaced: BTreeMap<String, String> = BTreeMap::new();
        for (b, c) in &clones {
            let vdi = self.db.field(bc, b, "VDI").cloned().unwrap_or(Value::Nil);
            let of = self.vdi_field(arg_str(&vdi), "snapshot_of");
            if arg_str(&of) != NULL_REF {
                replaced.insert(arg_str(&of).to_string(), c.clone());
            }
        }
        let vm_vbds = refs(&self.vm_field(&vm, "VBDs"));
        let mut old_disks = Vec::new();
        for b in &vm_vbds {
            let disk = self.db.field(bc, b, "type").and_then(Value::as_str) == Some("Disk");
            let vdi = self.db.field(bc, b, "VDI").cloned().unwrap_or(Value::Nil);
            if disk && replaced.contains_key(arg_str(&vdi)) {
                old_disks.push(arg_str(&vdi).to_string());
            }
            self.delete_vbd(b);
        }
        // Every VDI naming the old disk (xapi looks them up by
        // `snapshot_of`, whether or not the old disk still exists).
        let f = class(vdc).field("snapshot_of");
        let renamed: Vec<(String, String)> = self
            .db
            .table(vdc)
            .objects
            .iter()
            .filter_map(|(r, rec)| {
                let c = replaced.get(rec[f].as_str().unwrap_or(NULL_REF))?;
                Some((r.clone(), c.clone()))
            })
            .collect();
        for (r, clone) in renamed {
            self.db.set(vdc, &r, f, Value::String(clone));
        }
        for old in &old_disks {
            // A disk the SR will not destroy stays, detached (the revert
            // itself is done).
            let _ = self.destroy_vdi(old);
        }
        let result = self.revert_devices(snapshot, &vm, &snap_vbds, &clones);
        if result.is_err() {
            // As xapi: the clones go again, and the error names the
            // snapshot and the VM only.
            for (_, c) in &clones {
                let _ = self.destroy_vdi(c);
            }
            return Err(ApiError::new(VM_REVERT_FAILED, &[snapshot, &vm]));
        }
        self.revert_fields(snapshot, &vm);
        self.set_vm(&vm, "parent", Value::str(snapshot));
        self.refresh_allowed_operations(&vm);
        Ok(Value::str(""))
    }

    /// The VM's new VBDs (like the snapshot's, disks over their clones)
    /// and VIFs (the snapshot's, MACs kept).
    fn revert_devices(
        &mut self,
        snapshot: &str,
        vm: &str,
        snap_vbds: &[String],
        clones: &[(String, String)],
    ) -> Result<(), ApiError> {
        let bc = vbd_class();
        for b in snap_vbds {
            let Some(old) = self.db.get(bc, b).cloned() else {
                continue;
            };
            let vdi = match clones.iter().find(|(s, _)| s == b) {
                Some((_, c)) => c.clone(),
                None => arg_str(&old[class(bc).field("VDI")]).to_string(),
            };
            self.copy_vbd(&old, vm, &vdi)?;
        }
        for f in refs(&self.vm_field(vm, "VIFs")) {
            self.delete_vif(&f);
        }
        for f in refs(&self.vm_field(snapshot, "VIFs")) {
            self.copy_vif(&f, vm, true)?;
        }
        Ok(())
    }

    /// Copies the snapshot's configuration into `vm` (see the module
    /// documentation).
    fn revert_fields(&mut self, snapshot: &str, vm: &str) {
        let vc = vm_class();
        let cd = class(vc);
        let (Some(snap), Some(mut rec)) = (
            self.db.get(vc, snapshot).cloned(),
            self.db.get(vc, vm).cloned(),
        ) else {
            return;
        };
        for (i, f) in cd.fields.iter().enumerate() {
            if !NOT_REVERTED.contains(&f.name) {
                rec[i] = snap[i].clone();
            }
        }
        rec[cd.field("ha_always_run")] = Value::Bool(false);
        rec[cd.field("power_state")] = Value::str("Halted");
        self.db.put(vc, vm, rec);
    }

    /// Makes a VM again from a snapshot whose VM was destroyed (xapi's
    /// `create_vm_from_snapshot`): a Halted VM with the snapshot's
    /// configuration and name; every snapshot of the old VM names it.
    fn vm_from_snapshot(&mut self, snapshot: &str) -> Result<String, ApiError> {
        let vc = vm_class();
        let cd = class(vc);
        if self.db.count(vc) >= self.config.max_objects {
            return Err(ApiError::new(LIMIT_REACHED, &["VM"]));
        }
        let snap = self.db.get(vc, snapshot).cloned().expect("checked");
        let old = snap[cd.field("snapshot_of")].clone();
        let mut rec = cd.default_record();
        for (i, f) in cd.fields.iter().enumerate() {
            if !NOT_REVERTED.contains(&f.name) {
                rec[i] = snap[i].clone();
            }
        }
        rec[cd.field("uuid")] = Value::String(self.uuid());
        rec[cd.field("name_label")] = snap[cd.field("name_label")].clone();
        rec[cd.field("ha_always_run")] = Value::Bool(false);
        self.prepare_new_vm(&mut rec);
        let vm = self.new_ref();
        self.db.put(vc, &vm, rec);
        let f = cd.field("snapshot_of");
        let orphans: Vec<String> = self
            .db
            .table(vc)
            .objects
            .iter()
            .filter(|(_, r)| r[f] == old)
            .map(|(r, _)| r.clone())
            .collect();
        for s in orphans {
            self.db.set(vc, &s, f, Value::str(&vm));
        }
        Ok(vm)
    }
}

//! Guest block devices (VBDs) as xapi keeps them: `VBD.create`'s checks,
//! `VBD.destroy`, hot `VBD.plug` / `unplug` / `unplug_force`, and the
//! attach and detach of every VBD of a VM when its domain is built and
//! when it goes. Shaped like `vif.rs`.
//!
//! Read first: xapi `xapi_vbd.ml` (`create`), `xapi_vbd_helpers.ml`
//! (`valid_operations`, `destroy`), the [`Hypervisor`] VBD methods, and
//! `xcp_dom0_board::vbd_tree` (what dom0 writes to xenstore for blkback).
//!
//! - `VBD.create` (xapi's order): a non-empty VBD's VDI must be of an
//!   attachable type (VDI_INCOMPATIBLE_TYPE `[vdi, type]`); a CD must be
//!   RO (VBD_CDS_MUST_BE_READONLY `[]`); only a CD may be empty
//!   (VBD_NOT_REMOVABLE_MEDIA `["in constructor"]`); RW on a read-only
//!   VDI is VDI_READONLY `[vdi]`; `userdevice` is a decimal number up to
//!   [`MAX_USERDEVICE`] or `autodetect` (the lowest free one), else
//!   INVALID_DEVICE `[userdevice]`; one already used by the VM is
//!   DEVICE_ALREADY_EXISTS `[userdevice]` (compared as numbers). As in
//!   xapi, any power state may have VBDs created (plugging is separate).
//!   An empty VBD's VDI is the null ref. `currently_attached` starts
//!   false.
//! - `VBD.destroy` of an attached VBD: OPERATION_NOT_ALLOWED (xapi makes
//!   the caller unplug first).
//! - `VBD.plug` / `unplug` / `unplug_force`: a Running VM only
//!   (VM_BAD_POWER_STATE `[vm, running, actual]`), DEVICE_ALREADY_ATTACHED
//!   / DEVICE_ALREADY_DETACHED `[vbd]`, VDI_MISSING `[sr, vdi]` for a VDI
//!   the SR lost, VDI_IN_USE `[vdi, attach]` for a non-sharable VDI
//!   attached through another VBD when either is RW. `unplug` asks the
//!   backend to close and waits (parked, like VIF's) until Closed, at most
//!   [`VBD_DETACH_MS`], then removes the directories either way;
//!   `unplug_force` removes them at once.
//! - A VM's domain gets every VBD attached after its build and before its
//!   VIFs, before it is unpaused; a failed attach fails the start (the
//!   domain is destroyed, the VBDs attached so far removed). When the
//!   domain goes every attached VBD is removed at once.
//! - xenstore's `virtual-device` of userdevice N is xvd's: 51712 + 16·N
//!   (major 202, 16 minors a disk) for N < 16, and Linux's extended form
//!   `1 << 28 | N << 8` above ([`vbd_devid`]).

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::dispatch::{arg_str, handle_invalid};
use crate::engine::{Engine, Outcome};
use crate::error::*;
use crate::hypervisor::{Hypervisor, HypervisorError};
use crate::power::{hv_err, vm_class};
use crate::rng::Entropy;
use crate::schema::{class, class_id, ClassId};
use crate::storage::{vdi_class, ATTACHABLE_VDI_TYPES};
use crate::value::{Instant, Value, NULL_REF};
use crate::wal::Storage;

/// How long a graceful `VBD.unplug` waits for the backend to reach
/// Closed, ms, before the directories are removed anyway (the guest
/// flushes its queue first).
pub const VBD_DETACH_MS: u64 = 20_000;
/// Largest `userdevice` accepted (xvda .. xvdiv).
pub const MAX_USERDEVICE: u32 = 255;
/// xenstore `virtual-device` of xvda: major 202, minor 0.
pub const XVDA: u32 = 202 << 8;

/// A VBD's access mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VbdMode {
    /// Read-only.
    Ro,
    /// Read-write.
    Rw,
}

impl VbdMode {
    /// xenstore's `mode`: `r` or `w`.
    pub fn as_xenstore(self) -> &'static str {
        match self {
            VbdMode::Ro => "r",
            VbdMode::Rw => "w",
        }
    }
}

/// What a VBD presents to the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VbdKind {
    /// A disk.
    Disk,
    /// A CD drive (read-only, maybe empty).
    Cdrom,
}

impl VbdKind {
    /// xenstore's `device-type`: `disk` or `cdrom`.
    pub fn as_xenstore(self) -> &'static str {
        match self {
            VbdKind::Disk => "disk",
            VbdKind::Cdrom => "cdrom",
        }
    }
}

/// A guest block device as the storage backend serves it: what dom0
/// writes to the backend's and the frontend's xenstore directories
/// (`xcp_dom0_board::vbd_tree`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VbdDevice {
    /// xenstore's `virtual-device` (`N` in `device/vbd/N`), from
    /// `userdevice` by [`vbd_devid`].
    pub devid: u32,
    /// The guest's name for it, `xvda` .. (`dev`).
    pub dev: String,
    /// The VDI's uuid on its SR (`params`); `None` for an empty CD.
    pub vdi: Option<String>,
    /// The SR's uuid (empty for an empty CD).
    pub sr: String,
    /// RO or RW.
    pub mode: VbdMode,
    /// Disk or CD.
    pub kind: VbdKind,
    /// Whether the guest boots from it.
    pub bootable: bool,
}

/// xenstore's `virtual-device` for `userdevice` N, as xl numbers xvdX:
/// `202 << 8 | N << 4` for N < 16, `1 << 28 | N << 8` up to
/// [`MAX_USERDEVICE`]; `None` beyond.
pub fn vbd_devid(userdevice: u32) -> Option<u32> {
    match userdevice {
        0..=15 => Some(XVDA + 16 * userdevice),
        16..=MAX_USERDEVICE => Some((1 << 28) | (userdevice << 8)),
        _ => None,
    }
}

/// The guest's name for `userdevice` N: `xvd` and N in base-26 letters as
/// Linux names disks (0 `xvda`, 25 `xvdz`, 26 `xvdaa`).
pub fn vbd_name(userdevice: u32) -> String {
    let mut letters = Vec::new();
    let mut n = userdevice + 1;
    while n > 0 {
        n -= 1;
        letters.push(b'a' + (n % 26) as u8);
        n /= 26;
    }
    letters.reverse();
    let mut s = String::from("xvd");
    s.extend(letters.iter().map(|b| *b as char));
    s
}

/// A `userdevice` as accepted: decimal, at most [`MAX_USERDEVICE`].
pub fn parse_userdevice(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|d| *d <= MAX_USERDEVICE)
}

/// A graceful `VBD.unplug` whose call waits for the backend to close.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VbdUnplug {
    /// The guest's domain.
    pub domid: u32,
    /// The device.
    pub devid: u32,
    /// When the call was first made.
    pub since: Instant,
}

pub(crate) fn vbd_class() -> ClassId {
    class_id("VBD").expect("schema has VBD")
}

fn refs(v: Value) -> Vec<String> {
    match v {
        Value::Array(a) => a
            .into_iter()
            .filter_map(|r| r.as_str().map(ToString::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

fn vbd_ops(running: bool, attached: bool) -> Value {
    let mut ops = alloc::vec![Value::str("attach")];
    if running {
        if attached {
            ops.push(Value::str("unplug"));
            ops.push(Value::str("unplug_force"));
        } else {
            ops.push(Value::str("plug"));
        }
    }
    Value::Array(ops)
}

impl<H: Hypervisor, S: Storage, E: Entropy> Engine<H, S, E> {
    fn vbd_field(&self, vbd: &str, f: &str) -> Value {
        self.db
            .field(vbd_class(), vbd, f)
            .cloned()
            .unwrap_or(Value::Nil)
    }

    /// The VM's VBDs with their userdevice numbers, by number.
    fn vbds_of(&self, vm: &str) -> Vec<(String, u32)> {
        let mut out: Vec<(String, u32)> = refs(self.vm_field(vm, "VBDs"))
            .into_iter()
            .filter_map(|r| {
                let d = parse_userdevice(self.vbd_field(&r, "userdevice").as_str().unwrap_or(""))?;
                Some((r, d))
            })
            .collect();
        out.sort_by_key(|(_, d)| *d);
        out
    }

    /// Checks and completes a record for `VBD.create` (see the module
    /// documentation). The VM and a non-null VDI exist (checked by the
    /// caller's relations).
    pub(crate) fn prepare_new_vbd(&mut self, rec: &mut [Value]) -> Result<(), ApiError> {
        let cd = class(vbd_class());
        let vm = rec[cd.field("VM")].as_str().unwrap_or(NULL_REF).to_string();
        if self.db.get(vm_class(), &vm).is_none() {
            return Err(handle_invalid(vm_class(), &vm));
        }
        let empty = rec[cd.field("empty")].as_bool() == Some(true);
        let vdi = rec[cd.field("VDI")]
            .as_str()
            .unwrap_or(NULL_REF)
            .to_string();
        let cdrom = rec[cd.field("type")].as_str() == Some("CD");
        let rw = rec[cd.field("mode")].as_str() == Some("RW");
        if !empty {
            if self.db.get(vdi_class(), &vdi).is_none() {
                return Err(handle_invalid(vdi_class(), &vdi));
            }
            let ty = self.vdi_field(&vdi, "type");
            let ty = ty.as_str().unwrap_or("");
            if !ATTACHABLE_VDI_TYPES.contains(&ty) {
                return Err(ApiError::new(VDI_INCOMPATIBLE_TYPE, &[&vdi, ty]));
            }
        }
        if cdrom && rw {
            return Err(ApiError::new(VBD_CDS_MUST_BE_READONLY, &[]));
        }
        if !cdrom && empty {
            return Err(ApiError::new(VBD_NOT_REMOVABLE_MEDIA, &["in constructor"]));
        }
        if !empty && rw && self.vdi_field(&vdi, "read_only").as_bool() == Some(true) {
            return Err(ApiError::new(VDI_READONLY, &[&vdi]));
        }
        let given = rec[cd.field("userdevice")]
            .as_str()
            .unwrap_or("")
            .to_string();
        let used: Vec<u32> = self.vbds_of(&vm).into_iter().map(|(_, d)| d).collect();
        let device = if given == "autodetect" {
            (0..=MAX_USERDEVICE)
                .find(|d| !used.contains(d))
                .ok_or_else(|| ApiError::new(INVALID_DEVICE, &[&given]))?
        } else {
            let d =
                parse_userdevice(&given).ok_or_else(|| ApiError::new(INVALID_DEVICE, &[&given]))?;
            if used.contains(&d) {
                return Err(ApiError::new(DEVICE_ALREADY_EXISTS, &[&given]));
            }
            d
        };
        rec[cd.field("userdevice")] = Value::String(alloc::format!("{device}"));
        if empty {
            rec[cd.field("VDI")] = Value::str(NULL_REF);
        }
        rec[cd.field("device")] = Value::str("");
        rec[cd.field("currently_attached")] = Value::Bool(false);
        let running = self.vm_field(&vm, "power_state").as_str() == Some("Running");
        rec[cd.field("allowed_operations")] = vbd_ops(running, false);
        Ok(())
    }

    /// Recomputes a VBD's `allowed_operations` (and its VDI's).
    pub(crate) fn refresh_vbd_operations(&mut self, vbd: &str) {
        let vm = self.vbd_field(vbd, "VM");
        let running = self.vm_field(arg_str(&vm), "power_state").as_str() == Some("Running");
        let attached = self.vbd_field(vbd, "currently_attached").as_bool() == Some(true);
        self.db.set_named(
            vbd_class(),
            vbd,
            "allowed_operations",
            vbd_ops(running, attached),
        );
        let vdi = self.vbd_field(vbd, "VDI");
        self.refresh_vdi_operations(arg_str(&vdi));
    }

    /// `VBD.destroy`: refused while attached.
    pub(crate) fn destroy_vbd(&mut self, vbd: &str) -> Result<Value, ApiError> {
        if self.vbd_field(vbd, "currently_attached").as_bool() == Some(true) {
            let u = self.vbd_field(vbd, "uuid");
            let m = alloc::format!("VBD '{}' still attached", arg_str(&u));
            return Err(ApiError::new(OPERATION_NOT_ALLOWED, &[&m]));
        }
        self.delete_vbd(vbd);
        Ok(Value::str(""))
    }

    /// Deletes a VBD record (its VDI's operations follow).
    pub(crate) fn delete_vbd(&mut self, vbd: &str) {
        let vdi = self.vbd_field(vbd, "VDI");
        self.vbd_unplugs.remove(vbd);
        self.db.delete(vbd_class(), vbd);
        self.refresh_vdi_operations(arg_str(&vdi));
    }

    /// What the backend needs of VBD `vbd`, checking its VDI can be
    /// attached now.
    pub(crate) fn vbd_device(&self, vbd: &str) -> Result<VbdDevice, ApiError> {
        let userdevice = parse_userdevice(self.vbd_field(vbd, "userdevice").as_str().unwrap_or(""))
            .ok_or_else(|| ApiError::new(INVALID_DEVICE, &[vbd]))?;
        let devid = vbd_devid(userdevice).ok_or_else(|| ApiError::new(INVALID_DEVICE, &[vbd]))?;
        let mode = match self.vbd_field(vbd, "mode").as_str() {
            Some("RW") => VbdMode::Rw,
            _ => VbdMode::Ro,
        };
        let kind = match self.vbd_field(vbd, "type").as_str() {
            Some("CD") => VbdKind::Cdrom,
            _ => VbdKind::Disk,
        };
        let empty = self.vbd_field(vbd, "empty").as_bool() == Some(true);
        let vdi = self.vbd_field(vbd, "VDI");
        let vdi = arg_str(&vdi).to_string();
        let (vdi_uuid, sr_uuid) = if empty {
            (None, String::new())
        } else {
            let vc = vdi_class();
            if self.db.get(vc, &vdi).is_none() {
                return Err(handle_invalid(vc, &vdi));
            }
            let sr = self.vdi_field(&vdi, "SR");
            if self.vdi_field(&vdi, "missing").as_bool() == Some(true) {
                return Err(ApiError::new(VDI_MISSING, &[arg_str(&sr), &vdi]));
            }
            // A non-sharable VDI is attached once, or read-only by all.
            let sharable = self.vdi_field(&vdi, "sharable").as_bool() == Some(true);
            let conflict = self.active_vbds(&vdi).iter().any(|other| {
                other != vbd
                    && (mode == VbdMode::Rw || self.vbd_field(other, "mode").as_str() == Some("RW"))
            });
            if conflict && !sharable {
                return Err(ApiError::new(VDI_IN_USE, &[&vdi, "attach"]));
            }
            let loc = self.vdi_field(&vdi, "location");
            let sr_uuid = crate::storage::sr_class();
            let sr_uuid = self
                .db
                .field(sr_uuid, arg_str(&sr), "uuid")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            (Some(arg_str(&loc).to_string()), sr_uuid)
        };
        Ok(VbdDevice {
            devid,
            dev: vbd_name(userdevice),
            vdi: vdi_uuid,
            sr: sr_uuid,
            mode,
            kind,
            bootable: self.vbd_field(vbd, "bootable").as_bool() == Some(true),
        })
    }

    fn mark_vbd(&mut self, vbd: &str, attached: bool, dev: Option<&str>) {
        let c = vbd_class();
        self.db
            .set_named(c, vbd, "currently_attached", Value::Bool(attached));
        if let Some(dev) = dev {
            self.db.set_named(c, vbd, "device", Value::str(dev));
        }
        self.refresh_vbd_operations(vbd);
    }

    /// Attaches every VBD of `vm` to its new domain `domid` (built,
    /// paused). On a failure the ones attached are removed again and the
    /// error says which VBD failed; the caller destroys the domain.
    pub(crate) fn attach_vbds(&mut self, vm: &str, domid: u32) -> Result<(), ApiError> {
        let mut done: Vec<(String, u32)> = Vec::new();
        for (vbd, userdevice) in self.vbds_of(vm) {
            let result = self.vbd_device(&vbd).and_then(|dev| {
                self.hv.vbd_attach(domid, &dev).map(|()| dev).map_err(|e| {
                    hv_err(HypervisorError(alloc::format!("VBD {userdevice}: {}", e.0)))
                })
            });
            match result {
                Ok(dev) => {
                    self.mark_vbd(&vbd, true, Some(&dev.dev));
                    done.push((vbd, dev.devid));
                }
                Err(e) => {
                    for (vbd, devid) in done {
                        let _ = self.hv.vbd_detach(domid, devid, true);
                        self.mark_vbd(&vbd, false, None);
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Removes every attached VBD of `vm` from its domain `domid`, which
    /// is gone or going; the VBDs are detached whatever the hypervisor
    /// answers.
    pub(crate) fn detach_vbds(&mut self, vm: &str, domid: Option<u32>) {
        for (vbd, userdevice) in self.vbds_of(vm) {
            self.vbd_unplugs.remove(&vbd);
            if self.vbd_field(&vbd, "currently_attached").as_bool() == Some(true) {
                if let (Some(d), Some(devid)) = (domid, vbd_devid(userdevice)) {
                    let _ = self.hv.vbd_detach(d, devid, true);
                }
            }
            self.mark_vbd(&vbd, false, None);
        }
    }

    /// Keeps the operations of the VM's VBDs in step with its state.
    pub(crate) fn refresh_vm_vbds(&mut self, vm: &str) {
        for r in refs(self.vm_field(vm, "VBDs")) {
            self.refresh_vbd_operations(&r);
        }
    }

    /// The VBD's VM, checked Running, and its `virtual-device`.
    fn hot_vbd(&self, vbd: &str) -> Result<(String, u32), ApiError> {
        let c = vbd_class();
        if self.db.get(c, vbd).is_none() {
            return Err(handle_invalid(c, vbd));
        }
        let vm = self.vbd_field(vbd, "VM").as_str().unwrap_or("").to_string();
        let state = self.vm_field(&vm, "power_state");
        let state = state.as_str().unwrap_or("halted");
        if state != "Running" {
            return Err(ApiError::new(
                VM_BAD_POWER_STATE,
                &[&vm, "running", &state.to_ascii_lowercase()],
            ));
        }
        let devid = parse_userdevice(self.vbd_field(vbd, "userdevice").as_str().unwrap_or(""))
            .and_then(vbd_devid)
            .ok_or_else(|| ApiError::new(INVALID_DEVICE, &[vbd]))?;
        Ok((vm, devid))
    }

    /// `VBD.plug`: hot-attaches a VBD to its Running VM.
    pub(crate) fn vbd_plug(&mut self, vbd: &str) -> Result<Value, ApiError> {
        let (vm, _) = self.hot_vbd(vbd)?;
        if self.vbd_unplugs.contains_key(vbd) {
            return Err(ApiError::new(OTHER_OPERATION_IN_PROGRESS, &["VBD", vbd]));
        }
        if self.vbd_field(vbd, "currently_attached").as_bool() == Some(true) {
            return Err(ApiError::new(DEVICE_ALREADY_ATTACHED, &[vbd]));
        }
        let dev = self.vbd_device(vbd)?;
        let domid = self.domid(&vm);
        self.hv.vbd_attach(domid, &dev).map_err(hv_err)?;
        self.mark_vbd(vbd, true, Some(&dev.dev));
        Ok(Value::str(""))
    }

    /// `VBD.unplug` / `VBD.unplug_force`: as `VIF.unplug` (`vif.rs`),
    /// waiting at most [`VBD_DETACH_MS`].
    pub(crate) fn vbd_unplug(&mut self, started: Instant, op: &str, vbd: &str) -> Outcome {
        if let Some(u) = self.vbd_unplugs.get(vbd).cloned() {
            if u.since == started {
                return self.vbd_unplug_wait(vbd, u);
            }
            let vm = self.vbd_field(vbd, "VM");
            let stale =
                self.now >= u.since.plus_ms(VBD_DETACH_MS) || self.domid(arg_str(&vm)) != u.domid;
            if !stale && op != "unplug_force" {
                return Outcome::Done(Err(ApiError::new(
                    OTHER_OPERATION_IN_PROGRESS,
                    &["VBD", vbd],
                )));
            }
            self.vbd_unplugs.remove(vbd);
            let _ = self.hv.vbd_detach(u.domid, u.devid, true);
            self.mark_vbd(vbd, false, None);
            if op != "unplug_force" {
                return Outcome::Done(Err(ApiError::new(DEVICE_ALREADY_DETACHED, &[vbd])));
            }
        }
        let (vm, devid) = match self.hot_vbd(vbd) {
            Ok(x) => x,
            Err(e) => return Outcome::Done(Err(e)),
        };
        if self.vbd_field(vbd, "currently_attached").as_bool() != Some(true) {
            return Outcome::Done(Err(ApiError::new(DEVICE_ALREADY_DETACHED, &[vbd])));
        }
        let domid = self.domid(&vm);
        let force = op == "unplug_force" || started == Instant(0);
        if let Err(e) = self.hv.vbd_detach(domid, devid, force) {
            return Outcome::Done(Err(hv_err(e)));
        }
        if force {
            self.mark_vbd(vbd, false, None);
            return Outcome::Done(Ok(Value::str("")));
        }
        let u = VbdUnplug {
            domid,
            devid,
            since: started,
        };
        self.vbd_unplugs.insert(vbd.to_string(), u.clone());
        self.vbd_unplug_wait(vbd, u)
    }

    /// A parked `VBD.unplug`, run again.
    fn vbd_unplug_wait(&mut self, vbd: &str, u: VbdUnplug) -> Outcome {
        let deadline = u.since.plus_ms(VBD_DETACH_MS);
        let closed = self.hv.vbd_closed(u.domid, u.devid) != Some(false);
        if !closed && self.now < deadline {
            return Outcome::Park(deadline);
        }
        self.vbd_unplugs.remove(vbd);
        let removed = self.hv.vbd_detach(u.domid, u.devid, true);
        self.mark_vbd(vbd, false, None);
        Outcome::Done(removed.map(|()| Value::str("")).map_err(hv_err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devids_as_xl_numbers_them() {
        assert_eq!(vbd_devid(0), Some(51712));
        assert_eq!(vbd_devid(1), Some(51728));
        assert_eq!(vbd_devid(15), Some(51712 + 240));
        assert_eq!(vbd_devid(16), Some(268_439_552));
        assert_eq!(vbd_devid(MAX_USERDEVICE + 1), None);
    }

    #[test]
    fn names_as_linux_names_them() {
        assert_eq!(vbd_name(0), "xvda");
        assert_eq!(vbd_name(25), "xvdz");
        assert_eq!(vbd_name(26), "xvdaa");
        assert_eq!(vbd_name(255), "xvdiv");
    }

    #[test]
    fn userdevices() {
        assert_eq!(parse_userdevice("0"), Some(0));
        assert_eq!(parse_userdevice("07"), Some(7));
        assert_eq!(parse_userdevice("256"), None);
        assert_eq!(parse_userdevice("xvda"), None);
        assert_eq!(parse_userdevice(""), None);
    }
}

//! Storage repositories and virtual disks (SRs, VDIs) as xapi keeps them,
//! over an [`SrBackend`] that does the work: the storage domain's
//! copy-on-write SR engine in dom0, [`FakeSr`] in tests and the simulator.
//!
//! Read first: xapi `xapi_vdi.ml` (`check_operation_error`, `create`,
//! `snapshot_and_clone`), `xapi_sr.ml` (`scan`, `update_vdis`), and the
//! VBD side in `vbd.rs`.
//!
//! - The backend of an SR is reached by the SR's uuid through
//!   [`Hypervisor::sr`]; an SR without one fails SR_HAS_NO_PBDS `[sr]` (as
//!   xapi's `assert_pbd_is_plugged`). VDIs are named on the SR by uuid: a
//!   VDI's `location` is its uuid.
//! - `VDI.create`: the SR does the work first, then the record is made as
//!   xapi fills it: `virtual_size` as the SR rounded it,
//!   `physical_utilisation`, `location` = uuid, `managed` true, `missing`
//!   false, `type` / `sharable` / `read_only` / `SR` as given. A negative
//!   size is INVALID_VALUE `[virtual_size, value]`. (If the WAL then
//!   fails, the SR holds a VDI the database does not: `SR.scan` finds it.)
//! - `VDI.destroy` and `VDI.resize`: VDI_IN_USE `[vdi, operation]` while a
//!   VBD using it is attached (xapi's rule: only snapshot, clone and
//!   resize_online run live). Destroy also removes the VBDs that point to
//!   it (xapi does not wait for its GC either); a VDI the SR no longer has
//!   is forgotten. Resize to a smaller size: VDI_TOO_SMALL `[vdi, current
//!   size]` (the copy-on-write SR does not shrink).
//! - `VDI.snapshot` / `VDI.clone`: the SR makes the O(1) copy under a new
//!   uuid; the record copies the source's name, description, type,
//!   sharable, read_only, other_config, xenstore_data, on_boot and
//!   allow_caching (xapi's list); a snapshot has `is_a_snapshot`,
//!   `snapshot_of` = the source (whose `snapshots` lists it, a relation
//!   the database keeps) and `snapshot_time` = now. Snapshot of a sharable
//!   VDI: VDI_IS_SHARABLE `[vdi]`.
//! - Operations on a VDI marked `missing`: VDI_MISSING `[sr, vdi]`.
//! - `SR.scan`: VDIs on the SR and not in the database get records (type
//!   `user`, `snapshot_of` resolved when the source is known); records
//!   whose VDI is gone get `missing` true (and false again if it comes
//!   back); sizes are refreshed, the SR's too. At most
//!   [`crate::budget::MAX_SCAN_VDIS`] listed VDIs are taken (more:
//!   LIMIT_REACHED `[SR.scan]`); entries whose uuid is malformed are
//!   skipped. `SR.update` refreshes the SR's sizes.
//! - Backend errors: a VDI the SR does not have is VDI_MISSING, no room
//!   SR_FULL `[needed, available]`, anything else SR_BACKEND_FAILURE
//!   `[message, "", ""]` (xapi's `[code, stdout, stderr]` shape).

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::dispatch::{arg_str, handle_invalid};
use crate::engine::Engine;
use crate::error::*;
use crate::hypervisor::Hypervisor;
use crate::rng::Entropy;
use crate::schema::{class, class_id, ClassId};
use crate::value::{format_datetime, Value, NULL_REF};
use crate::wal::Storage;

/// An SR's sizes, bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SrStats {
    /// The SR's capacity.
    pub physical_size: u64,
    /// Bytes the SR's VDIs use.
    pub physical_utilisation: u64,
    /// The sum of its VDIs' virtual sizes.
    pub virtual_allocation: u64,
}

/// One VDI as the SR reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VdiInfo {
    /// Its name on the SR (the XenAPI VDI's uuid and `location`).
    pub uuid: String,
    /// Size the guest sees, bytes.
    pub virtual_size: u64,
    /// Bytes it uses on the SR.
    pub physical_utilisation: u64,
    /// The VDI it is a snapshot of, if any.
    pub snapshot_of: Option<String>,
}

/// Why an SR refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SrError {
    /// No VDI of that uuid on the SR.
    NoSuchVdi(String),
    /// A VDI of that uuid exists already.
    Exists(String),
    /// Not enough room: bytes needed, bytes available.
    Full(u64, u64),
    /// Anything else (I/O, the storage domain gone), as a message.
    Backend(String),
}

/// What an SR does for the toolstack: synchronous calls, each done when
/// it returns. The storage domain's SR engine implements it in dom0
/// (over the inter-domain channel); [`FakeSr`] in tests.
pub trait SrBackend {
    /// The SR's sizes.
    fn sr_stats(&mut self) -> Result<SrStats, SrError>;
    /// Makes an empty VDI named `uuid` of `virtual_size` bytes (the SR may
    /// round it up).
    fn vdi_create(&mut self, uuid: &str, virtual_size: u64) -> Result<VdiInfo, SrError>;
    /// Removes VDI `uuid` and frees what only it holds.
    fn vdi_destroy(&mut self, uuid: &str) -> Result<(), SrError>;
    /// Grows (or shrinks, if the SR can) VDI `uuid` to `virtual_size`.
    fn vdi_resize(&mut self, uuid: &str, virtual_size: u64) -> Result<VdiInfo, SrError>;
    /// A read-only point-in-time copy of `src` named `new` (O(1): shares
    /// the source's blocks).
    fn vdi_snapshot(&mut self, src: &str, new: &str) -> Result<VdiInfo, SrError>;
    /// A writable copy of `src` named `new` (O(1): shares its blocks).
    fn vdi_clone(&mut self, src: &str, new: &str) -> Result<VdiInfo, SrError>;
    /// Every VDI on the SR.
    fn vdi_list(&mut self) -> Result<Vec<VdiInfo>, SrError>;
    /// A full, independent copy of `src` named `new` (`VM.copy`): shares
    /// no blocks with it. Default: [`SrBackend::vdi_clone`] (a backend
    /// without a copy gives a copy-on-write clone, which reads the same).
    fn vdi_copy(&mut self, src: &str, new: &str) -> Result<VdiInfo, SrError> {
        self.vdi_clone(src, new)
    }
    /// Starts writing a `len`-byte image in `format` into VDI `uuid`: the
    /// transfer's number (`transfer.rs` moves the body).
    fn import_begin(&mut self, uuid: &str, format: ImageFormat, len: u64) -> Result<u32, SrError> {
        let _ = (uuid, format, len);
        Err(SrError::Backend(String::from("this SR takes no images")))
    }
    /// The image's next bytes, in order.
    fn import_data(&mut self, id: u32, bytes: &[u8]) -> Result<(), SrError> {
        let _ = (id, bytes);
        Err(SrError::Backend(String::from("no such transfer")))
    }
    /// The image ended: done and durable when it returns Ok.
    fn import_end(&mut self, id: u32) -> Result<(), SrError> {
        let _ = id;
        Err(SrError::Backend(String::from("no such transfer")))
    }
    /// Starts reading VDI `uuid` as an image in `format`: the transfer's
    /// number and the image's whole length.
    fn export_begin(&mut self, uuid: &str, format: ImageFormat) -> Result<(u32, u64), SrError> {
        let _ = (uuid, format);
        Err(SrError::Backend(String::from("this SR gives no images")))
    }
    /// The image's next bytes, at most `max`; empty at the end.
    fn export_data(&mut self, id: u32, max: usize) -> Result<Vec<u8>, SrError> {
        let _ = (id, max);
        Err(SrError::Backend(String::from("no such transfer")))
    }
    /// Forgets a transfer (its client went away).
    fn transfer_abort(&mut self, id: u32) {
        let _ = id;
    }
}

/// A disk image's format (`format=` of `/import_raw_vdi` and
/// `/export_raw_vdi`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    /// The disk's bytes.
    Raw,
    /// A VHD.
    Vhd,
}

/// A transfer of [`FakeSr`]: the VDI, the image's length, its bytes so
/// far (an import) or the position (an export), which way.
#[derive(Clone, Debug)]
pub struct FakeTransfer {
    /// The VDI.
    pub uuid: String,
    /// The image's length.
    pub len: u64,
    /// Bytes moved.
    pub at: u64,
    /// An import (else an export).
    pub import: bool,
}

/// An in-memory SR: thin by default (a VDI holds only what was "written"
/// to it, [`FakeSr::write`]); `thick` allocates each VDI's whole size.
#[derive(Clone, Debug)]
pub struct FakeSr {
    /// Capacity, bytes.
    pub physical_size: u64,
    /// Allocate whole VDIs (else thin).
    pub thick: bool,
    /// The VDIs: uuid to (virtual size, bytes of its own, snapshot of).
    pub vdis: BTreeMap<String, (u64, u64, Option<String>)>,
    /// When set, the next call fails with this message.
    pub fail_next: Option<String>,
    /// Every mutating call, as `op uuid`.
    pub calls: Vec<String>,
    /// The bytes of VDIs that were imported into (raw only), by uuid; a
    /// clone or snapshot starts with its source's.
    pub data: BTreeMap<String, Vec<u8>>,
    /// Transfers under way, by number.
    pub transfers: BTreeMap<u32, FakeTransfer>,
}

/// The granularity the fake SR rounds virtual sizes up to (a 4 KiB
/// block, like a copy-on-write SR's).
pub const FAKE_BLOCK: u64 = 4096;

impl FakeSr {
    /// An empty SR of `physical_size` bytes.
    pub fn new(physical_size: u64) -> FakeSr {
        FakeSr {
            physical_size,
            thick: false,
            vdis: BTreeMap::new(),
            fail_next: None,
            calls: Vec::new(),
            data: BTreeMap::new(),
            transfers: BTreeMap::new(),
        }
    }

    /// The guest wrote `bytes` new bytes to VDI `uuid` (test helper).
    pub fn write(&mut self, uuid: &str, bytes: u64) {
        if let Some((size, own, _)) = self.vdis.get_mut(uuid) {
            *own = own.saturating_add(bytes).min(*size);
        }
    }

    fn used(&self) -> u64 {
        self.vdis
            .values()
            .fold(0u64, |n, (_, own, _)| n.saturating_add(*own))
    }

    fn info(&self, uuid: &str) -> Result<VdiInfo, SrError> {
        let (size, own, of) = self
            .vdis
            .get(uuid)
            .ok_or_else(|| SrError::NoSuchVdi(uuid.to_string()))?;
        Ok(VdiInfo {
            uuid: uuid.to_string(),
            virtual_size: *size,
            physical_utilisation: *own,
            snapshot_of: of.clone(),
        })
    }

    fn start(&mut self, op: &str, uuid: &str) -> Result<(), SrError> {
        self.calls.push(alloc::format!("{op} {uuid}"));
        match self.fail_next.take() {
            Some(m) => Err(SrError::Backend(m)),
            None => Ok(()),
        }
    }

    /// Takes `bytes` more of the SR, or says it is full.
    fn take(&self, bytes: u64) -> Result<(), SrError> {
        let free = self.physical_size.saturating_sub(self.used());
        if bytes > free {
            return Err(SrError::Full(bytes, free));
        }
        Ok(())
    }

    fn copy(&mut self, src: &str, new: &str, snapshot: bool) -> Result<VdiInfo, SrError> {
        let (size, _, _) = *self
            .vdis
            .get(src)
            .ok_or_else(|| SrError::NoSuchVdi(src.to_string()))?;
        if self.vdis.contains_key(new) {
            return Err(SrError::Exists(new.to_string()));
        }
        let of = snapshot.then(|| src.to_string());
        self.vdis.insert(new.to_string(), (size, 0, of));
        // Copy-on-write: the new VDI reads what the source holds now, and
        // a later write to either is its own.
        if let Some(bytes) = self.data.get(src).cloned() {
            self.data.insert(new.to_string(), bytes);
        }
        self.info(new)
    }
}

impl SrBackend for FakeSr {
    fn import_begin(&mut self, uuid: &str, format: ImageFormat, len: u64) -> Result<u32, SrError> {
        self.start("import", uuid)?;
        let size = self.info(uuid)?.virtual_size;
        if format != ImageFormat::Raw {
            return Err(SrError::Backend(String::from(
                "the fake SR takes raw images",
            )));
        }
        if len > size {
            return Err(SrError::Backend(String::from(
                "the image is larger than the VDI",
            )));
        }
        let id = self.transfers.keys().next_back().map_or(1, |k| k + 1);
        self.data
            .insert(uuid.to_string(), alloc::vec![0; size as usize]);
        let t = FakeTransfer {
            uuid: uuid.to_string(),
            len,
            at: 0,
            import: true,
        };
        self.transfers.insert(id, t);
        Ok(id)
    }

    fn import_data(&mut self, id: u32, bytes: &[u8]) -> Result<(), SrError> {
        if let Some(m) = self.fail_next.take() {
            self.transfers.remove(&id);
            return Err(SrError::Backend(m));
        }
        let t = self
            .transfers
            .get_mut(&id)
            .filter(|t| t.import)
            .ok_or_else(|| SrError::Backend(String::from("no such transfer")))?;
        let data = self.data.get_mut(&t.uuid).expect("imported VDIs have data");
        let at = t.at as usize;
        if t.at + bytes.len() as u64 > t.len {
            return Err(SrError::Backend(String::from("past the image's length")));
        }
        data[at..at + bytes.len()].copy_from_slice(bytes);
        t.at += bytes.len() as u64;
        Ok(())
    }

    fn import_end(&mut self, id: u32) -> Result<(), SrError> {
        let t = self
            .transfers
            .remove(&id)
            .filter(|t| t.import)
            .ok_or_else(|| SrError::Backend(String::from("no such transfer")))?;
        if t.at != t.len {
            return Err(SrError::Backend(String::from("the image ended short")));
        }
        let own = t.len;
        self.write(&t.uuid, own);
        Ok(())
    }

    fn export_begin(&mut self, uuid: &str, format: ImageFormat) -> Result<(u32, u64), SrError> {
        let size = self.info(uuid)?.virtual_size;
        if format != ImageFormat::Raw {
            return Err(SrError::Backend(String::from(
                "the fake SR gives raw images",
            )));
        }
        let id = self.transfers.keys().next_back().map_or(1, |k| k + 1);
        let t = FakeTransfer {
            uuid: uuid.to_string(),
            len: size,
            at: 0,
            import: false,
        };
        self.transfers.insert(id, t);
        Ok((id, size))
    }

    fn export_data(&mut self, id: u32, max: usize) -> Result<Vec<u8>, SrError> {
        let t = self
            .transfers
            .get_mut(&id)
            .filter(|t| !t.import)
            .ok_or_else(|| SrError::Backend(String::from("no such transfer")))?;
        let n = (t.len - t.at).min(max as u64) as usize;
        let at = t.at as usize;
        let out = match self.data.get(&t.uuid) {
            Some(d) => d[at..at + n].to_vec(),
            None => alloc::vec![0; n],
        };
        t.at += n as u64;
        if n == 0 {
            self.transfers.remove(&id);
        }
        Ok(out)
    }

    fn transfer_abort(&mut self, id: u32) {
        self.transfers.remove(&id);
    }

    fn sr_stats(&mut self) -> Result<SrStats, SrError> {
        Ok(SrStats {
            physical_size: self.physical_size,
            physical_utilisation: self.used(),
            virtual_allocation: self
                .vdis
                .values()
                .fold(0u64, |n, (s, _, _)| n.saturating_add(*s)),
        })
    }

    fn vdi_create(&mut self, uuid: &str, virtual_size: u64) -> Result<VdiInfo, SrError> {
        self.start("create", uuid)?;
        if self.vdis.contains_key(uuid) {
            return Err(SrError::Exists(uuid.to_string()));
        }
        let size = virtual_size.div_ceil(FAKE_BLOCK).saturating_mul(FAKE_BLOCK);
        let own = if self.thick { size } else { 0 };
        self.take(own)?;
        self.vdis.insert(uuid.to_string(), (size, own, None));
        self.info(uuid)
    }

    fn vdi_destroy(&mut self, uuid: &str) -> Result<(), SrError> {
        self.start("destroy", uuid)?;
        self.data.remove(uuid);
        self.vdis
            .remove(uuid)
            .map(|_| ())
            .ok_or_else(|| SrError::NoSuchVdi(uuid.to_string()))
    }

    fn vdi_resize(&mut self, uuid: &str, virtual_size: u64) -> Result<VdiInfo, SrError> {
        self.start("resize", uuid)?;
        let size = virtual_size.div_ceil(FAKE_BLOCK).saturating_mul(FAKE_BLOCK);
        let (old, own, _) = *self
            .vdis
            .get(uuid)
            .ok_or_else(|| SrError::NoSuchVdi(uuid.to_string()))?;
        if size < old {
            return Err(SrError::Backend(String::from("shrinking is not supported")));
        }
        let more = if self.thick { size - old } else { 0 };
        self.take(more)?;
        if let Some(v) = self.vdis.get_mut(uuid) {
            *v = (size, own.saturating_add(more), v.2.clone());
        }
        self.info(uuid)
    }

    fn vdi_snapshot(&mut self, src: &str, new: &str) -> Result<VdiInfo, SrError> {
        self.start("snapshot", new)?;
        self.copy(src, new, true)
    }

    fn vdi_clone(&mut self, src: &str, new: &str) -> Result<VdiInfo, SrError> {
        self.start("clone", new)?;
        self.copy(src, new, false)
    }

    fn vdi_list(&mut self) -> Result<Vec<VdiInfo>, SrError> {
        self.vdis.keys().map(|u| self.info(u)).collect()
    }

    fn vdi_copy(&mut self, src: &str, new: &str) -> Result<VdiInfo, SrError> {
        self.start("copy", new)?;
        let own = self.vdis.get(src).map_or(0, |v| v.1);
        self.take(own)?;
        self.copy(src, new, false)?;
        if let Some(v) = self.vdis.get_mut(new) {
            v.1 = own;
        }
        if let Some(d) = self.data.get(src).cloned() {
            self.data.insert(new.to_string(), d);
        }
        self.info(new)
    }
}

/// True if `s` is a uuid as xapi writes them: 8-4-4-4-12 hex digits.
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// The VDI types a VBD may use (xapi's `VBD.create` list).
pub const ATTACHABLE_VDI_TYPES: &[&str] = &[
    "system",
    "user",
    "ephemeral",
    "suspend",
    "crashdump",
    "metadata",
];

pub(crate) fn vdi_class() -> ClassId {
    class_id("VDI").expect("schema has VDI")
}

pub(crate) fn sr_class() -> ClassId {
    class_id("SR").expect("schema has SR")
}

fn int(n: u64) -> Value {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

fn refs(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|r| r.as_str().map(ToString::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

impl<H: Hypervisor, S: Storage, E: Entropy> Engine<H, S, E> {
    pub(crate) fn vdi_field(&self, vdi: &str, f: &str) -> Value {
        self.db
            .field(vdi_class(), vdi, f)
            .cloned()
            .unwrap_or(Value::Nil)
    }

    fn set_vdi(&mut self, vdi: &str, f: &str, v: Value) {
        self.db.set_named(vdi_class(), vdi, f, v);
    }

    /// Runs `f` on the backend of SR `sr`; errors become xapi's (a missing
    /// VDI is reported against `vdi`).
    pub(crate) fn with_sr<T>(
        &mut self,
        sr: &str,
        vdi: &str,
        f: impl FnOnce(&mut dyn SrBackend) -> Result<T, SrError>,
    ) -> Result<T, ApiError> {
        let sc = sr_class();
        let uuid = self
            .db
            .field(sc, sr, "uuid")
            .and_then(Value::as_str)
            .ok_or_else(|| handle_invalid(sc, sr))?
            .to_string();
        let Some(backend) = self.hv.sr(&uuid) else {
            return Err(ApiError::new(SR_HAS_NO_PBDS, &[sr]));
        };
        f(backend).map_err(|e| match e {
            SrError::NoSuchVdi(_) => ApiError::new(VDI_MISSING, &[sr, vdi]),
            SrError::Full(need, free) => ApiError::new(
                SR_FULL,
                &[&alloc::format!("{need}"), &alloc::format!("{free}")],
            ),
            SrError::Exists(u) => {
                let m = alloc::format!("SR {sr}: VDI {u} exists already");
                ApiError::new(SR_BACKEND_FAILURE, &[&m, "", ""])
            }
            SrError::Backend(m) => ApiError::new(SR_BACKEND_FAILURE, &[&m, "", ""]),
        })
    }

    /// Copies the SR's sizes into its record.
    pub(crate) fn refresh_sr(&mut self, sr: &str) -> Result<(), ApiError> {
        let st = self.with_sr(sr, NULL_REF, |b| b.sr_stats())?;
        let c = sr_class();
        self.db
            .set_named(c, sr, "physical_size", int(st.physical_size));
        self.db
            .set_named(c, sr, "physical_utilisation", int(st.physical_utilisation));
        self.db
            .set_named(c, sr, "virtual_allocation", int(st.virtual_allocation));
        Ok(())
    }

    /// Asks the SR for one VDI's sizes and copies them into its record.
    pub(crate) fn refresh_vdi_info(&mut self, sr: &str, vdi: &str) -> Result<(), ApiError> {
        let loc = self.vdi_field(vdi, "location");
        let loc = arg_str(&loc).to_string();
        let all = self.with_sr(sr, vdi, |b| b.vdi_list())?;
        if let Some(info) = all.iter().find(|i| i.uuid == loc) {
            self.apply_vdi_info(vdi, info);
        }
        Ok(())
    }

    /// Copies what the SR says of a VDI into its record.
    fn apply_vdi_info(&mut self, vdi: &str, info: &VdiInfo) {
        self.set_vdi(vdi, "virtual_size", int(info.virtual_size));
        self.set_vdi(vdi, "physical_utilisation", int(info.physical_utilisation));
    }

    /// The VDI's SR, the VDI checked present (not `missing`).
    pub(crate) fn vdi_sr(&self, vdi: &str) -> Result<String, ApiError> {
        let c = vdi_class();
        if self.db.get(c, vdi).is_none() {
            return Err(handle_invalid(c, vdi));
        }
        let sr = self.vdi_field(vdi, "SR").as_str().unwrap_or("").to_string();
        if self.vdi_field(vdi, "missing").as_bool() == Some(true) {
            return Err(ApiError::new(VDI_MISSING, &[&sr, vdi]));
        }
        Ok(sr)
    }

    /// The VDI's VBDs that are attached (xapi's "active").
    pub(crate) fn active_vbds(&self, vdi: &str) -> Vec<String> {
        let bc = crate::vbd::vbd_class();
        refs(self.db.field(vdi_class(), vdi, "VBDs"))
            .into_iter()
            .filter(|b| self.db.field(bc, b, "currently_attached") == Some(&Value::Bool(true)))
            .collect()
    }

    /// VDI_IN_USE unless `op` may run while the VDI is attached.
    fn assert_not_in_use(&self, vdi: &str, op: &str) -> Result<(), ApiError> {
        if self.active_vbds(vdi).is_empty() {
            Ok(())
        } else {
            Err(ApiError::new(VDI_IN_USE, &[vdi, op]))
        }
    }

    /// Recomputes a VDI's `allowed_operations` (xapi's
    /// `update_allowed_operations`, over the operations implemented).
    pub(crate) fn refresh_vdi_operations(&mut self, vdi: &str) {
        if self.db.get(vdi_class(), vdi).is_none() {
            return;
        }
        let mut ops = Vec::new();
        if self.vdi_field(vdi, "missing").as_bool() != Some(true) {
            let idle = self.active_vbds(vdi).is_empty();
            ops.push(Value::str("clone"));
            if idle {
                ops.push(Value::str("destroy"));
                ops.push(Value::str("resize"));
            }
            ops.push(Value::str("resize_online"));
            if self.vdi_field(vdi, "sharable").as_bool() != Some(true) {
                ops.push(Value::str("snapshot"));
            }
        }
        self.set_vdi(vdi, "allowed_operations", Value::Array(ops));
    }

    /// `VDI.create` of a checked record (its SR exists): the SR makes the
    /// VDI, then the record is stored.
    pub(crate) fn create_vdi(&mut self, mut rec: Vec<Value>) -> Result<Value, ApiError> {
        let cd = class(vdi_class());
        let size = rec[cd.field("virtual_size")].as_int().unwrap_or(0);
        let Ok(size) = u64::try_from(size) else {
            let v = alloc::format!("{size}");
            return Err(ApiError::new(INVALID_VALUE, &["virtual_size", &v]));
        };
        let sr = rec[cd.field("SR")].as_str().unwrap_or(NULL_REF).to_string();
        if self.db.get(sr_class(), &sr).is_none() {
            return Err(handle_invalid(sr_class(), &sr));
        }
        let uuid = self.uuid();
        let info = self.with_sr(&sr, NULL_REF, |b| b.vdi_create(&uuid, size))?;
        rec[cd.field("uuid")] = Value::String(uuid.clone());
        rec[cd.field("location")] = Value::String(uuid);
        rec[cd.field("managed")] = Value::Bool(true);
        rec[cd.field("missing")] = Value::Bool(false);
        rec[cd.field("is_a_snapshot")] = Value::Bool(false);
        rec[cd.field("snapshot_of")] = Value::str(NULL_REF);
        rec[cd.field("parent")] = Value::str(NULL_REF);
        let reference = self.new_ref();
        self.db.put(vdi_class(), &reference, rec);
        self.apply_vdi_info(&reference, &info);
        self.refresh_vdi_operations(&reference);
        self.refresh_sr(&sr)?;
        Ok(Value::String(reference))
    }

    /// `VDI.destroy`.
    pub(crate) fn destroy_vdi(&mut self, vdi: &str) -> Result<Value, ApiError> {
        let c = vdi_class();
        if self.db.get(c, vdi).is_none() {
            return Err(handle_invalid(c, vdi));
        }
        self.assert_not_in_use(vdi, "destroy")?;
        let sr = self.vdi_field(vdi, "SR").as_str().unwrap_or("").to_string();
        let loc = self.vdi_field(vdi, "location");
        let loc = arg_str(&loc).to_string();
        match self.with_sr(&sr, vdi, |b| b.vdi_destroy(&loc)) {
            // Already gone from the SR: forget the record.
            Ok(()) => {}
            Err(e) if e.code == VDI_MISSING => {}
            Err(e) => return Err(e),
        }
        for vbd in refs(self.db.field(c, vdi, "VBDs")) {
            self.delete_vbd(&vbd);
        }
        self.db.delete(c, vdi);
        self.refresh_sr(&sr)?;
        Ok(Value::str(""))
    }

    /// `VDI.resize` / `VDI.resize_online` (`online`: allowed while
    /// attached).
    pub(crate) fn resize_vdi(
        &mut self,
        vdi: &str,
        size: i64,
        online: bool,
    ) -> Result<Value, ApiError> {
        let sr = self.vdi_sr(vdi)?;
        if !online {
            self.assert_not_in_use(vdi, "resize")?;
        }
        let Ok(size) = u64::try_from(size) else {
            let v = alloc::format!("{size}");
            return Err(ApiError::new(INVALID_VALUE, &["size", &v]));
        };
        let current = self.vdi_field(vdi, "virtual_size").as_int().unwrap_or(0);
        if (size as i128) < i128::from(current) {
            let v = alloc::format!("{current}");
            return Err(ApiError::new(VDI_TOO_SMALL, &[vdi, &v]));
        }
        let loc = self.vdi_field(vdi, "location");
        let loc = arg_str(&loc).to_string();
        let info = self.with_sr(&sr, vdi, |b| b.vdi_resize(&loc, size))?;
        self.apply_vdi_info(vdi, &info);
        self.refresh_sr(&sr)?;
        Ok(Value::str(""))
    }

    /// `VDI.snapshot` / `VDI.clone`: the new VDI's ref.
    pub(crate) fn copy_vdi(&mut self, vdi: &str, snapshot: bool) -> Result<Value, ApiError> {
        self.copy_vdi_with(vdi, snapshot, false)
    }

    /// A full copy of `vdi` in its SR ([`SrBackend::vdi_copy`], for
    /// `VM.copy`): the new VDI's ref.
    pub(crate) fn copy_vdi_full(&mut self, vdi: &str) -> Result<Value, ApiError> {
        self.copy_vdi_with(vdi, false, true)
    }

    fn copy_vdi_with(&mut self, vdi: &str, snapshot: bool, full: bool) -> Result<Value, ApiError> {
        let sr = self.vdi_sr(vdi)?;
        if snapshot && self.vdi_field(vdi, "sharable").as_bool() == Some(true) {
            return Err(ApiError::new(VDI_IS_SHARABLE, &[vdi]));
        }
        let c = vdi_class();
        let cd = class(c);
        let loc = self.vdi_field(vdi, "location");
        let loc = arg_str(&loc).to_string();
        let uuid = self.uuid();
        let info = self.with_sr(&sr, vdi, |b| {
            if snapshot {
                b.vdi_snapshot(&loc, &uuid)
            } else if full {
                b.vdi_copy(&loc, &uuid)
            } else {
                b.vdi_clone(&loc, &uuid)
            }
        })?;
        let mut rec = cd.default_record();
        for f in [
            "name_label",
            "name_description",
            "type",
            "sharable",
            "read_only",
            "other_config",
            "xenstore_data",
            "on_boot",
            "allow_caching",
            "SR",
            "sm_config",
        ] {
            rec[cd.field(f)] = self.vdi_field(vdi, f);
        }
        rec[cd.field("uuid")] = Value::String(uuid.clone());
        rec[cd.field("location")] = Value::String(uuid);
        rec[cd.field("managed")] = Value::Bool(true);
        if snapshot {
            rec[cd.field("is_a_snapshot")] = Value::Bool(true);
            rec[cd.field("snapshot_of")] = Value::str(vdi);
            rec[cd.field("snapshot_time")] = Value::DateTime(format_datetime(self.now));
        }
        let reference = self.new_ref();
        self.db.put(c, &reference, rec);
        self.apply_vdi_info(&reference, &info);
        self.refresh_vdi_operations(&reference);
        self.refresh_sr(&sr)?;
        Ok(Value::String(reference))
    }

    /// `SR.scan` (see the module documentation).
    pub(crate) fn scan_sr(&mut self, sr: &str) -> Result<Value, ApiError> {
        let sc = sr_class();
        if self.db.get(sc, sr).is_none() {
            return Err(handle_invalid(sc, sr));
        }
        let listed = self.with_sr(sr, NULL_REF, |b| b.vdi_list())?;
        if listed.len() > crate::budget::MAX_SCAN_VDIS {
            return Err(ApiError::new(LIMIT_REACHED, &["SR.scan"]));
        }
        let listed: Vec<VdiInfo> = listed.into_iter().filter(|v| is_uuid(&v.uuid)).collect();
        let c = vdi_class();
        let cd = class(c);
        // The SR's records by location.
        let mut known: BTreeMap<String, String> = refs(self.db.field(sc, sr, "VDIs"))
            .into_iter()
            .map(|r| {
                let loc = self.vdi_field(&r, "location");
                (arg_str(&loc).to_string(), r)
            })
            .collect();
        let on_sr: BTreeSet<&str> = listed.iter().map(|v| v.uuid.as_str()).collect();
        for (loc, r) in &known {
            if !on_sr.contains(loc.as_str()) {
                self.set_vdi(r, "missing", Value::Bool(true));
                self.refresh_vdi_operations(r);
            }
        }
        for info in &listed {
            let r = match known.get(&info.uuid) {
                Some(r) => r.clone(),
                None => {
                    if self.db.count(c) >= self.config.max_objects {
                        return Err(ApiError::new(LIMIT_REACHED, &["VDI"]));
                    }
                    // A uuid another SR's VDI already has cannot be a
                    // second record; it is left alone.
                    if self.db.by_uuid(c, &info.uuid).is_some() {
                        continue;
                    }
                    let mut rec = cd.default_record();
                    rec[cd.field("uuid")] = Value::String(info.uuid.clone());
                    rec[cd.field("location")] = Value::String(info.uuid.clone());
                    rec[cd.field("SR")] = Value::str(sr);
                    rec[cd.field("type")] = Value::str("user");
                    rec[cd.field("managed")] = Value::Bool(true);
                    let r = self.new_ref();
                    self.db.put(c, &r, rec);
                    known.insert(info.uuid.clone(), r.clone());
                    r
                }
            };
            self.set_vdi(&r, "missing", Value::Bool(false));
            self.apply_vdi_info(&r, info);
        }
        // Snapshots' sources, once every record exists.
        for info in &listed {
            let (Some(r), Some(of)) = (known.get(&info.uuid), &info.snapshot_of) else {
                continue;
            };
            if let Some(src) = known.get(of) {
                let (r, src) = (r.clone(), src.clone());
                if self.vdi_field(&r, "snapshot_of").as_str() != Some(src.as_str()) {
                    self.set_vdi(&r, "snapshot_of", Value::String(src));
                    self.set_vdi(&r, "is_a_snapshot", Value::Bool(true));
                }
            }
        }
        for r in known.values() {
            self.refresh_vdi_operations(r);
        }
        self.refresh_sr(sr)?;
        Ok(Value::str(""))
    }

    /// `SR.update`: the SR's sizes.
    pub(crate) fn update_sr(&mut self, sr: &str) -> Result<Value, ApiError> {
        let sc = sr_class();
        if self.db.get(sc, sr).is_none() {
            return Err(handle_invalid(sc, sr));
        }
        self.refresh_sr(sr)?;
        Ok(Value::str(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "00000000-0000-0000-0000-00000000000a";
    const B: &str = "00000000-0000-0000-0000-00000000000b";

    #[test]
    fn uuids() {
        assert!(is_uuid(A));
        assert!(!is_uuid(&A[1..]));
        assert!(!is_uuid("00000000-0000-0000-0000-00000000000g"));
        assert!(!is_uuid("000000000-000-0000-0000-00000000000a"));
    }

    #[test]
    fn fake_sr_thin_and_thick() {
        let mut sr = FakeSr::new(1 << 20);
        let v = sr.vdi_create(A, 5000).unwrap();
        assert_eq!(v.virtual_size, 8192);
        assert_eq!(v.physical_utilisation, 0);
        sr.write(A, 100_000);
        assert_eq!(sr.sr_stats().unwrap().physical_utilisation, 8192);
        let s = sr.vdi_snapshot(A, B).unwrap();
        assert_eq!(s.snapshot_of.as_deref(), Some(A));
        assert_eq!(s.physical_utilisation, 0);
        assert_eq!(sr.vdi_snapshot(A, B), Err(SrError::Exists(B.into())));
        sr.thick = true;
        assert!(matches!(
            sr.vdi_create("c", 2 << 20),
            Err(SrError::Full(_, _))
        ));
        assert_eq!(
            sr.vdi_resize(A, 4096),
            Err(SrError::Backend("shrinking is not supported".into()))
        );
        assert_eq!(sr.vdi_destroy("x"), Err(SrError::NoSuchVdi("x".into())));
    }
}

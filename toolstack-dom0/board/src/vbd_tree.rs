//! A guest VBD's xenstore directories, as the storage domain's blkback
//! reads them: the backend's under the storage domain's home and the
//! frontend's under the guest's, written in one transaction; the graceful
//! close; and their removal. The same shape as [`crate::vif_tree`], over
//! its [`Store`].
//!
//! Read first: xen docs/misc/xenstore-paths.pandoc ("Device paths"),
//! include/public/io/blkif.h (the keys), docs/misc/vbd-interface.txt (the
//! `virtual-device` numbers), and `xenapi::vbd` (where the values come
//! from).
//!
//! With D the guest's domid, N the `virtual-device` number (xvda 51712),
//! B the storage domain's domid:
//!
//! | directory | keys | permissions |
//! |---|---|---|
//! | `/local/domain/B/backend/vbd/D/N` | `frontend`, `frontend-id`, `online` (1), `removable`, `bootable`, `state` (1), `dev`, `type` ([`BACKEND_TYPE`]), `mode` (`r`/`w`), `device-type` (`disk`/`cdrom`), `params` (the VDI's uuid; empty for an empty CD) | `[{B, none}, {D, read}]` |
//! | `/local/domain/D/device/vbd/N` | `backend`, `backend-id`, `state` (1), `virtual-device`, `device-type` (a PVH guest's CD: `disk`, see [`VbdInfo::hvm_frontend`]) | `[{D, none}, {B, read}]` |
//!
//! Permissions are on each directory and key. A detach of a running guest
//! writes the backend's `online` 0 and `state` Closing, waits for blkback
//! to write Closed, then removes both directories; a dead guest's are
//! removed at once.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use xcp_xenbus::Error;

use crate::guest_tree::Node;
use crate::vif_tree::{
    backend_perms, close_backend, closed_at, frontend_perms, in_transaction, remove_dirs,
    set_perms_below, write_if_present, Store, STATE_INITIALISING,
};

/// The backend `type`: a VDI of the storage domain's SR, named by uuid in
/// `params` (xl writes `phy` for a block device).
pub const BACKEND_TYPE: &str = "vdi";

/// What dom0 writes for one VBD.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VbdInfo<'a> {
    /// The guest's domain (D).
    pub guest: u16,
    /// The storage domain (B).
    pub backend: u16,
    /// The `virtual-device` number (N).
    pub devid: u32,
    /// The guest's name for it, `xvda` ...
    pub dev: &'a str,
    /// The VDI's uuid; `None` for an empty CD drive.
    pub vdi: Option<&'a str>,
    /// Read-write (else read-only).
    pub writable: bool,
    /// A CD drive (else a disk).
    pub cdrom: bool,
    /// The guest boots from it.
    pub bootable: bool,
    /// The guest is an HVM-type domain (PVH). Its CD drive is a disk in
    /// its frontend directory (`device-type` there): Linux's blkfront
    /// refuses a PV cdrom in an HVM-type domain, expecting the emulated
    /// drive a PVH guest has not. The backend still says `cdrom`.
    pub hvm_frontend: bool,
}

/// `/local/domain/B/backend/vbd/D/N`.
pub fn backend_dir(backend: u16, guest: u16, devid: u32) -> String {
    format!("/local/domain/{backend}/backend/vbd/{guest}/{devid}")
}

/// `/local/domain/D/device/vbd/N`.
pub fn frontend_dir(guest: u16, devid: u32) -> String {
    format!("/local/domain/{guest}/device/vbd/{devid}")
}

fn flag(b: bool) -> String {
    String::from(if b { "1" } else { "0" })
}

/// Every node of the VBD's two directories, each directory before its
/// keys, the backend's first.
pub fn nodes(vbd: &VbdInfo) -> Vec<Node> {
    let (b, d, n) = (vbd.backend, vbd.guest, vbd.devid);
    let back = backend_dir(b, d, n);
    let front = frontend_dir(d, n);
    let device_type = String::from(if vbd.cdrom { "cdrom" } else { "disk" });
    let mut out = Vec::new();
    let mut put = |dir: &str, key: &str, value: String, perms: &Vec<xcp_xenbus::Perm>| {
        let path = if key.is_empty() {
            String::from(dir)
        } else {
            format!("{dir}/{key}")
        };
        out.push(Node {
            path,
            value,
            perms: perms.clone(),
        });
    };
    let bp = backend_perms(b, d);
    put(&back, "", String::new(), &bp);
    put(&back, "frontend", front.clone(), &bp);
    put(&back, "frontend-id", format!("{d}"), &bp);
    put(&back, "online", String::from("1"), &bp);
    put(&back, "removable", flag(vbd.cdrom), &bp);
    put(&back, "bootable", flag(vbd.bootable), &bp);
    put(&back, "state", format!("{STATE_INITIALISING}"), &bp);
    put(&back, "dev", String::from(vbd.dev), &bp);
    put(&back, "type", String::from(BACKEND_TYPE), &bp);
    let mode = if vbd.writable { "w" } else { "r" };
    put(&back, "mode", String::from(mode), &bp);
    put(&back, "device-type", device_type.clone(), &bp);
    put(&back, "params", String::from(vbd.vdi.unwrap_or("")), &bp);
    let fp = frontend_perms(d, b);
    put(&front, "", String::new(), &fp);
    put(&front, "backend", back, &fp);
    put(&front, "backend-id", format!("{b}"), &fp);
    put(&front, "state", format!("{STATE_INITIALISING}"), &fp);
    put(&front, "virtual-device", format!("{n}"), &fp);
    let front_type = if vbd.hvm_frontend {
        String::from("disk")
    } else {
        device_type
    };
    put(&front, "device-type", front_type, &fp);
    out
}

/// Writes both directories of `vbd` with their permissions, in one
/// transaction.
pub fn attach<S: Store + ?Sized>(store: &mut S, vbd: &VbdInfo) -> Result<(), Error> {
    let nodes = nodes(vbd);
    in_transaction(store, |s, tx| {
        for node in &nodes {
            s.write(tx, &node.path, node.value.as_bytes())?;
            s.set_perms(tx, &node.path, &node.perms)?;
        }
        Ok(())
    })
}

/// For a storage domain rebuilt under its old domid: writes the backend's
/// directory again (xenstore dropped it with the old domain) and the
/// frontend's `backend`/`backend-id`, and gives every node of the
/// frontend's directory its permissions again (xenstore-dom took the old
/// domain out of their ACLs), leaving the frontend's own keys (its rings,
/// its state) as blkfront wrote them, so the new blkback takes the
/// connected frontend over in place. `Ok(false)` when the frontend's
/// directory is gone (the guest went meanwhile): nothing is written.
pub fn reattach<S: Store + ?Sized>(store: &mut S, vbd: &VbdInfo) -> Result<bool, Error> {
    let back = backend_dir(vbd.backend, vbd.guest, vbd.devid);
    let front = frontend_dir(vbd.guest, vbd.devid);
    let keep: Vec<Node> = nodes(vbd)
        .into_iter()
        .filter(|n| {
            n.path.starts_with(&back)
                || n.path == format!("{front}/backend")
                || n.path == format!("{front}/backend-id")
        })
        .collect();
    let fp = frontend_perms(vbd.guest, vbd.backend);
    write_if_present(store, &format!("{front}/state"), &keep, |s, tx| {
        set_perms_below(s, tx, &front, &fp)
    })
}

/// Asks blkback to close the VBD: the backend's `online` 0 and `state`
/// Closing, in one transaction (a directory already gone is left gone).
pub fn request_close<S: Store + ?Sized>(
    store: &mut S,
    backend: u16,
    guest: u16,
    devid: u32,
) -> Result<(), Error> {
    let dir = backend_dir(backend, guest, devid);
    close_backend(store, &dir, &backend_perms(backend, guest))
}

/// Whether the backend reached Closed, or its directory is gone.
pub fn backend_closed<S: Store + ?Sized>(
    store: &mut S,
    backend: u16,
    guest: u16,
    devid: u32,
) -> Result<bool, Error> {
    closed_at(store, &backend_dir(backend, guest, devid))
}

/// Removes both directories, in one transaction (what is gone already is
/// no error).
pub fn remove<S: Store + ?Sized>(
    store: &mut S,
    backend: u16,
    guest: u16,
    devid: u32,
) -> Result<(), Error> {
    remove_dirs(
        store,
        &[
            backend_dir(backend, guest, devid),
            frontend_dir(guest, devid),
        ],
    )
}

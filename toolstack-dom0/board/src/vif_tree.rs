//! A guest VIF's xenstore directories, as netdom's netback is written
//! against them: the backend's under netdom's home and the frontend's
//! under the guest's, written in one transaction; the graceful close; and
//! their removal. Pure: the writes go through [`Store`], which dom0's
//! xenstore link implements (and `fake::FakeStore` in the host tests).
//!
//! Read first: xen docs/misc/xenstore-paths.pandoc ("Device paths"),
//! xen include/public/io/netif.h (the keys), include/public/io/xenbus.h
//! (the states), and netdom/DESIGN.md.
//!
//! With D the guest's domid, N the device, B netdom's domid:
//!
//! | directory | keys | permissions |
//! |---|---|---|
//! | `/local/domain/B/backend/vif/D/N` | `frontend`, `frontend-id`, `online` (1), `state` (1), `handle`, `mac`, `mtu`, `locking-mode`, `ipv4-allowed`, `ipv6-allowed` | `[{B, none}, {D, read}]` |
//! | `/local/domain/D/device/vif/N` | `backend`, `backend-id`, `state` (1), `handle`, `mac` | `[{D, none}, {B, read}]` |
//!
//! The permissions are on the directory and on every key (the first entry
//! is the owner and what everyone else may do). A detach of a running
//! guest writes the backend's `online` 0 and `state` Closing (5), waits
//! for netdom to write Closed (6), then removes both directories; a dead
//! guest's are removed at once.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use xcp_xenbus::{Error, TxId, XsErrno};

use crate::guest_tree::Node;
pub use xcp_xenbus::{Access, Perm};

/// XenbusStateInitialising (xenbus.h).
pub const STATE_INITIALISING: u32 = 1;
/// XenbusStateClosing.
pub const STATE_CLOSING: u32 = 5;
/// XenbusStateClosed.
pub const STATE_CLOSED: u32 = 6;
/// How many times a transaction is tried when its commit conflicts
/// (EAGAIN) before the conflict is returned.
pub const ATTEMPTS: usize = 5;

/// What dom0 writes for one VIF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VifInfo<'a> {
    /// The guest's domain (D).
    pub guest: u16,
    /// netdom's domain (B).
    pub backend: u16,
    /// The device number (N).
    pub devid: u32,
    /// The MAC address.
    pub mac: [u8; 6],
    /// The MTU.
    pub mtu: u32,
    /// `unlocked`, `locked` or `disabled`.
    pub locking: &'a str,
    /// Addresses a locked VIF may use (IPv4).
    pub ipv4_allowed: &'a [String],
    /// Addresses a locked VIF may use (IPv6).
    pub ipv6_allowed: &'a [String],
}

/// The xenstore operations the VIF directories need (dom0's blocking
/// link; a fake in the host tests).
pub trait Store {
    /// TRANSACTION_START.
    fn transaction_start(&mut self) -> Result<TxId, Error>;
    /// TRANSACTION_END (EAGAIN: the commit conflicted).
    fn transaction_end(&mut self, tx: TxId, commit: bool) -> Result<(), Error>;
    /// WRITE.
    fn write(&mut self, tx: TxId, path: &str, value: &[u8]) -> Result<(), Error>;
    /// SET_PERMS.
    fn set_perms(&mut self, tx: TxId, path: &str, perms: &[Perm]) -> Result<(), Error>;
    /// READ.
    fn read(&mut self, tx: TxId, path: &str) -> Result<Vec<u8>, Error>;
    /// RM.
    fn rm(&mut self, tx: TxId, path: &str) -> Result<(), Error>;
    /// DIRECTORY: the children's names.
    fn directory(&mut self, tx: TxId, path: &str) -> Result<Vec<String>, Error>;
}

impl<R: xcp_xenbus::SharedPage, W: xcp_xenbus::Wait> Store for xcp_xenbus::Xenbus<R, W> {
    fn transaction_start(&mut self) -> Result<TxId, Error> {
        xcp_xenbus::Xenbus::transaction_start(self)
    }
    fn transaction_end(&mut self, tx: TxId, commit: bool) -> Result<(), Error> {
        xcp_xenbus::Xenbus::transaction_end(self, tx, commit)
    }
    fn write(&mut self, tx: TxId, path: &str, value: &[u8]) -> Result<(), Error> {
        xcp_xenbus::Xenbus::write(self, tx, path, value)
    }
    fn set_perms(&mut self, tx: TxId, path: &str, perms: &[Perm]) -> Result<(), Error> {
        xcp_xenbus::Xenbus::set_perms(self, tx, path, perms)
    }
    fn read(&mut self, tx: TxId, path: &str) -> Result<Vec<u8>, Error> {
        xcp_xenbus::Xenbus::read(self, tx, path)
    }
    fn rm(&mut self, tx: TxId, path: &str) -> Result<(), Error> {
        xcp_xenbus::Xenbus::rm(self, tx, path)
    }
    fn directory(&mut self, tx: TxId, path: &str) -> Result<Vec<String>, Error> {
        xcp_xenbus::Xenbus::directory(self, tx, path)
    }
}

/// `/local/domain/B/backend/vif/D/N`.
pub fn backend_dir(backend: u16, guest: u16, devid: u32) -> String {
    format!("/local/domain/{backend}/backend/vif/{guest}/{devid}")
}

/// `/local/domain/D/device/vif/N`.
pub fn frontend_dir(guest: u16, devid: u32) -> String {
    format!("/local/domain/{guest}/device/vif/{devid}")
}

/// `aa:bb:cc:dd:ee:ff`, lower-case.
pub fn mac_text(mac: &[u8; 6]) -> String {
    let [a, b, c, d, e, f] = mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

/// The backend's directory and keys: owned by netdom, readable by the
/// guest.
pub fn backend_perms(backend: u16, guest: u16) -> Vec<Perm> {
    alloc::vec![
        Perm::new(backend, Access::None),
        Perm::new(guest, Access::Read)
    ]
}

/// The frontend's directory and keys: owned by the guest, readable by
/// netdom.
pub fn frontend_perms(guest: u16, backend: u16) -> Vec<Perm> {
    alloc::vec![
        Perm::new(guest, Access::None),
        Perm::new(backend, Access::Read)
    ]
}

/// Every node of the VIF's two directories, each directory before its
/// keys, the backend's first.
pub fn nodes(vif: &VifInfo) -> Vec<Node> {
    let (b, d, n) = (vif.backend, vif.guest, vif.devid);
    let back = backend_dir(b, d, n);
    let front = frontend_dir(d, n);
    let mac = mac_text(&vif.mac);
    let mut out = Vec::new();
    let bp = backend_perms(b, d);
    let mut put = |dir: &str, key: &str, value: String, perms: &Vec<Perm>| {
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
    put(&back, "", String::new(), &bp);
    put(&back, "frontend", front.clone(), &bp);
    put(&back, "frontend-id", format!("{d}"), &bp);
    put(&back, "online", String::from("1"), &bp);
    put(&back, "state", format!("{STATE_INITIALISING}"), &bp);
    put(&back, "handle", format!("{n}"), &bp);
    put(&back, "mac", mac.clone(), &bp);
    put(&back, "mtu", format!("{}", vif.mtu), &bp);
    put(&back, "locking-mode", String::from(vif.locking), &bp);
    put(&back, "ipv4-allowed", vif.ipv4_allowed.join(","), &bp);
    put(&back, "ipv6-allowed", vif.ipv6_allowed.join(","), &bp);
    let fp = frontend_perms(d, b);
    put(&front, "", String::new(), &fp);
    put(&front, "backend", back.clone(), &fp);
    put(&front, "backend-id", format!("{b}"), &fp);
    put(&front, "state", format!("{STATE_INITIALISING}"), &fp);
    put(&front, "handle", format!("{n}"), &fp);
    put(&front, "mac", mac, &fp);
    out
}

/// Runs `body` in a transaction, again when the commit conflicts (at
/// most [`ATTEMPTS`] times); an error of `body` aborts it.
pub(crate) fn in_transaction<S: Store + ?Sized>(
    store: &mut S,
    mut body: impl FnMut(&mut S, TxId) -> Result<(), Error>,
) -> Result<(), Error> {
    for _ in 0..ATTEMPTS {
        let tx = store.transaction_start()?;
        if let Err(e) = body(store, tx) {
            let _ = store.transaction_end(tx, false);
            return Err(e);
        }
        match store.transaction_end(tx, true) {
            Err(Error::Xs(XsErrno::Eagain)) => continue,
            other => return other,
        }
    }
    Err(Error::Conflict)
}

/// Writes both directories of `vif` with their permissions, in one
/// transaction.
pub fn attach<S: Store + ?Sized>(store: &mut S, vif: &VifInfo) -> Result<(), Error> {
    let nodes = nodes(vif);
    in_transaction(store, |s, tx| {
        for node in &nodes {
            s.write(tx, &node.path, node.value.as_bytes())?;
            s.set_perms(tx, &node.path, &node.perms)?;
        }
        Ok(())
    })
}

/// Writes `vif`'s backend directory again for a rebuilt netdom
/// (`vif.backend`), and points the frontend at it, leaving the frontend's
/// own keys (its state, rings, channels) alone: a frontend that stays
/// Connected is taken over in place. xenstore dropped the old netdom's
/// read access to the frontend's nodes with the old domain, so every node
/// of the frontend's directory (two levels: netfront's keys and its
/// `queue-N/` ones) gets the frontend's permissions again, naming the new
/// backend. `Ok(false)` when the frontend's directory is gone (the guest
/// went meanwhile): nothing is written.
pub fn reattach<S: Store + ?Sized>(store: &mut S, vif: &VifInfo) -> Result<bool, Error> {
    let back = backend_dir(vif.backend, vif.guest, vif.devid);
    let front = frontend_dir(vif.guest, vif.devid);
    let keep = |n: &Node| {
        n.path.starts_with(&back)
            || n.path == format!("{front}/backend")
            || n.path == format!("{front}/backend-id")
    };
    let fp = frontend_perms(vif.guest, vif.backend);
    rewrite_if_present(store, &format!("{front}/state"), vif, keep, |s, tx| {
        set_perms_below(s, tx, &front, &fp)
    })
}

/// Gives `dir` and every node two levels below it `perms` (a frontend's
/// keys and its `queue-N/` ones).
pub(crate) fn set_perms_below<S: Store + ?Sized>(
    s: &mut S,
    tx: TxId,
    dir: &str,
    perms: &[Perm],
) -> Result<(), Error> {
    s.set_perms(tx, dir, perms)?;
    for child in s.directory(tx, dir)? {
        let path = format!("{dir}/{child}");
        s.set_perms(tx, &path, perms)?;
        for grandchild in s.directory(tx, &path)? {
            s.set_perms(tx, &format!("{path}/{grandchild}"), perms)?;
        }
    }
    Ok(())
}

/// Gives the backend directory of `vif` its rules again (`locking-mode`,
/// `ipv4-allowed`, `ipv6-allowed`), which netdom watches and applies at
/// once. `Ok(false)` when the directory is gone.
pub fn set_rules<S: Store + ?Sized>(store: &mut S, vif: &VifInfo) -> Result<bool, Error> {
    let back = backend_dir(vif.backend, vif.guest, vif.devid);
    let rules = |n: &Node| {
        ["locking-mode", "ipv4-allowed", "ipv6-allowed"]
            .iter()
            .any(|k| n.path == format!("{back}/{k}"))
    };
    rewrite_if_present(store, &format!("{back}/state"), vif, rules, |_, _| Ok(()))
}

/// In one transaction, if `witness` exists: writes the nodes of `vif`
/// that `keep` selects, with their permissions, then runs `more`.
/// `Ok(false)` (nothing written) when `witness` is gone.
fn rewrite_if_present<S: Store + ?Sized>(
    store: &mut S,
    witness: &str,
    vif: &VifInfo,
    keep: impl Fn(&Node) -> bool,
    more: impl FnMut(&mut S, TxId) -> Result<(), Error>,
) -> Result<bool, Error> {
    let nodes: Vec<Node> = nodes(vif).into_iter().filter(keep).collect();
    write_if_present(store, witness, &nodes, more)
}

/// In one transaction, if `witness` exists: writes `nodes` with their
/// permissions, then runs `more`. `Ok(false)` (nothing written) when
/// `witness` is gone.
pub(crate) fn write_if_present<S: Store + ?Sized>(
    store: &mut S,
    witness: &str,
    nodes: &[Node],
    mut more: impl FnMut(&mut S, TxId) -> Result<(), Error>,
) -> Result<bool, Error> {
    let mut present = true;
    in_transaction(store, |s, tx| {
        match s.read(tx, witness) {
            Ok(_) => present = true,
            Err(Error::Xs(XsErrno::Enoent)) => {
                present = false;
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        for node in nodes {
            s.write(tx, &node.path, node.value.as_bytes())?;
            s.set_perms(tx, &node.path, &node.perms)?;
        }
        more(s, tx)
    })?;
    Ok(present)
}

/// Asks netdom to close the VIF: the backend's `online` 0 and `state`
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

/// A device's graceful close (VIFs and VBDs alike): the backend directory
/// `dir`'s `online` 0 and `state` Closing with `perms`, in one transaction;
/// a directory already gone is left gone.
pub(crate) fn close_backend<S: Store + ?Sized>(
    store: &mut S,
    dir: &str,
    perms: &[Perm],
) -> Result<(), Error> {
    in_transaction(store, |s, tx| {
        match s.read(tx, &format!("{dir}/state")) {
            Ok(_) => {}
            Err(Error::Xs(XsErrno::Enoent)) => return Ok(()),
            Err(e) => return Err(e),
        }
        for (key, value) in [
            ("online", String::from("0")),
            ("state", format!("{STATE_CLOSING}")),
        ] {
            let path = format!("{dir}/{key}");
            s.write(tx, &path, value.as_bytes())?;
            s.set_perms(tx, &path, perms)?;
        }
        Ok(())
    })
}

/// Whether the backend directory `dir` reached Closed, or is gone.
pub(crate) fn closed_at<S: Store + ?Sized>(store: &mut S, dir: &str) -> Result<bool, Error> {
    match store.read(TxId::NONE, &format!("{dir}/state")) {
        Ok(v) => Ok(v.trim_ascii() == format!("{STATE_CLOSED}").as_bytes()),
        Err(Error::Xs(XsErrno::Enoent)) => Ok(true),
        Err(e) => Err(e),
    }
}

/// Removes `dirs`, in one transaction (what is gone already is no error).
pub(crate) fn remove_dirs<S: Store + ?Sized>(store: &mut S, dirs: &[String]) -> Result<(), Error> {
    in_transaction(store, |s, tx| {
        for dir in dirs {
            match s.rm(tx, dir) {
                Ok(()) | Err(Error::Xs(XsErrno::Enoent)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    })
}

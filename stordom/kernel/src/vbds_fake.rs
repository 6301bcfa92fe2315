//! Test doubles for the VBD board (feature `fake`): a [`Platform`] in
//! memory, for the host tests and the fuzz target, and the toolstack's
//! writes ([`plug`]). The SR side is the real `SrRepo` over
//! `xcp_sr::fake::MemDisk`.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::RefCell;

use xcp_blkback::fake::{FakeGrants, MemPages};
use xcp_blkback::{IndirectFetch, Segment};
use xcp_ring::SharedPage;

use super::Platform;

/// A ring (one or more pages) both the test's blkfront and the board hold.
#[derive(Clone)]
pub struct Page(pub Rc<MemPages>);

impl SharedPage for Page {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn read(&self, offset: usize, out: &mut [u8]) {
        self.0.read(offset, out)
    }
    fn write(&self, offset: usize, data: &[u8]) {
        self.0.write(offset, data)
    }
    fn load_u32(&self, offset: usize) -> u32 {
        self.0.load_u32(offset)
    }
    fn store_u32(&self, offset: usize, v: u32) {
        self.0.store_u32(offset, v)
    }
}

/// The board's world in memory: xenstore nodes, the watches set,
/// frontends' ring pages and granted data pages, event channels.
#[derive(Default)]
pub struct Fake {
    /// xenstore: path to value.
    pub xs: BTreeMap<String, Vec<u8>>,
    /// Watches set: (path, token).
    pub watches: Vec<(String, String)>,
    /// Frontends' rings by (domid, their grants in order).
    pub rings: BTreeMap<(u16, Vec<u32>), Page>,
    /// Ring mappings held now.
    pub mapped: Rc<RefCell<usize>>,
    /// Granted data pages.
    pub grants: FakeGrants,
    /// Our bound ports: port to (domid, remote port).
    pub bound: BTreeMap<u32, (u16, u32)>,
    /// The last port handed out.
    pub next_port: u32,
    /// Ports kicked, in order.
    pub kicks: Vec<u32>,
    /// Binds refused from now on (a dead frontend).
    pub refuse_binds: bool,
}

/// The toolstack's writes for guest `d`'s device `n` under `base`
/// (`vbd_tree`'s layout): a backend directory serving VDI `params`
/// (`mode` r or w), and the frontend's directory at Initialising.
pub fn plug(pf: &mut Fake, base: &str, d: u16, n: u32, params: &str, mode: &str) {
    let back = format!("{base}/{d}/{n}");
    let front = format!("/local/domain/{d}/device/vbd/{n}");
    for (k, v) in [
        ("frontend", front.as_str()),
        ("frontend-id", &d.to_string()),
        ("online", "1"),
        ("state", "1"),
        ("dev", "xvda"),
        ("type", "vdi"),
        ("mode", mode),
        ("device-type", "disk"),
        ("params", params),
    ] {
        pf.xs.insert(format!("{back}/{k}"), v.as_bytes().to_vec());
    }
    for (k, v) in [
        ("backend", back.as_str()),
        ("backend-id", "1"),
        ("state", "1"),
        ("virtual-device", &n.to_string()),
        ("device-type", "disk"),
    ] {
        pf.xs.insert(format!("{front}/{k}"), v.as_bytes().to_vec());
    }
}

/// A live ring mapping (counted until dropped).
pub struct Mapped(Page, Rc<RefCell<usize>>);

impl Drop for Mapped {
    fn drop(&mut self) {
        *self.1.borrow_mut() -= 1;
    }
}

impl SharedPage for Mapped {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn read(&self, offset: usize, out: &mut [u8]) {
        self.0.read(offset, out)
    }
    fn write(&self, offset: usize, data: &[u8]) {
        self.0.write(offset, data)
    }
    fn load_u32(&self, offset: usize) -> u32 {
        self.0.load_u32(offset)
    }
    fn store_u32(&self, offset: usize, v: u32) {
        self.0.store_u32(offset, v)
    }
}

impl Platform for Fake {
    type Page = Mapped;
    fn read(&mut self, path: &str) -> Option<Vec<u8>> {
        self.xs.get(path).cloned()
    }
    fn write(&mut self, path: &str, value: &[u8]) -> bool {
        self.xs.insert(path.into(), value.to_vec());
        true
    }
    fn directory(&mut self, path: &str) -> Vec<String> {
        let prefix = format!("{path}/");
        let mut v: Vec<String> = self
            .xs
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .filter_map(|rest| rest.split('/').next())
            .map(String::from)
            .collect();
        v.dedup();
        v
    }
    fn watch(&mut self, path: &str, token: &str) -> bool {
        self.watches.push((path.into(), token.into()));
        true
    }
    fn unwatch(&mut self, path: &str, token: &str) {
        self.watches
            .retain(|w| w != &(path.to_string(), token.to_string()));
    }
    fn map_ring(&mut self, domid: u16, grefs: &[u32]) -> Option<Mapped> {
        let page = self.rings.get(&(domid, grefs.to_vec()))?.clone();
        *self.mapped.borrow_mut() += 1;
        Some(Mapped(page, self.mapped.clone()))
    }
    fn bind(&mut self, domid: u16, port: u32) -> Option<u32> {
        if self.refuse_binds {
            return None;
        }
        self.next_port += 1;
        self.bound.insert(self.next_port, (domid, port));
        Some(self.next_port)
    }
    fn unbind(&mut self, port: u32) {
        assert!(self.bound.remove(&port).is_some(), "unbind of {port}");
    }
    fn notify(&mut self, port: u32) {
        assert!(self.bound.contains_key(&port), "kick of unbound {port}");
        self.kicks.push(port);
    }
    fn copy_in(&mut self, domid: u16, segments: &[Segment], buf: &mut [u8]) -> bool {
        let mut at = 0usize;
        for s in segments {
            let (off, len) = (usize::from(s.offset), usize::from(s.len));
            let Some(page) = self.grants.page(domid, s.gref) else {
                return false;
            };
            let (Some(src), Some(dst)) = (page.get(off..off + len), buf.get_mut(at..at + len))
            else {
                panic!("segment {s:?} outside its page or the buffer");
            };
            dst.copy_from_slice(src);
            at += len;
        }
        assert_eq!(at, buf.len(), "buffer sized to the segments");
        true
    }
    fn copy_out(&mut self, domid: u16, segments: &[Segment], buf: &[u8]) -> bool {
        let mut at = 0usize;
        for s in segments {
            let (off, len) = (usize::from(s.offset), usize::from(s.len));
            if self.grants.page(domid, s.gref).is_none() {
                return false;
            }
            assert!(off + len <= 4096, "segment {s:?} outside its page");
            let Some(src) = buf.get(at..at + len) else {
                panic!("buffer shorter than the segments");
            };
            self.grants.grant(domid, s.gref, off, src);
            at += len;
        }
        assert_eq!(at, buf.len(), "buffer sized to the segments");
        true
    }
    fn fetch(&mut self, fetch: &IndirectFetch) -> Option<Vec<u8>> {
        self.grants.fetch(fetch)
    }
}

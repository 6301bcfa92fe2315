//! Test doubles for the switch (feature `fake`): a [`Platform`] in memory,
//! for the host tests and the fuzz target.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::RefCell;

use xcp_netback::fake::FakeGrants;
use xcp_netback::{RxPlan, TxPlan};
use xcp_ring::fake::MemPage;
use xcp_ring::SharedPage;

use super::Platform;

/// Implements `SharedPage` for a wrapper by reaching the `MemPage` inside.
macro_rules! via_mem_page {
    ($t:ty, |$p:ident| $inner:expr) => {
        impl SharedPage for $t {
            fn len(&self) -> usize {
                let $p = self;
                $inner.len()
            }
            fn read(&self, offset: usize, out: &mut [u8]) {
                let $p = self;
                $inner.read(offset, out)
            }
            fn write(&self, offset: usize, data: &[u8]) {
                let $p = self;
                $inner.write(offset, data)
            }
            fn load_u32(&self, offset: usize) -> u32 {
                let $p = self;
                $inner.load_u32(offset)
            }
            fn store_u32(&self, offset: usize, v: u32) {
                let $p = self;
                $inner.store_u32(offset, v)
            }
        }
    };
}

/// A ring page both the test's netfront and the switch hold.
#[derive(Clone)]
pub struct Page(pub Rc<MemPage>);

via_mem_page!(Page, |p| p.0);

/// The switch's world in memory: xenstore nodes, the watches set,
/// frontends' ring pages and granted data pages, event channels, what
/// went out of the NIC.
#[derive(Default)]
pub struct Fake {
    /// xenstore: path to value.
    pub xs: BTreeMap<String, Vec<u8>>,
    /// Watches set: (path, token).
    pub watches: Vec<(String, String)>,
    /// Frontends' ring pages by (domid, gref).
    pub rings: BTreeMap<(u16, u32), Page>,
    /// Ring pages mapped now.
    pub mapped: Rc<RefCell<usize>>,
    /// Granted data pages.
    pub grants: FakeGrants,
    /// Our bound ports: port to (domid, remote port).
    pub bound: BTreeMap<u32, (u16, u32)>,
    /// The last port handed out.
    pub next_port: u32,
    /// Ports kicked, in order.
    pub kicks: Vec<u32>,
    /// Frames sent out of the NIC.
    pub uplink: Vec<Vec<u8>>,
}

/// The toolstack's writes for guest `d`'s device `n` under `base`
/// (`vif_tree`'s layout): a backend directory with `mac`, `locking` and
/// `ipv4` allowed, and the frontend's directory at Initialising.
pub fn plug(pf: &mut Fake, base: &str, d: u16, n: u32, mac: &str, locking: &str, ipv4: &str) {
    let back = format!("{base}/{d}/{n}");
    let front = format!("/local/domain/{d}/device/vif/{n}");
    for (k, v) in [
        ("frontend", front.as_str()),
        ("frontend-id", &d.to_string()),
        ("online", "1"),
        ("state", "1"),
        ("handle", &n.to_string()),
        ("mac", mac),
        ("mtu", "1500"),
        ("locking-mode", locking),
        ("ipv4-allowed", ipv4),
        ("ipv6-allowed", ""),
    ] {
        pf.xs.insert(format!("{back}/{k}"), v.as_bytes().to_vec());
    }
    for (k, v) in [("backend", back.as_str()), ("state", "1"), ("mac", mac)] {
        pf.xs.insert(format!("{front}/{k}"), v.as_bytes().to_vec());
    }
}

/// Counts live mappings (a ring page the switch still holds).
pub struct Mapped(Page, Rc<RefCell<usize>>);

impl Drop for Mapped {
    fn drop(&mut self) {
        *self.1.borrow_mut() -= 1;
    }
}

via_mem_page!(Mapped, |m| (m.0).0);

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
            .map(|rest| rest.split('/').next().unwrap().to_string())
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
    fn map_ring(&mut self, domid: u16, gref: u32) -> Option<Mapped> {
        let page = self.rings.get(&(domid, gref))?.clone();
        *self.mapped.borrow_mut() += 1;
        Some(Mapped(page, self.mapped.clone()))
    }
    fn bind(&mut self, domid: u16, port: u32) -> Option<u32> {
        self.next_port += 1;
        self.bound.insert(self.next_port, (domid, port));
        Some(self.next_port)
    }
    fn unbind(&mut self, port: u32) {
        assert!(self.bound.remove(&port).is_some(), "unbind of {port}");
    }
    fn notify(&mut self, port: u32) {
        self.kicks.push(port);
    }
    fn copy_tx(&mut self, plan: &mut TxPlan) -> bool {
        self.grants.run_tx(plan)
    }
    fn copy_rx(&mut self, plan: &RxPlan, packet: &[u8]) -> bool {
        self.grants.run_rx(plan, packet)
    }
    fn uplink_send(&mut self, frame: &[u8]) {
        self.uplink.push(frame.to_vec());
    }
}

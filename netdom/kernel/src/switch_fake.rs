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

/// A ring page both the test's netfront and the switch hold.
#[derive(Clone)]
pub struct Page(pub Rc<MemPage>);

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

/// The switch's world in memory: xenstore nodes, the watches set,
/// frontends' ring pages and granted data pages, event channels, what
/// went out of the NIC.
#[derive(Default)]
pub struct Fake {
    pub xs: BTreeMap<String, Vec<u8>>,
    pub watches: Vec<(String, String)>,
    pub rings: BTreeMap<(u16, u32), Page>,
    pub mapped: Rc<RefCell<usize>>,
    pub grants: FakeGrants,
    pub bound: BTreeMap<u32, (u16, u32)>,
    pub next_port: u32,
    pub kicks: Vec<u32>,
    pub uplink: Vec<Vec<u8>>,
}

/// Counts live mappings (a ring page the switch still holds).
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

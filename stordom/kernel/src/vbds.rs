//! stordom's blkback board: each guest VBD's blkback engine
//! (`xcp_blkback::Vbd`) driven from xenstore, its disk work run against
//! the SR. Pure: xenstore, grants and event channels are reached through
//! [`Platform`], the SR through [`Disks`]; the PV kernel (`main.rs`,
//! `platform.rs`) implements both, host tests implement them over fakes.
//!
//! Read first: stordom/DESIGN.md ("Guest VBDs"), `xcp_blkback`'s DESIGN.md
//! (the board's loop), netdom's `switch.rs` (the same board for VIFs).
//!
//! The toolstack's contract (`toolstack-dom0/board/src/vbd_tree.rs`): for
//! guest `D`'s device `N` it writes, in one transaction,
//! `<base>/D/N/{frontend,frontend-id,online,state,dev,type,mode,
//! device-type,params}` under stordom's `backend/vbd` (`base`), with
//! `type = vdi` and `params` the VDI's uuid. stordom watches `base`
//! (written only by dom0) and, per VBD, only the frontend's `state` node
//! (XSA-349). `online = 0` asks for a clean close (backend → Closing →
//! Closed); the directory removed means the device is gone (its rings and
//! channels are let go at once). A directory stordom cannot serve gets
//! `hotplug-error` and state Closed, and is not looked at again until it
//! is removed or made again.
//!
//! Disk work is done synchronously, within the turn that took it off the
//! ring: the SR is one in-memory engine over one disk, so there is nothing
//! to overlap. Fairness comes from the engine's `REQUESTS_PER_POLL`: each
//! turn polls every ready queue once; a queue cut short stays ready and is
//! polled again next turn, after the others and after dom0's channel.
//!
//! Memory: the engines' state is bounded by `xcp_blkback`'s budget
//! (`MAX_VBDS` × `VBD_MEMORY` ≤ `BLKBACK_HEAP_BUDGET`); since work completes
//! before the next is taken, the board holds one request's buffer at a
//! time (≤ 256 KiB, allocated fallibly: short of memory the request is
//! answered with an error, never a panic).

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use xcp_blkback::{
    Action, Config, DeviceType, DiskInfo, DiskIo, Features, IndirectFetch, IoOp, IoStatus, Segment,
    State, Stats, Vbd, Work, MAX_VBDS,
};
use xcp_ring::SharedPage;
use xcp_storwire::uuid::uuid_bytes;
use xcp_storwire::Uuid;
use xcp_xenbus::XenbusState;

#[cfg(any(test, feature = "fake"))]
#[path = "vbds_fake.rs"]
pub mod fake;

/// The watch token of `base`.
const BACKENDS: &str = "vbd-backends";
/// A 512-byte sector.
const SECTOR: u64 = 512;

/// What the board needs from the world. Failures are logged by the
/// implementation and reported as `None`/`false`.
pub trait Platform {
    /// A queue's mapped ring pages, as one run (unmapped on drop).
    type Page: SharedPage;
    /// A xenstore node's value; `None` when absent or unreadable.
    fn read(&mut self, path: &str) -> Option<Vec<u8>>;
    /// Writes a xenstore node.
    fn write(&mut self, path: &str, value: &[u8]) -> bool;
    /// A xenstore directory's children (empty when absent).
    fn directory(&mut self, path: &str) -> Vec<String>;
    /// Watches a xenstore path.
    fn watch(&mut self, path: &str, token: &str) -> bool;
    /// Stops watching it.
    fn unwatch(&mut self, path: &str, token: &str);
    /// Maps a frontend's ring grants, writable, as one run of pages
    /// (page 0 first).
    fn map_ring(&mut self, domid: u16, grefs: &[u32]) -> Option<Self::Page>;
    /// Binds an interdomain event channel to `domid`'s `port`: ours.
    fn bind(&mut self, domid: u16, port: u32) -> Option<u32>;
    /// Closes one of our event channels.
    fn unbind(&mut self, port: u32);
    /// Kicks one of our event channels.
    fn notify(&mut self, port: u32);
    /// Grant-copies the frontend's `segments`, in order, into `buf` (its
    /// length is the segments' sum).
    fn copy_in(&mut self, domid: u16, segments: &[Segment], buf: &mut [u8]) -> bool;
    /// Grant-copies `buf`, in order, out to the frontend's `segments`.
    fn copy_out(&mut self, domid: u16, segments: &[Segment], buf: &[u8]) -> bool;
    /// Copies an indirect request's segment pages in: the bytes of
    /// `fetch.pages`, concatenated; `None` when a copy failed.
    fn fetch(&mut self, fetch: &IndirectFetch) -> Option<Vec<u8>>;
}

/// A VDI as the board serves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VdiDisk {
    /// Size in 512-byte sectors.
    pub sectors: u64,
    /// A snapshot or read-only VDI: served read-only whatever `mode` says.
    pub read_only: bool,
}

/// The SR as the board uses it, by VDI uuid. Sectors are 512 bytes;
/// buffers are whole sectors.
pub trait Disks {
    /// The VDI's size and mode; `None` when there is no such VDI.
    fn info(&self, vdi: Uuid) -> Option<VdiDisk>;
    /// Reads from `sector` into `buf`.
    fn read(&mut self, vdi: Uuid, sector: u64, buf: &mut [u8]) -> IoStatus;
    /// Writes `buf` from `sector` (durable at the next flush).
    fn write(&mut self, vdi: Uuid, sector: u64, buf: &[u8]) -> IoStatus;
    /// Makes every completed write durable (an SR commit and a disk
    /// flush): what a guest's fsync waits for.
    fn flush(&mut self) -> IoStatus;
    /// The range reads zero from now on.
    fn discard(&mut self, vdi: Uuid, sector: u64, count: u64) -> IoStatus;
}

/// What the board counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// VBDs created.
    pub created: u64,
    /// Backend directories refused (bad keys, no such VDI, over the limit).
    pub refused: u64,
    /// VBDs that went away.
    pub removed: u64,
    /// Requests whose buffer could not be allocated (answered with an
    /// error).
    pub no_memory: u64,
}

/// A VBD's figures, for `VBD_metrics` and the console.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VbdReport {
    /// Frontend domain.
    pub domid: u16,
    /// Device number.
    pub devid: u32,
    /// The VDI.
    pub vdi: Uuid,
    /// Engine state.
    pub state: State,
    /// Engine counters.
    pub stats: Stats,
}

/// One guest VBD.
struct Slot<P: SharedPage> {
    vbd: Vbd<P>,
    vdi: Uuid,
    backend: String,
    frontend: String,
    token: String,
    /// Our end of each queue's event channel.
    ports: BTreeMap<u16, u32>,
    /// The toolstack asked for a close (`online = 0`).
    unplugging: bool,
}

/// (guest, device).
type Key = (u16, u32);

/// The VBDs.
pub struct Vbds<P: Platform> {
    base: String,
    max_ring_page_order: u32,
    vbds: BTreeMap<Key, Slot<P::Page>>,
    /// Directories refused: left alone until they are removed (our own
    /// `hotplug-error` and `state` writes fire the watch again).
    refused: BTreeSet<Key>,
    /// Queues to poll at the next turn: kicked, cut short by the
    /// per-poll cap, or just connected.
    ready: BTreeSet<(u16, u32, u16)>,
    /// What it counted.
    pub counters: Counters,
}

impl<P: Platform> Vbds<P> {
    /// A board for the backend directory `base` (stordom's
    /// `/local/domain/<id>/backend/vbd`), offering rings of up to
    /// `1 << max_ring_page_order` pages (clamped by the engine); VBDs come
    /// from `start`.
    pub fn new(base: &str, max_ring_page_order: u32) -> Vbds<P> {
        Vbds {
            base: base.into(),
            max_ring_page_order,
            vbds: BTreeMap::new(),
            refused: BTreeSet::new(),
            ready: BTreeSet::new(),
            counters: Counters::default(),
        }
    }

    /// Watches the backend directory (xenstore fires the watch once at
    /// once: that event brings up any VBD already there, e.g. after a
    /// stordom restart, whose frontend is taken over where it is).
    pub fn start(&mut self, pf: &mut P) -> bool {
        let base = self.base.clone();
        pf.watch(&base, BACKENDS)
    }

    /// The VBDs' figures.
    pub fn reports(&self) -> Vec<VbdReport> {
        self.vbds
            .iter()
            .map(|(&(domid, devid), s)| VbdReport {
                domid,
                devid,
                vdi: s.vdi,
                state: s.vbd.state(),
                stats: s.vbd.stats(),
            })
            .collect()
    }

    /// Our event channel ports of every VBD (to sleep on).
    pub fn ports(&self) -> impl Iterator<Item = u32> + '_ {
        self.vbds.values().flat_map(|s| s.ports.values().copied())
    }

    /// True when a queue waits to be polled: the loop must not sleep.
    pub fn busy(&self) -> bool {
        !self.ready.is_empty()
    }

    /// One of our ports fired: its queue is polled at the next turn.
    pub fn on_port(&mut self, port: u32) {
        for (&(d, n), slot) in &self.vbds {
            for (&q, &p) in &slot.ports {
                if p == port {
                    self.ready.insert((d, n, q));
                }
            }
        }
    }

    /// A xenstore watch fired.
    pub fn on_watch<D: Disks>(&mut self, pf: &mut P, disks: &D, path: &str, token: &str) {
        if token == BACKENDS {
            let Some(rest) = path.strip_prefix(self.base.as_str()) else {
                return;
            };
            let mut parts = rest.trim_start_matches('/').split('/');
            let d = parts.next().and_then(|d| d.parse::<u16>().ok());
            let n = parts.next().and_then(|n| n.parse::<u32>().ok());
            let key = parts.next();
            match (d, n, key) {
                // Our own writes (state, feature-*, ...) fire too: only
                // the directory itself and `online` matter to a live VBD.
                (Some(d), Some(n), key) => match key {
                    // The directory itself: dom0 (re)made it, so a
                    // refusal of an earlier one no longer holds. Our own
                    // writes only ever touch its keys.
                    None => {
                        self.refused.remove(&(d, n));
                        self.sync(pf, disks, d, n)
                    }
                    Some("online") => self.sync(pf, disks, d, n),
                    _ if !self.vbds.contains_key(&(d, n)) => self.sync(pf, disks, d, n),
                    _ => {}
                },
                _ => self.rescan(pf, disks),
            }
            return;
        }
        let Some(key) = self
            .vbds
            .iter()
            .find(|(_, s)| s.token == token)
            .map(|(k, _)| *k)
        else {
            return;
        };
        let Some(slot) = self.vbds.get_mut(&key) else {
            return;
        };
        let state = pf.read(&format!("{}/state", slot.frontend));
        slot.vbd.on_frontend_state(state.as_deref());
        self.drain(pf, key, true);
    }

    /// Every VBD directory under `base` against what we hold.
    fn rescan<D: Disks>(&mut self, pf: &mut P, disks: &D) {
        let mut seen = Vec::new();
        let base = self.base.clone();
        for d in pf.directory(&base) {
            let Ok(domid) = d.parse::<u16>() else {
                continue;
            };
            for n in pf.directory(&format!("{base}/{d}")) {
                if let Ok(devid) = n.parse::<u32>() {
                    seen.push((domid, devid));
                }
            }
        }
        let gone: Vec<Key> = self
            .vbds
            .keys()
            .chain(self.refused.iter())
            .filter(|k| !seen.contains(k))
            .copied()
            .collect();
        for (d, n) in gone.into_iter().chain(seen) {
            self.sync(pf, disks, d, n);
        }
    }

    /// Brings VBD `(d, n)` in line with its backend directory.
    fn sync<D: Disks>(&mut self, pf: &mut P, disks: &D, d: u16, n: u32) {
        let backend = format!("{}/{d}/{n}", self.base);
        let present = pf.read(&format!("{backend}/frontend-id")).is_some();
        if !present {
            self.refused.remove(&(d, n));
            self.remove(pf, (d, n));
            return;
        }
        if self.refused.contains(&(d, n)) {
            return;
        }
        if let Some(slot) = self.vbds.get_mut(&(d, n)) {
            let online = pf.read(&format!("{backend}/online"));
            if online.as_deref() == Some(b"0") && !slot.unplugging {
                log::debug!("vbd{d}.{n}: close asked");
                slot.unplugging = true;
                slot.vbd.unplug();
                self.drain(pf, (d, n), true);
            }
            return;
        }
        match self.create(pf, disks, d, n, &backend) {
            Ok(()) => self.counters.created += 1,
            Err(why) => {
                self.counters.refused += 1;
                self.refused.insert((d, n));
                log::warn!("vbd{d}.{n}: refused: {why}");
                pf.write(&format!("{backend}/hotplug-error"), why.as_bytes());
                let closed = XenbusState::Closed.code().to_string();
                pf.write(&format!("{backend}/state"), closed.as_bytes());
            }
        }
    }

    fn create<D: Disks>(
        &mut self,
        pf: &mut P,
        disks: &D,
        d: u16,
        n: u32,
        backend: &str,
    ) -> Result<(), String> {
        if self.vbds.len() >= MAX_VBDS {
            return Err(format!("stordom serves at most {MAX_VBDS} VBDs"));
        }
        let frontend = format!("/local/domain/{d}/device/vbd/{n}");
        let text = |pf: &mut P, key: &str| read_text(pf, backend, key);
        if text(pf, "frontend-id").as_deref() != Some(d.to_string().as_str()) {
            return Err("frontend-id does not name the directory's domain".into());
        }
        if text(pf, "frontend").as_deref() != Some(frontend.as_str()) {
            return Err(format!("frontend is not {frontend}"));
        }
        if text(pf, "type").as_deref() != Some("vdi") {
            return Err("type is not vdi".into());
        }
        let writable = match text(pf, "mode").as_deref() {
            Some("w") => true,
            Some("r") => false,
            _ => return Err("mode is neither r nor w".into()),
        };
        let device_type = match text(pf, "device-type").as_deref() {
            None | Some("disk") => DeviceType::Disk,
            Some("cdrom") => DeviceType::Cdrom,
            Some("floppy") => DeviceType::Removable,
            Some(_) => return Err("device-type unknown".into()),
        };
        let params = text(pf, "params").unwrap_or_default();
        if params.is_empty() {
            return Err("no medium (params is empty)".into());
        }
        let vdi = uuid_bytes(&params).ok_or("params is not a VDI uuid")?;
        let info = disks
            .info(vdi)
            .ok_or_else(|| format!("VDI {params} does not exist"))?;
        let config = Config {
            frontend_domid: d,
            features: Features {
                max_ring_page_order: self.max_ring_page_order,
                ..Features::default()
            },
            disk: DiskInfo {
                sectors: info.sectors,
                readonly: !writable || info.read_only || device_type != DeviceType::Disk,
                device_type,
            },
        };
        let token = format!("vbd-front/{d}/{n}");
        self.vbds.insert(
            (d, n),
            Slot {
                vbd: Vbd::new(config),
                vdi,
                backend: backend.into(),
                frontend: frontend.clone(),
                token: token.clone(),
                ports: BTreeMap::new(),
                unplugging: false,
            },
        );
        log::debug!(
            "vbd{d}.{n}: VDI {params}, {} sectors{}",
            info.sectors,
            if config.disk.readonly {
                ", read-only"
            } else {
                ""
            }
        );
        self.drain(pf, (d, n), true);
        // Fires once now, with the frontend's current state.
        pf.watch(&format!("{frontend}/state"), &token);
        Ok(())
    }

    /// Lets VBD `key` go: its rings, channels and watch.
    fn remove(&mut self, pf: &mut P, key: Key) {
        let Some(slot) = self.vbds.get_mut(&key) else {
            return;
        };
        pf.unwatch(&format!("{}/state", slot.frontend), &slot.token.clone());
        slot.vbd.unplug();
        // The directory is gone: release without writing into it (a write
        // would make the nodes again).
        self.drain(pf, key, false);
        if let Some(slot) = self.vbds.remove(&key) {
            for port in slot.ports.into_values() {
                pf.unbind(port);
            }
            self.ready.retain(|&(d, n, _)| (d, n) != key);
            self.counters.removed += 1;
            log::debug!("vbd{}.{}: removed", key.0, key.1);
        }
    }

    /// Does what VBD `key`'s engine asked, until it asks nothing more.
    fn drain(&mut self, pf: &mut P, key: Key, write: bool) {
        self.drain_since(pf, key, write, None);
    }

    /// [`Self::drain`], with the state the VBD had before the caller fed
    /// its engine (`None`: the state now), so a change the feeding made
    /// (a ring fault found while polling) is seen and logged.
    fn drain_since(&mut self, pf: &mut P, key: Key, write: bool, before: Option<State>) {
        let Some(slot) = self.vbds.get_mut(&key) else {
            return;
        };
        let before = before.unwrap_or_else(|| slot.vbd.state());
        while let Some(action) = slot.vbd.poll_action() {
            match action {
                Action::WriteBackend { key, value } => {
                    if write {
                        pf.write(&format!("{}/{key}", slot.backend), value.as_bytes());
                    }
                }
                Action::SwitchState(s) => {
                    if write {
                        let v = s.code().to_string();
                        pf.write(&format!("{}/state", slot.backend), v.as_bytes());
                    }
                }
                Action::ReadFrontendKeys(keys) => {
                    let values: Vec<(&str, Vec<u8>)> = keys
                        .iter()
                        .filter_map(|k| {
                            pf.read(&format!("{}/{k}", slot.frontend))
                                .map(|v| (k.as_str(), v))
                        })
                        .collect();
                    let pairs: Vec<(&str, &[u8])> =
                        values.iter().map(|(k, v)| (*k, v.as_slice())).collect();
                    slot.vbd.on_frontend_keys(&pairs);
                }
                Action::MapRing {
                    queue,
                    domid,
                    grefs,
                } => match pf.map_ring(domid, &grefs) {
                    Some(page) => slot.vbd.on_ring_mapped(queue, page),
                    None => slot.vbd.on_map_failed(),
                },
                Action::BindEventChannel { queue, domid, port } => match pf.bind(domid, port) {
                    Some(ours) => {
                        if let Some(old) = slot.ports.insert(queue, ours) {
                            pf.unbind(old);
                        }
                    }
                    None => {
                        log::warn!(
                            "vbd{}.{}: binding queue {queue}'s channel failed",
                            key.0,
                            key.1
                        );
                        slot.vbd.on_map_failed();
                        // Already connected (the channel comes after its
                        // ring): close rather than serve a deaf queue.
                        if slot.vbd.state() == State::Connected {
                            slot.vbd.unplug();
                        }
                    }
                },
                Action::UnmapRing { page, .. } => drop(page),
                Action::UnbindEventChannels => {
                    for port in core::mem::take(&mut slot.ports).into_values() {
                        pf.unbind(port);
                    }
                }
            }
        }
        let after = slot.vbd.state();
        if after != before {
            let (d, n) = key;
            match after {
                State::Connected => {
                    let at = slot.vbd.ring_position(0).unwrap_or_default();
                    log::debug!(
                        "vbd{d}.{n}: connected, {} queue(s), ring resumed at {at}",
                        slot.vbd.num_queues()
                    );
                    // Requests may wait already (a frontend taken over
                    // after a restart, or one that did not wait for us).
                    for q in 0..slot.vbd.num_queues() {
                        self.ready.insert((d, n, q as u16));
                    }
                }
                State::Disconnected(fault) => log::warn!("vbd{d}.{n}: disconnected: {fault:?}"),
                other => log::debug!("vbd{d}.{n}: {other:?}"),
            }
        }
        if after != State::Connected {
            self.ready.retain(|&(d, n, _)| (d, n) != key);
        }
    }

    /// One turn of the datapath: polls every ready queue once (at most
    /// `REQUESTS_PER_POLL` requests each), runs their work against
    /// `disks`, answers and kicks. Returns true when a queue was cut short
    /// and waits for the next turn.
    pub fn turn<D: Disks>(&mut self, pf: &mut P, disks: &mut D) -> bool {
        let ready = core::mem::take(&mut self.ready);
        for (d, n, q) in ready {
            let key = (d, n);
            let Some(slot) = self.vbds.get_mut(&key) else {
                continue;
            };
            let before = slot.vbd.state();
            let poll = slot.vbd.poll(q);
            let mut notify = poll.notify;
            let had_work = !poll.work.is_empty();
            for work in poll.work {
                notify |= run_work(pf, disks, slot, work, &mut self.counters);
            }
            if notify {
                if let Some(&port) = slot.ports.get(&q) {
                    pf.notify(port);
                }
            }
            // A queue stalled on its budget or a barrier goes on once the
            // work above completed: next turn.
            if poll.again || (poll.blocked && had_work) {
                self.ready.insert((d, n, q));
            }
            // A ring the frontend broke disconnects it here.
            self.drain_since(pf, key, true, Some(before));
        }
        self.busy()
    }
}

/// Runs one piece of work to its answer; true when the queue must be
/// kicked.
fn run_work<P: Platform, D: Disks>(
    pf: &mut P,
    disks: &mut D,
    slot: &mut Slot<P::Page>,
    work: Work,
    counters: &mut Counters,
) -> bool {
    let (io, mut notify) = match work {
        Work::Io(io) => (io, false),
        Work::Fetch(f) => {
            let bytes = pf.fetch(&f);
            let fetched = slot.vbd.indirect_fetched(f.token, bytes.as_deref());
            match fetched.io {
                Some(io) => (io, fetched.notify),
                None => return fetched.notify,
            }
        }
    };
    let status = run_io(pf, disks, slot.vdi, &io, counters);
    notify |= slot.vbd.complete(io.token, status);
    notify
}

/// A zeroed buffer of `len` bytes, or `None` when memory is short.
fn buffer(len: usize) -> Option<Vec<u8>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).ok()?;
    v.resize(len, 0);
    Some(v)
}

/// One request's disk work: grant copies around the SR operation.
fn run_io<P: Platform, D: Disks>(
    pf: &mut P,
    disks: &mut D,
    vdi: Uuid,
    io: &DiskIo,
    counters: &mut Counters,
) -> IoStatus {
    match &io.op {
        IoOp::Read { sector, segments } => {
            let Some(mut buf) = buffer(io.buffer_len()) else {
                counters.no_memory += 1;
                return IoStatus::Error;
            };
            match disks.read(vdi, *sector, &mut buf) {
                IoStatus::Ok if pf.copy_out(io.domid, segments, &buf) => IoStatus::Ok,
                IoStatus::Ok => IoStatus::Error,
                other => other,
            }
        }
        IoOp::Write {
            sector,
            segments,
            flush,
        } => {
            let Some(mut buf) = buffer(io.buffer_len()) else {
                counters.no_memory += 1;
                return IoStatus::Error;
            };
            if !pf.copy_in(io.domid, segments, &mut buf) {
                return IoStatus::Error;
            }
            match disks.write(vdi, *sector, &buf) {
                IoStatus::Ok if *flush => disks.flush(),
                other => other,
            }
        }
        IoOp::Flush => disks.flush(),
        IoOp::Discard { sector, count, .. } => disks.discard(vdi, *sector, *count),
    }
}

/// Backend key `key` of `backend` as text (a trailing NUL dropped);
/// `None` when absent or not UTF-8.
fn read_text<P: Platform>(pf: &mut P, backend: &str, key: &str) -> Option<String> {
    pf.read(&format!("{backend}/{key}"))
        .and_then(|v| String::from_utf8(v).ok())
        .map(|s| s.trim_end_matches('\0').into())
}

/// A VDI's size in sectors (a partial last sector is not served).
pub fn sectors_of(virtual_size: u64) -> u64 {
    virtual_size / SECTOR
}

//! Where the toolstack's database log lives: in stordom's SR over the
//! storage channel (`xcp_storwire`), or nowhere when the machine has no
//! disk (`wal::Volatile`, as before stordom); and the SR backend XenAPI's
//! storage calls reach (`xenapi::storage::SrBackend`) over the same
//! channel. The engine holds both (its storage and, through the
//! hypervisor, the SR), so they share one client ([`Stordom`]).
//!
//! dom0 waits for each answer (the engine replies to a XenAPI call only
//! after its log record is synced): the wait polls the channel's event
//! channel with a deadline, so a dead stordom costs a call
//! [`CALL_TIMEOUT_NS`], never dom0.

use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;

use log::error;
use xcp_channel::{Channel, RecvError, SendError};
use xcp_runtime::paging::Frame;
use xcp_storwire::client::{CallError, Client, Link, LinkError};
use xcp_storwire::uuid::{uuid_bytes, uuid_text};
use xcp_storwire::{Reply, Request, StorError, Uuid};
use xenapi::storage::{ImageFormat, SrBackend, SrError, SrStats, VdiInfo};
use xenapi::wal::{Storage, StorageError, Volatile};

/// Longest dom0 waits for stordom to answer one request.
pub const CALL_TIMEOUT_NS: u64 = 30_000_000_000;

/// Most database log bytes dom0 reads back at boot: the log's bound in
/// dom0 (twice the database's, xenapi `budget.rs`, plus compaction's
/// slack).
pub const MAX_LOG_BYTES: u64 = 3 * xenapi::budget::DB_APPROX_BYTES as u64;

/// How often a wait looks whether stordom still runs.
const ALIVE_CHECK_NS: u64 = 250_000_000;

/// The channel to stordom, as the storage client uses it.
pub struct StordomLink {
    channel: Channel<Frame>,
    port: u32,
    /// stordom's domain: a wait ends early when it stops.
    domid: u16,
    /// stordom stopped: every call fails at once until the board rebuilds
    /// it and dom0 gives the client a new link.
    gone: bool,
}

impl StordomLink {
    /// The channel to stordom `domid` over `channel`, kicked through
    /// dom0's `port`.
    pub fn new(channel: Channel<Frame>, port: u32, domid: u16) -> Self {
        StordomLink {
            channel,
            port,
            domid,
            gone: false,
        }
    }

    fn check_alive(&mut self) {
        use xcp_dom0_board::Platform as _;
        use xcp_domains::{observe, Observed};
        let alive = match crate::xen::Xen::new().domain_info(self.domid) {
            Ok(info) if info.domain == self.domid => observe(info.flags) == Observed::Alive,
            _ => false,
        };
        if !alive {
            error!("stordom (domid {}) stopped during a call", self.domid);
            self.gone = true;
        }
    }

    fn gone_error(&self) -> LinkError {
        LinkError(alloc::format!("stordom (domid {}) is gone", self.domid))
    }

    fn kick(&self, notify: xcp_channel::Notify) {
        if notify.kick() {
            xcp_runtime::evtchn::send(self.port);
        }
    }
}

fn link_error(what: &str, e: impl core::fmt::Debug) -> LinkError {
    LinkError(alloc::format!("{what}: {e:?}"))
}

impl Link for StordomLink {
    fn send(&mut self, request: &Request) -> Result<(), LinkError> {
        if self.gone {
            return Err(self.gone_error());
        }
        let deadline = xcp_runtime::time::now_ns().saturating_add(CALL_TIMEOUT_NS);
        let mut accepted = false;
        loop {
            // A message still streaming (ours, or one an earlier call that
            // timed out left) goes out first.
            let result = if self.channel.send_pending() {
                self.channel.flush()
            } else if !accepted {
                self.channel.send(request).inspect(|_| accepted = true)
            } else {
                return Ok(());
            };
            match result {
                Ok(notify) | Err(SendError::WouldBlock(notify)) => self.kick(notify),
                Err(e) => return Err(link_error("send", e)),
            }
            if accepted && !self.channel.send_pending() {
                return Ok(());
            }
            if xcp_runtime::time::now_ns() >= deadline {
                return Err(LinkError(alloc::string::String::from(
                    "send: stordom took nothing before the deadline",
                )));
            }
            self.wait(deadline);
            if self.gone {
                return Err(self.gone_error());
            }
        }
    }

    fn recv(&mut self) -> Result<Option<Reply>, LinkError> {
        if self.gone {
            return Err(self.gone_error());
        }
        let reply = self
            .channel
            .recv::<Reply>()
            .map_err(|e: RecvError| link_error("receive", e))?;
        let notify = self.channel.take_notify();
        self.kick(notify);
        Ok(reply)
    }

    fn wait(&mut self, deadline_ns: u64) {
        // In slices, looking between them whether stordom still runs: a
        // dead stordom ends the call now, not at its deadline.
        let slice = xcp_runtime::time::now_ns().saturating_add(ALIVE_CHECK_NS);
        if !xcp_runtime::event_loop::poll_one(self.port, slice.min(deadline_ns)) {
            self.check_alive();
        }
    }

    fn now_ns(&self) -> u64 {
        xcp_runtime::time::now_ns()
    }
}

/// dom0's one client of stordom, shared by the database log and the SR
/// backend (dom0 runs one call at a time).
pub type Stordom = Rc<RefCell<Client<StordomLink>>>;

/// The database log's storage.
pub enum Db {
    /// No disk: nothing is kept.
    Volatile(Volatile),
    /// In stordom's SR.
    Stordom(Stordom),
}

fn failed(what: &'static str, e: CallError) -> StorageError {
    error!("database log: {what}: {e:?}");
    StorageError(what)
}

impl Storage for Db {
    fn append(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        match self {
            Db::Volatile(v) => v.append(bytes),
            Db::Stordom(c) => c
                .borrow_mut()
                .log_append(bytes)
                .map_err(|e| failed("append to stordom", e)),
        }
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        match self {
            Db::Volatile(v) => v.sync(),
            Db::Stordom(c) => c
                .borrow_mut()
                .log_sync()
                .map_err(|e| failed("sync on stordom", e)),
        }
    }

    fn read_all(&mut self) -> Result<alloc::vec::Vec<u8>, StorageError> {
        match self {
            Db::Volatile(v) => v.read_all(),
            Db::Stordom(c) => c
                .borrow_mut()
                .log_read_all(MAX_LOG_BYTES)
                .map_err(|e| failed("read from stordom", e)),
        }
    }

    fn truncate(&mut self, len: u64) -> Result<(), StorageError> {
        match self {
            Db::Volatile(v) => v.truncate(len),
            Db::Stordom(c) => c
                .borrow_mut()
                .log_truncate(len)
                .map_err(|e| failed("truncate on stordom", e)),
        }
    }

    fn replace(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        match self {
            Db::Volatile(v) => v.replace(bytes),
            Db::Stordom(c) => c
                .borrow_mut()
                .log_replace(bytes)
                .map_err(|e| failed("replace on stordom", e)),
        }
    }
}

/// The SR XenAPI's storage calls reach: stordom's.
pub struct StordomSr(pub Stordom);

fn sr_error(uuid: &str, e: CallError) -> SrError {
    match e {
        CallError::Refused(StorError::NotFound) => SrError::NoSuchVdi(String::from(uuid)),
        CallError::Refused(StorError::Exists) => SrError::Exists(String::from(uuid)),
        CallError::Refused(StorError::NoSpace) => SrError::Full(0, 0),
        other => SrError::Backend(alloc::format!("stordom: {other:?}")),
    }
}

fn vdi_uuid(uuid: &str) -> Result<Uuid, SrError> {
    uuid_bytes(uuid).ok_or_else(|| SrError::Backend(alloc::format!("bad VDI uuid {uuid:?}")))
}

impl StordomSr {
    /// What stordom says of VDI `uuid`.
    fn info(&mut self, uuid: &str) -> Result<VdiInfo, SrError> {
        let want = vdi_uuid(uuid)?;
        self.vdi_list()?
            .into_iter()
            .find(|v| uuid_bytes(&v.uuid) == Some(want))
            .ok_or_else(|| SrError::NoSuchVdi(String::from(uuid)))
    }
}

/// Most VDIs dom0 takes from one listing (xenapi's scan bound).
const MAX_LISTED: usize = xenapi::budget::MAX_SCAN_VDIS;

impl SrBackend for StordomSr {
    fn sr_stats(&mut self) -> Result<SrStats, SrError> {
        let stats = self
            .0
            .borrow_mut()
            .sr_stats()
            .map_err(|e| sr_error("", e))?;
        Ok(SrStats {
            physical_size: stats.physical_size,
            physical_utilisation: stats.physical_utilisation,
            virtual_allocation: stats.virtual_allocation,
        })
    }

    fn vdi_create(&mut self, uuid: &str, virtual_size: u64) -> Result<VdiInfo, SrError> {
        self.0
            .borrow_mut()
            .vdi_create(vdi_uuid(uuid)?, virtual_size)
            .map_err(|e| sr_error(uuid, e))?;
        self.info(uuid)
    }

    fn vdi_destroy(&mut self, uuid: &str) -> Result<(), SrError> {
        self.0
            .borrow_mut()
            .vdi_destroy(vdi_uuid(uuid)?)
            .map_err(|e| sr_error(uuid, e))
    }

    fn vdi_resize(&mut self, uuid: &str, virtual_size: u64) -> Result<VdiInfo, SrError> {
        self.0
            .borrow_mut()
            .vdi_resize(vdi_uuid(uuid)?, virtual_size)
            .map_err(|e| sr_error(uuid, e))?;
        self.info(uuid)
    }

    fn vdi_snapshot(&mut self, src: &str, new: &str) -> Result<VdiInfo, SrError> {
        self.0
            .borrow_mut()
            .vdi_snapshot(vdi_uuid(src)?, vdi_uuid(new)?)
            .map_err(|e| sr_error(src, e))?;
        self.info(new)
    }

    fn vdi_clone(&mut self, src: &str, new: &str) -> Result<VdiInfo, SrError> {
        self.0
            .borrow_mut()
            .vdi_clone(vdi_uuid(src)?, vdi_uuid(new)?)
            .map_err(|e| sr_error(src, e))?;
        self.info(new)
    }

    fn vdi_list(&mut self) -> Result<Vec<VdiInfo>, SrError> {
        let vdis = self
            .0
            .borrow_mut()
            .vdi_list(MAX_LISTED)
            .map_err(|e| sr_error("", e))?;
        Ok(vdis
            .into_iter()
            .map(|v| VdiInfo {
                uuid: uuid_text(&v.uuid),
                virtual_size: v.virtual_size,
                physical_utilisation: v.physical_utilisation,
                snapshot_of: v.parent.filter(|_| v.read_only).map(|p| uuid_text(&p)),
            })
            .collect())
    }

    fn import_begin(&mut self, uuid: &str, format: ImageFormat, len: u64) -> Result<u32, SrError> {
        self.0
            .borrow_mut()
            .import_begin(vdi_uuid(uuid)?, wire_format(format), len)
            .map_err(|e| sr_error(uuid, e))
    }

    fn import_data(&mut self, id: u32, bytes: &[u8]) -> Result<(), SrError> {
        self.0
            .borrow_mut()
            .import_data(id, bytes)
            .map_err(|e| sr_error("", e))
    }

    fn import_end(&mut self, id: u32) -> Result<(), SrError> {
        self.0
            .borrow_mut()
            .import_end(id)
            .map_err(|e| sr_error("", e))
    }

    fn export_begin(&mut self, uuid: &str, format: ImageFormat) -> Result<(u32, u64), SrError> {
        self.0
            .borrow_mut()
            .export_begin(vdi_uuid(uuid)?, wire_format(format))
            .map_err(|e| sr_error(uuid, e))
    }

    fn export_data(&mut self, id: u32, max: usize) -> Result<Vec<u8>, SrError> {
        let max = u32::try_from(max).unwrap_or(u32::MAX);
        self.0
            .borrow_mut()
            .export_data(id, max)
            .map_err(|e| sr_error("", e))
    }

    fn transfer_abort(&mut self, id: u32) {
        // A stordom that cannot hear it forgot the transfer anyway.
        let _ = self.0.borrow_mut().transfer_abort(id);
    }
}

/// The storage channel's name for an image format.
fn wire_format(format: ImageFormat) -> xcp_storwire::Format {
    match format {
        ImageFormat::Raw => xcp_storwire::Format::Raw,
        ImageFormat::Vhd => xcp_storwire::Format::Vhd,
    }
}

//! The XenAPI host engine: HTTP in, HTTP out, with the database, sessions,
//! tasks, events and the WAL behind it. Sans-IO: the board passes the time
//! and the bytes a connection has buffered; the engine returns the reply,
//! or asks the board to park the request (a blocking `event.from`) and call
//! again when something changed or the deadline passed.
//!
//! Durability: every call's changes go to the WAL as one frame, appended and
//! synced before the reply bytes are returned; events become visible to
//! `event.from` only after that sync.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde_json::{Map, Value as Json};

use crate::auth::PasswordHash;
use crate::body::{Body, Response};
use crate::db::{ChangeKind, Db};
use crate::error::{ApiError, INTERNAL_ERROR};
use crate::events::{EventLog, Subscription};
use crate::http::{self, Parsed};
use crate::hypervisor::Hypervisor;
use crate::jsonrpc;
use crate::reply::{FromDb, Payload, Streamed};
use crate::rng::{self, Entropy};
use crate::schema::{class, class_id, ClassId, Ty};
use crate::value::{format_datetime, Instant, Value};
use crate::wal::{self, Storage, StorageError};
use crate::xmlrpc;

/// Limits and credentials.
#[derive(Clone, Debug)]
pub struct Config {
    /// The one local user (xapi's local superuser), `root`.
    pub user: String,
    /// Its password hash.
    pub password: PasswordHash,
    /// Most live sessions in all (the table's memory bound,
    /// [`crate::session::MAX_SESSIONS`]). A login beyond it evicts only the
    /// caller's own originator's least recently used session, or is refused.
    pub max_sessions: usize,
    /// Most live sessions per non-empty originator; the originator's least
    /// recently used is dropped beyond it (xapi: 500).
    pub max_sessions_per_originator: usize,
    /// Most live sessions with an empty originator, counted as one group
    /// (xapi: 400).
    pub max_anonymous_sessions: usize,
    /// A session idle this long expires.
    pub session_idle_ms: u64,
    /// Most objects of one class a client can create.
    pub max_objects: usize,
    /// Most task objects kept; the oldest finished ones are dropped beyond.
    pub max_tasks: usize,
    /// Events retained for `event.from`.
    pub event_capacity: usize,
    /// Snapshot bytes retained for `event.from`.
    pub event_bytes: usize,
    /// Approximate bytes of records clients may make the database hold.
    pub max_db_bytes: usize,
    /// The WAL is compacted into a snapshot once it exceeds this many bytes
    /// plus twice the database's size.
    pub compact_min_bytes: u64,
    /// Longest `event.from` / `event.next` wait, ms.
    pub max_event_wait_ms: u64,
}

impl Config {
    /// Defaults for `user` with `password`.
    pub fn new(user: &str, password: PasswordHash) -> Config {
        Config {
            user: user.to_string(),
            password,
            max_sessions: crate::session::MAX_SESSIONS,
            max_sessions_per_originator: crate::session::MAX_SESSIONS_PER_ORIGINATOR,
            max_anonymous_sessions: crate::session::MAX_ANONYMOUS_SESSIONS,
            session_idle_ms: 24 * 3600 * 1000,
            max_objects: 100_000,
            max_tasks: 1000,
            event_capacity: crate::events::DEFAULT_CAPACITY,
            event_bytes: crate::events::DEFAULT_MAX_BYTES,
            max_db_bytes: crate::budget::DB_APPROX_BYTES,
            compact_min_bytes: 16 << 20,
            max_event_wait_ms: 120_000,
        }
    }
}

/// What the board should do with a connection's buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handled {
    /// Not a whole request yet: read more. If `send_continue`, the client
    /// waits for `100 Continue` ([`http::CONTINUE`]); send it once per request.
    NeedMore {
        /// The head asked for `Expect: 100-continue`.
        send_continue: bool,
    },
    /// Send `bytes`; drop `consumed` bytes of the buffer; close if asked.
    Reply {
        /// Buffer bytes used by the request.
        consumed: usize,
        /// The HTTP response, in chunks of at most [`crate::body::CHUNK`].
        bytes: Response,
        /// Close the connection after sending.
        close: bool,
    },
    /// A text console attach (`CONNECT /console`): send
    /// [`crate::console::ATTACHED`], drop `consumed` bytes, and from now on
    /// relay the connection's bytes raw to and from domain `domid`'s
    /// console ([`Hypervisor::console_read`], [`Hypervisor::console_write`]).
    Attach {
        /// Buffer bytes used by the request.
        consumed: usize,
        /// The VM's domain.
        domid: u32,
    },
    /// A disk image upload (`PUT /import_raw_vdi`, `transfer.rs`): drop
    /// `consumed` bytes; the connection's next `len` bytes are the image,
    /// for [`Engine::import_bytes`]; then [`Engine::import_end`] gives the
    /// reply. If `send_continue`, send [`http::CONTINUE`] first.
    Import {
        /// Buffer bytes used by the head.
        consumed: usize,
        /// The transfer.
        transfer: u32,
        /// The image's length.
        len: u64,
        /// The head asked for `Expect: 100-continue`.
        send_continue: bool,
    },
    /// A disk image download (`GET /export_raw_vdi`): drop `consumed`
    /// bytes, send `head`, then what [`Engine::export_bytes`] gives as the
    /// link has room, until it says the end.
    Export {
        /// Buffer bytes used by the head.
        consumed: usize,
        /// The transfer.
        transfer: u32,
        /// The response head.
        head: Vec<u8>,
    },
    /// Call again with the same buffer when the engine changed or at `until`.
    Park {
        /// The deadline.
        until: Instant,
    },
}

/// A call's outcome inside the engine.
pub(crate) enum Outcome {
    Done(Result<Value, ApiError>),
    /// A read written straight from the database when the reply is.
    Stream(Streamed),
    Park(Instant),
}

/// Per-session state not in the session record.
#[derive(Clone, Debug)]
pub(crate) struct SessionState {
    pub(crate) last_active: Instant,
    /// When it was last used, in [`Engine::session_uses`] ticks: orders
    /// sessions for eviction even within one millisecond.
    pub(crate) last_use: u64,
    /// The login's originator (the group its cap counts against).
    pub(crate) originator: String,
    pub(crate) registered: Vec<Subscription>,
    pub(crate) cursor: u64,
}

/// A queued `Async.*` call.
#[derive(Clone, Debug)]
pub(crate) struct Job {
    pub(crate) task: String,
    pub(crate) class: ClassId,
    pub(crate) message: &'static str,
    pub(crate) args: Vec<Value>,
    /// When the `Async.*` call came: a job whose call parks (a clean
    /// shutdown waiting for the guest) is run again with it.
    pub(crate) started: Instant,
}

/// The engine.
#[derive(Clone)]
pub struct Engine<H: Hypervisor, S: Storage, E: Entropy> {
    pub(crate) db: Db,
    pub(crate) events: EventLog,
    pub(crate) sessions: BTreeMap<String, SessionState>,
    pub(crate) hv: H,
    storage: S,
    pub(crate) rng: E,
    pub(crate) config: Config,
    pub(crate) jobs: VecDeque<Job>,
    /// Jobs whose call parked: run again by [`Engine::run_jobs`] until it
    /// answers (their tasks stay pending meanwhile).
    pub(crate) parked_jobs: VecDeque<Job>,
    /// The VM start whose domain build is in progress, a step per pass
    /// (`power.rs`): one at a time.
    pub(crate) building: Option<crate::power::Building>,
    /// Who the call being run is, across the passes of a parked start:
    /// its task for an `Async.*` job, else `@` and when it came; empty
    /// for an in-process call (`call_value`).
    pub(crate) current_call: String,
    /// The task of the job being run, if a job is.
    pub(crate) job_task: Option<String>,
    pub(crate) now: Instant,
    pub(crate) poisoned: bool,
    wal_bytes: u64,
    /// The sequence number of the next WAL frame.
    wal_seq: u64,
    /// What opening the WAL found (the board shows it).
    wal_report: WalReport,
    /// When each VM was last restarted by its own stop policy (not
    /// persisted: a restarted toolstack halts every guest anyway).
    pub(crate) auto_restarts: BTreeMap<String, VecDeque<Instant>>,
    /// Domains left shut down by `preserve`: no longer watched.
    pub(crate) preserved: alloc::collections::BTreeSet<u32>,
    /// Clean shutdowns and reboots asked of guests, by VM, whose calls
    /// are parked until the guest stops (`power::CleanRequest`).
    pub(crate) clean_requests: BTreeMap<String, crate::power::CleanRequest>,
    /// Graceful `VIF.unplug`s whose calls wait for the backend to close,
    /// by VIF (`vif::VifUnplug`).
    pub(crate) vif_unplugs: BTreeMap<String, crate::vif::VifUnplug>,
    /// Graceful `VBD.unplug`s waiting for the backend, by VBD.
    pub(crate) vbd_unplugs: BTreeMap<String, crate::vbd::VbdUnplug>,
    pub(crate) login_budget: crate::session::LoginBudget,
    /// Each attached VIF's last counters sample, by VIF (`metrics.rs`; not
    /// persisted). One per VIF at most: dropped when it detaches or goes.
    pub(crate) vif_samples: BTreeMap<String, crate::metrics::VifSample>,
    /// What netdom's reports did (`metrics.rs`).
    pub(crate) metrics_counters: crate::metrics::MetricsCounters,
    /// Counts session logins and uses (see [`SessionState::last_use`]).
    pub(crate) session_uses: u64,
    /// Disk image transfers under way (`transfer.rs`), by number.
    pub(crate) transfers: BTreeMap<u32, crate::transfer::Transfer>,
    /// The number of the last transfer.
    pub(crate) last_transfer: u32,
    /// When each running guest's agent keys were last read, by domid
    /// (`guest_metrics.rs`; one per running VM).
    pub(crate) guest_polled: BTreeMap<u32, Instant>,
    /// What the guest agents' polls did.
    pub(crate) guest_counters: crate::guest_metrics::GuestCounters,
    /// Each running guest's free memory as its agent last said, KiB, by
    /// domid (for `/rrd_updates`).
    pub(crate) guest_memory_free: BTreeMap<u32, u64>,
    /// The performance samples (`rrd.rs`).
    pub(crate) rrd: crate::rrd::Rrd,
}

/// What [`Engine::open`] found in the write-ahead log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WalReport {
    /// The format the log was in (a format-1 log is rewritten in format 2).
    pub format: Option<wal::Format>,
    /// Records (frames) replayed.
    pub frames: usize,
    /// Bytes of a torn tail cut (the last write, never acknowledged).
    pub torn_bytes: u64,
    /// Corruption in the middle. Non-empty means the engine is read-only.
    pub damage: Vec<wal::Damage>,
}

impl WalReport {
    /// True if the log is corrupt in the middle and the engine serves
    /// reads only.
    pub fn read_only(&self) -> bool {
        !self.damage.is_empty()
    }

    /// One line for the board's log: what was found and done.
    pub fn summary(&self) -> String {
        match self.damage.first() {
            None => alloc::format!(
                "wal: {} records replayed, {} torn tail bytes cut",
                self.frames,
                self.torn_bytes
            ),
            Some(d) => alloc::format!(
                "wal: CORRUPT at byte {} ({} bytes, {} records lost; {} damaged regions); \
                 {} intact records replayed; database READ-ONLY, log left untouched",
                d.offset,
                d.len,
                d.frames_lost,
                self.damage.len(),
                self.frames
            ),
        }
    }

    /// The refusal a mutating call gets while read-only.
    pub fn refusal(&self) -> Option<ApiError> {
        let d = self.damage.first()?;
        let m = alloc::format!(
            "database is read-only: write-ahead log corrupt at byte offset {} \
             ({} bytes unreadable); repair or remove the log",
            d.offset,
            d.len
        );
        Some(ApiError::new(INTERNAL_ERROR, &[&m]))
    }
}

/// True if `method` changes nothing that is persisted, so a read-only
/// engine (corrupt WAL) still serves it: reads, sessions, events.
pub fn read_only_ok(method: &str) -> bool {
    if method == "system.listMethods" {
        return true;
    }
    let Some((cname, mname)) = method.split_once('.') else {
        return false;
    };
    matches!(cname, "session" | "event") || mname.starts_with("get_")
}

/// Classes never written to the WAL (sessions do not survive a restart).
fn persisted(c: ClassId) -> bool {
    class(c).name != "session"
}

impl<H: Hypervisor, S: Storage, E: Entropy> Engine<H, S, E> {
    /// Opens the engine: replays the WAL, cuts a torn tail, compacts.
    ///
    /// A log corrupt in the middle ([`wal::read_log`]) is not cut: every
    /// intact record, before and after the damage, is applied (each record
    /// carries whole objects, so only objects last changed in the lost
    /// records are stale), the log is left as it is, and the engine is
    /// read-only ([`Engine::wal_report`]): reads, logins and events are
    /// served; every other call fails with INTERNAL_ERROR naming the byte
    /// offset; nothing is written to the log.
    pub fn open(config: Config, hv: H, mut storage: S, mut rng: E) -> Result<Self, StorageError> {
        let log = storage.read_all()?;
        let read = wal::read_log(&log);
        let mut db = Db::new();
        for p in &read.payloads {
            replay(&mut db, p);
        }
        let report = WalReport {
            format: Some(read.format),
            frames: read.payloads.len(),
            torn_bytes: (log.len() - read.good_len) as u64,
            damage: read.damage.clone(),
        };
        let mut wal_bytes = read.good_len as u64;
        let mut wal_seq = read.next_seq;
        if !report.read_only() {
            if read.good_len < log.len() {
                storage.truncate(read.good_len as u64)?;
            }
            // A new log gets its header; an old-format or long one is
            // rewritten as a format-2 snapshot (atomically).
            if read.format == wal::Format::Empty || read.good_len == 0 {
                storage.replace(&wal::log_header())?;
                wal_bytes = wal::LOG_HEADER_LEN as u64;
                wal_seq = 0;
            } else if read.format == wal::Format::V1 || read.payloads.len() > 64 {
                let (snap, seq) = snapshot(&db);
                storage.replace(&snap)?;
                wal_bytes = snap.len() as u64;
                wal_seq = seq;
            }
        }
        let mut epoch = [0u8; 4];
        rng.fill(&mut epoch);
        let epoch = epoch.iter().map(|b| alloc::format!("{b:02x}")).collect();
        Ok(Engine {
            db,
            events: EventLog::new(epoch, config.event_capacity, config.event_bytes),
            sessions: BTreeMap::new(),
            hv,
            storage,
            rng,
            config,
            jobs: VecDeque::new(),
            parked_jobs: VecDeque::new(),
            building: None,
            current_call: String::new(),
            job_task: None,
            now: Instant(0),
            poisoned: false,
            wal_bytes,
            wal_seq,
            wal_report: report,
            auto_restarts: BTreeMap::new(),
            preserved: alloc::collections::BTreeSet::new(),
            clean_requests: BTreeMap::new(),
            vif_unplugs: BTreeMap::new(),
            vbd_unplugs: BTreeMap::new(),
            login_budget: crate::session::LoginBudget::default(),
            vif_samples: BTreeMap::new(),
            metrics_counters: crate::metrics::MetricsCounters::default(),
            session_uses: 0,
            transfers: BTreeMap::new(),
            last_transfer: 0,
            guest_polled: BTreeMap::new(),
            guest_counters: crate::guest_metrics::GuestCounters::default(),
            guest_memory_free: BTreeMap::new(),
            rrd: crate::rrd::Rrd::default(),
        })
    }

    /// What opening the write-ahead log found: records replayed, a torn
    /// tail cut, or corruption in the middle (then the engine is
    /// read-only). Boards log [`WalReport::summary`] at start.
    pub fn wal_report(&self) -> &WalReport {
        &self.wal_report
    }

    /// True if the engine serves reads only (its WAL is corrupt in the
    /// middle).
    pub fn read_only(&self) -> bool {
        self.wal_report.read_only()
    }

    /// The database (read-only).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The storage (tests inspect and break it).
    pub fn storage_for_tests(&mut self) -> &mut S {
        &mut self.storage
    }

    /// The hypervisor.
    pub fn hypervisor(&mut self) -> &mut H {
        &mut self.hv
    }

    /// The id of the newest committed event; boards wake parked requests
    /// when it moves.
    pub fn generation(&self) -> u64 {
        self.events.current()
    }

    /// True if `Async.*` jobs are queued (the board then calls [`run_jobs`]).
    ///
    /// [`run_jobs`]: Engine::run_jobs
    pub fn has_jobs(&self) -> bool {
        !self.jobs.is_empty()
    }

    /// True while a VM start's domain build is in progress, a step per
    /// pass: the board passes again (its relays, then
    /// [`Self::run_next_job`]) until it ends.
    pub fn building(&self) -> bool {
        self.building.is_some()
    }

    /// True if `Async.*` calls wait (parked) for a change or a deadline:
    /// the board calls [`Engine::run_jobs`] again on changes and on its
    /// parked-call timer.
    pub fn has_parked_jobs(&self) -> bool {
        !self.parked_jobs.is_empty()
    }

    /// A fresh uuid.
    pub(crate) fn uuid(&mut self) -> String {
        rng::uuid(&mut self.rng)
    }

    /// A fresh ref.
    pub(crate) fn new_ref(&mut self) -> String {
        rng::opaque_ref(&mut self.rng)
    }

    /// Handles the first request in `buf`. `parked_since` is when this
    /// request was first parked (None on first try).
    ///
    /// Memory: the request body is dropped once decoded, and the reply is
    /// written straight into relay-sized chunks ([`Body`]) of at most
    /// [`crate::budget::REPLY_BYTES`]; a reply past that bound, or one that
    /// cannot be allocated, is answered `LIMIT_REACHED` instead.
    pub fn handle(&mut self, now: Instant, parked_since: Option<Instant>, buf: &[u8]) -> Handled {
        self.now = now;
        let refused = |status: u16| Handled::Reply {
            consumed: buf.len(),
            bytes: Response::from_bytes(http::response(
                status,
                "text/plain",
                http::reason(status).as_bytes(),
                false,
            )),
            close: true,
        };
        // The head is parsed once: it names a transfer (whose body is a
        // stream, never parsed whole) or a call.
        let head = match http::parse_head(buf) {
            Ok(Some(head)) => head,
            Ok(None) => {
                return Handled::NeedMore {
                    send_continue: false,
                }
            }
            Err(status) => return refused(status),
        };
        if let Some(handled) = self.transfer_head(&head) {
            return handled;
        }
        if let Some(handled) = self.rrd_head(&head) {
            return handled;
        }
        let mut req = match http::parse_body(buf, &head) {
            Parsed::NeedMore => {
                return Handled::NeedMore {
                    send_continue: head.expect_continue,
                }
            }
            Parsed::Bad(status) => return refused(status),
            Parsed::Request(r) => r,
        };
        let (consumed, keep_alive) = (req.consumed, req.keep_alive);
        let reply = |status: u16, ctype: &str, body: &[u8]| Handled::Reply {
            consumed,
            bytes: Response::from_bytes(http::response(status, ctype, body, keep_alive)),
            close: !keep_alive,
        };
        if req.method == "GET" && req.path == "/" {
            return reply(200, "text/plain", b"xcp-rs XenAPI host\n");
        }
        if req.method == "CONNECT" {
            return match self.attach_console(&req) {
                Ok(domid) => Handled::Attach { consumed, domid },
                Err(refusal) => {
                    let mut body = String::from(refusal.why);
                    body.push('\n');
                    Handled::Reply {
                        consumed,
                        bytes: Response::from_bytes(http::response(
                            refusal.status,
                            "text/plain",
                            body.as_bytes(),
                            false,
                        )),
                        close: true,
                    }
                }
            };
        }
        if req.method != "POST" {
            return reply(405, "text/plain", b"Method Not Allowed\n");
        }
        let started = parked_since.unwrap_or(now);
        let json =
            req.path == "/jsonrpc" || req.content_type.as_deref() == Some("application/json");
        // Only the decoded call is kept while the call runs.
        let body = core::mem::take(&mut req.body);
        if json {
            let call = match jsonrpc::decode_call(&body) {
                Ok(c) => c,
                Err(e) => return reply(400, "application/json", &jsonrpc::encode_decode_error(&e)),
            };
            drop(body);
            let (version, id) = (call.version, call.id);
            let outcome = self.call(started, &call.method, call.params);
            self.respond(
                outcome,
                "application/json",
                consumed,
                keep_alive,
                |out, r| jsonrpc::write_response(out, version, &id, r),
            )
        } else if req.path == "/" || req.path == "/RPC2" {
            let (method, params) = match xmlrpc::decode_call(&body) {
                Ok(c) => c,
                Err(e) => {
                    let r = Err(ApiError::new(
                        crate::error::XMLRPC_UNMARSHAL_FAILURE,
                        &[e.0],
                    ));
                    return reply(400, "text/xml", xmlrpc::encode_response(&r).as_bytes());
                }
            };
            drop(body);
            let outcome = self.call(started, &method, params);
            self.respond(outcome, "text/xml", consumed, keep_alive, |out, r| {
                xmlrpc::write_response(out, r)
            })
        } else {
            reply(404, "text/plain", b"Not Found\n")
        }
    }

    /// Writes the reply to a call's `outcome` with `write` (one codec's
    /// `write_response`) into chunks, refusing one past its bound.
    fn respond(
        &self,
        outcome: Outcome,
        content_type: &str,
        consumed: usize,
        keep_alive: bool,
        write: impl Fn(&mut Body, Result<&dyn Payload, &ApiError>),
    ) -> Handled {
        let mut body = Body::new(crate::budget::REPLY_BYTES);
        match &outcome {
            Outcome::Park(until) => return Handled::Park { until: *until },
            Outcome::Done(Ok(v)) => write(&mut body, Ok(v)),
            Outcome::Done(Err(e)) => write(&mut body, Err(e)),
            Outcome::Stream(read) => write(&mut body, Ok(&FromDb { db: &self.db, read })),
        }
        if body.overflowed() {
            // The partial body is already given back; the refusal is small.
            let e = ApiError::new(crate::error::LIMIT_REACHED, &["reply"]);
            body = Body::new(crate::budget::REPLY_BYTES);
            write(&mut body, Err(&e));
        }
        let head = http::head(200, content_type, body.len(), keep_alive);
        Handled::Reply {
            consumed,
            bytes: body.into_response(head),
            close: !keep_alive,
        }
    }

    /// Runs one call end to end (dispatch, then commit).
    pub(crate) fn call(&mut self, started: Instant, method: &str, params: Vec<Value>) -> Outcome {
        if self.poisoned {
            return Outcome::Done(Err(ApiError::new(
                INTERNAL_ERROR,
                &["database unavailable"],
            )));
        }
        if !read_only_ok(method) {
            if let Some(e) = self.wal_report.refusal() {
                return Outcome::Done(Err(e));
            }
        }
        let out = self.dispatch(started, method, params);
        match self.commit() {
            Ok(()) => out,
            Err(e) => Outcome::Done(Err(e)),
        }
    }

    /// Runs a call given already decoded values (for in-process callers and
    /// tests); never parks: a waiting `event.from` returns what it has.
    pub fn call_value(
        &mut self,
        now: Instant,
        method: &str,
        params: Vec<Value>,
    ) -> Result<Value, ApiError> {
        self.now = now;
        match self.call(Instant(0), method, params) {
            Outcome::Done(r) => r,
            Outcome::Stream(read) => Ok(read.to_value(&self.db)),
            Outcome::Park(_) => Ok(Value::Nil),
        }
    }

    /// Writes the pending changes to the WAL (synced), then publishes them
    /// as events. A storage failure poisons the engine: nothing more is
    /// acknowledged.
    pub(crate) fn commit(&mut self) -> Result<(), ApiError> {
        if !self.db.has_changes() {
            return Ok(());
        }
        let changes = self.db.take_changes();
        let mut ops = Vec::new();
        let mut published = Vec::new();
        for ch in changes {
            let snap = match ch.kind {
                ChangeKind::Del => ch.last.clone(),
                _ => self.db.get(ch.class, &ch.reference).cloned(),
            };
            let Some(rec) = snap else { continue };
            if persisted(ch.class) {
                ops.push(wal_op(ch.class, &ch.reference, ch.kind, &rec));
            }
            // Session records carry bearer refs: never broadcast them.
            if persisted(ch.class) {
                published.push((ch, rec));
            }
        }
        // Read-only (corrupt log): nothing is written; the changes that
        // get here are the engine's own (a domain that stopped), kept in
        // memory.
        if !ops.is_empty() && !self.read_only() {
            let mut o = Map::new();
            o.insert("ops".to_string(), Json::Array(ops));
            let payload = serde_json::to_vec(&Json::Object(o)).unwrap_or_default();
            let framed = wal::frame(self.wal_seq, &payload);
            if self
                .storage
                .append(&framed)
                .and_then(|_| self.storage.sync())
                .is_err()
            {
                self.poisoned = true;
                return Err(ApiError::new(INTERNAL_ERROR, &["write-ahead log failed"]));
            }
            self.wal_bytes += framed.len() as u64;
            self.wal_seq += 1;
            self.maybe_compact()?;
        }
        let ts = format_datetime(self.now);
        for (ch, rec) in published {
            let snap = record_value(ch.class, &rec);
            self.events
                .push(ts.clone(), ch.class, ch.kind, ch.reference, snap);
        }
        Ok(())
    }
}

impl<H: Hypervisor, S: Storage, E: Entropy> Engine<H, S, E> {
    /// The storage came back after a failure poisoned the engine (the
    /// storage domain was rebuilt): the whole database is written as a
    /// snapshot, replacing the log atomically, and calls are served again.
    /// Whatever the failed call changed in memory is in the snapshot: its
    /// client was told INTERNAL_ERROR, and finds the change if it looks.
    /// Does nothing when the engine is not poisoned; stays poisoned if the
    /// snapshot cannot be written.
    pub fn storage_restored(&mut self) -> Result<(), StorageError> {
        if !self.poisoned || self.read_only() {
            return Ok(());
        }
        let (snap, seq) = snapshot(&self.db);
        self.storage.replace(&snap)?;
        self.wal_bytes = snap.len() as u64;
        self.wal_seq = seq;
        self.poisoned = false;
        Ok(())
    }

    /// Whether a storage failure stopped the engine (calls fail until
    /// [`Engine::storage_restored`]).
    pub fn poisoned(&self) -> bool {
        self.poisoned
    }

    /// Replaces the log with a snapshot once it outgrows
    /// `compact_min_bytes` + 2 × the database (bounds the disk a client can
    /// make the host hold). Everything in the log is already applied, and
    /// `Storage::replace` is atomic, so a crash keeps either log.
    fn maybe_compact(&mut self) -> Result<(), ApiError> {
        let limit = self
            .config
            .compact_min_bytes
            .saturating_add(2 * self.db.approx_bytes() as u64);
        if self.wal_bytes <= limit {
            return Ok(());
        }
        let (snap, seq) = snapshot(&self.db);
        if self.storage.replace(&snap).is_err() {
            self.poisoned = true;
            return Err(ApiError::new(
                INTERNAL_ERROR,
                &["write-ahead log compaction failed"],
            ));
        }
        self.wal_bytes = snap.len() as u64;
        self.wal_seq = seq;
        Ok(())
    }
}

/// A record as a XenAPI struct.
pub fn record_value(c: ClassId, rec: &[Value]) -> Value {
    let mut m = BTreeMap::new();
    for (f, v) in class(c).fields.iter().zip(rec.iter()) {
        m.insert(f.name.to_string(), v.clone());
    }
    Value::Map(m)
}

fn wal_op(c: ClassId, reference: &str, kind: ChangeKind, rec: &[Value]) -> Json {
    let mut o = Map::new();
    o.insert("c".to_string(), Json::String(class(c).name.to_string()));
    o.insert("r".to_string(), Json::String(reference.to_string()));
    if kind == ChangeKind::Del {
        o.insert("d".to_string(), Json::Bool(true));
    } else {
        o.insert("f".to_string(), jsonrpc::to_json(&record_value(c, rec)));
    }
    Json::Object(o)
}

/// The database as a whole format-2 log, and the next frame's number.
fn snapshot(db: &Db) -> (Vec<u8>, u64) {
    let mut out = wal::log_header().to_vec();
    let mut seq = 0;
    for (c, _) in crate::schema::classes().iter().enumerate() {
        if !persisted(c) {
            continue;
        }
        let objs: Vec<_> = db.table(c).objects.iter().collect();
        for chunk in objs.chunks(256) {
            let ops: Vec<Json> = chunk
                .iter()
                .map(|(r, rec)| wal_op(c, r, ChangeKind::Add, rec))
                .collect();
            let mut o = Map::new();
            o.insert("ops".to_string(), Json::Array(ops));
            out.extend(wal::frame(
                seq,
                &serde_json::to_vec(&Json::Object(o)).unwrap_or_default(),
            ));
            seq += 1;
        }
    }
    (out, seq)
}

/// Applies one WAL frame. Unknown classes and fields are skipped, fields of
/// the wrong type take their default: a frame passed its checksum, so this
/// only happens across schema changes.
fn replay(db: &mut Db, payload: &[u8]) {
    let Ok(Json::Object(mut o)) = serde_json::from_slice::<Json>(payload) else {
        return;
    };
    let Some(Json::Array(ops)) = o.remove("ops") else {
        return;
    };
    for op in ops {
        let Json::Object(op) = op else { continue };
        let (Some(Json::String(cn)), Some(Json::String(r))) = (op.get("c"), op.get("r")) else {
            continue;
        };
        let Some(c) = class_id(cn) else { continue };
        if op.get("d").is_some() {
            db.unload(c, r);
            continue;
        }
        let Some(Json::Object(fields)) = op.get("f") else {
            continue;
        };
        let def = class(c);
        let mut rec = def.default_record();
        for (i, f) in def.fields.iter().enumerate() {
            if let Some(v) = fields.get(f.name) {
                if let Ok(v) = Ty::parse(f.ty).coerce(jsonrpc::from_json(v.clone())) {
                    rec[i] = v;
                }
            }
        }
        db.load(c, r, rec);
    }
}

//! Disk images over HTTP, as xapi serves them: `PUT /import_raw_vdi` writes
//! a request body into a VDI, `GET /export_raw_vdi` sends a VDI as the
//! response body, each with a task whose `progress` moves as the bytes do.
//!
//! read first: xapi `ocaml/xapi/import_raw_vdi.ml` and `export_raw_vdi.ml`
//! (the handlers), `vhd_tool_wrapper.ml` (formats). The query takes
//! `session_id` (or the `session_id` cookie), `vdi` (a reference or a
//! uuid), `format` (`raw`, the default, or `vhd`) and `task_id` (a task the
//! client made with `task.create`: it is the transfer's; else one is
//! made).
//!
//! The body is never held whole: the relay board (`relayed.rs`) hands an
//! import's bytes to [`Engine::import_bytes`] as they arrive, and they go
//! to the SR in [`IMPORT_BATCH`] pieces (one storage-channel message); an
//! export's are asked of the SR as the link's backlog drains
//! ([`Engine::export_bytes`]). The image's format is the SR's business
//! (stordom decodes and encodes VHD): dom0 moves bytes.
//!
//! Replies: an import is answered `200 OK` once the SR made the whole
//! image durable, an error after the body started as `500` and the
//! connection closed; an export's head (`200`, `Content-Length` the
//! image's length) goes first. The task ends `success` (its result the
//! VDI's reference) or `failure` with xapi's error. Refused before any
//! byte moved: no session 401, bad query 400, no such VDI 404, not `PUT` /
//! `GET` 405, no `Content-Length` 411, too many transfers 503; a VDI that
//! cannot be written (a snapshot, `read_only`, attached to a running VM)
//! 409 with the task failed VDI_READONLY or VDI_IN_USE.
//!
//! What a client can make dom0 hold: [`MAX_TRANSFERS`] transfers, each
//! one batch of [`IMPORT_BATCH`] bytes.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::body::Response;
use crate::console::{query_param, request_session};
use crate::engine::{Engine, Handled};
use crate::error::{ApiError, INTERNAL_ERROR, VDI_IN_USE, VDI_READONLY};
use crate::http::{self, Head};
use crate::hypervisor::Hypervisor;
use crate::rng::Entropy;
use crate::schema::class_id;
use crate::storage::{vdi_class, ImageFormat};
use crate::value::{Instant, Value};
use crate::wal::Storage;

/// xapi's import handler.
pub const IMPORT_PATH: &str = "/import_raw_vdi";
/// xapi's export handler.
pub const EXPORT_PATH: &str = "/export_raw_vdi";
/// Most transfers at once.
pub const MAX_TRANSFERS: usize = 4;
/// Import bytes gathered before they go to the SR.
pub const IMPORT_BATCH: usize = 32 * 1024;

/// A transfer under way.
#[derive(Clone)]
pub(crate) struct Transfer {
    sr: String,
    vdi: String,
    /// The SR's number for it.
    backend: u32,
    task: String,
    /// The image's length.
    len: u64,
    /// Bytes moved.
    done: u64,
    /// The progress last shown, in per cent.
    shown: u64,
    import: bool,
    /// Import bytes not yet given to the SR.
    pending: Vec<u8>,
    keep_alive: bool,
}

/// The next piece of an export.
#[derive(Debug, PartialEq, Eq)]
pub enum ExportStep {
    /// Image bytes to send.
    Data(Vec<u8>),
    /// The image was sent whole; close the connection if `close`.
    End {
        /// The client asked not to keep the connection.
        close: bool,
    },
    /// The SR failed mid-image: close the connection (the client sees a
    /// short body; the task says why).
    Failed,
}

fn text(status: u16, why: &str, keep_alive: bool) -> Response {
    let mut body = String::from(why);
    body.push('\n');
    Response::from_bytes(http::response(
        status,
        "text/plain",
        body.as_bytes(),
        keep_alive,
    ))
}

/// A refusal before any byte moved (`/rrd_updates` refuses so too).
pub(crate) fn refused(consumed: usize, status: u16, why: &str) -> Handled {
    Handled::Reply {
        consumed,
        bytes: text(status, why, false),
        close: true,
    }
}

impl<H: Hypervisor, S: Storage, E: Entropy> Engine<H, S, E> {
    /// The transfer a request head asks for, if it names a transfer
    /// handler: how to go on.
    pub(crate) fn transfer_head(&mut self, head: &Head) -> Option<Handled> {
        let path = head.path.split('?').next().unwrap_or("");
        let import = match path {
            IMPORT_PATH => true,
            EXPORT_PATH => false,
            _ => return None,
        };
        Some(self.start_transfer(head, import))
    }

    fn start_transfer(&mut self, head: &Head, import: bool) -> Handled {
        let consumed = head.len;
        let method_ok = if import {
            head.method == "PUT"
        } else {
            head.method == "GET"
        };
        if !method_ok {
            return refused(consumed, 405, "Method Not Allowed");
        }
        let session = request_session(&head.path, head.cookie.as_deref());
        if session.is_none_or(|s| self.check_session(&s).is_err()) {
            return refused(consumed, 401, "a valid session_id is required");
        }
        let format = match query_param(&head.path, "format").as_deref() {
            None | Some("raw") => ImageFormat::Raw,
            Some("vhd") => ImageFormat::Vhd,
            Some(_) => return refused(consumed, 400, "format must be raw or vhd"),
        };
        let len = if import {
            match head.content_length {
                Some(n) if !head.chunked => n,
                _ => return refused(consumed, 411, "an image upload needs a Content-Length"),
            }
        } else {
            0
        };
        let vc = vdi_class();
        let vdi = match query_param(&head.path, "vdi") {
            Some(v) if self.db.get(vc, &v).is_some() => v,
            Some(v) => match self.db.by_uuid(vc, &v).cloned() {
                Some(r) => r,
                None => return refused(consumed, 404, "no such VDI"),
            },
            None => return refused(consumed, 400, "the vdi parameter is required"),
        };
        let tc = class_id("task").expect("schema has task");
        let task = match query_param(&head.path, "task_id") {
            Some(t) if self.db.get(tc, &t).is_some() => t,
            Some(_) => return refused(consumed, 404, "no such task"),
            None => {
                let label = if import { "VDI import" } else { "VDI export" };
                match self.task_create(label, "") {
                    Ok(Value::String(t)) => t,
                    _ => return refused(consumed, 503, "too many tasks"),
                }
            }
        };
        let fail = |engine: &mut Self, status: u16, e: ApiError| {
            let why = e.description().join(" ");
            engine.finish_task(&task, Err(e));
            let _ = engine.commit();
            refused(consumed, status, &why)
        };
        if self.transfers.len() >= MAX_TRANSFERS {
            let e = ApiError::new(INTERNAL_ERROR, &["too many image transfers at once"]);
            return fail(self, 503, e);
        }
        let sr = match self.vdi_sr(&vdi) {
            Ok(sr) => sr,
            Err(e) => return fail(self, 500, e),
        };
        if import {
            let read_only = self.vdi_field(&vdi, "is_a_snapshot").as_bool() == Some(true)
                || self.vdi_field(&vdi, "read_only").as_bool() == Some(true);
            if read_only {
                return fail(self, 409, ApiError::new(VDI_READONLY, &[&vdi]));
            }
            if !self.active_vbds(&vdi).is_empty() {
                return fail(self, 409, ApiError::new(VDI_IN_USE, &[&vdi, "import"]));
            }
        }
        let loc = self.vdi_field(&vdi, "location");
        let loc = loc.as_str().unwrap_or("").to_string();
        let begun = if import {
            self.with_sr(&sr, &vdi, |b| b.import_begin(&loc, format, len))
                .map(|id| (id, len))
        } else {
            self.with_sr(&sr, &vdi, |b| b.export_begin(&loc, format))
        };
        let (backend, len) = match begun {
            Ok(x) => x,
            Err(e) => return fail(self, 500, e),
        };
        let t = Transfer {
            sr,
            vdi,
            backend,
            task,
            len,
            done: 0,
            shown: 0,
            import,
            pending: Vec::new(),
            keep_alive: head.keep_alive,
        };
        self.last_transfer = self.last_transfer.wrapping_add(1).max(1);
        let transfer = self.last_transfer;
        self.transfers.insert(transfer, t);
        if import {
            Handled::Import {
                consumed,
                transfer,
                len,
                send_continue: head.expect_continue,
            }
        } else {
            let head = http::head(
                200,
                "application/octet-stream",
                len as usize,
                head.keep_alive,
            );
            Handled::Export {
                consumed,
                transfer,
                head,
            }
        }
    }

    /// Shows the transfer's progress on its task, in steps of a percent
    /// at most (each step is a database change, written to the log like
    /// any task change).
    fn show_progress(&mut self, transfer: u32) {
        let Some(t) = self.transfers.get_mut(&transfer) else {
            return;
        };
        // Per cent, not finer: each step is an event, and a thousand of
        // them (a 1 KiB task snapshot each) would push a client that
        // follows only VMs out of the event window (EVENTS_LOST).
        let per_cent = (t.done.saturating_mul(100)).checked_div(t.len).unwrap_or(0);
        if per_cent <= t.shown || t.done >= t.len {
            return;
        }
        t.shown = per_cent;
        let progress = t.done as f64 / t.len as f64;
        let task = t.task.clone();
        let tc = class_id("task").expect("schema has task");
        self.db
            .set_named(tc, &task, "progress", Value::Float(progress));
        let _ = self.commit();
    }

    /// Ends a transfer: its task, and (for an import) the VDI's and SR's
    /// sizes.
    fn end_transfer(&mut self, transfer: u32, result: Result<(), ApiError>) {
        let Some(t) = self.transfers.remove(&transfer) else {
            return;
        };
        let result = result.map(|()| Value::String(t.vdi.clone()));
        if t.import && result.is_ok() {
            let _ = self.refresh_sr(&t.sr);
            let _ = self.refresh_vdi_info(&t.sr, &t.vdi);
        }
        self.finish_task(&t.task, result);
        let _ = self.commit();
    }

    /// Gives the SR the gathered import bytes.
    fn flush_import(&mut self, transfer: u32) -> Result<(), ApiError> {
        let Some(t) = self.transfers.get_mut(&transfer) else {
            return Err(ApiError::new(INTERNAL_ERROR, &["no such transfer"]));
        };
        if t.pending.is_empty() {
            return Ok(());
        }
        let bytes = core::mem::take(&mut t.pending);
        let (sr, vdi, backend) = (t.sr.clone(), t.vdi.clone(), t.backend);
        self.with_sr(&sr, &vdi, |b| b.import_data(backend, &bytes))?;
        if let Some(t) = self.transfers.get_mut(&transfer) {
            // Keep the batch's memory for the next one.
            t.pending = bytes;
            t.pending.clear();
        }
        Ok(())
    }

    /// An import's next body bytes. `Some(response)` when the import failed:
    /// send it and close the connection.
    pub fn import_bytes(&mut self, now: Instant, transfer: u32, bytes: &[u8]) -> Option<Response> {
        self.now = now;
        let mut rest = bytes;
        while !rest.is_empty() {
            let Some(t) = self.transfers.get_mut(&transfer) else {
                return Some(text(500, "no such transfer", false));
            };
            let room = IMPORT_BATCH - t.pending.len();
            if t.pending.capacity() < IMPORT_BATCH
                && t.pending.try_reserve_exact(IMPORT_BATCH).is_err()
            {
                let e = ApiError::new(INTERNAL_ERROR, &["dom0 is out of memory"]);
                return Some(self.fail_transfer(transfer, e));
            }
            let take = rest.len().min(room);
            t.pending.extend_from_slice(&rest[..take]);
            t.done += take as u64;
            rest = &rest[take..];
            if t.pending.len() == IMPORT_BATCH {
                if let Err(e) = self.flush_import(transfer) {
                    return Some(self.fail_transfer(transfer, e));
                }
                self.show_progress(transfer);
            }
        }
        None
    }

    fn fail_transfer(&mut self, transfer: u32, e: ApiError) -> Response {
        let why = e.description().join(" ");
        if let Some(t) = self.transfers.get(&transfer) {
            let (sr, backend) = (t.sr.clone(), t.backend);
            let _ = self.with_sr(&sr, "", |b| {
                b.transfer_abort(backend);
                Ok(())
            });
        }
        self.end_transfer(transfer, Err(e));
        text(500, &why, false)
    }

    /// An import's body ended: the reply, and whether to close after it.
    pub fn import_end(&mut self, now: Instant, transfer: u32) -> (Response, bool) {
        self.now = now;
        let keep_alive = self.transfers.get(&transfer).is_some_and(|t| t.keep_alive);
        let ended = self.flush_import(transfer).and_then(|()| {
            let t = self
                .transfers
                .get(&transfer)
                .ok_or_else(|| ApiError::new(INTERNAL_ERROR, &["no such transfer"]))?;
            let (sr, vdi, backend) = (t.sr.clone(), t.vdi.clone(), t.backend);
            self.with_sr(&sr, &vdi, |b| b.import_end(backend))
        });
        match ended {
            Ok(()) => {
                self.end_transfer(transfer, Ok(()));
                (
                    Response::from_bytes(http::response(200, "text/plain", b"", keep_alive)),
                    !keep_alive,
                )
            }
            Err(e) => (self.fail_transfer(transfer, e), true),
        }
    }

    /// An export's next bytes, at most `max`.
    pub fn export_bytes(&mut self, now: Instant, transfer: u32, max: usize) -> ExportStep {
        self.now = now;
        let Some(t) = self.transfers.get(&transfer) else {
            return ExportStep::Failed;
        };
        let (sr, vdi, backend, keep_alive) = (t.sr.clone(), t.vdi.clone(), t.backend, t.keep_alive);
        match self.with_sr(&sr, &vdi, |b| b.export_data(backend, max)) {
            Ok(bytes) if bytes.is_empty() => {
                let whole = self
                    .transfers
                    .get(&transfer)
                    .is_some_and(|t| t.done == t.len);
                if whole {
                    self.end_transfer(transfer, Ok(()));
                    ExportStep::End { close: !keep_alive }
                } else {
                    let e = ApiError::new(INTERNAL_ERROR, &["the image ended short"]);
                    self.end_transfer(transfer, Err(e));
                    ExportStep::Failed
                }
            }
            Ok(bytes) => {
                let over = self.transfers.get_mut(&transfer).is_none_or(|t| {
                    t.done += bytes.len() as u64;
                    t.done > t.len
                });
                if over {
                    let e = ApiError::new(INTERNAL_ERROR, &["the image ran past its length"]);
                    self.fail_transfer(transfer, e);
                    return ExportStep::Failed;
                }
                self.show_progress(transfer);
                ExportStep::Data(bytes)
            }
            Err(e) => {
                self.fail_transfer(transfer, e);
                ExportStep::Failed
            }
        }
    }

    /// The client of a transfer went away: the SR forgets it, its task
    /// fails.
    pub fn transfer_gone(&mut self, now: Instant, transfer: u32) {
        self.now = now;
        if self.transfers.contains_key(&transfer) {
            let e = ApiError::new(INTERNAL_ERROR, &["the client went away"]);
            let _ = self.fail_transfer(transfer, e);
        }
    }

    /// Transfers under way.
    pub fn transfers(&self) -> usize {
        self.transfers.len()
    }
}

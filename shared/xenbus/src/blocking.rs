//! A blocking xenstore handle: the sans-IO [`Client`] plus a ring page and
//! a way to kick and wait for the event channel.
//!
//! Read first: client.rs. For boot-time code and simple drivers that have
//! nothing else to do while xenstored answers. Each call queues one
//! request, then polls, kicks and waits until its reply is in. Watch events
//! that arrive meanwhile are kept for [`Xenbus::next_event`] /
//! [`Xenbus::wait_event`]. A domain with an event loop uses [`Client`]
//! directly instead.
//!
//! [`Xenbus::transaction`] runs a closure inside TRANSACTION_START/END and
//! starts again when the commit answers EAGAIN (at most
//! [`TRANSACTION_ATTEMPTS`] times).

use alloc::string::String;
use alloc::vec::Vec;

use crate::client::{Client, RequestId, WatchEvent};
use crate::error::{Error, Malformed, XsErrno};
use crate::perms::Perm;
use crate::reply::{Reply, TxId};
use crate::ring::SharedPage;
use crate::state::{self, XenbusState};

/// How many times [`Xenbus::transaction`] tries before `Error::Conflict`.
pub const TRANSACTION_ATTEMPTS: usize = 16;

/// The event channel to xenstored, as the blocking handle needs it.
pub trait Wait {
    /// Kick the event channel (EVTCHNOP_send).
    fn notify(&mut self);
    /// Block until the event channel has fired since the last call (clear
    /// its pending bit and return at once if it already has). `Err` (for
    /// example [`Error::Timeout`]) ends the current call with that error.
    fn wait(&mut self) -> Result<(), Error>;
}

/// A xenstore ring's four indexes at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingIndexes {
    /// The server's read position in `req`.
    pub req_cons: u32,
    /// Our write position in `req`.
    pub req_prod: u32,
    /// Our read position in `rsp`.
    pub rsp_cons: u32,
    /// The server's write position in `rsp`.
    pub rsp_prod: u32,
}

/// A blocking xenstore connection. See the module docs.
pub struct Xenbus<R: SharedPage, W: Wait> {
    client: Client,
    ring: R,
    port: W,
}

fn unexpected<T>() -> Result<T, Error> {
    Err(Error::Malformed(Malformed::WrongType))
}

impl<R: SharedPage, W: Wait> Xenbus<R, W> {
    /// A handle over `ring` (the mapped xenstore page) and `port`.
    pub fn new(client: Client, ring: R, port: W) -> Self {
        Xenbus { client, ring, port }
    }

    /// The sans-IO client (to queue several requests at once).
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    /// The ring's indexes as they are now (for diagnosis: requests the
    /// server has not read are `req_prod - req_cons`, replies we have not
    /// read `rsp_prod - rsp_cons`).
    pub fn ring_indexes(&self) -> RingIndexes {
        use crate::ring::{REQ_CONS, REQ_PROD, RSP_CONS, RSP_PROD};
        RingIndexes {
            req_cons: self.ring.load_u32(REQ_CONS),
            req_prod: self.ring.load_u32(REQ_PROD),
            rsp_cons: self.ring.load_u32(RSP_CONS),
            rsp_prod: self.ring.load_u32(RSP_PROD),
        }
    }

    /// The wait handle (for diagnosis: which port a stalled call waits on).
    pub fn waiter(&self) -> &W {
        &self.port
    }

    /// The ring and the port back.
    pub fn into_parts(self) -> (Client, R, W) {
        (self.client, self.ring, self.port)
    }

    /// One poll: move bytes, kick the channel if anything moved. Returns
    /// whether anything happened.
    pub fn pump(&mut self) -> Result<bool, Error> {
        let progress = self.client.poll(&mut self.ring)?;
        if progress.notify {
            self.port.notify();
        }
        Ok(progress.moved())
    }

    /// Wait for the reply to `id` (queued on [`Xenbus::client`]).
    pub fn wait_reply(&mut self, id: RequestId) -> Result<Reply, Error> {
        loop {
            let moved = self.pump();
            if let Some(reply) = self.client.take_reply(id) {
                return reply;
            }
            if !moved? {
                if let Err(e) = self.port.wait() {
                    self.client.forget(id);
                    return Err(e);
                }
            }
        }
    }

    fn call(&mut self, queued: Result<RequestId, Error>) -> Result<Reply, Error> {
        self.wait_reply(queued?)
    }

    fn ok(&mut self, queued: Result<RequestId, Error>) -> Result<(), Error> {
        match self.call(queued)? {
            Reply::Ok => Ok(()),
            _ => unexpected(),
        }
    }

    /// READ `path`.
    pub fn read(&mut self, tx: TxId, path: &str) -> Result<Vec<u8>, Error> {
        let q = self.client.read(tx, path);
        match self.call(q)? {
            Reply::Value(v) => Ok(v),
            _ => unexpected(),
        }
    }

    /// READ `path` as UTF-8 text (a trailing nul is dropped).
    pub fn read_string(&mut self, tx: TxId, path: &str) -> Result<String, Error> {
        let mut v = self.read(tx, path)?;
        if v.last() == Some(&0) {
            v.pop();
        }
        String::from_utf8(v).map_err(|_| Error::Malformed(Malformed::BadPayload))
    }

    /// WRITE `value` at `path`.
    pub fn write(&mut self, tx: TxId, path: &str, value: &[u8]) -> Result<(), Error> {
        let q = self.client.write(tx, path, value);
        self.ok(q)
    }

    /// MKDIR `path`.
    pub fn mkdir(&mut self, tx: TxId, path: &str) -> Result<(), Error> {
        let q = self.client.mkdir(tx, path);
        self.ok(q)
    }

    /// RM `path` and its subtree.
    pub fn rm(&mut self, tx: TxId, path: &str) -> Result<(), Error> {
        let q = self.client.rm(tx, path);
        self.ok(q)
    }

    /// The children of `path`; a listing over 4096 bytes (E2BIG) is
    /// fetched again in slices with DIRECTORY_PART.
    pub fn directory(&mut self, tx: TxId, path: &str) -> Result<Vec<String>, Error> {
        let q = self.client.directory(tx, path);
        match self.call(q) {
            Ok(Reply::Entries(e)) => Ok(e),
            Ok(_) => unexpected(),
            Err(Error::Xs(XsErrno::E2big)) => self.directory_by_parts(tx, path),
            Err(e) => Err(e),
        }
    }

    fn directory_by_parts(&mut self, tx: TxId, path: &str) -> Result<Vec<String>, Error> {
        // A directory changing under us restarts the listing; bounded like
        // a transaction so a busy directory cannot keep us here forever.
        for _ in 0..TRANSACTION_ATTEMPTS {
            let mut entries = Vec::new();
            let mut offset: u32 = 0;
            let mut first_generation: Option<String> = None;
            loop {
                let q = self.client.directory_part(tx, path, offset);
                let Reply::Part {
                    generation,
                    entries: part,
                    complete,
                    bytes,
                } = self.call(q)?
                else {
                    return unexpected();
                };
                match &first_generation {
                    Some(g) if *g != generation => break,
                    Some(_) => {}
                    None => first_generation = Some(generation),
                }
                entries.extend(part);
                if complete {
                    return Ok(entries);
                }
                offset = offset
                    .checked_add(bytes)
                    .ok_or(Error::Malformed(Malformed::BadPayload))?;
            }
        }
        Err(Error::Conflict)
    }

    /// GET_PERMS `path` (owner first).
    pub fn get_perms(&mut self, tx: TxId, path: &str) -> Result<Vec<Perm>, Error> {
        let q = self.client.get_perms(tx, path);
        match self.call(q)? {
            Reply::Perms(p) => Ok(p),
            _ => unexpected(),
        }
    }

    /// SET_PERMS `path` (owner first).
    pub fn set_perms(&mut self, tx: TxId, path: &str, perms: &[Perm]) -> Result<(), Error> {
        let q = self.client.set_perms(tx, path, perms);
        self.ok(q)
    }

    /// WATCH `path` with `token`; its initial event follows.
    pub fn watch(&mut self, path: &str, token: &str) -> Result<(), Error> {
        let q = self.client.watch(path, token);
        self.ok(q)
    }

    /// UNWATCH `path`/`token`.
    pub fn unwatch(&mut self, path: &str, token: &str) -> Result<(), Error> {
        let q = self.client.unwatch(path, token);
        self.ok(q)
    }

    /// A queued watch event, if any (no waiting).
    pub fn next_event(&mut self) -> Option<WatchEvent> {
        if let Some(e) = self.client.next_event() {
            return Some(e);
        }
        let _ = self.pump();
        self.client.next_event()
    }

    /// Block until a watch event arrives.
    pub fn wait_event(&mut self) -> Result<WatchEvent, Error> {
        loop {
            let moved = self.pump()?;
            if let Some(e) = self.client.next_event() {
                return Ok(e);
            }
            if !moved {
                self.port.wait()?;
            }
        }
    }

    /// TRANSACTION_START.
    pub fn transaction_start(&mut self) -> Result<TxId, Error> {
        let q = self.client.transaction_start();
        match self.call(q)? {
            Reply::Transaction(tx) => Ok(tx),
            _ => unexpected(),
        }
    }

    /// TRANSACTION_END, committing or aborting (EAGAIN: conflict).
    pub fn transaction_end(&mut self, tx: TxId, commit: bool) -> Result<(), Error> {
        let q = self.client.transaction_end(tx, commit);
        self.ok(q)
    }

    /// Run `body` in a transaction and commit it, starting again when the
    /// commit conflicts (EAGAIN). An `Err` from `body` aborts the
    /// transaction and is returned as is. After [`TRANSACTION_ATTEMPTS`]
    /// conflicts: `Error::Conflict`.
    pub fn transaction<T>(
        &mut self,
        mut body: impl FnMut(&mut Self, TxId) -> Result<T, Error>,
    ) -> Result<T, Error> {
        for _ in 0..TRANSACTION_ATTEMPTS {
            let tx = self.transaction_start()?;
            let value = match body(self, tx) {
                Ok(v) => v,
                Err(e) => {
                    // The body's error is the one worth reporting; the
                    // abort can only fail if the connection did too.
                    let _ = self.transaction_end(tx, false);
                    return Err(e);
                }
            };
            match self.transaction_end(tx, true) {
                Ok(()) => return Ok(value),
                Err(Error::Xs(XsErrno::Eagain)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Conflict)
    }

    /// GET_DOMAIN_PATH `domid`.
    pub fn get_domain_path(&mut self, domid: u16) -> Result<String, Error> {
        let q = self.client.get_domain_path(domid);
        match self.call(q)? {
            Reply::Path(p) => Ok(p),
            _ => unexpected(),
        }
    }

    /// INTRODUCE `domid` (privileged).
    pub fn introduce(&mut self, domid: u16, mfn: u64, evtchn: u32) -> Result<(), Error> {
        let q = self.client.introduce(domid, mfn, evtchn);
        self.ok(q)
    }

    /// RELEASE `domid` (privileged).
    pub fn release(&mut self, domid: u16) -> Result<(), Error> {
        let q = self.client.release(domid);
        self.ok(q)
    }

    /// IS_DOMAIN_INTRODUCED `domid`.
    pub fn is_domain_introduced(&mut self, domid: u16) -> Result<bool, Error> {
        let q = self.client.is_domain_introduced(domid);
        match self.call(q)? {
            Reply::Bool(b) => Ok(b),
            _ => unexpected(),
        }
    }

    /// The state in `<dir>/state` (a missing node is `Err(Xs(ENOENT))`).
    pub fn read_state(&mut self, dir: &str) -> Result<XenbusState, Error> {
        let q = state::read_state(&mut self.client, TxId::NONE, dir);
        Ok(state::state_of(&self.call(q)?))
    }

    /// Set `<dir>/state` to `to`, in a transaction that first checks the
    /// node still exists, as Linux's `xenbus_switch_state` does: a
    /// directory the toolstack removed is not recreated by a late write.
    /// Returns whether the state was written (false: the node is gone).
    pub fn switch_state(&mut self, dir: &str, to: XenbusState) -> Result<bool, Error> {
        let path = state::state_path(dir);
        let result = self.transaction(|xb, tx| {
            xb.read(tx, &path)?;
            xb.write(tx, &path, &to.to_value())
        });
        match result {
            Ok(()) => Ok(true),
            Err(Error::Xs(XsErrno::Enoent)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

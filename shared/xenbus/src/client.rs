//! The sans-IO xenstore client: requests queued, replies and watch events
//! sorted out of the byte stream.
//!
//! Read first: docs/misc/xenstore.txt, xs_wire.h. A request method encodes
//! a message with a fresh `req_id` and returns its [`RequestId`]; nothing
//! touches the ring until [`Client::poll`], which pushes queued requests,
//! pulls reply bytes (copied out once), and sorts whole messages: a
//! reply goes to its request (fetch it with [`Client::take_reply`]), an
//! XS_WATCH_EVENT to the event queue ([`Client::next_event`]). The caller
//! kicks the event channel when `poll` says so and calls `poll` again when
//! the channel fires.
//!
//! What a server can make us hold is bounded: replies only for requests in
//! flight (at most `max_in_flight`, each ≤ 4096 bytes), watch events up to
//! `max_events` (more are dropped and counted; xenstore.txt allows
//! spurious and, by extension, coalesced watch events, and a domain must
//! not run out of memory because xenstored floods it), a partial message
//! up to 16 + 4096 bytes. A reply whose `len` exceeds 4096 or a ring with
//! impossible indexes stops the client: every request in flight fails.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;

use crate::error::{Error, Malformed};
use crate::perms::{push_decimal, Perm};
use crate::reply::{self, Reply, TxId};
use crate::ring::{self, SharedPage};
use crate::wire::{
    self, MsgType, Parse, HEADER_LEN, XENSTORE_ABS_PATH_MAX, XENSTORE_PAYLOAD_MAX,
    XENSTORE_REL_PATH_MAX,
};

/// The id of a request, echoed by its reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u32);

/// An XS_WATCH_EVENT: `path` changed, for the watch registered with `token`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    /// The node that changed (relative if the watch was relative).
    pub path: String,
    /// The token given to WATCH.
    pub token: String,
}

/// Bounds on what the client holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Requests queued, sent or answered but not yet taken.
    pub max_in_flight: usize,
    /// Watch events queued before further ones are dropped.
    pub max_events: usize,
}

impl Default for Limits {
    /// 16 requests in flight (C xenstored allows 20 outstanding per
    /// domain), 256 queued watch events (as the engine's `queued-events`).
    fn default() -> Limits {
        Limits {
            max_in_flight: 16,
            max_events: 256,
        }
    }
}

/// What one [`Client::poll`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Bytes moved either way: kick the event channel.
    pub notify: bool,
    /// Replies that completed.
    pub replies: usize,
    /// Watch events that arrived.
    pub events: usize,
}

impl Progress {
    /// Whether anything happened (if not, wait for the event channel).
    pub fn moved(&self) -> bool {
        self.notify || self.replies > 0 || self.events > 0
    }
}

#[derive(Debug)]
enum Slot {
    /// Sent (or queued), waiting for its reply.
    Waiting(MsgType),
    /// Waiting, but its reply is to be thrown away.
    Forgotten,
    /// Answered, waiting to be taken.
    Done(Result<Reply, Error>),
}

/// A xenstore client over one connection. See the module docs.
#[derive(Debug)]
pub struct Client {
    limits: Limits,
    next_req_id: u32,
    /// Encoded requests not yet on the ring.
    outbuf: VecDeque<u8>,
    /// Bytes of a partial incoming message.
    inbuf: Vec<u8>,
    slots: BTreeMap<u32, Slot>,
    events: VecDeque<WatchEvent>,
    dropped_events: u64,
    stray_replies: u64,
    stopped: Option<Error>,
}

impl Default for Client {
    fn default() -> Client {
        Client::new(Limits::default())
    }
}

impl Client {
    /// A client with nothing in flight.
    pub fn new(limits: Limits) -> Client {
        Client {
            limits,
            next_req_id: 1,
            outbuf: VecDeque::new(),
            inbuf: Vec::new(),
            slots: BTreeMap::new(),
            events: VecDeque::new(),
            dropped_events: 0,
            stray_replies: 0,
            stopped: None,
        }
    }

    /// Queue a request of any type with a raw payload (the typed methods
    /// below build payloads for you). Checks the payload size and the
    /// in-flight limit; nothing goes out before [`Client::poll`].
    pub fn request(&mut self, ty: MsgType, tx: TxId, payload: &[u8]) -> Result<RequestId, Error> {
        if self.stopped.is_some() {
            return Err(Error::Closed);
        }
        if self.slots.len() >= self.limits.max_in_flight {
            return Err(Error::Busy);
        }
        // Skip ids still in use after wrap-around, and 0 (watch events use it).
        while self.next_req_id == 0 || self.slots.contains_key(&self.next_req_id) {
            self.next_req_id = self.next_req_id.wrapping_add(1);
        }
        let id = self.next_req_id;
        self.next_req_id = self.next_req_id.wrapping_add(1);
        let msg = wire::encode(ty, id, tx.0, payload).ok_or(Error::InvalidArgument)?;
        self.outbuf.extend(msg);
        self.slots.insert(id, Slot::Waiting(ty));
        Ok(RequestId(id))
    }

    /// READ `path`: [`Reply::Value`].
    pub fn read(&mut self, tx: TxId, path: &str) -> Result<RequestId, Error> {
        let payload = path_arg(path)?;
        self.request(MsgType::Read, tx, &payload)
    }

    /// WRITE `value` at `path`, creating it (and missing parents): [`Reply::Ok`].
    pub fn write(&mut self, tx: TxId, path: &str, value: &[u8]) -> Result<RequestId, Error> {
        let mut payload = path_arg(path)?;
        payload.extend_from_slice(value);
        self.request(MsgType::Write, tx, &payload)
    }

    /// MKDIR `path` (no error if it exists): [`Reply::Ok`].
    pub fn mkdir(&mut self, tx: TxId, path: &str) -> Result<RequestId, Error> {
        let payload = path_arg(path)?;
        self.request(MsgType::Mkdir, tx, &payload)
    }

    /// RM `path` and its subtree: [`Reply::Ok`].
    pub fn rm(&mut self, tx: TxId, path: &str) -> Result<RequestId, Error> {
        let payload = path_arg(path)?;
        self.request(MsgType::Rm, tx, &payload)
    }

    /// DIRECTORY `path`: [`Reply::Entries`]. A directory whose listing
    /// exceeds 4096 bytes answers E2BIG; use [`Client::directory_part`].
    pub fn directory(&mut self, tx: TxId, path: &str) -> Result<RequestId, Error> {
        let payload = path_arg(path)?;
        self.request(MsgType::Directory, tx, &payload)
    }

    /// DIRECTORY_PART `path` from byte `offset` of the listing: [`Reply::Part`].
    pub fn directory_part(
        &mut self,
        tx: TxId,
        path: &str,
        offset: u32,
    ) -> Result<RequestId, Error> {
        let mut payload = path_arg(path)?;
        push_decimal(&mut payload, u64::from(offset));
        payload.push(0);
        self.request(MsgType::DirectoryPart, tx, &payload)
    }

    /// GET_PERMS `path`: [`Reply::Perms`].
    pub fn get_perms(&mut self, tx: TxId, path: &str) -> Result<RequestId, Error> {
        let payload = path_arg(path)?;
        self.request(MsgType::GetPerms, tx, &payload)
    }

    /// SET_PERMS `path` to `perms` (owner first): [`Reply::Ok`].
    pub fn set_perms(&mut self, tx: TxId, path: &str, perms: &[Perm]) -> Result<RequestId, Error> {
        if perms.is_empty() {
            return Err(Error::InvalidArgument);
        }
        let mut payload = path_arg(path)?;
        for p in perms {
            p.emit(&mut payload);
            payload.push(0);
        }
        self.request(MsgType::SetPerms, tx, &payload)
    }

    /// WATCH `path` (or `@introduceDomain`/`@releaseDomain`) with `token`:
    /// [`Reply::Ok`], then an initial event, then one per change.
    pub fn watch(&mut self, path: &str, token: &str) -> Result<RequestId, Error> {
        let payload = path_token(path, token)?;
        self.request(MsgType::Watch, TxId::NONE, &payload)
    }

    /// UNWATCH `path`/`token`: [`Reply::Ok`]. Events already queued stay.
    pub fn unwatch(&mut self, path: &str, token: &str) -> Result<RequestId, Error> {
        let payload = path_token(path, token)?;
        self.request(MsgType::Unwatch, TxId::NONE, &payload)
    }

    /// RESET_WATCHES: drop all our watches (and transactions): [`Reply::Ok`].
    pub fn reset_watches(&mut self) -> Result<RequestId, Error> {
        self.request(MsgType::ResetWatches, TxId::NONE, b"")
    }

    /// TRANSACTION_START: [`Reply::Transaction`].
    pub fn transaction_start(&mut self) -> Result<RequestId, Error> {
        self.request(MsgType::TransactionStart, TxId::NONE, b"\0")
    }

    /// TRANSACTION_END `tx`, committing or aborting: [`Reply::Ok`], or
    /// EAGAIN when the commit conflicted (start again).
    pub fn transaction_end(&mut self, tx: TxId, commit: bool) -> Result<RequestId, Error> {
        let payload: &[u8] = if commit { b"T\0" } else { b"F\0" };
        self.request(MsgType::TransactionEnd, tx, payload)
    }

    /// GET_DOMAIN_PATH `domid`: [`Reply::Path`].
    pub fn get_domain_path(&mut self, domid: u16) -> Result<RequestId, Error> {
        self.request(
            MsgType::GetDomainPath,
            TxId::NONE,
            &decimal_arg(domid.into()),
        )
    }

    /// INTRODUCE `domid` with its ring frame and (unbound) event channel
    /// (privileged): [`Reply::Ok`].
    pub fn introduce(&mut self, domid: u16, mfn: u64, evtchn: u32) -> Result<RequestId, Error> {
        let mut payload = decimal_arg(domid.into());
        payload.extend_from_slice(&decimal_arg(mfn));
        payload.extend_from_slice(&decimal_arg(evtchn.into()));
        self.request(MsgType::Introduce, TxId::NONE, &payload)
    }

    /// RELEASE `domid` (privileged): [`Reply::Ok`].
    pub fn release(&mut self, domid: u16) -> Result<RequestId, Error> {
        self.request(MsgType::Release, TxId::NONE, &decimal_arg(domid.into()))
    }

    /// RESUME `domid` (privileged): [`Reply::Ok`].
    pub fn resume(&mut self, domid: u16) -> Result<RequestId, Error> {
        self.request(MsgType::Resume, TxId::NONE, &decimal_arg(domid.into()))
    }

    /// SET_TARGET `domid` may act for `target` (privileged): [`Reply::Ok`].
    pub fn set_target(&mut self, domid: u16, target: u16) -> Result<RequestId, Error> {
        let mut payload = decimal_arg(domid.into());
        payload.extend_from_slice(&decimal_arg(target.into()));
        self.request(MsgType::SetTarget, TxId::NONE, &payload)
    }

    /// IS_DOMAIN_INTRODUCED `domid`: [`Reply::Bool`].
    pub fn is_domain_introduced(&mut self, domid: u16) -> Result<RequestId, Error> {
        self.request(
            MsgType::IsDomainIntroduced,
            TxId::NONE,
            &decimal_arg(domid.into()),
        )
    }

    /// Push queued requests into the ring and sort out whatever the server
    /// answered. Call it after queuing requests and whenever the event
    /// channel fires; kick the channel if [`Progress::notify`].
    ///
    /// `Err` once the ring is found corrupt or the stream broken (every
    /// request in flight then fails with the same error), `Err(Closed)`
    /// after that.
    pub fn poll(&mut self, page: &mut impl SharedPage) -> Result<Progress, Error> {
        if self.stopped.is_some() {
            return Err(Error::Closed);
        }
        let mut progress = Progress::default();
        if ring::server_error(page).is_some() {
            return Err(self.stop(Error::Ring));
        }
        // Requests out.
        match self.push_out(page) {
            Ok(n) => progress.notify |= n > 0,
            Err(_) => return Err(self.stop(Error::Ring)),
        }
        // Replies in: copy out of the page once, then parse the copy.
        match ring::take_responses(page, &mut self.inbuf, ring::XENSTORE_RING_SIZE as usize) {
            Ok(n) => progress.notify |= n > 0,
            Err(_) => return Err(self.stop(Error::Ring)),
        }
        let mut start = 0;
        loop {
            match wire::parse(&self.inbuf[start..]) {
                Parse::NeedMore(_) => break,
                Parse::Bad(_) => return Err(self.stop(Error::Malformed(Malformed::TooLong))),
                Parse::Message { header, total } => {
                    let payload = &self.inbuf[start + HEADER_LEN..start + total];
                    if header.ty == MsgType::WatchEvent {
                        let event = parse_event(payload);
                        if self.push_event(event) {
                            progress.events += 1;
                        }
                    } else if let Some(Slot::Forgotten) = self.slots.get(&header.req_id) {
                        self.slots.remove(&header.req_id);
                    } else if let Some(Slot::Waiting(request)) = self.slots.get(&header.req_id) {
                        let result = if header.ty == MsgType::Error {
                            Err(Error::from_xs_payload(payload))
                        } else if header.ty != *request {
                            Err(Error::Malformed(Malformed::WrongType))
                        } else {
                            reply::parse(*request, payload).map_err(Error::Malformed)
                        };
                        self.slots.insert(header.req_id, Slot::Done(result));
                        progress.replies += 1;
                    } else {
                        // Not a request of ours (or answered twice): ignore.
                        self.stray_replies += 1;
                    }
                    start += total;
                }
            }
        }
        self.inbuf.drain(..start);
        Ok(progress)
    }

    /// Push as much of the queued requests as the ring takes.
    fn push_out(&mut self, page: &mut impl SharedPage) -> Result<usize, ring::BadIndexes> {
        let mut total = 0;
        while !self.outbuf.is_empty() {
            let (chunk, _) = self.outbuf.as_slices();
            let len = chunk.len();
            let n = ring::push_requests(page, chunk)?;
            self.outbuf.drain(..n);
            total += n;
            if n < len {
                // The ring is full; the rest goes on the next poll.
                break;
            }
        }
        Ok(total)
    }

    fn push_event(&mut self, event: Option<WatchEvent>) -> bool {
        match event {
            Some(e) if self.events.len() < self.limits.max_events => {
                self.events.push_back(e);
                true
            }
            _ => {
                self.dropped_events += 1;
                false
            }
        }
    }

    /// Stop the client: every request still waiting fails with `why`.
    fn stop(&mut self, why: Error) -> Error {
        for slot in self.slots.values_mut() {
            if matches!(slot, Slot::Waiting(_) | Slot::Forgotten) {
                *slot = Slot::Done(Err(why));
            }
        }
        self.outbuf.clear();
        self.inbuf = Vec::new();
        self.stopped = Some(why);
        why
    }

    /// The reply to `id`, once it has arrived (and only once).
    pub fn take_reply(&mut self, id: RequestId) -> Option<Result<Reply, Error>> {
        match self.slots.get(&id.0)? {
            Slot::Waiting(_) | Slot::Forgotten => None,
            Slot::Done(_) => match self.slots.remove(&id.0) {
                Some(Slot::Done(result)) => Some(result),
                _ => None,
            },
        }
    }

    /// Forget `id`: its reply (now or later) is discarded. Frees its
    /// in-flight slot once answered.
    pub fn forget(&mut self, id: RequestId) {
        match self.slots.get(&id.0) {
            Some(Slot::Done(_)) => {
                self.slots.remove(&id.0);
            }
            // Still waiting: keep the slot so the id is not reused before
            // the reply arrives; the reply then frees it.
            Some(Slot::Waiting(_)) => {
                self.slots.insert(id.0, Slot::Forgotten);
            }
            _ => {}
        }
    }

    /// The oldest queued watch event.
    pub fn next_event(&mut self) -> Option<WatchEvent> {
        self.events.pop_front()
    }

    /// Requests queued, in flight or answered but not taken.
    pub fn in_flight(&self) -> usize {
        self.slots.len()
    }

    /// Whether requests wait to be pushed into the ring.
    pub fn has_output(&self) -> bool {
        !self.outbuf.is_empty()
    }

    /// Watch events dropped (queue full or malformed).
    pub fn dropped_events(&self) -> u64 {
        self.dropped_events
    }

    /// Replies that matched no request in flight (ignored).
    pub fn stray_replies(&self) -> u64 {
        self.stray_replies
    }

    /// Why the client stopped, if it did.
    pub fn stopped(&self) -> Option<Error> {
        self.stopped
    }
}

/// `path\0`, after checking the characters and length xenstored accepts.
fn path_arg(path: &str) -> Result<Vec<u8>, Error> {
    check_path(path)?;
    let mut v = Vec::with_capacity(path.len() + 1);
    v.extend_from_slice(path.as_bytes());
    v.push(0);
    Ok(v)
}

/// xenstore.txt: characters `[A-Za-z0-9-/_@]`, absolute paths ≤ 3072
/// bytes, relative ≤ 2048.
pub fn check_path(path: &str) -> Result<(), Error> {
    let max = if path.starts_with('/') {
        XENSTORE_ABS_PATH_MAX
    } else {
        XENSTORE_REL_PATH_MAX
    };
    let valid = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'/' | b'_' | b'@');
    if path.is_empty() || path.len() > max || !path.bytes().all(valid) {
        return Err(Error::InvalidPath);
    }
    Ok(())
}

fn path_token(path: &str, token: &str) -> Result<Vec<u8>, Error> {
    let mut v = path_arg(path)?;
    if token.as_bytes().contains(&0) || v.len() + token.len() + 1 > XENSTORE_PAYLOAD_MAX {
        return Err(Error::InvalidArgument);
    }
    v.extend_from_slice(token.as_bytes());
    v.push(0);
    Ok(v)
}

fn decimal_arg(n: u64) -> Vec<u8> {
    let mut v = Vec::new();
    push_decimal(&mut v, n);
    v.push(0);
    v
}

/// `path\0token\0` (xs_wire.h XS_WATCH_PATH, XS_WATCH_TOKEN); `None` if
/// malformed. Some servers omit the last nul; extra strings are ignored.
fn parse_event(payload: &[u8]) -> Option<WatchEvent> {
    let mut parts = payload.split(|b| *b == 0);
    let path = parts.next().filter(|p| !p.is_empty())?;
    let token = parts.next()?;
    Some(WatchEvent {
        path: String::from_utf8(path.to_vec()).ok()?,
        token: String::from_utf8(token.to_vec()).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::XsErrno;
    use core::cell::RefCell;

    fn reply(ty: MsgType, req_id: u32, payload: &[u8]) -> Vec<u8> {
        wire::encode(ty, req_id, 0, payload).expect("small")
    }

    /// Put `bytes` in the response ring as a server would.
    fn serve(page: &mut RefCell<[u8; 4096]>, bytes: &[u8]) {
        let prod = page.load_u32(ring::RSP_PROD);
        for (i, b) in bytes.iter().enumerate() {
            page.get_mut()[ring::RSP + (prod as usize + i) % 1024] = *b;
        }
        page.store_u32(ring::RSP_PROD, prod.wrapping_add(bytes.len() as u32));
    }

    #[test]
    fn a_read_goes_out_and_its_reply_comes_back() {
        let mut page = RefCell::new([0u8; 4096]);
        let mut c = Client::default();
        let id = c.read(TxId::NONE, "/a").expect("queued");
        let p = c.poll(&mut page).expect("poll");
        assert!(p.notify);
        assert_eq!(&page.get_mut()[16..19], b"/a\0");
        assert_eq!(page.load_u32(ring::REQ_PROD), 19);
        serve(&mut page, &reply(MsgType::Read, id.0, b"v"));
        let p = c.poll(&mut page).expect("poll");
        assert_eq!(p.replies, 1);
        assert_eq!(c.take_reply(id), Some(Ok(Reply::Value(b"v".to_vec()))));
        assert_eq!(c.take_reply(id), None);
        assert_eq!(c.in_flight(), 0);
    }

    #[test]
    fn events_errors_and_strays_are_sorted() {
        let mut page = RefCell::new([0u8; 4096]);
        let mut c = Client::default();
        let id = c.rm(TxId::NONE, "/a").expect("queued");
        c.poll(&mut page).expect("poll");
        let mut bytes = reply(MsgType::WatchEvent, 0, b"/a\0tok\0");
        bytes.extend(reply(MsgType::Write, 999, b"OK\0"));
        bytes.extend(reply(MsgType::Error, id.0, b"ENOENT\0"));
        serve(&mut page, &bytes);
        let p = c.poll(&mut page).expect("poll");
        assert_eq!((p.replies, p.events), (1, 1));
        assert_eq!(c.take_reply(id), Some(Err(Error::Xs(XsErrno::Enoent))));
        assert_eq!(
            c.next_event(),
            Some(WatchEvent {
                path: "/a".into(),
                token: "tok".into()
            })
        );
        assert_eq!(c.stray_replies(), 1);
    }

    #[test]
    fn a_too_long_reply_stops_the_client() {
        let mut page = RefCell::new([0u8; 4096]);
        let mut c = Client::default();
        let id = c.read(TxId::NONE, "/a").expect("queued");
        c.poll(&mut page).expect("poll");
        let mut hdr = reply(MsgType::Read, id.0, b"");
        hdr[12..16].copy_from_slice(&5000u32.to_le_bytes());
        serve(&mut page, &hdr);
        assert_eq!(c.poll(&mut page), Err(Error::Malformed(Malformed::TooLong)));
        assert_eq!(
            c.take_reply(id),
            Some(Err(Error::Malformed(Malformed::TooLong)))
        );
        assert_eq!(c.poll(&mut page), Err(Error::Closed));
        assert_eq!(c.read(TxId::NONE, "/a"), Err(Error::Closed));
    }

    #[test]
    fn local_checks_send_nothing() {
        let mut c = Client::new(Limits {
            max_in_flight: 1,
            max_events: 1,
        });
        assert_eq!(c.read(TxId::NONE, ""), Err(Error::InvalidPath));
        assert_eq!(c.read(TxId::NONE, "/a b"), Err(Error::InvalidPath));
        assert_eq!(
            c.read(TxId::NONE, &"a".repeat(2049)),
            Err(Error::InvalidPath)
        );
        assert_eq!(c.watch("/a", "t\0"), Err(Error::InvalidArgument));
        assert_eq!(
            c.write(TxId::NONE, "/a", &[0; 4094]),
            Err(Error::InvalidArgument)
        );
        assert_eq!(
            c.set_perms(TxId::NONE, "/a", &[]),
            Err(Error::InvalidArgument)
        );
        assert!(!c.has_output());
        c.read(TxId::NONE, "/a").expect("one fits");
        assert_eq!(c.read(TxId::NONE, "/b"), Err(Error::Busy));
    }

    #[test]
    fn request_ids_skip_zero_and_live_ids() {
        let mut c = Client {
            next_req_id: u32::MAX,
            ..Client::default()
        };
        let a = c.read(TxId::NONE, "/a").expect("queued");
        let b = c.read(TxId::NONE, "/b").expect("queued");
        assert_eq!((a.0, b.0), (u32::MAX, 1));
        c.next_req_id = u32::MAX;
        let d = c.read(TxId::NONE, "/d").expect("queued");
        assert_eq!(d.0, 2);
    }
}

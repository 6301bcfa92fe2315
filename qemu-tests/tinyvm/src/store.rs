//! A xenstore client over the ring page: one request at a time.
//!
//! Read first: xs_wire.h, docs/misc/xenstore.txt, docs/misc/xenstore-ring.txt.
//! Requests go into `req[]` as `{type, req_id, tx_id, len}` + payload; the
//! replies and watch events come out of `rsp[]`. The xenstore domain is a
//! peer: every reply is framed by `xcp_xs_wire::parse` (a `len` above
//! XENSTORE_PAYLOAD_MAX breaks the stream for good), at most one message is
//! buffered (the client takes only the bytes the message in hand still
//! needs), replies to other request ids are dropped, and nothing here
//! panics on what the peer wrote.

use alloc::vec::Vec;

use xcp_ring::SharedPage;
use xcp_xs_wire::ring::{consume, produce, Ring};
use xcp_xs_wire::{parse, Header, MsgType, Parse, HEADER_LEN, PAYLOAD_MAX};

/// The event channel to the xenstore domain.
pub trait Channel {
    /// Tells the xenstore domain the ring moved.
    fn notify(&mut self);
    /// Waits until the xenstore domain notifies (it may return early: the
    /// caller looks at the ring again either way).
    fn wait(&mut self);
}

/// Why a request got no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// xenstore answered `XS_ERROR` with this errno (`None`: a name this
    /// client does not know).
    Refused(Option<xcp_xs_wire::Errno>),
    /// The ring's indexes or the message stream make no sense: the
    /// conversation is over.
    Broken,
    /// The request is larger than XENSTORE_PAYLOAD_MAX.
    TooLong,
}

/// The client: the ring page, the channel and the message being read.
pub struct Client<P: SharedPage, C: Channel> {
    page: P,
    channel: C,
    /// Bytes of the message being read: never more than one message.
    incoming: Vec<u8>,
    next_req_id: u32,
    /// A watch event arrived (while waiting for a reply, or since the last
    /// [`Client::take_watch_event`]).
    watch_fired: bool,
    broken: bool,
}

impl<P: SharedPage, C: Channel> Client<P, C> {
    /// A client of the ring `page`, notified through `channel`.
    pub fn new(page: P, channel: C) -> Self {
        Client {
            page,
            channel,
            incoming: Vec::new(),
            next_req_id: 1,
            watch_fired: false,
            broken: false,
        }
    }

    /// `XS_WRITE path value`.
    pub fn write(&mut self, path: &str, value: &str) -> Result<(), StoreError> {
        let payload = [path.as_bytes(), b"\0", value.as_bytes()];
        self.request(MsgType::Write, &payload).map(drop)
    }

    /// `XS_READ path`: the value.
    pub fn read(&mut self, path: &str) -> Result<Vec<u8>, StoreError> {
        self.request(MsgType::Read, &[path.as_bytes(), b"\0"])
    }

    /// `XS_WATCH path token`. xenstore fires the watch once at once.
    pub fn watch(&mut self, path: &str, token: &str) -> Result<(), StoreError> {
        let payload = [path.as_bytes(), b"\0", token.as_bytes(), b"\0"];
        self.request(MsgType::Watch, &payload).map(drop)
    }

    /// Whether a watch event came since the last call (and forgets it).
    pub fn take_watch_event(&mut self) -> bool {
        core::mem::take(&mut self.watch_fired)
    }

    /// Waits for the next watch event (replies to nobody are dropped).
    pub fn wait_watch_event(&mut self) -> Result<(), StoreError> {
        while !self.take_watch_event() {
            let (header, _) = self.next_message()?;
            if header.ty == MsgType::WatchEvent {
                self.watch_fired = true;
            }
        }
        Ok(())
    }

    /// Sends one request and returns its reply's payload.
    fn request(&mut self, ty: MsgType, payload: &[&[u8]]) -> Result<Vec<u8>, StoreError> {
        if self.broken {
            return Err(StoreError::Broken);
        }
        let len: usize = payload.iter().map(|p| p.len()).sum();
        if len > PAYLOAD_MAX {
            return Err(StoreError::TooLong);
        }
        let req_id = self.next_req_id;
        self.next_req_id = self.next_req_id.wrapping_add(1);
        let header = Header {
            ty,
            req_id,
            tx_id: 0,
            // `len <= PAYLOAD_MAX`: exact.
            len: len as u32,
        };
        let mut message = Vec::with_capacity(HEADER_LEN + len);
        message.extend_from_slice(&header.emit());
        for part in payload {
            message.extend_from_slice(part);
        }
        self.send(&message)?;
        loop {
            let (reply, body) = self.next_message()?;
            match reply.ty {
                MsgType::WatchEvent => self.watch_fired = true,
                _ if reply.req_id != req_id => {}
                MsgType::Error => {
                    let name = body.split(|&b| b == 0).next().unwrap_or(&[]);
                    return Err(StoreError::Refused(xcp_xs_wire::Errno::from_name(name)));
                }
                _ => return Ok(body),
            }
        }
    }

    /// Puts all of `bytes` into `req[]`, waiting for room.
    fn send(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        let mut sent = 0;
        while sent < bytes.len() {
            let n = produce(&self.page, Ring::Req, &bytes[sent..]).map_err(|_| self.break_off())?;
            if n > 0 {
                sent += n;
                self.channel.notify();
            } else {
                self.channel.wait();
            }
        }
        Ok(())
    }

    /// Reads the next whole message: its header and payload.
    fn next_message(&mut self) -> Result<(Header, Vec<u8>), StoreError> {
        if self.broken {
            return Err(StoreError::Broken);
        }
        loop {
            match parse(&self.incoming) {
                Parse::Message { header, total } => {
                    let body = self.incoming.get(HEADER_LEN..total).unwrap_or(&[]).to_vec();
                    self.incoming.clear();
                    return Ok((header, body));
                }
                Parse::NeedMore(n) => {
                    let got = consume(&self.page, Ring::Rsp, &mut self.incoming, n)
                        .map_err(|_| self.break_off())?;
                    if got > 0 {
                        self.channel.notify();
                    } else {
                        self.channel.wait();
                    }
                }
                Parse::Bad(_) => return Err(self.break_off()),
            }
        }
    }

    fn break_off(&mut self) -> StoreError {
        self.broken = true;
        self.incoming = Vec::new();
        StoreError::Broken
    }
}

#[cfg(test)]
pub(crate) mod fake {
    //! A scripted xenstore on the other side of an in-memory ring page.

    use alloc::collections::BTreeMap;
    use alloc::string::String;
    use alloc::vec::Vec;
    use core::cell::RefCell;

    use super::*;

    /// What the fake does after it answered a request.
    pub type Hook = fn(&mut Store);

    /// The server's side: its nodes, its watches, what it was asked.
    #[derive(Default)]
    pub struct Store {
        /// The nodes.
        pub nodes: BTreeMap<String, String>,
        /// `(path, token)` of the watches.
        pub watches: Vec<(String, String)>,
        /// Every request, as `(type, payload)`.
        pub log: Vec<(MsgType, Vec<u8>)>,
        /// Replies and events not yet in `rsp[]`.
        pub pending: Vec<u8>,
        /// Called after each answered request.
        pub hook: Option<Hook>,
        /// Raw bytes put into `rsp[]` before the next answer.
        pub inject: Vec<u8>,
        /// Waits the client made.
        pub waits: usize,
        /// Writes of this path are refused with EACCES.
        pub refuse: Option<&'static str>,
    }

    impl Store {
        /// Sets `path` and fires the watches on it.
        pub fn set(&mut self, path: &str, value: &str) {
            self.nodes.insert(path.into(), value.into());
            let fired: Vec<String> = self
                .watches
                .iter()
                .filter(|(p, _)| p == path)
                .map(|(_, t)| t.clone())
                .collect();
            for token in fired {
                let body = [path.as_bytes(), b"\0", token.as_bytes(), b"\0"].concat();
                self.queue(MsgType::WatchEvent, 0, &body);
            }
        }

        fn queue(&mut self, ty: MsgType, req_id: u32, body: &[u8]) {
            let header = Header {
                ty,
                req_id,
                tx_id: 0,
                len: body.len() as u32,
            };
            self.pending.extend_from_slice(&header.emit());
            self.pending.extend_from_slice(body);
        }

        fn answer(&mut self, header: Header, body: &[u8]) {
            self.log.push((header.ty, body.to_vec()));
            let mut parts = body.split(|&b| b == 0);
            let path = String::from_utf8_lossy(parts.next().unwrap_or(&[])).into_owned();
            match header.ty {
                MsgType::Write if self.refuse == Some(path.as_str()) => {
                    self.queue(MsgType::Error, header.req_id, b"EACCES\0");
                }
                MsgType::Write => {
                    let value = &body[(path.len() + 1).min(body.len())..];
                    self.set(&path, &String::from_utf8_lossy(value));
                    self.queue(MsgType::Write, header.req_id, b"OK\0");
                }
                MsgType::Read => match self.nodes.get(&path).cloned() {
                    Some(v) => self.queue(MsgType::Read, header.req_id, v.as_bytes()),
                    None => self.queue(MsgType::Error, header.req_id, b"ENOENT\0"),
                },
                MsgType::Watch => {
                    let token = String::from_utf8_lossy(parts.next().unwrap_or(&[])).into_owned();
                    self.queue(MsgType::Watch, header.req_id, b"OK\0");
                    let event = [path.as_bytes(), b"\0", token.as_bytes(), b"\0"].concat();
                    self.watches.push((path, token));
                    self.queue(MsgType::WatchEvent, 0, &event);
                }
                _ => self.queue(MsgType::Error, header.req_id, b"ENOSYS\0"),
            }
            if let Some(hook) = self.hook {
                hook(self);
            }
        }
    }

    /// The channel: each wait runs the server over the page.
    pub struct Server<'a> {
        /// The ring page.
        pub page: &'a RefCell<[u8; 4096]>,
        /// The server's state.
        pub store: &'a RefCell<Store>,
    }

    impl Channel for Server<'_> {
        fn notify(&mut self) {}

        fn wait(&mut self) {
            let mut store = self.store.borrow_mut();
            store.waits += 1;
            assert!(store.waits < 10_000, "the client waits for ever");
            let mut requests = Vec::new();
            consume(&self.page, Ring::Req, &mut requests, 4096).expect("good indexes");
            let mut at = 0;
            while let Parse::Message { header, total } = parse(&requests[at..]) {
                let body = requests[at + HEADER_LEN..at + total].to_vec();
                store.answer(header, &body);
                at += total;
            }
            assert_eq!(at, requests.len(), "whole requests only");
            let inject = core::mem::take(&mut store.inject);
            let mut out = inject;
            out.append(&mut store.pending);
            let n = produce(&self.page, Ring::Rsp, &out).expect("good indexes");
            store.pending = out.split_off(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use core::cell::RefCell;

    use super::fake::{Server, Store};
    use super::*;

    #[test]
    fn write_read_and_errors() {
        let page = RefCell::new([0u8; 4096]);
        let store = RefCell::new(Store::default());
        let mut client = Client::new(
            &page,
            Server {
                page: &page,
                store: &store,
            },
        );
        client.write("data/os_name", "tinyvm").expect("written");
        assert_eq!(client.read("data/os_name").expect("read"), b"tinyvm");
        assert_eq!(
            client.read("nowhere"),
            Err(StoreError::Refused(Some(xcp_xs_wire::Errno::Enoent)))
        );
        let long = alloc::string::String::from_utf8(alloc::vec![b'a'; 5000]).expect("ascii");
        assert_eq!(client.write(&long, ""), Err(StoreError::TooLong));
    }

    #[test]
    fn stray_replies_are_dropped_and_events_remembered() {
        let page = RefCell::new([0u8; 4096]);
        let store = RefCell::new(Store::default());
        let stray = Header {
            ty: MsgType::Read,
            req_id: 99,
            tx_id: 0,
            len: 3,
        };
        let mut bytes = stray.emit().to_vec();
        bytes.extend_from_slice(b"odd");
        store.borrow_mut().inject = bytes;
        let mut client = Client::new(
            &page,
            Server {
                page: &page,
                store: &store,
            },
        );
        client.watch("control/shutdown", "t").expect("watched");
        // The reply comes first, then the watch's first event.
        client
            .wait_watch_event()
            .expect("the watch fires once at once");
        assert!(!client.take_watch_event());
        client.write("x", "1").expect("written");
    }

    #[test]
    fn an_impossible_length_breaks_the_conversation() {
        let page = RefCell::new([0u8; 4096]);
        let store = RefCell::new(Store::default());
        let bad = Header {
            ty: MsgType::Write,
            req_id: 1,
            tx_id: 0,
            len: 70_000,
        };
        store.borrow_mut().inject = bad.emit().to_vec();
        let mut client = Client::new(
            &page,
            Server {
                page: &page,
                store: &store,
            },
        );
        assert_eq!(client.write("a", "b"), Err(StoreError::Broken));
        assert_eq!(client.read("a"), Err(StoreError::Broken));
    }

    #[test]
    fn impossible_ring_indexes_break_the_conversation() {
        let page = RefCell::new([0u8; 4096]);
        page.store_u32(xcp_xs_wire::ring::RSP_PROD, 5000);
        let store = RefCell::new(Store::default());
        let mut client = Client::new(
            &page,
            Server {
                page: &page,
                store: &store,
            },
        );
        // The request goes out; its reply cannot be read.
        assert_eq!(client.write("a", "b"), Err(StoreError::Broken));
    }
}

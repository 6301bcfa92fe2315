//! Test harness: an engine, connections by domid, `send!`/`recv!` helpers.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::collections::{BTreeMap, VecDeque};

use xenstore_engine::wire::{self, Header, MsgType, Parse};
use xenstore_engine::{Config, ConnId, Engine};

/// An engine plus the events each connection has received.
pub struct H {
    pub e: Engine,
    pub events: BTreeMap<ConnId, VecDeque<(String, String)>>,
    next_req: u32,
}

impl H {
    pub fn new() -> H {
        H::with(Config::default())
    }

    pub fn with(config: Config) -> H {
        H {
            e: Engine::new(config),
            events: BTreeMap::new(),
            next_req: 1,
        }
    }

    /// A dom0 socket connection.
    pub fn dom0(&mut self) -> ConnId {
        self.e.connect(0)
    }

    /// Introduce `domid` (from dom0) and return its ring connection.
    #[track_caller]
    pub fn domu(&mut self, domid: u16) -> ConnId {
        let c = self.e.connect(0);
        let r = self.send(
            c,
            MsgType::Introduce,
            0,
            format!("{domid}\0{}\0{}\0", 1000 + domid, 10).as_bytes(),
        );
        assert_eq!(r, Ok(b"OK\0".to_vec()), "introduce {domid}");
        self.e.close(c);
        self.e.domain_conn(domid).expect("introduced")
    }

    /// Send one request, collect all output; Ok(reply payload) or Err(errno).
    #[track_caller]
    pub fn send(
        &mut self,
        conn: ConnId,
        ty: MsgType,
        tx_id: u32,
        payload: &[u8],
    ) -> Result<Vec<u8>, String> {
        let req_id = self.next_req;
        self.next_req += 1;
        let msg = wire::encode(ty, req_id, tx_id, payload);
        let taken = self
            .e
            .receive(conn, &msg)
            .map_err(|e| format!("BAD {e:?}"))?;
        assert_eq!(taken, msg.len(), "flow control stopped a single request");
        let mut reply = None;
        for c in self.conns() {
            for (h, body) in self.drain(c) {
                if h.ty == MsgType::WatchEvent {
                    let mut parts = body.split(|b| *b == 0);
                    let p = String::from_utf8_lossy(parts.next().unwrap_or(&[])).into_owned();
                    let t = String::from_utf8_lossy(parts.next().unwrap_or(&[])).into_owned();
                    self.events.entry(c).or_default().push_back((p, t));
                } else {
                    assert_eq!(c, conn, "reply on the wrong connection");
                    assert_eq!(h.req_id, req_id);
                    assert_eq!(h.tx_id, tx_id);
                    assert!(reply.is_none(), "two replies to one request");
                    reply = Some((h, body));
                }
            }
        }
        let (h, body) = reply.expect("every request gets a reply");
        if h.ty == MsgType::Error {
            let s = String::from_utf8_lossy(body.strip_suffix(&[0]).expect("nul-terminated error"));
            Err(s.into_owned())
        } else {
            assert_eq!(h.ty, ty, "reply type echoes the request");
            Ok(body)
        }
    }

    fn conns(&self) -> Vec<ConnId> {
        (0..4096)
            .map(ConnId)
            .filter(|c| self.e.is_open(*c))
            .collect()
    }

    /// Take every queued message of `conn`.
    pub fn drain(&mut self, conn: ConnId) -> Vec<(Header, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(bytes) = self.e.output(conn) {
            let bytes = bytes.to_vec();
            let Parse::Message { header, total } = wire::parse(&bytes) else {
                panic!("engine emitted a partial message")
            };
            assert_eq!(total, bytes.len());
            assert!(
                bytes.len() <= wire::HEADER_LEN + wire::PAYLOAD_MAX,
                "oversize output"
            );
            out.push((header, bytes[wire::HEADER_LEN..].to_vec()));
            self.e.consume_output(conn, bytes.len());
        }
        out
    }

    /// Next watch event of `conn`.
    pub fn event(&mut self, conn: ConnId) -> Option<(String, String)> {
        self.events.get_mut(&conn)?.pop_front()
    }
}

/// Send a request and expect a result: `send!(h, conn, Type, payload)`
/// gives `Result<Vec<u8>, String>`; `send!(h, conn, tx, Type, payload => "ERR")`
/// and `=> ok` assert.
#[macro_export]
macro_rules! send {
    ($h:expr, $c:expr, $ty:ident, $p:expr) => {
        $h.send($c, xenstore_engine::MsgType::$ty, 0, $p)
    };
    ($h:expr, $c:expr, $ty:ident, $p:expr => ok) => {
        assert_eq!(
            $h.send($c, xenstore_engine::MsgType::$ty, 0, $p),
            Ok(b"OK\0".to_vec())
        )
    };
    ($h:expr, $c:expr, $ty:ident, $p:expr => $err:literal) => {
        assert_eq!(
            $h.send($c, xenstore_engine::MsgType::$ty, 0, $p),
            Err(String::from($err))
        )
    };
    ($h:expr, $c:expr, tx $tx:expr, $ty:ident, $p:expr) => {
        $h.send($c, xenstore_engine::MsgType::$ty, $tx, $p)
    };
}

/// Expect the next watch event of a connection: `recv!(h, c, "/path", "token")`
/// or `recv!(h, c, none)`.
#[macro_export]
macro_rules! recv {
    ($h:expr, $c:expr, none) => {
        assert_eq!($h.event($c), None)
    };
    ($h:expr, $c:expr, $p:expr, $t:expr) => {
        assert_eq!($h.event($c), Some((String::from($p), String::from($t))))
    };
}

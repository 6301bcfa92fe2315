//! A pool of smoltcp TCP sockets listening on one port, driving a [`Relay`]
//! from socket state on every poll.
//!
//! read first: smoltcp `socket::tcp` (states, `recv`, `send_slice`,
//! `close`, `abort`).
//!
//! Each slot is one socket: listening, carrying one relayed connection, or
//! winding down (FIN-WAIT, TIME-WAIT) until it is `Closed` and listens
//! again. The receive buffer size bounds what a client can push before the
//! engine takes it (the engine's `on_client_bytes` return is honoured, so
//! untaken bytes stay in the window: backpressure); the send buffer bounds
//! reply bytes in TCP. Thin wiring only: every decision is the engine's.

use alloc::vec;
use alloc::vec::Vec;

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::wire::IpAddress;

use crate::engine::{CloseKind, ConnId, Relay, Source};

/// Sizes of the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// The TCP port (80).
    pub port: u16,
    /// Sockets in the pool: most connections in any state at once
    /// (keep it above the engine's `max_connections` to leave room for
    /// sockets in TIME-WAIT).
    pub sockets: usize,
    /// Receive buffer per socket (the advertised window).
    pub rx_buffer: usize,
    /// Send buffer per socket.
    pub tx_buffer: usize,
    /// A socket stuck in SYN-RECEIVED (the handshake's last ACK never
    /// came: a spoofed or lost SYN flood) this long is reset and listens
    /// again, freeing its slot.
    pub handshake_timeout_ms: u64,
    /// After a graceful close, bytes the client still sends (the rest of
    /// a request body refused at its head) are read and dropped for at
    /// most this long, so the client finishes sending and reads the
    /// reply (Apache's lingering close); then the socket is reset.
    pub linger_ms: u64,
}

impl Default for PoolConfig {
    /// netdom's budget (`budget.rs`).
    fn default() -> Self {
        PoolConfig {
            port: 80,
            sockets: crate::budget::SOCKETS,
            rx_buffer: crate::budget::SOCKET_RX,
            tx_buffer: crate::budget::SOCKET_TX,
            handshake_timeout_ms: 5_000,
            linger_ms: 30_000,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    handle: SocketHandle,
    conn: Option<ConnId>,
    /// When this slot was first seen in SYN-RECEIVED.
    handshake_since: Option<u64>,
    /// When the engine closed this slot's connection gracefully.
    closed_since: Option<u64>,
}

/// The listener pool.
#[derive(Debug)]
pub struct Listener {
    port: u16,
    handshake_timeout_ms: u64,
    linger_ms: u64,
    slots: Vec<Slot>,
}

/// The per-source key of a remote address. With IPv4 only this is exact;
/// any other family shares one key.
pub fn source_of(addr: IpAddress) -> Source {
    #[allow(
        unreachable_patterns,
        reason = "IPv6 exists when another crate enables smoltcp's proto-ipv6"
    )]
    match addr {
        IpAddress::Ipv4(a) => Source::ipv4(a.octets()),
        _ => Source([0xfe; 16]),
    }
}

impl Listener {
    /// Adds `config.sockets` listening TCP sockets to `sockets`.
    pub fn new(sockets: &mut SocketSet<'_>, config: PoolConfig) -> Listener {
        let slots = (0..config.sockets)
            .map(|_| {
                let rx = tcp::SocketBuffer::new(vec![0; config.rx_buffer]);
                let tx = tcp::SocketBuffer::new(vec![0; config.tx_buffer]);
                let mut socket = tcp::Socket::new(rx, tx);
                // Cannot fail: a fresh socket is closed and the port is
                // not 0 (if it were, the slot retries on every poll).
                let _ = socket.listen(config.port);
                Slot {
                    handle: sockets.add(socket),
                    conn: None,
                    handshake_since: None,
                    closed_since: None,
                }
            })
            .collect();
        Listener {
            port: config.port,
            handshake_timeout_ms: config.handshake_timeout_ms,
            linger_ms: config.linger_ms,
            slots,
        }
    }

    /// Connections currently relayed.
    pub fn connections(&self) -> usize {
        self.slots.iter().filter(|s| s.conn.is_some()).count()
    }

    /// Runs after each `Interface::poll`: closes what the engine ended,
    /// accepts new connections, moves bytes both ways, notices clients
    /// that went away, and re-arms finished sockets.
    pub fn poll(&mut self, sockets: &mut SocketSet<'_>, relay: &mut Relay, now: u64) {
        self.apply_closes(sockets, relay, now);
        for slot in &mut self.slots {
            let socket = sockets.get_mut::<tcp::Socket>(slot.handle);
            let Some(conn) = slot.conn else {
                if linger(slot, socket, now, self.linger_ms) {
                    continue;
                }
                accept_or_rearm(
                    slot,
                    socket,
                    relay,
                    now,
                    (self.port, self.handshake_timeout_ms),
                );
                continue;
            };
            if !relay.is_live(conn) {
                // Ended by the engine: handled by apply_closes below.
                continue;
            }
            // Take only what the engine accepts; the rest stays in the
            // receive buffer and shrinks the window. (Twice at most: the
            // buffer is a ring, `recv` gives one contiguous part.)
            for _ in 0..2 {
                if !socket.can_recv() {
                    break;
                }
                let took = socket
                    .recv(|buf| {
                        let n = relay.on_client_bytes(now, conn, buf);
                        (n, n)
                    })
                    .unwrap_or(0);
                if took == 0 {
                    break;
                }
            }
            while socket.can_send() {
                let n = match relay.poll_client_out(conn) {
                    Some(out) => socket.send_slice(out).unwrap_or(0),
                    None => break,
                };
                if n == 0 {
                    break;
                }
                relay.consume(now, conn, n);
            }
            // FIN received and every byte taken: the request may still be
            // answered; the engine decides when the exchange is over.
            if !socket.may_recv() && socket.recv_queue() == 0 && relay.is_live(conn) {
                relay.on_client_eof(now, conn);
            }
            // The client reset, or the connection can no longer carry
            // replies: it is gone. (A half-close — CLOSE-WAIT — still can.)
            if !socket.may_send() && relay.is_live(conn) {
                relay.on_client_closed(conn);
                slot.conn = None;
                if socket.state() != tcp::State::Closed {
                    socket.abort();
                }
            }
        }
        self.apply_closes(sockets, relay, now);
    }

    fn apply_closes(&mut self, sockets: &mut SocketSet<'_>, relay: &mut Relay, now: u64) {
        while let Some((conn, kind)) = relay.poll_close() {
            let Some(slot) = self.slots.iter_mut().find(|s| s.conn == Some(conn)) else {
                continue;
            };
            slot.conn = None;
            let socket = sockets.get_mut::<tcp::Socket>(slot.handle);
            match kind {
                // FIN after what is already in the send buffer.
                CloseKind::Graceful => {
                    socket.close();
                    slot.closed_since = Some(now);
                }
                CloseKind::Abort => socket.abort(),
            }
        }
    }
}

/// A slot closed gracefully: reads and drops what the client still sends
/// (its window stays open, so it finishes sending and reads the reply)
/// until it closes too, or resets it after `linger_ms`. True while the
/// slot is lingering.
fn linger(slot: &mut Slot, socket: &mut tcp::Socket<'_>, now: u64, linger_ms: u64) -> bool {
    let Some(since) = slot.closed_since else {
        return false;
    };
    let winding_down = matches!(
        socket.state(),
        tcp::State::FinWait1 | tcp::State::FinWait2 | tcp::State::Closing | tcp::State::LastAck
    );
    if !winding_down {
        slot.closed_since = None;
        return false;
    }
    while socket.can_recv() {
        if socket.recv(|b| (b.len(), b.len())).unwrap_or(0) == 0 {
            break;
        }
    }
    if now.saturating_sub(since) >= linger_ms {
        socket.abort();
        slot.closed_since = None;
    }
    true
}

fn accept_or_rearm(
    slot: &mut Slot,
    socket: &mut tcp::Socket<'_>,
    relay: &mut Relay,
    now: u64,
    pool: (u16, u64),
) {
    let (port, handshake_timeout) = pool;
    if socket.state() != tcp::State::SynReceived {
        slot.handshake_since = None;
    }
    match socket.state() {
        // An aborted socket keeps its remote endpoint until its RST is
        // sent; listening earlier would reset it and lose the RST (the
        // client would hang on).
        tcp::State::Closed if socket.remote_endpoint().is_none() => {
            let _ = socket.listen(port);
        }
        tcp::State::Established | tcp::State::CloseWait => {
            let source = socket
                .remote_endpoint()
                .map_or(Source([0; 16]), |e| source_of(e.addr));
            match relay.on_accept(now, source) {
                Ok(conn) => slot.conn = Some(conn),
                Err(_) => socket.abort(),
            }
        }
        tcp::State::SynReceived => {
            let since = *slot.handshake_since.get_or_insert(now);
            if now.saturating_sub(since) >= handshake_timeout {
                socket.abort();
                slot.handshake_since = None;
            }
        }
        // Listening, or winding down after a close.
        _ => {}
    }
}

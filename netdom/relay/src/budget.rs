//! netdom's memory budget: every bound a client (or dom0) can drive in the
//! relay, derived from netdom's memory and written down in one place.
//!
//! netdom is a 28 MiB PV domain ([`NETDOM_BYTES`], `memory_mib = 28` in
//! boot/platform.toml). Not heap: the kernel image, page tables, and the
//! 64 single frames the runtime keeps apart (netdom shares no page of its
//! own: dom0 grants the relay channel, DMA buffers come from the heap):
//! [`RESERVED_BYTES`]. The heap, [`HEAP_BYTES`] = 26 MiB as planned (a
//! 28 MiB domain with a 0.4 MiB image gets ≈ 27 MiB), is split as
//! follows and asserted to fit below:
//!
//! | part                              | bound       | where |
//! |-----------------------------------|-------------|-------|
//! | TCP sockets                       | 2.5 MiB     | [`SOCKETS`] × ([`SOCKET_RX`] + [`SOCKET_TX`]) |
//! | socket state (smoltcp)            | 160 KiB     | [`SOCKETS`] × [`SOCKET_STATE`] |
//! | relay buffers, both ways, all     | 4 MiB       | [`MAX_TOTAL`] (`Config::max_total`, counting the memory held: `chunks.rs`) |
//! | relayed connections' state        | 64 KiB      | [`MAX_CONNECTIONS`] × [`CONN_STATE`] |
//! | virtio-net queues and buffers     | 1 MiB       | [`NIC_BYTES`] (256-entry queues, 2 KiB buffers) |
//! | interface, ARP, DHCP, headroom    | 1 MiB       | [`STACK_BYTES`] |
//! | 64 guest VIFs, bridge, stack queue | ≈ 13.3 MiB | [`VIFS_BYTES`] |
//! | total                             | ≈ 22 MiB    | ≤ [`HEAP_BYTES`] = 26 MiB |
//!
//! A client can hold: one socket while it connects (SYN-RECEIVED ends after
//! `PoolConfig::handshake_timeout_ms`), one of [`MAX_CONNECTIONS`] relayed
//! connections ([`MAX_PER_SOURCE`] from one address), [`MAX_IN_PER_CONN`]
//! bytes on their way to dom0 (then TCP backpressure) and
//! [`MAX_OUT_PER_CONN`] of replies (then its connection is aborted). A
//! request head must end within 10 s, an announced body within 20 s plus
//! 1 s per KiB received, and any connection must move within 300 s. At a
//! cap, a new connection evicts the one that has stalled longest (≥ 1 s),
//! so 1,000 connections that send a head and trickle a body hold no more
//! than these bounds and a real client still gets in. Sockets beyond
//! [`MAX_CONNECTIONS`] leave room to accept (and evict for) a new
//! connection while the relayed ones are all busy, and for TIME-WAIT.

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;

/// netdom's memory, bytes.
pub const NETDOM_BYTES: usize = 28 * MIB;
/// Not heap: image and page tables (≤ 1.5 MiB) and the single-frame pool
/// (64 frames).
pub const RESERVED_BYTES: usize = 2 * MIB;
/// netdom's heap as the budget plans it, bytes.
pub const HEAP_BYTES: usize = NETDOM_BYTES - RESERVED_BYTES;

/// Relayed connections at once (dom0 takes up to
/// `xcp_relay::MAX_CONNECTIONS` = 256 per link).
pub const MAX_CONNECTIONS: usize = 128;
/// Relayed connections from one source address.
pub const MAX_PER_SOURCE: usize = 96;
/// TCP sockets in the listener pool.
pub const SOCKETS: usize = MAX_CONNECTIONS + 32;
/// Receive buffer per socket (the advertised window), bytes.
pub const SOCKET_RX: usize = 8 * KIB;
/// Send buffer per socket, bytes.
pub const SOCKET_TX: usize = 8 * KIB;
/// smoltcp's state per socket (assembler, timers), bytes, with headroom.
pub const SOCKET_STATE: usize = KIB;
/// Client bytes buffered per connection before dom0 takes them.
pub const MAX_IN_PER_CONN: usize = 4 * xcp_relay::MAX_CHUNK;
/// Reply bytes buffered per connection before its client reads them.
pub const MAX_OUT_PER_CONN: usize = 2 * MIB;
/// Bytes buffered both ways over all connections.
pub const MAX_TOTAL: usize = 4 * MIB;
/// The relay's state per connection (`Conn`, its queues' headers, the
/// head tracker, map entry), bytes, with headroom.
pub const CONN_STATE: usize = 512;
/// The virtio-net driver: two 256-entry queues and 256 receive buffers of
/// 2 KiB, transmit buffers in flight.
pub const NIC_BYTES: usize = MIB;
/// The interface, its neighbour cache, DHCP and allocator slack.
pub const STACK_BYTES: usize = MIB;
/// Guest VIFs netdom serves at once (a 65th backend directory is refused
/// with `hotplug-error`).
pub const MAX_VIFS: usize = 64;
/// What one VIF's frontend can make netdom hold in packets and copy
/// plans (`xcp_netback::Config::budget_bytes`: half each way; at least
/// `xcp_netback::MIN_BUDGET`, checked where the switch is built).
pub const VIF_BYTES: usize = 192 * KIB;
/// A VIF's fixed state beside its budget: the engine, its queues of
/// pending responses (256 × 2 rings), its bridge port, its xenstore paths.
pub const VIF_STATE: usize = 16 * KIB;
/// Frames the bridge queues for netdom's own stack, bytes.
pub const STACK_QUEUE_BYTES: usize = 256 * KIB;
/// The bridge's learned MAC table (16 B an entry: 4,096 MACs).
pub const MAC_TABLE_BYTES: usize = 64 * KIB;
/// Every VIF busy at once, the bridge and its queue.
pub const VIFS_BYTES: usize =
    MAX_VIFS * (VIF_BYTES + VIF_STATE) + STACK_QUEUE_BYTES + MAC_TABLE_BYTES;

/// The parts, summed.
pub const TOTAL_BYTES: usize = SOCKETS * (SOCKET_RX + SOCKET_TX + SOCKET_STATE)
    + MAX_TOTAL
    + MAX_CONNECTIONS * CONN_STATE
    + NIC_BYTES
    + STACK_BYTES
    + VIFS_BYTES;

const _: () = assert!(
    TOTAL_BYTES <= HEAP_BYTES,
    "netdom's budget must fit its heap"
);
const _: () = assert!(MAX_CONNECTIONS <= xcp_relay::MAX_CONNECTIONS);
const _: () = assert!(MAX_PER_SOURCE < MAX_CONNECTIONS);
const _: () = assert!(SOCKETS > MAX_CONNECTIONS, "room to accept and evict");
const _: () = assert!(MAX_OUT_PER_CONN + MAX_IN_PER_CONN <= MAX_TOTAL);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures() {
        assert_eq!(HEAP_BYTES, 26 * MIB);
        assert_eq!(SOCKETS * (SOCKET_RX + SOCKET_TX), 2 * MIB + MIB / 2);
        assert_eq!(VIFS_BYTES / KIB, 13632, "≈ 13.3 MiB for 64 busy VIFs");
        assert_eq!(TOTAL_BYTES / KIB, 22560, "≈ 22 MiB");
    }
}

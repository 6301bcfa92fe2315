//! The XenAPI relay protocol: how the domain that terminates HTTP (netdom)
//! hands client byte streams to the toolstack in dom0 over an inter-domain
//! channel, and gets replies back. The toolstack never sees raw network
//! traffic: only per-connection byte streams, which the relay domain bounds.
//!
//! Messages travel as postcard over `xcp-channel`. A connection is a number
//! the relay picks; the toolstack keeps a bounded buffer per connection.
//! Postcard numbers variants by position: new variants go at the end of
//! their enum, so both ends of an older build still agree on the rest.
//!
//! Besides the streams, dom0 can ask the relay for its counters
//! ([`FromToolstack::StatsRequest`], answered by [`ToToolstack::Stats`]):
//! the operator's `stats` command, so nothing periodic goes to the log.
//!
//! The relay says when it serves ([`ToToolstack::Ready`]: its listener is
//! open at that address and port): dom0 announces XenAPI on it, not on the
//! relay's console text.
//!
//! The relay domain is also the network driver domain: it reports its
//! guest VIFs' counters ([`ToToolstack::VifStats`], at most
//! [`MAX_VIF_STATS`] a message, every few seconds while they change) for
//! `VIF_metrics`, and its management interface ([`ToToolstack::Link`]) for
//! the management PIF. dom0 treats both as a peer's claims: bounded,
//! checked, entries for VIFs it does not know ignored.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// Largest `bytes` in one message (the relay splits larger reads).
pub const MAX_CHUNK: usize = 16 * 1024;
/// Most connections the toolstack serves for one relay at once.
pub const MAX_CONNECTIONS: usize = 256;
/// Most entries in one [`ToToolstack::VifStats`] (the relay splits more;
/// dom0 ignores entries beyond it). The largest such message is
/// [`MAX_VIF_STATS_BYTES`], well within a channel message.
pub const MAX_VIF_STATS: usize = 64;
/// The most bytes one [`VifCounters`] takes in postcard: varints of at
/// most 3 (u16), 5 (u32) and 10 (u64) bytes, and a bool.
pub const MAX_VIF_COUNTERS_BYTES: usize = 3 + 5 + 6 * 10 + 1;
/// The most bytes a [`ToToolstack::VifStats`] of [`MAX_VIF_STATS`] entries
/// takes: the variant, the length varint and the entries.
pub const MAX_VIF_STATS_BYTES: usize = 1 + 1 + MAX_VIF_STATS * MAX_VIF_COUNTERS_BYTES;

/// Relay → toolstack.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToToolstack {
    /// Bytes a client sent on connection `conn` (a new number opens one).
    Data {
        /// Connection number.
        conn: u32,
        /// At most [`MAX_CHUNK`] bytes.
        bytes: Vec<u8>,
    },
    /// The client went away.
    Closed {
        /// Connection number.
        conn: u32,
    },
    /// The relay domain's counters, answering [`FromToolstack::StatsRequest`].
    Stats(RelayStats),
    /// The relay listens for XenAPI clients at `address:port` (sent once
    /// its listener is open, and again if the address changes).
    Ready {
        /// The IPv4 address clients reach.
        address: [u8; 4],
        /// The TCP port.
        port: u16,
    },
    /// Counters of guest VIFs the relay domain serves (a batch may span
    /// several messages; at most [`MAX_VIF_STATS`] entries each).
    VifStats(Vec<VifCounters>),
    /// The relay domain's management interface (sent with
    /// [`ToToolstack::Ready`], and again when its address changes).
    Link {
        /// The interface's MAC.
        mac: [u8; 6],
        /// Its IPv4 address.
        address: [u8; 4],
        /// The prefix length of its subnet (at most 32).
        prefix: u8,
        /// The default gateway, if any.
        gateway: Option<[u8; 4]>,
        /// The address came from DHCP (else it is static).
        dhcp: bool,
    },
}

/// One guest VIF's counters, each since its backend was made (a restarted
/// relay domain starts again from 0). As netback names them: rx is
/// towards the guest, tx from the guest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VifCounters {
    /// The guest's domain.
    pub domid: u16,
    /// The VIF's device number (its xenstore `devid`).
    pub devid: u32,
    /// Bytes delivered to the guest.
    pub rx_bytes: u64,
    /// Packets delivered to the guest.
    pub rx_packets: u64,
    /// Bytes the guest sent.
    pub tx_bytes: u64,
    /// Packets the guest sent.
    pub tx_packets: u64,
    /// Packets for the guest dropped.
    pub rx_dropped: u64,
    /// Packets from the guest dropped.
    pub tx_dropped: u64,
    /// The frontend is connected now.
    pub connected: bool,
}

/// A relay domain's counters, each since it booted (connections: now).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayStats {
    /// Wake-ups with a NIC interrupt pending.
    pub nic_interrupts: u64,
    /// Wake-ups at a deadline (the safety poll, a timer), not an event.
    pub timer_wakeups: u64,
    /// Client connections open now.
    pub connections: u32,
    /// Client connections accepted.
    pub accepted: u64,
    /// Client connections refused at accept (a limit was reached).
    pub refused: u64,
    /// The relay domain's memory (appended last: older fields keep their
    /// place on the wire).
    pub memory: MemoryFigures,
}

/// A domain's memory as its runtime counts it (dom0's `mem` command):
/// bytes of heap and single frames, each in use now and at most.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryFigures {
    /// Bytes given to the heap at boot.
    pub heap_bytes: u64,
    /// Heap bytes allocated now.
    pub heap_in_use: u64,
    /// The most heap bytes allocated at once.
    pub heap_peak: u64,
    /// Frames the frame allocator manages.
    pub frames: u64,
    /// Frames handed out now.
    pub frames_in_use: u64,
    /// The most frames handed out at once.
    pub frames_peak: u64,
}

/// Toolstack → relay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FromToolstack {
    /// Bytes to send to the client of `conn`.
    Data {
        /// Connection number.
        conn: u32,
        /// At most [`MAX_CHUNK`] bytes.
        bytes: Vec<u8>,
    },
    /// Close `conn` after the data sent before this message.
    Close {
        /// Connection number.
        conn: u32,
    },
    /// Send your counters: one [`ToToolstack::Stats`] answers every
    /// request that came before it.
    StatsRequest,
    /// From the data sent after this message on, `conn` is a raw byte
    /// stream both ways (a text console attached with `CONNECT`): no
    /// longer HTTP requests, so the relay stops timing request heads and
    /// bodies on it and never evicts it for a new connection. Its idle
    /// timeout still applies.
    Stream {
        /// Connection number.
        conn: u32,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_through_postcard() {
        let to = ToToolstack::Data {
            conn: 7,
            bytes: alloc::vec![1, 2, 3],
        };
        let bytes = postcard::to_allocvec(&to).unwrap();
        assert_eq!(postcard::from_bytes::<ToToolstack>(&bytes).unwrap(), to);
        let from = FromToolstack::Close { conn: 9 };
        let bytes = postcard::to_allocvec(&from).unwrap();
        assert_eq!(postcard::from_bytes::<FromToolstack>(&bytes).unwrap(), from);
        assert!(postcard::from_bytes::<ToToolstack>(&[9, 9, 9]).is_err());
    }

    #[test]
    fn stats_round_trip_and_older_variants_keep_their_numbers() {
        let stats = ToToolstack::Stats(RelayStats {
            nic_interrupts: 123,
            timer_wakeups: u64::MAX,
            connections: 3,
            accepted: 70_000,
            refused: 0,
            memory: MemoryFigures {
                heap_bytes: 8 << 20,
                heap_in_use: 300_000,
                heap_peak: 1 << 20,
                frames: 1024,
                frames_in_use: 12,
                frames_peak: 40,
            },
        });
        let bytes = postcard::to_allocvec(&stats).unwrap();
        assert_eq!(bytes[0], 2, "Stats is appended after Data and Closed");
        assert_eq!(postcard::from_bytes::<ToToolstack>(&bytes).unwrap(), stats);
        // The memory figures follow the older counters: an answer without
        // them starts with the same bytes.
        let older = ToToolstack::Stats(RelayStats {
            memory: MemoryFigures::default(),
            ..match stats {
                ToToolstack::Stats(s) => s,
                _ => unreachable!(),
            }
        });
        let older = postcard::to_allocvec(&older).unwrap();
        let tail = postcard::to_allocvec(&MemoryFigures::default()).unwrap();
        assert_eq!(tail, [0; 6]);
        let prefix = &older[..older.len() - tail.len()];
        assert_eq!(&bytes[..prefix.len()], prefix);
        let request = postcard::to_allocvec(&FromToolstack::StatsRequest).unwrap();
        assert_eq!(
            request,
            [2],
            "StatsRequest is appended after Data and Close"
        );
        assert_eq!(
            postcard::from_bytes::<FromToolstack>(&request).unwrap(),
            FromToolstack::StatsRequest
        );
        // The older variants encode as they always did.
        assert_eq!(
            postcard::to_allocvec(&ToToolstack::Closed { conn: 5 }).unwrap(),
            [1, 5]
        );
        assert_eq!(
            postcard::to_allocvec(&FromToolstack::Data {
                conn: 1,
                bytes: alloc::vec![7]
            })
            .unwrap(),
            [0, 1, 1, 7]
        );
        // A truncated answer is refused, not misread.
        assert!(postcard::from_bytes::<ToToolstack>(&bytes[..bytes.len() - 1]).is_err());
        assert!(postcard::from_bytes::<FromToolstack>(&[4]).is_err());
        // Stream is appended after StatsRequest.
        assert_eq!(
            postcard::to_allocvec(&FromToolstack::Stream { conn: 7 }).unwrap(),
            [3, 7]
        );
    }

    #[test]
    fn ready_is_appended_after_stats() {
        let ready = ToToolstack::Ready {
            address: [10, 0, 2, 15],
            port: 80,
        };
        let bytes = postcard::to_allocvec(&ready).unwrap();
        // Variant 3, the four octets, port 80 as a varint.
        assert_eq!(bytes, [3, 10, 0, 2, 15, 80]);
        assert_eq!(postcard::from_bytes::<ToToolstack>(&bytes).unwrap(), ready);
        let high = ToToolstack::Ready {
            address: [255; 4],
            port: u16::MAX,
        };
        let bytes = postcard::to_allocvec(&high).unwrap();
        assert_eq!(postcard::from_bytes::<ToToolstack>(&bytes).unwrap(), high);
        assert!(postcard::from_bytes::<ToToolstack>(&bytes[..bytes.len() - 1]).is_err());
        // A port beyond u16 is refused, not truncated.
        assert!(postcard::from_bytes::<ToToolstack>(&[3, 1, 2, 3, 4, 0x80, 0x80, 0x04]).is_err());
    }

    fn full(domid: u16, devid: u32) -> VifCounters {
        VifCounters {
            domid,
            devid,
            rx_bytes: u64::MAX,
            rx_packets: u64::MAX,
            tx_bytes: u64::MAX,
            tx_packets: u64::MAX,
            rx_dropped: u64::MAX,
            tx_dropped: u64::MAX,
            connected: true,
        }
    }

    #[test]
    fn vif_stats_and_link_are_appended_after_ready() {
        let stats = ToToolstack::VifStats(alloc::vec![
            VifCounters {
                domid: 3,
                devid: 0,
                rx_bytes: 1500,
                rx_packets: 1,
                tx_bytes: 60,
                tx_packets: 1,
                rx_dropped: 0,
                tx_dropped: 2,
                connected: true,
            },
            VifCounters::default(),
        ]);
        let bytes = postcard::to_allocvec(&stats).unwrap();
        assert_eq!(
            &bytes[..4],
            [4, 2, 3, 0],
            "variant 4, two entries, domid 3, devid 0"
        );
        assert_eq!(postcard::from_bytes::<ToToolstack>(&bytes).unwrap(), stats);
        assert!(postcard::from_bytes::<ToToolstack>(&bytes[..bytes.len() - 1]).is_err());
        let link = ToToolstack::Link {
            mac: [0x52, 0x54, 0, 0x12, 0x34, 0x56],
            address: [10, 0, 2, 15],
            prefix: 24,
            gateway: Some([10, 0, 2, 2]),
            dhcp: true,
        };
        let bytes = postcard::to_allocvec(&link).unwrap();
        assert_eq!(
            bytes,
            [5, 0x52, 0x54, 0, 0x12, 0x34, 0x56, 10, 0, 2, 15, 24, 1, 10, 0, 2, 2, 1]
        );
        assert_eq!(postcard::from_bytes::<ToToolstack>(&bytes).unwrap(), link);
        let bare = ToToolstack::Link {
            mac: [0; 6],
            address: [0; 4],
            prefix: 0,
            gateway: None,
            dhcp: false,
        };
        let bytes = postcard::to_allocvec(&bare).unwrap();
        assert_eq!(postcard::from_bytes::<ToToolstack>(&bytes).unwrap(), bare);
        // A bool other than 0 or 1 is refused.
        let mut bad = bytes.clone();
        *bad.last_mut().unwrap() = 2;
        assert!(postcard::from_bytes::<ToToolstack>(&bad).is_err());
        // Older variants keep their numbers.
        assert_eq!(
            postcard::to_allocvec(&ToToolstack::Closed { conn: 5 }).unwrap(),
            [1, 5]
        );
    }

    #[test]
    fn a_full_vif_stats_message_stays_within_its_bound() {
        let one = postcard::to_allocvec(&full(u16::MAX, u32::MAX)).unwrap();
        assert_eq!(one.len(), MAX_VIF_COUNTERS_BYTES);
        let entries = (0..MAX_VIF_STATS)
            .map(|i| full(u16::MAX - i as u16, u32::MAX))
            .collect();
        let msg = ToToolstack::VifStats(entries);
        let bytes = postcard::to_allocvec(&msg).unwrap();
        assert_eq!(bytes.len(), MAX_VIF_STATS_BYTES);
        assert_eq!(postcard::from_bytes::<ToToolstack>(&bytes).unwrap(), msg);
        // The channel carries messages of up to 64 KiB
        // (xcp_channel::DEFAULT_MAX_MESSAGE; checked in xcp-netrelay).
        const _: () = assert!(MAX_VIF_STATS_BYTES <= 64 * 1024);
        // A length that claims more entries than the bytes hold is refused
        // (and allocates no more than the message's size).
        assert!(
            postcard::from_bytes::<ToToolstack>(&[4, 0xff, 0xff, 0xff, 0xff, 0x0f, 1]).is_err()
        );
    }
}

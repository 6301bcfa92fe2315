//! The channel side: moves messages between a [`Relay`] and an
//! [`xcp_channel::Channel`] to dom0.
//!
//! read first: `shared/channel/src/lib.rs` (send/flush/recv/take_notify).
//!
//! netdom is the channel's acceptor (dom0 grants the pages). A message the
//! channel refuses with `WouldBlock` is kept here and offered again first,
//! so nothing is lost or reordered. Receiving is bounded per pump
//! ([`MAX_RECV_PER_PUMP`]) so a chatty dom0 cannot monopolise the loop;
//! each message is applied at once, so what dom0 can make us hold is the
//! engine's caps.

use xcp_channel::{Channel, DisconnectReason, Notify, RecvError, SendError, SharedPage};
use xcp_relay::{FromToolstack, ToToolstack};

use crate::engine::Relay;

// The largest VIF counters message fits one channel message.
const _: () = assert!(xcp_relay::MAX_VIF_STATS_BYTES <= xcp_channel::DEFAULT_MAX_MESSAGE);

/// Most messages taken from dom0 in one [`Link::pump`].
pub const MAX_RECV_PER_PUMP: usize = 64;

/// Why the link stopped for good.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkError {
    /// The channel is disconnected (dom0 broke the ring protocol).
    Disconnected(DisconnectReason),
    /// One of our own messages did not encode or was too large (a bug).
    Encode,
}

/// What a pump did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pumped {
    /// Kick dom0's event channel.
    pub notify: Notify,
    /// Work is left (more messages from dom0, or more for dom0 with room
    /// likely): pump again without waiting for an event.
    pub again: bool,
}

/// netdom's end of the relay channel.
pub struct Link<P: SharedPage> {
    channel: Channel<P>,
    stalled: Option<ToToolstack>,
}

impl<P: SharedPage> Link<P> {
    /// A link over `channel`.
    pub fn new(channel: Channel<P>) -> Self {
        Link {
            channel,
            stalled: None,
        }
    }

    /// The channel (for its state).
    pub fn channel(&self) -> &Channel<P> {
        &self.channel
    }

    /// Sends what the relay has for dom0 while the channel takes it, then
    /// applies up to [`MAX_RECV_PER_PUMP`] messages from dom0 at `now`.
    pub fn pump(&mut self, relay: &mut Relay, now: u64) -> Result<Pumped, LinkError> {
        let mut kick = false;
        let mut blocked = false;
        loop {
            let msg = match self.stalled.take() {
                Some(m) => m,
                None => match relay.poll_channel_out() {
                    Some(m) => m,
                    None => break,
                },
            };
            match self.channel.send(&msg) {
                Ok(n) => kick |= n.kick(),
                Err(SendError::WouldBlock(n)) => {
                    kick |= n.kick();
                    self.stalled = Some(msg);
                    blocked = true;
                    break;
                }
                Err(SendError::Disconnected(r)) => return Err(LinkError::Disconnected(r)),
                Err(SendError::TooLarge | SendError::Encode) => return Err(LinkError::Encode),
            }
        }
        if !blocked {
            match self.channel.flush() {
                Ok(n) | Err(SendError::WouldBlock(n)) => kick |= n.kick(),
                Err(SendError::Disconnected(r)) => return Err(LinkError::Disconnected(r)),
                Err(_) => return Err(LinkError::Encode),
            }
        }
        let mut received = 0;
        let mut more_in = false;
        while received < MAX_RECV_PER_PUMP {
            match self.channel.recv::<FromToolstack>() {
                Ok(Some(msg)) => {
                    relay.on_toolstack(now, msg);
                    received += 1;
                }
                Ok(None) => break,
                Err(RecvError::Disconnected(r)) => return Err(LinkError::Disconnected(r)),
            }
        }
        if received == MAX_RECV_PER_PUMP {
            more_in = true;
        }
        kick |= self.channel.take_notify().kick();
        // Receiving may have made connections ready (replies drained).
        let more_out = !blocked && (self.stalled.is_some() || relay.has_channel_out());
        Ok(Pumped {
            notify: if kick { Notify::Kick } else { Notify::Skip },
            again: more_in || more_out,
        })
    }
}

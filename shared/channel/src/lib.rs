//! Inter-domain channel: two byte rings carrying postcard-framed messages.
//!
//! read first: xs_wire.h, docs/misc/xenstore-ring.txt, README.md (layout).
//!
//! The toolstack reaches netdom and stordom through a [`Channel`]: one granted
//! page per direction, each a byte ring ([`byte_ring`]) like the xenstore
//! ring, and messages framed as `u32 LE length + postcard bytes` ([`frame`]).
//! The channel is sans-IO: the caller maps the pages, owns the event channel
//! and kicks it when told to ([`Notify::Kick`]). A message larger than the
//! ring is streamed in pieces; `send` never drops or reorders and returns
//! [`SendError::WouldBlock`] when there is no room. Anything the peer does
//! wrong (indexes out of range, a length over the maximum, an undecodable
//! payload) makes the channel [`DisconnectReason`]-disconnected for good;
//! nothing the peer writes can make it panic.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod byte_ring;
pub mod frame;

use alloc::vec::Vec;

use serde::de::DeserializeOwned;
use serde::Serialize;
pub use xcp_ring::SharedPage;

use byte_ring::{Consumer, PageTooSmall, Producer};
use frame::{BadFrame, FrameParser, Parse, LEN_SIZE};

/// Default maximum payload size of one message (64 KiB).
pub const DEFAULT_MAX_MESSAGE: usize = 64 * 1024;

/// Which end of the channel we are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The end that allocated and granted both pages: `new` zeroes both
    /// headers. Only before the grant references are advertised: once the
    /// peer may run, it may already have set its waiting flag, and zeroing
    /// it loses the peer's wake-up.
    Initiator,
    /// The end that allocated both pages zeroed and granted them: `new`
    /// does not touch them, so it may come after the peer started (the
    /// peer's flags and indexes stay as it left them).
    Prepared,
    /// The end that mapped the peer's grants: the pages are not touched.
    Acceptor,
}

/// Whether the caller must kick the event channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "the peer may sleep until the event channel is kicked"]
pub enum Notify {
    /// The peer may be waiting: send an event.
    Kick,
    /// The peer is awake (or nothing changed): no event needed.
    Skip,
}

impl Notify {
    fn from_bool(kick: bool) -> Self {
        if kick {
            Notify::Kick
        } else {
            Notify::Skip
        }
    }

    /// True for [`Notify::Kick`].
    pub fn kick(self) -> bool {
        self == Notify::Kick
    }
}

/// Why the peer was disconnected; the channel stays disconnected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisconnectReason {
    /// On our transmit page, `prod - cons` went beyond the data size.
    TxIndexOutOfRange,
    /// On our receive page, `prod - cons` went beyond the data size.
    RxIndexOutOfRange,
    /// A frame length over the maximum message size.
    BadLength(u32),
    /// A payload that did not decode as the expected type (or had trailing
    /// bytes).
    BadPayload,
}

/// Why `send` did not accept a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// No room: wait for the event channel, then retry. Bytes of an earlier
    /// message may have been written meanwhile: kick the event channel if
    /// the carried [`Notify`] says so (ignoring it can lose a wake-up).
    WouldBlock(Notify),
    /// Our own message encodes to more than the maximum message size.
    TooLarge,
    /// Our own message could not be encoded by postcard.
    Encode,
    /// The channel is disconnected.
    Disconnected(DisconnectReason),
}

/// Why `recv` returned no message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvError {
    /// The channel is disconnected.
    Disconnected(DisconnectReason),
}

/// The page cannot hold a channel ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetupError;

impl From<PageTooSmall> for SetupError {
    fn from(_: PageTooSmall) -> Self {
        SetupError
    }
}

/// One end of an inter-domain channel over two shared pages.
pub struct Channel<P: SharedPage> {
    tx: Producer<P>,
    rx: Consumer<P>,
    /// The frame being streamed out, and how much of it is written.
    pending: Option<(Vec<u8>, usize)>,
    parser: FrameParser,
    max_message: usize,
    disconnected: Option<DisconnectReason>,
    /// The consumer side freed space while the peer's producer waited.
    kick: bool,
}

impl<P: SharedPage> Channel<P> {
    /// A channel sending on `tx_page` and receiving on `rx_page` (the peer
    /// passes them the other way round), with [`DEFAULT_MAX_MESSAGE`].
    pub fn new(tx_page: P, rx_page: P, role: Role) -> Result<Self, SetupError> {
        if role == Role::Initiator {
            byte_ring::init_header(&tx_page);
            byte_ring::init_header(&rx_page);
        }
        Ok(Channel {
            tx: Producer::new(tx_page)?,
            rx: Consumer::new(rx_page)?,
            pending: None,
            parser: FrameParser::new(DEFAULT_MAX_MESSAGE),
            max_message: DEFAULT_MAX_MESSAGE,
            disconnected: None,
            kick: false,
        })
    }

    /// Sets the maximum payload size of one message, both ways (both ends
    /// must agree). Call before the first message.
    pub fn with_max_message(mut self, max: usize) -> Self {
        self.max_message = max;
        self.parser = FrameParser::new(max);
        self
    }

    /// The maximum payload size of one message.
    pub fn max_message(&self) -> usize {
        self.max_message
    }

    /// Why the channel was disconnected, if it was.
    pub fn disconnected(&self) -> Option<DisconnectReason> {
        self.disconnected
    }

    /// True while an accepted message is still being streamed out; call
    /// [`Self::flush`] when the event channel fires.
    pub fn send_pending(&self) -> bool {
        self.pending.is_some()
    }

    fn disconnect(&mut self, reason: DisconnectReason) -> DisconnectReason {
        // Keep the first reason; give back what we hold.
        let reason = *self.disconnected.get_or_insert(reason);
        self.pending = None;
        reason
    }

    /// Encodes `msg` and starts sending it. `Ok` means accepted: written, or
    /// partly written with the rest sent by later `send`/`flush` calls, in
    /// order. `WouldBlock` means not accepted: retry after an event.
    pub fn send<T: Serialize + ?Sized>(&mut self, msg: &T) -> Result<Notify, SendError> {
        if let Some(reason) = self.disconnected {
            return Err(SendError::Disconnected(reason));
        }
        let mut notify = self.pump()?;
        if self.pending.is_some() {
            return Err(SendError::WouldBlock(notify));
        }
        if self.tx.free().map_err(|_| self.tx_error())? == 0 {
            // Ask for a kick when space appears, then look once more.
            self.tx.set_waiting(true);
            if self.tx.free().map_err(|_| self.tx_error())? == 0 {
                return Err(SendError::WouldBlock(notify));
            }
        }
        let mut frame = Vec::with_capacity(LEN_SIZE + 64);
        frame.extend_from_slice(&[0; LEN_SIZE]);
        let mut frame = postcard::to_extend(msg, frame).map_err(|_| SendError::Encode)?;
        let len = frame.len() - LEN_SIZE;
        if len > self.max_message {
            return Err(SendError::TooLarge);
        }
        let len = u32::try_from(len).map_err(|_| SendError::TooLarge)?;
        frame[..LEN_SIZE].copy_from_slice(&len.to_le_bytes());
        self.pending = Some((frame, 0));
        if self.pump()?.kick() {
            notify = Notify::Kick;
        }
        Ok(notify)
    }

    /// Continues streaming an accepted message. `Ok` when nothing is left to
    /// send; `WouldBlock` while part of it still waits for room.
    pub fn flush(&mut self) -> Result<Notify, SendError> {
        if let Some(reason) = self.disconnected {
            return Err(SendError::Disconnected(reason));
        }
        let notify = self.pump()?;
        if self.pending.is_some() {
            return Err(SendError::WouldBlock(notify));
        }
        Ok(notify)
    }

    fn tx_error(&mut self) -> SendError {
        SendError::Disconnected(self.disconnect(DisconnectReason::TxIndexOutOfRange))
    }

    /// Writes as much of the pending frame as fits; the returned notify also
    /// carries a kick owed by the receive side (one event channel per
    /// channel).
    fn pump(&mut self) -> Result<Notify, SendError> {
        let mut wrote = false;
        while let Some((frame, off)) = &mut self.pending {
            let n = match self.tx.write(&frame[*off..]) {
                Ok(n) => n,
                Err(_) => return Err(self.tx_error()),
            };
            *off += n;
            wrote |= n > 0;
            if *off == frame.len() {
                self.pending = None;
                self.tx.set_waiting(false);
                break;
            }
            if n == 0 {
                // Full: ask for a kick when the peer frees space, then look
                // once more (the peer may have consumed meanwhile).
                self.tx.set_waiting(true);
                match self.tx.free() {
                    Ok(0) => break,
                    Ok(_) => continue,
                    Err(_) => return Err(self.tx_error()),
                }
            }
        }
        let kick = (wrote && self.tx.consumer_waiting()) || core::mem::take(&mut self.kick);
        Ok(Notify::from_bool(kick))
    }

    /// Receives the next whole message, or `None` when none is complete (the
    /// channel then asked the peer to kick us: wait for the event channel).
    /// After receiving, check [`Self::take_notify`]: freeing space may owe
    /// the peer a kick.
    pub fn recv<T: DeserializeOwned>(&mut self) -> Result<Option<T>, RecvError> {
        if let Some(reason) = self.disconnected {
            return Err(RecvError::Disconnected(reason));
        }
        self.rx.set_waiting(false);
        let body = loop {
            match self.pull() {
                Ok(Some(body)) => break body,
                Ok(None) => {}
                Err(reason) => return Err(RecvError::Disconnected(self.disconnect(reason))),
            }
            // RING_FINAL_CHECK: arm the flag, then look once more.
            self.rx.set_waiting(true);
            match self.rx.available() {
                Ok(0) => return Ok(None),
                Ok(_) => self.rx.set_waiting(false),
                Err(_) => {
                    let reason = self.disconnect(DisconnectReason::RxIndexOutOfRange);
                    return Err(RecvError::Disconnected(reason));
                }
            }
        };
        match postcard::take_from_bytes::<T>(&body) {
            Ok((msg, [])) => Ok(Some(msg)),
            _ => Err(RecvError::Disconnected(
                self.disconnect(DisconnectReason::BadPayload),
            )),
        }
    }

    /// Copies bytes out of the receive ring into the parser until a frame
    /// completes or the ring is empty.
    fn pull(&mut self) -> Result<Option<Vec<u8>>, DisconnectReason> {
        let mut chunk = [0u8; 256];
        let mut consumed = false;
        let result = loop {
            let want = self.parser.wanted().clamp(1, chunk.len());
            let n = match self.rx.read(&mut chunk[..want]) {
                Ok(n) => n,
                Err(_) => break Err(DisconnectReason::RxIndexOutOfRange),
            };
            if n == 0 {
                break Ok(None);
            }
            consumed = true;
            // `want` never exceeds what the parser takes, so all n are used.
            match self.parser.feed(&chunk[..n]).1 {
                Parse::NeedMore(_) => {}
                Parse::Message(body) => break Ok(Some(body)),
                Parse::Bad(BadFrame::TooLong(len)) => break Err(DisconnectReason::BadLength(len)),
            }
        };
        if consumed && self.rx.producer_waiting() {
            self.kick = true;
        }
        result
    }

    /// Takes the kick owed to the peer by receiving (it was blocked for
    /// space and we freed some). `send`/`flush` include it too.
    pub fn take_notify(&mut self) -> Notify {
        Notify::from_bool(core::mem::take(&mut self.kick))
    }
}

#[cfg(test)]
mod tests;

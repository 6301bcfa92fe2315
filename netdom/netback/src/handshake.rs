//! The netif xenstore keys: what the backend advertises, what it reads back.
//!
//! read first: xen/include/public/io/netif.h (the "feature-*" and
//! "multi-queue-*" comments), io/xenbus.h.
//!
//! Every frontend value is peer-written and parsed strictly: decimal digits
//! only (no sign, no spaces, no hex), at most 10 of them, optionally one
//! trailing nul (C writers), and within the key's bounds. Booleans are
//! exactly `0` or `1`. Anything else is a [`KeyError`] naming the key, and
//! the engine refuses the connection (the frontend is disconnected; nothing
//! was mapped yet).

use alloc::string::String;
use alloc::vec::Vec;

/// `EVTCHN_FIFO_NR_CHANNELS`: the largest event channel ABI's port count.
pub const MAX_EVTCHN_PORT: u32 = (1 << 17) - 1;

/// What this backend offers (written once, before InitWait).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Features {
    /// `feature-sg`: multi-slot packets both ways.
    pub sg: bool,
    /// `feature-gso-tcpv4`.
    pub gso_tcpv4: bool,
    /// `feature-gso-tcpv6`.
    pub gso_tcpv6: bool,
    /// `feature-ipv6-csum-offload`.
    pub ipv6_csum_offload: bool,
    /// `feature-split-event-channels`.
    pub split_event_channels: bool,
    /// `multi-queue-max-queues`. This engine serves one queue (see
    /// DESIGN.md "Not yet"), so only 1 is accepted.
    pub max_queues: u32,
}

impl Default for Features {
    fn default() -> Self {
        Features {
            sg: true,
            gso_tcpv4: true,
            gso_tcpv6: true,
            ipv6_csum_offload: true,
            split_event_channels: true,
            max_queues: 1,
        }
    }
}

fn flag(b: bool) -> String {
    String::from(if b { "1" } else { "0" })
}

impl Features {
    /// The backend keys to write (relative to the backend's directory), in
    /// order. `feature-rx-copy` is always 1 (the only rx mode we have) and
    /// `feature-rx-flip` always 0.
    pub fn backend_keys(&self) -> Vec<(&'static str, String)> {
        let max = alloc::format!("{}", self.max_queues.clamp(1, 1));
        alloc::vec![
            ("feature-rx-copy", flag(true)),
            ("feature-rx-flip", flag(false)),
            ("feature-sg", flag(self.sg)),
            ("feature-gso-tcpv4", flag(self.gso_tcpv4)),
            ("feature-gso-tcpv6", flag(self.gso_tcpv6)),
            ("feature-ipv6-csum-offload", flag(self.ipv6_csum_offload)),
            (
                "feature-split-event-channels",
                flag(self.split_event_channels)
            ),
            ("multi-queue-max-queues", max),
        ]
    }
}

/// The frontend keys the engine reads once the frontend is Initialised or
/// Connected (relative to the frontend's directory).
pub const FRONTEND_KEYS: [&str; 13] = [
    "tx-ring-ref",
    "rx-ring-ref",
    "event-channel",
    "event-channel-tx",
    "event-channel-rx",
    "request-rx-copy",
    "feature-rx-notify",
    "feature-sg",
    "feature-gso-tcpv4",
    "feature-gso-tcpv6",
    "feature-no-csum-offload",
    "feature-ipv6-csum-offload",
    "multi-queue-num-queues",
];

/// Why a frontend's keys were refused. `key` names the offending key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyError {
    /// A required key is absent.
    Missing(&'static str),
    /// Not a strict decimal number (or longer than 10 digits / overflows u32).
    NotANumber(&'static str),
    /// A boolean other than `0` or `1`.
    NotABool(&'static str),
    /// A number outside the key's bounds (event channel 0, a queue count of
    /// 0 or beyond `multi-queue-max-queues`).
    OutOfRange(&'static str),
    /// A required feature is off (`request-rx-copy`, `feature-rx-notify`).
    Unsupported(&'static str),
}

/// What the frontend asked for, parsed and checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrontendConfig {
    /// Grant of the tx ring page.
    pub tx_ring_ref: u32,
    /// Grant of the rx ring page.
    pub rx_ring_ref: u32,
    /// The frontend's port for tx (the only port unless split).
    pub evtchn_tx: u32,
    /// The frontend's port for rx when split event channels are used.
    pub evtchn_rx: Option<u32>,
    /// The frontend takes multi-slot packets (`feature-sg`) and we offer it.
    pub sg: bool,
    /// GSO TCPv4 both ways (frontend's `feature-gso-tcpv4` and ours).
    pub gso_tcpv4: bool,
    /// GSO TCPv6 both ways.
    pub gso_tcpv6: bool,
    /// The frontend takes packets with a blank IPv4 checksum (not
    /// `feature-no-csum-offload`).
    pub csum_offload: bool,
    /// IPv6 checksum offload both ways.
    pub ipv6_csum_offload: bool,
}

/// Parses a peer's decimal number strictly.
pub fn parse_u32(value: &[u8]) -> Option<u32> {
    let digits = value.strip_suffix(&[0]).unwrap_or(value);
    if digits.is_empty() || digits.len() > 10 {
        return None;
    }
    let mut n: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(d - b'0');
    }
    u32::try_from(n).ok()
}

struct Values<'a> {
    pairs: &'a [(&'a str, &'a [u8])],
}

impl<'a> Values<'a> {
    fn get(&self, key: &str) -> Option<&'a [u8]> {
        self.pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    fn number(&self, key: &'static str) -> Result<Option<u32>, KeyError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => parse_u32(v).map(Some).ok_or(KeyError::NotANumber(key)),
        }
    }

    fn required(&self, key: &'static str) -> Result<u32, KeyError> {
        self.number(key)?.ok_or(KeyError::Missing(key))
    }

    fn boolean(&self, key: &'static str) -> Result<bool, KeyError> {
        match self.get(key) {
            None => Ok(false),
            Some(v) => match v.strip_suffix(&[0]).unwrap_or(v) {
                b"0" => Ok(false),
                b"1" => Ok(true),
                _ => Err(KeyError::NotABool(key)),
            },
        }
    }

    fn port(&self, key: &'static str) -> Result<Option<u32>, KeyError> {
        match self.number(key)? {
            Some(0) => Err(KeyError::OutOfRange(key)),
            Some(p) if p > MAX_EVTCHN_PORT => Err(KeyError::OutOfRange(key)),
            p => Ok(p),
        }
    }
}

impl FrontendConfig {
    /// Parses the frontend's keys (`pairs` holds the keys present, from
    /// [`FRONTEND_KEYS`]; absent keys are left out) against what we offer.
    pub fn parse(pairs: &[(&str, &[u8])], offer: &Features) -> Result<Self, KeyError> {
        let v = Values { pairs };
        // netif.h: "multi-queue-num-queues" set to the number the frontend
        // wishes to use; absent means one queue. 0 is nonsense (an attack
        // class in protocol-notes), and more than we offered is refused.
        if let Some(n) = v.number("multi-queue-num-queues")? {
            if n == 0 || n > offer.max_queues.clamp(1, 1) {
                return Err(KeyError::OutOfRange("multi-queue-num-queues"));
            }
        }
        let tx_ring_ref = v.required("tx-ring-ref")?;
        let rx_ring_ref = v.required("rx-ring-ref")?;
        // "event-channel-tx"/"-rx" when the frontend uses split channels
        // (only if we offered them), else "event-channel".
        let split_tx = v.port("event-channel-tx")?;
        let split_rx = v.port("event-channel-rx")?;
        let (evtchn_tx, evtchn_rx) = match (split_tx, split_rx) {
            (Some(tx), Some(rx)) if offer.split_event_channels => (tx, Some(rx)),
            (Some(_), Some(_)) => return Err(KeyError::Unsupported("event-channel-tx")),
            (Some(_), None) => return Err(KeyError::Missing("event-channel-rx")),
            (None, Some(_)) => return Err(KeyError::Missing("event-channel-tx")),
            (None, None) => (
                v.port("event-channel")?
                    .ok_or(KeyError::Missing("event-channel"))?,
                None,
            ),
        };
        // Only copying rx is implemented: a frontend must ask for it.
        if !v.boolean("request-rx-copy")? {
            return Err(KeyError::Unsupported("request-rx-copy"));
        }
        // Without rx notifications we could never know that buffers were
        // posted (netif.h): Linux netback refuses such frontends too.
        if !v.boolean("feature-rx-notify")? {
            return Err(KeyError::Unsupported("feature-rx-notify"));
        }
        let sg = v.boolean("feature-sg")? && offer.sg;
        let gso_tcpv4 = v.boolean("feature-gso-tcpv4")? && offer.gso_tcpv4;
        let gso_tcpv6 = v.boolean("feature-gso-tcpv6")? && offer.gso_tcpv6;
        let csum_offload = !v.boolean("feature-no-csum-offload")?;
        let ipv6_csum_offload = v.boolean("feature-ipv6-csum-offload")? && offer.ipv6_csum_offload;
        Ok(FrontendConfig {
            tx_ring_ref,
            rx_ring_ref,
            evtchn_tx,
            evtchn_rx,
            sg,
            // GSO packets span slots: without sg they cannot be received.
            gso_tcpv4: gso_tcpv4 && sg,
            gso_tcpv6: gso_tcpv6 && sg,
            csum_offload,
            ipv6_csum_offload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_strict() {
        assert_eq!(parse_u32(b"0"), Some(0));
        assert_eq!(parse_u32(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32(b"12\0"), Some(12));
        for bad in [
            &b""[..],
            b"4294967296",
            b"00000000000",
            b"-1",
            b"+1",
            b" 1",
            b"1 ",
            b"0x10",
            b"1\0\0",
            b"\0",
        ] {
            assert_eq!(parse_u32(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn backend_keys_are_advertised() {
        let keys = Features::default().backend_keys();
        let get = |k: &str| keys.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("feature-rx-copy"), Some("1"));
        assert_eq!(get("feature-sg"), Some("1"));
        assert_eq!(get("feature-gso-tcpv4"), Some("1"));
        assert_eq!(get("feature-gso-tcpv6"), Some("1"));
        assert_eq!(get("feature-ipv6-csum-offload"), Some("1"));
        assert_eq!(get("feature-split-event-channels"), Some("1"));
        assert_eq!(get("multi-queue-max-queues"), Some("1"));
    }
}

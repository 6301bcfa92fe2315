//! The blkif xenstore keys: what the backend advertises, what it reads back.
//!
//! read first: xen/include/public/io/blkif.h ("Backend XenBus Nodes",
//! "Frontend XenBus Nodes", "Multiple hardware queues/rings"), io/xenbus.h.
//!
//! The frontend's keys are read in two rounds: first [`HEADER_KEYS`]
//! (ABI, ring size, queue count), then, once those are known, exactly the
//! per-queue keys they imply ([`ring_keys`]): `ring-ref` (one page) or
//! `ring-ref0..N`, and `event-channel`, at the top level for one queue or
//! under `queue-N/` for several. Every value is peer-written and parsed
//! strictly: decimal digits only (no sign, no spaces, no hex), at most 10,
//! optionally one trailing nul, within the key's bounds; booleans exactly
//! `0` or `1`. Anything else is a [`KeyError`] and the frontend is
//! disconnected (nothing was mapped yet).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::budget::{MAX_INDIRECT_SEGMENTS, MAX_QUEUES, MAX_RING_PAGE_ORDER};
use crate::wire::{VDISK_CDROM, VDISK_READONLY, VDISK_REMOVABLE};

/// `EVTCHN_FIFO_NR_CHANNELS`: the largest event channel ABI's port count.
pub const MAX_EVTCHN_PORT: u32 = (1 << 17) - 1;
/// `sector-size` written at connect: 512 (no `feature-large-sector-size`).
pub const LOGICAL_SECTOR_SIZE: u32 = 512;
/// `physical-sector-size` written at connect when the disk is a whole
/// number of 4 KiB blocks (blkif.h: sectors × sector-size must be a
/// multiple of it), else 512.
pub const PHYSICAL_SECTOR_SIZE: u32 = 4096;

/// Discard as offered (`feature-discard` and its parameters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiscardOffer {
    /// `discard-granularity`, bytes.
    pub granularity: u32,
    /// `discard-alignment`, bytes.
    pub alignment: u32,
    /// `discard-secure`: BLKIF_DISCARD_SECURE is honoured.
    pub secure: bool,
}

/// What this backend offers (written once, before InitWait).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Features {
    /// `feature-flush-cache`.
    pub flush_cache: bool,
    /// `feature-barrier`.
    pub barrier: bool,
    /// `feature-discard` with its parameters (`None`: not offered).
    pub discard: Option<DiscardOffer>,
    /// `feature-persistent`. The engine never maps data grants: every
    /// segment is grant-copied by the board. A frontend that reuses its
    /// grants loses nothing and we hold no mapping on its behalf, so the
    /// offer is free; it only tells Linux blkfront to keep a stable grant
    /// pool (a later map cache could exploit it).
    pub persistent: bool,
    /// `feature-max-indirect-segments` (0: BLKIF_OP_INDIRECT not offered
    /// and the key not written, as blkif.h requires). Clamped to
    /// [`MAX_INDIRECT_SEGMENTS`].
    pub max_indirect_segments: u32,
    /// `max-ring-page-order`, clamped to [`MAX_RING_PAGE_ORDER`].
    pub max_ring_page_order: u32,
    /// `multi-queue-max-queues`, clamped to 1..=[`MAX_QUEUES`].
    pub max_queues: u32,
}

impl Default for Features {
    fn default() -> Self {
        Features {
            flush_cache: true,
            barrier: true,
            discard: Some(DiscardOffer {
                granularity: 4096,
                alignment: 0,
                secure: false,
            }),
            persistent: true,
            max_indirect_segments: MAX_INDIRECT_SEGMENTS,
            max_ring_page_order: MAX_RING_PAGE_ORDER,
            max_queues: MAX_QUEUES,
        }
    }
}

fn flag(b: bool) -> String {
    String::from(if b { "1" } else { "0" })
}

impl Features {
    /// The offer with every bound clamped to what the budget allows.
    pub fn clamped(&self) -> Features {
        Features {
            max_indirect_segments: self.max_indirect_segments.min(MAX_INDIRECT_SEGMENTS),
            max_ring_page_order: self.max_ring_page_order.min(MAX_RING_PAGE_ORDER),
            max_queues: self.max_queues.clamp(1, MAX_QUEUES),
            ..*self
        }
    }

    /// The backend keys to write at init (relative to the backend's
    /// directory), in order.
    pub fn backend_keys(&self) -> Vec<(&'static str, String)> {
        let f = self.clamped();
        let mut keys = alloc::vec![
            ("feature-flush-cache", flag(f.flush_cache)),
            ("feature-barrier", flag(f.barrier)),
            ("feature-discard", flag(f.discard.is_some())),
        ];
        if let Some(d) = f.discard {
            keys.push(("discard-granularity", format!("{}", d.granularity)));
            keys.push(("discard-alignment", format!("{}", d.alignment)));
            keys.push(("discard-secure", flag(d.secure)));
        }
        keys.push(("feature-persistent", flag(f.persistent)));
        if f.max_indirect_segments > 0 {
            keys.push((
                "feature-max-indirect-segments",
                format!("{}", f.max_indirect_segments),
            ));
        }
        keys.push(("max-ring-page-order", format!("{}", f.max_ring_page_order)));
        keys.push(("multi-queue-max-queues", format!("{}", f.max_queues)));
        keys
    }
}

/// `device-type` of the VBD (from the toolstack).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceType {
    /// `disk`.
    #[default]
    Disk,
    /// `cdrom`: VDISK_CDROM | VDISK_REMOVABLE.
    Cdrom,
    /// `floppy` and other removable media: VDISK_REMOVABLE.
    Removable,
}

/// The disk behind the VBD.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskInfo {
    /// Size in 512-byte sectors.
    pub sectors: u64,
    /// `mode = r`: writes and discards are refused (VDISK_READONLY).
    pub readonly: bool,
    /// The device type.
    pub device_type: DeviceType,
}

impl DiskInfo {
    /// The `info` bitmap.
    pub fn info(&self) -> u32 {
        let mut info = match self.device_type {
            DeviceType::Disk => 0,
            DeviceType::Cdrom => VDISK_CDROM | VDISK_REMOVABLE,
            DeviceType::Removable => VDISK_REMOVABLE,
        };
        if self.readonly {
            info |= VDISK_READONLY;
        }
        info
    }

    /// The keys written just before Connected.
    pub fn connect_keys(&self) -> Vec<(&'static str, String)> {
        let per_block = u64::from(PHYSICAL_SECTOR_SIZE / LOGICAL_SECTOR_SIZE);
        let physical = if self.sectors.is_multiple_of(per_block) {
            PHYSICAL_SECTOR_SIZE
        } else {
            LOGICAL_SECTOR_SIZE
        };
        alloc::vec![
            ("sectors", format!("{}", self.sectors)),
            ("info", format!("{}", self.info())),
            ("sector-size", format!("{LOGICAL_SECTOR_SIZE}")),
            ("physical-sector-size", format!("{physical}")),
        ]
    }
}

/// The frontend keys of the first round (relative to its directory).
pub const HEADER_KEYS: [&str; 4] = [
    "protocol",
    "feature-persistent",
    "ring-page-order",
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
    /// A number outside the key's bounds (an order or queue count beyond
    /// the offer, 0 queues, event channel 0).
    OutOfRange(&'static str),
    /// `protocol` other than `x86_64-abi` (the native 64-bit layout) or
    /// `x86_32-abi` (an i386 frontend's).
    Protocol,
}

/// What the first round said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The ring's layout (`protocol`).
    pub abi: Abi,
    /// `ring-page-order` (0 when absent).
    pub ring_page_order: u32,
    /// `multi-queue-num-queues` (1 when absent).
    pub num_queues: u32,
    /// `feature-persistent` of the frontend (recorded, changes nothing).
    pub persistent: bool,
}

/// The layout of a frontend's ring slots (its `protocol` key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Abi {
    /// `x86_64-abi` (or no key): the native layout.
    Native,
    /// `x86_32-abi`: an i386 frontend's packing (`wire::Request32`).
    X86_32,
}

/// One queue's keys, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueConfig {
    /// The ring's grants, page 0 first (`1 << ring_page_order` of them).
    pub ring_refs: Vec<u32>,
    /// The frontend's event channel port.
    pub evtchn: u32,
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

fn get<'a>(pairs: &[(&str, &'a [u8])], key: &str) -> Option<&'a [u8]> {
    pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

fn number(pairs: &[(&str, &[u8])], key: &str, name: &'static str) -> Result<Option<u32>, KeyError> {
    match get(pairs, key) {
        None => Ok(None),
        Some(v) => parse_u32(v).map(Some).ok_or(KeyError::NotANumber(name)),
    }
}

fn boolean(pairs: &[(&str, &[u8])], key: &'static str) -> Result<bool, KeyError> {
    match get(pairs, key) {
        None => Ok(false),
        Some(v) => match v.strip_suffix(&[0]).unwrap_or(v) {
            b"0" => Ok(false),
            b"1" => Ok(true),
            _ => Err(KeyError::NotABool(key)),
        },
    }
}

impl Header {
    /// Parses [`HEADER_KEYS`] (`pairs` holds the present ones) against
    /// what we offer.
    pub fn parse(pairs: &[(&str, &[u8])], offer: &Features) -> Result<Header, KeyError> {
        let offer = offer.clamped();
        // XEN_IO_PROTO_ABI_X86_64; absent means native, which is ours.
        let abi = match get(pairs, "protocol").map(|v| v.strip_suffix(&[0]).unwrap_or(v)) {
            None | Some(b"x86_64-abi") => Abi::Native,
            Some(b"x86_32-abi") => Abi::X86_32,
            Some(_) => return Err(KeyError::Protocol),
        };
        let ring_page_order = number(pairs, "ring-page-order", "ring-page-order")?.unwrap_or(0);
        if ring_page_order > offer.max_ring_page_order {
            return Err(KeyError::OutOfRange("ring-page-order"));
        }
        // blkif.h: "greater than zero, and no more than" what we offered.
        let num_queues =
            number(pairs, "multi-queue-num-queues", "multi-queue-num-queues")?.unwrap_or(1);
        if num_queues == 0 || num_queues > offer.max_queues {
            return Err(KeyError::OutOfRange("multi-queue-num-queues"));
        }
        Ok(Header {
            abi,
            ring_page_order,
            num_queues,
            persistent: boolean(pairs, "feature-persistent")?,
        })
    }
}

fn prefix(header: &Header, queue: u32) -> String {
    if header.num_queues == 1 {
        String::new()
    } else {
        format!("queue-{queue}/")
    }
}

/// The keys of the second round for `header`: per queue, its ring refs
/// then `event-channel`.
pub fn ring_keys(header: &Header) -> Vec<String> {
    let mut keys = Vec::new();
    for q in 0..header.num_queues {
        let p = prefix(header, q);
        if header.ring_page_order == 0 {
            keys.push(format!("{p}ring-ref"));
        } else {
            for i in 0..1u32 << header.ring_page_order {
                keys.push(format!("{p}ring-ref{i}"));
            }
        }
        keys.push(format!("{p}event-channel"));
    }
    keys
}

/// Parses the second round (`pairs`: the present keys of
/// [`ring_keys`]`(header)`) into one [`QueueConfig`] per queue.
pub fn parse_queues(
    pairs: &[(&str, &[u8])],
    header: &Header,
) -> Result<Vec<QueueConfig>, KeyError> {
    let mut queues = Vec::new();
    for q in 0..header.num_queues {
        let p = prefix(header, q);
        let mut ring_refs = Vec::new();
        if header.ring_page_order == 0 {
            let key = format!("{p}ring-ref");
            ring_refs.push(number(pairs, &key, "ring-ref")?.ok_or(KeyError::Missing("ring-ref"))?);
        } else {
            for i in 0..1u32 << header.ring_page_order {
                let key = format!("{p}ring-ref{i}");
                ring_refs
                    .push(number(pairs, &key, "ring-refN")?.ok_or(KeyError::Missing("ring-refN"))?);
            }
        }
        let key = format!("{p}event-channel");
        let evtchn =
            number(pairs, &key, "event-channel")?.ok_or(KeyError::Missing("event-channel"))?;
        if evtchn == 0 || evtchn > MAX_EVTCHN_PORT {
            return Err(KeyError::OutOfRange("event-channel"));
        }
        queues.push(QueueConfig { ring_refs, evtchn });
    }
    Ok(queues)
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
            b"-1",
            b"+1",
            b" 1",
            b"0x10",
            b"1\0\0",
        ] {
            assert_eq!(parse_u32(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn backend_keys_follow_the_offer() {
        let keys = Features::default().backend_keys();
        let get = |k: &str| keys.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("feature-flush-cache"), Some("1"));
        assert_eq!(get("feature-discard"), Some("1"));
        assert_eq!(get("discard-granularity"), Some("4096"));
        assert_eq!(get("feature-max-indirect-segments"), Some("64"));
        assert_eq!(get("max-ring-page-order"), Some("2"));
        assert_eq!(get("multi-queue-max-queues"), Some("4"));
        let bare = Features {
            discard: None,
            max_indirect_segments: 0,
            max_queues: 99,
            max_ring_page_order: 99,
            ..Features::default()
        }
        .backend_keys();
        let get = |k: &str| bare.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("feature-discard"), Some("0"));
        assert_eq!(get("discard-granularity"), None);
        assert_eq!(get("feature-max-indirect-segments"), None);
        assert_eq!(get("multi-queue-max-queues"), Some("4"));
        assert_eq!(get("max-ring-page-order"), Some("2"));
    }

    #[test]
    fn info_and_connect_keys() {
        let d = DiskInfo {
            sectors: 2048,
            readonly: true,
            device_type: DeviceType::Cdrom,
        };
        assert_eq!(d.info(), VDISK_READONLY | VDISK_CDROM | VDISK_REMOVABLE);
        let keys = d.connect_keys();
        assert!(keys.contains(&("physical-sector-size", String::from("4096"))));
        let odd = DiskInfo {
            sectors: 2049,
            readonly: false,
            device_type: DeviceType::Disk,
        };
        assert_eq!(odd.info(), 0);
        assert!(odd
            .connect_keys()
            .contains(&("physical-sector-size", String::from("512"))));
    }

    #[test]
    fn ring_keys_per_layout() {
        let one = Header {
            abi: Abi::Native,
            ring_page_order: 0,
            num_queues: 1,
            persistent: false,
        };
        assert_eq!(ring_keys(&one), ["ring-ref", "event-channel"]);
        let multi = Header {
            abi: Abi::X86_32,
            ring_page_order: 1,
            num_queues: 2,
            persistent: false,
        };
        assert_eq!(
            ring_keys(&multi),
            [
                "queue-0/ring-ref0",
                "queue-0/ring-ref1",
                "queue-0/event-channel",
                "queue-1/ring-ref0",
                "queue-1/ring-ref1",
                "queue-1/event-channel"
            ]
        );
    }
}

//! What dom0 writes on a driver domain's command line about the PCI device
//! it handed over and the channel it offers (toolstack-dom0's
//! `board::nic::hand_over` and `offer_relay`):
//!
//! `pci=0000:00:05.0 pci-config=<gref> pci-bars=<six hex sizes>
//! [<channel word>=<tx gref>,<rx gref>,<port>]`
//!
//! netdom's channel word is `xenapi-relay`, stordom's `dom0-channel`.
//! `pci-config` is a grant (from dom0, read-only) of the page holding the
//! device's 256-byte config space; `pci-bars` sizes each BAR register (0 for
//! unused ones and upper halves), as [`crate::pci_snapshot`] parses it.

use crate::cmdline::get;

/// The device dom0 handed over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceArgs {
    /// Bus, device, function (segment 0 only).
    pub bdf: (u8, u8, u8),
    /// Grant of the config-space snapshot page.
    pub config_gref: u32,
    /// Size of each BAR register (`pci-bars=`).
    pub bar_sizes: [u64; 6],
}

/// A channel to dom0 as its word names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelArgs {
    /// The page dom0 sends on (our receive page).
    pub dom0_tx: u32,
    /// The page dom0 receives on (our transmit page).
    pub dom0_rx: u32,
    /// dom0's unbound event channel port.
    pub port: u32,
}

/// Why the command line is unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgsError {
    /// A key is absent.
    Missing(&'static str),
    /// A key's value does not parse.
    Bad(&'static str),
}

impl DeviceArgs {
    /// Parses `pci=`, `pci-config=` and `pci-bars=`.
    pub fn parse(cmdline: &str) -> Result<DeviceArgs, ArgsError> {
        let need = |key: &'static str| get(cmdline, key).ok_or(ArgsError::Missing(key));
        Ok(DeviceArgs {
            bdf: parse_bdf(need("pci")?).ok_or(ArgsError::Bad("pci"))?,
            config_gref: need("pci-config")?
                .parse()
                .map_err(|_| ArgsError::Bad("pci-config"))?,
            bar_sizes: crate::pci_snapshot::parse_bar_sizes(need("pci-bars")?)
                .ok_or(ArgsError::Bad("pci-bars"))?,
        })
    }
}

/// The channel named by `word` (absent: `Ok(None)`).
pub fn channel(cmdline: &str, word: &'static str) -> Result<Option<ChannelArgs>, ArgsError> {
    match get(cmdline, word) {
        Some(text) => parse_channel(text).map(Some).ok_or(ArgsError::Bad(word)),
        None => Ok(None),
    }
}

/// `1,2,3` → the channel.
pub fn parse_channel(text: &str) -> Option<ChannelArgs> {
    let mut parts = text.split(',').map(|p| p.parse::<u32>().ok());
    let channel = ChannelArgs {
        dom0_tx: parts.next()??,
        dom0_rx: parts.next()??,
        port: parts.next()??,
    };
    parts.next().is_none().then_some(channel)
}

/// `0000:00:05.0` → (0, 5, 0); only segment 0.
pub fn parse_bdf(text: &str) -> Option<(u8, u8, u8)> {
    let (segment, rest) = text.split_once(':')?;
    let (bus, rest) = rest.split_once(':')?;
    let (dev, func) = rest.split_once('.')?;
    if u16::from_str_radix(segment, 16).ok()? != 0 {
        return None;
    }
    let bus = u8::from_str_radix(bus, 16).ok()?;
    let dev = u8::from_str_radix(dev, 16).ok().filter(|d| *d < 32)?;
    let func = u8::from_str_radix(func, 16).ok().filter(|f| *f < 8)?;
    Some((bus, dev, func))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str =
        "pci=0000:00:06.0 pci-config=9 pci-bars=0,1000,0,0,4000,0 dom0-channel=8,7,5";

    #[test]
    fn parses_what_dom0_writes() {
        assert_eq!(
            DeviceArgs::parse(LINE),
            Ok(DeviceArgs {
                bdf: (0, 6, 0),
                config_gref: 9,
                bar_sizes: [0, 0x1000, 0, 0, 0x4000, 0],
            })
        );
        assert_eq!(
            channel(LINE, "dom0-channel"),
            Ok(Some(ChannelArgs {
                dom0_tx: 8,
                dom0_rx: 7,
                port: 5
            }))
        );
        assert_eq!(channel(LINE, "xenapi-relay"), Ok(None));
        for bad in ["8,7", "8,7,5,4", "8,,5", "x,7,5"] {
            let line = LINE.replace("8,7,5", bad);
            assert_eq!(
                channel(&line, "dom0-channel"),
                Err(ArgsError::Bad("dom0-channel")),
                "{bad}"
            );
        }
    }

    #[test]
    fn names_what_is_missing_or_bad() {
        assert_eq!(
            DeviceArgs::parse("pci=0000:00:05.0"),
            Err(ArgsError::Missing("pci-config"))
        );
        let bad = LINE.replace("pci-config=9", "pci-config=x");
        assert_eq!(DeviceArgs::parse(&bad), Err(ArgsError::Bad("pci-config")));
        let bad = LINE.replace(",4000,0 ", ",4000 ");
        assert_eq!(DeviceArgs::parse(&bad), Err(ArgsError::Bad("pci-bars")));
        let bad = LINE.replace("0000:00:06.0", "0000:00:20.0");
        assert_eq!(DeviceArgs::parse(&bad), Err(ArgsError::Bad("pci")));
    }

    #[test]
    fn bdfs() {
        assert_eq!(parse_bdf("0000:00:1f.7"), Some((0, 0x1f, 7)));
        assert_eq!(parse_bdf("0001:00:05.0"), None);
        assert_eq!(parse_bdf("0000:00:20.0"), None);
        assert_eq!(parse_bdf("0000:00:05.8"), None);
        assert_eq!(parse_bdf("00:05.0"), None);
    }
}

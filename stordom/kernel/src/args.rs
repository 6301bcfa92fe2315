//! stordom's command line, as dom0 writes it (stordom/DESIGN.md, "The
//! domain"):
//!
//! `pci=0000:00:06.0 pci-config=<gref> pci-bars=<six hex sizes>
//! [pci-pirqs=<pirq>,...] [dom0-channel=<tx gref>,<rx gref>,<port>]`
//!
//! The device words are every driver domain's
//! ([`xcp_runtime::device_args`]); `dom0-channel` names the channel dom0's
//! toolstack talks to stordom on; `pci-pirqs` the pirqs dom0 mapped the
//! disk's MSI-X entries to (without them stordom spins on its disk).

use xcp_runtime::cmdline::get;
pub use xcp_runtime::device_args::ArgsError;
use xcp_runtime::device_args::{channel, ChannelArgs, DeviceArgs};
use xcp_runtime::msix::Pirqs;

/// What dom0 told stordom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Args {
    /// The disk.
    pub device: DeviceArgs,
    /// The channel to dom0's toolstack.
    pub channel: Option<ChannelArgs>,
    /// The pirqs of the disk's MSI-X entries, entry 0 first.
    pub pirqs: Option<Pirqs>,
}

impl Args {
    /// Parses stordom's command line.
    pub fn parse(cmdline: &str) -> Result<Args, ArgsError> {
        Ok(Args {
            device: DeviceArgs::parse(cmdline)?,
            channel: channel(cmdline, "dom0-channel")?,
            pirqs: match get(cmdline, "pci-pirqs") {
                Some(text) => Some(Pirqs::parse(text).ok_or(ArgsError::Bad("pci-pirqs"))?),
                None => None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_dom0_writes() {
        let line = "pci=0000:00:06.0 pci-config=4 pci-bars=0,1000,0,0,4000,0 pci-pirqs=60,59 \
                    dom0-channel=11,12,9";
        let args = Args::parse(line).expect("parses");
        assert_eq!(args.device.bdf, (0, 6, 0));
        assert_eq!(args.device.config_gref, 4);
        assert_eq!(
            args.channel,
            Some(ChannelArgs {
                dom0_tx: 11,
                dom0_rx: 12,
                port: 9
            })
        );
        let without = "pci=0000:00:06.0 pci-config=4 pci-bars=0,1000,0,0,4000,0";
        assert_eq!(Args::parse(without).map(|a| a.channel), Ok(None));
        assert_eq!(Args::parse("pci-config=4"), Err(ArgsError::Missing("pci")));
        let bad = format!("{without} dom0-channel=1,2");
        assert_eq!(Args::parse(&bad), Err(ArgsError::Bad("dom0-channel")));
        assert_eq!(
            args.pirqs.map(|p| p.as_slice().to_vec()),
            Some(vec![60, 59])
        );
        assert_eq!(Args::parse(without).map(|a| a.pirqs), Ok(None));
        let bad = format!("{without} pci-pirqs=1,x");
        assert_eq!(Args::parse(&bad), Err(ArgsError::Bad("pci-pirqs")));
    }
}

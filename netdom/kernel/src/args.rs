//! netdom's command line, as dom0 writes it (netdom/DESIGN.md, "The
//! domain"):
//!
//! `pci=0000:00:05.0 pci-config=<gref> pci-bars=<six hex sizes> ip=<management>
//! [pci-pirqs=<pirq>,...] [xenapi-relay=<tx gref>,<rx gref>,<port>]`
//!
//! `ip` is the platform's `management` setting without spaces: `dhcp`,
//! `10.0.2.15/24` or `10.0.2.15/24,gw=10.0.2.2`
//! (`xcp_netrelay::ipconfig::parse_cmdline`).
//! `pci-config` is a grant (from dom0, read-only) of the page holding the
//! device's 256-byte config space; `pci-bars` sizes each BAR register (0 for
//! unused ones and upper halves), as `xcp_runtime::pci_snapshot` parses it.
//! `xenapi-relay` names the channel to dom0's XenAPI toolstack: dom0's
//! transmit and receive pages (granted to netdom) and dom0's unbound event
//! channel port; without it netdom does not relay. `pci-pirqs` lists the
//! pirqs dom0 mapped the NIC's MSI-X entries 0, 1, ... to; without it netdom
//! polls the NIC.
//! `dma-escape=<hex machine address>` (dom0's `selftest=netdom-dma` only)
//! makes netdom hand the device that address, a frame of dom0's, as its
//! first receive buffer, to show that the IOMMU refuses the device's write
//! (netdom/DESIGN.md, "DMA confinement"). Only the test image knows it (the
//! `dma-escape` feature, never in the shipped bundle): the shipped netdom
//! ignores the word like any other it does not know.

use xcp_netrelay::ipconfig::{self, IpMode};
use xcp_runtime::cmdline::get;
pub use xcp_runtime::device_args::ArgsError;
use xcp_runtime::device_args::{channel, ChannelArgs, DeviceArgs};

use crate::msix::Pirqs;

/// What dom0 told netdom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Args {
    /// Bus, device, function of the NIC (segment 0 only).
    pub bdf: (u8, u8, u8),
    /// Grant of the config-space snapshot page.
    pub config_gref: u32,
    /// Size of each BAR register (`pci-bars=`).
    pub bar_sizes: [u64; 6],
    /// Our IPv4 address: static, or DHCPv4.
    pub ip: IpMode,
    /// The relay channel to dom0: (dom0's tx gref, dom0's rx gref, port).
    pub relay: Option<RelayChannel>,
    /// The pirqs of the NIC's MSI-X entries, entry 0 first.
    pub pirqs: Option<Pirqs>,
    /// Self-test only: a foreign machine address for the first receive
    /// buffer (page-aligned, non-zero).
    #[cfg(feature = "dma-escape")]
    pub dma_escape: Option<u64>,
}

/// `xenapi-relay=<tx gref>,<rx gref>,<port>`, as dom0 names it.
pub type RelayChannel = ChannelArgs;

/// `0x1234000` → a page-aligned, non-zero machine address.
pub fn parse_page_addr(text: &str) -> Option<u64> {
    let addr = u64::from_str_radix(text.strip_prefix("0x")?, 16).ok()?;
    (addr != 0 && addr.is_multiple_of(4096)).then_some(addr)
}

impl Args {
    /// Parses netdom's command line.
    pub fn parse(cmdline: &str) -> Result<Args, ArgsError> {
        let need = |key: &'static str| get(cmdline, key).ok_or(ArgsError::Missing(key));
        let device = DeviceArgs::parse(cmdline)?;
        Ok(Args {
            bdf: device.bdf,
            config_gref: device.config_gref,
            bar_sizes: device.bar_sizes,
            ip: ipconfig::parse_cmdline(need("ip")?).map_err(|_| ArgsError::Bad("ip"))?,
            relay: channel(cmdline, "xenapi-relay")?,
            pirqs: match get(cmdline, "pci-pirqs") {
                Some(text) => Some(Pirqs::parse(text).ok_or(ArgsError::Bad("pci-pirqs"))?),
                None => None,
            },
            #[cfg(feature = "dma-escape")]
            dma_escape: match get(cmdline, "dma-escape") {
                Some(text) => Some(parse_page_addr(text).ok_or(ArgsError::Bad("dma-escape"))?),
                None => None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use smoltcp::wire::{Ipv4Address, Ipv4Cidr};
    use xcp_netrelay::ipconfig::StaticConfig;

    const LINE: &str =
        "pci=0000:00:05.0 pci-config=9 pci-bars=20,1000,0,0,4000,0 ip=10.0.2.15/24,gw=10.0.2.2";

    #[test]
    fn parses_what_dom0_writes() {
        assert_eq!(
            Args::parse(LINE),
            Ok(Args {
                bdf: (0, 5, 0),
                config_gref: 9,
                bar_sizes: [0x20, 0x1000, 0, 0, 0x4000, 0],
                ip: IpMode::Static(StaticConfig {
                    cidr: Ipv4Cidr::new(Ipv4Address::new(10, 0, 2, 15), 24),
                    gateway: Some(Ipv4Address::new(10, 0, 2, 2)),
                }),
                relay: None,
                pirqs: None,
                #[cfg(feature = "dma-escape")]
                dma_escape: None,
            })
        );
        let escape = alloc_line(LINE, " dma-escape=0x7e5000");
        #[cfg(feature = "dma-escape")]
        {
            assert_eq!(
                Args::parse(&escape).map(|a| a.dma_escape),
                Ok(Some(0x7e_5000))
            );
            for bad in ["0x7e5001", "0x0", "7e5000", "0xzz"] {
                let line = alloc_line(LINE, &format!(" dma-escape={bad}"));
                assert_eq!(
                    Args::parse(&line),
                    Err(ArgsError::Bad("dma-escape")),
                    "{bad}"
                );
            }
        }
        // Without the hook the word is one netdom does not know: ignored.
        #[cfg(not(feature = "dma-escape"))]
        assert_eq!(Args::parse(&escape), Args::parse(LINE));
        let with_pirqs = alloc_line(LINE, " pci-pirqs=55,54");
        assert_eq!(
            Args::parse(&with_pirqs).map(|a| a.pirqs.map(|p| p.as_slice().to_vec())),
            Ok(Some(vec![55, 54]))
        );
        let bad = alloc_line(LINE, " pci-pirqs=55,");
        assert_eq!(Args::parse(&bad), Err(ArgsError::Bad("pci-pirqs")));
        let with_relay = alloc_line(LINE, " xenapi-relay=8,7,5");
        assert_eq!(
            Args::parse(&with_relay).map(|a| a.relay),
            Ok(Some(RelayChannel {
                dom0_tx: 8,
                dom0_rx: 7,
                port: 5
            }))
        );
        let dhcp = LINE.replace("ip=10.0.2.15/24,gw=10.0.2.2", "ip=dhcp");
        assert_eq!(Args::parse(&dhcp).map(|a| a.ip), Ok(IpMode::Dhcp));
        let bad = alloc_line(LINE, " xenapi-relay=8,7");
        assert_eq!(Args::parse(&bad), Err(ArgsError::Bad("xenapi-relay")));
        let bad = alloc_line(LINE, " xenapi-relay=8,7,5,4");
        assert_eq!(Args::parse(&bad), Err(ArgsError::Bad("xenapi-relay")));
    }

    fn alloc_line(a: &str, b: &str) -> String {
        format!("{a}{b}")
    }

    #[test]
    fn names_what_is_missing_or_bad() {
        assert_eq!(
            Args::parse("pci=0000:00:05.0"),
            Err(ArgsError::Missing("pci-config"))
        );
        let bad = LINE.replace("pci-config=9", "pci-config=x");
        assert_eq!(Args::parse(&bad), Err(ArgsError::Bad("pci-config")));
        for ip in [
            "10.0.2.15",
            "10.0.2.15/24,gw=10.0.2",
            "10.0.2.15/24,gw=10.0.3.2",
            "dhcp,x",
        ] {
            let bad = LINE.replace("10.0.2.15/24,gw=10.0.2.2", ip);
            assert_eq!(Args::parse(&bad), Err(ArgsError::Bad("ip")), "{ip}");
        }
        let missing = LINE.replace(" ip=10.0.2.15/24,gw=10.0.2.2", "");
        assert_eq!(Args::parse(&missing), Err(ArgsError::Missing("ip")));
        let bad = LINE.replace(",4000,0 ", ",4000 ");
        assert_eq!(Args::parse(&bad), Err(ArgsError::Bad("pci-bars")));
    }

    #[test]
    fn addresses() {
        assert_eq!(parse_page_addr("0x7e5000"), Some(0x7e_5000));
        for bad in ["0x7e5001", "0x0", "7e5000", "0xzz"] {
            assert_eq!(parse_page_addr(bad), None, "{bad}");
        }
    }
}

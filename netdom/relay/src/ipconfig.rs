//! netdom's IPv4 configuration: a static address from a config string, or
//! DHCPv4 through smoltcp's dhcpv4 socket.
//!
//! read first: smoltcp `socket::dhcpv4` (its `Event`s), RFC 2131.
//!
//! The config string is `dhcp`, or `A.B.C.D/N` optionally followed by
//! `gw A.B.C.D` (e.g. `10.0.2.15/24 gw 10.0.2.2`): the platform's
//! `management` setting (`xcp_bundle::Management`). On netdom's
//! space-separated command line dom0 writes it without spaces, as
//! `dhcp`, `10.0.2.15/24` or `10.0.2.15/24,gw=10.0.2.2`
//! ([`parse_cmdline`]). The functions here are pure apart from writing the
//! interface the kernel hands them.

use core::str::FromStr;

use smoltcp::iface::Interface;
use smoltcp::socket::dhcpv4;
use smoltcp::wire::{IpCidr, Ipv4Address, Ipv4Cidr};

/// A static IPv4 configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StaticConfig {
    /// Our address and prefix.
    pub cidr: Ipv4Cidr,
    /// The default gateway, if any.
    pub gateway: Option<Ipv4Address>,
}

/// How netdom gets its address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpMode {
    /// A fixed address.
    Static(StaticConfig),
    /// Ask a DHCPv4 server.
    Dhcp,
}

/// Why a config string was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// The string is empty.
    Empty,
    /// Not `A.B.C.D/N`.
    BadAddress,
    /// The prefix is not 0..=32.
    BadPrefix,
    /// After the address, something other than `gw A.B.C.D`.
    BadGateway,
    /// A gateway outside our subnet (it could not be reached).
    GatewayOffLink,
    /// Words after the end.
    Trailing,
}

/// Parses `dhcp` or `A.B.C.D/N [gw A.B.C.D]` (words separated by ASCII
/// whitespace).
pub fn parse(config: &str) -> Result<IpMode, ConfigError> {
    parse_words(config.split_ascii_whitespace())
}

/// Parses the command-line form: `dhcp`, `A.B.C.D/N` or
/// `A.B.C.D/N,gw=A.B.C.D` (no spaces).
pub fn parse_cmdline(text: &str) -> Result<IpMode, ConfigError> {
    if text.is_empty() {
        return Err(ConfigError::Empty);
    }
    let mut parts = text.split(',');
    let first = parts.next().ok_or(ConfigError::Empty)?;
    let gateway = match parts.next() {
        None => None,
        Some(part) => Some(part.strip_prefix("gw=").ok_or(ConfigError::BadGateway)?),
    };
    if parts.next().is_some() {
        return Err(ConfigError::Trailing);
    }
    let words = [Some(first), gateway.map(|_| "gw"), gateway];
    parse_words(words.into_iter().flatten())
}

fn parse_words<'a>(mut words: impl Iterator<Item = &'a str>) -> Result<IpMode, ConfigError> {
    let first = words.next().ok_or(ConfigError::Empty)?;
    if first.eq_ignore_ascii_case("dhcp") {
        return match words.next() {
            None => Ok(IpMode::Dhcp),
            Some(_) => Err(ConfigError::Trailing),
        };
    }
    let (addr, prefix) = first.split_once('/').ok_or(ConfigError::BadAddress)?;
    let addr = Ipv4Address::from_str(addr).map_err(|_| ConfigError::BadAddress)?;
    let prefix: u8 = prefix.parse().map_err(|_| ConfigError::BadPrefix)?;
    if prefix > 32 {
        return Err(ConfigError::BadPrefix);
    }
    let cidr = Ipv4Cidr::new(addr, prefix);
    let gateway = match words.next() {
        None => None,
        Some(w) if w.eq_ignore_ascii_case("gw") => {
            let gw = words.next().ok_or(ConfigError::BadGateway)?;
            let gw = Ipv4Address::from_str(gw).map_err(|_| ConfigError::BadGateway)?;
            if !cidr.contains_addr(&gw) {
                return Err(ConfigError::GatewayOffLink);
            }
            Some(gw)
        }
        Some(_) => return Err(ConfigError::BadGateway),
    };
    if words.next().is_some() {
        return Err(ConfigError::Trailing);
    }
    Ok(IpMode::Static(StaticConfig { cidr, gateway }))
}

/// Makes `config` the interface's only address and default route.
pub fn apply(iface: &mut Interface, config: &StaticConfig) {
    iface.update_ip_addrs(|addrs| {
        addrs.clear();
        // One address always fits (IFACE_MAX_ADDR_COUNT >= 1).
        let _ = addrs.push(IpCidr::Ipv4(config.cidr));
    });
    let routes = iface.routes_mut();
    routes.remove_default_ipv4_route();
    if let Some(gw) = config.gateway {
        // Cannot fail: the default route was just removed, freeing a slot.
        let _ = routes.add_default_ipv4_route(gw);
    }
}

/// Removes every address and the default route (a DHCP lease was lost).
pub fn clear(iface: &mut Interface) {
    iface.update_ip_addrs(|addrs| addrs.clear());
    iface.routes_mut().remove_default_ipv4_route();
}

/// Applies a DHCPv4 socket event to the interface; returns the new static
/// configuration (`None` when deconfigured).
pub fn apply_dhcp(iface: &mut Interface, event: &dhcpv4::Event<'_>) -> Option<StaticConfig> {
    match event {
        dhcpv4::Event::Configured(c) => {
            let config = StaticConfig {
                cidr: c.address,
                gateway: c.router,
            };
            apply(iface, &config);
            Some(config)
        }
        dhcpv4::Event::Deconfigured => {
            clear(iface);
            None
        }
    }
}

/// The configuration from a DHCPv4 event, without an interface (for logs
/// and tests).
pub fn from_dhcp(event: &dhcpv4::Event<'_>) -> Option<StaticConfig> {
    match event {
        dhcpv4::Event::Configured(c) => Some(StaticConfig {
            cidr: c.address,
            gateway: c.router,
        }),
        dhcpv4::Event::Deconfigured => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: u8, b: u8, c: u8, d: u8) -> Ipv4Address {
        Ipv4Address::new(a, b, c, d)
    }

    #[test]
    fn parses_static_and_dhcp() {
        assert_eq!(
            parse("10.0.2.15/24 gw 10.0.2.2"),
            Ok(IpMode::Static(StaticConfig {
                cidr: Ipv4Cidr::new(v4(10, 0, 2, 15), 24),
                gateway: Some(v4(10, 0, 2, 2)),
            }))
        );
        assert_eq!(
            parse("  192.168.1.9/16  "),
            Ok(IpMode::Static(StaticConfig {
                cidr: Ipv4Cidr::new(v4(192, 168, 1, 9), 16),
                gateway: None,
            }))
        );
        assert_eq!(parse("dhcp"), Ok(IpMode::Dhcp));
        assert_eq!(parse("DHCP"), Ok(IpMode::Dhcp));
    }

    #[test]
    fn parses_the_command_line_form() {
        assert_eq!(
            parse_cmdline("10.0.2.15/24,gw=10.0.2.2"),
            parse("10.0.2.15/24 gw 10.0.2.2")
        );
        assert_eq!(parse_cmdline("10.0.2.15/24"), parse("10.0.2.15/24"));
        assert_eq!(parse_cmdline("dhcp"), Ok(IpMode::Dhcp));
        let table = [
            ("", ConfigError::Empty),
            ("dhcp,gw=10.0.2.2", ConfigError::Trailing),
            ("10.0.2.15/24,10.0.2.2", ConfigError::BadGateway),
            ("10.0.2.15/24,gw:10.0.2.2", ConfigError::BadGateway),
            ("10.0.2.15/24,gw=", ConfigError::BadGateway),
            ("10.0.2.15/24,gw=10.0.3.2", ConfigError::GatewayOffLink),
            ("10.0.2.15/24,gw=10.0.2.2,x", ConfigError::Trailing),
            ("10.0.2.15/24 gw 10.0.2.2", ConfigError::BadPrefix),
        ];
        for (s, e) in table {
            assert_eq!(parse_cmdline(s), Err(e), "{s:?}");
        }
    }

    #[test]
    fn rejects_bad_strings() {
        let table = [
            ("", ConfigError::Empty),
            ("dhcp now", ConfigError::Trailing),
            ("10.0.2.15", ConfigError::BadAddress),
            ("10.0.2/24", ConfigError::BadAddress),
            ("10.0.2.256/24", ConfigError::BadAddress),
            ("10.0.2.15/33", ConfigError::BadPrefix),
            ("10.0.2.15/x", ConfigError::BadPrefix),
            ("10.0.2.15/24 via 10.0.2.2", ConfigError::BadGateway),
            ("10.0.2.15/24 gw", ConfigError::BadGateway),
            ("10.0.2.15/24 gw 10.0.2", ConfigError::BadGateway),
            ("10.0.2.15/24 gw 10.0.3.2", ConfigError::GatewayOffLink),
            ("10.0.2.15/24 gw 10.0.2.2 x", ConfigError::Trailing),
        ];
        for (s, e) in table {
            assert_eq!(parse(s), Err(e), "{s:?}");
        }
    }
}

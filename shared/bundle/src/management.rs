//! The management network setting (`[platform] management`): `dhcp`, or a
//! static IPv4 address `A.B.C.D/N` optionally followed by `gw A.B.C.D`.
//!
//! dom0 checks it when it reads the bundle (a bad one is a bundle error at
//! boot) and hands it to netdom on its command line, where words are
//! space-separated, in a form without spaces ([`Management::cmdline`]):
//! `ip=dhcp`, `ip=10.0.2.15/24` or `ip=10.0.2.15/24,gw=10.0.2.2`. netdom
//! parses that with `xcp_netrelay::ipconfig::parse_cmdline`; a host test
//! there checks both parsers agree.

use alloc::format;
use alloc::string::String;

/// How netdom gets its management address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Management {
    /// Ask a DHCPv4 server.
    Dhcp,
    /// A fixed address.
    Static {
        /// Our address.
        address: [u8; 4],
        /// Its prefix length (0..=32).
        prefix: u8,
        /// The default gateway, inside the prefix.
        gateway: Option<[u8; 4]>,
    },
}

fn ipv4(text: &str) -> Option<[u8; 4]> {
    let mut ip = [0u8; 4];
    let mut parts = text.split('.');
    for octet in ip.iter_mut() {
        let part = parts.next()?;
        // Plain decimal octets only (no sign, no empty part).
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *octet = part.parse().ok()?;
    }
    parts.next().is_none().then_some(ip)
}

fn same_subnet(a: [u8; 4], b: [u8; 4], prefix: u8) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    };
    u32::from_be_bytes(a) & mask == u32::from_be_bytes(b) & mask
}

impl Management {
    /// Parses the `management` string (words separated by ASCII
    /// whitespace; `dhcp` in any case).
    pub fn parse(text: &str) -> Result<Management, String> {
        let mut words = text.split_ascii_whitespace();
        let first = words.next().ok_or("management is empty")?;
        if first.eq_ignore_ascii_case("dhcp") {
            return match words.next() {
                None => Ok(Management::Dhcp),
                Some(w) => Err(format!("management: unexpected {w:?} after dhcp")),
            };
        }
        let bad = || format!("management: {text:?} is not dhcp or A.B.C.D/N [gw A.B.C.D]");
        let (address, prefix) = first.split_once('/').ok_or_else(bad)?;
        let address = ipv4(address).ok_or_else(bad)?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 32 && !prefix.starts_with('+'))
            .ok_or_else(bad)?;
        let gateway = match words.next() {
            None => None,
            Some(w) if w.eq_ignore_ascii_case("gw") => {
                let gw = words.next().and_then(ipv4).ok_or_else(bad)?;
                if !same_subnet(address, gw, prefix) {
                    return Err(format!(
                        "management: gateway {} is outside {first}",
                        dotted(gw)
                    ));
                }
                Some(gw)
            }
            Some(_) => return Err(bad()),
        };
        if words.next().is_some() {
            return Err(bad());
        }
        Ok(Management::Static {
            address,
            prefix,
            gateway,
        })
    }

    /// The value of netdom's `ip=` word (no spaces).
    pub fn cmdline(&self) -> String {
        match self {
            Management::Dhcp => String::from("dhcp"),
            Management::Static {
                address,
                prefix,
                gateway: None,
            } => format!("{}/{prefix}", dotted(*address)),
            Management::Static {
                address,
                prefix,
                gateway: Some(gw),
            } => format!("{}/{prefix},gw={}", dotted(*address), dotted(*gw)),
        }
    }
}

fn dotted(ip: [u8; 4]) -> String {
    format!("{}.{}.{}.{}", ip[0], ip[1], ip[2], ip[3])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_encodes() {
        let table = [
            ("dhcp", "dhcp"),
            (" DHCP ", "dhcp"),
            ("10.0.2.15/24", "10.0.2.15/24"),
            ("10.0.2.15/24 gw 10.0.2.2", "10.0.2.15/24,gw=10.0.2.2"),
            (
                "192.168.1.9/16  GW 192.168.7.1",
                "192.168.1.9/16,gw=192.168.7.1",
            ),
            ("1.2.3.4/0 gw 9.9.9.9", "1.2.3.4/0,gw=9.9.9.9"),
        ];
        for (text, line) in table {
            let m = Management::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(m.cmdline(), line, "{text:?}");
            assert!(!m.cmdline().contains(char::is_whitespace));
        }
    }

    #[test]
    fn refuses_bad_strings() {
        for text in [
            "",
            "   ",
            "dhcp now",
            "10.0.2.15",
            "10.0.2/24",
            "10.0.2.256/24",
            "10.0.2.+1/24",
            "10.0.2.15/33",
            "10.0.2.15/+8",
            "10.0.2.15/x",
            "10.0.2.15/24 via 10.0.2.2",
            "10.0.2.15/24 gw",
            "10.0.2.15/24 gw 10.0.2",
            "10.0.2.15/24 gw 10.0.3.2",
            "10.0.2.15/24 gw 10.0.2.2 x",
            "10.0.2.15/24,gw=10.0.2.2",
        ] {
            assert!(Management::parse(text).is_err(), "{text:?} was accepted");
        }
    }
}

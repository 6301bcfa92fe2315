//! dom0 checks `[platform] management` with `xcp_bundle::Management` and
//! writes it on netdom's command line; netdom parses that with
//! `ipconfig::parse_cmdline`. Both must agree on what is valid and on what
//! it means.

use xcp_bundle::Management;
use xcp_netrelay::ipconfig::{self, IpMode};

#[test]
fn dom0_and_netdom_agree_on_management_strings() {
    let table = [
        "dhcp",
        "DHCP",
        "dhcp now",
        "",
        "10.0.2.15/24",
        "10.0.2.15/24 gw 10.0.2.2",
        "192.168.1.9/16 gw 192.168.7.1",
        "1.2.3.4/0 gw 9.9.9.9",
        "10.0.2.15/32",
        "10.0.2.15",
        "10.0.2.256/24",
        "10.0.2.15/33",
        "10.0.2.15/24 gw 10.0.3.2",
        "10.0.2.15/24 gw",
        "10.0.2.15/24 via 10.0.2.2",
        "10.0.2.15/24 gw 10.0.2.2 x",
    ];
    for text in table {
        let dom0 = Management::parse(text);
        let netdom = ipconfig::parse(text);
        assert_eq!(
            dom0.is_ok(),
            netdom.is_ok(),
            "{text:?}: {dom0:?} vs {netdom:?}"
        );
        if let Ok(m) = dom0 {
            let line = m.cmdline();
            let from_line = ipconfig::parse_cmdline(&line);
            assert_eq!(from_line, netdom, "{text:?} as {line:?}");
            assert_eq!(matches!(m, Management::Dhcp), from_line == Ok(IpMode::Dhcp));
        }
    }
}

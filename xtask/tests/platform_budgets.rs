//! The shipped `boot/platform.toml` gives each service domain the memory
//! its budget was derived from (`xenapi::budget`, netdom's
//! `xcp_netrelay::budget`): a size changed in one place and not the other
//! would leave a bound sized for memory the domain does not have.

use xcp_bundle::PlatformConfig;

const MIB: usize = 1 << 20;

fn shipped() -> PlatformConfig {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../boot/platform.toml");
    let text = std::fs::read_to_string(path).expect("boot/platform.toml");
    PlatformConfig::parse(&text).expect("the shipped platform.toml parses")
}

/// `dom0_mem=NM` (and its `max:`) on Xen's command line, in bytes.
fn dom0_mem(cmdline: &str) -> (usize, Option<usize>) {
    let arg = cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("dom0_mem="))
        .expect("dom0_mem= on Xen's command line");
    let mib = |v: &str| -> usize {
        v.strip_suffix('M')
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or_else(|| panic!("dom0_mem part {v:?} is not NM"))
            * MIB
    };
    let mut parts = arg.split(',');
    let size = mib(parts.next().unwrap());
    let max = parts.find_map(|p| p.strip_prefix("max:")).map(mib);
    (size, max)
}

#[test]
fn dom0_gets_the_memory_its_budget_assumes() {
    let config = shipped();
    let (size, max) = dom0_mem(&config.platform.xen_cmdline);
    assert_eq!(size, xenapi::session::DOM0_BYTES, "dom0_mem vs DOM0_BYTES");
    assert_eq!(max, Some(size), "dom0 must not balloon past its budget");
}

#[test]
fn netdom_gets_the_memory_its_budget_assumes() {
    let config = shipped();
    let netdom = config
        .domains
        .iter()
        .find(|d| d.nic)
        .expect("a domain with the NIC");
    assert_eq!(
        netdom.memory_mib as usize * MIB,
        xcp_netrelay::budget::NETDOM_BYTES
    );
}

#[test]
fn the_parser_reads_dom0_mem_forms() {
    assert_eq!(
        dom0_mem("a dom0_mem=48M,max:48M b"),
        (48 * MIB, Some(48 * MIB))
    );
    assert_eq!(dom0_mem("dom0_mem=64M"), (64 * MIB, None));
}

//! netdom on real Xen: dom0 hands it the virtio-net NIC (IOMMU assignment,
//! BAR rights, a config-space snapshot, its MSI-X entries as pirqs); netdom
//! brings the NIC up with virtio-drivers, binds the pirqs, takes the static
//! address from the platform config, sends an ARP request for QEMU's
//! user-net gateway and logs the reply. dom0 then takes the NIC back (bus mastering
//! off, device reset) and hands it to a second netdom, which must do it all
//! again. dom0's `selftest=netdom` ends QEMU with the verdict through
//! isa-debug-exit.

use std::time::Duration;

use xcp_qemu_tests::{verdict, Artifacts, Run};

#[test]
fn netdom_drives_the_passed_through_nic_and_hears_the_gateway() {
    let a = Artifacts::from_env();
    let dir = a.scratch("netdom");
    // A static management address (netdom_xenapi.rs covers DHCP).
    let config = "[platform]\nname = \"selftest\"\n\
        management = \"10.0.2.15/24 gw 10.0.2.2\"\n\n\
        [[domain]]\nname = \"netdom\"\nimage = \"netdom.elf\"\nmemory_mib = 16\n\
        restart = false\nstart = false\npassthrough = true\n";
    let archive =
        xcp_boot::assemble_bundle(config, &[("netdom.elf".into(), a.path("netdom.elf"))]).unwrap();
    let path = dir.join("bundle.cpio");
    std::fs::write(&path, archive).unwrap();
    let mut launch = a.direct("test-exit selftest=netdom", &path);
    launch.devices.nic = Some(None);
    let run = Run::start("selftest-netdom", &launch);
    let waited = run.wait_for("selftest netdom: PASS", Duration::from_secs(150));
    let outcome = run.finish(Duration::from_secs(20));
    if let Err(e) = waited {
        panic!("{e}\nexit status {:?}", outcome.status);
    }
    outcome.assert_verdict(verdict::PASS);
    let log = &outcome.log;
    let netdom = |text: &str| {
        log.lines()
            .find(|l| l.starts_with("[netdom]") && l.contains(text))
            .unwrap_or_else(|| panic!("netdom did not log {text:?}:\n{log}"))
            .to_string()
    };
    // QEMU gives its first NIC 52:54:00:12:34:56 and answers for 10.0.2.2
    // with 52:55:0a:00:02:02 (slirp's own MAC).
    netdom("netdom: MAC 52:54:00:12:34:56");
    netdom("netdom: static address 10.0.2.15/24 gw 10.0.2.2");
    assert!(
        log.contains("pci-bars=20,1000,0,0,4000,0 ip=10.0.2.15/24,gw=10.0.2.2"),
        "dom0 did not hand netdom the management address:\n{log}"
    );
    netdom("netdom: ARP reply from 10.0.2.2 (mac 52:55:0a:00:02:02)");
    // The BAR holding the virtio structures was mapped through DOMID_IO.
    netdom("mapped uncached at");
    // Xen checks netdom's I/O-memory rights: a frame next to the BARs is refused.
    netdom("outside the granted BARs refused: EPERM");
    // The two-page transmit ring came from XENMEM_exchange, and virtio-drivers'
    // config writes were all BAR sizing or decode toggles: none refused.
    let up = netdom("netdom: virtio-net up: 256-entry queues");
    assert!(!up.contains(" 0 DMA extents exchanged"), "{up}");
    let writes = netdom("netdom: config writes:");
    assert!(writes.ends_with(", 0 refused"), "{writes}");
    assert!(
        log.contains("dom0: nic 0000:00:05.0 (virtio-net): command"),
        "{log}"
    );
    // Both instances heard the gateway; between them dom0 reclaimed the NIC,
    // which the dead netdom left initialised (QEMU drops DRIVER_OK when bus
    // mastering goes off: ACKNOWLEDGE|DRIVER|FEATURES_OK = 0xb) until dom0
    // reset it.
    let replies = log
        .lines()
        .filter(|l| l.starts_with("[netdom]") && l.contains("ARP reply from 10.0.2.2"))
        .count();
    assert_eq!(replies, 2, "{log}");
    let reclaimed = log
        .lines()
        .find(|l| l.contains("dom0: nic 0000:00:05.0 back from domid"))
        .unwrap_or_else(|| panic!("dom0 did not reclaim the NIC:\n{log}"));
    assert!(
        reclaimed.contains("(bus mastering off), virtio reset (status 0xb -> 0x0)"),
        "{reclaimed}"
    );
    let handed = log
        .lines()
        .filter(|l| l.contains("dom0: nic 0000:00:05.0 handed to domid"))
        .count();
    assert_eq!(handed, 2, "{log}");
    // Interrupts: dom0 mapped the NIC's MSI-X entries to each netdom's
    // pirqs; each netdom bound them and was woken by one (its sleeps are
    // 100 ms without one, the ARP reply comes in under that).
    let count = |text: &str| {
        log.lines()
            .filter(|l| l.starts_with("[netdom]") && l.contains(text))
            .count()
    };
    assert_eq!(count("netdom: MSI-X: 4 vectors bound as pirqs"), 2, "{log}");
    assert!(count("netdom: NIC interrupts: ") >= 2, "{log}");
    assert_eq!(count("netdom: NIC interrupts: 0 "), 0, "{log}");
    assert!(
        log.contains("unmapped, MSI-X table released, MSI-X disabled"),
        "dom0 did not unmap the pirqs:\n{log}"
    );
}

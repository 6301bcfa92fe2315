//! netdom on real Xen: dom0 hands it the virtio-net NIC (IOMMU assignment,
//! BAR rights, a config-space snapshot, its MSI-X entries as pirqs); netdom
//! brings the NIC up with virtio-drivers, binds the pirqs, takes the static
//! address from the platform config, sends an ARP request for QEMU's
//! user-net gateway and logs the reply. dom0 then takes the NIC back (bus mastering
//! off, device reset) and hands it to a second netdom, which must do it all
//! again. dom0's `selftest=netdom` ends QEMU with the verdict through
//! isa-debug-exit. The NIC does its DMA through the emulated VT-d
//! (`iommu_platform=on`); the second case shows that the IOMMU refuses the
//! device's write into a frame netdom does not own (`selftest=netdom-dma`).

use std::time::Duration;

use xcp_qemu_tests::{verdict, Artifacts, Run};

/// A bundle of netdom alone (the kernel `image` from the artifacts, as
/// netdom.elf), with the static management address 10.0.2.15/24 gw
/// 10.0.2.2, in scratch directory `scratch`; dom0's self-tests build netdom
/// from it.
fn netdom_bundle(a: &Artifacts, scratch: &str, image: &str) -> std::path::PathBuf {
    let dir = a.scratch(scratch);
    let config = "[platform]\nname = \"selftest\"\n\
        management = \"10.0.2.15/24 gw 10.0.2.2\"\n\n\
        [[domain]]\nname = \"netdom\"\nimage = \"netdom.elf\"\nmemory_mib = 28\n\
        restart = false\nstart = false\npassthrough = true\n";
    let archive =
        xcp_boot::assemble_bundle(config, &[("netdom.elf".into(), a.path(image))]).unwrap();
    let path = dir.join("bundle.cpio");
    std::fs::write(&path, archive).unwrap();
    path
}

#[test]
fn netdom_drives_the_passed_through_nic_and_hears_the_gateway() {
    let a = Artifacts::from_env();
    // A static management address (netdom_xenapi.rs covers DHCP).
    // The shipped netdom, driven by the test dom0.
    let path = netdom_bundle(&a, "netdom", "netdom.elf");
    let mut launch = a.selftest("test-exit selftest=netdom", &path);
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
    netdom("netdom: DEBUG MAC 52:54:00:12:34:56");
    netdom("netdom: static address 10.0.2.15/24 gw 10.0.2.2");
    assert!(
        // Modern-only (no legacy I/O BAR0): QEMU's `iommu_platform=on`
        // needs `disable-legacy=on`.
        log.contains("pci-bars=0,1000,0,0,4000,0 ip=10.0.2.15/24,gw=10.0.2.2"),
        "dom0 did not hand netdom the management address:\n{log}"
    );
    netdom("netdom: DEBUG ARP reply from 10.0.2.2 (mac 52:55:0a:00:02:02)");
    // The device offers VIRTIO_F_ACCESS_PLATFORM (QEMU `iommu_platform=on`)
    // and netdom accepts it: every DMA goes through the emulated VT-d.
    let features = netdom("netdom: DEBUG virtio features: device offered");
    assert!(features.contains(" ACCESS_PLATFORM)"), "{features}");
    netdom("netdom: DEBUG device DMA goes through the IOMMU (VIRTIO_F_ACCESS_PLATFORM)");
    // The BAR holding the virtio structures was mapped through DOMID_IO.
    netdom("mapped uncached at");
    // Xen checks netdom's I/O-memory rights: a frame next to the BARs is refused.
    netdom("outside the granted BARs refused: EPERM");
    // The two-page transmit ring came from XENMEM_exchange, and virtio-drivers'
    // config writes were all BAR sizing or decode toggles: none refused.
    let up = netdom("netdom: DEBUG virtio-net up: 256-entry queues");
    assert!(!up.contains(" 0 DMA extents exchanged"), "{up}");
    let writes = netdom("netdom: DEBUG config writes:");
    assert!(writes.ends_with(", 0 refused"), "{writes}");
    assert!(
        log.contains("dom0: DEBUG nic 0000:00:05.0 (virtio-net): command"),
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
        .find(|l| l.contains("dom0: DEBUG nic 0000:00:05.0 back from domid"))
        .unwrap_or_else(|| panic!("dom0 did not reclaim the NIC:\n{log}"));
    assert!(
        reclaimed.contains("(bus mastering off), virtio reset (status 0xb -> 0x0)"),
        "{reclaimed}"
    );
    let handed = log
        .lines()
        .filter(|l| l.contains("dom0: DEBUG nic 0000:00:05.0 handed to domid"))
        .count();
    assert_eq!(handed, 2, "{log}");
    // Interrupts: dom0 mapped the NIC's MSI-X entries to each netdom's
    // pirqs; each netdom bound them and was woken by one (its sleeps are
    // 100 ms without one, the ARP reply comes in under that): it says so
    // once, at the first.
    let count = |text: &str| {
        log.lines()
            .filter(|l| l.starts_with("[netdom]") && l.contains(text))
            .count()
    };
    assert_eq!(
        count("netdom: DEBUG MSI-X: 4 vectors bound as pirqs"),
        2,
        "{log}"
    );
    assert_eq!(
        count("netdom: DEBUG first NIC interrupt wake-up"),
        2,
        "{log}"
    );
    assert!(
        log.contains("unmapped, MSI-X table released, MSI-X disabled"),
        "dom0 did not unmap the pirqs:\n{log}"
    );
}

/// Boots `selftest=netdom-dma`; returns the outcome and the bait frame's
/// machine address (hex digits) as dom0 named it.
fn run_dma_escape(bypass_iommu: bool) -> (xcp_qemu_tests::Outcome, String) {
    let a = Artifacts::from_env();
    let name = if bypass_iommu {
        "netdom-dma-bypass"
    } else {
        "netdom-dma"
    };
    // The test netdom: only it knows `dma-escape=`.
    let path = netdom_bundle(&a, name, "netdom-test.elf");
    let mut launch = a.selftest("test-exit selftest=netdom-dma", &path);
    launch.devices.nic = Some(None);
    launch.devices.nic_bypasses_iommu = bypass_iommu;
    let run = Run::start(&format!("selftest-{name}"), &launch);
    // dom0 ends QEMU with its verdict either way (or at its own deadline).
    let outcome = run.finish(Duration::from_secs(150));
    let log = &outcome.log;
    let bait = log
        .lines()
        .find(|l| l.contains("selftest netdom-dma: dom0's bait frame is at machine address 0x"))
        .unwrap_or_else(|| panic!("dom0 named no bait frame:\n{log}"));
    let target = bait.rsplit("0x").next().unwrap().trim().to_string();
    assert!(
        log.contains(&format!("dma-escape=0x{target}")),
        "netdom was not told the bait's address:\n{log}"
    );
    (outcome, target)
}

/// The IOMMU confines the NIC's DMA to netdom: dom0 fills a frame of its
/// own with a pattern and has netdom (`dma-escape=`) hand the device that
/// frame's machine address as its first receive buffer. The first frame in
/// must make the emulated VT-d refuse the write (QEMU says so, and Xen logs
/// the DMAR fault for 0000:00:05.0 at that address); the device still
/// completes the receive (QEMU's bounce buffer swallows the refusal), but
/// dom0's frame must be unchanged, netdom must still hear the gateway
/// through its own buffers, and dom0 must take the NIC back and pass.
#[test]
fn the_iommu_refuses_netdom_dma_into_a_frame_of_dom0() {
    let (outcome, target) = run_dma_escape(false);
    outcome.assert_verdict(verdict::PASS);
    let line = |text: &str| outcome.line(text);
    line("selftest netdom-dma: PASS");
    // netdom negotiated ACCESS_PLATFORM: the device's DMA is translated.
    let features = line("netdom: DEBUG virtio features: device offered");
    assert!(features.contains(" ACCESS_PLATFORM)"), "{features}");
    line(&format!(
        "receive buffer of 2048 bytes handed to the device at foreign 0x{target}"
    ));
    // Xen's VT-d fault handler (xen/drivers/passthrough/vtd/iommu.c,
    // iommu_page_fault_do_one): a write by 00:05.0 to the bait's page.
    let fault = line("DMAR:[DMA Write] Request device [0000:00:05.0] fault addr ");
    assert!(
        fault.ends_with(&format!("fault addr {target}")),
        "the fault is not at the bait frame 0x{target}: {fault}"
    );
    // QEMU's emulated VT-d refused the translation for 00:05.0.
    line(&format!(
        "vtd_iommu_translate: detected translation failure (dev=00:05:00, iova=0x{target})"
    ));
    // The device believes it wrote the frame; netdom's own buffer behind
    // it stayed zero, and the next frames reached netdom's own buffers.
    let completed = line("netdom: dma-escape: the device completed a");
    assert!(
        completed.ends_with("(0 non-zero bytes in netdom's own buffer)"),
        "{completed}"
    );
    line("netdom: DEBUG ARP reply from 10.0.2.2 (mac 52:55:0a:00:02:02)");
    line("netdom: dma-escape: done");
    // dom0's frame is untouched, and the broken device came back and reset.
    line(&format!(
        "selftest netdom-dma: bait frame at 0x{target}: 0 of 4096 bytes changed"
    ));
    let reclaimed = line("dom0: DEBUG nic 0000:00:05.0 back from domid");
    assert!(
        reclaimed.contains("(bus mastering off), virtio reset (status"),
        "{reclaimed}"
    );
    assert!(reclaimed.ends_with("-> 0x0)"), "{reclaimed}");
}

/// The control: the same self-test with the NIC's DMA past the IOMMU (no
/// `iommu_platform=on`). The device's receive then lands in dom0's frame,
/// and dom0 must see it and fail: the check above is not vacuous.
#[test]
fn without_the_iommu_the_same_escape_overwrites_dom0s_frame() {
    let (outcome, target) = run_dma_escape(true);
    outcome.assert_verdict(verdict::FAIL);
    let log = &outcome.log;
    let line = |text: &str| outcome.line(text);
    line("the device does not offer VIRTIO_F_ACCESS_PLATFORM");
    let changed = line(&format!("selftest netdom-dma: bait frame at 0x{target}: "));
    assert!(!changed.contains(": 0 of 4096"), "{changed}");
    line("selftest netdom-dma: FAIL: the device wrote into dom0's frame");
    assert!(!log.contains("DMAR:[DMA Write]"), "{log}");
}

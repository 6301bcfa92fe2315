//! stordom on real Xen: the shipped platform, booted as `cargo xtask run`
//! boots it with a disk file, builds stordom with QEMU's virtio-blk disk
//! assigned through the IOMMU; stordom brings the disk up with
//! virtio-drivers, its DMA confined, reads it and flushes. Then the
//! operator crashes stordom on dom0's console (`crash stordom`): dom0 takes
//! the disk back (bus mastering off, device reset) and rebuilds stordom
//! under its old domid with the disk again.

use std::time::Duration;

use xcp_qemu_tests::{Artifacts, Run};

#[test]
fn stordom_drives_the_disk_and_is_rebuilt_with_it() {
    let a = Artifacts::from_env();
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("stordom");
    let disk = dir.join("sr.img");
    let _ = std::fs::remove_file(&disk);
    assert!(xcp_boot::qemu::sparse_disk(&disk, 1 << 30).expect("disk file"));
    let mut launch = a.direct("", &a.path("bundle.cpio"));
    launch.timeout_secs = 300;
    launch.devices.disk = Some(disk.clone());
    let qemu = Run::start("stordom", &launch);
    let step = |what: &str, r: Result<String, String>| {
        r.unwrap_or_else(|e| panic!("{what}: {e}\nserial log:\n{}", qemu.lines().join("\n")))
    };
    step(
        "stordom brings the disk up",
        qemu.wait_for("stordom: disk read and flushed", Duration::from_secs(150)),
    );
    // The SR's first I/O sleeps on the disk's MSI-X interrupt.
    step(
        "stordom is woken by its disk",
        qemu.wait_for(
            "stordom: DEBUG first disk interrupt wake-up",
            Duration::from_secs(60),
        ),
    );
    qemu.type_line("crash stordom").unwrap();
    step(
        "dom0 rebuilds stordom",
        qemu.wait_for("rebuilt stordom as domid", Duration::from_secs(60)),
    );
    step(
        "the rebuilt stordom brings the disk up",
        qemu.wait_for_nth("stordom: disk read and flushed", 2, Duration::from_secs(60)),
    );
    step(
        "the rebuilt stordom is woken by its disk",
        qemu.wait_for_nth(
            "stordom: DEBUG first disk interrupt wake-up",
            2,
            Duration::from_secs(60),
        ),
    );
    let outcome = qemu.finish(Duration::from_millis(500));
    let log = &outcome.log;
    let has = |text: &str| assert!(log.contains(text), "the log lacks {text:?}:\n{log}");
    has("dom0: DEBUG disk 0000:00:06.0 handed to domid");
    has("restarting stordom with the disk");
    has("back from domid");
    for (marker, n) in [
        // 1 GiB in 512-byte sectors, both builds.
        ("stordom: disk up: 2097152 sectors (1024 MiB)", 2),
        // The disk's DMA goes through the emulated VT-d.
        (
            "stordom: DEBUG device DMA goes through the IOMMU (VIRTIO_F_ACCESS_PLATFORM)",
            2,
        ),
        // The disk's queue interrupts through MSI-X, both builds.
        ("stordom: DEBUG MSI-X: the disk's queue -> entry 0, pirq", 2),
        // Xen refuses stordom a device frame dom0 did not hand over.
        ("outside the granted BARs refused: EPERM", 2),
    ] {
        assert_eq!(log.matches(marker).count(), n, "{marker:?}:\n{log}");
    }
    // Rebuilt under its old domid (guests' VBDs will name it).
    let domids: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split_once("dom0: DEBUG disk 0000:00:06.0 handed to domid "))
        .map(|(_, rest)| rest.split(':').next().unwrap_or(""))
        .collect();
    assert_eq!(domids.len(), 2, "{log}");
    assert_eq!(domids[0], domids[1], "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

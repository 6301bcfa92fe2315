//! Disk images in and out of stordom's SR through xapi's HTTP handlers on
//! real Xen, driven by a stock client (PyPI XenAPI and Python's
//! http.client, through netdom): a raw image with a hole is imported with
//! `PUT /import_raw_vdi` under a task whose progress the client watches
//! move; exported back with `GET /export_raw_vdi` it has the same sha256,
//! and the hole stayed thin. Exported as VHD (`format=vhd`), qemu-img
//! checks it and reads the same disk; that VHD and one qemu-img made are
//! imported into fresh VDIs and read back the same. A snapshot refuses an
//! import (409), a bad session is 401.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use xcp_qemu_tests::clients::{free_port, python_with_xenapi, Peer};
use xcp_qemu_tests::{Artifacts, Run};

/// The documented default password of the shipped platform.toml.
const PASSWORD: &str = "xcp-rs";
const MIB: usize = 1 << 20;

/// 12 MiB: 4 MiB of noise, 4 MiB of zeros (a hole to keep thin), 4 MiB
/// of noise.
fn write_image(path: &Path) {
    let mut f = std::fs::File::create(path).expect("image file");
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    f.write_all(&noise(4 * MIB)).unwrap();
    f.write_all(&vec![0; 4 * MIB]).unwrap();
    f.write_all(&noise(4 * MIB)).unwrap();
}

#[test]
fn raw_and_vhd_images_go_in_and_out_whole_with_a_moving_task() {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let py = python_with_xenapi(cache);
    let dir = cache.join("stordom-images");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    write_image(&dir.join("image.raw"));
    let disk = dir.join("sr.img");
    assert!(xcp_boot::qemu::sparse_disk(&disk, 2 << 30).expect("disk file"));

    let a = Artifacts::from_env();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/");
    let mut launch = a.direct(&format!("xenapi-url={url}"), &a.path("bundle.cpio"));
    launch.timeout_secs = 700;
    launch.devices.nic = Some(Some(port));
    launch.devices.disk = Some(disk.clone());
    let qemu = Run::start("stordom-images", &launch);
    let fail = |what: &str, e: String| -> ! {
        panic!("{what}: {e}\nserial log:\n{}", qemu.lines().join("\n"))
    };
    qemu.wait_for(&format!("XenAPI ready at {url}"), Duration::from_secs(180))
        .unwrap_or_else(|e| fail("XenAPI ready", e));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/vdi_images.py");
    let mut cmd = Command::new(&py);
    cmd.arg(&script).args([url.as_str(), PASSWORD]).arg(&dir);
    let client = Peer::spawn("vdi_images.py", &cmd, 560);
    let done = client.wait_for("IMAGES OK", Duration::from_secs(540));
    let (ok, out) = client.finish(Duration::from_secs(30));
    if done.is_err() || !ok {
        fail("the image client", format!("{done:?}\nclient:\n{out}"));
    }
    eprintln!("{out}");
    let outcome = qemu.finish(Duration::from_millis(500));
    // stordom and dom0 never restarted on the way.
    assert!(
        !outcome.log.contains("restarting stordom"),
        "{}",
        outcome.log
    );
    let _ = std::fs::remove_dir_all(&dir);
}

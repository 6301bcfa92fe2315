//! The platform keeps what it acknowledged across a reboot and across a
//! stordom crash: PyPI's XenAPI (through netdom) makes a VM with a VIF, a
//! VDI on stordom's SR and a VBD; the operator crashes stordom on dom0's
//! console; dom0 rebuilds it, hands the database's client the new channel,
//! and a second VM is made the same way. QEMU is then stopped and started
//! again on the same disk file, as `cargo xtask run` keeps its SR disk:
//! stordom opens the SR it made (it does not format it again), dom0 replays
//! the database log from it, and a new login finds every record of both
//! VMs, Halted, their VDIs still on the SR.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use xcp_qemu_tests::clients::{free_port, python_with_xenapi, Peer};
use xcp_qemu_tests::{Artifacts, Run};

/// The documented default password of the shipped platform.toml.
const PASSWORD: &str = "xcp-rs";

fn script() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients/durable_state.py")
        .display()
        .to_string()
}

/// A step of a boot: crash stordom, or run the script (mode, VM name).
enum Step {
    CrashStordom,
    Client(&'static str, &'static str),
}

/// Boots the shipped platform on `disk`, takes `steps`, stops QEMU;
/// returns the serial log and the script's output.
fn boot(name: &str, disk: &Path, py: &Path, steps: &[Step]) -> (String, String) {
    let a = Artifacts::from_env();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/");
    let mut launch = a.direct(&format!("xenapi-url={url}"), &a.path("bundle.cpio"));
    launch.timeout_secs = 500;
    launch.devices.nic = Some(Some(port));
    launch.devices.disk = Some(disk.to_path_buf());
    let qemu = Run::start(name, &launch);
    let fail = |what: &str, e: String| -> ! {
        panic!("{what}: {e}\nserial log:\n{}", qemu.lines().join("\n"))
    };
    qemu.wait_for(&format!("XenAPI ready at {url}"), Duration::from_secs(180))
        .unwrap_or_else(|e| fail("XenAPI ready", e));
    let mut output = String::new();
    for step in steps {
        match step {
            Step::CrashStordom => {
                qemu.type_line("crash stordom").unwrap();
                qemu.wait_for(
                    "the XenAPI database is on the rebuilt stordom",
                    Duration::from_secs(90),
                )
                .unwrap_or_else(|e| fail("stordom rebuilt", e));
            }
            Step::Client(mode, vm) => {
                let mut cmd = Command::new(py);
                cmd.arg(script()).args([&url, PASSWORD, mode, vm]);
                let client = Peer::spawn("durable_state.py", &cmd, 300);
                let done = client.wait_for("DURABLE OK", Duration::from_secs(240));
                let (ok, out) = client.finish(Duration::from_secs(30));
                if done.is_err() || !ok {
                    fail(&format!("{mode} {vm}"), format!("{done:?}\nclient:\n{out}"));
                }
                output.push_str(&out);
            }
        }
    }
    let outcome = qemu.finish(Duration::from_millis(500));
    (outcome.log, output)
}

#[test]
fn xenapi_records_survive_a_stordom_crash_and_a_platform_reboot() {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let py = python_with_xenapi(cache);
    let dir = cache.join("stordom-durable");
    let disk = dir.join("sr.img");
    let _ = std::fs::remove_file(&disk);
    assert!(xcp_boot::qemu::sparse_disk(&disk, 2 << 30).expect("disk file"));

    let (first, made) = boot(
        "stordom-durable-1",
        &disk,
        &py,
        &[
            Step::Client("make", "kept-vm"),
            Step::CrashStordom,
            Step::Client("make", "after-crash-vm"),
        ],
    );
    for marker in [
        "stordom: SR made on the blank disk",
        "dom0: stordom made a new SR on the disk",
        "restarting stordom with the disk",
        // The new stordom opens the SR the old one committed.
        "stordom: SR opened: 1 VDIs",
    ] {
        assert!(first.contains(marker), "{marker:?}:\n{first}");
    }
    let (second, found) = boot(
        "stordom-durable-2",
        &disk,
        &py,
        &[
            Step::Client("check", "kept-vm"),
            Step::Client("check", "after-crash-vm"),
        ],
    );
    assert!(second.contains("stordom: SR opened: 2 VDIs"), "{second}");
    assert!(!second.contains("SR made on the blank disk"), "{second}");
    // The database came back from the SR.
    let replayed = second
        .lines()
        .find_map(|l| l.split_once("XenAPI database log on stordom's SR: "))
        .and_then(|(_, rest)| rest.split(' ').next()?.parse::<u64>().ok())
        .expect("dom0 says how much log it read");
    assert!(replayed > 0, "{second}");
    // The same VMs and VDIs, by uuid, on both sides of the reboot.
    let uuids = |text: &str, word: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.split_once(&format!(" {word} ")))
            .filter_map(|(_, rest)| rest.split(' ').next().map(String::from))
            .collect()
    };
    assert_eq!(uuids(&made, "vm"), uuids(&found, "vm"), "{made}\n{found}");
    assert_eq!(uuids(&made, "vdi"), uuids(&found, "vdi"), "{made}\n{found}");
    assert_eq!(uuids(&found, "vm").len(), 2, "{found}");
    for line in first.lines().chain(second.lines()) {
        if line.contains("SR ") || line.contains("database") || line.contains("stordom (") {
            eprintln!("{line}");
        }
    }
    eprintln!("{made}{found}");
    let _ = std::fs::remove_dir_all(&dir);
}

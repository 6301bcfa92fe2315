//! Foundation cases: dom0 boots on real Xen 4.17 (directly and from the
//! ISO), lists the bundle it was given, and refuses a corrupt bundle clearly.

use std::time::Duration;

use xcp_bundle::Bundle;
use xcp_qemu_tests::{verdict, Artifacts, Launch, Media, Run};

const MARKER_WAIT: Duration = Duration::from_secs(75);
const EXIT_WAIT: Duration = Duration::from_secs(20);

/// Checks the banner, and the log lists every entry of `bundle` with its
/// size (DEBUG lines: the full log keeps them).
fn assert_banner_lists(run: &Run, bundle: &[u8]) {
    let parsed = Bundle::parse(bundle).expect("the built bundle parses");
    let lines = run.lines();
    let header = format!(
        "dom0: DEBUG bundle: {} entries, {} bytes",
        parsed.entries().len(),
        bundle.len()
    );
    assert!(
        lines.iter().any(|l| l.contains(&header)),
        "no {header:?} in:\n{}",
        lines.join("\n")
    );
    for entry in parsed.entries() {
        let listed = lines.iter().any(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words.windows(3).any(|w| {
                w[0] == entry.name && w[1] == entry.data.len().to_string() && w[2] == "bytes"
            })
        });
        assert!(
            listed,
            "entry {} ({} bytes) not listed in:\n{}",
            entry.name,
            entry.data.len(),
            lines.join("\n")
        );
    }
    assert!(lines
        .iter()
        .any(|l| l.contains("dom0: xcp-rs toolstack-dom0") && l.contains("on Xen 4.17")));
}

#[test]
fn direct_boot_reaches_the_banner_listing_the_bundle() {
    let a = Artifacts::from_env();
    let bundle = std::fs::read(a.path("bundle.cpio")).unwrap();
    let run = Run::start(
        "direct-boot",
        &a.direct("test-exit", &a.path("bundle.cpio")),
    );
    run.wait_for("dom0: DEBUG dom0 ready", MARKER_WAIT).unwrap();
    assert_banner_lists(&run, &bundle);
    run.finish(EXIT_WAIT).assert_verdict(verdict::PASS);
}

#[test]
fn iso_boots_to_the_same_banner() {
    let a = Artifacts::from_env();
    let dir = a.scratch("iso");
    let iso = dir.join("xcp-test.iso");
    let cfg = xcp_boot::grub_cfg(&a.xen_cmdline(), "test-exit");
    xcp_boot::make_iso(
        &iso,
        &a.path("toolstack-dom0"),
        &a.path("bundle.cpio"),
        &cfg,
    )
    .unwrap();
    let bundle = std::fs::read(a.path("bundle.cpio")).unwrap();
    let launch = Launch {
        media: Media::Iso(iso),
        memory_mib: 1024,
        timeout_secs: 120,
        devices: Default::default(),
    };
    let run = Run::start("iso-boot", &launch);
    run.wait_for("dom0: DEBUG dom0 ready", Duration::from_secs(110))
        .unwrap();
    assert_banner_lists(&run, &bundle);
    run.finish(EXIT_WAIT).assert_verdict(verdict::PASS);
}

fn boot_with_bundle(name: &str, bytes: &[u8], expected: &str) {
    let a = Artifacts::from_env();
    let dir = a.scratch(name);
    let path = dir.join("bundle.cpio");
    std::fs::write(&path, bytes).unwrap();
    let run = Run::start(name, &a.direct("test-exit", &path));
    let line = run
        .wait_for("dom0: ERROR bundle error:", MARKER_WAIT)
        .unwrap();
    assert!(
        line.contains(expected),
        "{line:?} does not say {expected:?}"
    );
    assert!(!run.lines().iter().any(|l| l.contains("dom0 ready")));
    run.finish(EXIT_WAIT).assert_verdict(verdict::BAD_BUNDLE);
}

#[test]
fn corrupt_bundle_magic_gives_a_clear_error() {
    let a = Artifacts::from_env();
    let mut bytes = std::fs::read(a.path("bundle.cpio")).unwrap();
    bytes[..6].copy_from_slice(b"garbag");
    boot_with_bundle(
        "corrupt-magic",
        &bytes,
        "no cpio newc magic (070701) at byte 0",
    );
}

#[test]
fn truncated_bundle_gives_a_clear_error() {
    let a = Artifacts::from_env();
    let bytes = std::fs::read(a.path("bundle.cpio")).unwrap();
    // Cut in the middle of the last image: its data runs past the end.
    let cut = bytes.len() - 200;
    boot_with_bundle(
        "truncated",
        &bytes[..cut],
        "runs past the end of the bundle",
    );
}

#[test]
fn bundle_without_its_config_gives_a_clear_error() {
    let a = Artifacts::from_env();
    let bytes = std::fs::read(a.path("bundle.cpio")).unwrap();
    let parsed = Bundle::parse(&bytes).unwrap();
    let files: Vec<(&str, &[u8])> = parsed
        .entries()
        .iter()
        .filter(|e| e.name != "platform.toml")
        .map(|e| (e.name, e.data))
        .collect();
    boot_with_bundle(
        "no-config",
        &xcp_bundle::write_newc(&files),
        "the bundle has no platform.toml",
    );
}

//! The shipped images carry no test code: dom0 (`toolstack-dom0`) and every
//! kernel in `bundle.cpio` are free of dom0's self-tests, testdom's
//! self-test peers, netdom's DMA-escape hook and tinyvm (the many-VMs test
//! guest), while the test images (`*-test*`, built with those features,
//! and `tinyvm.elf`) do carry them, so the check can fail.
//!
//! Two kinds of evidence per piece of test code: log text only it prints
//! (string literals survive inlining) and symbols of its modules (matched in
//! the mangled name by their length-prefixed path, as both the legacy and
//! the v0 mangling write it: `14toolstack_dom08selftest`).
//!
//! Reads the images `cargo xtask build` put in target/xcp (or
//! `XCP_ARTIFACTS`). Skipped (with a note) unless `XCP_REQUIRE_KERNELS` is
//! set: `cargo xtask test` runs it after the build with it, which also makes
//! a missing image a failure.

use std::path::PathBuf;

use object::{Object, ObjectSymbol};

/// One piece of test code: the test image that carries it, text it logs
/// and module paths of its symbols.
struct TestCode {
    what: &'static str,
    test_image: &'static str,
    markers: &'static [&'static str],
    symbols: &'static [&'static str],
}

const TEST_CODE: &[TestCode] = &[
    TestCode {
        what: "dom0's self-tests (`selftest` feature)",
        test_image: "toolstack-dom0-test",
        markers: &[
            "the self-test did not finish in time",
            "100 create/destroy cycles, memory back where it was",
            "XenAPI served in dom0 over the relay channel",
            "the device wrote into dom0's frame",
        ],
        symbols: &["14toolstack_dom08selftest", "12xcp_selftest"],
    },
    TestCode {
        what: "testdom's self-test peers (`selftest` feature)",
        test_image: "testdom-test.elf",
        markers: &[
            "xenapi client: logged in",
            "grant peer loop ended",
            "channel peer: connected on port ",
            "xs-test a: the watch fired on b's permitted write",
            "blkfront-fuzz: done, ",
        ],
        symbols: &[
            "7testdom10grant_peer",
            "7testdom12channel_peer",
            "7testdom7xs_test",
            "7testdom14xenapi_client",
            "7testdom7xs_fill",
            "7testdom9xs_stress",
            "7testdom13blkfront_fuzz",
            "12xcp_selftest",
        ],
    },
    TestCode {
        what: "netdom's DMA-escape hook (`dma-escape` feature)",
        test_image: "netdom-test.elf",
        markers: &[
            "dma-escape: done",
            "dma-escape: the first receive buffer will be handed to the device at ",
            " bytes handed to the device at foreign ",
        ],
        symbols: &["6netdom6escape", "26escape_next_receive_buffer"],
    },
    TestCode {
        what: "tinyvm, the many-VMs test guest (a test image of its own)",
        test_image: "tinyvm.elf",
        markers: &[
            "tinyvm: ready, watching control/shutdown",
            "tinyvm: xenstore broke the conversation",
        ],
        symbols: &["10xcp_tinyvm", "6tinyvm2hw"],
    },
];

fn artifacts() -> PathBuf {
    std::env::var_os("XCP_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/xcp"))
}

/// `name` from the artifacts, or None (skip) unless the run requires the
/// images: only `cargo xtask test`, which builds them first, knows they are
/// fresh (images left in target/xcp by an older build may predate a change).
fn read(name: &str) -> Option<Vec<u8>> {
    let path = artifacts().join(name);
    if std::env::var_os("XCP_REQUIRE_KERNELS").is_none() {
        eprintln!(
            "skipping: {} is checked by `cargo xtask test` after it builds the images",
            path.display()
        );
        return None;
    }
    match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(e) => panic!("{}: {e}", path.display()),
    }
}

/// The test code `image` carries: the markers and symbol paths found.
fn found_in(image: &[u8], code: &TestCode) -> Vec<String> {
    let mut found: Vec<String> = code
        .markers
        .iter()
        .filter(|m| contains(image, m.as_bytes()))
        .map(|m| format!("text {m:?}"))
        .collect();
    let elf = object::File::parse(image).expect("an ELF image");
    for symbol in elf.symbols() {
        let Ok(name) = symbol.name() else { continue };
        for path in code.symbols {
            if name.contains(path) {
                found.push(format!("symbol {name}"));
            }
        }
    }
    found
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The shipped images: dom0 and every kernel the shipped bundle holds.
fn shipped() -> Option<Vec<(String, Vec<u8>)>> {
    let mut images = vec![("toolstack-dom0".to_string(), read("toolstack-dom0")?)];
    let bundle = read("bundle.cpio")?;
    let bundle = xcp_bundle::Bundle::parse(&bundle).expect("the shipped bundle parses");
    for entry in bundle.entries() {
        if entry.data.starts_with(b"\x7fELF") {
            images.push((format!("bundle.cpio:{}", entry.name), entry.data.to_vec()));
        }
    }
    Some(images)
}

#[test]
fn shipped_images_carry_no_self_test_or_dma_escape_code() {
    let Some(images) = shipped() else { return };
    let names: Vec<&str> = images.iter().map(|(n, _)| n.as_str()).collect();
    for needed in ["netdom.elf", "testdom.elf", "xenstore-dom.elf"] {
        assert!(
            names.iter().any(|n| n.ends_with(needed)),
            "the shipped bundle lacks {needed}: {names:?}"
        );
    }
    for (name, image) in &images {
        for code in TEST_CODE {
            let found = found_in(image, code);
            assert!(
                found.is_empty(),
                "shipped {name} carries {}:\n{}",
                code.what,
                found.join("\n")
            );
        }
    }
}

#[test]
fn test_images_carry_the_test_code_the_check_looks_for() {
    for code in TEST_CODE {
        let Some(image) = read(code.test_image) else {
            return;
        };
        let found = found_in(&image, code);
        for marker in code.markers {
            assert!(
                found.iter().any(|f| f == &format!("text {marker:?}")),
                "{} lacks {marker:?} ({}): the shipped check would prove nothing",
                code.test_image,
                code.what
            );
        }
        assert!(
            found.iter().any(|f| f.starts_with("symbol ")),
            "{} has no symbol of {:?} ({})",
            code.test_image,
            code.symbols,
            code.what
        );
    }
}

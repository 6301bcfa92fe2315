//! wire.rs against Xen's own io/blkif.h: sizes, offsets, ring sizes,
//! constants and the bytes of sample structs, printed by a C program built
//! on the header.
//!
//! read first: tests/c_header/blkif_layout.c, src/wire.rs. Without the
//! header (Debian `libxen-dev`) or a C compiler the test is skipped with
//! the reason printed: the layouts are also pinned by wire.rs's own byte
//! fixtures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use xcp_blkback::wire::*;
use xcp_ring::RingEntry;

const HEADER: &str = "/usr/include/xen/io/blkif.h";
const INSTALL: &str = "apt-get install libxen-dev (Xen public headers) and a C compiler";

fn c_values() -> Option<BTreeMap<String, String>> {
    if !Path::new(HEADER).exists() {
        eprintln!("skipped: {HEADER} is missing ({INSTALL})");
        return None;
    }
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("blkif_layout");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c_header/blkif_layout.c");
    let target = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let compiler = match cc::Build::new()
        .cargo_metadata(false)
        .target(&target)
        .host(&target)
        .opt_level(0)
        .try_get_compiler()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("skipped: no C compiler ({e}): {INSTALL}");
            return None;
        }
    };
    let status = match compiler
        .to_command()
        .args(["-Wall", "-Werror", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("skipped: cannot run the C compiler ({e}): {INSTALL}");
            return None;
        }
    };
    // The header is there and the compiler runs: a build failure is real.
    assert!(status.success(), "blkif_layout.c failed to build");
    let run = Command::new(&out).output().expect("run blkif_layout");
    assert!(run.status.success());
    Some(
        String::from_utf8(run.stdout)
            .expect("ascii")
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn wire_matches_blkif_h() {
    let Some(c) = c_values() else {
        return;
    };
    let num = |k: &str| -> i64 {
        c.get(k)
            .unwrap_or_else(|| panic!("{k} not printed"))
            .parse()
            .expect("number")
    };
    let layout: &[(&str, i64)] = &[
        ("sizeof_segment", SEGMENT_SIZE as i64),
        ("sizeof_request", Request::SIZE as i64),
        ("sizeof_discard", DISCARD_REQUEST_SIZE as i64),
        ("sizeof_indirect", INDIRECT_REQUEST_SIZE as i64),
        ("sizeof_response", Response::SIZE as i64),
        ("off_request_id", 8),
        ("off_request_seg", 24),
        ("off_discard_nr_sectors", 24),
        ("off_indirect_handle", 24),
        ("off_indirect_grefs", 28),
        ("off_response_status", 10),
        ("ring_size_order0", ring_slots(0).into()),
        ("ring_size_order2", ring_slots(2).into()),
        ("BLKIF_OP_READ", BLKIF_OP_READ.into()),
        ("BLKIF_OP_WRITE", BLKIF_OP_WRITE.into()),
        ("BLKIF_OP_WRITE_BARRIER", BLKIF_OP_WRITE_BARRIER.into()),
        ("BLKIF_OP_FLUSH_DISKCACHE", BLKIF_OP_FLUSH_DISKCACHE.into()),
        ("BLKIF_OP_RESERVED_1", BLKIF_OP_RESERVED_1.into()),
        ("BLKIF_OP_DISCARD", BLKIF_OP_DISCARD.into()),
        ("BLKIF_OP_INDIRECT", BLKIF_OP_INDIRECT.into()),
        (
            "BLKIF_MAX_SEGMENTS_PER_REQUEST",
            BLKIF_MAX_SEGMENTS_PER_REQUEST as i64,
        ),
        (
            "BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST",
            BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST as i64,
        ),
        ("BLKIF_DISCARD_SECURE", BLKIF_DISCARD_SECURE.into()),
        ("BLKIF_RSP_EOPNOTSUPP", BLKIF_RSP_EOPNOTSUPP.into()),
        ("BLKIF_RSP_ERROR", BLKIF_RSP_ERROR.into()),
        ("BLKIF_RSP_OKAY", BLKIF_RSP_OKAY.into()),
        ("VDISK_CDROM", VDISK_CDROM.into()),
        ("VDISK_REMOVABLE", VDISK_REMOVABLE.into()),
        ("VDISK_READONLY", VDISK_READONLY.into()),
    ];
    for (name, ours) in layout {
        assert_eq!(num(name), *ours, "{name}");
    }
    // The same field values as blkif_layout.c, encoded by wire.rs. The
    // discard and indirect views are shorter than the slot: the rest is 0.
    let rq = Request::direct(
        BLKIF_OP_WRITE,
        0x0203,
        0x1122_3344_5566_7788,
        0x99,
        &[
            RawSegment {
                gref: 0xaabb_ccdd,
                first_sect: 1,
                last_sect: 6,
            },
            RawSegment {
                gref: 0x0102_0304,
                first_sect: 0,
                last_sect: 7,
            },
        ],
    );
    assert_eq!(c["request"], hex(rq.as_bytes()));
    let d = Request::discard(5, 42, 1000, 0x1_2345_6789, BLKIF_DISCARD_SECURE);
    assert_eq!(c["discard"], hex(&d.as_bytes()[..DISCARD_REQUEST_SIZE]));
    assert!(d.as_bytes()[DISCARD_REQUEST_SIZE..].iter().all(|&b| b == 0));
    let i = Request::indirect(BLKIF_OP_READ, 300, 9, 7, 8, &[10, 11]);
    assert_eq!(c["indirect"], hex(&i.as_bytes()[..INDIRECT_REQUEST_SIZE]));
    let mut rs = [0u8; RESPONSE_SIZE];
    Response {
        id: 0xdead_beef_cafe_f00d,
        operation: BLKIF_OP_FLUSH_DISKCACHE,
        status: BLKIF_RSP_EOPNOTSUPP,
    }
    .encode(&mut rs);
    assert_eq!(c["response"], hex(&rs));
}

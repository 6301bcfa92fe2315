//! wire.rs against Xen's own io/netif.h: sizes, ring sizes, constants and
//! the bytes of sample structs, printed by a C program built on the header.
//!
//! read first: tests/c_header/netif_layout.c, src/wire.rs. A missing header
//! or compiler fails the test (apt-get install libxen-dev and a C compiler).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use xcp_netback::wire::*;
use xcp_ring::sring::{ring_size, slot_size};
use xcp_ring::RingEntry;

const HEADER: &str = "/usr/include/xen/io/netif.h";
const INSTALL: &str = "apt-get install libxen-dev (Xen public headers) and a C compiler";

fn c_values() -> BTreeMap<String, String> {
    assert!(Path::new(HEADER).exists(), "{HEADER} is missing: {INSTALL}");
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("netif_layout");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c_header/netif_layout.c");
    let target = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let compiler = cc::Build::new()
        .cargo_metadata(false)
        .target(&target)
        .host(&target)
        .opt_level(0)
        .try_get_compiler()
        .unwrap_or_else(|e| panic!("no C compiler ({e}): {INSTALL}"));
    let status = compiler
        .to_command()
        .args(["-Wall", "-Werror", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C compiler ({e}): {INSTALL}"));
    assert!(
        status.success(),
        "netif_layout.c failed to build: {INSTALL}"
    );
    let run = Command::new(&out).output().expect("run netif_layout");
    assert!(run.status.success());
    String::from_utf8(run.stdout)
        .expect("ascii")
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn hex<T: RingEntry>(v: &T) -> String {
    let mut b = vec![0u8; T::SIZE];
    v.encode(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn wire_matches_netif_h() {
    let c = c_values();
    let num = |k: &str| -> i64 {
        c.get(k)
            .unwrap_or_else(|| panic!("{k} not printed"))
            .parse()
            .expect("number")
    };
    assert_eq!(num("sizeof_tx_request"), TxRequest::SIZE as i64);
    assert_eq!(num("sizeof_tx_response"), TxResponse::SIZE as i64);
    assert_eq!(num("sizeof_rx_request"), RxRequest::SIZE as i64);
    assert_eq!(num("sizeof_rx_response"), RxResponse::SIZE as i64);
    assert_eq!(num("sizeof_extra_info"), ExtraInfo::SIZE as i64);
    assert_eq!(
        num("tx_ring_size"),
        i64::from(ring_size(PAGE_SIZE, slot_size::<TxRequest, TxResponse>()))
    );
    assert_eq!(
        num("rx_ring_size"),
        i64::from(ring_size(PAGE_SIZE, slot_size::<RxRequest, RxResponse>()))
    );
    let constants: &[(&str, i64)] = &[
        ("XEN_NETIF_NR_SLOTS_MIN", MAX_SLOTS as i64),
        ("XEN_NETIF_MAX_TX_SIZE", MAX_TX_SIZE as i64),
        ("NETTXF_csum_blank", NETTXF_CSUM_BLANK.into()),
        ("NETTXF_data_validated", NETTXF_DATA_VALIDATED.into()),
        ("NETTXF_more_data", NETTXF_MORE_DATA.into()),
        ("NETTXF_extra_info", NETTXF_EXTRA_INFO.into()),
        ("NETRXF_data_validated", NETRXF_DATA_VALIDATED.into()),
        ("NETRXF_csum_blank", NETRXF_CSUM_BLANK.into()),
        ("NETRXF_more_data", NETRXF_MORE_DATA.into()),
        ("NETRXF_extra_info", NETRXF_EXTRA_INFO.into()),
        (
            "XEN_NETIF_EXTRA_TYPE_NONE",
            XEN_NETIF_EXTRA_TYPE_NONE.into(),
        ),
        ("XEN_NETIF_EXTRA_TYPE_GSO", XEN_NETIF_EXTRA_TYPE_GSO.into()),
        (
            "XEN_NETIF_EXTRA_TYPE_MCAST_ADD",
            XEN_NETIF_EXTRA_TYPE_MCAST_ADD.into(),
        ),
        (
            "XEN_NETIF_EXTRA_TYPE_MCAST_DEL",
            XEN_NETIF_EXTRA_TYPE_MCAST_DEL.into(),
        ),
        (
            "XEN_NETIF_EXTRA_TYPE_HASH",
            XEN_NETIF_EXTRA_TYPE_HASH.into(),
        ),
        ("XEN_NETIF_EXTRA_TYPE_MAX", XEN_NETIF_EXTRA_TYPE_MAX.into()),
        (
            "XEN_NETIF_EXTRA_FLAG_MORE",
            XEN_NETIF_EXTRA_FLAG_MORE.into(),
        ),
        ("XEN_NETIF_GSO_TYPE_NONE", XEN_NETIF_GSO_TYPE_NONE.into()),
        ("XEN_NETIF_GSO_TYPE_TCPV4", XEN_NETIF_GSO_TYPE_TCPV4.into()),
        ("XEN_NETIF_GSO_TYPE_TCPV6", XEN_NETIF_GSO_TYPE_TCPV6.into()),
        ("NETIF_RSP_DROPPED", NETIF_RSP_DROPPED.into()),
        ("NETIF_RSP_ERROR", NETIF_RSP_ERROR.into()),
        ("NETIF_RSP_OKAY", NETIF_RSP_OKAY.into()),
        ("NETIF_RSP_NULL", NETIF_RSP_NULL.into()),
    ];
    for (name, ours) in constants {
        assert_eq!(num(name), *ours, "{name}");
    }
    // The same field values as netif_layout.c, encoded by wire.rs.
    let tx = TxRequest {
        gref: 0x1234_5678,
        offset: 0x0102,
        flags: 0x0d,
        id: 0xbeef,
        size: 1514,
    };
    assert_eq!(c["tx_request"], hex(&tx));
    assert_eq!(
        c["tx_response"],
        hex(&TxResponse {
            id: 0x0a0b,
            status: NETIF_RSP_DROPPED
        })
    );
    assert_eq!(
        c["rx_request"],
        hex(&RxRequest {
            id: 0x0304,
            gref: 0xcafe_0001
        })
    );
    assert_eq!(
        c["rx_response"],
        hex(&RxResponse {
            id: 7,
            offset: 16,
            flags: 0x5,
            status: 4000
        })
    );
    let extra = ExtraInfo::gso(
        Gso {
            size: 1448,
            kind: XEN_NETIF_GSO_TYPE_TCPV6,
            features: 0x0201,
        },
        XEN_NETIF_EXTRA_FLAG_MORE,
    );
    assert_eq!(c["extra_gso"], hex(&RxResponse::from_extra(&extra)));
}

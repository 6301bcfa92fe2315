//! Measures the peak heap one big read makes dom0 hold while it is served
//! through the relay path (`Relayed::on_message`, as dom0's board does):
//! XML-RPC and JSON-RPC `VM.get_all_records` and `event.from` from scratch
//! with 1,000 VMs, each with two VIFs, two VBDs and two VDIs (the set
//! `tests/db_memory.rs` measures). The peak above what the engine held
//! before the call must fit [`budget::CALL_BYTES`] (issue #12: dom0 died on
//! `memory allocation of 6808988 bytes failed`). A reply past
//! [`budget::REPLY_BYTES`] is refused with `LIMIT_REACHED`, within the
//! same bound. The request side too: the worst bodies the codecs accept
//! (the most elements, tokens, maps) must decode within
//! [`budget::REQUEST_BYTES`]. The replies are also checked byte for byte against the
//! codecs' encoding of the value tree the engine used to build. One test
//! per binary: the counting allocator is global.

use std::collections::VecDeque;

use xcp_relay::{FromToolstack, ToToolstack};
use xenapi::budget;
use xenapi::http::MAX_BODY;
use xenapi::relayed::Relayed;
use xenapi::value::Value;
use xenapi::{jsonrpc, xmlrpc};

mod common;
use common::*;
mod memory;
use memory::{add_vms, call, rec, Eng};

#[global_allocator]
static GLOBAL: memory::Counting = memory::Counting;

/// 1,000 VMs with their devices, as `tests/db_memory.rs` creates them.
fn load(e: &mut Eng, sid: &Value) {
    let Value::Array(srs) = call(e, "SR.get_all", vec![sid.clone()]) else {
        panic!("SR.get_all")
    };
    let net = call(
        e,
        "network.create",
        vec![
            sid.clone(),
            rec(&[("name_label", s("xenbr0")), ("bridge", s("xenbr0"))]),
        ],
    );
    add_vms(e, sid, &srs[0], &net, 0..budget::VMS);
}

fn http(path: &str, ctype: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Serves `request` on a fresh connection; returns (peak extra heap while
/// it was served, the reply).
fn measure(e: &mut Eng, conn: u32, request: Vec<u8>) -> (usize, Vec<u8>) {
    let mut relayed = Relayed::new();
    let mut out = VecDeque::new();
    let msg = ToToolstack::Data {
        conn,
        bytes: request,
    };
    let before = memory::reset_peak();
    relayed.on_message(e, T0, 1, msg, &mut out);
    let peak = (memory::peak() - before) as usize;
    let mut reply = Vec::new();
    for m in out {
        if let FromToolstack::Data { bytes, .. } = m {
            reply.extend_from_slice(&bytes);
        }
    }
    (peak, reply)
}

/// The body of an HTTP response.
fn body_of(reply: &[u8]) -> &[u8] {
    let at = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    &reply[at + 4..]
}

#[test]
fn big_reads_fit_call_bytes() {
    let (mut e, sid) = memory::open_measured();
    load(&mut e, &sid);
    let sid = sid.as_str().expect("a session ref").to_owned();
    let xml_call = |m: &str, extra: &str| {
        format!(
            "<?xml version='1.0'?><methodCall><methodName>{m}</methodName><params><param><value><string>{sid}</string></value></param>{extra}</params></methodCall>"
        )
    };
    let from_scratch = || {
        vec![
            Value::String(sid.clone()),
            Value::Array(vec![s("*")]),
            s(""),
            Value::Float(0.0),
        ]
    };
    // (name, request, the value the engine used to build, XML?, refused?)
    let cases = [
        (
            "XML-RPC VM.get_all_records",
            http("/RPC2", "text/xml", &xml_call("VM.get_all_records", "")),
            vec![Value::String(sid.clone())],
            "VM.get_all_records",
            true,
            false,
        ),
        (
            "JSON-RPC VM.get_all_records",
            http(
                "/jsonrpc",
                "application/json",
                &format!(
                    r#"{{"jsonrpc":"2.0","id":1,"method":"VM.get_all_records","params":["{sid}"]}}"#
                ),
            ),
            vec![Value::String(sid.clone())],
            "VM.get_all_records",
            false,
            false,
        ),
        (
            "XML-RPC event.from from scratch",
            http(
                "/RPC2",
                "text/xml",
                &xml_call(
                    "event.from",
                    "<param><value><array><data><value>*</value></data></array></value></param><param><value></value></param><param><value><double>0</double></value></param>",
                ),
            ),
            from_scratch(),
            "event.from",
            true,
            true,
        ),
        (
            "JSON-RPC event.from from scratch",
            http(
                "/jsonrpc",
                "application/json",
                &format!(
                    r#"{{"jsonrpc":"2.0","id":1,"method":"event.from","params":["{sid}",["*"],"",0.0]}}"#
                ),
            ),
            from_scratch(),
            "event.from",
            false,
            // 9.6 MB since each VIF has a VIF_metrics record: past
            // REPLY_BYTES, refused as the XML-RPC one is.
            true,
        ),
    ];
    let mut failed = Vec::new();
    for (i, (name, request, params, method, xml, refused)) in cases.into_iter().enumerate() {
        let (peak, reply) = measure(&mut e, i as u32 + 1, request);
        let len = reply.len();
        println!(
            "{name}: reply {len} B, peak {peak} B ({:.3} x the reply), CALL_BYTES {}",
            peak as f64 / len as f64,
            budget::CALL_BYTES
        );
        assert!(reply.starts_with(b"HTTP/1.1 200 OK"), "{name}");
        if peak > budget::CALL_BYTES {
            failed.push(format!("{name}: peak {peak} B > CALL_BYTES"));
        }
        let body = body_of(&reply);
        let text = std::str::from_utf8(body).expect("UTF-8");
        if refused {
            assert!(text.contains("LIMIT_REACHED"), "{name}: {text}");
            continue;
        }
        // The same bytes as the tree the engine used to build.
        let tree = call(&mut e, method, params);
        let want = if xml {
            xmlrpc::encode_response(&Ok(tree)).into_bytes()
        } else {
            jsonrpc::encode_response(jsonrpc::Version::V2, 1.into(), &Ok(tree))
        };
        assert!(
            body == want.as_slice(),
            "{name}: the reply differs from the tree's encoding"
        );
    }
    // The request side: bodies of the smallest values, as many as the
    // codecs accept (and 1 MiB of them, refused).
    let xml_of = |each: &str, n: usize| {
        xml_call(
            "VM.get_all",
            &format!(
                "<param><value><array><data>{}</data></array></value></param>",
                each.repeat(n)
            ),
        )
    };
    let json_of = |each: &str, n: usize| {
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"VM.get_all","params":["{sid}",[{}[]]]}}"#,
            each.repeat(n)
        )
    };
    let struct_value = "<value><struct><member><name/><value/></member></struct></value>";
    let requests = [
        (
            "XML-RPC empty values at MAX_ELEMENTS",
            http(
                "/RPC2",
                "text/xml",
                &xml_of("<value/>", xmlrpc::MAX_ELEMENTS - 16),
            ),
        ),
        (
            "XML-RPC one-member structs at MAX_ELEMENTS",
            http(
                "/RPC2",
                "text/xml",
                &xml_of(struct_value, xmlrpc::MAX_ELEMENTS / 5 - 8),
            ),
        ),
        (
            "XML-RPC 1 MiB of empty values",
            http(
                "/RPC2",
                "text/xml",
                &xml_of("<value/>", (MAX_BODY - 400) / 8),
            ),
        ),
        (
            "JSON-RPC empty arrays at MAX_TOKENS",
            http(
                "/jsonrpc",
                "application/json",
                &json_of("[],", jsonrpc::MAX_TOKENS / 2 - 16),
            ),
        ),
        (
            "JSON-RPC one-entry maps at MAX_OBJECTS",
            http(
                "/jsonrpc",
                "application/json",
                &json_of(r#"{"":[]},"#, jsonrpc::MAX_OBJECTS - 16),
            ),
        ),
        (
            "JSON-RPC 1 MiB of empty arrays",
            http(
                "/jsonrpc",
                "application/json",
                &json_of("[],", (MAX_BODY - 400) / 3),
            ),
        ),
    ];
    for (name, request) in requests {
        let request_len = request.len();
        let (peak, reply) = measure(&mut e, 9, request);
        println!(
            "{name}: request {} B, peak {peak} B, REQUEST_BYTES {}: {}",
            request_len,
            budget::REQUEST_BYTES,
            String::from_utf8_lossy(&reply[..reply.len().min(12)])
        );
        if peak > budget::REQUEST_BYTES {
            failed.push(format!("{name}: peak {peak} B > REQUEST_BYTES"));
        }
    }
    assert!(failed.is_empty(), "{failed:?}");
}

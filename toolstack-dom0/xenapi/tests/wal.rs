//! The WAL at engine open: a torn tail is cut, corruption in the middle
//! makes the engine read-only with every intact record applied, and logs in
//! the old format still read.
mod common;

use common::*;
use xenapi::value::Value;
use xenapi::wal::{self, Format, MemStorage};

/// A host with three VMs made by three separate calls (three frames after
/// the seed), and the durable log.
fn three_vms() -> (MemStorage, Vec<Value>) {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let vms = ["a", "b", "c"]
        .iter()
        .map(|n| new_vm(&mut e, &sid, n))
        .collect();
    (e.storage_for_tests().crash(), vms)
}

/// Byte ranges of the log's frames (format 2), in order.
fn frame_ranges(log: &[u8]) -> Vec<(usize, usize)> {
    let r = wal::read_log(log);
    assert!(r.damage.is_empty());
    let mut pos = wal::LOG_HEADER_LEN;
    r.payloads
        .iter()
        .map(|p| {
            let start = pos;
            pos += wal::FRAME_HEADER_LEN + p.len();
            (start, pos)
        })
        .collect()
}

fn names(e: &mut E, sid: &Value, vms: &[Value]) -> Vec<Option<Value>> {
    vms.iter()
        .map(|vm| {
            e.call_value(T0, "VM.get_name_label", vec![sid.clone(), vm.clone()])
                .ok()
        })
        .collect()
}

#[test]
fn torn_tail_at_every_byte_of_the_last_frame_is_cut() {
    let (st, vms) = three_vms();
    let frames = frame_ranges(&st.durable);
    let (start, end) = *frames.last().unwrap();
    for cut in start..end {
        let torn = MemStorage {
            durable: st.durable[..cut].to_vec(),
            ..MemStorage::default()
        };
        let mut e = open(torn);
        assert!(!e.read_only(), "cut {cut}");
        assert_eq!(e.wal_report().torn_bytes, (cut - start) as u64);
        assert_eq!(e.storage_for_tests().durable.len(), start, "cut {cut}");
        let sid = login(&mut e);
        let got = names(&mut e, &sid, &vms);
        assert_eq!(got, [Some(s("a")), Some(s("b")), None], "cut {cut}");
        // Writable: a new call lands and survives a restart.
        let d = new_vm(&mut e, &sid, "d");
        let mut again = open(e.storage_for_tests().crash());
        let sid = login(&mut again);
        assert_eq!(names(&mut again, &sid, &[d]), [Some(s("d"))]);
    }
}

#[test]
fn a_flipped_byte_in_a_middle_frame_opens_read_only_with_every_other_record() {
    let (st, vms) = three_vms();
    let frames = frame_ranges(&st.durable);
    // The frame that made VM "b" (second to last).
    let (start, end) = frames[frames.len() - 2];
    for at in (start..end).step_by(7).chain([end - 1]) {
        let mut bad = st.clone();
        bad.durable[at] ^= 0x20;
        let before = bad.durable.clone();
        let mut e = open(bad);
        assert!(e.read_only(), "byte {at}");
        let d = &e.wal_report().damage;
        assert_eq!(d[0].offset, start);
        assert!(e.wal_report().summary().contains("READ-ONLY"));
        // Login still works; reads see "a" and "c" ("b"'s record is lost).
        let sid = login(&mut e);
        assert_eq!(
            names(&mut e, &sid, &vms),
            [Some(s("a")), None, Some(s("c"))],
            "byte {at}"
        );
        ok(&mut e, "VM.get_all_records", vec![sid.clone()]);
        // Every mutating call fails and names the offset.
        let p = fails(
            &mut e,
            "VM.set_name_label",
            vec![sid.clone(), vms[0].clone(), s("x")],
            "INTERNAL_ERROR",
        );
        assert!(p[0].contains(&format!("byte offset {start}")), "{p:?}");
        let mut rec = std::collections::BTreeMap::new();
        rec.insert("name_label".to_string(), s("new"));
        fails(
            &mut e,
            "VM.create",
            vec![sid.clone(), Value::Map(rec)],
            "INTERNAL_ERROR",
        );
        fails(
            &mut e,
            "Async.VM.start",
            vec![
                sid.clone(),
                vms[0].clone(),
                Value::Bool(false),
                Value::Bool(false),
            ],
            "INTERNAL_ERROR",
        );
        ok(&mut e, "session.logout", vec![sid]);
        // Nothing was cut, compacted or appended.
        assert_eq!(e.storage_for_tests().durable, before, "byte {at}");
        assert!(e.storage_for_tests().buffered.is_empty());
    }
}

#[test]
fn an_old_format_log_reads_and_is_rewritten() {
    let (st, vms) = three_vms();
    let r = wal::read_log(&st.durable);
    let mut old = Vec::new();
    for p in &r.payloads {
        old.extend(wal::frame_v1(p));
    }
    // An old torn tail too.
    old.extend(&wal::frame_v1(b"{\"ops\":[]}")[..5]);
    let mut e = open(MemStorage {
        durable: old,
        ..MemStorage::default()
    });
    assert_eq!(e.wal_report().format, Some(Format::V1));
    assert!(!e.read_only());
    let sid = login(&mut e);
    assert_eq!(
        names(&mut e, &sid, &vms),
        [Some(s("a")), Some(s("b")), Some(s("c"))]
    );
    assert_eq!(
        wal::read_log(&e.storage_for_tests().durable).format,
        Format::V2
    );
    let d = new_vm(&mut e, &sid, "d");
    let mut again = open(e.storage_for_tests().crash());
    assert_eq!(again.wal_report().format, Some(Format::V2));
    let sid = login(&mut again);
    let mut all = vms.clone();
    all.push(d);
    assert_eq!(
        names(&mut again, &sid, &all),
        [Some(s("a")), Some(s("b")), Some(s("c")), Some(s("d"))]
    );
}

#[test]
fn an_old_format_log_corrupt_in_the_middle_is_read_only() {
    let (st, vms) = three_vms();
    let r = wal::read_log(&st.durable);
    let mut old = Vec::new();
    let mut offsets = Vec::new();
    for p in &r.payloads {
        offsets.push(old.len());
        old.extend(wal::frame_v1(p));
    }
    let b = offsets[offsets.len() - 2];
    old[b + 12] ^= 1;
    let mut e = open(MemStorage {
        durable: old,
        ..MemStorage::default()
    });
    assert!(e.read_only());
    assert_eq!(e.wal_report().damage[0].offset, b);
    let sid = login(&mut e);
    assert_eq!(
        names(&mut e, &sid, &vms),
        [Some(s("a")), None, Some(s("c"))]
    );
}

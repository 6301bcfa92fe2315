//! What netdom reports, as the records show it: guest VIF counters become
//! `VIF_metrics` rates (reaching `event.from` as any change does), its
//! management link becomes the management PIF, and nothing a hostile
//! netdom sends breaks or floods the engine.

use std::collections::BTreeMap;

use xcp_relay::{VifCounters, MAX_VIF_STATS};
use xenapi::metrics::{ManagementLink, MIN_SAMPLE_MS};
use xenapi::value::{Instant, Value};
use xenapi::wal::MemStorage;

mod common;
use common::*;

fn network(e: &mut E, sid: &Value) -> Value {
    let Value::Array(nets) = ok(e, "network.get_all", vec![sid.clone()]) else {
        panic!("network.get_all")
    };
    nets[0].clone()
}

fn new_vif(e: &mut E, sid: &Value, vm: &Value, device: &str) -> Value {
    let net = network(e, sid);
    let mut r = BTreeMap::new();
    r.insert("VM".to_string(), vm.clone());
    r.insert("network".to_string(), net);
    r.insert("device".to_string(), s(device));
    r.insert("MAC".to_string(), s(""));
    ok(e, "VIF.create", vec![sid.clone(), Value::Map(r)])
}

fn field(e: &mut E, sid: &Value, class: &str, f: &str, r: &Value) -> Value {
    ok(e, &format!("{class}.get_{f}"), vec![sid.clone(), r.clone()])
}

fn start(e: &mut E, sid: &Value, vm: &Value) -> u16 {
    let f = Value::Bool(false);
    ok(e, "VM.start", vec![sid.clone(), vm.clone(), f.clone(), f]);
    field(e, sid, "VM", "domid", vm).as_int().unwrap() as u16
}

fn counters(domid: u16, devid: u32, rx_bytes: u64, tx_bytes: u64) -> VifCounters {
    VifCounters {
        domid,
        devid,
        rx_bytes,
        tx_bytes,
        connected: true,
        ..VifCounters::default()
    }
}

/// (io_read_kbs, io_write_kbs, last_updated) of a VIF's metrics.
fn rates(e: &mut E, sid: &Value, vif: &Value) -> (f64, f64, Value) {
    let m = field(e, sid, "VIF", "metrics", vif);
    let f = |v: Value| match v {
        Value::Float(x) => x,
        other => panic!("not a float: {other:?}"),
    };
    (
        f(field(e, sid, "VIF_metrics", "io_read_kbs", &m)),
        f(field(e, sid, "VIF_metrics", "io_write_kbs", &m)),
        field(e, sid, "VIF_metrics", "last_updated", &m),
    )
}

fn at(ms: u64) -> Instant {
    Instant(T0.0 + ms)
}

/// A running VM with VIFs 0 and 1: (engine, session, vm, domid, vif 0, vif 1).
fn running() -> (E, Value, Value, u16, Value, Value) {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let vm = new_vm(&mut e, &sid, "guest");
    let a = new_vif(&mut e, &sid, &vm, "0");
    let b = new_vif(&mut e, &sid, &vm, "1");
    let d = start(&mut e, &sid, &vm);
    (e, sid, vm, d, a, b)
}

#[test]
fn rates_come_from_two_samples_in_kib_per_second_each_way() {
    let (mut e, sid, _vm, d, a, b) = running();
    // The first sample only starts the count.
    assert!(!e
        .vif_stats(at(0), &[counters(d, 0, 1 << 20, 0), counters(d, 1, 0, 0)])
        .unwrap());
    assert_eq!(rates(&mut e, &sid, &a).0, 0.0);
    // 2 s later: 200 KiB more to the guest, 20 KiB from it.
    let changed = e
        .vif_stats(
            at(2000),
            &[
                counters(d, 0, (1 << 20) + 200 * 1024, 20 * 1024),
                counters(d, 1, 0, 0),
            ],
        )
        .unwrap();
    assert!(changed);
    let (read, write, updated) = rates(&mut e, &sid, &a);
    assert_eq!((read, write), (100.0, 10.0));
    assert_eq!(
        updated,
        Value::DateTime(xenapi::value::format_datetime(at(2000)))
    );
    // The idle VIF wrote nothing.
    assert_eq!(rates(&mut e, &sid, &b).0, 0.0);
    // Traffic stops: the next sample brings the rates back to 0.
    let same = [
        counters(d, 0, (1 << 20) + 200 * 1024, 20 * 1024),
        counters(d, 1, 0, 0),
    ];
    assert!(e.vif_stats(at(4000), &same).unwrap());
    assert_eq!(rates(&mut e, &sid, &a).0, 0.0);
    // Nothing moves: nothing is written.
    assert!(!e.vif_stats(at(6000), &same).unwrap());
    assert_eq!(
        rates(&mut e, &sid, &a).2,
        Value::DateTime(xenapi::value::format_datetime(at(4000)))
    );
    assert_eq!(e.metrics_counters().unknown_vifs, 0);
}

#[test]
fn a_counter_that_went_backwards_starts_the_rate_again() {
    let (mut e, sid, _vm, d, a, _b) = running();
    e.vif_stats(at(0), &[counters(d, 0, 10_000, 0)]).unwrap();
    e.vif_stats(at(2000), &[counters(d, 0, 10_000 + 4096, 0)])
        .unwrap();
    assert_eq!(rates(&mut e, &sid, &a).0, 2.0);
    // netdom restarted: its counters start from 0. No rate from that.
    assert!(!e.vif_stats(at(4000), &[counters(d, 0, 2048, 0)]).unwrap());
    assert_eq!(rates(&mut e, &sid, &a).0, 2.0);
    // The next sample counts from the restart.
    e.vif_stats(at(6000), &[counters(d, 0, 2048 + 8192, 0)])
        .unwrap();
    assert_eq!(rates(&mut e, &sid, &a).0, 4.0);
    // A rebuilt netdom: every rate starts again from its first counters.
    e.restart_vif_samples();
    assert!(!e
        .vif_stats(at(8000), &[counters(d, 0, 1 << 30, 0)])
        .unwrap());
    assert_eq!(rates(&mut e, &sid, &a).0, 4.0);
}

#[test]
fn rate_changes_reach_event_from() {
    let (mut e, sid, _vm, d, a, _b) = running();
    let classes = ["vif_metrics"];
    let (tok, _) = event_from(&mut e, &sid, &classes, s(""));
    let generation = e.generation();
    e.vif_stats(at(0), &[counters(d, 0, 0, 0)]).unwrap();
    e.vif_stats(at(2000), &[counters(d, 0, 0, 2048)]).unwrap();
    assert!(e.generation() > generation, "boards wake parked calls");
    let (_, evs) = event_from(&mut e, &sid, &classes, tok);
    assert_eq!(evs.len(), 1, "{evs:?}");
    let Value::Map(ev) = &evs[0] else { panic!() };
    assert_eq!(ev["operation"], s("mod"));
    assert_eq!(ev["ref"], field(&mut e, &sid, "VIF", "metrics", &a));
    let Value::Map(snap) = &ev["snapshot"] else {
        panic!()
    };
    assert_eq!(snap["io_write_kbs"], Value::Float(1.0));
}

#[test]
fn hostile_reports_are_bounded_ignored_and_counted() {
    let (mut e, sid, vm, d, a, _b) = running();
    // Unknown domains and devices, the control domain, a halted VM's
    // VIF: ignored and counted, nothing written.
    let other = new_vm(&mut e, &sid, "halted");
    new_vif(&mut e, &sid, &other, "0");
    let unknown = [
        counters(d + 100, 0, 1, 1),
        counters(d, 7, 1, 1),
        counters(0, 0, 1, 1),
        counters(u16::MAX, u32::MAX, u64::MAX, u64::MAX),
    ];
    assert!(!e.vif_stats(at(0), &unknown).unwrap());
    assert!(!e.vif_stats(at(5000), &unknown).unwrap());
    assert_eq!(e.metrics_counters().unknown_vifs, 8);
    // More entries than a message may hold: the rest are ignored.
    let mut many = vec![counters(d + 100, 0, 0, 0); MAX_VIF_STATS];
    many.push(counters(d, 0, 0, 0));
    many.extend(vec![counters(d, 1, 0, 0); 1000]);
    assert!(!e.vif_stats(at(6000), &many).unwrap());
    let c = e.metrics_counters();
    assert_eq!(c.excess_entries, 1001);
    assert_eq!(
        c.vif_samples, 0,
        "the entry past the bound was not looked at"
    );
    // Samples sooner than MIN_SAMPLE_MS make no rate (a chatty netdom
    // cannot flood the event log); extreme counters stay finite.
    e.vif_stats(at(10_000), &[counters(d, 0, 0, 0)]).unwrap();
    let generation = e.generation();
    for i in 1..50 {
        e.vif_stats(at(10_000 + i), &[counters(d, 0, i * 1000, 0)])
            .unwrap();
    }
    assert_eq!(e.generation(), generation);
    assert_eq!(e.metrics_counters().early_samples, 49);
    e.vif_stats(
        at(10_000 + MIN_SAMPLE_MS),
        &[counters(d, 0, u64::MAX, u64::MAX)],
    )
    .unwrap();
    let (read, write, _) = rates(&mut e, &sid, &a);
    assert!(read.is_finite() && read > 0.0 && write.is_finite());
    // A clock that went back restarts, never divides by zero.
    assert!(!e.vif_stats(at(0), &[counters(d, 0, 1, 1)]).unwrap());
    // Once the VM stops, its VIFs' rates are 0 and reports for its old
    // domain are unknown.
    ok(&mut e, "VM.hard_shutdown", vec![sid.clone(), vm.clone()]);
    assert_eq!(rates(&mut e, &sid, &a).0, 0.0);
    let unknown_before = e.metrics_counters().unknown_vifs;
    assert!(!e.vif_stats(at(20_000), &[counters(d, 0, 5, 5)]).unwrap());
    assert_eq!(e.metrics_counters().unknown_vifs, unknown_before + 1);
}

#[test]
fn a_restarted_vm_counts_from_its_new_domain() {
    let (mut e, sid, vm, d, a, _b) = running();
    e.vif_stats(at(0), &[counters(d, 0, 0, 0)]).unwrap();
    e.vif_stats(at(2000), &[counters(d, 0, 2048, 0)]).unwrap();
    assert_eq!(rates(&mut e, &sid, &a).0, 1.0);
    ok(&mut e, "VM.hard_shutdown", vec![sid.clone(), vm.clone()]);
    let d2 = start(&mut e, &sid, &vm);
    // The new domain's first sample starts again (even at higher counts).
    assert!(!e
        .vif_stats(at(4000), &[counters(d2, 0, 10_000, 0)])
        .unwrap());
    assert!(e
        .vif_stats(at(6000), &[counters(d2, 0, 10_000 + 4096, 0)])
        .unwrap());
    assert_eq!(rates(&mut e, &sid, &a).0, 2.0);
}

fn management_pif(e: &mut E, sid: &Value) -> Value {
    let Value::Array(pifs) = ok(e, "PIF.get_all", vec![sid.clone()]) else {
        panic!()
    };
    pifs.into_iter()
        .find(|p| field(e, sid, "PIF", "management", p) == Value::Bool(true))
        .expect("a management PIF")
}

#[test]
fn the_link_tells_the_management_pif_the_truth() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let pif = management_pif(&mut e, &sid);
    let classes = ["pif"];
    let (tok, _) = event_from(&mut e, &sid, &classes, s(""));
    let link = ManagementLink {
        mac: [0x52, 0x54, 0, 0x12, 0x34, 0x56],
        address: [10, 0, 2, 15],
        prefix: 24,
        gateway: Some([10, 0, 2, 2]),
        dhcp: true,
    };
    assert!(e.management_link(at(0), &link).unwrap());
    let get = |e: &mut E, f: &str| field(e, &sid, "PIF", f, &pif);
    assert_eq!(get(&mut e, "MAC"), s("52:54:00:12:34:56"));
    assert_eq!(get(&mut e, "IP"), s("10.0.2.15"));
    assert_eq!(get(&mut e, "netmask"), s("255.255.255.0"));
    assert_eq!(get(&mut e, "gateway"), s("10.0.2.2"));
    assert_eq!(get(&mut e, "ip_configuration_mode"), s("DHCP"));
    // The network keeps its bridge.
    let net = get(&mut e, "network");
    assert_eq!(field(&mut e, &sid, "network", "bridge", &net), s("xenbr0"));
    // The change reached event.from; the same link again changes nothing.
    let (_, evs) = event_from(&mut e, &sid, &classes, tok);
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert!(!e.management_link(at(1), &link).unwrap());
    // A static address without a gateway.
    let fixed = ManagementLink {
        address: [192, 168, 1, 9],
        prefix: 16,
        gateway: None,
        dhcp: false,
        ..link
    };
    assert!(e.management_link(at(2), &fixed).unwrap());
    assert_eq!(get(&mut e, "IP"), s("192.168.1.9"));
    assert_eq!(get(&mut e, "netmask"), s("255.255.0.0"));
    assert_eq!(get(&mut e, "gateway"), s(""));
    assert_eq!(get(&mut e, "ip_configuration_mode"), s("Static"));
    // A prefix beyond 32 is refused and counted.
    let bad = ManagementLink { prefix: 33, ..link };
    assert!(!e.management_link(at(3), &bad).unwrap());
    assert_eq!(e.metrics_counters().bad_links, 1);
    assert_eq!(get(&mut e, "IP"), s("192.168.1.9"));
}

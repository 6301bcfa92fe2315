//! What a running guest's agent writes in xenstore becomes its
//! `VM_guest_metrics` as xapi derives it, reaching `event.from` only when
//! it changes; and nothing a hostile guest writes (huge values, thousands
//! of keys, bad UTF-8, flapping writes) costs dom0 more than the bounds.

use std::collections::BTreeMap;

use xenapi::guest_metrics::{MAX_GUEST_BYTES, MAX_OPS, MAX_RECORDS, POLLS_PER_TICK, POLL_MS};
use xenapi::value::{Instant, Value, NULL_REF};
use xenapi::wal::MemStorage;

mod common;
use common::*;

fn at(ms: u64) -> Instant {
    Instant(T0.0 + ms)
}

fn start(e: &mut E, sid: &Value, vm: &Value) -> u32 {
    let f = Value::Bool(false);
    ok(e, "VM.start", vec![sid.clone(), vm.clone(), f.clone(), f]);
    get(e, sid, "VM", "domid", vm).as_int().unwrap() as u32
}

fn running() -> (E, Value, Value, u32) {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let vm = new_vm(&mut e, &sid, "guest");
    let d = start(&mut e, &sid, &vm);
    (e, sid, vm, d)
}

/// What xe-guest-utilities writes for a Debian guest with one address.
fn agent_keys() -> Vec<(&'static str, &'static str)> {
    vec![
        ("data/os_name", "Debian GNU/Linux 12 (bookworm)"),
        ("data/os_uname", "6.1.0-18-amd64"),
        ("data/os_distro", "debian"),
        ("data/os_majorver", "12"),
        ("data/os_minorver", "5"),
        ("data/meminfo_free", "180000"),
        ("data/meminfo_total", "250000"),
        ("attr/PVAddons/MajorVersion", "8"),
        ("attr/PVAddons/MinorVersion", "4"),
        ("attr/vif/0/ipv4/0", "10.0.0.5"),
        ("attr/vif/0/ipv6/0", "fe80::1"),
        ("control/feature-shutdown", "1"),
        ("device/vif/0/state", "4"),
        ("device/vbd/51712/state", "4"),
        ("data/updated", "1"),
    ]
}

fn write(e: &mut E, domid: u32, keys: &[(&str, &str)]) {
    let nodes = e.hypervisor().guest_nodes.entry(domid).or_default();
    for (k, v) in keys {
        nodes.insert(k.to_string(), v.as_bytes().to_vec());
    }
}

fn gm_of(e: &mut E, sid: &Value, vm: &Value) -> Value {
    get(e, sid, "VM", "guest_metrics", vm)
}

fn strings(v: Value) -> BTreeMap<String, String> {
    smap(v)
        .into_iter()
        .map(|(k, v)| (k, v.as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn the_agents_keys_fill_the_record_as_xapi_derives_it() {
    let (mut e, sid, vm, d) = running();
    // Nothing written: no record.
    assert!(!e.monitor(at(0)).unwrap());
    assert_eq!(gm_of(&mut e, &sid, &vm), s(NULL_REF));
    // Keys without data/updated are not taken (the agent is mid-write).
    let mut keys = agent_keys();
    keys.pop();
    write(&mut e, d, &keys);
    assert!(!e.monitor(at(POLL_MS)).unwrap());
    assert_eq!(gm_of(&mut e, &sid, &vm), s(NULL_REF));
    write(&mut e, d, &[("data/updated", "1")]);
    assert!(e.monitor(at(2 * POLL_MS)).unwrap());
    let gm = gm_of(&mut e, &sid, &vm);
    assert_ne!(gm, s(NULL_REF));
    let rec = smap(ok(
        &mut e,
        "VM_guest_metrics.get_record",
        vec![sid.clone(), gm.clone()],
    ));
    let os = strings(rec["os_version"].clone());
    assert_eq!(os["name"], "Debian GNU/Linux 12 (bookworm)");
    assert_eq!(os["uname"], "6.1.0-18-amd64");
    assert_eq!(os["distro"], "debian");
    assert_eq!((os["major"].as_str(), os["minor"].as_str()), ("12", "5"));
    let nets = strings(rec["networks"].clone());
    // Ansible's wait_for_ip_address waits for "0/ip".
    assert_eq!(nets["0/ip"], "10.0.0.5");
    assert_eq!(nets["0/ipv4/0"], "10.0.0.5");
    assert_eq!(nets["0/ipv6/0"], "fe80::1");
    let pv = strings(rec["PV_drivers_version"].clone());
    assert_eq!((pv["major"].as_str(), pv["minor"].as_str()), ("8", "4"));
    assert_eq!(pv["micro"], "-1", "xapi's default for an absent micro");
    assert_eq!(strings(rec["other"].clone())["feature-shutdown"], "1");
    assert_eq!(rec["PV_drivers_up_to_date"], Value::Bool(true));
    assert_eq!(rec["PV_drivers_detected"], Value::Bool(true));
    assert_eq!(rec["live"], Value::Bool(true));
    assert_eq!(rec["memory"], Value::Map(BTreeMap::new()), "as xapi: RRDs");
    assert_eq!(
        rec["last_updated"],
        Value::DateTime(xenapi::value::format_datetime(at(2 * POLL_MS)))
    );
    // xapi's tristates from feature/hotplug/*: absent is unspecified.
    assert_eq!(rec["can_use_hotplug_vbd"], s("unspecified"));
    assert_eq!(rec["can_use_hotplug_vif"], s("unspecified"));
    write(
        &mut e,
        d,
        &[("feature/hotplug/vbd", "1"), ("feature/hotplug/vif", "0")],
    );
    assert!(e.monitor(at(3 * POLL_MS)).unwrap());
    let rec = smap(ok(
        &mut e,
        "VM_guest_metrics.get_record",
        vec![sid.clone(), gm.clone()],
    ));
    assert_eq!(rec["can_use_hotplug_vbd"], s("yes"));
    assert_eq!(rec["can_use_hotplug_vif"], s("no"));
    write(&mut e, d, &[("feature/hotplug/vbd", "maybe")]);
    assert!(e.monitor(at(4 * POLL_MS)).unwrap());
    let v = ok(
        &mut e,
        "VM_guest_metrics.get_can_use_hotplug_vbd",
        vec![sid.clone(), gm],
    );
    assert_eq!(v, s("unspecified"));
}

#[test]
fn older_agents_eth_keys_and_devices_not_connected() {
    let (mut e, sid, vm, d) = running();
    write(
        &mut e,
        d,
        &[
            ("attr/eth0/ip", "192.168.1.9"),
            ("attr/eth1/ipv6/0/addr", "2001:db8::9"),
            ("device/vif/0/state", "3"),
            ("device/vbd/5632/state", "1"),
            ("device/vbd/5632/device-type", "cdrom"),
            ("data/updated", "x"),
        ],
    );
    e.monitor(at(0)).unwrap();
    let gm = gm_of(&mut e, &sid, &vm);
    let nets = strings(get(&mut e, &sid, "VM_guest_metrics", "networks", &gm));
    assert_eq!(nets["0/ip"], "192.168.1.9");
    assert_eq!(nets["1/ipv6/0"], "2001:db8::9");
    assert_eq!(
        get(
            &mut e,
            &sid,
            "VM_guest_metrics",
            "PV_drivers_up_to_date",
            &gm
        ),
        Value::Bool(false),
        "vif 0 is not connected"
    );
}

#[test]
fn a_change_is_one_event_and_no_change_is_none() {
    let (mut e, sid, vm, d) = running();
    write(&mut e, d, &agent_keys());
    e.monitor(at(0)).unwrap();
    let (token, _) = event_from(&mut e, &sid, &["VM_guest_metrics"], s(""));
    // The same keys, and a new free-memory figure (RRDs only): nothing.
    write(&mut e, d, &[("data/meminfo_free", "170000")]);
    assert!(!e.monitor(at(POLL_MS)).unwrap());
    let (token, evs) = event_from(&mut e, &sid, &["VM_guest_metrics"], token);
    assert!(evs.is_empty(), "{evs:?}");
    // A new address: one mod.
    write(&mut e, d, &[("attr/vif/0/ipv4/0", "10.0.0.6")]);
    assert!(e.monitor(at(2 * POLL_MS)).unwrap());
    let (_, evs) = event_from(&mut e, &sid, &["VM_guest_metrics"], token);
    assert_eq!(evs.len(), 1, "{evs:?}");
    let ev = smap(evs[0].clone());
    assert_eq!(ev["operation"], s("mod"));
    let _ = vm;
}

#[test]
fn a_flapping_guest_changes_its_record_at_most_once_per_poll_interval() {
    let (mut e, sid, _vm, d) = running();
    write(&mut e, d, &agent_keys());
    e.monitor(at(0)).unwrap();
    let (mut token, _) = event_from(&mut e, &sid, &["VM_guest_metrics"], s(""));
    let mut events = 0;
    // The guest rewrites its address every 100 ms for 20 s; dom0 looks
    // every second.
    for i in 0..200u64 {
        let ip = format!("10.0.{}.{}", i / 250, i % 250);
        write(&mut e, d, &[("attr/vif/0/ipv4/0", ip.as_str())]);
        if i % 10 == 0 {
            e.monitor(at(100 * i + 1)).unwrap();
            let (t, evs) = event_from(&mut e, &sid, &["VM_guest_metrics"], token);
            token = t;
            events += evs.len();
        }
    }
    assert!(events <= (20_000 / POLL_MS) as usize + 1, "{events} events");
    assert!(events >= 3, "changes are still seen: {events}");
}

#[test]
fn junk_is_refused_and_thousands_of_keys_cost_a_bounded_poll() {
    let (mut e, sid, vm, d) = running();
    write(&mut e, d, &agent_keys());
    let huge = "x".repeat(100_000);
    {
        let nodes = e.hypervisor().guest_nodes.get_mut(&d).unwrap();
        nodes.insert("data/os_name".into(), huge.into_bytes());
        nodes.insert("data/os_distro".into(), vec![0xff, 0xfe, b'a']);
        nodes.insert("data/os_uname".into(), b"a\nb".to_vec());
        for i in 0..5000 {
            nodes.insert(format!("attr/vif/{i}/ipv4/0"), b"10.1.1.1".to_vec());
            nodes.insert(format!("control/k{i}"), vec![b'v'; 200]);
        }
        nodes.insert("attr/vif/0/ipv4/bad.name".into(), b"1.2.3.4".to_vec());
    }
    let ops_before = e.hypervisor().guest_ops;
    e.monitor(at(0)).unwrap();
    let ops = e.hypervisor().guest_ops - ops_before;
    assert!(ops as usize <= MAX_OPS, "{ops} xenstore operations");
    let gm = gm_of(&mut e, &sid, &vm);
    let rec = smap(ok(
        &mut e,
        "VM_guest_metrics.get_record",
        vec![sid.clone(), gm],
    ));
    let os = strings(rec["os_version"].clone());
    assert!(!os.contains_key("name"), "oversized");
    assert!(!os.contains_key("distro"), "not UTF-8");
    assert!(!os.contains_key("uname"), "control characters");
    let kept: usize = ["os_version", "PV_drivers_version", "networks", "other"]
        .iter()
        .map(|f| {
            strings(rec[*f].clone())
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
        })
        .sum();
    assert!(kept <= MAX_GUEST_BYTES, "{kept} bytes kept");
    let counters = e.guest_counters();
    assert!(counters.refused >= 3, "{counters:?}");
    let approx = e.db().approx_bytes();
    assert!(approx > 0);
}

#[test]
fn a_halted_vm_loses_its_record_and_a_restart_makes_a_new_one() {
    let (mut e, sid, vm, d) = running();
    write(&mut e, d, &agent_keys());
    e.monitor(at(0)).unwrap();
    let gm = gm_of(&mut e, &sid, &vm);
    ok(&mut e, "VM.hard_shutdown", vec![sid.clone(), vm.clone()]);
    assert_eq!(gm_of(&mut e, &sid, &vm), s(NULL_REF));
    fails(
        &mut e,
        "VM_guest_metrics.get_record",
        vec![sid.clone(), gm],
        "HANDLE_INVALID",
    );
    assert!(array(ok(&mut e, "VM_guest_metrics.get_all", vec![sid.clone()])).is_empty());
    // Started again: a new domain, whose agent writes again.
    let d2 = start(&mut e, &sid, &vm);
    assert_eq!(gm_of(&mut e, &sid, &vm), s(NULL_REF));
    write(&mut e, d2, &agent_keys());
    e.monitor(at(POLL_MS)).unwrap();
    assert_ne!(gm_of(&mut e, &sid, &vm), s(NULL_REF));
    // VM.destroy after a halt leaves nothing behind.
    ok(&mut e, "VM.hard_shutdown", vec![sid.clone(), vm.clone()]);
    ok(&mut e, "VM.destroy", vec![sid.clone(), vm]);
    assert!(array(ok(&mut e, "VM_guest_metrics.get_all", vec![sid])).is_empty());
}

#[test]
fn polls_per_tick_and_records_are_bounded() {
    let mut e = open(MemStorage::default());
    let sid = login(&mut e);
    let n = MAX_RECORDS + 4;
    let mut domids = Vec::new();
    for i in 0..n {
        let vm = new_vm(&mut e, &sid, &format!("vm{i}"));
        domids.push(start(&mut e, &sid, &vm));
    }
    for d in &domids {
        write(&mut e, *d, &agent_keys());
    }
    let before = e.guest_counters().polls;
    e.monitor(at(0)).unwrap();
    assert_eq!(
        e.guest_counters().polls - before,
        POLLS_PER_TICK as u64,
        "one tick polls a few guests"
    );
    // Enough ticks for every guest to be polled.
    for i in 1..=(n / POLLS_PER_TICK + 2) as u64 {
        e.monitor(at(i * 1000)).unwrap();
    }
    let all = array(ok(&mut e, "VM_guest_metrics.get_all", vec![sid]));
    assert_eq!(all.len(), MAX_RECORDS);
    assert!(e.guest_counters().over_records >= 4);
}

#[test]
fn the_largest_record_a_guest_can_make_fits_record_approx() {
    let (mut e, _sid, _vm, d) = running();
    write(&mut e, d, &agent_keys());
    {
        let nodes = e.hypervisor().guest_nodes.get_mut(&d).unwrap();
        // Long values everywhere the reader looks, short keys.
        for (k, _) in agent_keys() {
            if k.starts_with("data/os_") || k.starts_with("attr/PVAddons") {
                nodes.insert(k.to_string(), vec![b'v'; 250]);
            }
        }
        for n in 0..8 {
            for i in 0..8 {
                nodes.insert(
                    format!("attr/vif/{n}/ipv4/{i}"),
                    format!("10.{n}.{i}.1").into_bytes(),
                );
                nodes.insert(format!("attr/vif/{n}/ipv6/{i}"), vec![b'f'; 39]);
            }
        }
        for i in 0..8 {
            nodes.insert(format!("control/k{i}"), vec![b'c'; 250]);
        }
    }
    let before = e.db().approx_bytes();
    e.monitor(at(0)).unwrap();
    let grew = e.db().approx_bytes() - before;
    println!("largest guest metrics record: {grew} B approx");
    assert!(grew > MAX_GUEST_BYTES / 2, "the guest did fill it: {grew}");
    assert!(
        grew <= xenapi::guest_metrics::RECORD_APPROX,
        "{grew} B > RECORD_APPROX"
    );
}

mod arbitrary {
    use proptest::prelude::*;
    use xenapi::guest_metrics::{read_guest, ENTRY_COST, MAX_GUEST_BYTES, MAX_OPS};
    use xenapi::hypervisor::FakeHypervisor;

    fn path() -> impl Strategy<Value = String> {
        let dirs = prop::sample::select(vec![
            "data/",
            "attr/vif/0/ipv4/",
            "attr/vif/",
            "attr/eth0/",
            "attr/",
            "control/",
            "device/vif/0/",
            "attr/PVAddons/",
        ]);
        (dirs, "[a-zA-Z0-9_./-]{0,40}").prop_map(|(d, rest)| format!("{d}{rest}"))
    }

    proptest! {
        /// Any tree a guest writes: the reader never panics, stays within
        /// its operations, and keeps at most the guest's bytes.
        #[test]
        fn any_tree_is_read_within_the_bounds(
            nodes in prop::collection::btree_map(path(), prop::collection::vec(any::<u8>(), 0..300), 0..200),
            updated in any::<bool>(),
        ) {
            let mut hv = FakeHypervisor::default();
            let mut nodes = nodes;
            if updated {
                nodes.insert("data/updated".into(), b"1".to_vec());
            }
            hv.guest_nodes.insert(1, nodes);
            let report = read_guest(&mut hv, 1);
            prop_assert!(hv.guest_ops as usize <= MAX_OPS);
            let kept: usize = [&report.os_version, &report.pv_drivers_version, &report.networks, &report.other]
                .iter()
                .flat_map(|m| m.iter())
                .map(|(k, v)| k.len() + v.len() + ENTRY_COST)
                .sum();
            // `micro` -1 is xapi's default, not the guest's bytes.
            prop_assert!(kept <= MAX_GUEST_BYTES + 7 + ENTRY_COST, "{} kept", kept);
            for v in report.os_version.values().chain(report.networks.values()) {
                prop_assert!(!v.bytes().any(|b| b < 0x20));
            }
        }
    }
}

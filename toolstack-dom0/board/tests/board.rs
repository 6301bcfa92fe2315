//! The board on the fake platform: builds, NIC hand-overs and the
//! lifecycle, with a failure injected at every step. Every test asserts on
//! the fake's state (what is still held), never on logs.

#[path = "../../builder/tests/common/mod.rs"]
mod elf;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use xcp_bundle::DomainConfig;
use xcp_dom0_board::fake::{Fake, DISK_BAR4, DISK_STATUS, NIC_STATUS};
use xcp_dom0_board::{Board, BoardError, Notice, Platform};
use xcp_pci::Bdf;
use xen_sys::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF};

/// dom0's port of VIRQ_DOM_EXC on the fake.
const DOM_EXC: u32 = 3;
const NIC: Bdf = Bdf {
    bus: 0,
    dev: 4,
    func: 0,
};
const DISK: Bdf = Bdf {
    bus: 0,
    dev: 6,
    func: 0,
};
const SECOND: u64 = 1_000_000_000;

fn image() -> &'static [u8] {
    static IMAGE: OnceLock<Vec<u8>> = OnceLock::new();
    IMAGE.get_or_init(|| elf::Fixture::valid().build())
}

fn config(name: &str) -> DomainConfig {
    DomainConfig {
        name: name.into(),
        image: "kernel.elf".into(),
        memory_mib: 4,
        restart: true,
        start: true,
        cmdline: String::new(),
        xenstore: false,
        passthrough: false,
        nic: false,
        disk: false,
    }
}

/// testdom (restart), stays (restart = false), xenstore, netdom (NIC).
fn configs() -> Vec<DomainConfig> {
    let mut stays = config("stays");
    stays.restart = false;
    let mut xenstore = config("xenstore");
    xenstore.xenstore = true;
    xenstore.restart = false;
    let mut netdom = config("netdom");
    netdom.passthrough = true;
    netdom.nic = true;
    let mut stordom = config("stordom");
    stordom.passthrough = true;
    stordom.disk = true;
    vec![config("testdom"), stays, xenstore, netdom, stordom]
}

const TESTDOM: usize = 0;
const STAYS: usize = 1;
const XENSTORE: usize = 2;
const NETDOM: usize = 3;
const STORDOM: usize = 4;

fn board() -> Board<Fake> {
    let mut images = BTreeMap::new();
    images.insert(String::from("kernel.elf"), image());
    let mut board = Board::new(Fake::new(), images, configs(), DOM_EXC);
    let nic = board.platform.add_virtio_nic(NIC);
    board.devices.push(nic);
    let disk = board.platform.add_virtio_disk(DISK);
    board.devices.push(disk);
    board
}

#[track_caller]
fn assert_clean(fake: &Fake) {
    let left = fake.leftovers();
    assert!(
        left.is_empty(),
        "left behind: {left:?}\njournal: {:#?}",
        fake.journal
    );
}

/// Fails call number `n` (counted from now) of `fake`.
fn fail_in(fake: &mut Fake, n: u64) {
    fake.fail_at = Some(fake.calls + n);
}

/// Whether the injected failure happened; no more are injected after.
fn injected(fake: &mut Fake) -> bool {
    fake.fail_at = None;
    fake.fail_op = None;
    fake.journal.iter().any(|l| l.ends_with(" failed"))
}

fn crash(board: &mut Board<Fake>, domid: u16) {
    board.platform.shut_down(domid, SHUTDOWN_CRASH);
    assert!(board.on_event(DOM_EXC));
}

#[test]
fn a_build_runs_the_domain_and_a_stop_gives_everything_back() {
    let mut b = board();
    let domid = b.start(TESTDOM, None).expect("built");
    let d = &b.platform.domains[&domid];
    assert!(!d.paused, "the domain runs");
    assert_eq!(d.pages, 4 * 256);
    assert!(b.live.contains_key(&domid));
    assert_eq!(
        b.domains.get(domid).map(|m| m.name.as_str()),
        Some("testdom")
    );
    let console = b.live[&domid].console.port;
    assert!(b.platform.watched.contains(&console));
    assert!(b.platform.consoles.contains(&console));
    assert!(b.on_event(console), "the console port is the board's");
    b.stop(domid);
    assert!(b.domains.is_empty());
    assert!(b.live.is_empty());
    assert_clean(&b.platform);
}

#[test]
fn a_failure_at_each_step_of_a_build_leaves_nothing_behind() {
    let mut steps = 0;
    for n in 1.. {
        let mut b = board();
        fail_in(&mut b.platform, n);
        let result = b.start(TESTDOM, None);
        if !injected(&mut b.platform) {
            let domid = result.expect("no failure: built");
            b.stop(domid);
            assert_clean(&b.platform);
            break;
        }
        match result {
            Err(_) => {
                assert!(b.live.is_empty() && b.domains.is_empty());
                steps += 1;
            }
            // Not fatal: unpause (logged; the domain is kept, paused),
            // and the CPU share (logged; it runs with Xen's default).
            Ok(domid) => {
                let failed = |op: &str| {
                    let line = format!("{op} failed");
                    b.platform.journal.contains(&line)
                };
                if failed("set_cpu_share") || failed("cpu_share") {
                    assert!(!b.platform.domains[&domid].paused, "step {n}");
                } else {
                    assert!(b.platform.domains[&domid].paused, "step {n}");
                }
                b.stop(domid);
            }
        }
        assert_clean(&b.platform);
    }
    // createdomain ... setvcpucontext, console connect: every one tried.
    assert!(steps > 10, "only {steps} steps");
}

#[test]
fn a_failure_at_each_step_of_the_xenstore_domains_build_leaves_nothing_behind() {
    for n in 1.. {
        let mut b = board();
        fail_in(&mut b.platform, n);
        let result = b.start(XENSTORE, None);
        if !injected(&mut b.platform) {
            let xs = result.expect("built");
            assert_eq!(b.xs_domid(), Some(xs));
            assert!(b.platform.lifecycle_watched);
            assert_eq!(b.platform.virq_handler, Some(xs));
            b.stop(xs);
            assert_eq!(b.xs_domid(), None);
            assert_clean(&b.platform);
            break;
        }
        match result {
            Err(_) => assert_eq!(b.xs_domid(), None),
            // Not fatal: VIRQ_DOM_EXC stays with dom0, or unpause or the
            // watch failed (logged).
            Ok(xs) => b.stop(xs),
        }
        assert_clean(&b.platform);
    }
}

#[test]
fn a_failure_at_each_step_of_a_build_with_xenstore_leaves_nothing_behind() {
    for n in 1.. {
        let mut b = board();
        let xs = b.start(XENSTORE, None).expect("xenstore built");
        fail_in(&mut b.platform, n);
        let result = b.start(TESTDOM, None);
        let done = !injected(&mut b.platform);
        match result {
            Ok(domid) => {
                assert!(b.platform.introduced.contains(&domid));
                b.stop(domid);
            }
            Err(_) => assert_eq!(b.live.len(), 1),
        }
        assert!(b.platform.introduced.is_empty(), "{n}: still introduced");
        b.stop(xs);
        assert_clean(&b.platform);
        if done {
            break;
        }
    }
}

fn take_relay(b: &mut Board<Fake>) {
    // What the kernel does on NetdomBuilt: the pages go to its channel.
    let relay = b.netdom_mut().and_then(|h| h.take_relay());
    drop(relay);
}

#[test]
fn the_nic_hand_over_gives_netdom_the_device() {
    let mut b = board();
    b.relay = true;
    let domid = b.start_netdom(NETDOM).expect("netdom built");
    assert_eq!(b.take_notices(), vec![Notice::NetdomBuilt { domid }]);
    let f = &b.platform;
    let d = &f.domains[&domid];
    assert_eq!(d.assigned, vec![NIC]);
    assert_eq!(d.iomem, vec![(0xfe000, 4)]);
    assert_eq!(d.ioports, vec![(0xc000, 0x20)]);
    // Snapshot and two relay pages granted to netdom.
    assert_eq!(f.grants.values().filter(|(d, _)| *d == domid).count(), 3);
    assert_eq!(f.pirqs.len(), 3, "one pirq per MSI-X entry");
    assert!(f.msix.contains(&NIC));
    assert_ne!(f.command(NIC) & 0x4, 0, "bus mastering on");
    assert_ne!(f.msix_control(NIC) & 0x8000, 0, "MSI-X enabled");
    let relay_port = b.netdom_mut().and_then(|h| h.relay_port).expect("relay");
    assert!(b.platform.watched.contains(&relay_port));
    take_relay(&mut b);
    b.stop(domid);
    assert_eq!(
        b.take_notices(),
        vec![Notice::NetdomReleased {
            domid,
            relay_port: Some(relay_port)
        }]
    );
    let f = &b.platform;
    let unmap = f
        .position(&format!("unmap_pirq {domid}"))
        .expect("unmapped");
    let destroy = f
        .position(&format!("destroy_domain {domid}"))
        .expect("destroyed");
    assert!(unmap < destroy, "pirqs unmapped before the destroy");
    assert_clean(&b.platform);
}

#[test]
fn a_failure_at_each_step_of_the_nic_hand_over_leaves_nothing_behind() {
    let mut failed = 0;
    for n in 1.. {
        let mut b = board();
        b.relay = true;
        // A driver left the device running.
        b.platform.device_status.insert(NIC_STATUS, 0xf);
        fail_in(&mut b.platform, n);
        let result = b.start_netdom(NETDOM);
        let done = !injected(&mut b.platform);
        match result {
            Ok(domid) => {
                // MSI-X is optional: netdom polls without it.
                take_relay(&mut b);
                b.stop(domid);
            }
            Err(e) => {
                failed += 1;
                assert!(b.take_notices().is_empty(), "{e}");
                assert_eq!(b.platform.command(NIC) & 0x4, 0, "bus mastering off");
            }
        }
        assert_clean(&b.platform);
        if done {
            break;
        }
    }
    assert!(failed > 20, "only {failed} failing steps");
}

#[test]
fn a_failed_msix_step_leaves_netdom_polling_without_pirqs() {
    let mut b = board();
    b.platform.fail_op = Some(("map_msix_pirq", 2));
    let domid = b.start_netdom(NETDOM).expect("built without MSI-X");
    assert!(
        b.platform.pirqs.is_empty(),
        "the first pirq was unmapped again"
    );
    assert_eq!(b.platform.msix_control(NIC) & 0x8000, 0);
    b.stop(domid);
    assert_clean(&b.platform);
}

#[test]
fn a_crashed_domain_is_restarted() {
    let mut b = board();
    let old = b.start(TESTDOM, None).expect("built");
    crash(&mut b, old);
    assert!(!b.platform.domains.contains_key(&old));
    let new: Vec<u16> = b.domains.domids().collect();
    assert_eq!(new.len(), 1);
    assert_ne!(new[0], old);
    assert!(b.platform.domains.contains_key(&new[0]));
    assert_eq!(b.domains.get(new[0]).map(|m| m.restarts), Some(1));
    assert!(!b.live.contains_key(&old));
    assert_eq!(b.platform.consoles.len(), 1, "the old console is closed");
    b.stop(new[0]);
    assert_clean(&b.platform);
}

#[test]
fn a_crash_loop_stops_after_five_restarts_in_a_minute() {
    let mut b = board();
    let mut domid = b.start(TESTDOM, None).expect("built");
    for restart in 1..=xcp_domains::MAX_RESTARTS {
        b.platform.now += SECOND;
        crash(&mut b, domid);
        domid = b.domains.domids().next().expect("restarted");
        assert_eq!(
            b.domains.get(domid).map(|m| m.restarts),
            Some(restart as u64)
        );
    }
    b.platform.now += SECOND;
    crash(&mut b, domid);
    assert!(b.domains.is_empty(), "given up");
    assert_eq!(
        b.gave_up,
        vec![(String::from("testdom"), xcp_domains::MAX_RESTARTS as u64)]
    );
    assert_clean(&b.platform);
}

#[test]
fn crashes_spread_over_more_than_a_minute_keep_restarting() {
    let mut b = board();
    let mut domid = b.start(TESTDOM, None).expect("built");
    for _ in 0..2 * xcp_domains::MAX_RESTARTS {
        b.platform.now += 20 * SECOND;
        crash(&mut b, domid);
        domid = b.domains.domids().next().expect("restarted");
    }
    assert!(b.gave_up.is_empty());
}

#[test]
fn a_domain_with_restart_false_stays_down() {
    let mut b = board();
    let domid = b.start(STAYS, None).expect("built");
    b.platform.shut_down(domid, SHUTDOWN_POWEROFF);
    assert!(b.on_event(DOM_EXC));
    assert!(b.domains.is_empty());
    assert!(b.gave_up.is_empty(), "not a crash loop");
    assert_clean(&b.platform);
}

#[test]
fn a_crashed_netdom_is_rebuilt_with_the_nic() {
    let mut b = board();
    b.relay = true;
    let old = b.start_netdom(NETDOM).expect("netdom built");
    take_relay(&mut b);
    let old_port = b.netdom_mut().and_then(|h| h.relay_port);
    b.take_notices();
    let resets = b.platform.resets;
    // netdom's driver runs the device.
    b.platform.device_status.insert(NIC_STATUS, 0xf);
    crash(&mut b, old);
    let new = b.domains.domids().next().expect("rebuilt");
    assert_eq!(
        new, old,
        "rebuilt under its old domid: guests' VIFs name it"
    );
    assert_eq!(
        b.take_notices(),
        vec![
            Notice::NetdomReleased {
                domid: old,
                relay_port: old_port
            },
            Notice::NetdomBuilt { domid: new }
        ]
    );
    let f = &b.platform;
    let unmap = f.position(&format!("unmap_pirq {old}")).expect("unmapped");
    let destroy = f
        .position(&format!("destroy_domain {old}"))
        .expect("destroyed");
    let release = f.position("release_msix").expect("MSI-X released");
    assert!(unmap < destroy && destroy < release, "{:#?}", f.journal);
    assert!(
        f.resets >= resets + 2,
        "reset on reclaim and before the hand-over"
    );
    // Everything the old netdom had is gone; the new one has the NIC.
    assert!(f.grants.values().all(|(d, _)| *d == new));
    assert!(f.pirqs.values().all(|p| p.domid == new && !p.orphaned));
    assert_eq!(f.domains[&new].assigned, vec![NIC]);
    assert!(!f.ports.contains(&old_port.expect("relay port")));
    take_relay(&mut b);
    b.stop(new);
    assert_clean(&b.platform);
}

#[test]
fn a_netdom_whose_old_domid_is_held_is_rebuilt_under_a_new_one() {
    let mut b = board();
    let old = b.start_netdom(NETDOM).expect("netdom built");
    b.take_notices();
    // Something still maps one of its frames: Xen keeps the dying domain,
    // and its domid, until that mapping goes.
    let frame = u64::from(old) << 20;
    let held = b.platform.map_guest_frames(old, &[frame]).expect("mapped");
    crash(&mut b, old);
    assert_eq!(b.platform.zombies, [old]);
    let new = b.domains.domids().next().expect("rebuilt");
    assert_ne!(new, old);
    assert_eq!(b.take_notices()[1], Notice::NetdomBuilt { domid: new });
    assert_eq!(b.domains.get(new).expect("managed").restarts, 1);
    drop(held);
    b.stop(new);
}

#[test]
fn a_crash_looping_netdom_gives_the_nic_back() {
    let mut b = board();
    let mut domid = b.start_netdom(NETDOM).expect("built");
    for _ in 0..=xcp_domains::MAX_RESTARTS {
        b.platform.now += SECOND;
        crash(&mut b, domid);
        if let Some(d) = b.domains.domids().next() {
            domid = d;
        }
    }
    assert_eq!(b.gave_up.len(), 1);
    assert!(b.netdom_mut().is_none());
    assert_clean(&b.platform);
}

#[test]
fn the_health_check_notices_the_xenstore_domains_death() {
    let mut b = board();
    let xs = b.start(XENSTORE, None).expect("xenstore built");
    let other = b.start(TESTDOM, None).expect("built");
    b.check_xenstore_domain();
    assert_eq!(b.xs_domid(), Some(xs), "alive: nothing done");
    b.platform.shut_down(xs, SHUTDOWN_CRASH);
    b.check_xenstore_domain();
    assert_eq!(b.xs_domid(), None);
    assert!(!b.platform.domains.contains_key(&xs));
    assert!(b.domains.get(xs).is_none(), "restart = false: stays down");
    assert_eq!(b.domains.domids().collect::<Vec<_>>(), vec![other]);
    b.stop(other);
    assert_clean(&b.platform);
}

#[test]
fn release_domain_from_xenstore_triggers_the_check() {
    let mut b = board();
    let _xs = b.start(XENSTORE, None).expect("xenstore built");
    let domid = b.start(TESTDOM, None).expect("built");
    b.platform.shut_down(domid, SHUTDOWN_CRASH);
    assert!(!b.poll_lifecycle(), "nothing fired yet");
    assert!(b.platform.domains.contains_key(&domid));
    b.platform.release_fired = true;
    assert!(b.poll_lifecycle());
    assert!(!b.platform.domains.contains_key(&domid));
    assert!(
        !b.platform.introduced.contains(&domid),
        "released from xenstore"
    );
    assert_eq!(b.domains.len(), 2, "xenstore and the restarted testdom");
}

#[test]
fn a_vanished_domain_is_dropped() {
    let mut b = board();
    let domid = b.start(TESTDOM, None).expect("built");
    b.platform.domains.remove(&domid);
    b.check_domains();
    assert!(b.domains.is_empty());
    assert!(b.live.is_empty());
    assert_clean(&b.platform);
}

#[test]
fn a_missing_image_or_nic_is_an_error_not_a_leak() {
    let mut b = Board::new(Fake::new(), BTreeMap::new(), configs(), DOM_EXC);
    assert!(matches!(
        b.start(TESTDOM, None),
        Err(BoardError::NoImage { config: 0 })
    ));
    assert!(matches!(b.start_netdom(NETDOM), Err(BoardError::NoNic)));
    let mut b = board();
    assert!(matches!(
        b.start_with_nic(TESTDOM, false, ""),
        Err(BoardError::NoPassthrough { config: 0 })
    ));
    assert_clean(&b.platform);
}

#[test]
fn the_operator_can_crash_a_domain_through_the_platform() {
    let mut b = board();
    let domid = b.start(STAYS, None).expect("built");
    b.platform
        .remote_shutdown(domid, SHUTDOWN_CRASH)
        .expect("shut down");
    b.check_domains();
    assert!(b.domains.is_empty());
    assert_clean(&b.platform);
}

#[test]
fn a_vm_build_gives_xen_the_vms_uuid_as_handle_and_takes_a_ramdisk() {
    use xcp_dom0_board::build::{build, DomainRole};
    use xcp_dom0_board::guest_tree::handle_of;
    let mut fake = Fake::new();
    let uuid = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
    let role = DomainRole {
        server: Some(1),
        handle: handle_of(uuid).unwrap(),
        ..Default::default()
    };
    let built = build(&mut fake, image(), b"a ramdisk", 4, role, "xs-whoami=1").unwrap();
    assert_eq!(fake.domains[&built.domid].handle, handle_of(uuid).unwrap());
    // Service domains keep the zero handle.
    let service = build(&mut fake, image(), &[], 4, DomainRole::default(), "").unwrap();
    assert_eq!(fake.domains[&service.domid].handle, [0; 16]);
}

#[test]
fn a_pv_build_creates_the_vcpus_asked_for_and_refuses_a_bad_count_before_xen_is_asked() {
    use xcp_dom0_board::build::{build, DomainRole};
    let mut fake = Fake::new();
    // A service domain: one vCPU.
    assert_eq!(DomainRole::default().vcpus, 1);
    let service = build(&mut fake, image(), &[], 4, DomainRole::default(), "").unwrap();
    let d = &fake.domains[&service.domid];
    assert_eq!((d.max_vcpus, d.vcpus), (1, 1));
    // A VM with VCPUs_max = 2: createdomain's max_vcpus and
    // XEN_DOMCTL_max_vcpus both say 2.
    let two = DomainRole {
        vcpus: 2,
        ..Default::default()
    };
    let vm = build(&mut fake, image(), b"initrd", 4, two, "console=hvc0").unwrap();
    let d = &fake.domains[&vm.domid];
    assert_eq!((d.max_vcpus, d.vcpus), (2, 2));
    let calls = fake.calls;
    for vcpus in [0, xcp_builder::MAX_PV_VCPUS + 1] {
        let role = DomainRole {
            vcpus,
            ..Default::default()
        };
        let err = build(&mut fake, image(), &[], 4, role, "").unwrap_err();
        assert!(
            matches!(err, BoardError::Image(xcp_builder::Error::BadVcpuCount)),
            "{vcpus}: {err:?}"
        );
    }
    // Refused by the plan: no call reached the platform.
    assert_eq!(fake.calls, calls);
    assert_eq!(fake.domains.len(), 2);
}

#[test]
fn stordom_gets_the_disk_and_a_channel_and_no_management_address() {
    let mut b = board();
    b.relay = true;
    let net = b.start_netdom(NETDOM).expect("netdom built");
    let stor = b.start_stordom(STORDOM).expect("stordom built");
    assert_eq!(
        b.take_notices(),
        vec![
            Notice::NetdomBuilt { domid: net },
            Notice::StordomBuilt { domid: stor }
        ]
    );
    let f = &b.platform;
    assert_eq!(f.domains[&stor].assigned, vec![DISK]);
    assert_eq!(f.domains[&net].assigned, vec![NIC]);
    assert_eq!(f.domains[&stor].iomem, vec![(DISK_BAR4 >> 12, 4)]);
    let line = b.stordom_mut().map(|h| h.words.clone()).expect("handed");
    assert!(line.contains("pci=0000:00:06.0"), "{line}");
    assert!(line.contains(" dom0-channel="), "{line}");
    assert!(
        !line.contains(" ip="),
        "only netdom gets the address: {line}"
    );
    assert!(!line.contains("xenapi-relay"), "{line}");
    assert_eq!(b.stordom_domid(), Some(stor));
    let port = b.stordom_mut().and_then(|h| h.relay_port).expect("channel");
    drop(b.stordom_mut().and_then(|h| h.take_relay()));
    take_relay(&mut b);
    b.stop(stor);
    assert_eq!(
        b.take_notices(),
        vec![Notice::StordomReleased {
            domid: stor,
            relay_port: Some(port)
        }]
    );
    assert_eq!(b.netdom_domid(), Some(net), "netdom keeps the NIC");
    b.stop(net);
    assert_clean(&b.platform);
}

#[test]
fn a_crashed_stordom_is_rebuilt_with_the_disk_under_its_old_domid() {
    let mut b = board();
    let old = b.start_stordom(STORDOM).expect("stordom built");
    b.take_notices();
    b.platform.device_status.insert(DISK_STATUS, 0xf);
    crash(&mut b, old);
    let new = b.domains.domids().next().expect("rebuilt");
    assert_eq!(new, old, "guests' VBDs name it");
    assert_eq!(
        b.take_notices(),
        vec![
            Notice::StordomReleased {
                domid: old,
                relay_port: None
            },
            Notice::StordomBuilt { domid: new }
        ]
    );
    assert_eq!(b.platform.domains[&new].assigned, vec![DISK]);
    assert_eq!(
        b.platform.device_status[&DISK_STATUS], 0,
        "the disk was reset before the new build got it"
    );
    b.stop(new);
    assert_clean(&b.platform);
}

#[test]
fn stordom_without_a_disk_is_refused() {
    let mut images = BTreeMap::new();
    images.insert(String::from("kernel.elf"), image());
    let mut b = Board::new(Fake::new(), images, configs(), DOM_EXC);
    assert!(matches!(b.start_stordom(STORDOM), Err(BoardError::NoDisk)));
    assert_clean(&b.platform);
}

#[test]
fn a_service_domain_outweighs_a_default_guest_and_a_refusal_is_not_fatal() {
    use xcp_dom0_board::sched::SERVICE_SHARE;
    let mut b = board();
    let domid = b.start(TESTDOM, None).expect("built");
    assert_eq!(b.platform.shares[&domid], SERVICE_SHARE);
    // Set before the domain first runs.
    let set = b.platform.position("set_cpu_share").expect("set");
    let unpaused = b.platform.position("unpause_domain").expect("unpaused");
    assert!(set < unpaused);
    b.stop(domid);
    assert!(
        !b.platform.shares.contains_key(&domid),
        "goes with the domain"
    );

    let mut b = board();
    b.platform.fail_op = Some(("set_cpu_share", 1));
    let domid = b.start(TESTDOM, None).expect("built without its share");
    assert!(!b.platform.domains[&domid].paused, "it runs");
    assert!(!b.platform.shares.contains_key(&domid));
    b.stop(domid);
    assert_clean(&b.platform);
}

#[test]
fn dom0_weighs_itself_and_reads_xens_values_back() {
    use xcp_dom0_board::sched::{apply, DOM0_SHARE};
    let mut b = board();
    assert_eq!(apply(&mut b.platform, 0, DOM0_SHARE), Some(DOM0_SHARE));
    // A cap past 100 per vCPU is refused, as credit2 refuses it.
    let too_much = xcp_dom0_board::CpuShare {
        weight: 300,
        cap: 101,
    };
    assert_eq!(apply(&mut b.platform, 0, too_much), None);
    assert_eq!(b.platform.shares[&0], DOM0_SHARE, "unchanged");
}

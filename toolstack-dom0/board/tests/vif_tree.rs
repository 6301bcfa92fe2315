//! A guest VIF's xenstore directories (the contract netdom's netback is
//! written against): paths, values and permissions of both directories,
//! written in one transaction (again on EAGAIN), the graceful close, and
//! the removal.

use xcp_dom0_board::fake_store::FakeStore;
use xcp_dom0_board::vif_tree::{self, Access, Perm, VifInfo};
use xcp_xenbus::{Error, XsErrno};

const GUEST: u16 = 7;
const NETDOM: u16 = 3;

fn info<'a>(v4: &'a [String], v6: &'a [String]) -> VifInfo<'a> {
    VifInfo {
        guest: GUEST,
        backend: NETDOM,
        devid: 2,
        mac: [0xAA, 0xbb, 0x0c, 0xdd, 0xee, 0x0f],
        mtu: 1500,
        locking: "locked",
        ipv4_allowed: v4,
        ipv6_allowed: v6,
    }
}

#[test]
fn attach_writes_both_directories_with_their_permissions() {
    let mut xs = FakeStore::default();
    let v4 = ["10.0.0.5".to_string(), "10.0.0.6".to_string()];
    vif_tree::attach(&mut xs, &info(&v4, &[])).unwrap();
    assert_eq!((xs.started, xs.committed), (1, 1), "one transaction");
    let back = "/local/domain/3/backend/vif/7/2";
    let front = "/local/domain/7/device/vif/2";
    let backend_keys = [
        ("frontend", front),
        ("frontend-id", "7"),
        ("online", "1"),
        ("state", "1"),
        ("handle", "2"),
        ("mac", "aa:bb:0c:dd:ee:0f"),
        ("mtu", "1500"),
        ("locking-mode", "locked"),
        ("ipv4-allowed", "10.0.0.5,10.0.0.6"),
        ("ipv6-allowed", ""),
    ];
    let bp = [
        Perm::new(NETDOM, Access::None),
        Perm::new(GUEST, Access::Read),
    ];
    assert_eq!(xs.perms(back), Some(&bp[..]));
    for (key, value) in backend_keys {
        let path = format!("{back}/{key}");
        assert_eq!(xs.value(&path), Some(value), "{path}");
        assert_eq!(xs.perms(&path), Some(&bp[..]), "{path}");
    }
    let frontend_keys = [
        ("backend", back),
        ("backend-id", "3"),
        ("state", "1"),
        ("handle", "2"),
        ("mac", "aa:bb:0c:dd:ee:0f"),
    ];
    let fp = [
        Perm::new(GUEST, Access::None),
        Perm::new(NETDOM, Access::Read),
    ];
    assert_eq!(xs.perms(front), Some(&fp[..]));
    for (key, value) in frontend_keys {
        let path = format!("{front}/{key}");
        assert_eq!(xs.value(&path), Some(value), "{path}");
        assert_eq!(xs.perms(&path), Some(&fp[..]), "{path}");
    }
    // Nothing else under either directory.
    let under = |dir: &str| {
        xs.nodes
            .keys()
            .filter(|p| p.starts_with(&format!("{dir}/")))
            .count()
    };
    assert_eq!(under(back), backend_keys.len());
    assert_eq!(under(front), frontend_keys.len());
}

#[test]
fn a_conflicting_commit_is_tried_again_then_given_up() {
    let mut xs = FakeStore::conflicting(2);
    vif_tree::attach(&mut xs, &info(&[], &[])).unwrap();
    assert_eq!((xs.started, xs.committed), (3, 1));
    assert_eq!(xs.value("/local/domain/3/backend/vif/7/2/state"), Some("1"));
    let mut xs = FakeStore::conflicting(vif_tree::ATTEMPTS);
    assert_eq!(
        vif_tree::attach(&mut xs, &info(&[], &[])),
        Err(Error::Conflict)
    );
    assert!(xs.nodes.is_empty(), "nothing half-written");
}

#[test]
fn close_then_remove() {
    let mut xs = FakeStore::default();
    vif_tree::attach(&mut xs, &info(&[], &[])).unwrap();
    let back = "/local/domain/3/backend/vif/7/2";
    assert_eq!(
        vif_tree::backend_closed(&mut xs, NETDOM, GUEST, 2),
        Ok(false)
    );
    vif_tree::request_close(&mut xs, NETDOM, GUEST, 2).unwrap();
    assert_eq!(xs.value(&format!("{back}/online")), Some("0"));
    assert_eq!(xs.value(&format!("{back}/state")), Some("5"));
    assert_eq!(
        vif_tree::backend_closed(&mut xs, NETDOM, GUEST, 2),
        Ok(false)
    );
    // netdom answers Closed.
    use xcp_dom0_board::vif_tree::Store;
    xs.write(xcp_xenbus::TxId::NONE, &format!("{back}/state"), b"6")
        .unwrap();
    assert_eq!(
        vif_tree::backend_closed(&mut xs, NETDOM, GUEST, 2),
        Ok(true)
    );
    vif_tree::remove(&mut xs, NETDOM, GUEST, 2).unwrap();
    assert!(!xs
        .nodes
        .keys()
        .any(|p| p.starts_with(back) || p.starts_with("/local/domain/7/device/vif/2")));
    // Gone already: no error, and a gone backend counts as closed.
    vif_tree::remove(&mut xs, NETDOM, GUEST, 2).unwrap();
    vif_tree::request_close(&mut xs, NETDOM, GUEST, 2).unwrap();
    assert_eq!(
        vif_tree::backend_closed(&mut xs, NETDOM, GUEST, 2),
        Ok(true)
    );
    assert_eq!(
        xs.read(xcp_xenbus::TxId::NONE, &format!("{back}/state")),
        Err(Error::Xs(XsErrno::Enoent))
    );
}

#[test]
fn reattach_gives_a_connected_frontend_a_new_backend_directory() {
    let mut xs = FakeStore::default();
    vif_tree::attach(&mut xs, &info(&[], &[])).unwrap();
    let front = "/local/domain/7/device/vif/2";
    // The frontend connected; then netdom died and xenstore dropped what
    // it owned (its backend directory).
    xs.nodes
        .insert(format!("{front}/state"), (b"4".to_vec(), Vec::new()));
    xs.nodes
        .insert(format!("{front}/tx-ring-ref"), (b"9".to_vec(), Vec::new()));
    xs.nodes
        .retain(|p, _| !p.starts_with("/local/domain/3/backend"));
    // Rebuilt under a new domid here, so both pointers must move.
    let rebuilt = VifInfo {
        backend: 4,
        ..info(&[], &[])
    };
    assert!(vif_tree::reattach(&mut xs, &rebuilt).unwrap());
    let back = "/local/domain/4/backend/vif/7/2";
    assert_eq!(xs.value(&format!("{back}/state")), Some("1"));
    assert_eq!(xs.value(&format!("{back}/frontend")), Some(front));
    assert_eq!(xs.value(&format!("{back}/mac")), Some("aa:bb:0c:dd:ee:0f"));
    assert_eq!(
        xs.perms(back),
        Some(&[Perm::new(4, Access::None), Perm::new(GUEST, Access::Read)][..])
    );
    assert_eq!(xs.value(&format!("{front}/backend")), Some(back));
    assert_eq!(xs.value(&format!("{front}/backend-id")), Some("4"));
    // The frontend's own keys are left as they were, readable by the new
    // backend again (xenstore took the old one's access with it).
    assert_eq!(xs.value(&format!("{front}/state")), Some("4"));
    assert_eq!(xs.value(&format!("{front}/tx-ring-ref")), Some("9"));
    let fp = [Perm::new(GUEST, Access::None), Perm::new(4, Access::Read)];
    for key in ["", "/state", "/tx-ring-ref", "/backend"] {
        assert_eq!(xs.perms(&format!("{front}{key}")), Some(&fp[..]), "{key}");
    }
    // A guest gone meanwhile: nothing is written.
    xs.nodes.retain(|p, _| !p.starts_with("/local/domain/7"));
    let before = xs.nodes.clone();
    assert!(!vif_tree::reattach(&mut xs, &rebuilt).unwrap());
    assert_eq!(xs.nodes, before);
}

#[test]
fn set_rules_rewrites_only_the_rules() {
    let mut xs = FakeStore::default();
    vif_tree::attach(&mut xs, &info(&[], &[])).unwrap();
    let back = "/local/domain/3/backend/vif/7/2";
    xs.nodes
        .insert(format!("{back}/state"), (b"4".to_vec(), Vec::new()));
    let v4 = ["10.0.2.16".to_string()];
    let v6 = ["fe80::1".to_string()];
    assert!(vif_tree::set_rules(&mut xs, &info(&v4, &v6)).unwrap());
    assert_eq!(xs.value(&format!("{back}/ipv4-allowed")), Some("10.0.2.16"));
    assert_eq!(xs.value(&format!("{back}/ipv6-allowed")), Some("fe80::1"));
    assert_eq!(xs.value(&format!("{back}/locking-mode")), Some("locked"));
    assert_eq!(
        xs.value(&format!("{back}/state")),
        Some("4"),
        "netdom's state kept"
    );
    xs.nodes.retain(|p, _| !p.starts_with(back));
    assert!(!vif_tree::set_rules(&mut xs, &info(&v4, &v6)).unwrap());
    assert!(xs.value(&format!("{back}/locking-mode")).is_none());
}

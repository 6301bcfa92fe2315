//! A guest VBD's xenstore directories (the contract the storage domain's
//! blkback is written against): paths, values and permissions of both
//! directories, written in one transaction (again on EAGAIN), an empty CD
//! drive, the graceful close, and the removal.

use xcp_dom0_board::fake_store::FakeStore;
use xcp_dom0_board::vbd_tree::{self, VbdInfo, BACKEND_TYPE};
use xcp_dom0_board::vif_tree::{self, Access, Perm, Store};
use xcp_xenbus::{Error, TxId, XsErrno};

const GUEST: u16 = 7;
const STORDOM: u16 = 5;
const XVDA: u32 = 51712;
const UUID: &str = "4f1c3a2e-9a1b-4c55-8a7e-0123456789ab";

fn disk() -> VbdInfo<'static> {
    VbdInfo {
        guest: GUEST,
        backend: STORDOM,
        devid: XVDA,
        dev: "xvda",
        vdi: Some(UUID),
        writable: true,
        cdrom: false,
        bootable: true,
        hvm_frontend: false,
    }
}

fn under(xs: &FakeStore, dir: &str) -> usize {
    xs.nodes
        .keys()
        .filter(|p| p.starts_with(&format!("{dir}/")))
        .count()
}

#[test]
fn attach_writes_both_directories_with_their_permissions() {
    let mut xs = FakeStore::default();
    vbd_tree::attach(&mut xs, &disk()).unwrap();
    assert_eq!((xs.started, xs.committed), (1, 1), "one transaction");
    let back = "/local/domain/5/backend/vbd/7/51712";
    let front = "/local/domain/7/device/vbd/51712";
    let backend_keys = [
        ("frontend", front),
        ("frontend-id", "7"),
        ("online", "1"),
        ("removable", "0"),
        ("bootable", "1"),
        ("state", "1"),
        ("dev", "xvda"),
        ("type", BACKEND_TYPE),
        ("mode", "w"),
        ("device-type", "disk"),
        ("params", UUID),
    ];
    let bp = [
        Perm::new(STORDOM, Access::None),
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
        ("backend-id", "5"),
        ("state", "1"),
        ("virtual-device", "51712"),
        ("device-type", "disk"),
    ];
    let fp = [
        Perm::new(GUEST, Access::None),
        Perm::new(STORDOM, Access::Read),
    ];
    assert_eq!(xs.perms(front), Some(&fp[..]));
    for (key, value) in frontend_keys {
        let path = format!("{front}/{key}");
        assert_eq!(xs.value(&path), Some(value), "{path}");
        assert_eq!(xs.perms(&path), Some(&fp[..]), "{path}");
    }
    assert_eq!(under(&xs, back), backend_keys.len());
    assert_eq!(under(&xs, front), frontend_keys.len());
}

#[test]
fn an_empty_read_only_cd_drive() {
    let mut xs = FakeStore::default();
    let cd = VbdInfo {
        devid: XVDA + 48,
        dev: "xvdd",
        vdi: None,
        writable: false,
        cdrom: true,
        bootable: false,
        ..disk()
    };
    vbd_tree::attach(&mut xs, &cd).unwrap();
    let back = "/local/domain/5/backend/vbd/7/51760";
    assert_eq!(xs.value(&format!("{back}/params")), Some(""));
    assert_eq!(xs.value(&format!("{back}/mode")), Some("r"));
    assert_eq!(xs.value(&format!("{back}/removable")), Some("1"));
    assert_eq!(xs.value(&format!("{back}/bootable")), Some("0"));
    assert_eq!(xs.value(&format!("{back}/device-type")), Some("cdrom"));
    assert_eq!(
        xs.value("/local/domain/7/device/vbd/51760/device-type"),
        Some("cdrom")
    );
}

#[test]
fn a_pvh_guests_cd_is_a_disk_to_its_frontend_only() {
    let mut xs = FakeStore::default();
    let cd = VbdInfo {
        devid: XVDA + 48,
        dev: "xvdd",
        writable: false,
        cdrom: true,
        bootable: false,
        hvm_frontend: true,
        ..disk()
    };
    vbd_tree::attach(&mut xs, &cd).unwrap();
    let back = "/local/domain/5/backend/vbd/7/51760";
    assert_eq!(xs.value(&format!("{back}/device-type")), Some("cdrom"));
    assert_eq!(xs.value(&format!("{back}/removable")), Some("1"));
    assert_eq!(xs.value(&format!("{back}/mode")), Some("r"));
    assert_eq!(
        xs.value("/local/domain/7/device/vbd/51760/device-type"),
        Some("disk")
    );
    // A PVH guest's disk is a disk everywhere.
    let mut xs = FakeStore::default();
    vbd_tree::attach(
        &mut xs,
        &VbdInfo {
            hvm_frontend: true,
            ..disk()
        },
    )
    .unwrap();
    assert_eq!(
        xs.value("/local/domain/7/device/vbd/51712/device-type"),
        Some("disk")
    );
}

#[test]
fn a_conflicting_commit_is_tried_again_then_given_up() {
    let mut xs = FakeStore::conflicting(2);
    vbd_tree::attach(&mut xs, &disk()).unwrap();
    assert_eq!((xs.started, xs.committed), (3, 1));
    let mut xs = FakeStore::conflicting(vif_tree::ATTEMPTS);
    assert_eq!(vbd_tree::attach(&mut xs, &disk()), Err(Error::Conflict));
    assert!(xs.nodes.is_empty(), "nothing half-written");
}

#[test]
fn close_then_remove() {
    let mut xs = FakeStore::default();
    vbd_tree::attach(&mut xs, &disk()).unwrap();
    let back = "/local/domain/5/backend/vbd/7/51712";
    let closed = |xs: &mut FakeStore| vbd_tree::backend_closed(xs, STORDOM, GUEST, XVDA);
    assert_eq!(closed(&mut xs), Ok(false));
    vbd_tree::request_close(&mut xs, STORDOM, GUEST, XVDA).unwrap();
    assert_eq!(xs.value(&format!("{back}/online")), Some("0"));
    assert_eq!(xs.value(&format!("{back}/state")), Some("5"));
    assert_eq!(closed(&mut xs), Ok(false));
    // blkback answers Closed.
    xs.write(TxId::NONE, &format!("{back}/state"), b"6")
        .unwrap();
    assert_eq!(closed(&mut xs), Ok(true));
    vbd_tree::remove(&mut xs, STORDOM, GUEST, XVDA).unwrap();
    assert!(!xs
        .nodes
        .keys()
        .any(|p| p.starts_with(back) || p.starts_with("/local/domain/7/device/vbd/51712")));
    // Gone already: no error, and a gone backend counts as closed.
    vbd_tree::remove(&mut xs, STORDOM, GUEST, XVDA).unwrap();
    vbd_tree::request_close(&mut xs, STORDOM, GUEST, XVDA).unwrap();
    assert_eq!(closed(&mut xs), Ok(true));
    assert_eq!(
        xs.read(TxId::NONE, &format!("{back}/state")),
        Err(Error::Xs(XsErrno::Enoent))
    );
}

#[test]
fn a_vbd_and_a_vif_of_one_guest_do_not_touch_each_other() {
    let mut xs = FakeStore::default();
    vbd_tree::attach(&mut xs, &disk()).unwrap();
    let before = xs.nodes.clone();
    vif_tree::remove(&mut xs, STORDOM, GUEST, XVDA).unwrap();
    assert_eq!(xs.nodes, before);
}

#[test]
fn reattach_gives_a_connected_blkfront_its_backend_directory_again() {
    let mut xs = FakeStore::default();
    vbd_tree::attach(&mut xs, &disk()).unwrap();
    let front = format!("/local/domain/{GUEST}/device/vbd/{XVDA}");
    let back = format!("/local/domain/{STORDOM}/backend/vbd/{GUEST}/{XVDA}");
    // blkfront connected; then stordom died and xenstore dropped its
    // backend directory and its access to the frontend's nodes.
    xs.nodes
        .insert(format!("{front}/state"), (b"4".to_vec(), Vec::new()));
    xs.nodes
        .insert(format!("{front}/ring-ref"), (b"8".to_vec(), Vec::new()));
    xs.nodes
        .retain(|p, _| !p.starts_with(&format!("/local/domain/{STORDOM}/backend")));
    assert!(vbd_tree::reattach(&mut xs, &disk()).unwrap());
    assert_eq!(xs.value(&format!("{back}/state")), Some("1"));
    assert_eq!(xs.value(&format!("{back}/params")), Some(UUID));
    assert_eq!(xs.value(&format!("{back}/type")), Some(BACKEND_TYPE));
    assert_eq!(
        xs.perms(&back),
        Some(
            &[
                Perm::new(STORDOM, Access::None),
                Perm::new(GUEST, Access::Read)
            ][..]
        )
    );
    // blkfront's own keys stay as it wrote them, readable by stordom again.
    assert_eq!(xs.value(&format!("{front}/state")), Some("4"));
    assert_eq!(xs.value(&format!("{front}/ring-ref")), Some("8"));
    let fp = [
        Perm::new(GUEST, Access::None),
        Perm::new(STORDOM, Access::Read),
    ];
    for key in ["", "/state", "/ring-ref", "/backend"] {
        assert_eq!(xs.perms(&format!("{front}{key}")), Some(&fp[..]), "{key}");
    }
    // A guest gone meanwhile: nothing is written.
    xs.nodes
        .retain(|p, _| !p.starts_with(&format!("/local/domain/{GUEST}")));
    let before = xs.nodes.clone();
    assert!(!vbd_tree::reattach(&mut xs, &disk()).unwrap());
    assert_eq!(xs.nodes, before);
}

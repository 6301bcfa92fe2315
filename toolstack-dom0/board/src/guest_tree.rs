//! The xenstore tree of a XenAPI VM's domain, as xl lays it out for a PV or
//! PVH Linux guest: the nodes to write and their permissions, and what to
//! remove when the domain goes. Pure: dom0's kernel writes the nodes.
//!
//! Read first: xen docs/misc/xenstore-paths.pandoc; libxl
//! `libxl__domain_make` (libxl_create.c: the home, `/vm/UUID`, `control/`,
//! `data/` ...), `libxl__build_post` (libxl_dom.c: `memory/`, `domid`,
//! `store/`, `cpu/`) and `libxl__device_console_add` (libxl_console.c: the
//! primary console's frontend).
//!
//! Permissions, as libxl names them (the first entry is the owner and what
//! everyone else not listed may do; xenstore-paths.pandoc):
//! - read-only to the guest ([`read_only`]): owned by dom0, the guest may
//!   read: the home itself, `name`, `domid`, `vm`, `memory/`, `cpu/`,
//!   `device/`, `control/`, `store/`, and `/vm/UUID`;
//! - the guest's own ([`guest_owned`]): `control/shutdown` and
//!   `control/feature-*`, `control/sysrq`, `data/`, `drivers/`, `feature/`,
//!   `attr/`, `error/`, `device/suspend/event-channel`;
//! - the console frontend ([`console_frontend`]): owned by the guest, the
//!   backend (dom0's console relay) may read; its `limit`, `type`,
//!   `output`, `tty`, `port` and `ring-ref` are read-only to the guest.
//!
//! Where this differs from libxl: no `/libxl/N` (libxl's private state), no
//! `memory/videoram` (PV guests have none), no `/vm/UUID/start_time`, no
//! console backend directory (`/local/domain/0/backend/console/N/0`: dom0
//! reads the ring directly, it runs no xenconsoled), and the tree is
//! written outside a transaction (the domain is paused and nobody else
//! knows it yet).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

pub use xcp_xenbus::{Access, Perm};

/// The xenstore domain's id for the toolstack: dom0.
const DOM0: u16 = 0;

/// `LIBXL_XENCONSOLE_LIMIT`: bytes of console output a backend buffers.
pub const CONSOLE_LIMIT: u32 = 1_048_576;

/// What dom0 knows of a VM's domain when it writes its tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestInfo<'a> {
    /// The domain.
    pub domid: u16,
    /// The VM's uuid (the domain handle), as text.
    pub uuid: &'a str,
    /// The VM's name_label.
    pub name: &'a str,
    /// Memory the domain was given, KiB (`memory/static-max` and
    /// `memory/target`).
    pub memory_kib: u64,
    /// vCPUs the domain has (`VCPUs_max`): a `cpu/K/availability` for each.
    pub vcpus: u32,
    /// How many of them, from vCPU 0, are `online` (`VCPUs_at_startup`);
    /// the rest are `offline`, which Linux's xenbus CPU-hotplug watch
    /// obeys once xenstore is up.
    pub vcpus_online: u32,
    /// Machine frame of its xenstore ring.
    pub store_mfn: u64,
    /// Its end of the xenstore event channel.
    pub store_port: u32,
    /// Machine frame of its console ring.
    pub console_mfn: u64,
    /// Its end of the console event channel.
    pub console_port: u32,
}

/// One node to write: its path, its value (empty for a directory) and its
/// permissions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Absolute path.
    pub path: String,
    /// Value.
    pub value: String,
    /// Permissions (owner first).
    pub perms: Vec<Perm>,
}

/// The guest may read, only dom0 may write (libxl's `roperm`).
pub fn read_only(domid: u16) -> Vec<Perm> {
    alloc::vec![
        Perm::new(DOM0, Access::None),
        Perm::new(domid, Access::Read)
    ]
}

/// The guest owns it (libxl's `rwperm`): it reads and writes, nobody else
/// but dom0.
pub fn guest_owned(domid: u16) -> Vec<Perm> {
    alloc::vec![Perm::new(domid, Access::None)]
}

/// The console frontend directory: the guest owns it, the backend reads.
pub fn console_frontend(domid: u16) -> Vec<Perm> {
    alloc::vec![
        Perm::new(domid, Access::None),
        Perm::new(DOM0, Access::Read)
    ]
}

/// `/local/domain/N`.
pub fn home(domid: u16) -> String {
    format!("/local/domain/{domid}")
}

/// `/vm/UUID`.
pub fn vm_path(uuid: &str) -> String {
    format!("/vm/{uuid}")
}

/// The nodes to write for `guest`, parents before children, each with its
/// permissions set explicitly (xenstored gives a new node its parent's
/// permissions, so order alone would do; explicit is checkable).
pub fn nodes(guest: &GuestInfo<'_>) -> Vec<Node> {
    let domid = guest.domid;
    let home = home(domid);
    let vm = vm_path(guest.uuid);
    let mut out = Vec::new();
    let mut add = |path: String, value: String, perms: Vec<Perm>| {
        out.push(Node { path, value, perms });
    };
    let ro = || read_only(domid);
    let rw = || guest_owned(domid);
    let at = |rel: &str| format!("{home}/{rel}");

    // libxl__domain_make: the home and /vm/UUID, read-only to the guest.
    add(home.clone(), String::new(), ro());
    add(vm.clone(), String::new(), ro());
    add(format!("{vm}/uuid"), guest.uuid.into(), ro());
    add(format!("{vm}/name"), guest.name.into(), ro());
    add(at("vm"), vm.clone(), ro());
    add(at("name"), guest.name.into(), ro());
    for dir in ["cpu", "memory", "device", "control"] {
        add(at(dir), String::new(), ro());
    }
    for node in [
        "control/shutdown",
        "control/feature-poweroff",
        "control/feature-reboot",
        "control/feature-suspend",
        "control/sysrq",
        "device/suspend/event-channel",
        "data",
        "drivers",
        "feature",
        "attr",
        "error",
    ] {
        add(at(node), String::new(), rw());
    }
    for feature in [
        "control/platform-feature-multiprocessor-suspend",
        "control/platform-feature-xs_reset_watches",
    ] {
        add(at(feature), "1".into(), ro());
    }
    // libxl__build_post: memory, domid, the xenstore ring, the vCPUs.
    let kib = format!("{}", guest.memory_kib);
    add(at("memory/static-max"), kib.clone(), ro());
    add(at("memory/target"), kib, ro());
    add(at("domid"), format!("{domid}"), ro());
    add(at("store/port"), format!("{}", guest.store_port), ro());
    add(at("store/ring-ref"), format!("{}", guest.store_mfn), ro());
    for k in 0..guest.vcpus {
        let state = if k < guest.vcpus_online {
            "online"
        } else {
            "offline"
        };
        add(at(&format!("cpu/{k}/availability")), state.into(), ro());
    }
    // libxl__device_console_add, the primary console (its frontend is the
    // home's `console`).
    add(at("console"), String::new(), console_frontend(domid));
    add(
        at("console/backend-id"),
        format!("{DOM0}"),
        console_frontend(domid),
    );
    for (node, value) in [
        ("limit", format!("{CONSOLE_LIMIT}")),
        ("type", "xenconsoled".into()),
        ("output", "pty".into()),
        ("tty", String::new()),
        ("port", format!("{}", guest.console_port)),
        ("ring-ref", format!("{}", guest.console_mfn)),
    ] {
        add(at(&format!("console/{node}")), value, ro());
    }
    out
}

/// What to remove when the domain goes: its home and `/vm/UUID`.
pub fn removals(domid: u16, uuid: &str) -> [String; 2] {
    [home(domid), vm_path(uuid)]
}

/// The 16-byte domain handle of a uuid written as text
/// (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, hex digits in either case);
/// None if it is not one.
pub fn handle_of(uuid: &str) -> Option<[u8; 16]> {
    let bytes = uuid.as_bytes();
    if bytes.len() != 36 {
        return None;
    }
    let mut out = [0u8; 16];
    let mut n = 0;
    let mut i = 0;
    while i < bytes.len() {
        if matches!(i, 8 | 13 | 18 | 23) {
            if bytes[i] != b'-' {
                return None;
            }
            i += 1;
            continue;
        }
        let hi = hex(bytes[i])?;
        let lo = hex(*bytes.get(i + 1)?)?;
        *out.get_mut(n)? = hi << 4 | lo;
        n += 1;
        i += 2;
    }
    (n == 16).then_some(out)
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";

    fn guest() -> GuestInfo<'static> {
        GuestInfo {
            domid: 7,
            uuid: UUID,
            name: "guest",
            memory_kib: 8192,
            vcpus: 3,
            vcpus_online: 2,
            store_mfn: 0x1234,
            store_port: 3,
            console_mfn: 0x1233,
            console_port: 2,
        }
    }

    fn find<'a>(nodes: &'a [Node], path: &str) -> &'a Node {
        nodes
            .iter()
            .find(|n| n.path == path)
            .unwrap_or_else(|| panic!("no {path}"))
    }

    #[test]
    fn the_tree_has_what_a_linux_guest_reads_with_xls_permissions() {
        let nodes = nodes(&guest());
        let ro = read_only(7);
        let rw = guest_owned(7);
        // (path, value, perms)
        let table: &[(&str, &str, &[Perm])] = &[
            ("/local/domain/7", "", &ro),
            ("/local/domain/7/name", "guest", &ro),
            ("/local/domain/7/domid", "7", &ro),
            (
                "/local/domain/7/vm",
                "/vm/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
                &ro,
            ),
            ("/local/domain/7/memory/static-max", "8192", &ro),
            ("/local/domain/7/memory/target", "8192", &ro),
            ("/local/domain/7/cpu/0/availability", "online", &ro),
            ("/local/domain/7/cpu/1/availability", "online", &ro),
            ("/local/domain/7/cpu/2/availability", "offline", &ro),
            ("/local/domain/7/store/port", "3", &ro),
            ("/local/domain/7/store/ring-ref", "4660", &ro),
            ("/local/domain/7/device", "", &ro),
            ("/local/domain/7/control", "", &ro),
            ("/local/domain/7/control/shutdown", "", &rw),
            ("/local/domain/7/control/feature-poweroff", "", &rw),
            ("/local/domain/7/control/feature-reboot", "", &rw),
            ("/local/domain/7/control/feature-suspend", "", &rw),
            ("/local/domain/7/control/sysrq", "", &rw),
            (
                "/local/domain/7/control/platform-feature-xs_reset_watches",
                "1",
                &ro,
            ),
            ("/local/domain/7/device/suspend/event-channel", "", &rw),
            ("/local/domain/7/data", "", &rw),
            ("/local/domain/7/error", "", &rw),
            ("/local/domain/7/console/ring-ref", "4659", &ro),
            ("/local/domain/7/console/port", "2", &ro),
            ("/local/domain/7/console/type", "xenconsoled", &ro),
            ("/local/domain/7/console/limit", "1048576", &ro),
            ("/local/domain/7/console/tty", "", &ro),
            ("/vm/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "", &ro),
            ("/vm/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0/uuid", UUID, &ro),
            (
                "/vm/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0/name",
                "guest",
                &ro,
            ),
        ];
        for (path, value, perms) in table {
            let n = find(&nodes, path);
            assert_eq!(n.value, *value, "{path}");
            assert_eq!(n.perms, *perms, "{path}");
        }
        let console = find(&nodes, "/local/domain/7/console");
        assert_eq!(
            console.perms,
            [Perm::new(7, Access::None), Perm::new(0, Access::Read)]
        );
        assert_eq!(ro, [Perm::new(0, Access::None), Perm::new(7, Access::Read)]);
        assert_eq!(rw, [Perm::new(7, Access::None)]);
        // No vCPU beyond those the domain has; nothing of libxl's own.
        assert!(nodes.iter().all(|n| !n.path.contains("cpu/3")));
        assert!(nodes.iter().all(|n| !n.path.starts_with("/libxl")));
    }

    #[test]
    fn parents_come_before_children_and_every_node_is_under_home_or_vm() {
        let nodes = nodes(&guest());
        for (i, n) in nodes.iter().enumerate() {
            assert!(
                n.path.starts_with("/local/domain/7") || n.path.starts_with("/vm/"),
                "{}",
                n.path
            );
            // No path twice.
            assert!(nodes[..i].iter().all(|m| m.path != n.path), "{}", n.path);
        }
        let pos = |p: &str| nodes.iter().position(|n| n.path == p).unwrap();
        assert!(pos("/local/domain/7") < pos("/local/domain/7/name"));
        assert!(pos("/local/domain/7/control") < pos("/local/domain/7/control/shutdown"));
        assert!(pos("/local/domain/7/console") < pos("/local/domain/7/console/port"));
    }

    #[test]
    fn removals_are_the_home_and_the_vm_path() {
        assert_eq!(
            removals(7, UUID),
            [String::from("/local/domain/7"), format!("/vm/{UUID}")]
        );
    }

    #[test]
    fn handles_are_the_uuids_bytes() {
        let h = handle_of(UUID).unwrap();
        assert_eq!(
            h,
            [
                0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78, 0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2,
                0xe1, 0xf0
            ]
        );
        assert_eq!(handle_of(&UUID.to_uppercase()), Some(h));
        for bad in [
            "",
            "0f1e2d3c4b5a697887 96a5b4c3d2e1f0",
            "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1fg",
            "0f1e2d3c-4b5a-6978-8796_a5b4c3d2e1f0",
            "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f",
            "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f00",
        ] {
            assert_eq!(handle_of(bad), None, "{bad:?}");
        }
    }
}

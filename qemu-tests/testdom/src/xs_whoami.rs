//! `xs-whoami=<reader domid>`: a XenAPI VM's guest reads who it is from
//! xenstore, as a Linux guest does at boot: its `name`, `domid` and `vm`
//! (the path `/vm/<its VM's uuid>`), that `/vm` node's `uuid`, and its
//! `memory/target`. It logs them (on its own console, which no one relays
//! for XenAPI VMs yet), and writes them to `data/whoami`, a node of its own
//! home it may write (libxl's layout), readable by the reader domain: the
//! XenAPI self-test client, which cannot read the guest's home itself.
//! It also checks that its `name` is read-only to it.

use alloc::format;

use xcp_runtime::xenstore::Store;
use xcp_xenbus::{Access, Error, Perm, TxId, XsErrno};

const NONE: TxId = TxId::NONE;

fn read(xs: &mut Store, path: &str) -> alloc::string::String {
    xs.read_string(NONE, path)
        .unwrap_or_else(|e| panic!("xs-whoami: read {path}: {e:?}"))
}

/// Reads, reports and idles.
pub fn run(boot: &xcp_runtime::Boot, reader: &str) -> ! {
    let reader: u16 = reader.parse().expect("xs-whoami=<reader domid>");
    let mut xs = xcp_runtime::xenstore::connect(boot).expect("a xenstore ring in start_info");
    let name = read(&mut xs, "name");
    let domid = read(&mut xs, "domid");
    let vm = read(&mut xs, "vm");
    let uuid = read(&mut xs, &format!("{vm}/uuid"));
    let target = read(&mut xs, "memory/target");
    let me: u16 = domid.trim().parse().expect("a domid");
    let name_read_only = matches!(
        xs.write(NONE, "name", b"renamed"),
        Err(Error::Xs(XsErrno::Eacces))
    );
    let line = format!(
        "name={name} domid={domid} vm={vm} uuid={uuid} memory/target={target} name-read-only={name_read_only}"
    );
    log::info!("xs-whoami: {line}");
    xs.write(NONE, "data/whoami", line.as_bytes())
        .expect("xs-whoami: write data/whoami");
    xs.set_perms(
        NONE,
        "data/whoami",
        &[Perm::new(me, Access::None), Perm::new(reader, Access::Read)],
    )
    .expect("xs-whoami: let the reader read data/whoami");
    loop {
        xcp_runtime::event_loop::idle();
    }
}

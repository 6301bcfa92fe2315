//! Running Debian's oxenstored hosted, without Xen, for comparison.
//!
//! oxenstored (Debian `xen-utils-4.17`, /usr/lib/xen-4.17/bin/oxenstored)
//! opens libxenctrl and libxenevtchn at start and raises RLIMIT_NOFILE
//! beyond what a container allows. A tiny C shim compiled here with `cc`
//! and loaded with LD_PRELOAD stubs those calls (an eventfd that never fires
//! stands in for the event channel) and clamps setrlimit to the hard limit.
//! Its socket path is fixed to /var/run/xenstored/socket, so it runs in a
//! private mount namespace (`unshare -m`) with a tmpfs over /run and
//! /var/log, and we connect through `/proc/<pid>/root/...`. Nothing on the
//! host's file system is touched. It is started `--no-domain-init` (no
//! dom0 ring): socket clients only, like our daemon on the host.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian installs it.
pub const DEFAULT_PATH: &str = "/usr/lib/xen-4.17/bin/oxenstored";

const SHIM: &str = r#"
#define _GNU_SOURCE
#include <stdlib.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/eventfd.h>
#include <dlfcn.h>
struct fake { int fd; };
int setrlimit(__rlimit_resource_t r, const struct rlimit *l) {
    int (*real)(__rlimit_resource_t, const struct rlimit *) = dlsym(RTLD_NEXT, "setrlimit");
    struct rlimit cur, want = *l;
    if (getrlimit(r, &cur) == 0) {
        if (want.rlim_max > cur.rlim_max) want.rlim_max = cur.rlim_max;
        if (want.rlim_cur > want.rlim_max) want.rlim_cur = want.rlim_max;
    }
    return real(r, &want);
}
void *xc_interface_open(void *a, void *b, unsigned f) { return calloc(1, 64); }
int xc_interface_close(void *x) { return 0; }
int xc_domain_getinfolist(void *x, uint32_t d, unsigned n, void *info) { return 0; }
static void *fake_open(void) { struct fake *f = calloc(1, sizeof *f); f->fd = eventfd(0, EFD_NONBLOCK); return f; }
void *xenevtchn_open(void *l, unsigned f) { return fake_open(); }
void *xenevtchn_fdopen(void *l, int fd, unsigned f) { return fake_open(); }
int xenevtchn_close(void *x) { return 0; }
int xenevtchn_fd(void *x) { return ((struct fake *)x)->fd; }
int xenevtchn_bind_virq(void *x, unsigned v) { return 1; }
int xenevtchn_bind_interdomain(void *x, uint32_t d, unsigned p) { return 2; }
int xenevtchn_pending(void *x) { return -1; }
int xenevtchn_unmask(void *x, unsigned p) { return 0; }
int xenevtchn_notify(void *x, unsigned p) { return 0; }
int xenevtchn_unbind(void *x, unsigned p) { return 0; }
"#;

const CONFIG: &str = "pid-file = /var/run/xenstored/oxenstored.pid
persistent = false
xenstored-kva = /nonexistent/xsd_kva
xenstored-port = /nonexistent/xsd_port
";

/// A running hosted oxenstored, killed on drop.
pub struct Oxenstored {
    child: Child,
    /// Its socket, reached through its mount namespace.
    pub socket: PathBuf,
}

impl Oxenstored {
    /// Its process id (`unshare` and `sh` exec into it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Oxenstored {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_ok(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Start oxenstored at `binary`, working files in `workdir`. `Err` says
/// exactly why it cannot run here.
pub fn start(binary: &Path, workdir: &Path) -> Result<Oxenstored, String> {
    if !binary.exists() {
        return Err(format!(
            "{} not found: install it with `apt-get install -y xen-utils-4.17` (Debian 12)",
            binary.display()
        ));
    }
    let shim_c = workdir.join("oxshim.c");
    let shim = workdir.join("oxshim.so");
    let config = workdir.join("oxenstored.conf");
    std::fs::write(&shim_c, SHIM).map_err(|e| format!("write shim: {e}"))?;
    std::fs::write(&config, CONFIG).map_err(|e| format!("write config: {e}"))?;
    run_ok(
        Command::new("cc")
            .args(["-shared", "-fPIC", "-O2", "-o"])
            .arg(&shim)
            .arg(&shim_c)
            .arg("-ldl"),
    )
    .map_err(|e| {
        format!(
            "cannot build the LD_PRELOAD shim (needs a C compiler, `apt-get install -y gcc`): {e}"
        )
    })?;
    // /var/run is usually a symlink to /run; resolve it on the host, since
    // an absolute symlink under /proc/<pid>/root resolves against our root.
    let run_dir = std::fs::canonicalize("/var/run").unwrap_or_else(|_| PathBuf::from("/var/run"));
    let script = format!(
        "set -e; mount -t tmpfs tmpfs {run}; mkdir -p {run}/xenstored {run}/xen; \
         mount -t tmpfs tmpfs /var/log; mkdir -p /var/log/xen; \
         LD_PRELOAD={shim} exec {bin} --no-fork --no-domain-init --no-access-log --config-file {conf}",
        run = run_dir.display(),
        shim = shim.display(),
        bin = binary.display(),
        conf = config.display(),
    );
    let log = workdir.join("oxenstored.log");
    let log_file = std::fs::File::create(&log).map_err(|e| format!("log: {e}"))?;
    let log_err = log_file.try_clone().map_err(|e| format!("log: {e}"))?;
    let mut child = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(log_err)
        .spawn()
        .map_err(|e| {
            format!("cannot run `unshare` (util-linux) for a private mount namespace: {e}")
        })?;
    let socket = PathBuf::from(format!(
        "/proc/{}/root{}/xenstored/socket",
        child.id(),
        run_dir.display()
    ));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
            return Ok(Oxenstored { child, socket });
        }
        let exited = child.try_wait().ok().flatten();
        if exited.is_some() || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!(
                "oxenstored did not listen on {} within 5 s ({}): {}",
                socket.display(),
                exited.map_or("still running".into(), |s| s.to_string()),
                text.trim()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

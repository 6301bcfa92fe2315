//! `cargo xtask run` as a person types it: the README's first command, run
//! itself (not its pieces) under a pseudo-terminal made by util-linux
//! `script`, so QEMU, the terminal's modes and the process groups are those
//! of an interactive shell. The cases:
//! - the quiet console up to `XenAPI ready at`, an idle minute that prints
//!   nothing, `help` and `list` typed and answered (dom0 echoes the keys), a
//!   login by PyPI's `XenAPI` through 127.0.0.1, Ctrl-A X, and the pty's
//!   `stty -g` the same before and after; the full log in the named file;
//! - `--verbose` shows Xen's and the domains' whole logs; QEMU killed from
//!   outside is a non-zero exit;
//! - Ctrl-C stops QEMU and ends the run (exit 130);
//! - the time limit firing is a non-zero exit (124).
//!
//! Each leaves the terminal as it found it. The cases take turns: they
//! share `target/xcp/run.log`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use xcp_qemu_tests::clients::{free_port, python_with_xenapi, run, Peer};

/// One `cargo xtask run` at a time (they write the same log file).
static TURN: Mutex<()> = Mutex::new(());

/// The shipped platform's root password (boot/platform.toml's hash).
const PASSWORD: &str = "xcp-rs";

/// Lines a person may see up to `XenAPI ready at` (issue #11's bound).
const MOST_LINES_TO_READY: usize = 40;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("qemu-tests is inside the workspace")
        .to_path_buf()
}

/// Single quotes for sh.
fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `cargo xtask run ARGS` in a fresh pty (`script`), between two
/// `stty -g` of that pty written to `dir`; its last line is
/// `xtask exit status N`.
fn xtask_run(name: &str, dir: &Path, args: &str) -> Peer {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let before = dir.join("stty.before");
    let after = dir.join("stty.after");
    let shell = format!(
        "tty > {t}; stty -g > {b}; cd {root} && {cargo} xtask run {args}; echo \"xtask exit status $?\"; stty -g > {a}",
        t = quoted(&dir.join("tty").display().to_string()),
        b = quoted(&before.display().to_string()),
        a = quoted(&after.display().to_string()),
        root = quoted(&workspace().display().to_string()),
        cargo = quoted(&cargo),
    );
    let mut script = Command::new("script");
    // -q: no banner; -e: script's status is the shell's; -f: flush each
    // write; the typescript goes nowhere (we read the pty's output).
    script.args(["-q", "-e", "-f", "-c", &shell, "/dev/null"]);
    Peer::spawn(name, &script, 900)
}

/// The pty's settings before and after the run are the same.
#[track_caller]
fn assert_terminal_restored(dir: &Path) {
    let before = std::fs::read_to_string(dir.join("stty.before")).expect("stty before");
    let after = std::fs::read_to_string(dir.join("stty.after")).expect("stty after");
    assert!(!before.trim().is_empty(), "stty -g printed nothing");
    assert_eq!(before, after, "the terminal's settings changed");
}

fn scratch(test: &str) -> PathBuf {
    let dir = workspace().join("target/tmp/run-pty").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// No QEMU forwarding `port` is left.
#[track_caller]
fn assert_no_qemu(port: u16) {
    let pattern = format!("^qemu-system-x86_64 .*hostfwd=tcp:127.0.0.1:{port}-");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Command::new("pgrep")
        .args(["-f", &pattern])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        assert!(
            Instant::now() < deadline,
            "QEMU on port {port} is still running"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

const LOGIN: &str = r#"
import sys
import XenAPI
s = XenAPI.Session(sys.argv[1])
s.xenapi.login_with_password("root", sys.argv[2], "1.0", "run-pty-test")
hosts = s.xenapi.host.get_all_records()
print("hosts:", sorted(r["name_label"] for r in hosts.values()))
s.xenapi.session.logout()
print("LOGIN OK")
"#;

#[test]
fn run_in_a_terminal_is_quiet_takes_keys_and_restores_the_terminal() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let dir = scratch("interactive");
    let py = python_with_xenapi(&workspace().join("target/tmp"));
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/");
    let mut xtask = xtask_run("xtask-run", &dir, &format!("--port {port}"));
    let ready = format!("XenAPI ready at {url}");
    xtask
        .wait_for(&ready, Duration::from_secs(300))
        .unwrap_or_else(|e| panic!("{e}"));
    let lines = xtask.lines();
    let shown = lines
        .iter()
        .position(|l| l.contains(&ready))
        .expect("ready")
        + 1;
    eprintln!(
        "the terminal up to ready ({shown} lines):\n{}",
        lines[..shown].join("\n")
    );
    assert!(
        shown < MOST_LINES_TO_READY,
        "{shown} lines up to ready:\n{}",
        lines[..shown].join("\n")
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("(XEN)") && !l.contains("Serial input")),
        "Xen's boot chatter reached the terminal:\n{}",
        lines.join("\n")
    );
    let banner = lines
        .iter()
        .find(|l| l.starts_with("Full log: "))
        .expect("the banner names the log file")
        .clone();

    // While it runs the terminal is raw: keys go to the serial line as
    // typed, unechoed by the terminal, Ctrl-C not a signal.
    let tty = std::fs::read_to_string(dir.join("tty")).expect("the pty's name");
    let (ok, modes) = run(Command::new("stty").args(["-a", "-F", tty.trim()]), 10);
    assert!(ok, "stty -a -F {tty}: {modes}");
    for mode in ["-icanon", "-echo", "-isig", "-icrnl"] {
        assert!(
            modes.split_whitespace().any(|m| m == mode),
            "{mode} not set while xtask runs: {modes}"
        );
    }

    // An idle platform prints nothing.
    std::thread::sleep(Duration::from_secs(60));
    let idle = xtask.lines();
    assert_eq!(
        idle.len(),
        lines.len(),
        "an idle minute printed:\n{}",
        idle[lines.len()..].join("\n")
    );

    // Keys reach dom0's console: it echoes them and answers.
    xtask.type_bytes(b"help\r").expect("type help");
    xtask
        .wait_for(
            "list            managed service domains",
            Duration::from_secs(30),
        )
        .unwrap_or_else(|e| panic!("no answer to help: {e}"));
    xtask.type_bytes(b"list\r").expect("type list");
    let row = xtask
        .wait_for("netdom           domid", Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("no answer to list: {e}"));
    assert!(row.contains("restart=true"), "{row}");
    let typed = xtask.lines();
    for word in ["help", "list"] {
        assert!(
            typed[idle.len()..].iter().any(|l| l.trim() == word),
            "dom0 did not echo {word:?}:\n{}",
            typed[idle.len()..].join("\n")
        );
    }

    // Ctrl-A three times switches serial input to Xen and back, as Xen
    // says; while Xen has it, its answers show.
    xtask
        .type_bytes(&[0x01, 0x01, 0x01])
        .expect("type Ctrl-A x3");
    xtask
        .wait_for("*** Serial input to Xen", Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("Ctrl-A x3 did not reach Xen: {e}"));
    xtask
        .type_bytes(&[0x01, 0x01, 0x01])
        .expect("type Ctrl-A x3");
    xtask
        .wait_for_nth("*** Serial input to DOM0", 2, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("Ctrl-A x3 did not give input back to dom0: {e}"));

    // A real client logs in through the forwarded port.
    let (ok, out) = run(Command::new(&py).args(["-c", LOGIN, &url, PASSWORD]), 120);
    assert!(ok && out.contains("LOGIN OK"), "login failed:\n{out}");

    // Ctrl-A X: QEMU stops; the run ends well.
    xtask.type_bytes(&[0x01, b'x']).expect("type Ctrl-A X");
    xtask
        .wait_for("xtask exit status", Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    let (ok, out) = xtask.finish(Duration::from_secs(30));
    assert!(ok, "the pty's shell failed:\n{out}");
    assert!(out.contains("Ctrl-A X: QEMU stopped"), "{out}");
    assert!(out.contains("xtask exit status 0"), "{out}");
    assert_terminal_restored(&dir);
    assert_no_qemu(port);

    // The whole log is in the file the banner named.
    let path = banner
        .trim_start_matches("Full log: ")
        .split(" (")
        .next()
        .expect("a path")
        .trim()
        .to_string();
    let log =
        std::fs::read_to_string(workspace().join(&path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    let xen_lines = log.lines().filter(|l| l.starts_with("(XEN)")).count();
    assert!(xen_lines > 100, "{xen_lines} Xen lines in {path}");
    assert!(log.contains(": DEBUG "), "no DEBUG record in {path}");
    assert!(log.contains(&ready), "{path} lacks the ready line");
}

#[test]
fn verbose_shows_everything_and_a_killed_qemu_fails_the_run() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let dir = scratch("verbose");
    let port = free_port();
    let xtask = xtask_run(
        "xtask-run-verbose",
        &dir,
        &format!("--verbose --port {port}"),
    );
    xtask
        .wait_for("XenAPI ready at", Duration::from_secs(300))
        .unwrap_or_else(|e| panic!("{e}"));
    let lines = xtask.lines();
    let xen = lines.iter().filter(|l| l.starts_with("(XEN)")).count();
    assert!(xen > 100, "--verbose showed {xen} Xen lines");
    assert!(
        lines.iter().any(|l| l.contains(": DEBUG ")),
        "no DEBUG record shown"
    );
    let pattern = format!("^qemu-system-x86_64 .*hostfwd=tcp:127.0.0.1:{port}-");
    let killed = Command::new("pkill")
        .args(["-KILL", "-f", &pattern])
        .status()
        .expect("pkill");
    assert!(killed.success(), "no QEMU to kill");
    xtask
        .wait_for("xtask exit status", Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    let (_, out) = xtask.finish(Duration::from_secs(30));
    assert!(out.contains("QEMU was killed by signal 9"), "{out}");
    assert!(out.contains("xtask exit status 137"), "{out}");
    assert_terminal_restored(&dir);
    assert_no_qemu(port);
}

#[test]
fn ctrl_c_stops_qemu_and_ends_the_run() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let dir = scratch("ctrl-c");
    let port = free_port();
    let mut xtask = xtask_run("xtask-run-ctrl-c", &dir, &format!("--port {port}"));
    xtask
        .wait_for("XenAPI ready at", Duration::from_secs(300))
        .unwrap_or_else(|e| panic!("{e}"));
    xtask.type_bytes(&[0x03]).expect("type Ctrl-C");
    xtask
        .wait_for("xtask exit status", Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    let (_, out) = xtask.finish(Duration::from_secs(30));
    assert!(out.contains("Ctrl-C: QEMU stopped"), "{out}");
    assert!(out.contains("xtask exit status 130"), "{out}");
    assert_terminal_restored(&dir);
    assert_no_qemu(port);
}

#[test]
fn the_time_limit_ends_the_run_with_an_error() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let dir = scratch("time-limit");
    let port = free_port();
    let xtask = xtask_run(
        "xtask-run-limit",
        &dir,
        &format!("--port {port} --timeout 3"),
    );
    xtask
        .wait_for("xtask exit status", Duration::from_secs(300))
        .unwrap_or_else(|e| panic!("{e}"));
    let (_, out) = xtask.finish(Duration::from_secs(30));
    assert!(out.contains("Time limit of 3 s reached"), "{out}");
    assert!(out.contains("xtask exit status 124"), "{out}");
    assert_terminal_restored(&dir);
    assert_no_qemu(port);
}

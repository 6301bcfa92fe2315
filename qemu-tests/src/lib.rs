//! The QEMU harness: boots real Xen with the real domains under `timeout`,
//! captures the serial console line by line, waits for markers, and takes
//! the verdict from isa-debug-exit codes (QEMU's exit status 0 proves
//! nothing: a reboot or a dom0 crash also end in 0).
//!
//! Artifacts come from `cargo xtask test`, which builds them into the
//! directory named by `XCP_ARTIFACTS` (xen, toolstack-dom0, bundle.cpio,
//! platform.toml, testdom.elf, netdom.elf, and the test images
//! toolstack-dom0-test, testdom-test.elf, netdom-test.elf). Run these tests
//! through `cargo xtask test`.
//!
//! Cases that check the shipped platform boot the shipped images
//! ([`Artifacts::direct`]); the self-tests boot the test dom0
//! ([`Artifacts::selftest`]), which alone has them, with bundles of their
//! own that name the test kernels they need.
#![forbid(unsafe_code)]

pub mod clients;
pub mod linux;
mod output;

use output::{kill_group, Output};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use xcp_boot::qemu::{Launch, Media};
pub use xcp_runtime::verdict;

/// The built platform.
pub struct Artifacts {
    /// The directory holding everything.
    pub dir: PathBuf,
}

impl Artifacts {
    /// Finds the artifacts `cargo xtask test` built.
    pub fn from_env() -> Artifacts {
        let dir = std::env::var_os("XCP_ARTIFACTS").map(PathBuf::from).expect(
            "XCP_ARTIFACTS is not set: run the QEMU tests through `cargo xtask test`, \
             which builds Xen's image, the domains and the bundle first",
        );
        for f in [
            "xen",
            "toolstack-dom0",
            "bundle.cpio",
            "platform.toml",
            "toolstack-dom0-test",
            "testdom-test.elf",
            "netdom-test.elf",
        ] {
            assert!(
                dir.join(f).is_file(),
                "{} is missing from {}",
                f,
                dir.display()
            );
        }
        Artifacts { dir }
    }

    /// A path inside the artifacts directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The platform's Xen command line.
    pub fn xen_cmdline(&self) -> String {
        let (_, config) =
            xcp_boot::load_config(&self.path("platform.toml")).expect("platform.toml");
        config.platform.xen_cmdline
    }

    /// A direct multiboot launch of the shipped dom0 with `dom0_cmdline`
    /// and `bundle`.
    pub fn direct(&self, dom0_cmdline: &str, bundle: &Path) -> Launch {
        self.direct_with("toolstack-dom0", dom0_cmdline, bundle)
    }

    /// A direct multiboot launch of the test dom0 (built with its
    /// self-tests: `selftest=<name>`) with `dom0_cmdline` and `bundle`.
    pub fn selftest(&self, dom0_cmdline: &str, bundle: &Path) -> Launch {
        self.direct_with("toolstack-dom0-test", dom0_cmdline, bundle)
    }

    fn direct_with(&self, dom0: &str, dom0_cmdline: &str, bundle: &Path) -> Launch {
        // dom0 grows by the bundle's guest files, as `cargo xtask build
        // --guest` grows it; a bundle that does not parse (the tests of
        // dom0's bundle errors) boots with the platform's line as it is.
        let archive = std::fs::read(bundle).unwrap_or_else(|e| panic!("{}: {e}", bundle.display()));
        let xen_cmdline = xcp_boot::xen_cmdline_for(&self.xen_cmdline(), &archive)
            .unwrap_or_else(|_| self.xen_cmdline());
        Launch {
            media: Media::Direct {
                xen: self.path("xen"),
                xen_cmdline,
                dom0: self.path(dom0),
                dom0_cmdline: dom0_cmdline.to_string(),
                bundle: bundle.to_path_buf(),
            },
            memory_mib: 1024,
            // Longer than the self-tests' 150 s waits for their verdict, so
            // a slow (loaded) host fails a wait, with the log, before
            // QEMU's time runs out.
            timeout_secs: 160,
            devices: Default::default(),
        }
    }

    /// A scratch directory for one test.
    pub fn scratch(&self, test: &str) -> PathBuf {
        let dir = self.dir.join("scratch").join(test);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        dir
    }
}

/// A running QEMU.
pub struct Run {
    name: String,
    child: Child,
    /// QEMU's stdin: the serial port's input (Xen hands it to dom0).
    stdin: Mutex<Option<std::process::ChildStdin>>,
    output: Arc<Output>,
    started: Instant,
}

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
    /// QEMU's exit status (None: killed by a signal).
    pub status: Option<i32>,
    /// The whole serial log.
    pub log: String,
}

impl Run {
    /// Starts `launch`; `name` names the saved log.
    pub fn start(name: &str, launch: &Launch) -> Run {
        let mut cmd: Command = launch.command();
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Own process group, so Drop can kill timeout and QEMU together.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().expect("spawn timeout/qemu-system-x86_64");
        let stdin = Mutex::new(child.stdin.take());
        let output = Output::collect(&mut child);
        Run {
            name: name.to_string(),
            child,
            stdin,
            output,
            started: Instant::now(),
        }
    }

    /// Waits until `n` lines (counting from 1) contain `marker`; returns
    /// the `n`th. Fails like [`Run::wait_for`].
    pub fn wait_for_nth(
        &self,
        marker: &str,
        n: usize,
        timeout: Duration,
    ) -> Result<String, String> {
        self.output
            .wait_for_nth(marker, n, timeout)
            .map_err(|lines| {
                format!(
                    "[{}] no line {n} with {:?} after {:?}; log:\n{}",
                    self.name,
                    marker,
                    self.started.elapsed(),
                    excerpt(&lines.join("\n"))
                )
            })
    }

    /// Waits until a line contains `marker`; returns that line. Fails with
    /// the log so far after `timeout` or when QEMU's output ends.
    pub fn wait_for(&self, marker: &str, timeout: Duration) -> Result<String, String> {
        self.wait_for_nth(marker, 1, timeout)
    }

    /// Types `line` and a carriage return on the serial console (after
    /// boot Xen passes serial input to dom0's operator console).
    pub fn type_line(&self, line: &str) -> Result<(), String> {
        use std::io::Write;
        let mut stdin = self.stdin.lock().expect("stdin lock");
        let pipe = stdin.as_mut().ok_or("QEMU's stdin is closed")?;
        pipe.write_all(format!("{line}\r").as_bytes())
            .and_then(|()| pipe.flush())
            .map_err(|e| format!("[{}] type {line:?}: {e}", self.name))
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.output.lines()
    }

    /// Waits for QEMU to exit (killing it after `timeout`), saves the log to
    /// `<artifacts>/logs/<name>.log` when `XCP_ARTIFACTS` is set.
    pub fn finish(mut self, timeout: Duration) -> Outcome {
        let deadline = Instant::now() + timeout;
        let status = loop {
            match self.child.try_wait().expect("wait for qemu") {
                Some(s) => break s.code(),
                None if Instant::now() >= deadline => {
                    self.kill();
                    break None;
                }
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        let log = self.output.drained(Duration::from_secs(5)).join("\n");
        if let Some(dir) = std::env::var_os("XCP_ARTIFACTS") {
            let logs = PathBuf::from(dir).join("logs");
            let _ = std::fs::create_dir_all(&logs);
            let _ = std::fs::write(logs.join(format!("{}.log", self.name)), &log);
        }
        Outcome { status, log }
    }

    fn kill(&mut self) {
        kill_group(&mut self.child);
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

impl Outcome {
    /// The first log line containing `text`; fails with the whole log if
    /// there is none.
    #[track_caller]
    pub fn line(&self, text: &str) -> String {
        self.log
            .lines()
            .find(|l| l.contains(text))
            .unwrap_or_else(|| panic!("no line with {text:?}:\n{}", excerpt(&self.log)))
            .to_string()
    }

    /// Asserts QEMU ended through isa-debug-exit with `code`.
    #[track_caller]
    pub fn assert_verdict(&self, code: u32) {
        assert_eq!(
            self.status,
            Some(verdict::qemu_status(code)),
            "expected debug-exit code {code:#x}; log:\n{}",
            excerpt(&self.log)
        );
    }
}

/// Lines of a failure message's log excerpt at most (the whole log is
/// saved under `<artifacts>/logs/`).
pub const EXCERPT_LINES: usize = 150;

/// The part of a serial log worth reading in a failure message: Xen's boot
/// chatter (its lines before the first line of a domain) is left out, and
/// of the rest only the last [`EXCERPT_LINES`] lines are kept, since the
/// end says where a run stopped. CI shows the start of a long message.
pub fn excerpt(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let first_domain = lines
        .iter()
        .position(|l| !l.starts_with("(XEN)"))
        .unwrap_or(0);
    // Xen's warnings during boot stay.
    let mut kept: Vec<&str> = lines[..first_domain]
        .iter()
        .filter(|l| {
            let lower = l.to_ascii_lowercase();
            lower.contains("warn") || lower.contains("error") || lower.contains("panic")
        })
        .copied()
        .collect();
    let boot_left_out = first_domain - kept.len();
    kept.extend_from_slice(&lines[first_domain..]);
    let mut out = String::new();
    if boot_left_out > 0 {
        out.push_str(&format!("[{boot_left_out} lines of Xen's boot left out]\n"));
    }
    if kept.len() > EXCERPT_LINES {
        out.push_str(&format!(
            "[{} earlier lines left out]\n",
            kept.len() - EXCERPT_LINES
        ));
        kept.drain(..kept.len() - EXCERPT_LINES);
    }
    out.push_str(&kept.join("\n"));
    out
}

/// Xen's console timestamp of a `(XEN) [    1.234567] ...` or our
/// `[    1.234567] dom0: ...` line, in seconds.
pub fn stamp(line: &str) -> Option<f64> {
    let open = line.find('[')?;
    let close = open + line[open..].find(']')?;
    line[open + 1..close].trim().parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn stamps_parse_from_xen_and_dom0_lines() {
        assert_eq!(
            super::stamp("(XEN) [    1.196379] Freed 656kB init memory"),
            Some(1.196379)
        );
        assert_eq!(
            super::stamp("[    1.231699] dom0: dom0 ready"),
            Some(1.231699)
        );
        assert_eq!(super::stamp("no stamp"), None);
    }

    #[test]
    fn excerpts_drop_xen_boot_chatter_and_keep_the_end() {
        let mut log =
            String::from("(XEN) [    0.1] Xen version 4.17\n(XEN) [    0.2] WARNING: no IOMMU\n");
        for i in 0..200 {
            log.push_str(&format!("[    1.{i}] dom0: line {i}\n"));
        }
        log.push_str("(XEN) [    2.0] late Xen line");
        let e = super::excerpt(&log);
        assert!(!e.contains("Xen version"), "{e}");
        assert!(e.contains("[1 lines of Xen's boot left out]"), "{e}");
        assert!(e.contains("late Xen line"), "{e}");
        assert!(e.contains("dom0: line 199"), "{e}");
        assert!(!e.contains("dom0: line 49\n"), "{e}");
        // 202 kept lines (the warning, 200, the late one): the last 150.
        assert!(e.contains("[52 earlier lines left out]"), "{e}");
        assert_eq!(e.lines().count(), 152, "{e}");
    }
}

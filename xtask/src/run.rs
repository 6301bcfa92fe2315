//! `cargo xtask run`: boots the platform in QEMU with the serial console on
//! this terminal, for a person.
//!
//! QEMU never touches the terminal itself: its serial console is a pair of
//! pipes to us, so it can live in a process group of its own (under
//! `timeout`) without being stopped by SIGTTIN/SIGTTOU. We put the terminal
//! in raw mode (as QEMU does for `stdio`) and pass every key to the serial
//! line: dom0 reads commands and echoes them; Ctrl-A three times reaches
//! Xen as it is (it switches serial input between dom0 and Xen). Ctrl-A X
//! and Ctrl-C are ours: they stop QEMU and end the run (QEMU's own
//! multiplexer, `mon:stdio`, would take every other Ctrl-A from Xen).
//! Everything the serial line carries goes to the log file; the terminal
//! gets what [`crate::console::Filter`] shows (all of it with `--verbose`). The terminal's settings come back however
//! the run ends: Ctrl-A X, Ctrl-C, a signal, the time limit, QEMU killed.
//! When standard input is not a terminal, it is passed on as it is and the
//! terminal's settings are never read or changed.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::{ExitCode, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::console::Filter;

/// Ctrl-C, as a key read in raw mode.
const CTRL_C: u8 = 0x03;
/// Ctrl-A; Ctrl-A X quits, as in QEMU's own console.
const CTRL_A: u8 = 0x01;

/// `cargo xtask run` options.
#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    /// QEMU is stopped after this many seconds.
    pub timeout_secs: u64,
    /// The host port forwarded to netdom's XenAPI port 80.
    pub port: u16,
    /// Show the whole serial console on the terminal.
    pub verbose: bool,
    /// Guest files to pack as `/boot/guest/<name>` (`--guest FILE`).
    pub guests: Vec<PathBuf>,
    /// The SR's disk file (`--disk FILE`; by default [`default_disk`]).
    pub disk: Option<PathBuf>,
}

/// Where the SR's disk lives unless `--disk` says otherwise: outside the
/// build tree, so `cargo clean` keeps the platform's state
/// (`$XDG_DATA_HOME/xcp-rs/sr.img`, else `~/.local/share/xcp-rs/sr.img`).
pub fn default_disk() -> Result<PathBuf, String> {
    let data = match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(".local/share"))
            .ok_or("neither XDG_DATA_HOME nor HOME is set: name the disk with --disk FILE")?,
    };
    Ok(data.join("xcp-rs/sr.img"))
}

pub const USAGE: &str =
    "usage: cargo xtask run [--verbose] [--port PORT] [--timeout SECS] [--disk FILE] [--guest FILE]...";

impl Options {
    /// Parses the words after `run`.
    pub fn parse(args: &[String]) -> Result<Options, String> {
        let mut options = Options {
            timeout_secs: 3600,
            port: 8080,
            verbose: false,
            guests: Vec::new(),
            disk: None,
        };
        let mut words = args.iter();
        while let Some(word) = words.next() {
            let mut value = |what: &str| {
                words
                    .next()
                    .ok_or_else(|| format!("{word} takes {what}\n{USAGE}"))
                    .cloned()
            };
            match word.as_str() {
                "--verbose" | "-v" => options.verbose = true,
                "--guest" => options.guests.push(PathBuf::from(value("a file")?)),
                "--disk" => options.disk = Some(PathBuf::from(value("a file")?)),
                "--timeout" => {
                    options.timeout_secs = value("seconds")?
                        .parse()
                        .ok()
                        .filter(|&s| s > 0)
                        .ok_or_else(|| format!("--timeout takes seconds\n{USAGE}"))?
                }
                "--port" => {
                    options.port = value("a port")?
                        .parse()
                        .ok()
                        .filter(|&p| p > 0)
                        .ok_or_else(|| format!("--port takes a port number\n{USAGE}"))?
                }
                other => return Err(format!("unknown option {other:?}\n{USAGE}")),
            }
        }
        Ok(options)
    }
}

/// What ended the run.
enum Event {
    /// QEMU (its `timeout`) exited.
    Exited(std::io::Result<ExitStatus>),
    /// The person pressed Ctrl-C.
    CtrlC,
    /// The person typed Ctrl-A X.
    CtrlAX,
    /// We got this signal.
    Signal(i32),
}

/// The run itself: the platform is built.
pub fn run(platform: &crate::build::Platform, options: &Options) -> Result<ExitCode, String> {
    // QEMU's hostfwd fails late and tersely on a port in use: say it first.
    if let Err(e) = std::net::TcpListener::bind(("127.0.0.1", options.port)) {
        return Err(format!(
            "127.0.0.1:{} is not free ({e}): choose another with --port PORT",
            options.port
        ));
    }
    let log_path = platform.dir.join("run.log");
    let log =
        std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let url = format!("http://127.0.0.1:{}/", options.port);
    let mut launch = platform.launch(&format!("xenapi-url={url}"));
    launch.timeout_secs = options.timeout_secs;
    launch.devices.nic = Some(Some(options.port));
    let disk = match &options.disk {
        Some(path) => path.clone(),
        None => default_disk()?,
    };
    let created = xcp_boot::qemu::sparse_disk(&disk, xcp_boot::qemu::SR_DISK_BYTES)
        .map_err(|e| format!("the SR disk {}: {e}", disk.display()))?;
    eprintln!(
        "SR disk: {} ({})",
        disk.display(),
        if created {
            "new, sparse"
        } else {
            "kept from the last run"
        }
    );
    launch.devices.disk = Some(disk);
    let mut cmd = launch.command();
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // `timeout` makes itself a process group leader anyway; say so here so
    // the group we signal is certain.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);

    let terminal = std::io::stdin().is_terminal();
    eprintln!(
        "Booting Xen 4.17 + xcp-rs in QEMU (at most {} s). Ctrl-A X quits, Ctrl-C too; \
         type help for dom0's console.",
        options.timeout_secs
    );
    eprintln!(
        "Full log: {}{}",
        shown_path(&log_path),
        if options.verbose {
            ""
        } else {
            " (--verbose shows it here)"
        }
    );
    let raw = if terminal {
        Some(RawTerminal::enter()?)
    } else {
        None
    };
    let result = supervise(cmd, log, options, terminal);
    // The terminal as it was, before anything more is printed.
    drop(raw);
    let event = result?;
    Ok(report(event, options, &log_path))
}

/// Starts QEMU and its pumps; waits for what ends the run, stopping QEMU
/// if it is still running then.
fn supervise(
    mut cmd: std::process::Command,
    log: std::fs::File,
    options: &Options,
    terminal: bool,
) -> Result<Event, String> {
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("timeout/qemu-system-x86_64: {e}"))?;
    let group = child.id();
    let (events, ended) = mpsc::channel::<Event>();

    // Signals that would end us: stop QEMU and restore the terminal first.
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT])
        .map_err(|e| format!("signal handlers: {e}"))?;
    let tx = events.clone();
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            let _ = tx.send(Event::Signal(signal));
        }
    });

    // Serial output: all of it to the log, the filtered part to the terminal.
    let log = std::sync::Arc::new(std::sync::Mutex::new(log));
    let stdout = child.stdout.take().expect("piped");
    let pumps = [
        pump(
            stdout,
            std::sync::Arc::clone(&log),
            Some(Filter::new(options.verbose)),
        ),
        pump(
            child.stderr.take().expect("piped"),
            std::sync::Arc::clone(&log),
            None,
        ),
    ];

    // Keys (or a script's input) to the serial line.
    let mut qemu_in = child.stdin.take().expect("piped");
    let tx = events.clone();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 256];
        let mut after_escape = false;
        loop {
            let n = match stdin.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            for &b in &buf[..n] {
                if terminal && b == CTRL_C {
                    let _ = tx.send(Event::CtrlC);
                    return;
                }
                if after_escape && (b == b'x' || b == b'X') {
                    let _ = tx.send(Event::CtrlAX);
                    return;
                }
                after_escape = b == CTRL_A;
            }
            if qemu_in.write_all(&buf[..n]).is_err() || qemu_in.flush().is_err() {
                return;
            }
        }
    });

    let waiter = std::thread::spawn(move || {
        let status = child.wait();
        let _ = events.send(Event::Exited(status));
    });
    let event = ended.recv().expect("an event: the waiter always sends one");
    // Whatever ended the run, no QEMU outlives it (one whose `timeout` was
    // killed would otherwise run on alone).
    stop(group);
    // Let QEMU's last words reach the log.
    let _ = waiter.join();
    for p in pumps {
        let _ = p.join();
    }
    Ok(event)
}

/// Copies `from` to the log and (filtered, when given a filter) to the
/// terminal (stdout for the serial console, stderr for QEMU's own words).
fn pump(
    mut from: impl Read + Send + 'static,
    log: std::sync::Arc<std::sync::Mutex<std::fs::File>>,
    filter: Option<Filter>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut filter = filter;
        let mut buf = [0u8; 4096];
        let mut shown = Vec::new();
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if let Ok(mut log) = log.lock() {
                let _ = log.write_all(&buf[..n]);
            }
            shown.clear();
            match filter.as_mut() {
                Some(f) => {
                    f.feed(&buf[..n], &mut shown);
                    show(&mut std::io::stdout(), &shown);
                }
                None => show(&mut std::io::stderr(), &buf[..n]),
            }
        }
        if let Some(f) = filter.as_mut() {
            shown.clear();
            f.finish(&mut shown);
            show(&mut std::io::stdout(), &shown);
        }
        if let Ok(mut log) = log.lock() {
            let _ = log.flush();
        }
    })
}

fn show(to: &mut impl Write, bytes: &[u8]) {
    if !bytes.is_empty() {
        let _ = to.write_all(bytes);
        let _ = to.flush();
    }
}

/// Stops QEMU's process group: SIGTERM (QEMU exits cleanly), SIGKILL if
/// it is still there after 5 s.
fn stop(group: u32) {
    use rustix::process::{kill_process_group, test_kill_process_group, Pid, Signal};
    let Some(pid) = i32::try_from(group).ok().and_then(Pid::from_raw) else {
        return;
    };
    let _ = kill_process_group(pid, Signal::TERM);
    for _ in 0..50 {
        if test_kill_process_group(pid).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = kill_process_group(pid, Signal::KILL);
}

/// Says how the run ended; the exit code a shell sees.
fn report(event: Event, options: &Options, log: &std::path::Path) -> ExitCode {
    let log = shown_path(log);
    match event {
        Event::CtrlAX => {
            eprintln!("\r\nCtrl-A X: QEMU stopped. Full log: {log}");
            ExitCode::SUCCESS
        }
        Event::CtrlC => {
            eprintln!("\r\nCtrl-C: QEMU stopped. Full log: {log}");
            ExitCode::from(130)
        }
        Event::Signal(signal) => {
            eprintln!("\r\nSignal {signal}: QEMU stopped. Full log: {log}");
            ExitCode::from(128 + u8::try_from(signal).unwrap_or(0))
        }
        Event::Exited(Err(e)) => {
            eprintln!("QEMU: {e}. Full log: {log}");
            ExitCode::FAILURE
        }
        Event::Exited(Ok(status)) => {
            use std::os::unix::process::ExitStatusExt;
            match (status.code(), status.signal()) {
                (Some(0), _) => {
                    eprintln!(
                        "QEMU ended: Xen rebooted or powered off (a dom0 crash makes it reboot). \
                         Full log: {log}"
                    );
                    ExitCode::FAILURE
                }
                // GNU timeout's code when the time limit fired.
                (Some(124), _) => {
                    eprintln!(
                        "Time limit of {} s reached: QEMU stopped (--timeout SECS sets it). Full log: {log}",
                        options.timeout_secs
                    );
                    ExitCode::from(124)
                }
                (Some(code), _) if code > 128 => {
                    eprintln!("QEMU was killed by signal {}. Full log: {log}", code - 128);
                    ExitCode::from(u8::try_from(code).unwrap_or(1))
                }
                (Some(code), _) => {
                    eprintln!("QEMU failed (exit status {code}). Full log: {log}");
                    ExitCode::from(u8::try_from(code).ok().filter(|&c| c != 0).unwrap_or(1))
                }
                (None, Some(signal)) => {
                    eprintln!("QEMU was killed by signal {signal}. Full log: {log}");
                    ExitCode::from(128 + u8::try_from(signal).unwrap_or(0))
                }
                (None, None) => ExitCode::FAILURE,
            }
        }
    }
}

/// `path` relative to the current directory when it is below it.
fn shown_path(path: &std::path::Path) -> String {
    let here = std::env::current_dir().unwrap_or_default();
    path.strip_prefix(&here)
        .map(PathBuf::from)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// The terminal in raw mode (as QEMU sets it for `stdio`: no line editing,
/// no echo, no signals from keys, output processing kept); its settings
/// come back when this is dropped.
struct RawTerminal {
    saved: rustix::termios::Termios,
}

impl RawTerminal {
    fn enter() -> Result<RawTerminal, String> {
        use rustix::termios::{
            tcgetattr, tcsetattr, ControlModes, InputModes, LocalModes, OptionalActions,
            SpecialCodeIndex,
        };
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).map_err(|e| format!("terminal settings: {e}"))?;
        let mut raw = saved.clone();
        raw.input_modes -= InputModes::IGNBRK
            | InputModes::BRKINT
            | InputModes::PARMRK
            | InputModes::ISTRIP
            | InputModes::INLCR
            | InputModes::IGNCR
            | InputModes::ICRNL
            | InputModes::IXON;
        raw.local_modes -=
            LocalModes::ECHO | LocalModes::ECHONL | LocalModes::ICANON | LocalModes::IEXTEN;
        // Ctrl-C and Ctrl-Z arrive as keys: Ctrl-C is ours (it stops the
        // run cleanly), Ctrl-Z goes to the serial line.
        raw.local_modes -= LocalModes::ISIG;
        raw.control_modes -= ControlModes::CSIZE | ControlModes::PARENB;
        raw.control_modes |= ControlModes::CS8;
        raw.special_codes[SpecialCodeIndex::VMIN] = 1;
        raw.special_codes[SpecialCodeIndex::VTIME] = 0;
        tcsetattr(&stdin, OptionalActions::Now, &raw)
            .map_err(|e| format!("terminal raw mode: {e}"))?;
        Ok(RawTerminal { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            std::io::stdin(),
            rustix::termios::OptionalActions::Now,
            &self.saved,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &[&str]) -> Result<Options, String> {
        Options::parse(&words.iter().map(|w| w.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn options_parse_with_defaults() {
        assert_eq!(
            parse(&[]).unwrap(),
            Options {
                timeout_secs: 3600,
                port: 8080,
                verbose: false,
                guests: Vec::new(),
                disk: None,
            }
        );
        assert_eq!(
            parse(&[
                "--verbose",
                "--port",
                "9090",
                "--guest",
                "a/vmlinux",
                "--timeout",
                "30",
                "--guest",
                "initrd",
                "--disk",
                "/tmp/d.img"
            ])
            .unwrap(),
            Options {
                timeout_secs: 30,
                port: 9090,
                verbose: true,
                guests: vec![PathBuf::from("a/vmlinux"), PathBuf::from("initrd")],
                disk: Some(PathBuf::from("/tmp/d.img")),
            }
        );
        assert!(parse(&["--guest"]).unwrap_err().contains("--guest takes"));
        assert!(parse(&["--port"]).unwrap_err().contains("--port takes"));
        assert!(parse(&["--port", "0"]).is_err());
        assert!(parse(&["--timeout", "soon"]).is_err());
        assert!(parse(&["--loud"]).unwrap_err().contains("unknown option"));
    }
}

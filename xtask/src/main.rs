//! `cargo xtask <command>`: the project's two user commands and their helpers.
//!
//! - `run [--verbose] [--port PORT] [--timeout SECS] [--guest FILE]...`:
//!   install what is missing, build, boot the platform in QEMU with the
//!   serial console on this terminal (Ctrl-A X or Ctrl-C quits; `run.rs`).
//!   Each `--guest FILE` (also for `build` and `iso`) packs FILE in the
//!   bundle as `/boot/guest/<name>`, for a VM's `PV_kernel` / `PV_ramdisk`.
//! - `test`: fmt, clippy, host tests, no_std builds, short fuzz runs, QEMU tests.
//! - `lint`: just the fmt check and clippy (host and kernel target).
//! - `fuzz [SECS]`: every fuzz target for SECS seconds (60 by default).
//! - `hash-password PW`: the `[toolstack] root_password_hash` line's value.
//! - `bench [PART...]`: the benchmarks (xenstore, xenapi, domain, boot,
//!   netdom, memory, guests; all when none is named), printed and written under
//!   target/bench.
//! - `build`: the kernels, the bundle and grub.cfg into target/xcp, and
//!   the test images the QEMU self-tests boot (`build.rs`).
//! - `iso`: a bootable ISO at target/xcp/xcp.iso.
#![forbid(unsafe_code)]

mod bench;
mod build;
mod console;
mod deps;
mod fuzz;
mod run;

use std::process::{Command, ExitCode};

/// Runs `cmd`, echoing it; Err if it fails.
pub(crate) fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}").replace('"', "");
    eprintln!("+ {shown}");
    let status = cmd.status().map_err(|e| format!("{shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown}: {status}"))
    }
}

pub(crate) fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(build::workspace_root());
    cmd
}

/// Seconds each fuzz target runs inside `cargo xtask test`.
const FUZZ_SECONDS: u32 = 15;

fn usage() -> ExitCode {
    eprintln!("usage: cargo xtask <run [--verbose] [--port PORT] [--timeout SECS] [--guest FILE]... | test | lint | fuzz [SECS] | bench [xenstore|xenapi|domain|boot|netdom|memory|guests|net|disk|vms]... | build [--guest FILE]... | iso [--guest FILE]... | hash-password PW>");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => match cmd_run(&args[1..]) {
            Ok(code) => return code,
            Err(e) => Err(e),
        },
        Some("test") => cmd_test(),
        Some("lint") => lint(),
        Some("hash-password") => match args.get(1) {
            Some(pw) => xenapi::auth::hash_password(pw, 10_000)
                .map(|hash| println!("{hash}"))
                .map_err(|e| format!("/dev/urandom: {e}")),
            None => return usage(),
        },
        Some("fuzz") => match args.get(1).map(|s| s.parse::<u32>()) {
            None => fuzz::run(60),
            Some(Ok(secs)) => fuzz::run(secs),
            Some(Err(_)) => return usage(),
        },
        Some("bench") => bench::run(&args[1..]),
        Some("build") => build::guest_options(&args[1..])
            .and_then(|guests| deps::ensure().and_then(|_| build::platform(&guests).map(|_| ()))),
        Some("iso") => build::guest_options(&args[1..]).and_then(|guests| {
            deps::ensure()
                .and_then(|_| build::iso(&guests).map(|p| eprintln!("ISO: {}", p.display())))
        }),
        _ => return usage(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn cmd_run(args: &[String]) -> Result<ExitCode, String> {
    let options = run::Options::parse(args)?;
    deps::ensure()?;
    let p = build::platform(&options.guests)?;
    run::run(&p, &options)
}

/// fmt check and clippy, for the host and for the kernels' target.
fn lint() -> Result<(), String> {
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    run(cargo().args([
        "clippy",
        "-p",
        "xcp-netrelay",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]))?;
    // netdom's pure parts with the DMA-escape hook's argument.
    run(cargo().args([
        "clippy",
        "-p",
        "netdom",
        "--all-targets",
        "--features",
        "dma-escape",
        "--",
        "-D",
        "warnings",
    ]))?;
    run(cargo()
        .args(["clippy", "--target", "x86_64-unknown-none"])
        .args(build::kernel_package_args())
        .args(["--", "-D", "warnings"]))?;
    // xcp-kimage on its own for the kernel target (dom0 uses it through
    // its board; this keeps its no_std build checked without dom0).
    run(cargo().args([
        "clippy",
        "--target",
        "x86_64-unknown-none",
        "-p",
        "xcp-kimage",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The test images' code (self-tests, test peers, the DMA-escape hook).
    run(cargo()
        .args(["clippy", "--target", "x86_64-unknown-none"])
        .args(build::test_kernel_args())
        .args(["--", "-D", "warnings"]))
}

fn cmd_test() -> Result<(), String> {
    let started = std::time::Instant::now();
    deps::ensure()?;
    lint()?;
    run(cargo().args(["test", "--workspace", "--exclude", "xcp-qemu-tests"]))?;
    run(cargo().args(["test", "-p", "xcp-qemu-tests", "--lib"]))?;
    // Feature-gated tests: netdom's smoltcp glue and its L2 simulation.
    run(cargo().args(["test", "-p", "xcp-netrelay", "--all-features"]))?;
    // netdom's command line with the DMA-escape hook's argument.
    run(cargo().args(["test", "-p", "netdom", "--features", "dma-escape"]))?;
    fuzz::run(FUZZ_SECONDS)?;
    let p = build::platform(&[])?;
    // Host checks that need the built kernels.
    run(cargo()
        .args(["test", "-p", "xcp-builder", "--test", "real_kernel"])
        .env("XCP_REQUIRE_KERNELS", "1"))?;
    // The shipped images carry no test code; the test images do.
    run(cargo()
        .args(["test", "-p", "xtask", "--test", "shipped_images"])
        .env("XCP_ARTIFACTS", &p.dir)
        .env("XCP_REQUIRE_KERNELS", "1"))?;
    let mut qemu = cargo();
    qemu.args([
        "test",
        "-p",
        "xcp-qemu-tests",
        "--tests",
        // Every QEMU case runs even after one fails: one red case must
        // not hide the state of the others.
        "--no-fail-fast",
        "--",
        "--test-threads=2",
    ])
    .env("XCP_ARTIFACTS", &p.dir);
    run(&mut qemu)?;
    eprintln!("xtask test: all green in {:.0?}", started.elapsed());
    Ok(())
}

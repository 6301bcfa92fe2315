//! Short fuzz runs of every cargo-fuzz project in the tree (part of `test`),
//! or longer ones with `cargo xtask fuzz SECS`. cargo-fuzz needs nightly
//! flags; RUSTC_BOOTSTRAP lets the pinned stable toolchain accept them.

use std::path::PathBuf;
use std::process::Command;

/// Fuzz projects, each its own workspace with a committed seed corpus.
const PROJECTS: &[&str] = &[
    "shared/ring/fuzz",
    "shared/channel/fuzz",
    "shared/xenbus/fuzz",
    "xenstore-dom/fuzz",
    "toolstack-dom0/fuzz",
    "toolstack-dom0/builder/fuzz",
    "toolstack-dom0/kimage/fuzz",
    "netdom/relay/fuzz",
    "netdom/kernel/fuzz",
    "netdom/bridge/fuzz",
    "netdom/netback/fuzz",
    "stordom/sr/fuzz",
    "stordom/blkback/fuzz",
    "stordom/kernel/fuzz",
    "stordom/vhd/fuzz",
];

fn ensure_cargo_fuzz() -> Result<(), String> {
    let have = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if have {
        return Ok(());
    }
    crate::run(crate::cargo().args(["install", "cargo-fuzz", "--locked"]))
}

/// Runs every target of every project for `seconds`.
pub fn run(seconds: u32) -> Result<(), String> {
    let root = crate::build::workspace_root();
    let projects: Vec<PathBuf> = PROJECTS
        .iter()
        .map(|p| root.join(p))
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    if projects.is_empty() {
        return Ok(());
    }
    ensure_cargo_fuzz()?;
    for project in projects {
        let list = Command::new("cargo")
            .args(["fuzz", "list", "--fuzz-dir"])
            .arg(&project)
            .current_dir(project.parent().expect("fuzz dir has a parent"))
            .output()
            .map_err(|e| format!("cargo fuzz list: {e}"))?;
        if !list.status.success() {
            return Err(format!(
                "cargo fuzz list in {}: {}",
                project.display(),
                String::from_utf8_lossy(&list.stderr)
            ));
        }
        let targets = String::from_utf8_lossy(&list.stdout).to_string();
        for target in targets.lines().map(str::trim).filter(|t| !t.is_empty()) {
            let corpus = project.join("corpus").join(target);
            // A scratch copy so a run never rewrites the committed corpus.
            let scratch = root.join("target/fuzz-corpus").join(target);
            let _ = std::fs::remove_dir_all(&scratch);
            std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
            let mut cmd = Command::new("cargo");
            // One target dir for every fuzz project: what they share
            // (libFuzzer's C++, arbitrary, the workspace's crates) is built
            // once, not once a project (fifteen times on a fresh clone).
            cmd.env("RUSTC_BOOTSTRAP", "1")
                .args(["fuzz", "run", "--fuzz-dir"])
                .arg(&project)
                .arg("--target-dir")
                .arg(root.join("target/fuzz-build"))
                .arg(target)
                .arg(&scratch);
            if corpus.is_dir() {
                cmd.arg(&corpus);
            }
            cmd.arg("--")
                .arg(format!("-max_total_time={seconds}"))
                .arg("-rss_limit_mb=2048")
                .current_dir(project.parent().expect("fuzz dir has a parent"));
            crate::run(&mut cmd)?;
        }
    }
    Ok(())
}

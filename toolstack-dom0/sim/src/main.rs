//! xcp-sim: XenAPI host mode on 127.0.0.1 with a simulated hypervisor.
//!
//! `xcp-sim --listen 127.0.0.1:PORT --state DIR [--password PW] [--iterations N]`
//! The login is `root` with the password hash kept in `DIR/config` (written
//! from `--password`). The WAL is `DIR/xapi.wal`. On a fresh DIR the host is
//! seeded like a fresh xapi host. Prints `xcp-sim listening on ADDR` once
//! ready. See toolstack-dom0/XENAPI.md.

#![warn(missing_docs)]

mod entropy;
mod server;
mod storage;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;

use xenapi::auth::{PasswordHash, DEFAULT_ITERATIONS};
use xenapi::engine::{Config, Engine};
use xenapi::hypervisor::FakeHypervisor;

use crate::entropy::OsEntropy;
use crate::server::{monitor, now, serve, Shared};
use crate::storage::FileStorage;

struct Args {
    listen: SocketAddr,
    state: PathBuf,
    password: Option<String>,
    iterations: u32,
}

fn parse_args() -> Result<Args, String> {
    let mut listen = None;
    let mut state = None;
    let mut password = None;
    let mut iterations = DEFAULT_ITERATIONS;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--listen" => listen = Some(val()?.parse::<SocketAddr>().map_err(|e| e.to_string())?),
            "--state" => state = Some(PathBuf::from(val()?)),
            "--password" => password = Some(val()?),
            "--iterations" => {
                iterations = val()?.parse().map_err(|_| "bad --iterations".to_string())?
            }
            _ => return Err(format!("unknown argument {a}")),
        }
    }
    let listen = listen.ok_or("--listen ADDR is required")?;
    if !listen.ip().is_loopback() {
        return Err("xcp-sim binds to loopback addresses only".into());
    }
    Ok(Args {
        listen,
        state: state.ok_or("--state DIR is required")?,
        password,
        iterations,
    })
}

/// Writes a file readable by its owner only (it holds the password hash).
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// Reads `DIR/config` (`password_hash=...`), writing it from `--password`.
fn load_password(args: &Args, rng: &mut OsEntropy) -> Result<PasswordHash, String> {
    let path = args.state.join("config");
    if let Some(pw) = &args.password {
        let h = PasswordHash::new(pw, args.iterations, rng);
        write_private(&path, &format!("user=root\npassword_hash={}\n", h.encode()))
            .map_err(|e| e.to_string())?;
        return Ok(h);
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|_| format!("no {} and no --password", path.display()))?;
    text.lines()
        .find_map(|l| l.strip_prefix("password_hash="))
        .and_then(PasswordHash::parse)
        .ok_or_else(|| format!("{}: no valid password_hash line", path.display()))
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    std::fs::create_dir_all(&args.state).map_err(|e| e.to_string())?;
    let mut rng = OsEntropy::new();
    let password = load_password(&args, &mut rng)?;
    let storage = FileStorage::open(&args.state).map_err(|e| e.to_string())?;
    let config = Config::new("root", password);
    let mut engine = Engine::open(config, FakeHypervisor::default(), storage, rng)
        .map_err(|e| e.0.to_string())?;
    // A torn tail cut, or a log corrupt in the middle (read-only).
    eprintln!("xcp-sim: {}", engine.wal_report().summary());
    engine
        .recover_after_restart(now())
        .map_err(|e| format!("{e:?}"))?;
    engine
        .seed(now(), "xcp-sim", &args.listen.ip().to_string())
        .map_err(|e| format!("{e:?}"))?;
    let listener = TcpListener::bind(args.listen).map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("xcp-sim listening on {addr}");
    let shared = Shared::new(engine);
    let sampler = shared.clone();
    std::thread::Builder::new()
        .name("monitor".into())
        .spawn(move || monitor(sampler))
        .map_err(|e| e.to_string())?;
    serve(listener, shared);
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xcp-sim: {e}");
            ExitCode::FAILURE
        }
    }
}

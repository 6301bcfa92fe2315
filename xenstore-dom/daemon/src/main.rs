//! xcp-xenstored: the xenstore engine served on a unix socket.
//!
//! Usage: `xcp-xenstored --socket PATH [--pidfile PATH] [--quota NAME=VALUE]...`.
//! Stays in the foreground. `--quota` sets a global quota default (names as
//! GET_QUOTA lists them: nodes, watches, transactions, node-size, ...). Every socket connection is dom0 (privileged), as with C
//! xenstored's socket. Clients: xenstore-utils with `XENSTORED_PATH=PATH`,
//! pyxs `Client(unix_socket_path=PATH)`.

#![forbid(unsafe_code)]

mod server;

use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!(
        "usage: xcp-xenstored --socket PATH [--pidfile PATH] [--quota NAME=VALUE]... [--no-fork]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut socket = None;
    let mut config = xenstore_engine::Config::default();
    let mut pidfile = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--socket" | "-s" => socket = args.next(),
            "--pidfile" | "-F" => pidfile = args.next(),
            "--quota" => {
                let Some(spec) = args.next() else {
                    return usage();
                };
                let parsed = spec
                    .split_once('=')
                    .and_then(|(n, v)| Some((n, v.parse::<u32>().ok()?)));
                match parsed {
                    Some((name, value)) if config.quotas.set(name.as_bytes(), value) => {}
                    _ => {
                        eprintln!(
                            "xcp-xenstored: bad --quota {spec} (names: {})",
                            xenstore_engine::Quotas::names()
                        );
                        return usage();
                    }
                }
            }
            // Always in the foreground; accepted for compatibility.
            "--no-fork" | "-N" | "--foreground" => {}
            "--help" | "-h" => return usage(),
            _ => {
                eprintln!("xcp-xenstored: unknown argument {a}");
                return usage();
            }
        }
    }
    let Some(socket) = socket else { return usage() };
    if let Some(p) = &pidfile {
        if let Err(e) = std::fs::write(p, format!("{}\n", std::process::id())) {
            eprintln!("xcp-xenstored: cannot write pidfile {p}: {e}");
            return ExitCode::FAILURE;
        }
    }
    match server::run(std::path::Path::new(&socket), config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xcp-xenstored: {e}");
            ExitCode::FAILURE
        }
    }
}

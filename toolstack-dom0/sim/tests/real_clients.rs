//! Real, unmodified XenAPI clients against xcp-sim: PyPI `XenAPI`
//! (XML-RPC) and npm `xen-api` 4.7.6 (JSON-RPC, Xen Orchestra's client).

mod common;

use std::process::Command;

use common::*;

#[test]
fn pypi_xenapi_client_scenarios() {
    let py = python_with_xenapi();
    let sim = Sim::start(&state_dir("py"));
    let (ok, out) = run(
        Command::new(py)
            .arg(client_script("xenapi_client.py"))
            .arg(sim.url())
            .arg(PASSWORD),
        180,
    );
    assert!(ok, "python client failed:\n{out}");
    assert!(out.contains("all scenarios passed"), "{out}");
}

#[test]
fn npm_xen_api_client_scenarios() {
    let modules = node_modules_with_xen_api();
    let sim = Sim::start(&state_dir("js"));
    let (ok, out) = run(
        Command::new("node")
            .arg(client_script("xen_api_client.mjs"))
            .arg(sim.url())
            .arg(PASSWORD)
            .arg(&modules),
        180,
    );
    assert!(ok, "xen-api client failed:\n{out}");
    assert!(out.contains("all scenarios passed"), "{out}");
}

/// The client scripts really fail on a mismatch (here: a wrong password),
/// so a passing run above means something.
#[test]
fn client_scripts_fail_on_mismatch() {
    let py = python_with_xenapi();
    let modules = node_modules_with_xen_api();
    let sim = Sim::start(&state_dir("mismatch"));
    let (ok, out) = run(
        Command::new(py)
            .arg(client_script("xenapi_client.py"))
            .arg(sim.url())
            .arg("wrong-password"),
        120,
    );
    assert!(!ok, "python client passed with a wrong password:\n{out}");
    let (ok, out) = run(
        Command::new("node")
            .arg(client_script("xen_api_client.mjs"))
            .arg(sim.url())
            .arg("wrong-password")
            .arg(&modules),
        120,
    );
    assert!(!ok, "xen-api client passed with a wrong password:\n{out}");
}

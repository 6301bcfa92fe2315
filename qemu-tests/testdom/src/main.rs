//! testdom: a small PV domain the QEMU tests ask dom0 to build. It logs a
//! greeting through its PV console, then does what its command line says:
//! `panic` crashes on purpose, `poweroff` / `reboot` end the domain as an OS
//! would; otherwise it idles. The shipped bundle carries it as the demo
//! guest kernel of XenAPI VMs (`PV_kernel` "testdom.elf").
//!
//! With the `selftest` feature (the test image, `testdom-test.elf`, never
//! shipped) it also plays dom0's self-test peers and hostile guests:
//! `grant-test=<list gref>,<count>,<port>` runs the grant map/copy peer;
//! `channel=<gref>,<gref>,<port>` answers pings on the inter-domain channel;
//! `xs-test=<role>` uses xenstore-dom (`xs-test=stress` hammers it);
//! `xs-fill` fills
//! xenstore to its byte quota inside open transactions; `xenapi-relay=...`
//! drives XenAPI in dom0 as a relay; `xs-whoami=<reader domid>` (a XenAPI
//! VM's guest) reads who it is from xenstore and reports it in `data/`;
//! `console-echo` echoes console input lines back (a XenAPI VM's text
//! console test); `netfront-fuzz[=<seed>]` (a XenAPI VM's guest with a VIF)
//! is a netfront that writes garbage into its rings until netdom
//! disconnects it, three times over; `blkfront-fuzz[=<seed>]` (a XenAPI
//! VM's guest with a VBD) does the same to stordom's blkback.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![cfg_attr(target_os = "none", forbid(unsafe_code))]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(all(target_os = "none", feature = "selftest"))]
mod blkfront_fuzz;
#[cfg(all(target_os = "none", feature = "selftest"))]
mod channel_peer;
#[cfg(all(target_os = "none", feature = "selftest"))]
mod console_echo;
#[cfg(all(target_os = "none", feature = "selftest"))]
mod grant_peer;
#[cfg(all(target_os = "none", feature = "selftest"))]
mod netfront_fuzz;
#[cfg(all(target_os = "none", feature = "selftest"))]
mod pvfront;
#[cfg(all(target_os = "none", feature = "selftest"))]
mod xenapi_client;
#[cfg(all(target_os = "none", feature = "selftest"))]
mod xs_fill;
#[cfg(all(target_os = "none", feature = "selftest"))]
mod xs_stress;
#[cfg(all(target_os = "none", feature = "selftest"))]
mod xs_test;
#[cfg(all(target_os = "none", feature = "selftest"))]
mod xs_whoami;

#[cfg(target_os = "none")]
mod domain {
    use xcp_runtime::{cmdline, Boot};

    xcp_runtime::entry!(main, "testdom");

    fn main(boot: Boot) -> ! {
        log::info!(
            "hello from testdom: {} pages, command line {:?}",
            boot.nr_pages,
            boot.cmdline
        );
        if cmdline::has(boot.cmdline, "panic") {
            panic!("testdom asked to panic");
        }
        // A guest that ends itself, as an OS does on `poweroff` / `reboot`.
        if cmdline::has(boot.cmdline, "poweroff") {
            xcp_runtime::shutdown(xen_sys::sched::SHUTDOWN_POWEROFF);
        }
        if cmdline::has(boot.cmdline, "reboot") {
            xcp_runtime::shutdown(xen_sys::sched::SHUTDOWN_REBOOT);
        }
        #[cfg(feature = "selftest")]
        peers(&boot);
        loop {
            xcp_runtime::event_loop::idle();
        }
    }

    /// Plays the self-test peer the command line names, if any (test
    /// image only).
    #[cfg(feature = "selftest")]
    fn peers(boot: &Boot) {
        if let Some(arg) = cmdline::get(boot.cmdline, "grant-test") {
            crate::grant_peer::run(arg);
        }
        if let Some(arg) = cmdline::get(boot.cmdline, "channel") {
            crate::channel_peer::run(arg);
        }
        if cmdline::has(boot.cmdline, "xs-fill") {
            crate::xs_fill::run(boot);
        }
        if let Some(reader) = cmdline::get(boot.cmdline, "xs-whoami") {
            crate::xs_whoami::run(boot, reader);
        }
        if let Some(role) = cmdline::get(boot.cmdline, "xs-test") {
            crate::xs_test::run(boot, role);
        }
        if let Some(seed) = cmdline::get(boot.cmdline, "netfront-fuzz") {
            crate::netfront_fuzz::run(boot, seed);
        }
        if let Some(seed) = cmdline::get(boot.cmdline, "blkfront-fuzz") {
            crate::blkfront_fuzz::run(boot, seed);
        }
        if cmdline::has(boot.cmdline, "console-echo") {
            crate::console_echo::run();
        }
        if let Some(arg) = cmdline::get(boot.cmdline, "xenapi-relay") {
            let password = cmdline::get(boot.cmdline, "xenapi-password").unwrap_or("");
            crate::xenapi_client::run(boot, arg, password);
        }
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("testdom is a Xen PV kernel: build it with `cargo xtask build`");
    std::process::exit(2);
}

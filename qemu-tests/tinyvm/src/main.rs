//! tinyvm: a tiny PVH guest, a few KiB, for starting many VMs at once.
//!
//! Xen enters it at `XEN_ELFNOTE_PHYS32_ENTRY` in 32-bit protected mode
//! with paging off and `%ebx` = the `hvm_start_info` address
//! (xen docs/misc/pvh.pandoc); `hw` switches to long mode over an identity
//! map of the low 4 GiB and calls [`tinyvm_main`]. The guest says
//! `tinyvm: up` on Xen's debug port (0xE9: Xen prints `(dN) tinyvm: up` on
//! its serial line) and, when there is room, its PV console, installs its
//! hypercall page, then talks to xenstore as a guest with
//! xe-guest-utilities would (`xcp_tinyvm::guest`): it shows up in
//! `VM_guest_metrics` as `name: tinyvm` and obeys a clean shutdown or
//! reboot. No interrupts: it waits with `SCHEDOP_poll` on the xenstore
//! port. A panic says so and crashes the domain (`SHUTDOWN_crash`).
//!
//! All `unsafe` is in `hw.rs`. A host build only says how to build it.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod hw;

#[cfg(target_os = "none")]
mod domain {
    use xcp_tinyvm::guest::{self, Outcome};
    use xcp_tinyvm::store::Client;
    use xen_abi::sched::{SHUTDOWN_POWEROFF, SHUTDOWN_REBOOT};

    use crate::hw;

    /// The Rust entry, called by `hw`'s trampoline on the boot stack.
    #[no_mangle]
    extern "C" fn tinyvm_main(start_info: u32) -> ! {
        hw::debug_line("tinyvm: up");
        if let Err(why) = hw::install_hypercall_page() {
            hw::debug_line(why);
            hw::halt();
        }
        let console = hw::Console::open();
        let log = |line: &str| {
            hw::debug_line(line);
            if let Some(c) = &console {
                c.put_line(line);
            }
        };
        log(&alloc::format!(
            "tinyvm: hypercalls ready, start info at {start_info:#x} (magic {})",
            if hw::start_info_magic_ok(start_info) {
                "good"
            } else {
                "bad"
            }
        ));
        let Some((page, channel)) = hw::xenstore() else {
            log("tinyvm: no xenstore; idle");
            hw::halt();
        };
        let mut client = Client::new(page, channel);
        let mut log_mut = log;
        match guest::run(&mut client, &mut log_mut) {
            Outcome::Poweroff => {
                log_mut("tinyvm: powering off");
                hw::shutdown(SHUTDOWN_POWEROFF)
            }
            Outcome::Reboot => {
                log_mut("tinyvm: rebooting");
                hw::shutdown(SHUTDOWN_REBOOT)
            }
            Outcome::Broken => hw::halt(),
        }
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("tinyvm is a Xen PVH guest: build it with cargo xtask build");
    std::process::exit(2);
}

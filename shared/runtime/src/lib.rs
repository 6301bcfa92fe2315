//! The unikernel runtime of every xcp-rs domain: 64-bit PV entry, memory,
//! console, logging, clock, timers and a single-threaded event loop.
//!
//! Read first: xen/include/public/xen.h (start_info, shared_info, MMU
//! operations), arch-x86/xen-x86_64.h, io/console.h.
//!
//! A domain kernel links this crate, calls [`entry!`] with its `main`, and
//! gets a [`Boot`] describing its memory, command line and boot module. On the
//! kernel target (`x86_64-unknown-none`) the crate provides `_start`, the Xen
//! ELF notes, the panic handler and the global allocator; on the host only
//! the pure parts (frame allocator, timer queue, command-line parsing) are
//! built, so they can be tested with `cargo test`.
//!
//! `unsafe` lives here and in `xen-sys` only, one operation per block, each
//! with a `// SAFETY:` comment.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

pub mod cmdline;
pub mod console_stall;
pub mod device_args;
pub mod dma_plan;
pub mod frames;
pub mod log_policy;
pub mod msix;
pub mod pci_snapshot;
pub mod slots;
pub mod time;
pub mod timer;
pub mod usage;
pub mod verdict;
pub mod virtio_blk_io;
pub mod virtio_pci;
pub mod virtio_platform;

#[cfg(target_os = "none")]
pub mod assigned;
#[cfg(target_os = "none")]
mod boot;
#[cfg(target_os = "none")]
pub mod console;
#[cfg(target_os = "none")]
pub mod control;
#[cfg(target_os = "none")]
pub mod dma;
#[cfg(target_os = "none")]
pub mod entropy;
#[cfg(target_os = "none")]
pub mod event_loop;
#[cfg(target_os = "none")]
pub mod evtchn;
#[cfg(target_os = "none")]
pub mod foreign_run;
#[cfg(target_os = "none")]
pub mod gnttab;
#[cfg(target_os = "none")]
mod heap;
#[cfg(target_os = "none")]
pub mod io;
#[cfg(target_os = "none")]
pub mod logger;
#[cfg(target_os = "none")]
pub mod mmio;
#[cfg(target_os = "none")]
pub mod paging;
#[cfg(target_os = "none")]
mod panic;
#[cfg(target_os = "none")]
pub mod pci_conf;
#[cfg(target_os = "none")]
pub mod port_io;
#[cfg(target_os = "none")]
pub mod shared_page;
#[cfg(target_os = "none")]
pub mod virtio_hal;
#[cfg(target_os = "none")]
mod xen_info;
#[cfg(target_os = "none")]
pub mod xenstore;

#[cfg(target_os = "none")]
pub use boot::Boot;
#[cfg(target_os = "none")]
pub use panic::{set_panic_exit, shutdown};
#[cfg(target_os = "none")]
pub use xen_info::{xen_version, XenInfo};

pub use log;

/// Declares the domain's entry point, its name (used as the log prefix)
/// and, optionally, the most single frames its boot keeps apart from the
/// heap (`frames = N`; by default a quarter of the free pages,
/// [`frames::split`]).
///
/// ```text
/// xcp_runtime::entry!(main, "toolstack-dom0");
/// xcp_runtime::entry!(main, "netdom", frames = 64);
/// fn main(boot: xcp_runtime::Boot) -> ! { loop {} }
/// ```
#[macro_export]
macro_rules! entry {
    ($main:path, $name:expr) => {
        $crate::entry!($main, $name, frames = u64::MAX);
    };
    ($main:path, $name:expr, frames = $frames:expr) => {
        /// Called by the runtime once memory, console and clock are up.
        #[no_mangle]
        pub fn __xcp_main(boot: $crate::Boot) -> ! {
            $main(boot)
        }

        /// The domain's name for log lines.
        #[no_mangle]
        pub fn __xcp_domain_name() -> &'static str {
            $name
        }

        /// The most single frames boot keeps apart from the heap.
        #[no_mangle]
        pub fn __xcp_frame_pool_cap() -> u64 {
            $frames
        }
    };
}

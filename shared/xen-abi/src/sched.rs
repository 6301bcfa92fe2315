//! Shutdown reasons (`SHUTDOWN_*`, xen/include/public/sched.h): what a
//! domain passes to `SCHEDOP_shutdown` and what `XEN_DOMINF_shutdown`'s code
//! bits report to the toolstack.

/// `SHUTDOWN_poweroff`
pub const SHUTDOWN_POWEROFF: u32 = 0;
/// `SHUTDOWN_reboot`
pub const SHUTDOWN_REBOOT: u32 = 1;
/// `SHUTDOWN_suspend`
pub const SHUTDOWN_SUSPEND: u32 = 2;
/// `SHUTDOWN_crash`
pub const SHUTDOWN_CRASH: u32 = 3;
/// `SHUTDOWN_watchdog`
pub const SHUTDOWN_WATCHDOG: u32 = 4;
/// `SHUTDOWN_soft_reset`
pub const SHUTDOWN_SOFT_RESET: u32 = 5;

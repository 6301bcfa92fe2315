//! The PVH boot ABI (arch-x86/hvm/start_info.h): defined in `xen-abi`,
//! re-exported here under its old path.

pub use xen_abi::hvm_start_info::*;

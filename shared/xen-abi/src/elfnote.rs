//! ELF note types of Xen guest images (xen/include/public/elfnote.h).
//!
//! Read first: xen/include/public/elfnote.h. Notes have owner name "Xen";
//! the runtime emits them and the domain builder's ELF parser reads them.

/// `XEN_ELFNOTE_INFO`: obsolete.
pub const XEN_ELFNOTE_INFO: u32 = 0;
/// `XEN_ELFNOTE_ENTRY`: virtual address of the PV entry point.
pub const XEN_ELFNOTE_ENTRY: u32 = 1;
/// `XEN_ELFNOTE_HYPERCALL_PAGE`: virtual address of the hypercall page.
pub const XEN_ELFNOTE_HYPERCALL_PAGE: u32 = 2;
/// `XEN_ELFNOTE_VIRT_BASE`: virtual address the image is mapped at.
pub const XEN_ELFNOTE_VIRT_BASE: u32 = 3;
/// `XEN_ELFNOTE_PADDR_OFFSET`: virtual minus "physical" address.
pub const XEN_ELFNOTE_PADDR_OFFSET: u32 = 4;
/// `XEN_ELFNOTE_XEN_VERSION`: "xen-3.0".
pub const XEN_ELFNOTE_XEN_VERSION: u32 = 5;
/// `XEN_ELFNOTE_GUEST_OS`: the guest OS name.
pub const XEN_ELFNOTE_GUEST_OS: u32 = 6;
/// `XEN_ELFNOTE_GUEST_VERSION`: the guest OS version.
pub const XEN_ELFNOTE_GUEST_VERSION: u32 = 7;
/// `XEN_ELFNOTE_LOADER`: "generic".
pub const XEN_ELFNOTE_LOADER: u32 = 8;
/// `XEN_ELFNOTE_PAE_MODE`: 32-bit guests only.
pub const XEN_ELFNOTE_PAE_MODE: u32 = 9;
/// `XEN_ELFNOTE_FEATURES`: "|"-separated feature string.
pub const XEN_ELFNOTE_FEATURES: u32 = 10;
/// `XEN_ELFNOTE_BSD_SYMTAB`: load the symbol table.
pub const XEN_ELFNOTE_BSD_SYMTAB: u32 = 11;
/// `XEN_ELFNOTE_HV_START_LOW`: 32-bit guests only.
pub const XEN_ELFNOTE_HV_START_LOW: u32 = 12;
/// `XEN_ELFNOTE_L1_MFN_VALID`: mask and value of valid L1 entries.
pub const XEN_ELFNOTE_L1_MFN_VALID: u32 = 13;
/// `XEN_ELFNOTE_SUSPEND_CANCEL`: the guest supports suspend cancel.
pub const XEN_ELFNOTE_SUSPEND_CANCEL: u32 = 14;
/// `XEN_ELFNOTE_INIT_P2M`: virtual address for the initial P2M list.
pub const XEN_ELFNOTE_INIT_P2M: u32 = 15;
/// `XEN_ELFNOTE_MOD_START_PFN`: the guest accepts `SIF_MOD_START_PFN`.
pub const XEN_ELFNOTE_MOD_START_PFN: u32 = 16;
/// `XEN_ELFNOTE_SUPPORTED_FEATURES`: bitmap of `XENFEAT_*` (must include
/// `XENFEAT_dom0` to start as dom0).
pub const XEN_ELFNOTE_SUPPORTED_FEATURES: u32 = 17;
/// `XEN_ELFNOTE_PHYS32_ENTRY`: physical 32-bit PVH entry point.
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
/// `XEN_ELFNOTE_MAX`
pub const XEN_ELFNOTE_MAX: u32 = 18;
/// `XEN_ELFNOTE_CRASH_INFO`: crash dumps only.
pub const XEN_ELFNOTE_CRASH_INFO: u32 = 0x100_0001;
/// `XEN_ELFNOTE_CRASH_REGS`: crash dumps only.
pub const XEN_ELFNOTE_CRASH_REGS: u32 = 0x100_0002;
/// `XEN_ELFNOTE_DUMPCORE_NONE`
pub const XEN_ELFNOTE_DUMPCORE_NONE: u32 = 0x200_0000;
/// `XEN_ELFNOTE_DUMPCORE_HEADER`
pub const XEN_ELFNOTE_DUMPCORE_HEADER: u32 = 0x200_0001;
/// `XEN_ELFNOTE_DUMPCORE_XEN_VERSION`
pub const XEN_ELFNOTE_DUMPCORE_XEN_VERSION: u32 = 0x200_0002;
/// `XEN_ELFNOTE_DUMPCORE_FORMAT_VERSION`
pub const XEN_ELFNOTE_DUMPCORE_FORMAT_VERSION: u32 = 0x200_0003;

/// The owner name of Xen's notes, NUL-terminated as it appears in the note.
pub const XEN_ELFNOTE_OWNER: &[u8; 4] = b"Xen\0";

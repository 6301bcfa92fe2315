//! `physdev_op` (xen/include/public/physdev.h): I/O privilege, physical IRQs
//! and PCI devices, as a PV dom0 or driver domain uses them.
//!
//! Read first: xen/include/public/physdev.h. A PV kernel runs in ring 3, so it
//! needs `PHYSDEVOP_set_iopl` before it may execute `in`/`out`.

#[cfg(target_arch = "x86_64")]
use crate::hypercall;
use crate::xen::{DomId, XenPfn};

/// `PHYSDEVOP_IRQ_UNMASK_NOTIFY` (obsolete)
pub const PHYSDEVOP_IRQ_UNMASK_NOTIFY: u32 = 4;
/// `PHYSDEVOP_irq_status_query`
pub const PHYSDEVOP_IRQ_STATUS_QUERY: u32 = 5;
/// `PHYSDEVOP_set_iopl`
pub const PHYSDEVOP_SET_IOPL: u32 = 6;
/// `PHYSDEVOP_set_iobitmap`
pub const PHYSDEVOP_SET_IOBITMAP: u32 = 7;
/// `PHYSDEVOP_apic_read`
pub const PHYSDEVOP_APIC_READ: u32 = 8;
/// `PHYSDEVOP_apic_write`
pub const PHYSDEVOP_APIC_WRITE: u32 = 9;
/// `PHYSDEVOP_alloc_irq_vector`
pub const PHYSDEVOP_ALLOC_IRQ_VECTOR: u32 = 10;
/// `PHYSDEVOP_free_irq_vector`
pub const PHYSDEVOP_FREE_IRQ_VECTOR: u32 = 11;
/// `PHYSDEVOP_eoi`
pub const PHYSDEVOP_EOI: u32 = 12;
/// `PHYSDEVOP_map_pirq`
pub const PHYSDEVOP_MAP_PIRQ: u32 = 13;
/// `PHYSDEVOP_unmap_pirq`
pub const PHYSDEVOP_UNMAP_PIRQ: u32 = 14;
/// `PHYSDEVOP_manage_pci_add`
pub const PHYSDEVOP_MANAGE_PCI_ADD: u32 = 15;
/// `PHYSDEVOP_manage_pci_remove`
pub const PHYSDEVOP_MANAGE_PCI_REMOVE: u32 = 16;
/// `PHYSDEVOP_pirq_eoi_gmfn_v1`
pub const PHYSDEVOP_PIRQ_EOI_GMFN_V1: u32 = 17;
/// `PHYSDEVOP_restore_msi`
pub const PHYSDEVOP_RESTORE_MSI: u32 = 19;
/// `PHYSDEVOP_manage_pci_add_ext`
pub const PHYSDEVOP_MANAGE_PCI_ADD_EXT: u32 = 20;
/// `PHYSDEVOP_setup_gsi`
pub const PHYSDEVOP_SETUP_GSI: u32 = 21;
/// `PHYSDEVOP_get_free_pirq`
pub const PHYSDEVOP_GET_FREE_PIRQ: u32 = 23;
/// `PHYSDEVOP_pci_mmcfg_reserved`
pub const PHYSDEVOP_PCI_MMCFG_RESERVED: u32 = 24;
/// `PHYSDEVOP_pci_device_add`
pub const PHYSDEVOP_PCI_DEVICE_ADD: u32 = 25;
/// `PHYSDEVOP_pci_device_remove`
pub const PHYSDEVOP_PCI_DEVICE_REMOVE: u32 = 26;
/// `PHYSDEVOP_restore_msi_ext`
pub const PHYSDEVOP_RESTORE_MSI_EXT: u32 = 27;
/// `PHYSDEVOP_pirq_eoi_gmfn_v2`
pub const PHYSDEVOP_PIRQ_EOI_GMFN_V2: u32 = 28;
/// `PHYSDEVOP_dbgp_op`
pub const PHYSDEVOP_DBGP_OP: u32 = 29;
/// `PHYSDEVOP_prepare_msix`
pub const PHYSDEVOP_PREPARE_MSIX: u32 = 30;
/// `PHYSDEVOP_release_msix`
pub const PHYSDEVOP_RELEASE_MSIX: u32 = 31;

/// `XENIRQSTAT_needs_eoi`
pub const XENIRQSTAT_NEEDS_EOI: u32 = 1 << 0;
/// `XENIRQSTAT_shared`
pub const XENIRQSTAT_SHARED: u32 = 1 << 1;

/// `MAP_PIRQ_TYPE_MSI`
pub const MAP_PIRQ_TYPE_MSI: i32 = 0;
/// `MAP_PIRQ_TYPE_GSI`
pub const MAP_PIRQ_TYPE_GSI: i32 = 1;
/// `MAP_PIRQ_TYPE_UNKNOWN`
pub const MAP_PIRQ_TYPE_UNKNOWN: i32 = 2;
/// `MAP_PIRQ_TYPE_MSI_SEG`
pub const MAP_PIRQ_TYPE_MSI_SEG: i32 = 3;
/// `MAP_PIRQ_TYPE_MULTI_MSI`
pub const MAP_PIRQ_TYPE_MULTI_MSI: i32 = 4;

/// `XEN_PCI_DEV_EXTFN`
pub const XEN_PCI_DEV_EXTFN: u32 = 0x1;
/// `XEN_PCI_DEV_VIRTFN`
pub const XEN_PCI_DEV_VIRTFN: u32 = 0x2;
/// `XEN_PCI_DEV_PXM`
pub const XEN_PCI_DEV_PXM: u32 = 0x4;
/// `XEN_PCI_MMCFG_RESERVED`
pub const XEN_PCI_MMCFG_RESERVED: u32 = 0x1;

/// `struct physdev_eoi`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysdevEoi {
    /// IN: the pirq.
    pub irq: u32,
}

/// `struct physdev_pirq_eoi_gmfn`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysdevPirqEoiGmfn {
    /// IN: frame of the pirq EOI bitmap.
    pub gmfn: XenPfn,
}

/// `struct physdev_irq_status_query`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysdevIrqStatusQuery {
    /// IN: the pirq.
    pub irq: u32,
    /// OUT: `XENIRQSTAT_*`.
    pub flags: u32,
}

/// `struct physdev_set_iopl`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysdevSetIopl {
    /// IN: the I/O privilege level (0-3).
    pub iopl: u32,
}

/// `struct physdev_set_iobitmap`
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PhysdevSetIobitmap {
    /// Guest handle: the TSS-style I/O bitmap.
    pub bitmap: *const u8,
    /// Ports covered.
    pub nr_ports: u32,
}

/// `struct physdev_map_pirq`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysdevMapPirq {
    /// The domain the pirq is mapped for.
    pub domid: DomId,
    /// IN: `MAP_PIRQ_TYPE_*`.
    pub r#type: i32,
    /// IN: GSI, or MSI-X entry index.
    pub index: i32,
    /// IN (-1: any) or OUT: the pirq.
    pub pirq: i32,
    /// IN: PCI bus (high 16 bits: segment for `_MSI_SEG`).
    pub bus: i32,
    /// IN: PCI devfn.
    pub devfn: i32,
    /// IN: MSI-X entry number (OUT for `_MULTI_MSI`).
    pub entry_nr: i32,
    /// IN: MSI-X table base address.
    pub table_base: u64,
}

/// `struct physdev_unmap_pirq`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysdevUnmapPirq {
    /// The domain the pirq was mapped for.
    pub domid: DomId,
    /// IN: the pirq.
    pub pirq: i32,
}

/// `struct physdev_manage_pci` (segment 0 only; prefer `pci_device_add`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysdevManagePci {
    /// IN: bus.
    pub bus: u8,
    /// IN: device and function.
    pub devfn: u8,
}

/// `physfn` of `struct physdev_pci_device_add`: an SR-IOV VF's parent.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysdevPhysfn {
    /// Bus of the physical function.
    pub bus: u8,
    /// devfn of the physical function.
    pub devfn: u8,
}

/// `struct physdev_pci_device_add` (without the optional `optarr` tail).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysdevPciDeviceAdd {
    /// IN: PCI segment.
    pub seg: u16,
    /// IN: bus.
    pub bus: u8,
    /// IN: devfn.
    pub devfn: u8,
    /// IN: `XEN_PCI_DEV_*`.
    pub flags: u32,
    /// IN: the parent with `XEN_PCI_DEV_VIRTFN`.
    pub physfn: PhysdevPhysfn,
    /// `optarr[]`: flexible array (proximity domain with `XEN_PCI_DEV_PXM`).
    pub optarr: [u32; 0],
}

/// `struct physdev_pci_device`: remove, restore_msi_ext, prepare/release_msix.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysdevPciDevice {
    /// IN: PCI segment.
    pub seg: u16,
    /// IN: bus.
    pub bus: u8,
    /// IN: devfn.
    pub devfn: u8,
}

/// `struct physdev_setup_gsi`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysdevSetupGsi {
    /// IN: the GSI.
    pub gsi: i32,
    /// IN: 0 edge, 1 level.
    pub triggering: u8,
    /// IN: 0 active high, 1 active low.
    pub polarity: u8,
}

/// `struct physdev_get_free_pirq`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysdevGetFreePirq {
    /// IN: `MAP_PIRQ_TYPE_*`.
    pub r#type: i32,
    /// OUT: the pirq.
    pub pirq: u32,
}

/// Calls `physdev_op(cmd, arg)`.
///
/// # Safety
/// `arg` must point to the structure `cmd` expects, valid across the call,
/// and the operation must not take away a device or IRQ the program uses.
#[cfg(target_arch = "x86_64")]
pub unsafe fn physdev_op<T>(cmd: u32, arg: *mut T) -> Result<u64, crate::Errno> {
    // SAFETY: forwarded contract.
    crate::Errno::check(unsafe {
        hypercall::hypercall2(hypercall::PHYSDEV_OP, cmd as u64, arg as u64)
    })
}

/// Sets this vCPU's I/O privilege level (1 lets a PV kernel use `in`/`out`).
///
/// # Safety
/// The program must be ready for its port I/O to reach real (or emulated)
/// hardware.
#[cfg(target_arch = "x86_64")]
pub unsafe fn set_iopl(level: u32) -> Result<(), crate::Errno> {
    let mut arg = PhysdevSetIopl { iopl: level };
    // SAFETY: `arg` is the PHYSDEVOP_set_iopl structure and lives across the call.
    unsafe { physdev_op(PHYSDEVOP_SET_IOPL, &mut arg) }?;
    Ok(())
}

/// Signals end-of-interrupt for `pirq`.
///
/// # Safety
/// Must run in a Xen guest whose hypercall page is set up.
#[cfg(target_arch = "x86_64")]
pub unsafe fn eoi(pirq: u32) -> Result<(), crate::Errno> {
    let mut arg = PhysdevEoi { irq: pirq };
    // SAFETY: `arg` is the PHYSDEVOP_eoi structure and lives across the call.
    unsafe { physdev_op(PHYSDEVOP_EOI, &mut arg) }?;
    Ok(())
}

/// Returns `XENIRQSTAT_*` flags of `pirq`.
///
/// # Safety
/// Must run in a Xen guest whose hypercall page is set up.
#[cfg(target_arch = "x86_64")]
pub unsafe fn irq_status_query(pirq: u32) -> Result<u32, crate::Errno> {
    let mut arg = PhysdevIrqStatusQuery {
        irq: pirq,
        flags: 0,
    };
    // SAFETY: `arg` is the PHYSDEVOP_irq_status_query structure and lives across the call.
    unsafe { physdev_op(PHYSDEVOP_IRQ_STATUS_QUERY, &mut arg) }?;
    Ok(arg.flags)
}

/// Maps a GSI or MSI(-X) to a pirq of `map.domid`; returns the pirq (and
/// `entry_nr` is updated in `map` for `_MULTI_MSI`).
///
/// # Safety
/// The caller must control the device and `map.domid`.
#[cfg(target_arch = "x86_64")]
pub unsafe fn map_pirq(map: &mut PhysdevMapPirq) -> Result<i32, crate::Errno> {
    // SAFETY: `map` is the PHYSDEVOP_map_pirq structure and lives across the call.
    unsafe { physdev_op(PHYSDEVOP_MAP_PIRQ, map) }?;
    Ok(map.pirq)
}

/// Unmaps `pirq` of `domid`.
///
/// # Safety
/// No event channel of `domid` may still be bound to the pirq.
#[cfg(target_arch = "x86_64")]
pub unsafe fn unmap_pirq(domid: DomId, pirq: i32) -> Result<(), crate::Errno> {
    let mut arg = PhysdevUnmapPirq { domid, pirq };
    // SAFETY: `arg` is the PHYSDEVOP_unmap_pirq structure and lives across the call.
    unsafe { physdev_op(PHYSDEVOP_UNMAP_PIRQ, &mut arg) }?;
    Ok(())
}

/// Reports PCI device `bus:devfn` (segment 0) to Xen.
///
/// # Safety
/// Only the hardware domain reports devices, and only ones that exist.
#[cfg(target_arch = "x86_64")]
pub unsafe fn manage_pci_add(bus: u8, devfn: u8) -> Result<(), crate::Errno> {
    let mut arg = PhysdevManagePci { bus, devfn };
    // SAFETY: `arg` is the PHYSDEVOP_manage_pci_add structure and lives across the call.
    unsafe { physdev_op(PHYSDEVOP_MANAGE_PCI_ADD, &mut arg) }?;
    Ok(())
}

/// Withdraws PCI device `bus:devfn` (segment 0).
///
/// # Safety
/// No domain may still use the device.
#[cfg(target_arch = "x86_64")]
pub unsafe fn manage_pci_remove(bus: u8, devfn: u8) -> Result<(), crate::Errno> {
    let mut arg = PhysdevManagePci { bus, devfn };
    // SAFETY: `arg` is the PHYSDEVOP_manage_pci_remove structure and lives across the call.
    unsafe { physdev_op(PHYSDEVOP_MANAGE_PCI_REMOVE, &mut arg) }?;
    Ok(())
}

/// Reports a PCI device (any segment, VFs and extended functions) to Xen.
///
/// # Safety
/// Only the hardware domain reports devices, and only ones that exist.
/// `dev.flags` must not contain `XEN_PCI_DEV_PXM`: Xen would read `optarr[0]`
/// past the end of this struct.
#[cfg(target_arch = "x86_64")]
pub unsafe fn pci_device_add(dev: &mut PhysdevPciDeviceAdd) -> Result<(), crate::Errno> {
    // SAFETY: `dev` lives across the call; without XEN_PCI_DEV_PXM (the
    // caller's promise) Xen reads nothing past it.
    unsafe { physdev_op(PHYSDEVOP_PCI_DEVICE_ADD, dev) }?;
    Ok(())
}

/// Withdraws a PCI device.
///
/// # Safety
/// No domain may still use the device.
#[cfg(target_arch = "x86_64")]
pub unsafe fn pci_device_remove(seg: u16, bus: u8, devfn: u8) -> Result<(), crate::Errno> {
    let mut arg = PhysdevPciDevice { seg, bus, devfn };
    // SAFETY: `arg` is the PHYSDEVOP_pci_device_remove structure and lives across the call.
    unsafe { physdev_op(PHYSDEVOP_PCI_DEVICE_REMOVE, &mut arg) }?;
    Ok(())
}

/// Tells Xen where the MSI-X table and PBA of `bus:devfn` (segment 0) are
/// before the device leaves the hardware domain
/// (`PHYSDEVOP_prepare_msix`): Xen reads them from the device, marks their
/// pages read-only for every domain (`mmio_ro_ranges`) and counts one user
/// of the capability, so MSI-X entries can later be mapped for a domU
/// that owns the device (Xen 4.17 `msix_capability_init` locates the table
/// only for the hardware domain's or dom_io's devices, and crashes a domU
/// that is the first user of a device's table).
///
/// # Safety
/// Only the hardware domain prepares devices; memory decoding must be on.
#[cfg(target_arch = "x86_64")]
pub unsafe fn prepare_msix(bus: u8, devfn: u8) -> Result<(), crate::Errno> {
    let mut arg = PhysdevPciDevice { seg: 0, bus, devfn };
    // SAFETY: `arg` is the PHYSDEVOP_prepare_msix structure and lives across the call.
    unsafe { physdev_op(PHYSDEVOP_PREPARE_MSIX, &mut arg) }?;
    Ok(())
}

/// Undoes [`prepare_msix`] (`PHYSDEVOP_release_msix`); Xen refuses (EBUSY)
/// while any MSI-X entry of the device is still mapped.
///
/// # Safety
/// Only the hardware domain releases devices.
#[cfg(target_arch = "x86_64")]
pub unsafe fn release_msix(bus: u8, devfn: u8) -> Result<(), crate::Errno> {
    let mut arg = PhysdevPciDevice { seg: 0, bus, devfn };
    // SAFETY: `arg` is the PHYSDEVOP_release_msix structure and lives across the call.
    unsafe { physdev_op(PHYSDEVOP_RELEASE_MSIX, &mut arg) }?;
    Ok(())
}

/// Sets up `gsi`'s trigger mode and polarity (from ACPI).
///
/// # Safety
/// The values must match the platform's wiring.
#[cfg(target_arch = "x86_64")]
pub unsafe fn setup_gsi(gsi: i32, triggering: u8, polarity: u8) -> Result<(), crate::Errno> {
    let mut arg = PhysdevSetupGsi {
        gsi,
        triggering,
        polarity,
    };
    // SAFETY: `arg` is the PHYSDEVOP_setup_gsi structure and lives across the call.
    unsafe { physdev_op(PHYSDEVOP_SETUP_GSI, &mut arg) }?;
    Ok(())
}

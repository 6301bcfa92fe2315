//! PCI configuration mechanism #1 (ports 0xCF8/0xCFC) for dom0, which owns
//! the host's I/O ports. Service domains never get this window: dom0
//! mediates config space for the one device it hands them.

use xcp_pci::{Bdf, ConfigAccess};

const ADDRESS: u16 = 0xcf8;
const DATA: u16 = 0xcfc;

/// dom0's direct config-space access.
pub struct PortConfig {
    _private: (),
}

impl PortConfig {
    /// Claims port I/O (PHYSDEVOP_set_iopl); fails outside dom0.
    pub fn new() -> Result<PortConfig, xen_sys::Errno> {
        crate::io::enable_port_io()?;
        Ok(PortConfig { _private: () })
    }

    fn select(&mut self, bdf: Bdf, offset: u8) {
        let address = 0x8000_0000u32
            | (u32::from(bdf.bus) << 16)
            | (u32::from(bdf.dev & 31) << 11)
            | (u32::from(bdf.func & 7) << 8)
            | u32::from(offset & 0xfc);
        // SAFETY: port I/O was granted in `new`; 0xCF8 selects a config
        // register and touches no memory.
        unsafe {
            core::arch::asm!("out dx, eax", in("dx") ADDRESS, in("eax") address, options(nomem, nostack));
        }
    }
}

impl PortConfig {
    /// Writes the 16-bit register at `offset` (2-aligned) alone. Xen lets
    /// the hardware domain write a device's MSI-X control word only as a
    /// 16-bit access (`pci_msi_conf_write_intercept`); a dword write over
    /// the capability is dropped.
    pub fn write16(&mut self, bdf: Bdf, offset: u8, value: u16) {
        self.select(bdf, offset);
        let port = DATA + u16::from(offset & 2);
        // SAFETY: as in `select`; writes the selected config word.
        unsafe {
            core::arch::asm!("out dx, ax", in("dx") port, in("ax") value, options(nomem, nostack));
        }
    }
}

impl ConfigAccess for PortConfig {
    fn read32(&mut self, bdf: Bdf, offset: u8) -> u32 {
        self.select(bdf, offset);
        let value: u32;
        // SAFETY: as in `select`; reads the selected config dword.
        unsafe {
            core::arch::asm!("in eax, dx", in("dx") DATA, out("eax") value, options(nomem, nostack));
        }
        value
    }

    fn write32(&mut self, bdf: Bdf, offset: u8, value: u32) {
        self.select(bdf, offset);
        // SAFETY: as in `select`; writes the selected config dword.
        unsafe {
            core::arch::asm!("out dx, eax", in("dx") DATA, in("eax") value, options(nomem, nostack));
        }
    }
}

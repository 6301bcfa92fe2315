//! Byte-wide port I/O for a domain Xen lets use ports (dom0; a driver domain
//! with `ioport_permission`): `in`/`out` work once PHYSDEVOP_set_iopl gave
//! the kernel IOPL 1, and Xen checks each port against the domain's rights.

/// Port I/O rights, claimed once.
pub struct Ports {
    _private: (),
}

impl Ports {
    /// Claims port I/O (PHYSDEVOP_set_iopl); fails without I/O rights.
    pub fn new() -> Result<Ports, xen_sys::Errno> {
        crate::io::enable_port_io()?;
        Ok(Ports { _private: () })
    }

    /// Writes `value` to `port`.
    pub fn write8(&mut self, port: u16, value: u8) {
        // SAFETY: IOPL was granted in `new`; an `out` touches no memory of
        // ours, and Xen refuses ports the domain has no right to.
        unsafe {
            core::arch::asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack));
        }
    }

    /// Reads a byte from `port`.
    pub fn read8(&mut self, port: u16) -> u8 {
        let value: u8;
        // SAFETY: as in `write8`; reads one byte from the port.
        unsafe {
            core::arch::asm!("in al, dx", in("dx") port, out("al") value, options(nomem, nostack));
        }
        value
    }
}

//! The ACPI tables a PVH guest needs to find more than one vCPU: RSDP (v2),
//! XSDT, a hardware-reduced FADT, an empty DSDT and a MADT with one enabled
//! Local APIC entry per vCPU, all in one page.
//!
//! Read first: the ACPI 6.0 spec, 5.2.5.3 (RSDP), 5.2.8 (XSDT), 5.2.9 (FADT,
//! table 5-34; "HW_REDUCED_ACPI" flag bit 20, IA-PC boot flags table 5-35),
//! 5.2.11.1 (DSDT), 5.2.12 (MADT) and 5.2.12.2 (Processor Local APIC).
//! Written from the spec; libxl's `tools/libacpi/build.c` was read to learn
//! which tables Xen's own PVH guests get (it builds RSDP/RSDT/XSDT, a FADT,
//! FACS, a DSDT with processor objects and a MADT, with LAPIC id = 2 * vCPU,
//! the id Xen's vLAPIC reports).
//!
//! Differences from libxl, on purpose: the FADT sets `HW_REDUCED_ACPI` and
//! has no PM blocks (a PVH guest has no emulated PM timer, PM1 or GPE
//! registers: `XEN_X86_EMU_PM` is off), so no FACS either (ACPI 6.0,
//! 5.2.10: "the FACS is optional on HW-reduced platforms"); there is no RSDT
//! (ACPI 2.0+ OSes use the XSDT); the MADT has no PCAT_COMPAT flag (no 8259
//! is emulated) and no I/O APIC (none is emulated); the DSDT is empty (Linux
//! takes the CPUs from the MADT).

use alloc::vec::Vec;

/// Local APIC base address (`APIC_DEFAULT_PHYS_BASE`).
pub const LAPIC_BASE: u32 = 0xfee0_0000;
/// OEMID of every table (6 bytes).
pub const OEM_ID: &[u8; 6] = b"XCP-RS";
/// OEM Table ID of every table (8 bytes).
pub const OEM_TABLE_ID: &[u8; 8] = b"XCPRSPVH";
/// Creator ID (4 bytes).
pub const CREATOR_ID: &[u8; 4] = b"XCPR";

/// `sizeof` the ACPI 2.0+ RSDP.
pub const RSDP_LEN: usize = 36;
/// `sizeof` a system description table header.
pub const HEADER_LEN: usize = 36;
/// `sizeof` an ACPI 6.0 FADT (revision 6).
pub const FADT_LEN: usize = 276;
/// `sizeof` the MADT before its entries (header, LAPIC address, flags).
pub const MADT_FIXED_LEN: usize = 44;
/// `sizeof` a Processor Local APIC entry.
pub const MADT_LAPIC_LEN: usize = 8;
/// FADT `Flags`: `HW_REDUCED_ACPI` (bit 20).
pub const FADT_HW_REDUCED_ACPI: u32 = 1 << 20;
/// FADT `IAPC_BOOT_ARCH`: "VGA Not Present" (bit 2).
pub const IAPC_VGA_NOT_PRESENT: u16 = 1 << 2;
/// FADT `IAPC_BOOT_ARCH`: "CMOS RTC Not Present" (bit 5).
pub const IAPC_CMOS_RTC_NOT_PRESENT: u16 = 1 << 5;
/// MADT entry type 0: Processor Local APIC.
pub const MADT_TYPE_LOCAL_APIC: u8 = 0;
/// Processor Local APIC flags: Enabled.
pub const LAPIC_ENABLED: u32 = 1;

/// Offsets of the tables inside the ACPI page (16-byte aligned, as libacpi
/// and the spec's 8-byte alignment of XSDT entries want).
pub const OFF_RSDP: usize = 0;
/// Offset of the XSDT (two entries: FADT, MADT).
pub const OFF_XSDT: usize = 64;
/// Offset of the FADT.
pub const OFF_FADT: usize = 128;
/// Offset of the DSDT.
pub const OFF_DSDT: usize = OFF_FADT + FADT_LEN.next_multiple_of(16);
/// Offset of the MADT.
pub const OFF_MADT: usize = OFF_DSDT + HEADER_LEN.next_multiple_of(16);
/// Length of the XSDT.
pub const XSDT_LEN: usize = HEADER_LEN + 2 * 8;

const _: () = assert!(OFF_RSDP + RSDP_LEN <= OFF_XSDT && OFF_XSDT + XSDT_LEN <= OFF_FADT);

/// The APIC ID Xen's vLAPIC gives vCPU `n` (`vlapic_reset`: `vcpu_id * 2`).
pub fn apic_id(vcpu: u32) -> u32 {
    vcpu * 2
}

/// Length of the MADT for `vcpus` vCPUs.
pub fn madt_len(vcpus: u32) -> usize {
    MADT_FIXED_LEN + MADT_LAPIC_LEN * vcpus as usize
}

/// Bytes the tables take for `vcpus` vCPUs.
pub fn tables_len(vcpus: u32) -> usize {
    OFF_MADT + madt_len(vcpus)
}

/// The byte that makes `bytes` sum to zero (mod 256) when stored in it.
pub fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |a, &b| a.wrapping_add(b)))
}

fn put(buf: &mut [u8], off: usize, bytes: &[u8]) {
    buf[off..off + bytes.len()].copy_from_slice(bytes);
}

/// Writes a system description table header (checksum left 0).
fn header(buf: &mut [u8], off: usize, signature: &[u8; 4], len: usize, revision: u8) {
    put(buf, off, signature);
    put(buf, off + 4, &(len as u32).to_le_bytes());
    buf[off + 8] = revision;
    put(buf, off + 10, OEM_ID);
    put(buf, off + 16, OEM_TABLE_ID);
    put(buf, off + 24, &1u32.to_le_bytes()); // OEM Revision
    put(buf, off + 28, CREATOR_ID);
    put(buf, off + 32, &1u32.to_le_bytes()); // Creator Revision
}

/// Sets the checksum byte (offset 9) of the table at `off`.
fn seal(buf: &mut [u8], off: usize, len: usize) {
    buf[off + 9] = 0;
    buf[off + 9] = checksum(&buf[off..off + len]);
}

/// Builds the tables for `vcpus` vCPUs as they must appear at guest-physical
/// address `base` (every pointer between them is absolute). The result is
/// [`tables_len`] bytes; the RSDP is at `base + OFF_RSDP`. `vcpus` must be
/// checked by the caller (1..=`MAX_PVH_VCPUS`).
pub fn build(base: u64, vcpus: u32) -> Vec<u8> {
    let mut t = alloc::vec![0u8; tables_len(vcpus)];
    let at = |off: usize| base + off as u64;

    // RSDP (5.2.5.3): signature, checksum over the first 20 bytes, OEMID,
    // revision 2, RsdtAddress 0 (no RSDT), length, XsdtAddress, extended
    // checksum over all 36 bytes.
    put(&mut t, OFF_RSDP, b"RSD PTR ");
    put(&mut t, OFF_RSDP + 9, OEM_ID);
    t[OFF_RSDP + 15] = 2;
    put(&mut t, OFF_RSDP + 20, &(RSDP_LEN as u32).to_le_bytes());
    put(&mut t, OFF_RSDP + 24, &at(OFF_XSDT).to_le_bytes());
    t[OFF_RSDP + 8] = checksum(&t[OFF_RSDP..OFF_RSDP + 20]);
    t[OFF_RSDP + 32] = checksum(&t[OFF_RSDP..OFF_RSDP + RSDP_LEN]);

    // XSDT (5.2.8): the FADT first, then the MADT.
    header(&mut t, OFF_XSDT, b"XSDT", XSDT_LEN, 1);
    put(&mut t, OFF_XSDT + 36, &at(OFF_FADT).to_le_bytes());
    put(&mut t, OFF_XSDT + 44, &at(OFF_MADT).to_le_bytes());
    seal(&mut t, OFF_XSDT, XSDT_LEN);

    // FADT (5.2.9), ACPI 6.0: revision 6, minor version 0. Everything not
    // set here is 0: no FACS, no SCI, no PM/GPE blocks, no reset register,
    // no sleep registers. The 32-bit DSDT field and X_DSDT both point at
    // the DSDT ("if X_DSDT is non-zero, DSDT must be zero" is not a rule;
    // ACPICA prefers X_DSDT and warns only if they differ).
    let f = OFF_FADT;
    header(&mut t, f, b"FACP", FADT_LEN, 6);
    let dsdt = at(OFF_DSDT);
    put(&mut t, f + 40, &(dsdt as u32).to_le_bytes()); // DSDT
    put(
        &mut t,
        f + 109,
        &(IAPC_VGA_NOT_PRESENT | IAPC_CMOS_RTC_NOT_PRESENT).to_le_bytes(),
    ); // IAPC_BOOT_ARCH
    put(&mut t, f + 112, &FADT_HW_REDUCED_ACPI.to_le_bytes()); // Flags
    t[f + 131] = 0; // FADT Minor Version
    put(&mut t, f + 140, &dsdt.to_le_bytes()); // X_DSDT
    seal(&mut t, f, FADT_LEN);

    // DSDT (5.2.11.1): a definition block with no AML. Revision 2: 64-bit
    // integers, should AML ever be added.
    header(&mut t, OFF_DSDT, b"DSDT", HEADER_LEN, 2);
    seal(&mut t, OFF_DSDT, HEADER_LEN);

    // MADT (5.2.12), revision 4 (ACPI 6.0): LAPIC address, flags 0 (no
    // dual-8259 PCAT_COMPAT: no PIC is emulated), one Processor Local APIC
    // entry per vCPU: ACPI Processor UID = vCPU number, APIC ID = 2 * vCPU,
    // Enabled.
    let m = OFF_MADT;
    let len = madt_len(vcpus);
    header(&mut t, m, b"APIC", len, 4);
    put(&mut t, m + 36, &LAPIC_BASE.to_le_bytes());
    for vcpu in 0..vcpus {
        let e = m + MADT_FIXED_LEN + MADT_LAPIC_LEN * vcpu as usize;
        t[e] = MADT_TYPE_LOCAL_APIC;
        t[e + 1] = MADT_LAPIC_LEN as u8;
        t[e + 2] = vcpu as u8;
        t[e + 3] = apic_id(vcpu) as u8;
        put(&mut t, e + 4, &LAPIC_ENABLED.to_le_bytes());
    }
    seal(&mut t, m, len);
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
    }

    #[test]
    fn one_vcpu_fixture() {
        let t = build(0xfc00_0000, 1);
        assert_eq!(t.len(), OFF_MADT + 52);
        assert_eq!(&t[..8], b"RSD PTR ");
        assert_eq!(&t[OFF_MADT..OFF_MADT + 4], b"APIC");
        assert_eq!(u32_at(&t, OFF_MADT + 4), 52);
        // The one LAPIC entry: type 0, length 8, uid 0, id 0, enabled.
        assert_eq!(&t[OFF_MADT + 44..OFF_MADT + 52], &[0, 8, 0, 0, 1, 0, 0, 0]);
        assert_eq!(u32_at(&t, OFF_FADT + 40), 0xfc00_0000 + OFF_DSDT as u32);
    }

    #[test]
    fn checksums_sum_to_zero() {
        for vcpus in [1, 2, 15, 64, 128] {
            let t = build(0xfc00_0000, vcpus);
            let sum = |r: core::ops::Range<usize>| t[r].iter().fold(0u8, |a, &b| a.wrapping_add(b));
            assert_eq!(sum(0..20), 0);
            assert_eq!(sum(0..RSDP_LEN), 0);
            for off in [OFF_XSDT, OFF_FADT, OFF_DSDT, OFF_MADT] {
                let len = u32_at(&t, off + 4) as usize;
                assert_eq!(sum(off..off + len), 0, "table at {off} for {vcpus} vCPUs");
            }
        }
    }

    #[test]
    fn the_largest_set_fits_a_page() {
        assert!(tables_len(128) <= 4096);
    }
}

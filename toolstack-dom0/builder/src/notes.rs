//! The Xen ELF notes of a PV kernel, decoded and checked.
//!
//! Read first: xen/include/public/elfnote.h (note types and their encodings)
//! and xen/common/libelf/libelf-dominfo.c (how Xen reads them: numeric notes
//! are 1, 2, 4 or 8 bytes little endian, strings are NUL terminated, the
//! last note of a type wins, `FEATURES` is `|`-separated names with `!`
//! marking a required feature).

use alloc::vec::Vec;

use crate::Error;

pub use xen_abi::elfnote::{
    XEN_ELFNOTE_BSD_SYMTAB, XEN_ELFNOTE_ENTRY, XEN_ELFNOTE_FEATURES, XEN_ELFNOTE_GUEST_OS,
    XEN_ELFNOTE_GUEST_VERSION, XEN_ELFNOTE_HYPERCALL_PAGE, XEN_ELFNOTE_INIT_P2M,
    XEN_ELFNOTE_LOADER, XEN_ELFNOTE_MOD_START_PFN, XEN_ELFNOTE_PADDR_OFFSET, XEN_ELFNOTE_PAE_MODE,
    XEN_ELFNOTE_PHYS32_ENTRY, XEN_ELFNOTE_SUPPORTED_FEATURES, XEN_ELFNOTE_VIRT_BASE,
    XEN_ELFNOTE_XEN_VERSION,
};

/// `XENFEAT_*` bit numbers (xen/include/public/features.h) by their
/// `FEATURES`-note names, as libelf-dominfo.c spells them.
const FEATURE_NAMES: [(&[u8], u32); 7] = [
    (b"writable_page_tables", 0),
    (b"writable_descriptor_tables", 1),
    (b"auto_translated_physmap", 2),
    (b"supervisor_mode_kernel", 3),
    (b"pae_pgdir_above_4gb", 4),
    (b"hvm_callback_vector", 8),
    (b"dom0", 11),
];

/// Required features a 64-bit PV domU can have (Xen and libxc provide these).
const PV_REQUIRABLE: u32 = (1 << 0) | (1 << 1) | (1 << 4);

/// Longest string note kept (longer ones are refused as hostile).
pub const MAX_NOTE_STRING: usize = 256;

/// The Xen notes found in an image. Numeric notes are `None` when absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct XenNotes {
    /// `GUEST_OS`, without its NUL.
    pub guest_os: Option<Vec<u8>>,
    /// `XEN_VERSION`, without its NUL.
    pub xen_version: Option<Vec<u8>>,
    /// `LOADER`, without its NUL.
    pub loader: Option<Vec<u8>>,
    /// `VIRT_BASE`.
    pub virt_base: Option<u64>,
    /// `PADDR_OFFSET`.
    pub paddr_offset: Option<u64>,
    /// `ENTRY`.
    pub entry: Option<u64>,
    /// `HYPERCALL_PAGE`.
    pub hypercall_page: Option<u64>,
    /// `INIT_P2M` (recorded; the PV plan keeps the p2m in the initial mapping).
    pub init_p2m: Option<u64>,
    /// `MOD_START_PFN`.
    pub mod_start_pfn: Option<u64>,
    /// `PHYS32_ENTRY` (recorded for a later PVH plan).
    pub phys32_entry: Option<u64>,
    /// XENFEAT bits named in `FEATURES` (required ones included).
    pub features_supported: u32,
    /// XENFEAT bits named with `!` in `FEATURES`.
    pub features_required: u32,
    /// First word of `SUPPORTED_FEATURES`.
    pub supported_features: Option<u32>,
    /// How many Xen notes were read.
    pub count: usize,
}

impl XenNotes {
    /// Records one note with owner "Xen". `desc` is its descriptor.
    pub fn record(&mut self, n_type: u32, desc: &[u8]) -> Result<(), Error> {
        self.count += 1;
        match n_type {
            XEN_ELFNOTE_ENTRY => self.entry = Some(numeric(n_type, desc)?),
            XEN_ELFNOTE_HYPERCALL_PAGE => self.hypercall_page = Some(numeric(n_type, desc)?),
            XEN_ELFNOTE_VIRT_BASE => self.virt_base = Some(numeric(n_type, desc)?),
            XEN_ELFNOTE_PADDR_OFFSET => self.paddr_offset = Some(numeric(n_type, desc)?),
            XEN_ELFNOTE_INIT_P2M => self.init_p2m = Some(numeric(n_type, desc)?),
            XEN_ELFNOTE_MOD_START_PFN => self.mod_start_pfn = Some(numeric(n_type, desc)?),
            XEN_ELFNOTE_PHYS32_ENTRY => self.phys32_entry = Some(numeric(n_type, desc)?),
            XEN_ELFNOTE_XEN_VERSION => self.xen_version = Some(string(n_type, desc)?),
            XEN_ELFNOTE_GUEST_OS => self.guest_os = Some(string(n_type, desc)?),
            XEN_ELFNOTE_LOADER => self.loader = Some(string(n_type, desc)?),
            XEN_ELFNOTE_FEATURES => {
                let text = string(n_type, desc)?;
                let (supported, required) = parse_features(&text)?;
                self.features_supported |= supported;
                self.features_required |= required;
            }
            XEN_ELFNOTE_SUPPORTED_FEATURES => {
                // An array of 32-bit words; word 0 holds XENFEAT 0..31.
                if desc.len() < 4 || !desc.len().is_multiple_of(4) {
                    return Err(Error::BadNoteValue(n_type));
                }
                let word = u32::from_le_bytes([desc[0], desc[1], desc[2], desc[3]]);
                self.supported_features = Some(self.supported_features.unwrap_or(0) | word);
            }
            // GUEST_VERSION, PAE_MODE, BSD_SYMTAB and unknown types: ignored,
            // as libelf ignores what it does not use.
            _ => {}
        }
        Ok(())
    }

    /// Checks what libelf's `elf_xen_note_check` (and the VIRT_BASE part of
    /// `elf_xen_addr_calc_check`) checks for a PV guest.
    pub fn check_pv(&self) -> Result<(), Error> {
        if self.count == 0 {
            return Err(Error::MissingNote(XEN_ELFNOTE_XEN_VERSION));
        }
        // libelf compares prefixes: strncmp(loader, "generic", 7),
        // strncmp(guest_os, "linux", 5), strncmp(xen_ver, "xen-3.0", 7).
        let generic = self
            .loader
            .as_deref()
            .is_some_and(|l| l.starts_with(b"generic"));
        let linux = self
            .guest_os
            .as_deref()
            .is_some_and(|os| os.starts_with(b"linux"));
        if !generic && !linux {
            return Err(Error::BadLoader);
        }
        match self.xen_version.as_deref() {
            None => return Err(Error::MissingNote(XEN_ELFNOTE_XEN_VERSION)),
            Some(v) if v.starts_with(b"xen-3.0") => {}
            Some(_) => return Err(Error::BadXenVersion),
        }
        // VIRT_BASE defaults to 0, but PADDR_OFFSET alone is refused.
        if self.virt_base.is_none() && self.paddr_offset.is_some() {
            return Err(Error::MissingNote(XEN_ELFNOTE_VIRT_BASE));
        }
        let unsupported = self.features_required & !PV_REQUIRABLE;
        if unsupported != 0 {
            return Err(Error::UnsupportedFeature(unsupported.trailing_zeros()));
        }
        Ok(())
    }
}

/// A numeric note: 1, 2, 4 or 8 bytes, little endian.
fn numeric(n_type: u32, desc: &[u8]) -> Result<u64, Error> {
    let mut bytes = [0u8; 8];
    match desc.len() {
        1 | 2 | 4 | 8 => {
            bytes[..desc.len()].copy_from_slice(desc);
            Ok(u64::from_le_bytes(bytes))
        }
        _ => Err(Error::BadNoteValue(n_type)),
    }
}

/// A string note: up to the first NUL (a missing NUL is tolerated, a long
/// string is not).
fn string(n_type: u32, desc: &[u8]) -> Result<Vec<u8>, Error> {
    let end = desc.iter().position(|&b| b == 0).unwrap_or(desc.len());
    if end > MAX_NOTE_STRING {
        return Err(Error::BadNoteValue(n_type));
    }
    Ok(desc[..end].to_vec())
}

/// Parses a `FEATURES` string into (supported, required) XENFEAT bitmaps.
fn parse_features(text: &[u8]) -> Result<(u32, u32), Error> {
    let (mut supported, mut required) = (0u32, 0u32);
    for word in text.split(|&b| b == b'|') {
        if word.is_empty() {
            continue;
        }
        let (name, is_required) = match word.strip_prefix(b"!") {
            Some(rest) => (rest, true),
            None => (word, false),
        };
        // libelf ignores an unknown feature unless it is required.
        let Some(bit) = FEATURE_NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, bit)| bit)
        else {
            if is_required {
                return Err(Error::UnknownFeature);
            }
            continue;
        };
        supported |= 1 << bit;
        if is_required {
            required |= 1 << bit;
        }
    }
    Ok((supported, required))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_sizes() {
        assert_eq!(numeric(1, &[0x34, 0x12]), Ok(0x1234));
        assert_eq!(
            numeric(1, &[1, 0, 0, 0, 0, 0, 0, 0x80]),
            Ok(0x8000_0000_0000_0001)
        );
        assert_eq!(numeric(1, &[1, 2, 3]), Err(Error::BadNoteValue(1)));
        assert_eq!(numeric(1, &[]), Err(Error::BadNoteValue(1)));
    }

    #[test]
    fn features() {
        assert_eq!(
            parse_features(b"!writable_page_tables|pae_pgdir_above_4gb"),
            Ok((0b10001, 1))
        );
        assert_eq!(parse_features(b"dom0|"), Ok((1 << 11, 0)));
        assert_eq!(parse_features(b"bogus|dom0"), Ok((1 << 11, 0)));
        assert_eq!(parse_features(b"!bogus"), Err(Error::UnknownFeature));
    }

    #[test]
    fn required_auto_translate_refused() {
        let mut n = XenNotes::default();
        n.record(XEN_ELFNOTE_LOADER, b"generic\0").unwrap();
        n.record(XEN_ELFNOTE_XEN_VERSION, b"xen-3.0\0").unwrap();
        n.record(
            XEN_ELFNOTE_VIRT_BASE,
            &0xffff_ffff_8000_0000u64.to_le_bytes(),
        )
        .unwrap();
        assert_eq!(n.check_pv(), Ok(()));
        n.record(XEN_ELFNOTE_FEATURES, b"!auto_translated_physmap")
            .unwrap();
        assert_eq!(n.check_pv(), Err(Error::UnsupportedFeature(2)));
    }

    #[test]
    fn loader_and_version() {
        let mut n = XenNotes::default();
        n.record(XEN_ELFNOTE_GUEST_OS, b"linux\0").unwrap();
        n.record(XEN_ELFNOTE_XEN_VERSION, b"xen-4.0\0").unwrap();
        assert_eq!(n.check_pv(), Err(Error::BadXenVersion));
        let mut n = XenNotes::default();
        n.record(XEN_ELFNOTE_GUEST_OS, b"netbsd\0").unwrap();
        assert_eq!(n.check_pv(), Err(Error::BadLoader));
    }
}

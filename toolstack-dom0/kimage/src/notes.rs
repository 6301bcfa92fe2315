//! The notes of a PT_NOTE segment, and the Xen ones among them.
//!
//! Read first: the gABI "Note Section" (namesz, descsz, type, then name and
//! desc each padded to the segment's alignment) and
//! xen/include/public/elfnote.h. The values are decoded by
//! [`xcp_builder::XenNotes::record`], the PV builder's reader, so both
//! paths read Xen's notes by the same (libelf's) rules.

use xcp_builder::XenNotes;
use xen_abi::elfnote::XEN_ELFNOTE_OWNER;

use crate::error::KimageError;

/// Reads every note of `data` (one PT_NOTE segment's bytes, `align` 4 or
/// 8) and records those owned by "Xen" in `found`.
pub fn parse(mut data: &[u8], align: u64, found: &mut XenNotes) -> Result<(), KimageError> {
    let align = align as usize;
    while !data.is_empty() {
        if data.len() < 12 {
            return Err(KimageError::BadElf("truncated note header"));
        }
        let namesz = le32(data, 0) as usize;
        let descsz = le32(data, 4) as usize;
        let n_type = le32(data, 8);
        let name_end = 12usize
            .checked_add(namesz)
            .ok_or(KimageError::BadElf("note size"))?;
        let desc_start = round_up(name_end, align).ok_or(KimageError::BadElf("note size"))?;
        let desc_end = desc_start
            .checked_add(descsz)
            .ok_or(KimageError::BadElf("note size"))?;
        if desc_end > data.len() {
            return Err(KimageError::BadElf("note runs past its segment"));
        }
        if data[12..name_end] == XEN_ELFNOTE_OWNER[..] {
            found
                .record(n_type, &data[desc_start..desc_end])
                .map_err(|_| KimageError::BadNote(n_type))?;
        }
        let next = round_up(desc_end, align).ok_or(KimageError::BadElf("note size"))?;
        // The last note's padding may be cut off at the segment's end.
        data = data.get(next..).unwrap_or(&[]);
    }
    Ok(())
}

fn round_up(n: usize, align: usize) -> Option<usize> {
    Some(n.checked_add(align - 1)? & !(align - 1))
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use xen_abi::elfnote::{XEN_ELFNOTE_GUEST_OS, XEN_ELFNOTE_PHYS32_ENTRY};

    pub(crate) fn note(name: &[u8], n_type: u32, desc: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(name.len() as u32).to_le_bytes());
        v.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        v.extend_from_slice(&n_type.to_le_bytes());
        v.extend_from_slice(name);
        v.resize(v.len().next_multiple_of(4), 0);
        v.extend_from_slice(desc);
        v.resize(v.len().next_multiple_of(4), 0);
        v
    }

    #[test]
    fn xen_notes_are_found_and_others_skipped() {
        let mut seg = note(b"GNU\0", 3, &[1, 2, 3, 4, 5]);
        seg.extend(note(
            b"Xen\0",
            XEN_ELFNOTE_PHYS32_ENTRY,
            &0x100_0000u32.to_le_bytes(),
        ));
        seg.extend(note(b"Xen\0", XEN_ELFNOTE_GUEST_OS, b"linux\0"));
        let mut n = XenNotes::default();
        parse(&seg, 4, &mut n).expect("valid notes");
        assert_eq!(n.phys32_entry, Some(0x100_0000));
        assert_eq!(n.guest_os.as_deref(), Some(&b"linux"[..]));
        assert_eq!(n.count, 2);
    }

    #[test]
    fn bad_notes_are_refused() {
        let mut n = XenNotes::default();
        let good = note(b"Xen\0", XEN_ELFNOTE_PHYS32_ENTRY, &[0; 4]);
        for cut in 1..good.len() - 1 {
            // Cutting inside the header or the desc is an error; cutting
            // only padding is not (there is none here: 4-aligned).
            assert!(parse(&good[..cut], 4, &mut n).is_err(), "cut {cut}");
        }
        let mut huge = good.clone();
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse(&huge, 4, &mut n).is_err());
        huge[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse(&huge, 8, &mut n).is_err());
        let bad_len = note(b"Xen\0", XEN_ELFNOTE_PHYS32_ENTRY, &[0; 3]);
        assert_eq!(
            parse(&bad_len, 4, &mut n),
            Err(KimageError::BadNote(XEN_ELFNOTE_PHYS32_ENTRY))
        );
    }
}

//! The bytes of the initial page tables of a 64-bit PV guest.
//!
//! Read first: xen/include/public/xen.h ("MMU-UPDATE REQUESTS", start-of-day
//! layout), tools/libs/guest/xg_dom_x86.c (`setup_pgtables_x86_64`) and
//! xen/arch/x86/pv/dom0_build.c. Entries hold machine frames (`mfn << 12`).
//! Every page of the mapping is present|rw|user|accessed|dirty except the
//! page-table frames themselves, which Xen only accepts mapped read-only.
//! Tables are laid out L4, L3s, L2s, L1s, each level in address order.

use crate::layout::{PvLayout, PAGE_SIZE};
use crate::Error;

pub use xen_abi::xen::{PTE_ACCESSED, PTE_ADDR_MASK, PTE_DIRTY, PTE_PRESENT, PTE_RW, PTE_USER};
/// Upper-level entries and ordinary L1 entries.
pub const PTE_RW_FLAGS: u64 = PTE_PRESENT | PTE_RW | PTE_USER | PTE_ACCESSED | PTE_DIRTY;
/// L1 entries of page-table frames: read-only.
pub const PTE_RO_FLAGS: u64 = PTE_PRESENT | PTE_USER | PTE_ACCESSED;
/// Largest mfn a PTE can hold.
pub const MAX_MFN: u64 = PTE_ADDR_MASK >> 12;

/// Entries per table.
const ENTRIES: u64 = 512;

/// Shift of the region one table of `level` covers (L1: 2 MiB ... L4: all).
fn cover_shift(level: u32) -> u32 {
    12 + 9 * level
}

/// Which table (level, global number) the page-table pfn `pfn` holds.
/// The global number is `va >> cover_shift(level)` for any va it maps.
fn table_at(layout: &PvLayout, pfn: u64) -> Option<(u32, u64)> {
    let c = layout.pt_counts;
    let idx = pfn.checked_sub(layout.page_tables.start)?;
    let base = layout.virt_base;
    if idx == 0 {
        return Some((4, 0));
    }
    let idx = idx - 1;
    if idx < c.l3 {
        return Some((3, (base >> 39) + idx));
    }
    let idx = idx - c.l3;
    if idx < c.l2 {
        return Some((2, (base >> 30) + idx));
    }
    let idx = idx - c.l2;
    if idx < c.l1 {
        return Some((1, (base >> 21) + idx));
    }
    None
}

/// The pfn of the table of `level` whose global number is `number`.
fn table_pfn(layout: &PvLayout, level: u32, number: u64) -> u64 {
    let c = layout.pt_counts;
    let base = layout.virt_base;
    let start = layout.page_tables.start;
    match level {
        3 => start + 1 + (number - (base >> 39)),
        2 => start + 1 + c.l3 + (number - (base >> 30)),
        _ => start + 1 + c.l3 + c.l2 + (number - (base >> 21)),
    }
}

/// Looks up `pfn` in the p2m and makes a PTE for it.
fn pte(p2m: &[u64], pfn: u64, flags: u64) -> Result<u64, Error> {
    let mfn = *p2m.get(pfn as usize).ok_or(Error::P2mTooShort)?;
    if mfn > MAX_MFN {
        return Err(Error::MfnTooLarge);
    }
    Ok((mfn << 12) | flags)
}

/// Writes page-table frame `pfn` into `page`. `p2m[pfn]` is the mfn of
/// each pfn; it must cover `nr_pages`.
pub(crate) fn write_table(
    layout: &PvLayout,
    p2m: &[u64],
    pfn: u64,
    page: &mut [u8; 4096],
) -> Result<(), Error> {
    if (p2m.len() as u64) < layout.nr_pages {
        return Err(Error::P2mTooShort);
    }
    let (level, number) = table_at(layout, pfn).ok_or(Error::NotThisKind)?;
    page.fill(0);
    let start = layout.virt_base;
    let end = layout.virt_end;
    let shift = cover_shift(level);
    // The part of the mapping this table covers.
    let lo = if level == 4 {
        start
    } else {
        start.max(number << shift)
    };
    let hi = if level == 4 {
        end
    } else {
        // `(number + 1) << shift` wraps to 0 for the topmost table.
        match (number + 1).checked_shl(shift).filter(|&v| v != 0) {
            Some(v) => end.min(v),
            None => end,
        }
    };
    let child_shift = shift - 9;
    let mut va = lo;
    while va < hi {
        let index = ((va >> child_shift) % ENTRIES) as usize;
        let entry = if level == 1 {
            let pfn = (va - start) / PAGE_SIZE;
            let flags = if layout.page_tables.contains(pfn) {
                PTE_RO_FLAGS
            } else {
                PTE_RW_FLAGS
            };
            pte(p2m, pfn, flags)?
        } else {
            let child = table_pfn(layout, level - 1, va >> child_shift);
            pte(p2m, child, PTE_RW_FLAGS)?
        };
        page[index * 8..index * 8 + 8].copy_from_slice(&entry.to_le_bytes());
        // Next child boundary; stop at the top of the address space.
        let step = 1u64 << child_shift;
        match (va & !(step - 1)).checked_add(step) {
            Some(next) => va = next,
            None => break,
        }
    }
    Ok(())
}

//! cpio "newc" reading and writing.

use alloc::vec::Vec;

const MAGIC: &[u8; 6] = b"070701";
const HEADER_LEN: usize = 110;
const TRAILER: &str = "TRAILER!!!";
/// Most entries a bundle may hold (dom0 lists them in its banner).
pub const MAX_ENTRIES: usize = 256;
/// Longest entry name accepted.
const MAX_NAME: usize = 255;

/// Why a bundle was refused; `offset` is where in the archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BundleError {
    /// The archive is empty.
    Empty,
    /// An entry header does not start with `070701`.
    BadMagic {
        /// Byte offset of the header.
        offset: usize,
    },
    /// A header field is not eight hex digits.
    BadHeaderField {
        /// Byte offset of the header.
        offset: usize,
    },
    /// A header, name or data runs past the end of the archive.
    Truncated {
        /// Byte offset of the entry.
        offset: usize,
    },
    /// A name is empty, too long, not NUL-terminated, or not UTF-8.
    BadName {
        /// Byte offset of the entry.
        offset: usize,
    },
    /// Two entries share a name.
    DuplicateName {
        /// Byte offset of the second entry.
        offset: usize,
    },
    /// More than [`MAX_ENTRIES`] entries.
    TooManyEntries,
    /// No `TRAILER!!!` entry.
    MissingTrailer,
}

impl core::fmt::Display for BundleError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BundleError::Empty => write!(f, "the bundle is empty"),
            BundleError::BadMagic { offset } => {
                write!(f, "no cpio newc magic (070701) at byte {offset}")
            }
            BundleError::BadHeaderField { offset } => {
                write!(f, "a cpio header field is not hex at byte {offset}")
            }
            BundleError::Truncated { offset } => {
                write!(
                    f,
                    "the entry at byte {offset} runs past the end of the bundle"
                )
            }
            BundleError::BadName { offset } => write!(f, "bad entry name at byte {offset}"),
            BundleError::DuplicateName { offset } => {
                write!(f, "duplicate entry name at byte {offset}")
            }
            BundleError::TooManyEntries => write!(f, "more than {MAX_ENTRIES} entries"),
            BundleError::MissingTrailer => {
                write!(f, "no TRAILER!!! entry: the bundle is cut short")
            }
        }
    }
}

/// One file of the bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Path inside the archive.
    pub name: &'a str,
    /// File mode bits.
    pub mode: u32,
    /// Contents.
    pub data: &'a [u8],
}

/// A parsed bundle: its entries in archive order (directories skipped).
#[derive(Clone, Debug)]
pub struct Bundle<'a> {
    entries: Vec<Entry<'a>>,
}

fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

fn hex_field(header: &[u8], index: usize, offset: usize) -> Result<usize, BundleError> {
    let digits = &header[6 + index * 8..6 + (index + 1) * 8];
    let mut value: usize = 0;
    for &d in digits {
        let v = (d as char)
            .to_digit(16)
            .ok_or(BundleError::BadHeaderField { offset })?;
        value = (value << 4) | v as usize;
    }
    Ok(value)
}

impl<'a> Bundle<'a> {
    /// Parses a whole archive.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, BundleError> {
        if bytes.is_empty() {
            return Err(BundleError::Empty);
        }
        let mut entries: Vec<Entry<'a>> = Vec::new();
        let mut offset = 0;
        loop {
            let header = bytes
                .get(offset..offset + HEADER_LEN)
                .ok_or(BundleError::MissingTrailer)?;
            if &header[..6] != MAGIC {
                return Err(BundleError::BadMagic { offset });
            }
            let mode = hex_field(header, 1, offset)?;
            let file_size = hex_field(header, 6, offset)?;
            let name_size = hex_field(header, 11, offset)?;
            if !(2..=MAX_NAME + 1).contains(&name_size) {
                return Err(BundleError::BadName { offset });
            }
            let name_start = offset + HEADER_LEN;
            let raw_name = bytes
                .get(name_start..name_start + name_size)
                .ok_or(BundleError::Truncated { offset })?;
            let (nul, raw_name) = raw_name.split_last().expect("name_size >= 2");
            if *nul != 0 || raw_name.contains(&0) {
                return Err(BundleError::BadName { offset });
            }
            let name =
                core::str::from_utf8(raw_name).map_err(|_| BundleError::BadName { offset })?;
            let data_start = pad4(name_start + name_size);
            let data_end = data_start
                .checked_add(file_size)
                .ok_or(BundleError::Truncated { offset })?;
            let data = bytes
                .get(data_start..data_end)
                .ok_or(BundleError::Truncated { offset })?;
            if name == TRAILER {
                return Ok(Bundle { entries });
            }
            let is_dir = mode & 0o170000 == 0o040000;
            if !is_dir {
                if entries.iter().any(|e| e.name == name) {
                    return Err(BundleError::DuplicateName { offset });
                }
                if entries.len() == MAX_ENTRIES {
                    return Err(BundleError::TooManyEntries);
                }
                entries.push(Entry {
                    name,
                    mode: mode as u32,
                    data,
                });
            }
            offset = pad4(data_end);
        }
    }

    /// The entries, in archive order.
    pub fn entries(&self) -> &[Entry<'a>] {
        &self.entries
    }

    /// The entry called `name`.
    pub fn get(&self, name: &str) -> Option<&Entry<'a>> {
        self.entries.iter().find(|e| e.name == name)
    }
}

fn push_header(out: &mut Vec<u8>, ino: usize, mode: u32, name: &str, size: usize) {
    let fields = [
        ino,
        mode as usize,
        0,
        0,
        1,
        0,
        size,
        0,
        0,
        0,
        0,
        name.len() + 1,
        0,
    ];
    out.extend_from_slice(MAGIC);
    for f in fields {
        for shift in (0..8).rev() {
            let digit = (f >> (shift * 4)) & 0xf;
            out.push(b"0123456789ABCDEF"[digit]);
        }
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    out.resize(pad4(out.len()), 0);
}

/// Writes `files` (name, contents) as a newc archive with a trailer.
pub fn write_newc(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (name, data)) in files.iter().enumerate() {
        push_header(&mut out, i + 1, 0o100644, name, data.len());
        out.extend_from_slice(data);
        out.resize(pad4(out.len()), 0);
    }
    push_header(&mut out, 0, 0, TRAILER, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use proptest::prelude::*;

    #[test]
    fn round_trip() {
        let a = write_newc(&[
            ("a.elf", b"12345"),
            ("platform.toml", b"x = 1\n"),
            ("empty", b""),
        ]);
        let b = Bundle::parse(&a).unwrap();
        let names: Vec<_> = b.entries().iter().map(|e| e.name).collect();
        assert_eq!(names, ["a.elf", "platform.toml", "empty"]);
        assert_eq!(b.get("a.elf").unwrap().data, b"12345");
        assert_eq!(b.get("empty").unwrap().data, b"");
        assert!(b.get("nope").is_none());
    }

    #[test]
    fn errors_are_specific() {
        assert_eq!(Bundle::parse(b"").unwrap_err(), BundleError::Empty);
        assert_eq!(
            Bundle::parse(&[0x7f; 200]).unwrap_err(),
            BundleError::BadMagic { offset: 0 }
        );
        let good = write_newc(&[("a", b"hello")]);
        // Cut inside the data of the first entry.
        assert_eq!(
            Bundle::parse(&good[..HEADER_LEN + 4 + 2]).unwrap_err(),
            BundleError::Truncated { offset: 0 }
        );
        // Cut before the trailer.
        let cut = pad4(HEADER_LEN + 2) + 8;
        assert_eq!(
            Bundle::parse(&good[..cut]).unwrap_err(),
            BundleError::MissingTrailer
        );
        // A non-hex size field.
        let mut bad = good.clone();
        bad[6 + 6 * 8] = b'g';
        assert_eq!(
            Bundle::parse(&bad).unwrap_err(),
            BundleError::BadHeaderField { offset: 0 }
        );
        // A huge size.
        let mut huge = good.clone();
        huge[6 + 6 * 8..6 + 7 * 8].copy_from_slice(b"FFFFFFFF");
        assert_eq!(
            Bundle::parse(&huge).unwrap_err(),
            BundleError::Truncated { offset: 0 }
        );
        // A duplicate.
        let dup = write_newc(&[("a", b"1"), ("a", b"2")]);
        assert!(matches!(
            Bundle::parse(&dup).unwrap_err(),
            BundleError::DuplicateName { .. }
        ));
        // A name without its NUL.
        let mut nonul = good.clone();
        nonul[HEADER_LEN + 1] = b'x';
        assert_eq!(
            Bundle::parse(&nonul).unwrap_err(),
            BundleError::BadName { offset: 0 }
        );
    }

    #[test]
    fn too_many_entries() {
        let names: Vec<alloc::string::String> =
            (0..=MAX_ENTRIES).map(|i| alloc::format!("f{i}")).collect();
        let files: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b""[..])).collect();
        assert_eq!(
            Bundle::parse(&write_newc(&files)).unwrap_err(),
            BundleError::TooManyEntries
        );
    }

    proptest! {
        #[test]
        fn never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = Bundle::parse(&bytes);
        }

        #[test]
        fn never_panics_on_mutated_archives(pos in 0usize..400, byte in any::<u8>()) {
            let mut a = write_newc(&[("x.elf", &[1u8; 100][..]), ("platform.toml", b"a")]);
            let p = pos % a.len();
            a[p] = byte;
            let _ = Bundle::parse(&a);
        }

        #[test]
        fn round_trips_any_files(files in proptest::collection::vec(("[a-z]{1,12}", proptest::collection::vec(any::<u8>(), 0..64)), 0..8)) {
            let mut seen = vec![];
            let files: Vec<(&str, &[u8])> = files.iter().filter(|(n, _)| {
                if seen.contains(n) { false } else { seen.push(n.clone()); true }
            }).map(|(n, d)| (n.as_str(), d.as_slice())).collect();
            let archive = write_newc(&files);
            let parsed = Bundle::parse(&archive).unwrap();
            prop_assert_eq!(parsed.entries().len(), files.len());
            for (e, (n, d)) in parsed.entries().iter().zip(files.iter()) {
                prop_assert_eq!(e.name, *n);
                prop_assert_eq!(e.data, *d);
            }
        }
    }
}

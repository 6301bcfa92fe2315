//! The pull writer: a dynamic VHD of a sparse disk, piece by piece.
//!
//! read first: ../DESIGN.md; format.rs.
//!
//! The file: the footer copy at 0, the dynamic header at 512, the BAT at
//! 1536 (padded to a sector), then each allocated block in disk order (a
//! sector bitmap of 512 bytes, all ones, then 2 MiB of data), then the
//! footer. The writer makes the metadata itself and asks the caller for
//! the data as [`Piece::Data`] ranges of the disk; it holds nothing but
//! the caller's list of allocated blocks and a position.

use alloc::vec;
use alloc::vec::Vec;

use crate::format::{
    bat_bytes, bitmap_bytes, DiskType, DynamicHeader, Footer, BAT_UNUSED, FOOTER_SIZE, HEADER_SIZE,
    MAX_DISK_SIZE, NO_OFFSET, VERSION_1_0,
};
use crate::{VhdError, DEFAULT_BLOCK_SIZE, SECTOR};

const BLOCK: u64 = DEFAULT_BLOCK_SIZE as u64;
const HEADER_AT: u64 = FOOTER_SIZE as u64;
const BAT_AT: u64 = HEADER_AT + HEADER_SIZE as u64;

/// The next part of the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    /// Metadata (or zero padding): send as is.
    Bytes(Vec<u8>),
    /// The disk's bytes `[offset, offset + len)`: read them and send them.
    /// `offset` and `len` are multiples of 512 and the range ends at most
    /// at the virtual size.
    Data {
        /// Disk offset.
        offset: u64,
        /// Length in bytes.
        len: u32,
    },
    /// The stream is whole.
    End,
}

/// Pull writer of a dynamic VHD (what xapi's export with `format=vhd`
/// sends).
#[derive(Clone, Debug)]
pub struct Writer {
    virtual_size: u64,
    allocated: Vec<u32>,
    footer: [u8; FOOTER_SIZE],
    entries: u32,
    /// Where the first block starts.
    blocks_at: u64,
    total_len: u64,
    pos: u64,
}

impl Writer {
    /// A dynamic VHD of a disk of `virtual_size` bytes (a multiple of 512,
    /// at most 2040 GiB). `allocated`: the sorted, unique indices of the
    /// blocks (of [`DEFAULT_BLOCK_SIZE`]) that hold data; the others are
    /// left out of the file and read as zero. `uuid` and `timestamp`
    /// (seconds since 2000-01-01 00:00 UTC) go into the footer.
    pub fn dynamic(
        virtual_size: u64,
        allocated: Vec<u32>,
        uuid: [u8; 16],
        timestamp: u32,
    ) -> Result<Writer, VhdError<()>> {
        if !virtual_size.is_multiple_of(SECTOR) {
            return Err(VhdError::Invalid(
                "the virtual size is not a multiple of 512",
            ));
        }
        if virtual_size > MAX_DISK_SIZE {
            return Err(VhdError::TooLarge("a VHD holds at most 2040 GiB"));
        }
        let entries = u32::try_from(virtual_size.div_ceil(BLOCK)).expect("≤ 2040 GiB / 2 MiB");
        if allocated.windows(2).any(|w| w[0] >= w[1]) {
            return Err(VhdError::Invalid(
                "the allocated blocks are not sorted and unique",
            ));
        }
        if allocated.last().is_some_and(|&b| b >= entries) {
            return Err(VhdError::Invalid(
                "an allocated block is past the virtual size",
            ));
        }
        let footer = Footer::new(DiskType::Dynamic, virtual_size, uuid, timestamp).emit();
        let blocks_at = BAT_AT + bat_bytes(entries);
        let total_len = blocks_at + allocated.len() as u64 * block_span() + FOOTER_SIZE as u64;
        Ok(Writer {
            virtual_size,
            allocated,
            footer,
            entries,
            blocks_at,
            total_len,
            pos: 0,
        })
    }

    /// The length of the whole stream (for Content-Length), exact.
    pub fn total_len(&self) -> u64 {
        self.total_len
    }

    /// The next piece, of at most `max` bytes. `max` is taken down to a
    /// multiple of 512, and up to 512 if smaller.
    pub fn next(&mut self, max: usize) -> Piece {
        let max = (max as u64 / SECTOR).max(1) * SECTOR;
        let max = max.min(u64::from(u32::MAX) / SECTOR * SECTOR);
        let footer_at = self.total_len - FOOTER_SIZE as u64;
        let pos = self.pos;
        let piece = if pos >= self.total_len {
            return Piece::End;
        } else if pos < HEADER_AT {
            Piece::Bytes(slice(&self.footer, pos, max))
        } else if pos < BAT_AT {
            Piece::Bytes(slice(&self.header(), pos - HEADER_AT, max))
        } else if pos < self.blocks_at {
            Piece::Bytes(self.bat((self.blocks_at - pos).min(max)))
        } else if pos >= footer_at {
            Piece::Bytes(slice(&self.footer, pos - footer_at, max))
        } else {
            let k = (pos - self.blocks_at) / block_span();
            let within = (pos - self.blocks_at) % block_span();
            let bitmap = bitmap_bytes(DEFAULT_BLOCK_SIZE);
            if within < bitmap {
                Piece::Bytes(vec![0xFF; bitmap as usize])
            } else {
                let block = u64::from(self.allocated[k as usize]);
                let offset = block * BLOCK + (within - bitmap);
                let block_end = (block + 1) * BLOCK;
                if offset < self.virtual_size {
                    let len = (self.virtual_size.min(block_end) - offset).min(max);
                    Piece::Data {
                        offset,
                        len: u32::try_from(len).expect("max ≤ u32::MAX"),
                    }
                } else {
                    // The last block's part past the disk's end: zeros.
                    Piece::Bytes(vec![0; (block_end - offset).min(max) as usize])
                }
            }
        };
        self.pos += match &piece {
            Piece::Bytes(b) => b.len() as u64,
            Piece::Data { len, .. } => u64::from(*len),
            Piece::End => 0,
        };
        piece
    }

    fn header(&self) -> [u8; HEADER_SIZE] {
        DynamicHeader {
            data_offset: NO_OFFSET,
            table_offset: BAT_AT,
            header_version: VERSION_1_0,
            max_table_entries: self.entries,
            block_size: DEFAULT_BLOCK_SIZE,
        }
        .emit()
    }

    /// `len` bytes of the BAT (and its padding) from the position.
    fn bat(&self, len: u64) -> Vec<u8> {
        let from = (self.pos - BAT_AT) / 4;
        let mut out = Vec::with_capacity(len as usize);
        // The allocated blocks from the first at or past entry `from`.
        let mut next = self.allocated.partition_point(|&b| u64::from(b) < from);
        for entry in from..from + len / 4 {
            // Entries of blocks left out, and the padding, are unused.
            let value = match self.allocated.get(next) {
                Some(&b) if u64::from(b) == entry => {
                    let at = self.blocks_at + next as u64 * block_span();
                    next += 1;
                    u32::try_from(at / SECTOR).expect("< 2041 GiB / 512 < 2^32")
                }
                _ => BAT_UNUSED,
            };
            out.extend_from_slice(&value.to_be_bytes());
        }
        out
    }
}

/// `bytes[from..]`, at most `max` of them.
fn slice(bytes: &[u8], from: u64, max: u64) -> Vec<u8> {
    let from = from as usize;
    let to = (from as u64 + max).min(bytes.len() as u64) as usize;
    bytes[from..to].to_vec()
}

/// A block's bytes in the file: its bitmap and its data.
fn block_span() -> u64 {
    bitmap_bytes(DEFAULT_BLOCK_SIZE) + BLOCK
}

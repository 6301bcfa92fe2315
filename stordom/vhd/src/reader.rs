//! The push reader: a VHD stream in, the disk's data out to a sink.
//!
//! read first: ../DESIGN.md; format.rs.
//!
//! The stream is read once, front to back, in pieces of any size. The
//! reader is a state machine over the stream position: it collects the
//! structures it needs (footer copy, dynamic header, BAT entries, a
//! block's bitmap, the footer) into one small buffer, skips the bytes it
//! does not need, and passes a block's present sectors to the sink as they
//! arrive. Every offset a structure names is checked against the stream's
//! declared length and the structures before it, so that the reader never
//! has to go back.

use alloc::vec::Vec;

use crate::format::{
    bat_bytes, bitmap_bytes, DiskType, DynamicHeader, Footer, ParseError, BAT_UNUSED,
    FOOTER_COOKIE, FOOTER_SIZE, HEADER_SIZE,
};
use crate::{
    Kind, Limits, Sink, Summary, VhdError, MAX_BLOCK_SIZE, MAX_SINK_LEN, MIN_BLOCK_SIZE, SECTOR,
};

const FOOTER_LEN: u64 = FOOTER_SIZE as u64;
const HEADER_LEN: u64 = HEADER_SIZE as u64;
const SECTOR_LEN: usize = SECTOR as usize;

/// Where the reader is in the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Collecting the first 8 bytes: a footer cookie or a fixed disk's data.
    Start,
    /// Collecting a dynamic disk's footer copy at 0.
    FooterCopy,
    /// Collecting the dynamic header at the footer's data offset.
    Header,
    /// Collecting BAT entry `bat_read`.
    Bat,
    /// Collecting the bitmap of `blocks[next_block]`.
    Bitmap,
    /// Passing a data region (a block's data, or a fixed disk's).
    Data,
    /// Collecting a dynamic disk's footer (the last 512 bytes).
    Footer,
    /// Collecting a fixed disk's footer (the last 512 bytes).
    FixedFooter,
    /// The whole stream was taken and it is valid.
    Done,
    /// A call failed; nothing more is taken.
    Failed,
}

/// A run of the file that holds disk data.
#[derive(Clone, Copy, Debug)]
struct Region {
    /// Its offset in the stream (a multiple of 512).
    file_start: u64,
    /// Its length (a multiple of 512).
    len: u64,
    /// The disk offset of its first byte.
    disk_base: u64,
    /// Every sector present (a fixed disk), or as the bitmap in `buf` says.
    all_present: bool,
}

/// Push parser of a fixed or dynamic VHD stream: feed the stream's bytes
/// in order, split anywhere; it calls the sink with the data the image
/// holds. See the crate's DESIGN.md for what is accepted.
#[derive(Debug)]
pub struct Reader {
    stream_len: u64,
    limits: Limits,
    /// Bytes taken so far.
    pos: u64,
    state: State,
    /// The structure being collected: it starts at `at`, `need` bytes.
    /// Holds a block's bitmap while its data passes.
    buf: Vec<u8>,
    at: u64,
    need: usize,
    /// A sector of data that straddles two `feed` calls.
    partial: [u8; SECTOR_LEN],
    kind: Option<Kind>,
    virtual_size: Option<u64>,
    footer_copy: [u8; FOOTER_SIZE],
    /// The footer copy's current size (a dynamic disk's size, once its
    /// header is read too).
    current_size: u64,
    header_offset: u64,
    block_size: u32,
    table_offset: u64,
    max_table_entries: u32,
    bat_read: u32,
    /// The present blocks, `file sector << 32 | block index`; sorted (so
    /// by file offset) once the BAT is read.
    blocks: Vec<u64>,
    next_block: usize,
    region: Region,
    data_bytes: u64,
}

/// A structure's field was not what the stream's shape needs.
type Bad = VhdError<core::convert::Infallible>;

fn widen<E>(e: Bad) -> VhdError<E> {
    e.map_sink(|never| match never {})
}

/// Whether `[a, a + alen)` and `[b, b + blen)` overlap (no overflow:
/// every value is below 2^64 - 2^40 where this is used, by earlier checks).
fn overlaps(a: u64, alen: u64, b: u64, blen: u64) -> bool {
    a < b.saturating_add(blen) && b < a.saturating_add(alen)
}

impl Reader {
    /// A reader of a stream of exactly `stream_len` bytes (the HTTP
    /// Content-Length), within `limits`.
    pub fn new(stream_len: u64, limits: Limits) -> Reader {
        Reader {
            stream_len,
            limits,
            pos: 0,
            state: State::Start,
            buf: Vec::new(),
            at: 0,
            need: 8,
            partial: [0; SECTOR_LEN],
            kind: None,
            virtual_size: None,
            footer_copy: [0; FOOTER_SIZE],
            current_size: 0,
            header_offset: 0,
            block_size: 0,
            table_offset: 0,
            max_table_entries: 0,
            bat_read: 0,
            blocks: Vec::new(),
            next_block: 0,
            region: Region {
                file_start: 0,
                len: 0,
                disk_base: 0,
                all_present: true,
            },
            data_bytes: 0,
        }
    }

    /// The disk's virtual size, once known: for a dynamic disk once its
    /// footer copy and header are read, for a fixed one once its footer
    /// (the last 512 bytes) is.
    pub fn virtual_size(&self) -> Option<u64> {
        self.virtual_size
    }

    /// Bytes taken so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Takes all of `bytes`, the next ones of the stream. Calls
    /// `sink(disk_offset, data)` for data the image holds: offset and
    /// length multiples of 512, length at most [`MAX_SINK_LEN`], the end
    /// at most the virtual size, offsets increasing within a block (blocks
    /// come in the order the file holds them); never for sectors the image
    /// does not hold (they read as zero). A fixed disk's data is passed as
    /// it arrives, before its footer is checked. After an error the reader
    /// takes nothing more ([`VhdError::Failed`]).
    pub fn feed<E>(&mut self, bytes: &[u8], sink: &mut Sink<'_, E>) -> Result<(), VhdError<E>> {
        let r = self.feed_inner(bytes, sink);
        if r.is_err() {
            self.state = State::Failed;
        }
        r
    }

    /// The stream ended: checks that it ended whole (all `stream_len`
    /// bytes taken, the structures all valid, a dynamic disk's footer
    /// equal to its copy) and says what it held.
    pub fn finish<E>(self) -> Result<Summary, VhdError<E>> {
        match self.state {
            State::Done => Ok(Summary {
                virtual_size: self.virtual_size.expect("known when done"),
                kind: self.kind.expect("known when done"),
                data_bytes: self.data_bytes,
            }),
            State::Failed => Err(VhdError::Failed),
            _ if self.stream_len < FOOTER_LEN => Err(too_short()),
            _ => Err(VhdError::Truncated),
        }
    }

    fn feed_inner<E>(
        &mut self,
        mut bytes: &[u8],
        sink: &mut Sink<'_, E>,
    ) -> Result<(), VhdError<E>> {
        if self.state == State::Failed {
            return Err(VhdError::Failed);
        }
        if self.stream_len < FOOTER_LEN {
            return Err(too_short());
        }
        if bytes.len() as u64 > self.stream_len - self.pos {
            return Err(VhdError::TrailingBytes);
        }
        if self.pos == 0 && self.stream_len == FOOTER_LEN && self.state == State::Start {
            // Only a footer: a fixed disk of size 0.
            self.collect_at(
                self.stream_len - FOOTER_LEN,
                FOOTER_SIZE,
                State::FixedFooter,
            );
        }
        while !bytes.is_empty() {
            let used = match self.state {
                State::Data => self.data(bytes, sink)?,
                State::Done | State::Failed => return Err(VhdError::TrailingBytes),
                _ => {
                    let (used, complete) = self.collect(bytes);
                    if complete {
                        self.collected().map_err(widen)?;
                    }
                    used
                }
            };
            bytes = &bytes[used..];
        }
        Ok(())
    }

    /// Starts collecting `need` bytes at `at` (≥ pos), then `state`.
    fn collect_at(&mut self, at: u64, need: usize, state: State) {
        debug_assert!(at >= self.pos);
        self.buf.clear();
        self.at = at;
        self.need = need;
        self.state = state;
    }

    /// Skips to `at`, then appends to `buf`: bytes used, and whether
    /// `buf` is whole.
    fn collect(&mut self, bytes: &[u8]) -> (usize, bool) {
        let skip = (self.at.saturating_sub(self.pos)).min(bytes.len() as u64) as usize;
        self.pos += skip as u64;
        let take = (self.need - self.buf.len()).min(bytes.len() - skip);
        self.buf.extend_from_slice(&bytes[skip..skip + take]);
        self.pos += take as u64;
        (
            skip + take,
            self.pos >= self.at && self.buf.len() == self.need,
        )
    }

    /// `buf` holds what the state collects: check it, go on.
    fn collected(&mut self) -> Result<(), Bad> {
        match self.state {
            State::Start => self.start(),
            State::FooterCopy => self.footer_copy(),
            State::Header => self.header(),
            State::Bat => self.bat_entry(),
            State::Bitmap => {
                let start = self.blocks[self.next_block];
                let index = start & 0xFFFF_FFFF;
                let block = u64::from(self.block_size);
                self.region = Region {
                    file_start: (start >> 32) * SECTOR + bitmap_bytes(self.block_size),
                    len: block,
                    disk_base: index * block,
                    all_present: false,
                };
                self.state = State::Data;
                Ok(())
            }
            State::Footer => {
                if self.buf[..] != self.footer_copy[..] {
                    return Err(VhdError::Format(
                        "the footer differs from its copy at offset 0",
                    ));
                }
                self.state = State::Done;
                Ok(())
            }
            State::FixedFooter => self.fixed_footer(),
            State::Data | State::Done | State::Failed => unreachable!("not collecting"),
        }
    }

    /// The first 8 bytes: a footer copy's cookie (dynamic), or data.
    fn start(&mut self) -> Result<(), Bad> {
        if self.buf[..] == FOOTER_COOKIE[..] {
            self.need = FOOTER_SIZE;
            self.state = State::FooterCopy;
            return Ok(());
        }
        // A fixed disk: data, then the footer.
        let size = self.stream_len - FOOTER_LEN;
        if !size.is_multiple_of(SECTOR) {
            return Err(VhdError::Format(
                "neither a dynamic disk (no footer copy at the start) nor a fixed one (its length is not whole sectors)",
            ));
        }
        if size > self.limits.max_virtual_size {
            return Err(VhdError::TooLarge("the virtual size is above the limit"));
        }
        self.kind = Some(Kind::Fixed);
        self.partial[..self.buf.len()].copy_from_slice(&self.buf);
        self.region = Region {
            file_start: 0,
            len: size,
            disk_base: 0,
            all_present: true,
        };
        self.state = State::Data;
        Ok(())
    }

    fn footer_copy(&mut self) -> Result<(), Bad> {
        self.footer_copy.copy_from_slice(&self.buf);
        let footer = match Footer::parse(&self.footer_copy) {
            Ok(f) => f,
            Err(ParseError::Checksum) => {
                return Err(VhdError::Format(
                    "the footer copy's checksum does not match",
                ))
            }
            Err(ParseError::Cookie) => unreachable!("the cookie was checked"),
        };
        match footer.disk_type {
            DiskType::Dynamic => {}
            DiskType::Differencing => {
                return Err(VhdError::Unsupported(
                    "a differencing disk (it needs its parent): import a dynamic or fixed VHD",
                ))
            }
            DiskType::Fixed => {
                return Err(VhdError::Format(
                    "a fixed disk's footer at the start of the stream",
                ))
            }
            DiskType::Unknown(_) => return Err(VhdError::Format("unknown disk type")),
        }
        check_version(
            footer.file_format_version,
            "the file format version is not 1.x",
        )?;
        let size = footer.current_size;
        if !size.is_multiple_of(SECTOR) {
            return Err(VhdError::Format(
                "the virtual size is not a multiple of 512",
            ));
        }
        if size > self.limits.max_virtual_size {
            return Err(VhdError::TooLarge("the virtual size is above the limit"));
        }
        let header = footer.data_offset;
        let end = self.stream_len - FOOTER_LEN;
        if header < FOOTER_LEN || header > end || end - header < HEADER_LEN {
            return Err(VhdError::Format("the dynamic header is outside the stream"));
        }
        self.kind = Some(Kind::Dynamic);
        self.header_offset = header;
        self.current_size = size;
        self.collect_at(header, HEADER_SIZE, State::Header);
        Ok(())
    }

    fn header(&mut self) -> Result<(), Bad> {
        let mut b = [0; HEADER_SIZE];
        b.copy_from_slice(&self.buf);
        let h = match DynamicHeader::parse(&b) {
            Ok(h) => h,
            Err(ParseError::Cookie) => {
                return Err(VhdError::Format(
                    "no dynamic header (\"cxsparse\") at the footer's data offset",
                ))
            }
            Err(ParseError::Checksum) => {
                return Err(VhdError::Format(
                    "the dynamic header's checksum does not match",
                ))
            }
        };
        check_version(h.header_version, "the dynamic header version is not 1.x")?;
        if !h.block_size.is_power_of_two() {
            return Err(VhdError::Format("the block size is not a power of two"));
        }
        if !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&h.block_size) {
            return Err(VhdError::Unsupported(
                "a block size below 4 KiB or above 16 MiB",
            ));
        }
        if h.max_table_entries > self.limits.max_bat_entries {
            return Err(VhdError::TooLarge("more BAT entries than the limit"));
        }
        let size = self.current_size;
        if u64::from(h.max_table_entries) * u64::from(h.block_size) < size {
            return Err(VhdError::Format("the BAT does not cover the virtual size"));
        }
        let bat = h.table_offset;
        let bat_len = bat_bytes(h.max_table_entries);
        let end = self.stream_len - FOOTER_LEN;
        if bat > end || end - bat < bat_len {
            return Err(VhdError::Format("the BAT reaches past the footer"));
        }
        let header_end = self.header_offset + HEADER_LEN;
        if bat < header_end {
            if overlaps(bat, bat_len, 0, FOOTER_LEN)
                || overlaps(bat, bat_len, self.header_offset, HEADER_LEN)
            {
                return Err(VhdError::Format(
                    "the BAT overlaps the header or the footer copy",
                ));
            }
            return Err(VhdError::Unsupported(
                "the BAT before the dynamic header (a stream is read once, front to back)",
            ));
        }
        let mut blocks = Vec::new();
        if blocks
            .try_reserve_exact(h.max_table_entries as usize)
            .is_err()
        {
            return Err(VhdError::NoMemory);
        }
        self.blocks = blocks;
        self.block_size = h.block_size;
        self.table_offset = bat;
        self.max_table_entries = h.max_table_entries;
        self.virtual_size = Some(size);
        self.bat_read = 0;
        self.next_bat_entry()
    }

    /// Collects the next BAT entry, or, after the last, sorts the blocks.
    fn next_bat_entry(&mut self) -> Result<(), Bad> {
        if self.bat_read < self.max_table_entries {
            let at = self.table_offset + 4 * u64::from(self.bat_read);
            self.collect_at(at, 4, State::Bat);
            return Ok(());
        }
        self.blocks.sort_unstable();
        let span = bitmap_bytes(self.block_size) + u64::from(self.block_size);
        for pair in self.blocks.windows(2) {
            if (pair[0] >> 32) * SECTOR + span > (pair[1] >> 32) * SECTOR {
                return Err(VhdError::Format("two blocks overlap"));
            }
        }
        self.next_block = 0;
        self.next_block_or_footer();
        Ok(())
    }

    fn bat_entry(&mut self) -> Result<(), Bad> {
        let entry = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        let index = self.bat_read;
        self.bat_read += 1;
        if entry != BAT_UNUSED {
            let block = u64::from(self.block_size);
            if u64::from(index) * block >= self.virtual_size.expect("known") {
                return Err(VhdError::Format("a block past the virtual size is present"));
            }
            let start = u64::from(entry) * SECTOR;
            let span = bitmap_bytes(self.block_size) + block;
            let bat_end = self.table_offset + bat_bytes(self.max_table_entries);
            if start < bat_end {
                if overlaps(start, span, 0, FOOTER_LEN)
                    || overlaps(start, span, self.header_offset, HEADER_LEN)
                    || overlaps(
                        start,
                        span,
                        self.table_offset,
                        bat_bytes(self.max_table_entries),
                    )
                {
                    return Err(VhdError::Format("a block overlaps the header or the BAT"));
                }
                return Err(VhdError::Unsupported(
                    "a block before the BAT (a stream is read once, front to back)",
                ));
            }
            if start + span > self.stream_len - FOOTER_LEN {
                return Err(VhdError::Format("a block reaches past the footer"));
            }
            // Room reserved for every entry in header().
            self.blocks.push(u64::from(entry) << 32 | u64::from(index));
        }
        self.next_bat_entry()
    }

    fn next_block_or_footer(&mut self) {
        if let Some(&b) = self.blocks.get(self.next_block) {
            let start = (b >> 32) * SECTOR;
            self.collect_at(start, bitmap_bytes(self.block_size) as usize, State::Bitmap);
        } else {
            self.collect_at(self.stream_len - FOOTER_LEN, FOOTER_SIZE, State::Footer);
        }
    }

    fn fixed_footer(&mut self) -> Result<(), Bad> {
        let mut b = [0; FOOTER_SIZE];
        b.copy_from_slice(&self.buf);
        let footer = match Footer::parse(&b) {
            Ok(f) => f,
            Err(ParseError::Cookie) => {
                return Err(VhdError::Format(
                    "no footer (\"conectix\") in the last 512 bytes",
                ))
            }
            Err(ParseError::Checksum) => {
                return Err(VhdError::Format("the footer's checksum does not match"))
            }
        };
        match footer.disk_type {
            DiskType::Fixed => {}
            DiskType::Dynamic | DiskType::Differencing => {
                return Err(VhdError::Format(
                    "the footer is not a fixed disk's, and there is no footer copy at the start",
                ))
            }
            DiskType::Unknown(_) => return Err(VhdError::Format("unknown disk type")),
        }
        check_version(
            footer.file_format_version,
            "the file format version is not 1.x",
        )?;
        if footer.current_size != self.stream_len - FOOTER_LEN {
            return Err(VhdError::Format(
                "the footer's size is not the length of the data",
            ));
        }
        if footer.current_size > self.limits.max_virtual_size {
            return Err(VhdError::TooLarge("the virtual size is above the limit"));
        }
        self.kind = Some(Kind::Fixed);
        self.virtual_size = Some(footer.current_size);
        self.state = State::Done;
        Ok(())
    }

    /// Whether sector `s` of the region is data the sink gets.
    fn wanted(&self, s: u64) -> bool {
        let r = &self.region;
        if r.disk_base + s * SECTOR >= self.virtual_size.unwrap_or(r.len) {
            return false;
        }
        if r.all_present {
            return true;
        }
        // MSB first: "bit 7 of byte 0 is sector 0" (the spec's example).
        let byte = self.buf[(s / 8) as usize];
        byte >> (7 - s % 8) & 1 == 1
    }

    /// Passes data bytes of the region; returns how many were used.
    fn data<E>(&mut self, bytes: &[u8], sink: &mut Sink<'_, E>) -> Result<usize, VhdError<E>> {
        let end = self.region.file_start + self.region.len;
        let avail = (end - self.pos).min(bytes.len() as u64) as usize;
        let mut used = 0;
        while used < avail {
            let r = self.pos - self.region.file_start;
            let s = r / SECTOR;
            let within = (r % SECTOR) as usize;
            let rest = &bytes[used..avail];
            let n;
            if within != 0 || rest.len() < SECTOR_LEN {
                // A sector that straddles calls: through `partial`.
                n = (SECTOR_LEN - within).min(rest.len());
                let wanted = self.wanted(s);
                if wanted {
                    self.partial[within..within + n].copy_from_slice(&rest[..n]);
                }
                if wanted && within + n == SECTOR_LEN {
                    let at = self.region.disk_base + s * SECTOR;
                    sink(at, &self.partial).map_err(VhdError::Sink)?;
                    self.data_bytes += SECTOR;
                }
            } else {
                // Whole sectors: a run of present ones straight from `bytes`.
                let whole = (rest.len() / SECTOR_LEN) as u64;
                let first = self.wanted(s);
                let limit = if first {
                    whole.min((MAX_SINK_LEN / SECTOR_LEN) as u64)
                } else {
                    whole
                };
                let mut k = 1;
                while k < limit && self.wanted(s + k) == first {
                    k += 1;
                }
                n = (k * SECTOR) as usize;
                if first {
                    let at = self.region.disk_base + s * SECTOR;
                    sink(at, &rest[..n]).map_err(VhdError::Sink)?;
                    self.data_bytes += n as u64;
                }
            }
            self.pos += n as u64;
            used += n;
        }
        if self.pos == end {
            match self.kind {
                Some(Kind::Fixed) => self.collect_at(
                    self.stream_len - FOOTER_LEN,
                    FOOTER_SIZE,
                    State::FixedFooter,
                ),
                _ => {
                    self.next_block += 1;
                    self.next_block_or_footer();
                }
            }
        }
        Ok(used)
    }
}

fn check_version(v: u32, what: &'static str) -> Result<(), Bad> {
    if v >> 16 != 1 {
        return Err(VhdError::Unsupported(what));
    }
    Ok(())
}

fn too_short<E>() -> VhdError<E> {
    VhdError::Format("shorter than a VHD footer (512 bytes)")
}

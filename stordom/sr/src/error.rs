//! What can go wrong.

use crate::dev::DevError;

/// A metadata block failed a check: which block, and what was wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Corruption {
    /// The block holding the bad metadata.
    pub block: u64,
    /// What was wrong with it.
    pub what: &'static str,
}

/// An SR operation's failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The device failed; the SR is read-only from now on.
    Device(DevError),
    /// Metadata is corrupt; the SR is read-only from now on.
    Corrupt(Corruption),
    /// The SR is read-only after an earlier corruption or device failure.
    ReadOnly,
    /// No VDI with that uuid.
    NotFound,
    /// A VDI with that uuid exists already.
    Exists,
    /// [`crate::budget::MAX_VDIS`] VDIs exist already.
    TooManyVdis,
    /// No free cluster or metadata block.
    NoSpace,
    /// Past the end of the VDI or the log.
    OutOfRange,
    /// Not whole sectors, a nil uuid, or a size not a multiple of 512.
    Invalid,
    /// The VDI is a read-only snapshot.
    VdiReadOnly,
    /// Larger than [`crate::budget::MAX_VDI_SIZE`].
    TooLarge,
    /// Shrinking a VDI is refused (as xapi refuses it).
    Shrink,
    /// The log would pass [`crate::budget::MAX_LOG_BYTES`].
    LogFull,
    /// A block is shared by 65535 owners already.
    TooShared,
    /// Memory for the result could not be reserved.
    NoMemory,
}

impl From<Corruption> for Error {
    fn from(c: Corruption) -> Error {
        Error::Corrupt(c)
    }
}

/// Why `Sr::open` failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// Neither superblock slot holds an SR superblock.
    NotFormatted,
    /// The device is too small for an SR.
    TooSmall,
    /// The superblock or a structure read at open failed a check (the
    /// block and what), or the device failed.
    Failed(Error),
}

//! The permission letter of a `<letter><domid>` entry (`n0`, `r1`, `w2`,
//! `b3`), one type for both ends.
//!
//! Read first: docs/misc/xenstore.txt "Permissions". The letters are
//! xen-abi's; the engine adds the rules, the xenbus client the list parsing.

use xen_abi::io::xs_wire::{XS_PERM_BOTH, XS_PERM_NONE, XS_PERM_READ, XS_PERM_WRITE};

/// What a permission entry grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// `n`: nothing (for the owner entry: nobody else may do anything).
    None,
    /// `r`: read.
    Read,
    /// `w`: write.
    Write,
    /// `b`: read and write.
    Both,
}

impl Access {
    /// The wire letter.
    pub const fn letter(self) -> u8 {
        match self {
            Access::None => XS_PERM_NONE,
            Access::Read => XS_PERM_READ,
            Access::Write => XS_PERM_WRITE,
            Access::Both => XS_PERM_BOTH,
        }
    }

    /// Decode a wire letter; `None` for anything else.
    pub const fn from_letter(letter: u8) -> Option<Access> {
        match letter {
            XS_PERM_NONE => Some(Access::None),
            XS_PERM_READ => Some(Access::Read),
            XS_PERM_WRITE => Some(Access::Write),
            XS_PERM_BOTH => Some(Access::Both),
            _ => None,
        }
    }

    /// Whether this access allows reading.
    pub const fn can_read(self) -> bool {
        matches!(self, Access::Read | Access::Both)
    }

    /// Whether this access allows writing.
    pub const fn can_write(self) -> bool {
        matches!(self, Access::Write | Access::Both)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_round_trip() {
        for a in [Access::None, Access::Read, Access::Write, Access::Both] {
            assert_eq!(Access::from_letter(a.letter()), Some(a));
        }
        assert_eq!(Access::from_letter(b'x'), None);
        assert_eq!(Access::Both.letter(), b'b');
    }
}

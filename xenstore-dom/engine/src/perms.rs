//! Node permissions: owner plus ACL, in the `n0`/`r1`/`w2`/`b3` string form.
//!
//! Read first: docs/misc/xenstore.txt "Permissions". The first entry names
//! the owner, who always has full access, and its letter is the access of
//! every domain without an entry of its own. Privileged connections (dom0
//! and a designated xenstore domain) have full access everywhere; a domain
//! given a target by SET_TARGET has the target's rights too.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use crate::error::{XsError, XsResult};

pub use xcp_xs_wire::Access;

/// One entry: a domid and its access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Perm {
    /// The domain this entry is about.
    pub domid: u16,
    /// What it may do.
    pub access: Access,
}

impl Perm {
    /// Parse one `<letter><domid>` string.
    pub fn parse(raw: &[u8]) -> XsResult<Perm> {
        let (&letter, digits) = raw.split_first().ok_or(XsError::Einval)?;
        let access = Access::from_letter(letter).ok_or(XsError::Einval)?;
        if digits.is_empty() || digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
            return Err(XsError::Einval);
        }
        let domid = digits
            .iter()
            .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'));
        let domid = u16::try_from(domid).map_err(|_| XsError::Einval)?;
        Ok(Perm { domid, access })
    }
}

/// What a connection may do with a node, after applying the rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rights {
    /// May read the value, children and permissions.
    pub read: bool,
    /// May write, create children, remove.
    pub write: bool,
    /// May change the permissions.
    pub owner: bool,
}

impl Rights {
    /// Full rights, as a privileged connection or the owner has.
    pub const ALL: Rights = Rights {
        read: true,
        write: true,
        owner: true,
    };
}

/// Who is asking: the caller's domid, its SET_TARGET target and privilege.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The caller's domid.
    pub domid: u16,
    /// The domain it acts for (device model of a guest), if any.
    pub target: Option<u16>,
    /// dom0 or the designated xenstore domain.
    pub privileged: bool,
}

/// A node's permission list: never empty, the first entry is the owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Perms(Vec<Perm>);

impl Perms {
    /// Owned by `domid` with no access for others (`n<domid>`).
    pub fn owned_by(domid: u16) -> Perms {
        Perms(alloc::vec![Perm {
            domid,
            access: Access::None
        }])
    }

    /// Build from entries; `None` if empty.
    pub fn new(entries: Vec<Perm>) -> Option<Perms> {
        if entries.is_empty() {
            None
        } else {
            Some(Perms(entries))
        }
    }

    /// Parse the SET_PERMS argument strings (one or more).
    pub fn parse<'a>(args: impl Iterator<Item = &'a [u8]>) -> XsResult<Perms> {
        let entries = args.map(Perm::parse).collect::<XsResult<Vec<_>>>()?;
        Perms::new(entries).ok_or(XsError::Einval)
    }

    /// The owner's domid.
    pub fn owner(&self) -> u16 {
        self.0[0].domid
    }

    /// All entries, owner first.
    pub fn entries(&self) -> &[Perm] {
        &self.0
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never true (kept for clippy's `len_without_is_empty`).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Change the owner, keeping the default access letter.
    pub fn set_owner(&mut self, domid: u16) {
        self.0[0].domid = domid;
    }

    /// Remove ACL entries (not the owner) naming `domid`; true if any went.
    pub fn forget(&mut self, domid: u16) -> bool {
        let before = self.0.len();
        let owner = self.0[0];
        let mut rest: Vec<Perm> = self.0[1..]
            .iter()
            .copied()
            .filter(|p| p.domid != domid)
            .collect();
        rest.insert(0, owner);
        self.0 = rest;
        before != self.0.len()
    }

    /// The GET_PERMS reply: each entry as a string followed by a nul.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut s = String::new();
        for p in &self.0 {
            // Writing to a String cannot fail.
            let _ = write!(s, "{}{}\0", char::from(p.access.letter()), p.domid);
        }
        s.into_bytes()
    }

    /// What `caller` may do here (C xenstored's `perm_for_conn`).
    pub fn rights(&self, caller: &Caller) -> Rights {
        if caller.privileged {
            return Rights::ALL;
        }
        let is_me = |d: u16| d == caller.domid || caller.target == Some(d);
        if is_me(self.owner()) {
            return Rights::ALL;
        }
        let access = self.0[1..]
            .iter()
            .find(|p| is_me(p.domid))
            .map_or(self.0[0].access, |p| p.access);
        Rights {
            read: access.can_read(),
            write: access.can_write(),
            owner: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(domid: u16) -> Caller {
        Caller {
            domid,
            target: None,
            privileged: domid == 0,
        }
    }

    fn perms(s: &[&[u8]]) -> Perms {
        Perms::parse(s.iter().copied()).unwrap()
    }

    #[test]
    fn parse_and_format() {
        let p = perms(&[b"n0", b"r5", b"w6", b"b65535"]);
        assert_eq!(p.to_wire(), b"n0\0r5\0w6\0b65535\0");
        for bad in [&b""[..], b"x1", b"r", b"r-1", b"r65536", b"r1a", b"r000001"] {
            assert_eq!(Perm::parse(bad), Err(XsError::Einval), "{bad:?}");
        }
        assert_eq!(Perms::parse(core::iter::empty()), Err(XsError::Einval));
    }

    #[test]
    fn rights_table() {
        let p = perms(&[b"r1", b"w2", b"n3"]);
        // (caller, read, write, owner)
        let rows = [
            (caller(0), true, true, true),
            (caller(1), true, true, true),
            (caller(2), false, true, false),
            (caller(3), false, false, false),
            (caller(4), true, false, false), // default letter of the owner entry
        ];
        for (c, r, w, o) in rows {
            assert_eq!(
                p.rights(&c),
                Rights {
                    read: r,
                    write: w,
                    owner: o
                },
                "{c:?}"
            );
        }
        let dm = Caller {
            domid: 9,
            target: Some(1),
            privileged: false,
        };
        assert_eq!(p.rights(&dm), Rights::ALL);
        let dm2 = Caller {
            domid: 9,
            target: Some(2),
            privileged: false,
        };
        assert!(p.rights(&dm2).write && !p.rights(&dm2).read);
    }

    #[test]
    fn forget_keeps_owner() {
        let mut p = perms(&[b"b7", b"r7", b"r8"]);
        assert!(p.forget(7));
        assert_eq!(p.to_wire(), b"b7\0r8\0");
        assert!(!p.forget(9));
    }
}

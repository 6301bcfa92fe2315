//! Xenstore errors: a small `Copy` enum mapped 1:1 to Xen's errno strings.
//!
//! Read first: xs_wire.h `xsd_errors`. The string, not a number, goes on the
//! wire in an ERROR reply (`E<something>|`).

/// An error answered to a request, sent as its errno name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XsError {
    /// Invalid argument (bad path, bad payload, bad domid...).
    Einval,
    /// Permission denied.
    Eacces,
    /// Node already exists.
    Eexist,
    /// Is a directory.
    Eisdir,
    /// No such node, transaction or domain.
    Enoent,
    /// Out of memory.
    Enomem,
    /// A per-domain quota (nodes, value size, transactions, perms) is exhausted.
    Enospc,
    /// I/O error.
    Eio,
    /// Directory not empty.
    Enotempty,
    /// Message type not implemented.
    Enosys,
    /// Read-only.
    Erofs,
    /// Busy (e.g. INTRODUCE of a domid already introduced with another ring).
    Ebusy,
    /// Transaction conflict: retry.
    Eagain,
    /// Already connected.
    Eisconn,
    /// Too big (reply too large, too many watches).
    E2big,
    /// Operation not permitted (e.g. a guest changing a node's owner).
    Eperm,
    /// Quota exceeded (oxenstored's name; C xenstored answers ENOSPC/E2BIG).
    Equota,
}

impl XsError {
    /// The errno name sent on the wire, without the trailing nul.
    pub const fn as_str(self) -> &'static str {
        match self {
            XsError::Einval => "EINVAL",
            XsError::Eacces => "EACCES",
            XsError::Eexist => "EEXIST",
            XsError::Eisdir => "EISDIR",
            XsError::Enoent => "ENOENT",
            XsError::Enomem => "ENOMEM",
            XsError::Enospc => "ENOSPC",
            XsError::Eio => "EIO",
            XsError::Enotempty => "ENOTEMPTY",
            XsError::Enosys => "ENOSYS",
            XsError::Erofs => "EROFS",
            XsError::Ebusy => "EBUSY",
            XsError::Eagain => "EAGAIN",
            XsError::Eisconn => "EISCONN",
            XsError::E2big => "E2BIG",
            XsError::Eperm => "EPERM",
            XsError::Equota => "EQUOTA",
        }
    }

    /// Every variant, for tables and tests.
    pub const ALL: [XsError; 17] = [
        XsError::Einval,
        XsError::Eacces,
        XsError::Eexist,
        XsError::Eisdir,
        XsError::Enoent,
        XsError::Enomem,
        XsError::Enospc,
        XsError::Eio,
        XsError::Enotempty,
        XsError::Enosys,
        XsError::Erofs,
        XsError::Ebusy,
        XsError::Eagain,
        XsError::Eisconn,
        XsError::E2big,
        XsError::Eperm,
        XsError::Equota,
    ];

    /// Parse an errno name (as a client would), `None` if unknown.
    pub fn from_name(name: &str) -> Option<XsError> {
        XsError::ALL.iter().copied().find(|e| e.as_str() == name)
    }
}

/// Result of an engine operation.
pub type XsResult<T> = Result<T, XsError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        for e in XsError::ALL {
            assert_eq!(XsError::from_name(e.as_str()), Some(e));
            assert!(e.as_str().starts_with('E'));
        }
        assert_eq!(XsError::from_name("EWHAT"), None);
    }

    #[test]
    fn xs_wire_names() {
        // The first entries of xs_wire.h's xsd_errors table.
        assert_eq!(XsError::Einval.as_str(), "EINVAL");
        assert_eq!(XsError::Eagain.as_str(), "EAGAIN");
        assert_eq!(XsError::E2big.as_str(), "E2BIG");
    }
}

//! Client errors: xenstored's errno names, and what can go wrong locally.
//!
//! Read first: xs_wire.h `xsd_errors`. xenstored answers a failed request
//! with an XS_ERROR message whose payload is the errno *name* ("ENOENT\0");
//! [`XsErrno`] maps those names 1:1 and keeps unknown names as `Unknown`
//! (totality: a server may invent names, e.g. oxenstored's EQUOTA).

/// An errno name from an XS_ERROR reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XsErrno {
    /// EINVAL.
    Einval,
    /// EACCES.
    Eacces,
    /// EEXIST.
    Eexist,
    /// EISDIR.
    Eisdir,
    /// ENOENT.
    Enoent,
    /// ENOMEM.
    Enomem,
    /// ENOSPC: a quota (nodes, size, transactions, perms) is exhausted.
    Enospc,
    /// EIO.
    Eio,
    /// ENOTEMPTY.
    Enotempty,
    /// ENOSYS: the server does not implement the request type.
    Enosys,
    /// EROFS.
    Erofs,
    /// EBUSY.
    Ebusy,
    /// EAGAIN: a transaction conflicted; retry it.
    Eagain,
    /// EISCONN.
    Eisconn,
    /// E2BIG: reply too large, or too many watches.
    E2big,
    /// EPERM.
    Eperm,
    /// EQUOTA (oxenstored's quota error).
    Equota,
    /// A name this client does not know.
    Unknown,
}

impl XsErrno {
    /// Every known name, in xs_wire.h order (EQUOTA last).
    pub const ALL: [XsErrno; 17] = [
        XsErrno::Einval,
        XsErrno::Eacces,
        XsErrno::Eexist,
        XsErrno::Eisdir,
        XsErrno::Enoent,
        XsErrno::Enomem,
        XsErrno::Enospc,
        XsErrno::Eio,
        XsErrno::Enotempty,
        XsErrno::Enosys,
        XsErrno::Erofs,
        XsErrno::Ebusy,
        XsErrno::Eagain,
        XsErrno::Eisconn,
        XsErrno::E2big,
        XsErrno::Eperm,
        XsErrno::Equota,
    ];

    /// The errno name as sent on the wire (without the nul).
    pub const fn as_str(self) -> &'static str {
        match self {
            XsErrno::Einval => "EINVAL",
            XsErrno::Eacces => "EACCES",
            XsErrno::Eexist => "EEXIST",
            XsErrno::Eisdir => "EISDIR",
            XsErrno::Enoent => "ENOENT",
            XsErrno::Enomem => "ENOMEM",
            XsErrno::Enospc => "ENOSPC",
            XsErrno::Eio => "EIO",
            XsErrno::Enotempty => "ENOTEMPTY",
            XsErrno::Enosys => "ENOSYS",
            XsErrno::Erofs => "EROFS",
            XsErrno::Ebusy => "EBUSY",
            XsErrno::Eagain => "EAGAIN",
            XsErrno::Eisconn => "EISCONN",
            XsErrno::E2big => "E2BIG",
            XsErrno::Eperm => "EPERM",
            XsErrno::Equota => "EQUOTA",
            XsErrno::Unknown => "E?",
        }
    }

    /// Decode an XS_ERROR payload: the name up to the first nul (or the
    /// whole payload if there is none). Never fails.
    pub fn from_payload(payload: &[u8]) -> XsErrno {
        let name = payload.split(|b| *b == 0).next().unwrap_or(&[]);
        XsErrno::ALL
            .iter()
            .copied()
            .find(|e| e.as_str().as_bytes() == name)
            .unwrap_or(XsErrno::Unknown)
    }
}

/// Why a reply could not be understood: the server broke the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Malformed {
    /// A reply's `len` exceeded XENSTORE_PAYLOAD_MAX: the stream is lost.
    TooLong,
    /// A reply of another type than its request (and not XS_ERROR).
    WrongType,
    /// A reply's `tx_id` differs from its request's.
    WrongTxId,
    /// A payload that does not fit the request (not "OK", a bad number,
    /// a bad permission, no nul where one is required).
    BadPayload,
}

/// What a request (or the client) can fail with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// xenstored answered XS_ERROR with this name.
    Xs(XsErrno),
    /// The reply or the stream was malformed.
    Malformed(Malformed),
    /// A ring index pair was out of range (the peer corrupted the page),
    /// or the server set the page's `error` field; the client is stopped.
    Ring,
    /// The client stopped after a broken stream or ring; nothing more
    /// will be sent or received on this connection.
    Closed,
    /// A path that is empty, too long or has characters outside
    /// `[A-Za-z0-9-/_@]`; nothing was sent.
    InvalidPath,
    /// An argument (token, value, permission list) that cannot be encoded:
    /// a nul inside a string, or a payload over XENSTORE_PAYLOAD_MAX.
    InvalidArgument,
    /// The client's own limit of requests in flight is reached; take
    /// replies first.
    Busy,
    /// The wait for the event channel gave up (from a [`crate::Wait`]).
    Timeout,
    /// A transaction still conflicted after the retry limit.
    Conflict,
}

impl From<XsErrno> for Error {
    fn from(e: XsErrno) -> Error {
        Error::Xs(e)
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Xs(e) => f.write_str(e.as_str()),
            Error::Malformed(m) => write!(f, "malformed reply: {m:?}"),
            Error::Ring => f.write_str("xenstore ring corrupted"),
            Error::Closed => f.write_str("xenstore connection closed"),
            Error::InvalidPath => f.write_str("invalid xenstore path"),
            Error::InvalidArgument => f.write_str("invalid argument"),
            Error::Busy => f.write_str("too many requests in flight"),
            Error::Timeout => f.write_str("timed out waiting for xenstored"),
            Error::Conflict => f.write_str("transaction kept conflicting"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for e in XsErrno::ALL {
            let mut payload = alloc::vec::Vec::from(e.as_str().as_bytes());
            payload.push(0);
            assert_eq!(XsErrno::from_payload(&payload), e);
            assert_eq!(XsErrno::from_payload(e.as_str().as_bytes()), e);
        }
    }

    #[test]
    fn unknown_and_hostile_names() {
        assert_eq!(XsErrno::from_payload(b""), XsErrno::Unknown);
        assert_eq!(XsErrno::from_payload(b"EWHAT\0"), XsErrno::Unknown);
        assert_eq!(XsErrno::from_payload(b"ENOENTX\0"), XsErrno::Unknown);
        assert_eq!(XsErrno::from_payload(b"\0ENOENT\0"), XsErrno::Unknown);
        assert_eq!(XsErrno::from_payload(b"EAGAIN\0junk"), XsErrno::Eagain);
    }
}

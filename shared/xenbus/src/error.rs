//! Client errors: xenstored's errno names, and what can go wrong locally.
//!
//! Read first: xs_wire.h `xsd_errors`. xenstored answers a failed request
//! with an XS_ERROR message whose payload is the errno *name* ("ENOENT\0");
//! [`XsErrno`] (`xcp-xs-wire`'s table) maps those names 1:1 and
//! [`Error::XsUnknown`] keeps the rest (totality: a server may invent
//! names).

/// An errno name from an XS_ERROR reply: `xcp-xs-wire`'s table, shared
/// with the engine. A name it does not know is [`Error::XsUnknown`].
pub use xcp_xs_wire::Errno as XsErrno;

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
    /// xenstored answered XS_ERROR with a name this client does not know.
    XsUnknown,
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

impl Error {
    /// Decode an XS_ERROR payload: the name up to the first nul (or the
    /// whole payload if there is none). Never fails: a name outside the
    /// table is [`Error::XsUnknown`].
    pub fn from_xs_payload(payload: &[u8]) -> Error {
        XsErrno::from_payload(payload).map_or(Error::XsUnknown, Error::Xs)
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Xs(e) => f.write_str(e.as_str()),
            Error::XsUnknown => f.write_str("E?"),
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
            assert_eq!(Error::from_xs_payload(&payload), Error::Xs(e));
            assert_eq!(Error::from_xs_payload(e.as_str().as_bytes()), Error::Xs(e));
        }
    }

    #[test]
    fn unknown_and_hostile_names() {
        assert_eq!(Error::from_xs_payload(b""), Error::XsUnknown);
        assert_eq!(Error::from_xs_payload(b"EWHAT\0"), Error::XsUnknown);
        assert_eq!(Error::from_xs_payload(b"ENOENTX\0"), Error::XsUnknown);
        assert_eq!(Error::from_xs_payload(b"\0ENOENT\0"), Error::XsUnknown);
        assert_eq!(
            Error::from_xs_payload(b"EAGAIN\0junk"),
            Error::Xs(XsErrno::Eagain)
        );
        assert_eq!(alloc::format!("{}", Error::XsUnknown), "E?");
    }
}

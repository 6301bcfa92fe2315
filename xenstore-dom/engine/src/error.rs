//! Xenstore errors: a small `Copy` enum mapped 1:1 to Xen's errno strings.
//!
//! Read first: xs_wire.h `xsd_errors`. The string, not a number, goes on the
//! wire in an ERROR reply (`E<something>|`). The table and the name mapping
//! are `xcp-xs-wire`'s [`Errno`](xcp_xs_wire::Errno), shared with the
//! xenbus client; the engine answers with it under its own name.

/// An error answered to a request, sent as its errno name.
pub use xcp_xs_wire::Errno as XsError;

/// Result of an engine operation.
pub type XsResult<T> = Result<T, XsError>;

//! HTTP/1.1 request framing and response writing (sans-IO).
//!
//! Read first: RFC 9112. A request is parsed with `httparse` from the bytes a
//! connection has buffered so far: `NeedMore` until the head and the whole
//! `Content-Length` body are present, `Bad(status)` for anything refused.
//! Header block and body sizes are bounded; chunked bodies are refused (411).

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write;

/// Largest request head (request line + headers), bytes.
pub const MAX_HEAD: usize = 16 * 1024;
/// Most headers in a request.
pub const MAX_HEADERS: usize = 64;
/// Largest request body, bytes.
pub const MAX_BODY: usize = 4 << 20;

/// A complete request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Method, e.g. `POST`.
    pub method: String,
    /// Path, e.g. `/jsonrpc`.
    pub path: String,
    /// Lower-cased `Content-Type` (without parameters), if any.
    pub content_type: Option<String>,
    /// The body.
    pub body: Vec<u8>,
    /// Whether the connection stays open after the reply.
    pub keep_alive: bool,
    /// Bytes of the buffer this request used.
    pub consumed: usize,
}

/// The result of parsing a buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Not a whole request yet.
    NeedMore,
    /// A whole request.
    Request(Request),
    /// Refused with this status; the connection is closed after the reply.
    Bad(u16),
}

/// Parses the first request in `buf`.
pub fn parse(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > MAX_HEAD {
                Parsed::Bad(431)
            } else {
                Parsed::NeedMore
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Parsed::Bad(431),
        Err(_) => return Parsed::Bad(400),
    };
    if head_len > MAX_HEAD {
        return Parsed::Bad(431);
    }
    let version = req.version.unwrap_or(1);
    let mut content_length: Option<usize> = None;
    let mut keep_alive = version >= 1;
    let mut content_type = None;
    for h in req.headers.iter() {
        let value = core::str::from_utf8(h.value).unwrap_or("").trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            let Ok(n) = value.parse::<usize>() else {
                return Parsed::Bad(400);
            };
            if content_length.is_some_and(|m| m != n) {
                return Parsed::Bad(400);
            }
            content_length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Parsed::Bad(411);
        } else if h.name.eq_ignore_ascii_case("connection") {
            if value.eq_ignore_ascii_case("close") {
                keep_alive = false;
            } else if value.eq_ignore_ascii_case("keep-alive") {
                keep_alive = true;
            }
        } else if h.name.eq_ignore_ascii_case("content-type") {
            let t = value.split(';').next().unwrap_or("").trim();
            content_type = Some(t.to_ascii_lowercase());
        }
    }
    let len = content_length.unwrap_or(0);
    if len > MAX_BODY {
        return Parsed::Bad(413);
    }
    if buf.len() - head_len < len {
        return Parsed::NeedMore;
    }
    Parsed::Request(Request {
        method: req.method.unwrap_or("").to_string(),
        path: req.path.unwrap_or("").to_string(),
        content_type,
        body: buf[head_len..head_len + len].to_vec(),
        keep_alive,
        consumed: head_len + len,
    })
}

/// The reason phrase of a status code.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// Writes a whole response.
pub fn response(status: u16, content_type: &str, body: &[u8], keep_alive: bool) -> Vec<u8> {
    let mut head = String::new();
    let _ = write!(
        head,
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
        status,
        reason(status),
        content_type,
        body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    );
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn whole_request_and_pipelining() {
        let two = b"POST /jsonrpc HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Type: application/json; charset=utf-8\r\n\r\n{}GET / HTTP/1.1\r\n\r\n";
        let Parsed::Request(r) = parse(two) else {
            panic!("expected a request")
        };
        assert_eq!(r.body, b"{}");
        assert_eq!(r.content_type.as_deref(), Some("application/json"));
        assert!(r.keep_alive);
        let Parsed::Request(r2) = parse(&two[r.consumed..]) else {
            panic!("expected a second request")
        };
        assert_eq!(r2.method, "GET");
    }

    #[test]
    fn partial_and_refused() {
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab"),
            Parsed::NeedMore
        );
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n"),
            Parsed::Bad(413)
        );
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Parsed::Bad(411)
        );
        assert_eq!(parse(b"\x00\x01 garbage\r\n\r\n"), Parsed::Bad(400));
        let big = alloc::vec![b'a'; MAX_HEAD + 10];
        assert_eq!(parse(&big), Parsed::Bad(431));
        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.extend(alloc::vec![b'a'; MAX_HEAD + 10]);
        assert_eq!(parse(&long), Parsed::Bad(431));
        assert!(matches!(parse(b"GET / HTTP/1.0\r\n\r\n"), Parsed::Request(r) if !r.keep_alive));
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Parsed::Request(r) = parse(&bytes) {
                prop_assert!(r.consumed <= bytes.len());
            }
        }
    }
}

//! HTTP/1.1 request framing and response writing (sans-IO).
//!
//! Read first: RFC 9112. A request is parsed with `httparse` from the bytes a
//! connection has buffered so far: `NeedMore` until the head and the whole
//! `Content-Length` body are present, `Bad(status)` for anything refused.
//! Header block and body sizes are bounded; chunked bodies are decoded
//! under the same body bound (RFC 9112 §7.1), chunk extensions ignored.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write;

/// Largest request head (request line + headers), bytes.
pub const MAX_HEAD: usize = 16 * 1024;
/// Most headers in a request.
pub const MAX_HEADERS: usize = 64;
/// Largest request body, bytes: one call's arguments. A bigger one gets
/// 413. Bounded by dom0's memory (`budget::CALL_BYTES` holds three times
/// it while the call is decoded); bulk data goes through the HTTP handlers.
pub const MAX_BODY: usize = 1 << 20;

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
    /// The `Cookie` header, if any (the text console takes its session
    /// from it, as xapi does).
    pub cookie: Option<String>,
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

/// A request head, parsed before its body arrived (the transfer handlers
/// take their bodies as a stream, never whole: `transfer.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// Method, e.g. `PUT`.
    pub method: String,
    /// Target, e.g. `/import_raw_vdi?vdi=...`.
    pub path: String,
    /// Lower-cased `Content-Type` (without parameters), if any.
    pub content_type: Option<String>,
    /// `Content-Length`, if given.
    pub content_length: Option<u64>,
    /// `Transfer-Encoding: chunked`.
    pub chunked: bool,
    /// The `Cookie` header, if any.
    pub cookie: Option<String>,
    /// The `Authorization` header, if any (`Basic ...`: the `/rrd_updates`
    /// handler takes a user and password as xapi's handlers do).
    pub authorization: Option<String>,
    /// Whether the connection stays open after the reply.
    pub keep_alive: bool,
    /// `Expect: 100-continue` (RFC 9110 §10.1.1): the board sends
    /// [`CONTINUE`] once while the body is still incomplete.
    pub expect_continue: bool,
    /// Bytes the head takes.
    pub len: usize,
}

/// Parses the head at the start of `buf`: `Ok(None)` until it is whole,
/// `Err(status)` when refused.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, u16> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > MAX_HEAD {
                Err(431)
            } else {
                Ok(None)
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Err(431),
        Err(_) => return Err(400),
    };
    if head_len > MAX_HEAD {
        return Err(431);
    }
    let version = req.version.unwrap_or(1);
    let mut head = Head {
        method: req.method.unwrap_or("").to_string(),
        path: req.path.unwrap_or("").to_string(),
        content_type: None,
        content_length: None,
        chunked: false,
        cookie: None,
        authorization: None,
        keep_alive: version >= 1,
        expect_continue: false,
        len: head_len,
    };
    for h in req.headers.iter() {
        let value = core::str::from_utf8(h.value).unwrap_or("").trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            let Ok(n) = value.parse::<u64>() else {
                return Err(400);
            };
            if head.content_length.is_some_and(|m| m != n) {
                return Err(400);
            }
            head.content_length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Only `chunked` alone is understood (RFC 9112 §6.1).
            if !value.eq_ignore_ascii_case("chunked") {
                return Err(501);
            }
            head.chunked = true;
        } else if h.name.eq_ignore_ascii_case("connection") {
            if value.eq_ignore_ascii_case("close") {
                head.keep_alive = false;
            } else if value.eq_ignore_ascii_case("keep-alive") {
                head.keep_alive = true;
            }
        } else if h.name.eq_ignore_ascii_case("cookie") {
            head.cookie = Some(value.to_string());
        } else if h.name.eq_ignore_ascii_case("authorization") {
            head.authorization = Some(value.to_string());
        } else if h.name.eq_ignore_ascii_case("content-type") {
            let t = value.split(';').next().unwrap_or("").trim();
            head.content_type = Some(t.to_ascii_lowercase());
        } else if h.name.eq_ignore_ascii_case("expect") {
            head.expect_continue |= value.eq_ignore_ascii_case("100-continue");
        }
    }
    // RFC 9112 §6.3: a message with both is an error we refuse.
    if head.chunked && head.content_length.is_some() {
        return Err(400);
    }
    Ok(Some(head))
}

/// Parses the first request in `buf`.
pub fn parse(buf: &[u8]) -> Parsed {
    match parse_head(buf) {
        Ok(Some(head)) => parse_body(buf, &head),
        Ok(None) => Parsed::NeedMore,
        Err(status) => Parsed::Bad(status),
    }
}

/// Parses the body of the request whose head `buf` starts with.
pub fn parse_body(buf: &[u8], head: &Head) -> Parsed {
    let head_len = head.len;
    let request = |body: Vec<u8>, consumed: usize| {
        Parsed::Request(Request {
            method: head.method.clone(),
            path: head.path.clone(),
            content_type: head.content_type.clone(),
            body,
            cookie: head.cookie.clone(),
            keep_alive: head.keep_alive,
            consumed,
        })
    };
    if head.chunked {
        return match dechunk(&buf[head_len..]) {
            Chunked::NeedMore => Parsed::NeedMore,
            Chunked::Bad(s) => Parsed::Bad(s),
            Chunked::Done(body, used) => request(body, head_len + used),
        };
    }
    let len = head.content_length.unwrap_or(0);
    if len > MAX_BODY as u64 {
        return Parsed::Bad(413);
    }
    let len = len as usize;
    if buf.len() - head_len < len {
        return Parsed::NeedMore;
    }
    // The client chose the size: out of memory refuses the request.
    let mut body = Vec::new();
    if body.try_reserve_exact(len).is_err() {
        return Parsed::Bad(503);
    }
    body.extend_from_slice(&buf[head_len..head_len + len]);
    request(body, head_len + len)
}

enum Chunked {
    NeedMore,
    Bad(u16),
    Done(Vec<u8>, usize),
}

/// Longest chunk-size line (with extensions) accepted.
const MAX_CHUNK_LINE: usize = 1024;

fn line_at(buf: &[u8], pos: usize) -> Result<Option<(&[u8], usize)>, u16> {
    let rest = &buf[pos..];
    match rest.windows(2).position(|w| w == b"\r\n") {
        Some(i) if i <= MAX_CHUNK_LINE => Ok(Some((&rest[..i], pos + i + 2))),
        Some(_) => Err(400),
        None if rest.len() > MAX_CHUNK_LINE => Err(400),
        None => Ok(None),
    }
}

/// Decodes a chunked body from the bytes after the head.
fn dechunk(buf: &[u8]) -> Chunked {
    let mut body = Vec::new();
    let mut pos = 0usize;
    loop {
        let (line, next) = match line_at(buf, pos) {
            Ok(Some(x)) => x,
            Ok(None) => return Chunked::NeedMore,
            Err(s) => return Chunked::Bad(s),
        };
        let size_text = line.split(|b| *b == b';').next().unwrap_or(&[]);
        let size_text = core::str::from_utf8(size_text).unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            return Chunked::Bad(400);
        };
        pos = next;
        if size == 0 {
            // Trailer fields until an empty line; ignored.
            loop {
                match line_at(buf, pos) {
                    Ok(Some((l, n))) => {
                        pos = n;
                        if l.is_empty() {
                            return Chunked::Done(body, pos);
                        }
                        if pos > MAX_HEAD {
                            return Chunked::Bad(431);
                        }
                    }
                    Ok(None) => return Chunked::NeedMore,
                    Err(s) => return Chunked::Bad(s),
                }
            }
        }
        if size > MAX_BODY || body.len() + size > MAX_BODY {
            return Chunked::Bad(413);
        }
        if buf.len() - pos < size + 2 {
            return Chunked::NeedMore;
        }
        if &buf[pos + size..pos + size + 2] != b"\r\n" {
            return Chunked::Bad(400);
        }
        if body.try_reserve(size).is_err() {
            return Chunked::Bad(503);
        }
        body.extend_from_slice(&buf[pos..pos + size]);
        pos += size + 2;
    }
}

/// The interim response to `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The reason phrase of a status code.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        409 => "Conflict",
        500 => "Internal Server Error",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// Writes a response head for a body of `len` bytes.
pub fn head(status: u16, content_type: &str, len: usize, keep_alive: bool) -> Vec<u8> {
    let mut head = String::new();
    let _ = write!(
        head,
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
        status,
        reason(status),
        content_type,
        len,
        if keep_alive { "keep-alive" } else { "close" }
    );
    head.into_bytes()
}

/// Writes a whole response.
pub fn response(status: u16, content_type: &str, body: &[u8], keep_alive: bool) -> Vec<u8> {
    let mut out = head(status, content_type, body.len(), keep_alive);
    out.extend_from_slice(body);
    out
}

/// The user and password of an `Authorization: Basic <base64>` header
/// (RFC 7617); `None` for another scheme or bad base64 or UTF-8.
pub fn basic_credentials(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let mut bits: u32 = 0;
    let mut nbits = 0;
    let mut out = Vec::new();
    for c in encoded.trim().bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(v);
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    let text = String::from_utf8(out).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
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
            Parsed::NeedMore
        );
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"),
            Parsed::Bad(501)
        );
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n"),
            Parsed::Bad(400)
        );
        assert_eq!(parse(b"\x00\x01 garbage\r\n\r\n"), Parsed::Bad(400));
        let big = alloc::vec![b'a'; MAX_HEAD + 10];
        assert_eq!(parse(&big), Parsed::Bad(431));
        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.extend(alloc::vec![b'a'; MAX_HEAD + 10]);
        assert_eq!(parse(&long), Parsed::Bad(431));
        assert!(matches!(parse(b"GET / HTTP/1.0\r\n\r\n"), Parsed::Request(r) if !r.keep_alive));
    }

    /// A complete head that asks for `Expect: 100-continue`.
    fn expects_continue(buf: &[u8]) -> bool {
        matches!(parse_head(buf), Ok(Some(head)) if head.expect_continue)
    }

    #[test]
    fn expect_continue() {
        let head = b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n";
        assert!(expects_continue(head));
        assert_eq!(parse(head), Parsed::NeedMore);
        assert!(!expects_continue(
            b"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\n"
        ));
        assert!(!expects_continue(
            b"POST / HTTP/1.1\r\nExpect: 100-continue\r\n"
        ));
    }

    #[test]
    fn chunked_bodies() {
        let req = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: v\r\n\r\nNEXT";
        let Parsed::Request(r) = parse(req) else {
            panic!("expected a request")
        };
        assert_eq!(r.body, b"abcde");
        assert_eq!(&req[r.consumed..], b"NEXT");
        for cut in 0..req.len() - 4 {
            assert!(
                !matches!(parse(&req[..cut]), Parsed::Request(_)),
                "cut {cut}"
            );
        }
        let bad = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert_eq!(parse(bad), Parsed::Bad(400));
        let huge = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffff\r\n";
        assert_eq!(parse(huge), Parsed::Bad(413));
        let overflow =
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n";
        assert_eq!(parse(overflow), Parsed::Bad(400));
    }

    proptest! {
        #[test]
        fn chunked_roundtrip(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 0..6)) {
            let mut req = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            let mut want: Vec<u8> = Vec::new();
            for c in &chunks {
                req.extend(alloc::format!("{:x}\r\n", c.len()).as_bytes());
                req.extend(c);
                req.extend(b"\r\n");
                want.extend(c);
            }
            req.extend(b"0\r\n\r\n");
            match parse(&req) {
                Parsed::Request(r) => {
                    prop_assert_eq!(r.body, want);
                    prop_assert_eq!(r.consumed, req.len());
                }
                other => prop_assert!(false, "{:?}", other),
            }
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Parsed::Request(r) = parse(&bytes) {
                prop_assert!(r.consumed <= bytes.len());
            }
        }
    }

    #[test]
    fn basic_credentials_decode() {
        assert_eq!(
            basic_credentials("Basic cm9vdDpwdw=="),
            Some(("root".into(), "pw".into()))
        );
        assert_eq!(basic_credentials("Bearer cm9vdDpwdw=="), None);
        assert_eq!(basic_credentials("Basic cm9vdA=="), None, "no colon");
        assert_eq!(basic_credentials("Basic //79"), None, "not UTF-8");
        assert_eq!(basic_credentials("Basic a*b"), None);
    }
}

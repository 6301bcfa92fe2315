//! Where a request head ends and how long its body may take, read from
//! the client's bytes without parsing HTTP otherwise.
//!
//! read first: RFC 9112 §2.1 (a head ends at the first empty line), §6.2
//! (`Content-Length`) and §6.1 (`Transfer-Encoding`). dom0 parses the
//! request properly; the relay only needs to time it.

use crate::engine::Config;

/// Header whose value the relay reads: the body's length.
const CONTENT_LENGTH: &[u8] = b"content-length:";
/// Header that announces a body of unknown length (chunked).
const TRANSFER_ENCODING: &[u8] = b"transfer-encoding:";
/// Bytes of a header line kept to find `Content-Length`: its name, a
/// blank and 16 digits (more than any body dom0 takes; `[u8; 32]` is the
/// largest array with `Default`).
const LINE_KEPT: usize = 32;

/// Tracks where a request head ends, without parsing HTTP: a head ends at
/// the first empty line (`\n\n` or `\n\r\n`). Its `Content-Length`, if
/// any, is read so the body can be timed too.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Head {
    /// When the current head started; `None` when no head is in progress.
    pub(crate) since: Option<u64>,
    /// 0: mid-line; 1: after `\n`; 2: after `\n\r`.
    blank: u8,
    /// A head completed and no reply came yet: bytes now are a body (or
    /// pipelined requests) and are not timed as a head.
    pub(crate) awaiting_reply: bool,
    /// The start of the current header line.
    line: [u8; LINE_KEPT],
    line_len: usize,
    /// The head's `Content-Length` so far (`u64::MAX` for a chunked body:
    /// timed until dom0 answers).
    content_length: u64,
    /// When the announced body started (its head ended), while it is
    /// incomplete.
    body_since: Option<u64>,
    /// Body bytes still to come.
    body_left: u64,
    /// Body bytes received.
    body_seen: u64,
}

impl Head {
    /// A head that starts at `now` (a connection's first request is timed
    /// from its accept).
    pub(crate) fn starting(now: u64) -> Head {
        Head {
            since: Some(now),
            ..Head::default()
        }
    }

    /// Scans accepted client bytes.
    pub(crate) fn scan(&mut self, now: u64, mut bytes: &[u8]) {
        while let Some((&b, rest)) = bytes.split_first() {
            if self.awaiting_reply {
                if self.body_left > 0 {
                    let n = (bytes.len() as u64).min(self.body_left);
                    self.body_left -= n;
                    self.body_seen += n;
                    if self.body_left == 0 {
                        self.body_since = None;
                    }
                }
                return;
            }
            bytes = rest;
            if self.since.is_none() {
                self.since = Some(now);
                self.blank = 0;
                self.line_len = 0;
                self.content_length = 0;
            }
            if b == b'\n' {
                self.end_line();
            } else if self.line_len < LINE_KEPT {
                self.line[self.line_len] = b;
                self.line_len += 1;
            }
            self.blank = match (self.blank, b) {
                (1 | 2, b'\n') => {
                    self.since = None;
                    self.awaiting_reply = true;
                    self.body_left = self.content_length;
                    self.body_seen = 0;
                    self.body_since = (self.body_left > 0).then_some(now);
                    0
                }
                (1, b'\r') => 2,
                (_, b'\n') => 1,
                _ => 0,
            };
        }
    }

    /// A header line ended: keep its `Content-Length` (the last one wins;
    /// dom0 refuses conflicting ones, and an unreadable value counts as 0:
    /// the head and idle deadlines still apply). A `Transfer-Encoding`
    /// (chunked) body has no length the relay knows: it is timed as a body
    /// until dom0 answers.
    fn end_line(&mut self) {
        let line = &self.line[..self.line_len];
        self.line_len = 0;
        let starts = |name: &[u8]| {
            line.get(..name.len())
                .is_some_and(|l| l.eq_ignore_ascii_case(name))
        };
        if starts(TRANSFER_ENCODING) {
            self.content_length = u64::MAX;
            return;
        }
        if self.content_length == u64::MAX || !starts(CONTENT_LENGTH) {
            return;
        }
        let value = &line[CONTENT_LENGTH.len()..];
        let digits = value
            .iter()
            .skip_while(|b| **b == b' ' || **b == b'\t')
            .take_while(|b| b.is_ascii_digit());
        self.content_length = digits.fold(0u64, |n, d| {
            n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
        });
    }

    /// When the body must be complete, if one is in progress.
    pub(crate) fn body_deadline(&self, config: &Config) -> Option<u64> {
        let since = self.body_since?;
        let extra = (self.body_seen / 1024).saturating_mul(config.body_ms_per_kib);
        Some(
            since
                .saturating_add(config.body_timeout_ms)
                .saturating_add(extra),
        )
    }

    /// Since when the current request has been incomplete, if it is: its
    /// head or its announced body has not fully arrived.
    pub(crate) fn incomplete_since(&self) -> Option<u64> {
        self.since.or(self.body_since)
    }

    /// dom0 answered: the next client byte starts a new head. An interim
    /// `100 Continue` does not end the request.
    pub(crate) fn on_reply(&mut self, bytes: &[u8]) {
        if !bytes.starts_with(b"HTTP/1.1 100") && !bytes.starts_with(b"HTTP/1.0 100") {
            self.awaiting_reply = false;
            self.body_since = None;
            self.body_left = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_ends_at_blank_line() {
        let mut h = Head::default();
        h.scan(5, b"GET / HTTP/1.1\r\nHost: x\r\n");
        assert_eq!(h.since, Some(5));
        h.scan(6, b"\r");
        assert!(!h.awaiting_reply);
        h.scan(7, b"\nbody\r\n\r\n");
        assert!(h.awaiting_reply);
        assert_eq!(h.since, None);
        h.on_reply(b"HTTP/1.1 100 Continue\r\n\r\n");
        assert!(h.awaiting_reply);
        h.on_reply(b"HTTP/1.1 200 OK\r\n");
        assert!(!h.awaiting_reply);
        h.scan(9, b"P");
        assert_eq!(h.since, Some(9));
        let mut h = Head::default();
        h.scan(1, b"GET / HTTP/1.0\n\n");
        assert!(h.awaiting_reply);
    }
}

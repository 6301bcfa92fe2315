//! A VM's text console over HTTP, as xapi serves it: `CONNECT` on the
//! console's `location` with a session, answered `200 OK`, then the raw
//! byte stream both ways (the relay board moves the bytes: `relayed.rs`).
//!
//! read first: xapi `ocaml/xapi/console.ml` (the `/console` handler) and
//! `http_svr.ml`. The console is named by `ref=` (the console's opaque
//! reference, as `console.location` says) or `uuid=` (newer xapi
//! locations); the session by `session_id=` in the query or a
//! `session_id` cookie. No valid session: 401. No such console, its VM not
//! running, or no console relayed for its domain: 404.

use alloc::string::String;
use alloc::vec::Vec;

use crate::engine::Engine;
use crate::http::Request;
use crate::hypervisor::Hypervisor;
use crate::rng::Entropy;
use crate::schema::class_id;
use crate::value::Value;
use crate::wal::Storage;

/// The path of the text console handler (xapi's `Constants.console_uri`).
pub const CONSOLE_PATH: &str = "/console";

/// The head that switches a connection to the console's byte stream
/// (xapi's `Http.http_200_ok`).
pub const ATTACHED: &[u8] =
    b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nCache-Control: no-cache, no-store\r\n\r\n";

/// Why an attach was refused: the HTTP status and a line for the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// 401 or 404.
    pub status: u16,
    /// Why, for the body.
    pub why: &'static str,
}

/// Decodes `%XX` escapes and `+` (a form's blank); a bad escape is kept
/// as it is.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of `key` in the query of `target` (`/path?k=v&...`),
/// decoded.
pub fn query_param(target: &str, key: &str) -> Option<String> {
    let (_, query) = target.split_once('?')?;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then(|| percent_decode(v))
    })
}

/// The session a handler request names, as xapi's HTTP handlers take it:
/// `session_id=` in the query of `target`, else the `session_id` cookie.
pub fn request_session(target: &str, cookie: Option<&str>) -> Option<String> {
    query_param(target, "session_id").or_else(|| cookie.and_then(|c| cookie_value(c, "session_id")))
}

/// The value of cookie `key` in a `Cookie` header.
pub fn cookie_value(header: &str, key: &str) -> Option<String> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k.trim() == key).then(|| String::from(v.trim()))
    })
}

impl<H: Hypervisor, S: Storage, E: Entropy> Engine<H, S, E> {
    /// Checks a `CONNECT` for a text console: returns the domid whose
    /// console the connection attaches to.
    pub(crate) fn attach_console(&mut self, req: &Request) -> Result<u32, Refusal> {
        let not_found = |why| Refusal { status: 404, why };
        let path = req.path.split('?').next().unwrap_or("");
        if path != CONSOLE_PATH {
            return Err(not_found("no such handler"));
        }
        let session = request_session(&req.path, req.cookie.as_deref());
        let valid = session.is_some_and(|s| self.check_session(&s).is_ok());
        if !valid {
            return Err(Refusal {
                status: 401,
                why: "a valid session_id is required",
            });
        }
        let cc = class_id("console").expect("schema has console");
        let reference = match query_param(&req.path, "ref") {
            Some(r) => Some(r),
            None => query_param(&req.path, "uuid").and_then(|u| self.db.by_uuid(cc, &u).cloned()),
        };
        let Some(reference) = reference.filter(|r| self.db.get(cc, r).is_some()) else {
            return Err(not_found("no such console"));
        };
        let vm = match self.db.field(cc, &reference, "VM") {
            Some(Value::String(vm)) => vm.clone(),
            _ => return Err(not_found("the console has no VM")),
        };
        let running = matches!(
            self.vm_field(&vm, "power_state").as_str(),
            Some("Running" | "Paused")
        );
        let domid = self.vm_field(&vm, "domid").as_int().unwrap_or(-1);
        let Ok(domid) = u32::try_from(domid) else {
            return Err(not_found("the VM is not running"));
        };
        if !running {
            return Err(not_found("the VM is not running"));
        }
        if self.hypervisor().console_read(domid, 0, 0).is_none() {
            return Err(not_found("dom0 relays no console for the VM"));
        }
        Ok(domid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_target_or_cookie_never_panics(target in ".{0,200}", cookie in ".{0,200}") {
            for key in ["ref", "uuid", "session_id", ""] {
                let _ = query_param(&target, key);
                let _ = cookie_value(&cookie, key);
            }
            let _ = percent_decode(&target);
        }
    }

    #[test]
    fn query_and_cookie_values() {
        let t = "/console?ref=OpaqueRef%3Aabc&session_id=OpaqueRef:s1";
        assert_eq!(query_param(t, "ref").as_deref(), Some("OpaqueRef:abc"));
        assert_eq!(
            query_param(t, "session_id").as_deref(),
            Some("OpaqueRef:s1")
        );
        assert_eq!(query_param(t, "uuid"), None);
        assert_eq!(query_param("/console", "ref"), None);
        assert_eq!(query_param("/c?ref", "ref").as_deref(), Some(""));
        // Bad or cut escapes are kept, never panic.
        assert_eq!(query_param("/c?a=%zz%4", "a").as_deref(), Some("%zz%4"));
        assert_eq!(query_param("/c?a=%", "a").as_deref(), Some("%"));
        assert_eq!(query_param("/c?a=x+y%41", "a").as_deref(), Some("x yA"));
        assert_eq!(
            cookie_value("a=1; session_id=OpaqueRef:s2", "session_id").as_deref(),
            Some("OpaqueRef:s2")
        );
        assert_eq!(cookie_value("a=1", "session_id"), None);
    }
}

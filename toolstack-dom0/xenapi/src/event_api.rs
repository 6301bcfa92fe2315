//! The `event` class messages: `from`, `inject`, `get_current_id` and the
//! legacy `register` / `unregister` / `next`. A call with nothing to return
//! yet parks (the board calls again on a change or at the deadline).

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::dispatch::{arg_str, handle_invalid};
use crate::engine::{Engine, Outcome};
use crate::error::{ApiError, HANDLE_INVALID, SESSION_NOT_REGISTERED};
use crate::events::Subscription;
use crate::hypervisor::Hypervisor;
use crate::reply::Streamed;
use crate::rng::Entropy;
use crate::schema::{class_id_nocase, classes};
use crate::value::{format_datetime, Instant, Value};
use crate::wal::Storage;

/// Longest legacy `event.next` wait before an empty reply, ms.
const NEXT_WAIT_MS: u64 = 30_000;
/// Most `event.register` subscriptions a session keeps; more are ignored.
/// Each costs up to 96 bytes of dom0 (a 32-byte slot and a ref), and is part
/// of [`crate::session::SESSION_BYTES`]. Legacy clients register `*` or a
/// few classes; `event.from` keeps nothing per session.
pub const MAX_REGISTRATIONS: usize = 32;
/// Longest ref an `event.register` object subscription may name, bytes; a
/// ref is "OpaqueRef:" and a uuid (46), so a longer one names no object and
/// is not kept.
pub const MAX_SUBSCRIPTION_REF_BYTES: usize = 64;

fn names(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    }
}

impl<H: Hypervisor, S: Storage, E: Entropy> Engine<H, S, E> {
    pub(crate) fn event_call(
        &mut self,
        started: Instant,
        session: &str,
        m: &str,
        args: Vec<Value>,
    ) -> Outcome {
        let r = match m {
            "from" => return self.event_from(started, &args),
            "next" => return self.event_next(started, session),
            "inject" => self.event_inject(arg_str(&args[0]), arg_str(&args[1])),
            "get_current_id" => Ok(Value::Int(self.events.current() as i64)),
            "register" => {
                let cur = self.events.current();
                let subs = Subscription::parse_all(&names(&args[0]));
                if let Some(s) = self.sessions.get_mut(session) {
                    if s.registered.is_empty() {
                        s.cursor = cur;
                    }
                    for x in subs {
                        if let Subscription::Object(_, r) = &x {
                            if r.len() > MAX_SUBSCRIPTION_REF_BYTES {
                                continue;
                            }
                        }
                        if s.registered.len() < MAX_REGISTRATIONS && !s.registered.contains(&x) {
                            s.registered.push(x);
                        }
                    }
                }
                Ok(Value::str(""))
            }
            "unregister" => {
                let subs = Subscription::parse_all(&names(&args[0]));
                if let Some(s) = self.sessions.get_mut(session) {
                    s.registered.retain(|x| !subs.contains(x));
                }
                Ok(Value::str(""))
            }
            _ => Err(ApiError::new(crate::error::MESSAGE_METHOD_UNKNOWN, &[m])),
        };
        Outcome::Done(r)
    }

    fn event_inject(&mut self, cname: &str, reference: &str) -> Result<Value, ApiError> {
        let c = class_id_nocase(cname)
            .ok_or_else(|| ApiError::new(HANDLE_INVALID, &[cname, reference]))?;
        if self.db.get(c, reference).is_none() {
            return Err(handle_invalid(c, reference));
        }
        self.db.touch(c, reference);
        self.commit()?;
        Ok(Value::String(self.events.token(self.events.current())))
    }

    fn event_from(&mut self, started: Instant, args: &[Value]) -> Outcome {
        let subs = Subscription::parse_all(&names(&args[0]));
        let timeout = match args[2] {
            Value::Float(f) if f.is_finite() && f > 0.0 => (f * 1000.0) as u64,
            _ => 0,
        }
        .min(self.config.max_event_wait_ms);
        let from = match self.events.parse_token(arg_str(&args[1])) {
            Ok(t) => t,
            Err(e) => return Outcome::Done(Err(e)),
        };
        let current = self.events.current();
        let deadline = started.plus_ms(timeout);
        let may_park = self.now < deadline && started != Instant(0);
        let events: Vec<Value> = match from {
            None => {
                // From scratch: every object, written from the database as
                // the reply is (never a cloned tree: issue #12).
                let read = Streamed::AllObjects {
                    counts: self.ref_counts(&subs),
                    subs,
                    id: current as i64,
                    timestamp: format_datetime(self.now),
                    token: self.events.token(current),
                };
                if may_park && read.is_empty(&self.db) {
                    return Outcome::Park(deadline);
                }
                return Outcome::Stream(read);
            }
            Some(from) => match self.events.since(from, &subs) {
                Ok(evs) => evs,
                Err(e) => return Outcome::Done(Err(e)),
            },
        };
        if events.is_empty() && may_park {
            return Outcome::Park(deadline);
        }
        let mut batch = BTreeMap::new();
        batch.insert("events".to_string(), Value::Array(events));
        batch.insert("valid_ref_counts".to_string(), self.ref_counts(&subs));
        batch.insert(
            "token".to_string(),
            Value::String(self.events.token(current)),
        );
        Outcome::Done(Ok(Value::Map(batch)))
    }

    /// `valid_ref_counts`: objects per subscribed class.
    fn ref_counts(&self, subs: &[Subscription]) -> Value {
        let mut counts = BTreeMap::new();
        for (c, cd) in classes().iter().enumerate() {
            if subs
                .iter()
                .any(|s| matches!(s, Subscription::All) || *s == Subscription::Class(c))
            {
                counts.insert(
                    cd.name.to_ascii_lowercase(),
                    Value::Int(self.db.count(c) as i64),
                );
            }
        }
        Value::Map(counts)
    }

    fn event_next(&mut self, started: Instant, session: &str) -> Outcome {
        let Some(s) = self.sessions.get(session) else {
            return Outcome::Done(Err(ApiError::new(
                crate::error::SESSION_INVALID,
                &[session],
            )));
        };
        if s.registered.is_empty() {
            return Outcome::Done(Err(ApiError::new(SESSION_NOT_REGISTERED, &[])));
        }
        let current = self.events.current();
        let r = self.events.since(s.cursor, &s.registered);
        let deadline = started.plus_ms(NEXT_WAIT_MS);
        match r {
            Ok(evs) if evs.is_empty() && self.now < deadline && started != Instant(0) => {
                Outcome::Park(deadline)
            }
            Ok(evs) => {
                if let Some(s) = self.sessions.get_mut(session) {
                    s.cursor = current;
                }
                Outcome::Done(Ok(Value::Array(evs)))
            }
            Err(e) => {
                if let Some(s) = self.sessions.get_mut(session) {
                    s.cursor = current;
                }
                Outcome::Done(Err(e))
            }
        }
    }
}

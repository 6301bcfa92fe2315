//! Sessions: `session.login_with_password`, `session.logout`, validation
//! with idle expiry (time passed in), and a session table bounded per
//! originator and in all.
//!
//! Read first: xapi `ocaml/xapi/db_gc_util.ml` (`timeout_sessions`) and
//! `ocaml/xapi/xapi_globs.ml` (`max_sessions*`). xapi groups the sessions of
//! the local superuser by their originator (the 4th login argument): each
//! non-empty originator may hold 500, and every session with an empty
//! originator falls in one "external" group of 400 (`max_sessions` = 2 ×
//! `max_tasks`). Beyond its limit a group loses its least recently active
//! sessions; other groups are untouched. (Non-root users are grouped by user
//! name instead; this host has only `root`.) xapi trims in a periodic GC, so
//! it overshoots for up to a GC interval; here the trim happens at login, so
//! the bound is exact.
//!
//! xapi has no total limit; this table does, because it lives in dom0's
//! memory ([`MAX_SESSIONS`]). When the table is full, a login evicts the
//! caller's own least recently used session, or, if its originator has
//! none, is refused: one client (or one client posing as many originators)
//! can never log another out.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::engine::{Engine, SessionState};
use crate::error::{
    ApiError, INVALID_VALUE, OPERATION_NOT_ALLOWED, SESSION_AUTHENTICATION_FAILED, SESSION_INVALID,
};
use crate::hypervisor::Hypervisor;
use crate::rng::Entropy;
use crate::schema::{class, class_id};
use crate::value::{format_datetime, Instant, Value};
use crate::wal::Storage;

/// Most sessions one non-empty originator holds; beyond it the originator's
/// least recently active session is dropped. xapi's
/// `max_sessions_per_originator` (xapi_globs.ml).
pub const MAX_SESSIONS_PER_ORIGINATOR: usize = 500;
/// Most sessions with an empty originator, all counted as one group. xapi's
/// `max_sessions` (= `max_tasks` × 2 = 400) for its "external" group.
pub const MAX_ANONYMOUS_SESSIONS: usize = 400;
/// Longest originator accepted, bytes (peer-controlled; xapi has no limit,
/// real clients send a product name such as "XenCenter" or "cli").
pub const MAX_ORIGINATOR_BYTES: usize = 256;

/// Memory of the domain that holds the table (dom0), bytes.
pub const DOM0_BYTES: usize = 49 << 20;
/// The share of dom0's memory the session table may take (`budget.rs`
/// sums it with the other parts): 1024 sessions of [`SESSION_BYTES`].
pub const SESSION_TABLE_BYTES: usize = 8 << 20;
/// Heap one session can make dom0 hold at most, bytes, with headroom:
/// - the session record: 16 `Value` slots (32 B each) plus its strings
///   (uuid, refs, two datetimes, user, originator ≤ [`MAX_ORIGINATOR_BYTES`]);
/// - its entry in the database table and in the session table (two ref keys,
///   B-tree nodes);
/// - [`SessionState`], including its originator copy and up to
///   [`MAX_REGISTRATIONS`] `event.register` subscriptions, each naming a ref
///   of at most [`MAX_SUBSCRIPTION_REF_BYTES`].
///
/// `tests/session_memory.rs` measures the worst case (≈ 4.7 KiB with the
/// system allocator) and fails if it exceeds this; the rest is allocator
/// overhead and headroom.
///
/// [`MAX_REGISTRATIONS`]: crate::event_api::MAX_REGISTRATIONS
/// [`MAX_SUBSCRIPTION_REF_BYTES`]: crate::event_api::MAX_SUBSCRIPTION_REF_BYTES
/// [`SessionState`]: crate::engine::SessionState
pub const SESSION_BYTES: usize = 8 << 10;
/// Most live sessions in all: [`SESSION_TABLE_BYTES`] / [`SESSION_BYTES`]
/// = 8 MiB / 8 KiB = 1024. Room for one originator at its cap, the
/// anonymous group at its cap, and more.
pub const MAX_SESSIONS: usize = SESSION_TABLE_BYTES / SESSION_BYTES;

const _: () = assert!(MAX_SESSIONS >= MAX_SESSIONS_PER_ORIGINATOR + MAX_ANONYMOUS_SESSIONS);

/// Full password verifications allowed per second (sustained).
pub const SLOW_LOGINS_PER_SEC: u64 = 4;
/// Full password verifications allowed in a burst.
pub const SLOW_LOGIN_BURST: u64 = 10;

/// A token bucket for full (PBKDF2) password verifications.
#[derive(Clone, Debug, Default)]
pub struct LoginBudget {
    /// Tokens in thousandths.
    milli: u64,
    last: Instant,
}

impl LoginBudget {
    /// Takes one token at `now`; false if none is left.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.0.saturating_sub(self.last.0);
        self.last = now;
        self.milli = self
            .milli
            .saturating_add(elapsed.saturating_mul(SLOW_LOGINS_PER_SEC))
            .min(SLOW_LOGIN_BURST * 1000);
        if self.milli >= 1000 {
            self.milli -= 1000;
            true
        } else {
            false
        }
    }

    /// A full bucket as of `now`.
    pub fn full(now: Instant) -> LoginBudget {
        LoginBudget {
            milli: SLOW_LOGIN_BURST * 1000,
            last: now,
        }
    }
}

impl<H: Hypervisor, S: Storage, E: Entropy> Engine<H, S, E> {
    /// `session.login_with_password(uname, pwd[, version, originator])`.
    pub(crate) fn login(&mut self, params: &[Value]) -> Result<Value, ApiError> {
        if !(2..=4).contains(&params.len()) {
            let got = alloc::format!("{}", params.len());
            return Err(ApiError::new(
                crate::error::MESSAGE_PARAMETER_COUNT_MISMATCH,
                &["session.login_with_password", "4", &got],
            ));
        }
        let user = params[0].as_str().unwrap_or("");
        let pw = params[1].as_str().unwrap_or("");
        let originator = params.get(3).and_then(Value::as_str).unwrap_or("");
        if originator.len() > MAX_ORIGINATOR_BYTES {
            let shown: String = originator.chars().take(32).collect();
            return Err(ApiError::new(INVALID_VALUE, &["originator", &shown]));
        }
        let originator = originator.to_string();
        let failed = || {
            ApiError::new(
                SESSION_AUTHENTICATION_FAILED,
                &[user, "Authentication failure"],
            )
        };
        if !self.password_ok(user, pw) {
            return Err(failed());
        }
        self.make_room(&originator)?;
        let sc = class_id("session").expect("schema has session");
        let cd = class(sc);
        let mut rec = cd.default_record();
        let now = format_datetime(self.now);
        let host = self.host_ref();
        rec[cd.field("uuid")] = Value::String(self.uuid());
        rec[cd.field("this_host")] = Value::String(host);
        rec[cd.field("last_active")] = Value::DateTime(now.clone());
        rec[cd.field("validation_time")] = Value::DateTime(now);
        rec[cd.field("is_local_superuser")] = Value::Bool(true);
        rec[cd.field("auth_user_name")] = Value::String(user.to_string());
        let rec_originator = originator.clone();
        rec[cd.field("originator")] = Value::String(originator);
        let reference = self.new_ref();
        let tick = self.next_use();
        self.db.put(sc, &reference, rec);
        self.sessions.insert(
            reference.clone(),
            SessionState {
                last_active: self.now,
                last_use: tick,
                originator: rec_originator,
                registered: Vec::new(),
                cursor: 0,
            },
        );
        Ok(Value::String(reference))
    }

    /// Whether `user` and `pw` are the local superuser's. A full PBKDF2
    /// runs under the engine lock, so it is rationed: a stream of wrong
    /// passwords cannot stall every other client.
    pub(crate) fn password_ok(&mut self, user: &str, pw: &str) -> bool {
        let ok = if self.config.password.verify_cached(pw) {
            true
        } else if self.login_budget.take(self.now) {
            self.config.password.verify(pw)
        } else {
            false
        };
        user == self.config.user && ok
    }

    /// Makes room for one more session of `originator`, or refuses.
    ///
    /// First xapi's rule: the originator's group keeps at most its limit,
    /// dropping its least recently active. Then the table's total bound:
    /// expired sessions go first, then the caller's own oldest; another
    /// originator's session is never taken.
    fn make_room(&mut self, originator: &str) -> Result<(), ApiError> {
        let group_limit = if originator.is_empty() {
            self.config.max_anonymous_sessions
        } else {
            self.config.max_sessions_per_originator
        }
        .max(1);
        while self.group_len(originator) >= group_limit {
            let oldest = self.oldest_of(originator).expect("group is non-empty");
            self.drop_session(&oldest);
        }
        let total_limit = self.config.max_sessions.max(1);
        if self.sessions.len() >= total_limit {
            self.drop_expired();
        }
        while self.sessions.len() >= total_limit {
            let Some(oldest) = self.oldest_of(originator) else {
                return Err(ApiError::new(
                    OPERATION_NOT_ALLOWED,
                    &["session table full: log out unused sessions and retry"],
                ));
            };
            self.drop_session(&oldest);
        }
        Ok(())
    }

    /// Live sessions of `originator`.
    fn group_len(&self, originator: &str) -> usize {
        self.sessions
            .values()
            .filter(|s| s.originator == originator)
            .count()
    }

    /// The least recently active session of `originator`.
    fn oldest_of(&self, originator: &str) -> Option<String> {
        self.sessions
            .iter()
            .filter(|(_, s)| s.originator == originator)
            .min_by_key(|(_, s)| s.last_use)
            .map(|(r, _)| r.clone())
    }

    /// The next tick of the session use counter.
    fn next_use(&mut self) -> u64 {
        self.session_uses += 1;
        self.session_uses
    }

    /// Drops every session idle longer than the idle timeout.
    fn drop_expired(&mut self) {
        let idle = self.config.session_idle_ms;
        let now = self.now;
        let expired: Vec<String> = self
            .sessions
            .iter()
            .filter(|(_, s)| now.0.saturating_sub(s.last_active.0) > idle)
            .map(|(r, _)| r.clone())
            .collect();
        for r in expired {
            self.drop_session(&r);
        }
    }

    /// `session.logout`.
    pub(crate) fn logout(&mut self, session: &str) -> Result<Value, ApiError> {
        self.drop_session(session);
        Ok(Value::str(""))
    }

    fn drop_session(&mut self, session: &str) {
        self.sessions.remove(session);
        let sc = class_id("session").expect("schema has session");
        self.db.delete(sc, session);
    }

    /// Validates a session and marks it active; expired ones are dropped.
    pub(crate) fn check_session(&mut self, session: &str) -> Result<(), ApiError> {
        let idle = self.config.session_idle_ms;
        let now = self.now;
        let tick = self.next_use();
        let expired = match self.sessions.get_mut(session) {
            None => return Err(ApiError::new(SESSION_INVALID, &[session])),
            Some(s) if now.0.saturating_sub(s.last_active.0) > idle => true,
            Some(s) => {
                s.last_active = now;
                s.last_use = tick;
                false
            }
        };
        if expired {
            self.drop_session(session);
            return Err(ApiError::new(SESSION_INVALID, &[session]));
        }
        Ok(())
    }

    /// Number of live sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// The ref of this host (NULL before seeding).
    pub(crate) fn host_ref(&self) -> alloc::string::String {
        let hc = class_id("host").expect("schema has host");
        self.db
            .table(hc)
            .objects
            .keys()
            .next()
            .cloned()
            .unwrap_or_else(|| crate::value::NULL_REF.to_string())
    }
}

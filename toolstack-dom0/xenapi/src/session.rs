//! Sessions: `session.login_with_password`, `session.logout`, validation
//! with idle expiry (time passed in), and a bounded session table (the least
//! recently used session is dropped beyond `max_sessions`, as xapi does).

use alloc::string::ToString;
use alloc::vec::Vec;

use crate::engine::{Engine, SessionState};
use crate::error::{ApiError, SESSION_AUTHENTICATION_FAILED, SESSION_INVALID};
use crate::hypervisor::Hypervisor;
use crate::rng::Entropy;
use crate::schema::{class, class_id};
use crate::value::{format_datetime, Instant, Value};
use crate::wal::Storage;

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
        let originator = params
            .get(3)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let failed = || {
            ApiError::new(
                SESSION_AUTHENTICATION_FAILED,
                &[user, "Authentication failure"],
            )
        };
        // A full PBKDF2 runs under the engine lock, so it is rationed: a
        // stream of wrong passwords cannot stall every other client.
        let ok = if self.config.password.verify_cached(pw) {
            true
        } else if self.login_budget.take(self.now) {
            self.config.password.verify(pw)
        } else {
            false
        };
        if user != self.config.user || !ok {
            return Err(failed());
        }
        while self.sessions.len() >= self.config.max_sessions.max(1) {
            let oldest = self
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.last_active)
                .map(|(r, _)| r.clone())
                .expect("table is non-empty");
            self.drop_session(&oldest);
        }
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
        rec[cd.field("originator")] = Value::String(originator);
        let reference = self.new_ref();
        self.db.put(sc, &reference, rec);
        self.sessions.insert(
            reference.clone(),
            SessionState {
                last_active: self.now,
                registered: Vec::new(),
                cursor: 0,
            },
        );
        Ok(Value::String(reference))
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
        let expired = match self.sessions.get_mut(session) {
            None => return Err(ApiError::new(SESSION_INVALID, &[session])),
            Some(s) if now.0.saturating_sub(s.last_active.0) > idle => true,
            Some(s) => {
                s.last_active = now;
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

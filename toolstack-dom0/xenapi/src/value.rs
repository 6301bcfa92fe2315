//! XenAPI values: the typed data that travels in calls, replies and the WAL.
//!
//! Read first: protocol-notes.md "XenAPI wire protocol". An `int` is 64-bit,
//! a `datetime` is `YYYYMMDDTHH:MM:SSZ`, refs are strings `OpaqueRef:<uuid>`,
//! sets are arrays and maps are structs whose keys are strings on the wire.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

/// A XenAPI value, either freshly decoded from the wire (loosely typed) or
/// coerced against a schema type (see [`crate::schema::Ty::coerce`]).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A string, ref, enum or (on the XML-RPC wire) an int in decimal.
    String(String),
    /// A 64-bit integer.
    Int(i64),
    /// A double.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A timestamp in XenAPI form `YYYYMMDDTHH:MM:SSZ`.
    DateTime(String),
    /// A set or array.
    Array(Vec<Value>),
    /// A map, struct or record; keys are strings.
    Map(BTreeMap<String, Value>),
    /// XML-RPC `<nil/>` / JSON `null`; never produced by the engine.
    Nil,
}

/// The null reference.
pub const NULL_REF: &str = "OpaqueRef:NULL";

/// Milliseconds since the Unix epoch, passed in by the board (never read from
/// a clock inside the engine).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Instant(pub u64);

impl Instant {
    /// This instant plus `ms` milliseconds (saturating).
    pub fn plus_ms(self, ms: u64) -> Instant {
        Instant(self.0.saturating_add(ms))
    }
}

impl Value {
    /// A string value.
    pub fn str(s: &str) -> Value {
        Value::String(String::from(s))
    }

    /// The string inside a `String`/`DateTime` value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) | Value::DateTime(s) => Some(s),
            _ => None,
        }
    }

    /// The integer inside an `Int` value.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The boolean inside a `Bool` value.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// Approximate heap bytes this value holds (for memory quotas): the
    /// value itself, its strings, and per map entry the key `String` and a
    /// share of the B-tree node. `tests/db_memory.rs` checks that real
    /// records hold at most [`crate::budget::HEAP_PER_APPROX`] times this.
    pub fn approx_size(&self) -> usize {
        const ENTRY: usize = core::mem::size_of::<String>() + 8;
        core::mem::size_of::<Value>()
            + match self {
                Value::String(s) | Value::DateTime(s) => s.len(),
                Value::Array(a) => a.iter().map(Value::approx_size).sum(),
                Value::Map(m) => m
                    .iter()
                    .map(|(k, v)| ENTRY + k.len() + v.approx_size())
                    .sum(),
                _ => 0,
            }
    }

    /// Nesting depth (a scalar is 1).
    pub fn depth(&self) -> usize {
        match self {
            Value::Array(a) => 1 + a.iter().map(Value::depth).max().unwrap_or(0),
            Value::Map(m) => 1 + m.values().map(Value::depth).max().unwrap_or(0),
            _ => 1,
        }
    }
}

/// Formats `now` as a XenAPI datetime `YYYYMMDDTHH:MM:SSZ` (UTC).
pub fn format_datetime(now: Instant) -> String {
    let secs = (now.0 / 1000) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = write!(
        s,
        "{:04}{:02}{:02}T{:02}:{:02}:{:02}Z",
        y,
        m,
        d,
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    );
    s
}

/// Converts days since 1970-01-01 to a (year, month, day) civil date
/// (Howard Hinnant's algorithm, public domain description).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// True if `s` looks like a XenAPI datetime (`YYYYMMDDTHH:MM:SS` with an
/// optional `Z` or zone suffix, or the ISO form with dashes).
pub fn is_datetime(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 15 && b.len() <= 32 && b[..4].iter().all(u8::is_ascii_digit) && s.contains('T')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_epoch_and_known_date() {
        assert_eq!(format_datetime(Instant(0)), "19700101T00:00:00Z");
        // 2026-11-24 08:06:55 UTC
        assert_eq!(
            format_datetime(Instant(1_795_507_615_000)),
            "20261124T08:06:55Z"
        );
        assert!(is_datetime("19700101T00:00:00Z"));
        assert!(!is_datetime("yesterday"));
    }

    #[test]
    fn depth_counts_nesting() {
        let v = Value::Array(alloc::vec![Value::Array(alloc::vec![Value::Int(1)])]);
        assert_eq!(v.depth(), 3);
    }
}

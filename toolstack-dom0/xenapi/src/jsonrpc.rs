//! JSON-RPC 1.0 and 2.0 codec for XenAPI (`POST /jsonrpc`).
//!
//! Read first: jsonrpc.org/specification and protocol-notes.md. A 2.0 error
//! is `{code, message: CODE, data: [params...]}`; a 1.0 reply carries both
//! `result` and `error`. The id must be present and non-null.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write;

use serde_json::{Map, Number, Value as Json};

use crate::error::ApiError;
use crate::reply::{Emit, Payload};
use crate::value::Value;

/// Deepest array/object nesting accepted in a call.
pub const MAX_DEPTH: usize = 32;

/// JSON-RPC protocol version of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// No `jsonrpc` member.
    V1,
    /// `"jsonrpc": "2.0"`.
    V2,
}

/// A decoded call.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// Method name.
    pub method: String,
    /// Positional parameters.
    pub params: Vec<Value>,
    /// The id, echoed in the reply.
    pub id: Json,
    /// Protocol version.
    pub version: Version,
}

/// Why a body is not a valid call; carries the id when one was readable.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodeError {
    /// What was wrong.
    pub reason: &'static str,
    /// The id if the envelope had one.
    pub id: Json,
}

/// Most structural tokens (`[`, `{`, `,`, `:` outside strings) a call may
/// carry: bounds the trees `decode_call` builds (serde_json's, then ours),
/// which serde_json allocates without a way to refuse. Each value costs
/// at most two tokens and about 80 bytes of tree (`tests/reply_memory.rs`
/// measures the worst body within `budget::CALL_BYTES`); a VM record with
/// every field, or a map of thousands of entries, is far below it.
pub const MAX_TOKENS: usize = 64 * 1024;

/// Most objects (`{`) a call may carry: each non-empty one is a B-tree
/// node in serde_json's tree and another in ours, about 1.3 KB together
/// (measured). A call carries a record and its maps: a few dozen.
pub const MAX_OBJECTS: usize = 4096;

/// Counts the structural tokens of a JSON text outside its strings, and
/// the objects among them.
fn count_tokens(body: &[u8]) -> (usize, usize) {
    let (mut n, mut objects, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b'{' => {
                    n += 1;
                    objects += 1;
                }
                b'[' | b',' | b':' => n += 1,
                _ => {}
            }
        }
    }
    (n, objects)
}

fn json_depth(v: &Json) -> usize {
    match v {
        Json::Array(a) => 1 + a.iter().map(json_depth).max().unwrap_or(0),
        Json::Object(o) => 1 + o.values().map(json_depth).max().unwrap_or(0),
        _ => 1,
    }
}

/// Converts JSON into a loosely typed [`Value`].
pub fn from_json(v: Json) -> Value {
    match v {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Bool(b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(0.0)),
        },
        Json::String(s) => Value::String(s),
        Json::Array(a) => Value::Array(a.into_iter().map(from_json).collect()),
        Json::Object(o) => Value::Map(o.into_iter().map(|(k, v)| (k, from_json(v))).collect()),
    }
}

/// Converts a [`Value`] into JSON (ints as numbers, datetimes as strings).
pub fn to_json(v: &Value) -> Json {
    match v {
        Value::String(s) | Value::DateTime(s) => Json::String(s.clone()),
        Value::Int(i) => Json::Number((*i).into()),
        Value::Float(f) => Number::from_f64(*f).map(Json::Number).unwrap_or(Json::Null),
        Value::Bool(b) => Json::Bool(*b),
        Value::Array(a) => Json::Array(a.iter().map(to_json).collect()),
        Value::Map(m) => Json::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect::<Map<String, Json>>(),
        ),
        Value::Nil => Json::Null,
    }
}

/// Decodes a JSON-RPC request body.
pub fn decode_call(body: &[u8]) -> Result<Call, DecodeError> {
    let bad = |reason| DecodeError {
        reason,
        id: Json::Null,
    };
    let (tokens, objects) = count_tokens(body);
    if tokens > MAX_TOKENS || objects > MAX_OBJECTS {
        return Err(bad("too many values"));
    }
    let v: Json = serde_json::from_slice(body).map_err(|_| bad("malformed JSON"))?;
    if json_depth(&v) > MAX_DEPTH {
        return Err(bad("nesting too deep"));
    }
    let Json::Object(mut o) = v else {
        return Err(bad("request is not an object"));
    };
    let id = o.remove("id").unwrap_or(Json::Null);
    let err = |reason| DecodeError {
        reason,
        id: id.clone(),
    };
    if id.is_null() {
        return Err(err("id must be non-null"));
    }
    let version = match o.get("jsonrpc") {
        None => Version::V1,
        Some(Json::String(s)) if s == "2.0" => Version::V2,
        Some(_) => return Err(err("unsupported jsonrpc version")),
    };
    let method = match o.remove("method") {
        Some(Json::String(s)) => s,
        _ => return Err(err("method must be a string")),
    };
    let params = match o.remove("params") {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::Array(a)) => a.into_iter().map(from_json).collect(),
        Some(_) => return Err(err("params must be an array")),
    };
    Ok(Call {
        method,
        params,
        id,
        version,
    })
}

fn error_object(code: i64, message: &str, data: Vec<String>) -> Json {
    let mut e = Map::new();
    e.insert("code".to_string(), Json::Number(code.into()));
    e.insert("message".to_string(), Json::String(message.to_string()));
    e.insert(
        "data".to_string(),
        Json::Array(data.into_iter().map(Json::String).collect()),
    );
    Json::Object(e)
}

fn envelope<W: Write + ?Sized>(
    out: &mut W,
    version: Version,
    id: &Json,
    result: Option<&dyn Payload>,
    error: Option<Json>,
) {
    let _ = out.write_char('{');
    if version == Version::V2 {
        let _ = out.write_str("\"jsonrpc\":\"2.0\",");
    }
    match (&error, version) {
        (None, _) => {
            let _ = out.write_str("\"result\":");
            match result {
                Some(p) => p.emit(&mut JsonEmit(out)),
                None => write_value(out, &Value::Nil),
            }
            if version == Version::V1 {
                let _ = out.write_str(",\"error\":null");
            }
        }
        (Some(e), v) => {
            if v == Version::V1 {
                let _ = out.write_str("\"result\":null,");
            }
            let _ = out.write_str("\"error\":");
            let _ = out.write_str(&serde_json::to_string(e).unwrap_or_else(|_| "null".to_string()));
        }
    }
    let _ = out.write_str(",\"id\":");
    let _ = out.write_str(&serde_json::to_string(id).unwrap_or_else(|_| "null".to_string()));
    let _ = out.write_char('}');
}

/// Writes a JSON string literal.
fn write_str<W: Write + ?Sized>(out: &mut W, s: &str) {
    let _ = out.write_char('"');
    if !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        let _ = out.write_str(s);
        let _ = out.write_char('"');
        return;
    }
    for c in s.chars() {
        let _ = match c {
            '"' => out.write_str("\\\""),
            '\\' => out.write_str("\\\\"),
            '\n' => out.write_str("\\n"),
            '\r' => out.write_str("\\r"),
            '\t' => out.write_str("\\t"),
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32),
            c => out.write_char(c),
        };
    }
    let _ = out.write_char('"');
}

/// Writes `v` as JSON directly (no intermediate tree): ints as numbers,
/// datetimes as strings, non-finite floats as null.
pub fn write_value<W: Write + ?Sized>(out: &mut W, v: &Value) {
    match v {
        Value::String(s) | Value::DateTime(s) => write_str(out, s),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) if f.is_finite() => {
            let _ = write!(out, "{f:?}");
        }
        Value::Float(_) | Value::Nil => {
            let _ = out.write_str("null");
        }
        Value::Bool(b) => {
            let _ = out.write_str(if *b { "true" } else { "false" });
        }
        Value::Array(a) => {
            let _ = out.write_char('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    let _ = out.write_char(',');
                }
                write_value(out, x);
            }
            let _ = out.write_char(']');
        }
        Value::Map(m) => {
            let _ = out.write_char('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    let _ = out.write_char(',');
                }
                write_str(out, k);
                let _ = out.write_char(':');
                write_value(out, x);
            }
            let _ = out.write_char('}');
        }
    }
}

/// JSON as an [`Emit`] over any writer: the same bytes as [`write_value`]
/// of the tree the calls stand for.
pub struct JsonEmit<'a, W: Write + ?Sized>(pub &'a mut W);

impl<W: Write + ?Sized> Emit for JsonEmit<'_, W> {
    fn value(&mut self, v: &Value) {
        write_value(self.0, v)
    }
    fn map_start(&mut self) {
        let _ = self.0.write_char('{');
    }
    fn entry(&mut self, index: usize, key: &str) {
        if index > 0 {
            let _ = self.0.write_char(',');
        }
        write_str(self.0, key);
        let _ = self.0.write_char(':');
    }
    fn entry_end(&mut self) {}
    fn map_end(&mut self) {
        let _ = self.0.write_char('}');
    }
    fn array_start(&mut self) {
        let _ = self.0.write_char('[');
    }
    fn item(&mut self, index: usize) {
        if index > 0 {
            let _ = self.0.write_char(',');
        }
    }
    fn array_end(&mut self) {
        let _ = self.0.write_char(']');
    }
}

/// Writes the reply to a call: the success payload is written as it is
/// walked, never as a copy.
pub fn write_response<W: Write + ?Sized>(
    out: &mut W,
    version: Version,
    id: &Json,
    result: Result<&dyn Payload, &ApiError>,
) {
    match result {
        Ok(p) => envelope(out, version, id, Some(p), None),
        Err(e) => envelope(
            out,
            version,
            id,
            None,
            Some(error_object(1, e.code, e.params.clone())),
        ),
    }
}

/// Encodes the reply to a call.
pub fn encode_response(version: Version, id: Json, result: &Result<Value, ApiError>) -> Vec<u8> {
    let mut out = String::new();
    match result {
        Ok(v) => write_response(&mut out, version, &id, Ok(v)),
        Err(e) => write_response(&mut out, version, &id, Err(e)),
    }
    out.into_bytes()
}

/// Encodes the reply to an undecodable request (JSON-RPC "Invalid Request").
pub fn encode_decode_error(e: &DecodeError) -> Vec<u8> {
    let mut out = String::new();
    envelope(
        &mut out,
        Version::V2,
        &e.id,
        None,
        Some(error_object(
            -32600,
            "Invalid Request",
            alloc::vec![e.reason.to_string()],
        )),
    );
    out.into_bytes()
}

/// An empty map value (helper for replies).
pub fn empty_map() -> Value {
    Value::Map(BTreeMap::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decodes_v2_and_v1() {
        let c = decode_call(br#"{"jsonrpc":"2.0","method":"VM.get_all","params":["s"],"id":0}"#)
            .unwrap();
        assert_eq!(c.version, Version::V2);
        assert_eq!(c.params, [Value::str("s")]);
        let c = decode_call(br#"{"method":"x","params":[1,2.5,true,null],"id":"a"}"#).unwrap();
        assert_eq!(c.version, Version::V1);
        assert_eq!(c.params[1], Value::Float(2.5));
    }

    #[test]
    fn rejects_bad_envelopes() {
        assert!(decode_call(b"[]").is_err());
        assert!(decode_call(br#"{"method":"x","id":null}"#).is_err());
        assert!(decode_call(br#"{"method":1,"id":1}"#).is_err());
        assert!(decode_call(br#"{"method":"x","params":{},"id":1}"#).is_err());
        let deep = "[".repeat(100) + &"]".repeat(100);
        let body = alloc::format!(r#"{{"method":"x","params":{deep},"id":1}}"#);
        assert!(decode_call(body.as_bytes()).is_err());
    }

    #[test]
    fn token_count_skips_strings_and_bounds_calls() {
        assert_eq!(count_tokens(br#"{"a":[1,"[,{:\"]"],"b":{}}"#), (7, 2));
        let many = alloc::format!(
            r#"{{"method":"x","params":[{}0],"id":1}}"#,
            "0,".repeat(MAX_TOKENS)
        );
        assert_eq!(
            decode_call(many.as_bytes()).unwrap_err().reason,
            "too many values"
        );
        let fits = alloc::format!(
            r#"{{"method":"x","params":[{}0],"id":1}}"#,
            "0,".repeat(MAX_TOKENS - 8)
        );
        assert_eq!(
            decode_call(fits.as_bytes()).unwrap().params.len(),
            MAX_TOKENS - 7
        );
        let maps = alloc::format!(
            r#"{{"method":"x","params":[{}0],"id":1}}"#,
            "{},".repeat(MAX_OBJECTS)
        );
        assert_eq!(
            decode_call(maps.as_bytes()).unwrap_err().reason,
            "too many values"
        );
    }

    #[test]
    fn error_shape_v2() {
        let r = encode_response(
            Version::V2,
            Json::from(3),
            &Err(ApiError::new("SESSION_INVALID", &["OpaqueRef:x"])),
        );
        let v: Json = serde_json::from_slice(&r).unwrap();
        assert_eq!(v["error"]["message"], "SESSION_INVALID");
        assert_eq!(v["error"]["data"][0], "OpaqueRef:x");
        assert_eq!(v["id"], 3);
        assert!(v.get("result").is_none());
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<String>().prop_map(Value::String),
            any::<i64>().prop_map(Value::Int),
            any::<bool>().prop_map(Value::Bool),
            // Dyadic values: serde_json (without float_roundtrip) parses them exactly.
            (-1_000_000i32..1_000_000).prop_map(|i| Value::Float(i as f64 / 4.0)),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map(any::<String>(), inner, 0..4).prop_map(Value::Map),
            ]
        })
    }

    proptest! {
        #[test]
        fn direct_writer_matches_serde(v in arb_value()) {
            let mut s = String::new();
            write_value(&mut s, &v);
            let parsed: Json = serde_json::from_str(&s).unwrap();
            prop_assert_eq!(parsed.clone(), to_json(&v));
            prop_assert_eq!(from_json(parsed), v);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_call(&bytes);
        }

        #[test]
        fn string_params_roundtrip(ps in proptest::collection::vec("[ -~]{0,10}", 0..5)) {
            let params: Vec<Json> = ps.iter().cloned().map(Json::String).collect();
            let body = serde_json::to_vec(&serde_json::json!({"jsonrpc":"2.0","method":"m","params":params,"id":1})).unwrap();
            let c = decode_call(&body).unwrap();
            prop_assert_eq!(c.params, ps.into_iter().map(Value::String).collect::<Vec<_>>());
        }
    }
}

//! XML-RPC codec: decodes a `methodCall`, encodes a XenAPI `methodResponse`.
//!
//! Read first: the XML-RPC spec (xmlrpc.com/spec) and protocol-notes.md. The
//! reply is `{Status: "Success", Value}` or `{Status: "Failure",
//! ErrorDescription: [CODE, params...]}`; ints go out as decimal strings.
//! DTDs are refused (no entity expansion); nesting is bounded.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write;

use crate::error::ApiError;
use crate::value::Value;

/// Deepest array/struct nesting accepted in a call.
pub const MAX_DEPTH: usize = 32;

/// Why a body is not a valid call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

#[derive(Debug, PartialEq)]
enum Ev {
    Start(String),
    End(String),
    Text(String),
}

fn lex(body: &str) -> Result<Vec<Ev>, DecodeError> {
    use xmlparser::{ElementEnd, Token, Tokenizer};
    let mut out = Vec::new();
    let mut open: Option<String> = None;
    let mut depth = 0usize;
    for tok in Tokenizer::from(body) {
        let tok = tok.map_err(|_| DecodeError("malformed XML"))?;
        match tok {
            Token::Declaration { .. } | Token::Comment { .. } => {}
            Token::ProcessingInstruction { .. } => {}
            Token::DtdStart { .. } | Token::EmptyDtd { .. } | Token::EntityDeclaration { .. } => {
                return Err(DecodeError("DTD not allowed"))
            }
            Token::DtdEnd { .. } => return Err(DecodeError("DTD not allowed")),
            Token::ElementStart { local, .. } => open = Some(local.as_str().to_string()),
            Token::Attribute { .. } => {}
            Token::ElementEnd { end, .. } => match end {
                ElementEnd::Open => {
                    depth += 1;
                    if depth > 2 * MAX_DEPTH + 8 {
                        return Err(DecodeError("nesting too deep"));
                    }
                    out.push(Ev::Start(open.take().ok_or(DecodeError("stray >"))?));
                }
                ElementEnd::Empty => {
                    let n = open.take().ok_or(DecodeError("stray />"))?;
                    out.push(Ev::Start(n.clone()));
                    out.push(Ev::End(n));
                }
                ElementEnd::Close(_, local) => {
                    depth = depth.checked_sub(1).ok_or(DecodeError("unbalanced"))?;
                    out.push(Ev::End(local.as_str().to_string()));
                }
            },
            Token::Text { text } => out.push(Ev::Text(unescape(text.as_str())?)),
            Token::Cdata { text, .. } => out.push(Ev::Text(text.as_str().to_string())),
        }
    }
    Ok(out)
}

/// Replaces the five XML entities and numeric character references.
pub fn unescape(s: &str) -> Result<String, DecodeError> {
    if !s.contains('&') {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let end = after.find(';').ok_or(DecodeError("bad entity"))?;
        let name = &after[..end];
        let ch = match name {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(h) = name.strip_prefix("#x") {
                    u32::from_str_radix(h, 16).ok()
                } else if let Some(d) = name.strip_prefix('#') {
                    d.parse().ok()
                } else {
                    None
                };
                code.and_then(char::from_u32)
                    .ok_or(DecodeError("bad entity"))?
            }
        };
        out.push(ch);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

struct Cursor {
    evs: Vec<Ev>,
    pos: usize,
}

impl Cursor {
    fn skip_ws(&mut self) {
        while let Some(Ev::Text(t)) = self.evs.get(self.pos) {
            if t.trim().is_empty() {
                self.pos += 1;
            } else {
                break;
            }
        }
    }
    fn peek_start(&mut self) -> Option<&str> {
        self.skip_ws();
        match self.evs.get(self.pos) {
            Some(Ev::Start(n)) => Some(n.as_str()),
            _ => None,
        }
    }
    fn start(&mut self, name: &str) -> Result<(), DecodeError> {
        self.skip_ws();
        match self.evs.get(self.pos) {
            Some(Ev::Start(n)) if n == name => {
                self.pos += 1;
                Ok(())
            }
            _ => Err(DecodeError("unexpected element")),
        }
    }
    fn end(&mut self, name: &str) -> Result<(), DecodeError> {
        self.skip_ws();
        match self.evs.get(self.pos) {
            Some(Ev::End(n)) if n == name => {
                self.pos += 1;
                Ok(())
            }
            _ => Err(DecodeError("unexpected close")),
        }
    }
    fn text(&mut self) -> String {
        let mut s = String::new();
        while let Some(Ev::Text(t)) = self.evs.get(self.pos) {
            s.push_str(t);
            self.pos += 1;
        }
        s
    }
    fn is_end(&mut self, name: &str) -> bool {
        self.skip_ws();
        matches!(self.evs.get(self.pos), Some(Ev::End(n)) if n == name)
    }
}

fn value(c: &mut Cursor, depth: usize) -> Result<Value, DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError("nesting too deep"));
    }
    c.start("value")?;
    // An untyped value is a string; keep leading whitespace in that case.
    let raw = c.text();
    let v = match c.evs.get(c.pos) {
        Some(Ev::End(n)) if n == "value" => Value::String(raw),
        _ => {
            let ty = c
                .peek_start()
                .ok_or(DecodeError("value without type"))?
                .to_string();
            c.start(&ty)?;
            let v = match ty.as_str() {
                "string" | "base64" => Value::String(c.text()),
                "int" | "i4" | "i8" => Value::Int(
                    c.text()
                        .trim()
                        .parse()
                        .map_err(|_| DecodeError("bad int"))?,
                ),
                "double" => Value::Float(
                    c.text()
                        .trim()
                        .parse()
                        .map_err(|_| DecodeError("bad double"))?,
                ),
                "boolean" => match c.text().trim() {
                    "1" | "true" => Value::Bool(true),
                    "0" | "false" => Value::Bool(false),
                    _ => return Err(DecodeError("bad boolean")),
                },
                "dateTime.iso8601" => Value::DateTime(c.text().trim().to_string()),
                "nil" => Value::Nil,
                "array" => {
                    c.start("data")?;
                    let mut items = Vec::new();
                    while !c.is_end("data") {
                        items.push(value(c, depth + 1)?);
                    }
                    c.end("data")?;
                    Value::Array(items)
                }
                "struct" => {
                    let mut m = BTreeMap::new();
                    while !c.is_end("struct") {
                        c.start("member")?;
                        c.start("name")?;
                        let k = c.text();
                        c.end("name")?;
                        let v = value(c, depth + 1)?;
                        c.end("member")?;
                        m.insert(k, v);
                    }
                    Value::Map(m)
                }
                _ => return Err(DecodeError("unknown value type")),
            };
            c.end(&ty)?;
            v
        }
    };
    c.end("value")?;
    Ok(v)
}

/// Decodes a `methodCall` into (method name, params).
pub fn decode_call(body: &[u8]) -> Result<(String, Vec<Value>), DecodeError> {
    let body = core::str::from_utf8(body).map_err(|_| DecodeError("not UTF-8"))?;
    let mut c = Cursor {
        evs: lex(body)?,
        pos: 0,
    };
    c.start("methodCall")?;
    c.start("methodName")?;
    let method = c.text().trim().to_string();
    c.end("methodName")?;
    let mut params = Vec::new();
    if c.peek_start() == Some("params") {
        c.start("params")?;
        while !c.is_end("params") {
            c.start("param")?;
            params.push(value(&mut c, 1)?);
            c.end("param")?;
        }
        c.end("params")?;
    }
    c.end("methodCall")?;
    c.skip_ws();
    if c.pos != c.evs.len() {
        return Err(DecodeError("trailing content"));
    }
    Ok((method, params))
}

/// Escapes text for XML.
pub fn escape_into(out: &mut String, s: &str) {
    for ch in s.chars() {
        match ch {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(ch),
        }
    }
}

/// Appends `<value>…</value>` for `v`.
pub fn encode_value(out: &mut String, v: &Value) {
    out.push_str("<value>");
    match v {
        Value::String(s) => escape_into(out, s),
        // XenAPI: an int travels as a decimal string.
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => {
            let _ = write!(out, "<double>{f}</double>");
        }
        Value::Bool(b) => out.push_str(if *b {
            "<boolean>1</boolean>"
        } else {
            "<boolean>0</boolean>"
        }),
        Value::DateTime(s) => {
            out.push_str("<dateTime.iso8601>");
            escape_into(out, s);
            out.push_str("</dateTime.iso8601>");
        }
        Value::Array(a) => {
            out.push_str("<array><data>");
            for x in a {
                encode_value(out, x);
            }
            out.push_str("</data></array>");
        }
        Value::Map(m) => {
            out.push_str("<struct>");
            for (k, x) in m {
                out.push_str("<member><name>");
                escape_into(out, k);
                out.push_str("</name>");
                encode_value(out, x);
                out.push_str("</member>");
            }
            out.push_str("</struct>");
        }
        Value::Nil => {}
    }
    out.push_str("</value>");
}

/// Encodes a XenAPI reply as a `methodResponse`.
pub fn encode_response(result: &Result<Value, ApiError>) -> String {
    let mut out =
        String::from("<?xml version=\"1.0\"?>\n<methodResponse><params><param><value><struct>");
    match result {
        Ok(v) => {
            out.push_str("<member><name>Status</name><value>Success</value></member>");
            out.push_str("<member><name>Value</name>");
            encode_value(&mut out, v);
            out.push_str("</member>");
        }
        Err(e) => {
            out.push_str("<member><name>Status</name><value>Failure</value></member>");
            out.push_str("<member><name>ErrorDescription</name>");
            let d = Value::Array(e.description().into_iter().map(Value::String).collect());
            encode_value(&mut out, &d);
            out.push_str("</member>");
        }
    }
    out.push_str("</struct></value></param></params></methodResponse>\n");
    out
}

/// Encodes a call (used by tests and the task result field).
pub fn encode_call(method: &str, params: &[Value]) -> String {
    let mut out = String::from("<?xml version=\"1.0\"?><methodCall><methodName>");
    escape_into(&mut out, method);
    out.push_str("</methodName><params>");
    for p in params {
        out.push_str("<param>");
        encode_value(&mut out, p);
        out.push_str("</param>");
    }
    out.push_str("</params></methodCall>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use proptest::prelude::*;

    #[test]
    fn decodes_python_style_call() {
        let body = br#"<?xml version='1.0'?>
<methodCall>
<methodName>VM.set_VCPUs_max</methodName>
<params>
<param><value><string>OpaqueRef:a</string></value></param>
<param><value><int>4</int></value></param>
<param><value>plain &amp; text</value></param>
<param><value><struct><member><name>k</name><value><boolean>1</boolean></value></member></struct></value></param>
<param><value><array><data><value><double>1.5</double></value></data></array></value></param>
</params>
</methodCall>"#;
        let (m, p) = decode_call(body).unwrap();
        assert_eq!(m, "VM.set_VCPUs_max");
        assert_eq!(p[0], Value::str("OpaqueRef:a"));
        assert_eq!(p[1], Value::Int(4));
        assert_eq!(p[2], Value::str("plain & text"));
        assert_eq!(p[4], Value::Array(vec![Value::Float(1.5)]));
    }

    #[test]
    fn refuses_dtd_and_deep_nesting() {
        let dtd = br#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><methodCall><methodName>x</methodName></methodCall>"#;
        assert!(decode_call(dtd).is_err());
        let mut deep = String::from("<methodCall><methodName>x</methodName><params><param>");
        for _ in 0..100 {
            deep.push_str("<value><array><data>");
        }
        assert!(decode_call(deep.as_bytes()).is_err());
    }

    #[test]
    fn failure_reply_shape() {
        let r = encode_response(&Err(ApiError::new("HANDLE_INVALID", &["VM", "x<"])));
        assert!(r.contains("<name>Status</name><value>Failure</value>"));
        assert!(r.contains("<value>HANDLE_INVALID</value><value>VM</value><value>x&lt;</value>"));
        let ok = encode_response(&Ok(Value::Int(7)));
        assert!(ok.contains("<name>Value</name><value>7</value>"));
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            "[ -~]{0,12}".prop_map(Value::String),
            any::<bool>().prop_map(Value::Bool),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z]{1,6}", inner, 0..4).prop_map(Value::Map),
            ]
        })
    }

    proptest! {
        #[test]
        fn call_roundtrip(m in "[A-Za-z_.]{1,20}", ps in proptest::collection::vec(arb_value(), 0..4)) {
            let body = encode_call(&m, &ps);
            let (m2, ps2) = decode_call(body.as_bytes()).unwrap();
            prop_assert_eq!(m2, m);
            prop_assert_eq!(ps2, ps);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_call(&bytes);
        }

        #[test]
        fn mutated_calls_never_panic(s in "<methodCall><methodName>[a-z.]{0,8}</methodName>[<>/a-z =\"']{0,80}") {
            let _ = decode_call(s.as_bytes());
        }
    }
}

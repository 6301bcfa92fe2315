//! XML-RPC codec: decodes a `methodCall`, encodes a XenAPI `methodResponse`.
//!
//! Read first: the XML-RPC spec (xmlrpc.com/spec) and protocol-notes.md. The
//! reply is `{Status: "Success", Value}` or `{Status: "Failure",
//! ErrorDescription: [CODE, params...]}`; ints go out as decimal strings.
//! Parsed with roxmltree (no_std); DTDs are refused (no entity expansion),
//! nesting is checked on the raw bytes first and node count is bounded.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write;

use crate::error::ApiError;
use crate::reply::{Emit, Payload};
use crate::value::Value;

/// Deepest array/struct nesting accepted in a call.
pub const MAX_DEPTH: usize = 32;

/// Why a body is not a valid call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

/// Most XML nodes a call may have (bounds the DOM roxmltree builds).
pub const MAX_NODES: u32 = 2 * MAX_ELEMENTS as u32 + 64;

/// Most elements a call may have, counted on the raw bytes before the XML
/// parser runs: bounds the DOM roxmltree builds and the values decoded
/// from it, which are allocated without a way to refuse.
/// `tests/reply_memory.rs` measures the worst body within
/// `budget::CALL_BYTES`; a VM record with every field is about 500
/// elements, a map of 5,000 entries 25,000.
pub const MAX_ELEMENTS: usize = 32 * 1024;

/// Deepest element nesting let through to the XML parser. roxmltree's
/// tokenizer recurses per element, so depth is checked on the raw bytes
/// first (a client must not be able to exhaust a thread's stack).
const MAX_ELEMENT_DEPTH: usize = 2 * MAX_DEPTH + 8;

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| from + i)
}

/// Conservative element-depth scan of raw XML: skips comments, CDATA, PIs
/// and quoted attribute values; refuses any other `<!` (DTDs). Errs when
/// nesting exceeds [`MAX_ELEMENT_DEPTH`] or there are more than
/// [`MAX_ELEMENTS`] elements.
pub(crate) fn check_depth(b: &[u8]) -> Result<(), DecodeError> {
    let mut depth = 0usize;
    let mut elements = 0usize;
    let mut i = 0usize;
    while let Some(off) = b.get(i..).and_then(|r| r.iter().position(|c| *c == b'<')) {
        i += off;
        let rest = &b[i..];
        if rest.starts_with(b"<!--") {
            i = find(b, b"-->", i + 4).ok_or(DecodeError("unterminated comment"))? + 3;
        } else if rest.starts_with(b"<![CDATA[") {
            i = find(b, b"]]>", i + 9).ok_or(DecodeError("unterminated CDATA"))? + 3;
        } else if rest.starts_with(b"<!") {
            return Err(DecodeError("DTD not allowed"));
        } else if rest.starts_with(b"<?") {
            i = find(b, b"?>", i + 2).ok_or(DecodeError("unterminated PI"))? + 2;
        } else if rest.starts_with(b"</") {
            depth = depth.saturating_sub(1);
            i += 2;
        } else {
            // A start tag: find its end outside quoted attribute values.
            let mut j = i + 1;
            let mut quote: Option<u8> = None;
            loop {
                let c = *b.get(j).ok_or(DecodeError("unterminated tag"))?;
                match (quote, c) {
                    (Some(q), c) if c == q => quote = None,
                    (Some(_), _) => {}
                    (None, b'"' | b'\'') => quote = Some(c),
                    (None, b'>') => break,
                    _ => {}
                }
                j += 1;
            }
            elements += 1;
            if elements > MAX_ELEMENTS {
                return Err(DecodeError("too many elements"));
            }
            if b[j - 1] != b'/' {
                depth += 1;
                if depth > MAX_ELEMENT_DEPTH {
                    return Err(DecodeError("nesting too deep"));
                }
            }
            i = j + 1;
        }
    }
    Ok(())
}

fn elements<'a, 'i>(n: roxmltree::Node<'a, 'i>) -> impl Iterator<Item = roxmltree::Node<'a, 'i>> {
    n.children().filter(|c| c.is_element())
}

fn text_of(n: roxmltree::Node<'_, '_>) -> String {
    let mut s = String::new();
    for c in n.children().filter(|c| c.is_text()) {
        s.push_str(c.text().unwrap_or(""));
    }
    s
}

fn only_child<'a, 'i>(
    n: roxmltree::Node<'a, 'i>,
    name: &str,
) -> Result<roxmltree::Node<'a, 'i>, DecodeError> {
    let mut it = elements(n);
    match (it.next(), it.next()) {
        (Some(c), None) if c.tag_name().name() == name => Ok(c),
        _ => Err(DecodeError("unexpected element")),
    }
}

fn value(n: roxmltree::Node<'_, '_>, depth: usize) -> Result<Value, DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError("nesting too deep"));
    }
    if n.tag_name().name() != "value" {
        return Err(DecodeError("expected <value>"));
    }
    let mut typed = elements(n);
    let Some(t) = typed.next() else {
        // An untyped value is a string.
        return Ok(Value::String(text_of(n)));
    };
    if typed.next().is_some() {
        return Err(DecodeError("two types in one value"));
    }
    let text = || text_of(t);
    Ok(match t.tag_name().name() {
        "string" | "base64" => Value::String(text()),
        "int" | "i4" | "i8" => {
            Value::Int(text().trim().parse().map_err(|_| DecodeError("bad int"))?)
        }
        "double" => Value::Float(
            text()
                .trim()
                .parse()
                .map_err(|_| DecodeError("bad double"))?,
        ),
        "boolean" => match text().trim() {
            "1" | "true" => Value::Bool(true),
            "0" | "false" => Value::Bool(false),
            _ => return Err(DecodeError("bad boolean")),
        },
        "dateTime.iso8601" => Value::DateTime(text().trim().to_string()),
        "nil" => Value::Nil,
        "array" => {
            let data = only_child(t, "data")?;
            let mut items = Vec::new();
            for v in elements(data) {
                items.push(value(v, depth + 1)?);
            }
            Value::Array(items)
        }
        "struct" => {
            let mut m = BTreeMap::new();
            for member in elements(t) {
                if member.tag_name().name() != "member" {
                    return Err(DecodeError("expected <member>"));
                }
                let mut parts = elements(member);
                let (Some(name), Some(v), None) = (parts.next(), parts.next(), parts.next()) else {
                    return Err(DecodeError("bad <member>"));
                };
                if name.tag_name().name() != "name" {
                    return Err(DecodeError("expected <name>"));
                }
                m.insert(text_of(name), value(v, depth + 1)?);
            }
            Value::Map(m)
        }
        _ => return Err(DecodeError("unknown value type")),
    })
}

/// Decodes a `methodCall` into (method name, params).
pub fn decode_call(body: &[u8]) -> Result<(String, Vec<Value>), DecodeError> {
    let text = core::str::from_utf8(body).map_err(|_| DecodeError("not UTF-8"))?;
    check_depth(body)?;
    let opts = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_NODES,
    };
    let doc = roxmltree::Document::parse_with_options(text, opts)
        .map_err(|_| DecodeError("malformed XML"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "methodCall" {
        return Err(DecodeError("expected <methodCall>"));
    }
    let mut method = None;
    let mut params = Vec::new();
    for c in elements(root) {
        match c.tag_name().name() {
            "methodName" if method.is_none() => method = Some(text_of(c).trim().to_string()),
            "params" => {
                for p in elements(c) {
                    if p.tag_name().name() != "param" {
                        return Err(DecodeError("expected <param>"));
                    }
                    params.push(value(only_child(p, "value")?, 1)?);
                }
            }
            _ => return Err(DecodeError("unexpected element")),
        }
    }
    Ok((method.ok_or(DecodeError("no <methodName>"))?, params))
}

/// Escapes text for XML.
pub fn escape_into<W: Write + ?Sized>(out: &mut W, s: &str) {
    if !s.bytes().any(|b| matches!(b, b'<' | b'>' | b'&' | b'"')) {
        let _ = out.write_str(s);
        return;
    }
    // Runs without a special character go out whole.
    let mut rest = s;
    while let Some(i) = rest.find(['<', '>', '&', '"']) {
        let _ = out.write_str(&rest[..i]);
        let _ = out.write_str(match rest.as_bytes()[i] {
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'&' => "&amp;",
            _ => "&quot;",
        });
        rest = &rest[i + 1..];
    }
    let _ = out.write_str(rest);
}

/// Appends `<value>…</value>` for `v`.
pub fn encode_value<W: Write + ?Sized>(out: &mut W, v: &Value) {
    let _ = out.write_str("<value>");
    match v {
        Value::String(s) => escape_into(out, s),
        // XenAPI: an int travels as a decimal string.
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => {
            let _ = write!(out, "<double>{f}</double>");
        }
        Value::Bool(b) => {
            let _ = out.write_str(if *b {
                "<boolean>1</boolean>"
            } else {
                "<boolean>0</boolean>"
            });
        }
        Value::DateTime(s) => {
            let _ = out.write_str("<dateTime.iso8601>");
            escape_into(out, s);
            let _ = out.write_str("</dateTime.iso8601>");
        }
        Value::Array(a) => {
            let _ = out.write_str("<array><data>");
            for x in a {
                encode_value(out, x);
            }
            let _ = out.write_str("</data></array>");
        }
        Value::Map(m) => {
            let _ = out.write_str("<struct>");
            for (k, x) in m {
                let _ = out.write_str("<member><name>");
                escape_into(out, k);
                let _ = out.write_str("</name>");
                encode_value(out, x);
                let _ = out.write_str("</member>");
            }
            let _ = out.write_str("</struct>");
        }
        Value::Nil => {}
    }
    let _ = out.write_str("</value>");
}

/// XML-RPC as an [`Emit`] over any writer: the same bytes as
/// [`encode_value`] of the tree the calls stand for.
pub struct XmlEmit<'a, W: Write + ?Sized>(pub &'a mut W);

impl<W: Write + ?Sized> Emit for XmlEmit<'_, W> {
    fn value(&mut self, v: &Value) {
        encode_value(self.0, v)
    }
    fn map_start(&mut self) {
        let _ = self.0.write_str("<value><struct>");
    }
    fn entry(&mut self, _index: usize, key: &str) {
        let _ = self.0.write_str("<member><name>");
        escape_into(self.0, key);
        let _ = self.0.write_str("</name>");
    }
    fn entry_end(&mut self) {
        let _ = self.0.write_str("</member>");
    }
    fn map_end(&mut self) {
        let _ = self.0.write_str("</struct></value>");
    }
    fn array_start(&mut self) {
        let _ = self.0.write_str("<value><array><data>");
    }
    fn item(&mut self, _index: usize) {}
    fn array_end(&mut self) {
        let _ = self.0.write_str("</data></array></value>");
    }
}

/// Writes a XenAPI reply as a `methodResponse`: the success payload is
/// written as it is walked, never as a copy.
pub fn write_response<W: Write + ?Sized>(out: &mut W, result: Result<&dyn Payload, &ApiError>) {
    let _ =
        out.write_str("<?xml version=\"1.0\"?>\n<methodResponse><params><param><value><struct>");
    match result {
        Ok(v) => {
            let _ = out.write_str("<member><name>Status</name><value>Success</value></member>");
            let _ = out.write_str("<member><name>Value</name>");
            v.emit(&mut XmlEmit(out));
            let _ = out.write_str("</member>");
        }
        Err(e) => {
            let _ = out.write_str("<member><name>Status</name><value>Failure</value></member>");
            let _ = out.write_str("<member><name>ErrorDescription</name>");
            let _ = out.write_str("<value><array><data>");
            for d in e.description() {
                encode_value(out, &Value::String(d));
            }
            let _ = out.write_str("</data></array></value>");
            let _ = out.write_str("</member>");
        }
    }
    let _ = out.write_str("</struct></value></param></params></methodResponse>\n");
}

/// Encodes a XenAPI reply as a `methodResponse`.
pub fn encode_response(result: &Result<Value, ApiError>) -> String {
    let mut out = String::new();
    match result {
        Ok(v) => write_response(&mut out, Ok(v)),
        Err(e) => write_response(&mut out, Err(e)),
    }
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
    fn depth_scan_is_not_fooled_by_quotes_comments_or_cdata() {
        let mut tricky = String::from("<methodCall>");
        for _ in 0..200 {
            tricky.push_str("<a x=\"/>\" y='/>'><!-- <b> --><![CDATA[</c>]]>");
        }
        assert_eq!(
            check_depth(tricky.as_bytes()),
            Err(DecodeError("nesting too deep"))
        );
        assert!(decode_call(tricky.as_bytes()).is_err());
        let mut flat = String::from("<r>");
        for _ in 0..1000 {
            flat.push_str("<a/><b></b>");
        }
        flat.push_str("</r>");
        assert_eq!(check_depth(flat.as_bytes()), Ok(()));
        let many = "<a/>".repeat(MAX_ELEMENTS + 1);
        assert_eq!(
            check_depth(many.as_bytes()),
            Err(DecodeError("too many elements"))
        );
        assert_eq!(check_depth(&many.as_bytes()[4..]), Ok(()));
    }

    #[test]
    fn whitespace_cdata_and_entities() {
        let body = b"<methodCall>\n <methodName> x </methodName>\n <params><param><value><![CDATA[<raw>]]> &#65;&lt;</value></param></params></methodCall>";
        let (m, p) = decode_call(body).unwrap();
        assert_eq!(m, "x");
        assert_eq!(p, [Value::str("<raw> A<")]);
        assert!(decode_call(b"<methodCall><methodName>x</methodName><params><param><value>&bogus;</value></param></params></methodCall>").is_err());
        assert!(decode_call(b"<other/>").is_err());
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

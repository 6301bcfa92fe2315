//! Reply payloads, typed by the request they answer.
//!
//! Read first: docs/misc/xenstore.txt (each request's reply format). The
//! payload of a reply is judged against the request that was sent: READ
//! gets the value as is, DIRECTORY nul-terminated names, most others
//! "OK\0". A payload that does not fit is [`Malformed::BadPayload`], never
//! a panic: a hostile xenstored must not crash a domain.

use alloc::string::String;
use alloc::vec::Vec;

use crate::error::Malformed;
use crate::perms::{self, parse_decimal, Perm};
use crate::wire::MsgType;

/// A transaction id; [`TxId::NONE`] (0) outside a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId(pub u32);

impl TxId {
    /// No transaction.
    pub const NONE: TxId = TxId(0);
}

/// A successful reply, decoded according to its request's type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// "OK": WRITE, MKDIR, RM, SET_PERMS, WATCH, UNWATCH,
    /// TRANSACTION_END, INTRODUCE, RELEASE, RESUME, SET_TARGET,
    /// RESET_WATCHES, SET_FEATURE, SET_QUOTA.
    Ok,
    /// READ: the node's value, byte for byte.
    Value(Vec<u8>),
    /// DIRECTORY: the children's names.
    Entries(Vec<String>),
    /// DIRECTORY_PART: one slice of the children's names.
    Part {
        /// The directory's generation; a change means start again.
        generation: String,
        /// Names in this slice.
        entries: Vec<String>,
        /// Whether this slice ends the list.
        complete: bool,
        /// Bytes of names this slice covers (add to the next offset).
        bytes: u32,
    },
    /// GET_PERMS: owner entry first.
    Perms(Vec<Perm>),
    /// TRANSACTION_START: the new transaction.
    Transaction(TxId),
    /// GET_DOMAIN_PATH: the path.
    Path(String),
    /// IS_DOMAIN_INTRODUCED: "T" or "F".
    Bool(bool),
    /// GET_FEATURE, GET_QUOTA (with a name): the number.
    Number(u64),
    /// CONTROL, GET_QUOTA without a name, unknown types: the payload.
    Raw(Vec<u8>),
}

/// Decode `payload`, the reply to a request of type `request`.
pub fn parse(request: MsgType, payload: &[u8]) -> Result<Reply, Malformed> {
    match request {
        MsgType::Read => Ok(Reply::Value(payload.to_vec())),
        MsgType::Write
        | MsgType::Mkdir
        | MsgType::Rm
        | MsgType::SetPerms
        | MsgType::Watch
        | MsgType::Unwatch
        | MsgType::TransactionEnd
        | MsgType::Introduce
        | MsgType::Release
        | MsgType::Resume
        | MsgType::SetTarget
        | MsgType::ResetWatches
        | MsgType::SetFeature
        | MsgType::SetQuota => match payload {
            b"OK\0" | b"OK" => Ok(Reply::Ok),
            _ => Err(Malformed::BadPayload),
        },
        MsgType::Directory => names(payload).map(Reply::Entries),
        MsgType::DirectoryPart => directory_part(payload),
        MsgType::GetPerms => perms::parse_list(payload).map(Reply::Perms),
        MsgType::TransactionStart => {
            let id = u32::try_from(number(payload)?).map_err(|_| Malformed::BadPayload)?;
            if id == 0 {
                // 0 means "no transaction": using it would silently run
                // the caller's writes outside one.
                return Err(Malformed::BadPayload);
            }
            Ok(Reply::Transaction(TxId(id)))
        }
        MsgType::GetDomainPath => text(strip_nul(payload)).map(Reply::Path),
        MsgType::IsDomainIntroduced => match strip_nul(payload) {
            b"T" => Ok(Reply::Bool(true)),
            b"F" => Ok(Reply::Bool(false)),
            _ => Err(Malformed::BadPayload),
        },
        MsgType::GetFeature => number(payload).map(Reply::Number),
        MsgType::GetQuota => match number(payload) {
            Ok(n) => Ok(Reply::Number(n)),
            // Without a name GET_QUOTA lists the quota names.
            Err(_) => Ok(Reply::Raw(payload.to_vec())),
        },
        MsgType::Control | MsgType::WatchEvent | MsgType::Error | MsgType::Unknown(_) => {
            Ok(Reply::Raw(payload.to_vec()))
        }
    }
}

fn strip_nul(payload: &[u8]) -> &[u8] {
    payload.strip_suffix(&[0]).unwrap_or(payload)
}

fn text(raw: &[u8]) -> Result<String, Malformed> {
    String::from_utf8(raw.to_vec()).map_err(|_| Malformed::BadPayload)
}

fn number(payload: &[u8]) -> Result<u64, Malformed> {
    parse_decimal(strip_nul(payload))
}

/// Nul-terminated, non-empty names; an empty payload is an empty list.
fn names(payload: &[u8]) -> Result<Vec<String>, Malformed> {
    if payload.is_empty() {
        return Ok(Vec::new());
    }
    let body = payload.strip_suffix(&[0]).ok_or(Malformed::BadPayload)?;
    body.split(|b| *b == 0)
        .map(|n| {
            if n.is_empty() {
                Err(Malformed::BadPayload)
            } else {
                text(n)
            }
        })
        .collect()
}

/// `<generation>\0name\0...name\0`, with an extra `\0` at the end of the
/// list (C xenstored's DIRECTORY_PART).
fn directory_part(payload: &[u8]) -> Result<Reply, Malformed> {
    let nul = payload
        .iter()
        .position(|b| *b == 0)
        .ok_or(Malformed::BadPayload)?;
    let generation = text(&payload[..nul])?;
    let rest = &payload[nul + 1..];
    let (list, complete) = match rest.strip_suffix(&[0, 0]) {
        Some(body) => (body, true),
        None if rest == [0] => (&[][..], true),
        None => (rest.strip_suffix(&[0]).unwrap_or(rest), false),
    };
    if !complete && rest.last() != Some(&0) {
        return Err(Malformed::BadPayload);
    }
    let entries = if list.is_empty() {
        Vec::new()
    } else {
        list.split(|b| *b == 0)
            .map(|n| {
                if n.is_empty() {
                    Err(Malformed::BadPayload)
                } else {
                    text(n)
                }
            })
            .collect::<Result<Vec<_>, _>>()?
    };
    if !complete && entries.is_empty() {
        // An incomplete slice must make progress, or a client would loop.
        return Err(Malformed::BadPayload);
    }
    let bytes = entries.iter().map(|e| e.len() + 1).sum::<usize>();
    let bytes = u32::try_from(bytes).map_err(|_| Malformed::BadPayload)?;
    Ok(Reply::Part {
        generation,
        entries,
        complete,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn ok_replies() {
        assert_eq!(parse(MsgType::Write, b"OK\0"), Ok(Reply::Ok));
        assert_eq!(parse(MsgType::Rm, b"OK"), Ok(Reply::Ok));
        assert_eq!(parse(MsgType::Watch, b"KO\0"), Err(Malformed::BadPayload));
        assert_eq!(parse(MsgType::Mkdir, b""), Err(Malformed::BadPayload));
    }

    #[test]
    fn directory_replies() {
        assert_eq!(parse(MsgType::Directory, b""), Ok(Reply::Entries(vec![])));
        assert_eq!(
            parse(MsgType::Directory, b"a\0bc\0"),
            Ok(Reply::Entries(vec!["a".into(), "bc".into()]))
        );
        for bad in [&b"a"[..], b"\0", b"a\0\0b\0", b"\xff\0"] {
            assert_eq!(parse(MsgType::Directory, bad), Err(Malformed::BadPayload));
        }
    }

    #[test]
    fn directory_part_replies() {
        assert_eq!(
            parse(MsgType::DirectoryPart, b"7\0a\0bc\0\0"),
            Ok(Reply::Part {
                generation: "7".into(),
                entries: vec!["a".into(), "bc".into()],
                complete: true,
                bytes: 5
            })
        );
        assert_eq!(
            parse(MsgType::DirectoryPart, b"7\0a\0"),
            Ok(Reply::Part {
                generation: "7".into(),
                entries: vec!["a".into()],
                complete: false,
                bytes: 2
            })
        );
        assert_eq!(
            parse(MsgType::DirectoryPart, b"7\0\0"),
            Ok(Reply::Part {
                generation: "7".into(),
                entries: vec![],
                complete: true,
                bytes: 0
            })
        );
        for bad in [&b""[..], b"7", b"7\0", b"7\0a", b"7\0\0\0\0"] {
            assert_eq!(
                parse(MsgType::DirectoryPart, bad),
                Err(Malformed::BadPayload),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn numbers_and_flags() {
        assert_eq!(
            parse(MsgType::TransactionStart, b"12\0"),
            Ok(Reply::Transaction(TxId(12)))
        );
        assert_eq!(
            parse(MsgType::TransactionStart, b"0\0"),
            Err(Malformed::BadPayload)
        );
        assert_eq!(
            parse(MsgType::TransactionStart, b"4294967296\0"),
            Err(Malformed::BadPayload)
        );
        assert_eq!(
            parse(MsgType::TransactionStart, b"\0"),
            Err(Malformed::BadPayload)
        );
        assert_eq!(
            parse(MsgType::IsDomainIntroduced, b"T\0"),
            Ok(Reply::Bool(true))
        );
        assert_eq!(
            parse(MsgType::IsDomainIntroduced, b"F"),
            Ok(Reply::Bool(false))
        );
        assert_eq!(
            parse(MsgType::IsDomainIntroduced, b"Y\0"),
            Err(Malformed::BadPayload)
        );
        assert_eq!(parse(MsgType::GetFeature, b"3\0"), Ok(Reply::Number(3)));
        assert_eq!(
            parse(MsgType::GetDomainPath, b"/local/domain/5\0"),
            Ok(Reply::Path("/local/domain/5".into()))
        );
    }
}

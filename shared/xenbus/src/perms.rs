//! Node permissions as xenstored sends and takes them: `<letter><domid>`.
//!
//! Read first: docs/misc/xenstore.txt "Permissions". A node's permission
//! list is owner first (`n0`: owned by dom0, nobody else may do anything),
//! then ACL entries; letters are `n` none, `r` read, `w` write, `b` both.
//! GET_PERMS answers the list as nul-terminated strings; SET_PERMS takes the
//! path then the same strings.

use alloc::vec::Vec;

use crate::error::Malformed;

pub use xcp_xs_wire::Access;

/// One permission entry: for the first entry of a list, `domid` is the
/// owner and `access` what everyone not listed gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Perm {
    /// The domain.
    pub domid: u16,
    /// What it may do.
    pub access: Access,
}

impl Perm {
    /// A permission entry.
    pub const fn new(domid: u16, access: Access) -> Perm {
        Perm { domid, access }
    }

    /// Append the wire form (`r5`, no nul) to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.push(self.access.letter());
        push_decimal(out, u64::from(self.domid));
    }

    /// Parse one wire entry (`b12`).
    pub fn parse(raw: &[u8]) -> Result<Perm, Malformed> {
        let (&letter, digits) = raw.split_first().ok_or(Malformed::BadPayload)?;
        let access = Access::from_letter(letter).ok_or(Malformed::BadPayload)?;
        let domid = u16::try_from(parse_decimal(digits)?).map_err(|_| Malformed::BadPayload)?;
        Ok(Perm { domid, access })
    }
}

/// Parse a GET_PERMS reply: at least one entry, each nul-terminated.
pub fn parse_list(payload: &[u8]) -> Result<Vec<Perm>, Malformed> {
    let body = payload.strip_suffix(&[0]).ok_or(Malformed::BadPayload)?;
    let perms = body
        .split(|b| *b == 0)
        .map(Perm::parse)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(perms)
}

/// A strict decimal: ASCII digits only, at least one, no overflow.
pub(crate) fn parse_decimal(digits: &[u8]) -> Result<u64, Malformed> {
    if digits.is_empty() || digits.len() > 20 {
        return Err(Malformed::BadPayload);
    }
    let mut n: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(Malformed::BadPayload);
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
            .ok_or(Malformed::BadPayload)?;
    }
    Ok(n)
}

/// Append `n` in decimal.
pub(crate) fn push_decimal(out: &mut Vec<u8>, n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        for p in [
            Perm::new(0, Access::None),
            Perm::new(7, Access::Read),
            Perm::new(65535, Access::Write),
            Perm::new(12, Access::Both),
        ] {
            let mut v = Vec::new();
            p.emit(&mut v);
            assert_eq!(Perm::parse(&v), Ok(p));
        }
    }

    #[test]
    fn lists_parse_and_hostile_ones_are_refused() {
        assert_eq!(
            parse_list(b"n0\0r5\0"),
            Ok(alloc::vec![
                Perm::new(0, Access::None),
                Perm::new(5, Access::Read)
            ])
        );
        for bad in [
            &b""[..],
            b"\0",
            b"n0",
            b"x0\0",
            b"n\0",
            b"n65536\0",
            b"n-1\0",
            b"n0\0\0",
            b"r99999999999999999999999\0",
        ] {
            assert_eq!(parse_list(bad), Err(Malformed::BadPayload), "{bad:?}");
        }
    }

    #[test]
    fn decimals() {
        assert_eq!(parse_decimal(b"0"), Ok(0));
        assert_eq!(parse_decimal(b"18446744073709551615"), Ok(u64::MAX));
        assert!(parse_decimal(b"18446744073709551616").is_err());
        assert!(parse_decimal(b"+1").is_err());
        let mut v = Vec::new();
        push_decimal(&mut v, u64::MAX);
        assert_eq!(v, b"18446744073709551615");
    }
}

//! A VDI's name on the SR is its XenAPI uuid's 16 bytes.

use alloc::string::String;

use crate::Uuid;

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (either case) → its 16 bytes.
pub fn uuid_bytes(text: &str) -> Option<Uuid> {
    let bytes = text.as_bytes();
    if bytes.len() != 36 {
        return None;
    }
    let mut out = [0u8; 16];
    let mut nibbles = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            if b != b'-' {
                return None;
            }
            continue;
        }
        let v = (b as char).to_digit(16)? as u8;
        out[nibbles / 2] |= if nibbles % 2 == 0 { v << 4 } else { v };
        nibbles += 1;
    }
    Some(out)
}

/// 16 bytes → the lower-case text form.
pub fn uuid_text(bytes: &Uuid) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 15)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_forms() {
        let text = "0123abcd-4567-89ef-ABCD-0123456789ab";
        let bytes = uuid_bytes(text).expect("parses");
        assert_eq!(bytes[0], 0x01);
        assert_eq!(bytes[15], 0xab);
        assert_eq!(uuid_text(&bytes), text.to_ascii_lowercase());
        for bad in [
            "",
            "0123abcd-4567-89ef-abcd-0123456789a",
            "0123abcd-4567-89ef-abcd-0123456789abc",
            "0123abcd+4567-89ef-abcd-0123456789ab",
            "0123abcg-4567-89ef-abcd-0123456789ab",
            "0123abcd-4567-89ef-abcd-0123456789é",
        ] {
            assert_eq!(uuid_bytes(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn bytes_round_trip(bytes in any::<[u8; 16]>()) {
            prop_assert_eq!(uuid_bytes(&uuid_text(&bytes)), Some(bytes));
        }

        #[test]
        fn any_text_parses_or_not_without_panic(text in ".{0,40}") {
            if let Some(b) = uuid_bytes(&text) {
                prop_assert_eq!(uuid_text(&b), text.to_ascii_lowercase());
            }
        }
    }
}

//! Domain command lines: space-separated `key` and `key=value` words.

/// Returns the value of `key=value` in `cmdline`, or `Some("")` for a bare
/// `key`, or `None` when the key is absent.
pub fn get<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline.split_ascii_whitespace().find_map(|word| {
        let (k, v) = word.split_once('=').unwrap_or((word, ""));
        (k == key).then_some(v)
    })
}

/// True when `key` appears, bare or with a value.
pub fn has(cmdline: &str, key: &str) -> bool {
    get(cmdline, key).is_some()
}

/// Turns the NUL-terminated `cmd_line` of start_info into text, replacing
/// invalid UTF-8 by stopping at the first bad byte.
pub fn from_start_info(raw: &[u8]) -> &str {
    let len = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    match core::str::from_utf8(&raw[..len]) {
        Ok(s) => s,
        Err(e) => {
            // Keep the valid prefix: a garbled tail must not cost us the rest.
            core::str::from_utf8(&raw[..e.valid_up_to()]).unwrap_or("")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_and_values() {
        let c = "test-exit  console=hvc0 x=a=b";
        assert_eq!(get(c, "test-exit"), Some(""));
        assert_eq!(get(c, "console"), Some("hvc0"));
        assert_eq!(get(c, "x"), Some("a=b"));
        assert_eq!(get(c, "missing"), None);
        assert!(has(c, "console"));
        assert!(!has(c, "cons"));
    }

    #[test]
    fn start_info_cmdline_stops_at_nul_and_bad_utf8() {
        assert_eq!(from_start_info(b"abc\0def"), "abc");
        assert_eq!(from_start_info(b"abc"), "abc");
        assert_eq!(from_start_info(b"ab\xffcd\0"), "ab");
        assert_eq!(from_start_info(b"\0"), "");
    }
}

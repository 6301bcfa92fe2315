//! Node paths: validation, relative-path resolution and tree helpers.
//!
//! Read first: docs/misc/xenstore.txt, "Paths are /-separated". Characters
//! are `[A-Za-z0-9-/_@]`; doubled and trailing slashes (except the root) and
//! the empty path are forbidden; absolute paths are at most 3072 bytes and
//! relative ones 2048 (XSA-323). A relative path from domain `d` means
//! `/local/domain/<d>/<path>`.

use alloc::format;
use alloc::string::String;

use crate::error::{XsError, XsResult};
use crate::wire::{ABS_PATH_MAX, REL_PATH_MAX};

/// The watch-only special path fired on INTRODUCE.
pub const INTRODUCE_DOMAIN: &str = "@introduceDomain";
/// The watch-only special path fired on RELEASE and domain destruction.
pub const RELEASE_DOMAIN: &str = "@releaseDomain";

/// `/local/domain/<domid>`: a domain's home, base of its relative paths.
pub fn domain_path(domid: u16) -> String {
    format!("/local/domain/{domid}")
}

fn valid_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'/' | b'_' | b'@')
}

/// Resolve a node path sent by `domid` into its canonical absolute form.
///
/// Special `@` paths are refused here: they are names of watches and of
/// permission entries, never of nodes (see [`canonical_watch`]).
pub fn canonical(domid: u16, raw: &[u8]) -> XsResult<String> {
    if raw.is_empty() || raw[0] == b'@' {
        return Err(XsError::Einval);
    }
    if !raw.iter().all(|b| valid_char(*b)) {
        return Err(XsError::Einval);
    }
    // All bytes are ASCII, so this never fails.
    let text = core::str::from_utf8(raw).map_err(|_| XsError::Einval)?;
    let abs = if text.starts_with('/') {
        String::from(text)
    } else {
        if text.len() > REL_PATH_MAX {
            return Err(XsError::Einval);
        }
        format!("{}/{}", domain_path(domid), text)
    };
    check_absolute(&abs)?;
    Ok(abs)
}

fn check_absolute(abs: &str) -> XsResult<()> {
    if abs.len() > ABS_PATH_MAX || !abs.starts_with('/') {
        return Err(XsError::Einval);
    }
    if abs != "/" && abs.ends_with('/') {
        return Err(XsError::Einval);
    }
    if abs.contains("//") {
        return Err(XsError::Einval);
    }
    Ok(())
}

/// A watch path: either a node path (resolved as [`canonical`]) or a
/// special `@` name. Returns the absolute path and whether the caller wrote
/// it relative (events for it are then reported relative too).
pub fn canonical_watch(domid: u16, raw: &[u8]) -> XsResult<(String, bool)> {
    if raw.first() == Some(&b'@') {
        if raw.len() > ABS_PATH_MAX || !raw.iter().all(|b| valid_char(*b)) {
            return Err(XsError::Einval);
        }
        let text = core::str::from_utf8(raw).map_err(|_| XsError::Einval)?;
        return Ok((String::from(text), false));
    }
    let relative = raw.first() != Some(&b'/');
    Ok((canonical(domid, raw)?, relative))
}

/// Whether `path` names a special watch node (`@introduceDomain`,
/// `@releaseDomain`) whose permissions may be read and set.
pub fn special_node(path: &[u8]) -> Option<&'static str> {
    match path {
        b"@introduceDomain" => Some(INTRODUCE_DOMAIN),
        b"@releaseDomain" => Some(RELEASE_DOMAIN),
        _ => None,
    }
}

/// The parent of a canonical path (`None` for the root).
pub fn parent(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

/// The last component of a canonical path ("" for the root).
pub fn basename(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// `parent/name` for a canonical parent.
pub fn join(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

/// Whether `child` is `ancestor` or below it, per xenstore.txt ("identical,
/// or parent is /, or parent/ is an initial substring of child"). Works for
/// `@` names too (`@releaseDomain/3` is below `@releaseDomain`).
pub fn is_child(child: &str, ancestor: &str) -> bool {
    if child == ancestor || ancestor == "/" && child.starts_with('/') {
        return true;
    }
    child.len() > ancestor.len()
        && child.starts_with(ancestor)
        && child.as_bytes()[ancestor.len()] == b'/'
}

/// Depth of a canonical path in components (root 0, `/a` 1).
pub fn depth(path: &str) -> usize {
    if path == "/" {
        0
    } else {
        path.bytes().filter(|b| *b == b'/').count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn resolves_relative_and_absolute() {
        assert_eq!(
            canonical(3, b"device/vif").unwrap(),
            "/local/domain/3/device/vif"
        );
        assert_eq!(canonical(3, b"/a/b").unwrap(), "/a/b");
        assert_eq!(canonical(0, b"/").unwrap(), "/");
    }

    #[test]
    fn malformed_paths_are_einval() {
        let long_rel = vec![b'a'; REL_PATH_MAX + 1];
        let mut long_abs = vec![b'a'; ABS_PATH_MAX + 1];
        long_abs[0] = b'/';
        for bad in [
            &b""[..],
            b"/a/",
            b"/a//b",
            b"//",
            b"a b",
            b"/a\xff",
            b"/a.b",
            b"@introduceDomain",
            &long_rel,
            &long_abs,
        ] {
            assert_eq!(canonical(1, bad), Err(XsError::Einval), "len {}", bad.len());
        }
        // Exactly the maxima are fine.
        long_abs.pop();
        assert!(canonical(1, &long_abs).is_ok());
        let rel = vec![b'a'; REL_PATH_MAX];
        assert!(canonical(0, &rel).is_ok());
    }

    #[test]
    fn watch_paths() {
        assert_eq!(
            canonical_watch(2, b"@releaseDomain").unwrap(),
            ("@releaseDomain".into(), false)
        );
        assert_eq!(
            canonical_watch(2, b"x").unwrap(),
            ("/local/domain/2/x".into(), true)
        );
        assert!(canonical_watch(2, b"@a b").is_err());
    }

    #[test]
    fn tree_helpers() {
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/"), None);
        assert_eq!(basename("/a/b"), "b");
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
        assert!(is_child("/a/b", "/a"));
        assert!(is_child("/a", "/a"));
        assert!(is_child("/a", "/"));
        assert!(!is_child("/ab", "/a"));
        assert!(!is_child("@releaseDomain", "/"));
        assert!(is_child("@releaseDomain/3", "@releaseDomain"));
        assert_eq!(depth("/"), 0);
        assert_eq!(depth("/a/b"), 2);
    }
}

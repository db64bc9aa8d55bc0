//! Request paths: decoded once, normalised, and confined to the export root.
//!
//! A path from a URL is attacker-controlled input that becomes a name on a shared file
//! system, so anything ambiguous is refused rather than repaired: `..` (at any depth, so
//! no path can climb even temporarily), NUL and other control characters, backslashes
//! (a Windows client's separator), invalid UTF-8, and names longer than NFS allows. Only
//! harmless spelling is normalised (`a//b`, `./a`, a trailing `/`), so two spellings of a
//! file route to the same mount target and name the same file.
//!
//! Decoding happens exactly once: `%2e%2e` becomes `..` and is refused, while `%252e`
//! becomes the literal name `%2e` and is never decoded again.

use std::fmt;

/// NFSv4 servers (and EFS) refuse longer names with NAMETOOLONG; refusing them here
/// keeps the failure a clear 400 instead of a server error.
pub const MAX_NAME_BYTES: usize = 255;
/// Linux PATH_MAX, the longest path any client of the same file system can open.
pub const MAX_PATH_BYTES: usize = 4096;

/// A normalised path relative to the export root: no leading or trailing `/`, no empty,
/// `.` or `..` components. The empty path is the root itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FilePath(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path is not valid percent-encoding of UTF-8")]
    Encoding,
    #[error("the path contains a NUL or control character")]
    Control,
    #[error("the path contains a backslash; use / to separate names")]
    Backslash,
    #[error("the path contains `..`; paths are relative to the export root and cannot leave it")]
    Parent,
    #[error("a name in the path is {0} bytes; at most {MAX_NAME_BYTES} are allowed")]
    NameTooLong(usize),
    #[error("the path is {0} bytes; at most {MAX_PATH_BYTES} are allowed")]
    PathTooLong(usize),
    #[error("the path names the export root; name a file")]
    Root,
    #[error("names beginning with `.efs-router-` are the router's temporary files")]
    Reserved,
}

/// Prefix of the router's temporary upload names, reserved so a client can neither
/// collide with an upload in flight nor read a half-written file.
pub const TEMP_PREFIX: &str = ".efs-router-";

impl FilePath {
    /// Parses the still percent-encoded path of a request URL (the part after `/files/`
    /// or `/dirs/`).
    pub fn from_url(raw: &str) -> Result<Self, PathError> {
        let bytes: Vec<u8> = percent_decode(raw)?;
        let decoded = String::from_utf8(bytes).map_err(|_| PathError::Encoding)?;
        Self::parse(&decoded)
    }

    /// Parses an already decoded path.
    pub fn parse(decoded: &str) -> Result<Self, PathError> {
        if decoded.len() > MAX_PATH_BYTES {
            return Err(PathError::PathTooLong(decoded.len()));
        }
        if decoded.chars().any(char::is_control) {
            return Err(PathError::Control);
        }
        if decoded.contains('\\') {
            return Err(PathError::Backslash);
        }
        let mut names = Vec::new();
        for name in decoded.split('/') {
            match name {
                "" | "." => {}
                ".." => return Err(PathError::Parent),
                _ if name.len() > MAX_NAME_BYTES => return Err(PathError::NameTooLong(name.len())),
                _ if name.starts_with(TEMP_PREFIX) => return Err(PathError::Reserved),
                _ => names.push(name),
            }
        }
        Ok(FilePath(names.join("/")))
    }

    /// Like [`FilePath::from_url`], for operations on a file: the root is refused.
    pub fn file_from_url(raw: &str) -> Result<Self, PathError> {
        let path = Self::from_url(raw)?;
        if path.is_root() {
            return Err(PathError::Root);
        }
        Ok(path)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The directory holding this path (the root for a top-level name).
    pub fn parent(&self) -> FilePath {
        match self.0.rsplit_once('/') {
            Some((dir, _)) => FilePath(dir.to_string()),
            None => FilePath(String::new()),
        }
    }

    /// The last name (empty for the root).
    pub fn name(&self) -> &str {
        self.0.rsplit_once('/').map_or(self.0.as_str(), |(_, n)| n)
    }

    /// `self/name` for a name known to be a single valid component.
    pub fn join(&self, name: &str) -> FilePath {
        debug_assert!(!name.is_empty() && !name.contains('/'));
        if self.is_root() {
            FilePath(name.to_string())
        } else {
            FilePath(format!("{}/{}", self.0, name))
        }
    }

    /// Each ancestor directory from the top down, excluding the root and self:
    /// `a/b/c` gives `a`, `a/b`.
    pub fn ancestors(&self) -> impl Iterator<Item = FilePath> + '_ {
        self.0
            .match_indices('/')
            .map(|(i, _)| FilePath(self.0[..i].to_string()))
    }
}

impl fmt::Display for FilePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", self.0)
    }
}

/// Strict percent-decoding: a `%` must be followed by two hex digits (a lenient decoder
/// would pass `%zz` through, and `%%32%65` tricks rely on such leniency).
fn percent_decode(raw: &str) -> Result<Vec<u8>, PathError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(PathError::Encoding)?;
            // from_str_radix alone would take `%+1`.
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return Err(PathError::Encoding);
            }
            let hex = std::str::from_utf8(hex).map_err(|_| PathError::Encoding)?;
            let value = u8::from_str_radix(hex, 16).map_err(|_| PathError::Encoding)?;
            out.push(value);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn harmless_spellings_normalise_to_one_path() {
        for raw in [
            "a/b.txt",
            "/a/b.txt",
            "a//b.txt",
            "./a/./b.txt",
            "a/b.txt/",
            "a%2Fb.txt",
        ] {
            assert_eq!(
                FilePath::from_url(raw).map(|p| p.0),
                Ok("a/b.txt".into()),
                "{raw}"
            );
        }
        assert_eq!(
            FilePath::from_url("%E6%B5%8B%20x").map(|p| p.0),
            Ok("测 x".into())
        );
        // Decoded once: a double-encoded dot-dot is a literal, harmless name.
        assert_eq!(
            FilePath::from_url("%252e%252e/x").map(|p| p.0),
            Ok("%2e%2e/x".into())
        );
    }

    #[test]
    fn hostile_paths_are_refused() {
        let long_name = "n".repeat(256);
        let long_path = "d/".repeat(2049);
        let cases: &[(&str, PathError)] = &[
            ("..", PathError::Parent),
            ("../etc/passwd", PathError::Parent),
            ("a/../../etc/passwd", PathError::Parent),
            ("a/b/..", PathError::Parent),
            ("%2e%2e/etc/passwd", PathError::Parent),
            ("%2E%2E%2Fetc", PathError::Parent),
            ("a%2F..%2F..%2Fb", PathError::Parent),
            ("a/%2e%2e", PathError::Parent),
            ("a\\..\\b", PathError::Backslash),
            ("..%5c..%5cwindows", PathError::Backslash),
            ("a%5cb", PathError::Backslash),
            ("a%00b", PathError::Control),
            ("a%00/../b", PathError::Control),
            ("a%0a", PathError::Control),
            ("a%7f", PathError::Control),
            ("a%c2%85", PathError::Control),
            ("%ff", PathError::Encoding),
            ("%c0%ae%c0%ae/x", PathError::Encoding),
            ("%e0%80%ae", PathError::Encoding),
            ("%", PathError::Encoding),
            ("%2", PathError::Encoding),
            ("%zz", PathError::Encoding),
            ("%+0", PathError::Encoding),
            ("a%+fb", PathError::Encoding),
            ("%%32%65", PathError::Encoding),
            (&long_name, PathError::NameTooLong(256)),
            (&long_path, PathError::PathTooLong(4098)),
            (".efs-router-upload", PathError::Reserved),
            ("a/.efs-router-x.tmp", PathError::Reserved),
        ];
        for (raw, expected) in cases {
            assert_eq!(FilePath::from_url(raw).as_ref(), Err(expected), "{raw}");
        }
        for raw in ["", "/", "./", "%2F"] {
            assert_eq!(
                FilePath::file_from_url(raw),
                Err(PathError::Root),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn parents_names_and_ancestors() {
        let p = FilePath::parse("a/b/c.txt").unwrap();
        assert_eq!(p.parent().as_str(), "a/b");
        assert_eq!(p.name(), "c.txt");
        let ancestors: Vec<String> = p.ancestors().map(|a| a.0).collect();
        assert_eq!(ancestors, ["a", "a/b"]);
        let top = FilePath::parse("c.txt").unwrap();
        assert!(top.parent().is_root());
        assert_eq!(top.ancestors().count(), 0);
        assert_eq!(top.parent().join("d").as_str(), "d");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever a client sends, an accepted path has only plain names: it can be
        /// appended to the export root without leaving it.
        #[test]
        fn accepted_paths_stay_under_the_root(raw in "[a-z./\\\\%0-9A-F\u{0}-\u{1f}é]{0,40}") {
            if let Ok(p) = FilePath::from_url(&raw) {
                for name in p.as_str().split('/').filter(|n| !p.is_root() || !n.is_empty()) {
                    prop_assert!(!name.is_empty() && name != "." && name != "..", "{raw:?} gave {p:?}");
                    prop_assert!(!name.contains('\\') && !name.chars().any(char::is_control));
                }
                // Normalising is idempotent: the canonical form parses to itself.
                prop_assert_eq!(FilePath::parse(p.as_str()), Ok(p.clone()));
            }
        }
    }
}

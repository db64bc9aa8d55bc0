//! Paths on the file system: normalised and confined to the export root.
//!
//! A path made from a request (an S3 bucket and key) is attacker-controlled input that
//! becomes a name on a shared file system, so anything ambiguous is refused rather than
//! repaired: `..` (at any depth, so no path can climb even temporarily), NUL and other
//! control characters, and names longer than NFS allows. Only harmless spelling is
//! normalised (`a//b`, `./a`, a trailing `/`), so two spellings name the same file and
//! route to the same mount target.

use std::fmt;

/// NFSv4 servers (and EFS) refuse longer names with NAMETOOLONG; refusing them here
/// keeps the failure a clear client error instead of a server error.
pub const MAX_NAME_BYTES: usize = 255;
/// Linux PATH_MAX, the longest path any client of the same file system can open.
pub const MAX_PATH_BYTES: usize = 4096;

/// A normalised path relative to the export root: no leading or trailing `/`, no empty,
/// `.` or `..` components. The empty path is the root itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FilePath(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path contains a NUL or control character")]
    Control,
    #[error("the path contains `..`; paths are relative to the export root and cannot leave it")]
    Parent,
    #[error("a name in the path is {0} bytes; at most {MAX_NAME_BYTES} are allowed")]
    NameTooLong(usize),
    #[error("the path is {0} bytes; at most {MAX_PATH_BYTES} are allowed")]
    PathTooLong(usize),
}

impl FilePath {
    /// Parses a path (already decoded).
    pub fn parse(decoded: &str) -> Result<Self, PathError> {
        if decoded.len() > MAX_PATH_BYTES {
            return Err(PathError::PathTooLong(decoded.len()));
        }
        if decoded.chars().any(char::is_control) {
            return Err(PathError::Control);
        }
        let mut names = Vec::new();
        for name in decoded.split('/') {
            match name {
                "" | "." => {}
                ".." => return Err(PathError::Parent),
                _ if name.len() > MAX_NAME_BYTES => return Err(PathError::NameTooLong(name.len())),
                _ => names.push(name),
            }
        }
        Ok(FilePath(names.join("/")))
    }

    /// A path the router builds itself from names it chose (its reserved directory,
    /// hex ids), which are normalised by construction.
    pub fn trusted(path: String) -> Self {
        debug_assert_eq!(Self::parse(&path).as_ref(), Ok(&FilePath(path.clone())));
        FilePath(path)
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn harmless_spellings_normalise_to_one_path() {
        for raw in ["a/b.txt", "/a/b.txt", "a//b.txt", "./a/./b.txt", "a/b.txt/"] {
            assert_eq!(
                FilePath::parse(raw).map(|p| p.0),
                Ok("a/b.txt".into()),
                "{raw}"
            );
        }
        // No decoding here: what looks encoded is a literal name.
        assert_eq!(
            FilePath::parse("%2e%2e/x").map(|p| p.0),
            Ok("%2e%2e/x".into())
        );
        assert_eq!(FilePath::parse("a\\b").map(|p| p.0), Ok("a\\b".into()));
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
            ("a\0b", PathError::Control),
            ("a\n", PathError::Control),
            ("a\u{7f}", PathError::Control),
            ("a\u{85}", PathError::Control),
            (&long_name, PathError::NameTooLong(256)),
            (&long_path, PathError::PathTooLong(4098)),
        ];
        for (raw, expected) in cases {
            assert_eq!(FilePath::parse(raw).as_ref(), Err(expected), "{raw}");
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
            if let Ok(p) = FilePath::parse(&raw) {
                for name in p.as_str().split('/').filter(|n| !p.is_root() || !n.is_empty()) {
                    prop_assert!(!name.is_empty() && name != "." && name != "..", "{raw:?} gave {p:?}");
                    prop_assert!(!name.chars().any(char::is_control));
                }
                // Normalising is idempotent: the canonical form parses to itself.
                prop_assert_eq!(FilePath::parse(p.as_str()), Ok(p.clone()));
            }
        }
    }
}

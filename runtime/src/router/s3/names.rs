//! Where S3 names live on the file system, and which names are refused.
//!
//! A bucket is a top-level directory of the export; the object `a/b/c.txt` of bucket
//! `photos` is the file `photos/a/b/c.txt`. S3 keys are any UTF-8 up to 1,024 bytes, a
//! file system's are not, so a key is refused (never rewritten) when it could not be
//! the same name for every client of the file system:
//! - an empty, `.` or `..` segment (`a//b`, `./a`, `a/../b`): the path would name
//!   another file, or no file;
//! - a NUL or other control character: NFS forbids NUL, and the others break the tools
//!   people use on the same files;
//! - a segment over 255 bytes (NFS and EFS refuse longer names);
//! - more than [`MAX_SEGMENTS`] segments: each directory level is a MKDIR on the first
//!   PUT and a lookup on every one after, so one hostile key must not cost hundreds.
//!
//! Names are stored as the bytes the client sent, as S3 and POSIX keep them: no Unicode
//! normalisation (`é` as one code point and as `e` plus a combining accent are two keys,
//! as in S3), and bidirectional-override and zero-width characters are allowed, as S3
//! allows them; a tool that lists the files shows them as they are.
//!
//! A key ending in `/` (the "folder" objects consoles make) is the directory itself.
//!
//! Everything the router keeps for itself lives under [`RESERVED`] at the export root,
//! a name no bucket can have (bucket names begin with a letter or digit).

use s3s::{S3Error, S3ErrorCode};

use crate::router::path::{FilePath, MAX_NAME_BYTES};

/// The router's private directory at the export root: sidecar metadata, multipart
/// staging and uploads in flight. The scaler's file count leaves it out.
pub const RESERVED: &str = ".efs-router";

/// S3's limit on key length, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;

/// Path segments a key may have (directory levels plus the name).
pub const MAX_SEGMENTS: usize = 100;

/// An object's place: its bucket, its key, and the file (or, for a key ending in `/`,
/// the directory) that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectPath {
    pub bucket: String,
    pub key: String,
    pub path: FilePath,
    /// The key ends in `/`: a folder object, held by the directory itself.
    pub folder: bool,
}

/// The directory of a bucket.
pub fn bucket_dir(bucket: &str) -> Result<FilePath, S3Error> {
    if !valid_bucket(bucket) {
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidBucketName,
            format!(
                "{bucket:?} is not a valid bucket name: 3 to 63 lowercase letters, digits, dots and hyphens, beginning and ending with a letter or digit"
            ),
        ));
    }
    FilePath::parse(bucket).map_err(|e| invalid_key(bucket, &e.to_string()))
}

/// S3's rules for general purpose bucket names.
pub fn valid_bucket(name: &str) -> bool {
    let bytes = name.as_bytes();
    (3..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'.' || *b == b'-')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && !name.contains("..")
        && name.parse::<std::net::Ipv4Addr>().is_err()
        && !["xn--", "sthree-", "amzn-s3-demo-"]
            .iter()
            .any(|p| name.starts_with(p))
        && !["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"]
            .iter()
            .any(|s| name.ends_with(s))
}

/// The file (or directory) holding `key` in `bucket`.
pub fn object(bucket: &str, key: &str) -> Result<ObjectPath, S3Error> {
    let dir = bucket_dir(bucket)?;
    check_key(key)?;
    let (body, folder) = match key.strip_suffix('/') {
        Some(body) => (body, true),
        None => (key, false),
    };
    let path = FilePath::parse(&format!("{}/{body}", dir.as_str()))
        .map_err(|e| invalid_key(key, &e.to_string()))?;
    Ok(ObjectPath {
        bucket: bucket.to_string(),
        key: key.to_string(),
        path,
        folder,
    })
}

/// Whether a key can name a file: see the module's list.
pub fn check_key(key: &str) -> Result<(), S3Error> {
    if key.is_empty() {
        return Err(invalid_key(key, "the key is empty"));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(S3Error::with_message(
            S3ErrorCode::KeyTooLongError,
            format!(
                "the key is {} bytes; at most {MAX_KEY_BYTES} are allowed",
                key.len()
            ),
        ));
    }
    if key.chars().any(char::is_control) {
        return Err(invalid_key(
            key,
            "the key contains a NUL or control character, which cannot be part of a file name",
        ));
    }
    let body = key.strip_suffix('/').unwrap_or(key);
    let segments = body.split('/').count();
    if segments > MAX_SEGMENTS {
        return Err(invalid_key(
            key,
            &format!(
                "the key has {segments} `/`-separated segments; at most {MAX_SEGMENTS} are allowed (each is a directory level)"
            ),
        ));
    }
    for segment in body.split('/') {
        match segment {
            "" => {
                return Err(invalid_key(
                    key,
                    "the key has an empty segment (a leading `/` or `//`), which would name another file",
                ));
            }
            "." | ".." => {
                return Err(invalid_key(
                    key,
                    "the key has a `.` or `..` segment, which would name another file",
                ));
            }
            s if s.len() > MAX_NAME_BYTES => {
                return Err(S3Error::with_message(
                    S3ErrorCode::KeyTooLongError,
                    format!(
                        "a segment of the key is {} bytes; file names hold at most {MAX_NAME_BYTES}",
                        s.len()
                    ),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

fn invalid_key(key: &str, why: &str) -> S3Error {
    S3Error::with_message(
        S3ErrorCode::InvalidArgument,
        format!("object key {key:?} cannot be stored as a file: {why}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_s3() {
        for ok in ["abc", "my-bucket.v2", "a1b", &"a".repeat(63)] {
            assert!(valid_bucket(ok), "{ok}");
        }
        for bad in [
            "ab",
            &"a".repeat(64),
            "Abc",
            "a_b",
            "-abc",
            "abc-",
            "a..b",
            "192.168.1.1",
            "xn--abc",
            "abc-s3alias",
            ".efs-router",
            "a/b",
        ] {
            assert!(!valid_bucket(bad), "{bad}");
        }
    }

    #[test]
    fn keys_map_to_paths_under_their_bucket() {
        let o = object("photos", "a/b/c.txt").unwrap();
        assert_eq!(o.path.as_str(), "photos/a/b/c.txt");
        assert!(!o.folder);
        let f = object("photos", "a/b/").unwrap();
        assert_eq!(f.path.as_str(), "photos/a/b");
        assert!(f.folder);
        // Decoded names that look encoded are literal.
        assert_eq!(
            object("photos", "%2e%2e/x").unwrap().path.as_str(),
            "photos/%2e%2e/x"
        );
        assert_eq!(
            object("photos", "測 x").unwrap().path.as_str(),
            "photos/測 x"
        );
        // No normalisation: composed and decomposed forms are two keys, as in S3.
        assert_ne!(
            object("photos", "caf\u{e9}").unwrap().path,
            object("photos", "cafe\u{301}").unwrap().path
        );
        // The deepest key allowed.
        let deepest = format!("{}x", "k/".repeat(MAX_SEGMENTS - 1));
        assert!(object("photos", &deepest).is_ok());
    }

    #[test]
    fn keys_that_cannot_be_file_names_are_refused() {
        let long_segment = "n".repeat(256);
        let long_key = "k/".repeat(513);
        let deep_key = format!("{}x", "k/".repeat(MAX_SEGMENTS));
        let cases: &[(&str, S3ErrorCode)] = &[
            ("", S3ErrorCode::InvalidArgument),
            ("/a", S3ErrorCode::InvalidArgument),
            ("a//b", S3ErrorCode::InvalidArgument),
            ("..", S3ErrorCode::InvalidArgument),
            ("a/../../etc/passwd", S3ErrorCode::InvalidArgument),
            ("./a", S3ErrorCode::InvalidArgument),
            ("a/.", S3ErrorCode::InvalidArgument),
            ("a\0b", S3ErrorCode::InvalidArgument),
            ("a\nb", S3ErrorCode::InvalidArgument),
            ("a\u{85}b", S3ErrorCode::InvalidArgument),
            ("/", S3ErrorCode::InvalidArgument),
            (&long_segment, S3ErrorCode::KeyTooLongError),
            (&long_key, S3ErrorCode::KeyTooLongError),
            (&deep_key, S3ErrorCode::InvalidArgument),
        ];
        for (key, code) in cases {
            match object("photos", key) {
                Err(e) => assert_eq!(e.code(), code, "{key:?}"),
                Ok(p) => panic!("{key:?} was accepted as {p:?}"),
            }
        }
        assert_eq!(
            object(".efs-router", "x").unwrap_err().code(),
            &S3ErrorCode::InvalidBucketName
        );
    }
}

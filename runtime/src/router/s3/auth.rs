//! The key pairs S3 requests are signed with.
//!
//! One pair from `ROUTER_ACCESS_KEY_ID` and `ROUTER_SECRET_ACCESS_KEY` (and, during a
//! rotation, the pair being retired from `ROUTER_PREVIOUS_ACCESS_KEY_ID` and
//! `ROUTER_PREVIOUS_SECRET_ACCESS_KEY`), and/or every
//! pair of a credentials file in the AWS shared-credentials format (each profile's
//! `aws_access_key_id` / `aws_secret_access_key`). The file is read again when it
//! changes, so keys rotate with an overlap: add the new pair, move the clients, remove
//! the old pair. `s3s` checks the signatures (headers, presigned URLs, streaming
//! payloads) against these secrets; a secret is never logged or printed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Error, S3ErrorCode, S3Result};

/// Access key id → secret.
type KeyMap = HashMap<String, String>;

#[derive(Clone, Default)]
pub struct Keys {
    inner: Arc<RwLock<Inner>>,
}

#[derive(Default)]
struct Inner {
    from_env: KeyMap,
    from_file: KeyMap,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Access key ids only; never a secret.
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        let mut ids: Vec<&String> = inner
            .from_env
            .keys()
            .chain(inner.from_file.keys())
            .collect();
        ids.sort();
        f.debug_struct("Keys")
            .field("access_key_ids", &ids)
            .finish()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeysError {
    #[error("{file}:{line}: {problem}")]
    File {
        file: String,
        line: usize,
        problem: String,
    },
    #[error("{0}")]
    Read(String),
    #[error("{0} and {1} must be set together")]
    HalfPair(&'static str, &'static str),
}

impl Keys {
    /// The pairs from the environment and the file's pairs.
    pub fn load(
        env_pairs: impl IntoIterator<Item = (String, String)>,
        file: Option<&Path>,
    ) -> Result<Self, KeysError> {
        let from_env: KeyMap = env_pairs.into_iter().collect();
        let from_file = match file {
            Some(f) => read_file(f)?,
            None => KeyMap::new(),
        };
        Ok(Keys {
            inner: Arc::new(RwLock::new(Inner {
                from_env,
                from_file,
            })),
        })
    }

    /// The pair in the variables `id` and `secret`: both set, or neither (or empty, as
    /// a secret's previous pair is outside a rotation).
    pub fn env_pair(
        id: &'static str,
        secret: &'static str,
        read: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<(String, String)>, KeysError> {
        match (
            read(id).filter(|s| !s.is_empty()),
            read(secret).filter(|s| !s.is_empty()),
        ) {
            (Some(i), Some(s)) => Ok(Some((i, s))),
            (None, None) => Ok(None),
            _ => Err(KeysError::HalfPair(id, secret)),
        }
    }

    pub fn is_empty(&self) -> bool {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        inner.from_env.is_empty() && inner.from_file.is_empty()
    }

    pub fn count(&self) -> usize {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        inner.from_env.len() + inner.from_file.len()
    }

    fn secret(&self, access_key: &str) -> Option<String> {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        inner
            .from_env
            .get(access_key)
            .or_else(|| inner.from_file.get(access_key))
            .cloned()
    }

    /// Reads `file` again whenever its modification time changes (checked every
    /// `every`); a file that fails to parse leaves the keys as they were, and says so.
    pub fn spawn_reload(&self, file: PathBuf, every: Duration) {
        let keys = self.clone();
        tokio::spawn(async move {
            let mut seen = modified(&file);
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let now = modified(&file);
                if now == seen {
                    continue;
                }
                seen = now;
                let path = file.clone();
                match tokio::task::spawn_blocking(move || read_file(&path)).await {
                    Ok(Ok(map)) => {
                        let n = map.len();
                        keys.inner
                            .write()
                            .unwrap_or_else(|p| p.into_inner())
                            .from_file = map;
                        tracing::info!(file = %file.display(), pairs = n, "credentials file read again");
                    }
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "credentials file not reloaded; the previous keys stay in force")
                    }
                    Err(e) => tracing::error!(error = %e, "reading the credentials file failed"),
                }
            }
        });
    }
}

fn modified(file: &Path) -> Option<SystemTime> {
    std::fs::metadata(file).and_then(|m| m.modified()).ok()
}

#[async_trait::async_trait]
impl S3Auth for Keys {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.secret(access_key) {
            Some(secret) => Ok(SecretKey::from(secret)),
            None => Err(S3Error::with_message(
                S3ErrorCode::InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records.",
            )),
        }
    }
}

/// Parses an AWS shared-credentials file: `[profile]` sections with
/// `aws_access_key_id` and `aws_secret_access_key`; other keys are ignored.
fn read_file(file: &Path) -> Result<KeyMap, KeysError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| KeysError::Read(format!("{}: {e}", file.display())))?;
    parse(&text, &file.display().to_string())
}

fn parse(text: &str, name: &str) -> Result<KeyMap, KeysError> {
    let problem = |line: usize, problem: String| KeysError::File {
        file: name.to_string(),
        line,
        problem,
    };
    let mut map = KeyMap::new();
    // (section, its line, id, secret)
    let mut section: Option<(String, usize, Option<String>, Option<String>)> = None;
    let finish = |s: Option<(String, usize, Option<String>, Option<String>)>,
                  map: &mut KeyMap|
     -> Result<(), KeysError> {
        match s {
            None | Some((_, _, None, None)) => Ok(()),
            Some((_, _, Some(id), Some(secret))) => {
                map.insert(id, secret);
                Ok(())
            }
            Some((name, line, _, _)) => Err(problem(
                line,
                format!("profile [{name}] needs both aws_access_key_id and aws_secret_access_key"),
            )),
        }
    };
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let n = i + 1;
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let Some(name) = rest.strip_suffix(']') else {
                return Err(problem(n, "a section header must end with `]`".into()));
            };
            finish(section.take(), &mut map)?;
            section = Some((name.trim().to_string(), n, None, None));
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(problem(n, "expected `name = value`".into()));
        };
        let Some(current) = section.as_mut() else {
            return Err(problem(n, "a setting before any [profile] header".into()));
        };
        let value = value.trim().to_string();
        match key.trim() {
            "aws_access_key_id" => current.2 = Some(value),
            "aws_secret_access_key" => current.3 = Some(value),
            _ => {}
        }
    }
    finish(section, &mut map)?;
    if map.is_empty() {
        return Err(problem(
            0,
            "no profile with aws_access_key_id and aws_secret_access_key".into(),
        ));
    }
    Ok(map)
}

/// Who may call with no signature: nobody, unless `--anonymous`.
#[derive(Debug)]
pub struct Access {
    pub anonymous: bool,
}

/// SigV4 caps a presigned URL's life at a week.
const MAX_PRESIGNED_SECONDS: u64 = 604_800;

/// A presigned URL asking to live longer than SigV4 allows.
fn expires_too_far(query: Option<&str>) -> Option<S3Error> {
    let expires = query?
        .split('&')
        .find_map(|kv| kv.strip_prefix("X-Amz-Expires="))?;
    match expires.parse::<u64>() {
        Ok(s) if s <= MAX_PRESIGNED_SECONDS => None,
        _ => {
            let mut e = S3Error::with_message(
                S3ErrorCode::Custom("AuthorizationQueryParametersError".into()),
                format!(
                    "X-Amz-Expires must be a number of seconds up to a week ({MAX_PRESIGNED_SECONDS})"
                ),
            );
            e.set_status_code(http::StatusCode::BAD_REQUEST);
            Some(e)
        }
    }
}

#[async_trait::async_trait]
impl s3s::access::S3Access for Access {
    async fn check(&self, cx: &mut s3s::access::S3AccessContext<'_>) -> S3Result<()> {
        if let Some(e) = expires_too_far(cx.uri().query()) {
            return Err(e);
        }
        if cx.credentials().is_some() || self.anonymous {
            Ok(())
        } else {
            Err(S3Error::with_message(
                S3ErrorCode::AccessDenied,
                "Access Denied: the request is not signed. Sign it with the router's key pair (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_is_an_accepted_pair() {
        let map = parse(
            "# rotation in progress\n[old]\naws_access_key_id = AKOLD\naws_secret_access_key = s1\n\n[new]\naws_access_key_id=AKNEW\naws_secret_access_key=s2\nregion = eu-west-1\n",
            "creds",
        )
        .unwrap();
        assert_eq!(map.get("AKOLD").map(String::as_str), Some("s1"));
        assert_eq!(map.get("AKNEW").map(String::as_str), Some("s2"));
    }

    #[test]
    fn bad_files_name_the_line() {
        let cases = [
            ("aws_access_key_id = x\n", 1),
            ("[a]\naws_access_key_id = x\n", 1),
            ("[a\n", 1),
            ("[a]\nnonsense\n", 2),
            ("", 0),
        ];
        for (text, line) in cases {
            match parse(text, "creds") {
                Err(KeysError::File { line: l, .. }) => assert_eq!(l, line, "{text:?}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_environment_pair_comes_whole() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(Keys::env_pair("I", "S", env(&[])), Ok(None));
        assert_eq!(
            Keys::env_pair("I", "S", env(&[("I", ""), ("S", "")])),
            Ok(None)
        );
        assert_eq!(
            Keys::env_pair("I", "S", env(&[("I", "a"), ("S", "b")])),
            Ok(Some(("a".into(), "b".into())))
        );
        let half = Keys::env_pair("I", "S", env(&[("I", "a")]));
        assert_eq!(half, Err(KeysError::HalfPair("I", "S")));
        assert_eq!(
            half.unwrap_err().to_string(),
            "I and S must be set together"
        );
    }

    #[test]
    fn the_previous_pair_is_accepted_beside_the_current_one() {
        let keys = Keys::load(
            [
                ("NEW".into(), "new-secret".into()),
                ("OLD".into(), "old-secret".into()),
            ],
            None,
        )
        .unwrap();
        assert_eq!(keys.secret("NEW").as_deref(), Some("new-secret"));
        assert_eq!(keys.secret("OLD").as_deref(), Some("old-secret"));
        assert_eq!(keys.secret("OTHER"), None);
    }

    #[test]
    fn presigned_urls_live_at_most_a_week() {
        assert!(expires_too_far(Some("X-Amz-Expires=604800&a=b")).is_none());
        assert!(expires_too_far(Some("a=b")).is_none());
        assert!(expires_too_far(None).is_none());
        for bad in [
            "X-Amz-Expires=604801",
            "x=1&X-Amz-Expires=-5",
            "X-Amz-Expires=soon",
        ] {
            assert!(expires_too_far(Some(bad)).is_some(), "{bad}");
        }
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let keys = Keys::load([("AKID".into(), "very-secret".into())], None).unwrap();
        let shown = format!("{keys:?}");
        assert!(
            shown.contains("AKID") && !shown.contains("very-secret"),
            "{shown}"
        );
    }
}

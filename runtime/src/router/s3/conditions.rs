//! Conditional requests (RFC 9110 §13 as S3 applies them).
//!
//! GET and HEAD: `If-Match` and `If-Unmodified-Since` fail with 412, `If-None-Match`
//! and `If-Modified-Since` answer 304; an ETag condition, when present, decides over
//! its date partner. CopyObject's `x-amz-copy-source-if-*` use the same rules, all
//! failing with 412. Dates compare at whole seconds, as HTTP dates carry.

use s3s::dto::{ETag, ETagCondition, Timestamp};
use s3s::{S3Error, S3ErrorCode};

/// The four conditions of a request.
#[derive(Debug, Default, Clone)]
pub struct Conditions {
    pub if_match: Option<ETagCondition>,
    pub if_none_match: Option<ETagCondition>,
    pub if_modified_since: Option<Timestamp>,
    pub if_unmodified_since: Option<Timestamp>,
}

/// What the conditions say about the object as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Proceed,
    /// 304: the client's copy is current.
    NotModified,
    /// 412.
    Failed,
}

fn matches(condition: &ETagCondition, etag: &str) -> bool {
    match condition {
        ETagCondition::Any => true,
        ETagCondition::ETag(tag) => tag.value() == etag,
    }
}

fn seconds(t: &Timestamp) -> i64 {
    time::OffsetDateTime::from(t.clone()).unix_timestamp()
}

impl Conditions {
    /// `etag` is the object's ETag value (no quotes), `modified` its Last-Modified.
    pub fn evaluate(&self, etag: &str, modified: &Timestamp) -> Verdict {
        let modified = seconds(modified);
        match (&self.if_match, &self.if_unmodified_since) {
            (Some(c), _) if !matches(c, etag) => return Verdict::Failed,
            (None, Some(since)) if modified > seconds(since) => return Verdict::Failed,
            _ => {}
        }
        match (&self.if_none_match, &self.if_modified_since) {
            (Some(c), _) if matches(c, etag) => Verdict::NotModified,
            (None, Some(since)) if modified <= seconds(since) => Verdict::NotModified,
            _ => Verdict::Proceed,
        }
    }

    /// For GET and HEAD: 304 carries the validators, as HTTP requires.
    pub fn check(&self, etag: &str, modified: &Timestamp) -> Result<(), S3Error> {
        match self.evaluate(etag, modified) {
            Verdict::Proceed => Ok(()),
            Verdict::Failed => Err(precondition_failed()),
            Verdict::NotModified => {
                let mut e = S3Error::new(S3ErrorCode::NotModified);
                let mut headers = http::HeaderMap::new();
                if let Ok(v) = ETag::Strong(etag.to_string()).to_http_header() {
                    headers.insert(http::header::ETAG, v);
                }
                e.set_headers(headers);
                Err(e)
            }
        }
    }

    /// For a copy's source: every failing condition is 412.
    pub fn check_source(&self, etag: &str, modified: &Timestamp) -> Result<(), S3Error> {
        match self.evaluate(etag, modified) {
            Verdict::Proceed => Ok(()),
            Verdict::Failed | Verdict::NotModified => Err(precondition_failed()),
        }
    }
}

pub fn precondition_failed() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::PreconditionFailed,
        "At least one of the pre-conditions you specified did not hold",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from(time::OffsetDateTime::from_unix_timestamp(secs).unwrap())
    }

    fn tag(v: &str) -> Option<ETagCondition> {
        Some(ETagCondition::ETag(ETag::Strong(v.into())))
    }

    #[test]
    fn etag_conditions() {
        let now = at(1_000);
        let c = |m, n| Conditions {
            if_match: m,
            if_none_match: n,
            ..Conditions::default()
        };
        assert_eq!(c(tag("a"), None).evaluate("a", &now), Verdict::Proceed);
        assert_eq!(c(tag("b"), None).evaluate("a", &now), Verdict::Failed);
        assert_eq!(
            c(Some(ETagCondition::Any), None).evaluate("a", &now),
            Verdict::Proceed
        );
        assert_eq!(c(None, tag("a")).evaluate("a", &now), Verdict::NotModified);
        assert_eq!(c(None, tag("b")).evaluate("a", &now), Verdict::Proceed);
        assert_eq!(
            c(None, Some(ETagCondition::Any)).evaluate("a", &now),
            Verdict::NotModified
        );
    }

    #[test]
    fn date_conditions_and_which_one_decides() {
        let modified = at(1_000);
        let c = Conditions {
            if_modified_since: Some(at(999)),
            ..Conditions::default()
        };
        assert_eq!(c.evaluate("a", &modified), Verdict::Proceed);
        let c = Conditions {
            if_modified_since: Some(at(1_000)),
            ..Conditions::default()
        };
        assert_eq!(c.evaluate("a", &modified), Verdict::NotModified);
        let c = Conditions {
            if_unmodified_since: Some(at(999)),
            ..Conditions::default()
        };
        assert_eq!(c.evaluate("a", &modified), Verdict::Failed);
        // An ETag condition decides over its date partner.
        let c = Conditions {
            if_match: tag("a"),
            if_unmodified_since: Some(at(999)),
            ..Conditions::default()
        };
        assert_eq!(c.evaluate("a", &modified), Verdict::Proceed);
        let c = Conditions {
            if_none_match: tag("b"),
            if_modified_since: Some(at(2_000)),
            ..Conditions::default()
        };
        assert_eq!(c.evaluate("a", &modified), Verdict::Proceed);
        // Sub-second modification times compare at whole seconds.
        let fine = Timestamp::from(
            time::OffsetDateTime::from_unix_timestamp(1_000).unwrap()
                + time::Duration::milliseconds(500),
        );
        let c = Conditions {
            if_modified_since: Some(at(1_000)),
            ..Conditions::default()
        };
        assert_eq!(c.evaluate("a", &fine), Verdict::NotModified);
    }
}

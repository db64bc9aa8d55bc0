//! Container image references as environment files give them, for the application
//! containers: checked before rendering, pinned by digest when given one, and known to
//! be this region's ECR (the task execution role must be allowed to pull them) or not.

/// A parsed `[registry/]repository[:tag][@sha256:digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef<'a> {
    /// The registry host, when the reference names one (a first component with a `.` or
    /// `:`, or `localhost`, as Docker decides).
    pub registry: Option<&'a str>,
    pub repository: &'a str,
    pub tag: Option<&'a str>,
    /// `sha256:<64 hex>`.
    pub digest: Option<&'a str>,
}

impl<'a> ImageRef<'a> {
    pub fn parse(text: &'a str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("it is empty".into());
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("it contains whitespace".into());
        }
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => {
                let hex = digest
                    .strip_prefix("sha256:")
                    .ok_or("the digest must be sha256:<64 hex digits>")?;
                if hex.len() != 64 || !hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) {
                    return Err("the digest must be sha256:<64 lowercase hex digits>".into());
                }
                (rest, Some(digest))
            }
            None => (text, None),
        };
        // A tag follows the last `:` after the last `/` (a registry's port comes before).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag {
            let ok = !tag.is_empty()
                && tag.len() <= 128
                && tag
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
            if !ok {
                return Err(format!("the tag {tag:?} is not valid"));
            }
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, repo))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (Some(first), repo)
            }
            _ => (None, name),
        };
        if let Some(port) = registry.and_then(|r| r.split_once(':')).map(|(_, p)| p)
            && (port.is_empty() || !port.chars().all(|c| c.is_ascii_digit()))
        {
            return Err(format!("the registry's port {port:?} is not a number"));
        }
        let ok = !repository.is_empty()
            && repository.split('/').all(|part| {
                !part.is_empty()
                    && part.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && part.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
                    })
            });
        if !ok {
            return Err(format!(
                "the repository {repository:?} must be lowercase letters, digits, ., _ and -, in /-separated parts"
            ));
        }
        Ok(ImageRef {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The reference as the task definition takes it: by digest alone when there is one,
    /// so the task runs exactly that image whatever the tag points at later.
    pub fn pinned(&self) -> String {
        let name = match self.registry {
            Some(r) => format!("{r}/{}", self.repository),
            None => self.repository.to_string(),
        };
        match (self.digest, self.tag) {
            (Some(d), _) => format!("{name}@{d}"),
            (None, Some(t)) => format!("{name}:{t}"),
            (None, None) => name,
        }
    }

    /// `(account, repository)` when the image is in ECR in `region`.
    pub fn ecr_repository(&self, region: &str) -> Option<(&'a str, &'a str)> {
        let host = self.registry?;
        let (account, rest) = host.split_once(".dkr.ecr.")?;
        let in_region = rest == format!("{region}.amazonaws.com")
            || rest == format!("{region}.amazonaws.com.cn");
        (in_region && account.len() == 12 && account.chars().all(|c| c.is_ascii_digit()))
            .then_some((account, self.repository))
    }
}

/// A CloudFormation logical-id part for a name: its letters and digits, each run after
/// a `-` or `_` capitalised (`log-shipper` → `LogShipper`).
pub fn logical_id(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            if upper {
                out.push(c.to_ascii_uppercase());
            } else {
                out.push(c);
            }
            upper = false;
        } else {
            upper = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn references_split_into_registry_repository_tag_and_digest() {
        let r = ImageRef::parse("public.ecr.aws/aws-cli/aws-cli:2.22.0").unwrap();
        assert_eq!(r.registry, Some("public.ecr.aws"));
        assert_eq!(r.repository, "aws-cli/aws-cli");
        assert_eq!(r.tag, Some("2.22.0"));
        let r = ImageRef::parse("localhost:5000/app").unwrap();
        assert_eq!(
            (r.registry, r.repository, r.tag),
            (Some("localhost:5000"), "app", None)
        );
        let r = ImageRef::parse("library/busybox:1.36").unwrap();
        assert_eq!((r.registry, r.repository), (None, "library/busybox"));
    }

    #[test]
    fn a_digest_pins_the_image_and_drops_the_tag() {
        let text = format!("123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/app:v1@{DIGEST}");
        let r = ImageRef::parse(&text).unwrap();
        assert_eq!(
            r.pinned(),
            format!("123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/app@{DIGEST}")
        );
        assert_eq!(
            r.ecr_repository("ap-northeast-1"),
            Some(("123456789012", "app"))
        );
        assert_eq!(r.ecr_repository("us-east-1"), None);
        assert_eq!(ImageRef::parse("busybox:1").unwrap().pinned(), "busybox:1");
    }

    #[test]
    fn malformed_references_are_refused() {
        for bad in [
            "",
            "Upper/case",
            "app:",
            "app@sha256:abc",
            "app@md5:0123",
            "a b",
            "app:bad/tag",
            "//x",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn logical_ids_keep_letters_and_digits() {
        assert_eq!(logical_id("log-shipper"), "LogShipper");
        assert_eq!(logical_id("sync_2"), "Sync2");
    }
}

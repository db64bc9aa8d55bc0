//! Thin wrappers over the AWS SDK clients the deployer uses, one file per service. SDK
//! errors become the runtime's [`AwsError`] (one error type for both sides); decisions
//! live in the commands.

pub mod cloudformation;
pub mod cloudwatch;
pub mod ecr;
pub mod ecs;
pub mod efs;
pub mod eventbridge;
pub mod lambda;
pub mod logs;
pub mod s3;
pub mod secretsmanager;
pub mod ssm;
pub mod sts;

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
pub use runtime::aws::{AwsError, ErrorKind};

/// An AWS call that failed, as the deployer reports it: the runtime's error with a hint
/// for the kinds a person can act on.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Error(pub AwsError);

impl From<AwsError> for Error {
    fn from(e: AwsError) -> Self {
        Error(e)
    }
}

impl miette::Diagnostic for Error {
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        let hint = match self.0.kind {
            ErrorKind::AccessDenied => {
                "check the credentials in use (`aws sts get-caller-identity`, --profile) and their permissions"
            }
            ErrorKind::Network => {
                let endpoint = std::env::var("AWS_ENDPOINT_URL").ok();
                let message = self.0.message.to_lowercase();
                return Some(Box::new(match endpoint {
                    Some(url) if message.contains("refused") => format!(
                        "nothing answers at AWS_ENDPOINT_URL={url}: start the local endpoint (scripts/local-up) or unset the variable"
                    ),
                    _ if message.contains("dns") || message.contains("resolve") => {
                        "the endpoint's name does not resolve: check the region and the network (a proxy, a VPN)".to_string()
                    }
                    _ => "check the network, the region and AWS_ENDPOINT_URL".to_string(),
                }));
            }
            ErrorKind::Throttling => "AWS kept throttling after retries; try again in a minute",
            ErrorKind::Service | ErrorKind::Response => return None,
        };
        Some(Box::new(hint))
    }
}

use crate::config::Environment;

/// The SDK configuration for an environment: credentials from the standard chain
/// (profiles, SSO, `credential_process`, instance roles), the environment's region
/// unless `region` overrides it, and its `endpoint_url` (the local environment's moto
/// server) unless `AWS_ENDPOINT_URL` is set. Throttling is retried with backoff: up to
/// 8 attempts, unless `AWS_MAX_ATTEMPTS` or `AWS_RETRY_MODE` is set: then the SDK
/// resolves retries from the environment as every AWS tool does.
pub async fn sdk_config(
    env: &Environment,
    profile: Option<&str>,
    region: Option<&str>,
) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(Region::new(
        region.map_or_else(|| env.config.region.clone(), str::to_string),
    ));
    let user_chose_retries = ["AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE"]
        .iter()
        .any(|v| std::env::var_os(v).is_some());
    if !user_chose_retries {
        loader = loader.retry_config(
            RetryConfig::standard()
                .with_max_attempts(8)
                .with_initial_backoff(Duration::from_millis(250))
                .with_max_backoff(Duration::from_secs(10)),
        );
    }
    loader = loader.timeout_config(
        TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .operation_attempt_timeout(Duration::from_secs(60))
            .build(),
    );
    if let Some(profile) = profile {
        loader = loader.profile_name(profile);
    }
    if std::env::var_os("AWS_ENDPOINT_URL").is_none()
        && let Some(url) = &env.config.endpoint_url
    {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// Stops before any change when the credentials or the region are not the
/// environment's: deploying prod's template into the dev account (or another region)
/// is the mistake this catches. An environment without `account_id` (the local one)
/// checks the region only.
pub async fn guard(
    sdk: &SdkConfig,
    env: &Environment,
    profile: Option<&str>,
) -> miette::Result<()> {
    credentials(sdk, profile, env.config.endpoint_url.as_deref()).await?;
    let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
    if region != env.config.region {
        return Err(miette::miette!(
            help = "drop --region (or AWS_REGION), or deploy the environment whose region this is",
            "environment {} is in region {}, but the AWS calls would go to {region}",
            env.name,
            env.config.region
        ));
    }
    if let Some(expected) = &env.config.account_id {
        let actual = sts::account(sdk).await?;
        if &actual != expected {
            let help = format!(
                "use the credentials of account {expected} (--profile, AWS_PROFILE), or fix account_id in environments/{}.yaml",
                env.name
            );
            return Err(miette::miette!(
                help = help,
                "environment {} belongs to account {expected}, but the credentials in use are of account {actual}; nothing was changed",
                env.name
            ));
        }
    }
    Ok(())
}

/// Loads the credentials before the first call, so a person without working ones gets
/// one sentence of cause and the command that fixes it, instead of the SDK's chain of
/// provider errors under the first operation's name (`-v` shows the chain). For an
/// environment on a local endpoint (`endpoint_url`), the fix is any key pair at all.
pub async fn credentials(
    sdk: &SdkConfig,
    profile: Option<&str>,
    local_endpoint: Option<&str>,
) -> miette::Result<()> {
    use aws_credential_types::provider::ProvideCredentials as _;
    let local_help = |help: String| match local_endpoint {
        Some(url) => format!(
            "the environment's endpoint is a local one ({url}), which takes any key pair: `export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local` (scripts/local-up's own), then run again"
        ),
        None => help,
    };
    let Some(provider) = sdk.credentials_provider() else {
        return Err(miette::miette!(
            help = local_help("run `aws configure` or `aws sso login`, or set AWS_PROFILE".into()),
            "no AWS credentials are configured"
        ));
    };
    let loaded =
        tokio::time::timeout(Duration::from_secs(20), provider.provide_credentials()).await;
    let error = match loaded {
        Ok(Ok(_)) => return Ok(()),
        Ok(Err(e)) => e,
        Err(_) => {
            return Err(miette::miette!(
                help =
                    "check the network (an SSO or STS endpoint may be unreachable), then run again",
                "loading AWS credentials took longer than 20 s"
            ));
        }
    };
    tracing::debug!(error = ?error, "loading credentials failed");
    let (cause, help) = explain_credentials(&runtime::aws::causes(&error), profile);
    Err(miette::miette!(help = local_help(help), "{cause}"))
}

/// What a credentials failure means for a person, from its causes; the profile named
/// by `--profile` or `AWS_PROFILE`, when there is one.
pub fn explain_credentials(causes: &str, profile: Option<&str>) -> (String, String) {
    let profile = profile
        .map(str::to_string)
        .or_else(|| std::env::var("AWS_PROFILE").ok())
        .filter(|p| !p.is_empty());
    let lower = causes.to_lowercase();
    let login = |p: &Option<String>| match p {
        Some(p) => format!("aws sso login --profile {p}"),
        None => "aws sso login".to_string(),
    };
    if lower.contains("sso") && (lower.contains("expired") || lower.contains("token")) {
        (
            format!(
                "the SSO session{} has expired or was never started",
                profile
                    .as_ref()
                    .map(|p| format!(" of profile {p}"))
                    .unwrap_or_default()
            ),
            format!("run `{}`, then run again", login(&profile)),
        )
    } else if lower.contains("profile")
        && (lower.contains("not defined")
            || lower.contains("not found")
            || lower.contains("could not find"))
    {
        (
            format!(
                "the AWS profile {} is not in the AWS configuration (~/.aws/config, ~/.aws/credentials)",
                profile.as_deref().unwrap_or("in use")
            ),
            "check the name (`aws configure list-profiles`), or create it with `aws configure --profile NAME`".to_string(),
        )
    } else if lower.contains("no credentials")
        || lower.contains("credentials not loaded")
        || lower.contains("could not load credentials")
        || lower.contains("imds")
        || lower.contains("instance metadata")
    {
        if let Some(p) = &profile {
            return (
                format!("no AWS credentials for the profile {p}: it is not in ~/.aws/config or ~/.aws/credentials, or holds none"),
                "check the name (`aws configure list-profiles`), or set it up with `aws configure --profile NAME` or `aws configure sso`".to_string(),
            );
        }
        (
            "no AWS credentials found (environment variables, ~/.aws/credentials and config, SSO, container and instance roles were tried)".to_string(),
            "run `aws configure` (or `aws sso login`), or pass --profile NAME".to_string(),
        )
    } else {
        (
            format!("cannot load AWS credentials: {causes}"),
            "check the profile in use (`aws configure list`) and run with -v for every step"
                .to_string(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::explain_credentials;

    #[test]
    fn credential_failures_become_a_cause_and_a_command() {
        let (cause, help) = explain_credentials(
            "the SSO token for profile dev has expired: Token is expired",
            Some("dev"),
        );
        assert!(cause.contains("SSO session of profile dev"), "{cause}");
        assert_eq!(help, "run `aws sso login --profile dev`, then run again");
        let (cause, _) = explain_credentials(
            "ProfileFile provider could not be built: profile `x` was not defined",
            Some("x"),
        );
        assert!(
            cause.contains("profile x is not in the AWS configuration"),
            "{cause}"
        );
        let (cause, help) = explain_credentials(
            "the credential provider was not enabled: no credentials in the chain",
            None,
        );
        assert!(cause.starts_with("no AWS credentials found"), "{cause}");
        assert!(help.contains("aws configure"), "{help}");
        let (cause, _) = explain_credentials("something new", None);
        assert_eq!(cause, "cannot load AWS credentials: something new");
    }
}

//! Thin wrappers over the AWS SDK clients the deployer uses, one file per service. SDK
//! errors become the runtime's [`AwsError`] (one error type for both sides); decisions
//! live in the commands.

pub mod cloudformation;
pub mod cloudwatch;
pub mod ecr;
pub mod efs;
pub mod eventbridge;
pub mod lambda;
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
            ErrorKind::Network => "check the network, the region and AWS_ENDPOINT_URL",
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
pub async fn guard(sdk: &SdkConfig, env: &Environment) -> miette::Result<()> {
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

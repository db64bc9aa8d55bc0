//! Thin wrappers over the AWS SDK clients the runtime uses, one file per service. They
//! turn SDK types into the runtime's own and SDK errors into [`AwsError`], and do
//! nothing else: the decisions live in `reconcile` and `scaler`.

pub mod ecs;
pub mod efs;
pub mod ssm;

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// The SDK configuration for the runtime: region and credentials from the standard chain
/// (the Lambda's or the task's role), `AWS_ENDPOINT_URL` honoured, and retries tuned for
/// a scheduled job that has minutes, not milliseconds: throttling and transient errors
/// are retried with jittered exponential backoff; callers bound the total by their
/// deadline.
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(retry_config())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(20))
                .build(),
        )
        .load()
        .await
}

pub fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(6)
        .with_initial_backoff(Duration::from_millis(200))
        .with_max_backoff(Duration::from_secs(5))
}

/// What kind of failure, for the caller's decision (retry next run, alarm, give up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Still throttled after the SDK's retries.
    Throttling,
    /// No answer in time, or the connection failed.
    Network,
    AccessDenied,
    /// The service answered with an error code (see [`AwsError::code`]).
    Service,
    /// The answer could not be understood.
    Response,
}

#[derive(Debug, Clone)]
pub struct AwsError {
    pub service: &'static str,
    pub operation: &'static str,
    pub kind: ErrorKind,
    /// The service's error code, e.g. `MountTargetConflict`.
    pub code: Option<String>,
    pub message: String,
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} failed", self.service, self.operation)?;
        if let Some(code) = &self.code {
            write!(f, " ({code})")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl StdError for AwsError {}

/// An error and its sources as one line of their `Display` forms, each said once.
pub fn causes(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(err);
    while let Some(e) = current {
        let text = e.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    parts.join(": ")
}

impl AwsError {
    pub fn is_code(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }

    /// An answer that was received but does not say what the SDK model promises.
    pub fn response(service: &'static str, operation: &'static str, message: String) -> Self {
        AwsError {
            service,
            operation,
            kind: ErrorKind::Response,
            code: None,
            message,
        }
    }

    pub fn from_sdk<E, R>(
        service: &'static str,
        operation: &'static str,
        err: aws_sdk_ssm::error::SdkError<E, R>,
    ) -> Self
    where
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
        R: fmt::Debug + Send + Sync + 'static,
    {
        use aws_sdk_ssm::error::SdkError;
        let code = err.code().map(str::to_string);
        let kind = match &err {
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => ErrorKind::Network,
            SdkError::ResponseError(_) | SdkError::ConstructionFailure(_) => ErrorKind::Response,
            _ => match code.as_deref() {
                Some(
                    "ThrottlingException"
                    | "Throttling"
                    | "TooManyRequestsException"
                    | "RequestLimitExceeded"
                    | "ThrottledException",
                ) => ErrorKind::Throttling,
                Some(
                    "AccessDeniedException"
                    | "AccessDenied"
                    | "UnauthorizedOperation"
                    | "UnrecognizedClientException"
                    | "ExpiredTokenException",
                ) => ErrorKind::AccessDenied,
                _ => ErrorKind::Service,
            },
        };
        // The service's own message, or the causes in words, one after the other: the
        // SDK's debug form of the whole chain is for `-v`, not for a person.
        tracing::debug!(service, operation, error = %DisplayErrorContext(&err), "AWS call failed");
        let message = match err.message() {
            Some(m) => m.to_string(),
            None => causes(&err),
        };
        AwsError {
            service,
            operation,
            kind,
            code,
            message,
        }
    }
}

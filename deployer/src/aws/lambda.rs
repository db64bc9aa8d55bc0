//! AWS Lambda: running the scaler once on demand (`deployer invoke`), stopping and
//! restarting it around a teardown, and its releases: the alias, its versions.

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{InvocationType, LogType};
use base64::Engine;

use super::{AwsError, Error};

/// What an invocation returned.
#[derive(Debug, Clone)]
pub struct Invoked {
    pub status: i32,
    /// The function's result (or its error object when `function_error` is set).
    pub payload: Vec<u8>,
    /// `Unhandled` or `Handled` when the function failed.
    pub function_error: Option<String>,
    /// The last 4 KB of the invocation's log.
    pub log_tail: String,
    /// The version that ran (the alias's, or one of its weighted versions).
    pub executed_version: Option<String>,
}

/// A client for invoking a function that may run for `function_timeout`: one attempt
/// (a retried invocation would run the function again) that waits for the whole run.
pub fn invoke_client(
    sdk: &aws_config::SdkConfig,
    function_timeout: std::time::Duration,
) -> aws_sdk_lambda::Client {
    use aws_config::retry::RetryConfig;
    use aws_config::timeout::TimeoutConfig;
    let config = aws_sdk_lambda::config::Builder::from(sdk)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(std::time::Duration::from_secs(5))
                .operation_attempt_timeout(function_timeout + std::time::Duration::from_secs(30))
                .build(),
        )
        .build();
    aws_sdk_lambda::Client::from_conf(config)
}

/// Invokes `function` synchronously with `payload`, asking for the log tail.
pub async fn invoke(
    client: &aws_sdk_lambda::Client,
    function: &str,
    qualifier: &str,
    payload: &[u8],
) -> Result<Invoked, Error> {
    let out = client
        .invoke()
        .function_name(function)
        .qualifier(qualifier)
        .invocation_type(InvocationType::RequestResponse)
        .log_type(LogType::Tail)
        .payload(Blob::new(payload))
        .send()
        .await
        .map_err(|e| Error(AwsError::from_sdk("Lambda", "Invoke", e)))?;
    let log_tail = out
        .log_result()
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    Ok(Invoked {
        status: out.status_code(),
        payload: out
            .payload()
            .map(|b| b.as_ref().to_vec())
            .unwrap_or_default(),
        function_error: out.function_error().map(str::to_string),
        executed_version: out.executed_version().map(str::to_string),
        log_tail,
    })
}

/// The function's reserved concurrency; `None` when none is reserved.
pub async fn reserved_concurrency(
    client: &aws_sdk_lambda::Client,
    function: &str,
) -> Result<Option<i32>, Error> {
    let out = client
        .get_function_concurrency()
        .function_name(function)
        .send()
        .await
        .map_err(|e| Error(AwsError::from_sdk("Lambda", "GetFunctionConcurrency", e)))?;
    Ok(out.reserved_concurrent_executions())
}

/// Sets the function's reserved concurrency to `n`: 0 refuses every new invocation (the
/// scaler, before a teardown; runs already going finish), the configured 1 lets it run
/// again (after a teardown that stopped it did not finish).
pub async fn reserve(client: &aws_sdk_lambda::Client, function: &str, n: i32) -> Result<(), Error> {
    client
        .put_function_concurrency()
        .function_name(function)
        .reserved_concurrent_executions(n)
        .send()
        .await
        .map_err(|e| Error(AwsError::from_sdk("Lambda", "PutFunctionConcurrency", e)))?;
    Ok(())
}

/// Where an alias points: its version and, during a gradual release, the other version
/// with the share of invocations it gets.
#[derive(Debug, Clone, PartialEq)]
pub struct Alias {
    pub version: String,
    pub weights: Vec<(String, f64)>,
}

/// The alias `name` of `function`; `None` when it does not exist.
pub async fn alias(
    client: &aws_sdk_lambda::Client,
    function: &str,
    name: &str,
) -> Result<Option<Alias>, Error> {
    match client
        .get_alias()
        .function_name(function)
        .name(name)
        .send()
        .await
    {
        Ok(out) => {
            let mut weights: Vec<(String, f64)> = out
                .routing_config()
                .and_then(|r| r.additional_version_weights())
                .map(|w| w.iter().map(|(v, share)| (v.clone(), *share)).collect())
                .unwrap_or_default();
            weights.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(Some(Alias {
                version: out.function_version().unwrap_or_default().to_string(),
                weights,
            }))
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(e) => Err(Error(AwsError::from_sdk("Lambda", "GetAlias", e))),
    }
}

/// Points the alias at `version` alone (any weighted routing ends).
pub async fn point_alias(
    client: &aws_sdk_lambda::Client,
    function: &str,
    name: &str,
    version: &str,
) -> Result<(), Error> {
    client
        .update_alias()
        .function_name(function)
        .name(name)
        .function_version(version)
        .routing_config(aws_sdk_lambda::types::AliasRoutingConfiguration::builder().build())
        .send()
        .await
        .map_err(|e| Error(AwsError::from_sdk("Lambda", "UpdateAlias", e)))?;
    Ok(())
}

/// The function's published versions (not `$LATEST`), all pages.
pub async fn versions(
    client: &aws_sdk_lambda::Client,
    function: &str,
) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    let mut pages = client
        .list_versions_by_function()
        .function_name(function)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page =
            page.map_err(|e| Error(AwsError::from_sdk("Lambda", "ListVersionsByFunction", e)))?;
        out.extend(
            page.versions()
                .iter()
                .filter_map(|v| v.version())
                .filter(|v| *v != "$LATEST")
                .map(str::to_string),
        );
    }
    Ok(out)
}

/// Deletes one published version.
pub async fn delete_version(
    client: &aws_sdk_lambda::Client,
    function: &str,
    version: &str,
) -> Result<(), Error> {
    client
        .delete_function()
        .function_name(function)
        .qualifier(version)
        .send()
        .await
        .map_err(|e| Error(AwsError::from_sdk("Lambda", "DeleteFunction", e)))?;
    Ok(())
}

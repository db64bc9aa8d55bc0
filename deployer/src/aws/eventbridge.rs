//! Amazon EventBridge: the scaler's schedule, for `deployer status`.

use super::{AwsError, Error};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    /// `ENABLED` or `DISABLED`.
    pub state: String,
    pub schedule: Option<String>,
}

pub async fn rule(client: &aws_sdk_eventbridge::Client, name: &str) -> Result<Rule, Error> {
    let out = client
        .describe_rule()
        .name(name)
        .send()
        .await
        .map_err(|e| Error(AwsError::from_sdk("EventBridge", "DescribeRule", e)))?;
    Ok(Rule {
        name: name.to_string(),
        state: out
            .state()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        schedule: out.schedule_expression().map(str::to_string),
    })
}

/// Stops the rule from firing (the scaler's schedule, before a teardown).
pub async fn disable_rule(client: &aws_sdk_eventbridge::Client, name: &str) -> Result<(), Error> {
    client
        .disable_rule()
        .name(name)
        .send()
        .await
        .map_err(|e| Error(AwsError::from_sdk("EventBridge", "DisableRule", e)))?;
    Ok(())
}

/// Lets the rule fire again (the scaler's schedule, after a teardown that disabled it
/// did not finish).
pub async fn enable_rule(client: &aws_sdk_eventbridge::Client, name: &str) -> Result<(), Error> {
    client
        .enable_rule()
        .name(name)
        .send()
        .await
        .map_err(|e| Error(AwsError::from_sdk("EventBridge", "EnableRule", e)))?;
    Ok(())
}

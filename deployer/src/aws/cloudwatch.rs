//! Amazon CloudWatch: the environment's alarm states, for `deployer status`.

use super::{AwsError, Error};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alarm {
    pub name: String,
    /// `OK`, `ALARM` or `INSUFFICIENT_DATA`.
    pub state: String,
    pub reason: Option<String>,
}

/// The named alarms' states (up to 100 names per call, as the API allows).
pub async fn alarms(
    client: &aws_sdk_cloudwatch::Client,
    names: &[String],
) -> Result<Vec<Alarm>, Error> {
    let mut out = Vec::new();
    for chunk in names.chunks(100) {
        let mut pages = client
            .describe_alarms()
            .set_alarm_names(Some(chunk.to_vec()))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| Error(AwsError::from_sdk("CloudWatch", "DescribeAlarms", e)))?;
            for a in page.metric_alarms() {
                out.push(Alarm {
                    name: a.alarm_name().unwrap_or_default().to_string(),
                    state: a
                        .state_value()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                    reason: a.state_reason().map(str::to_string),
                });
            }
        }
    }
    Ok(out)
}

//! Amazon CloudWatch Logs: the scaler's and the router's log events, for `deployer logs`.

use super::{AwsError, Error};

/// One log event as CloudWatch Logs stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The event's own time, in milliseconds since the epoch.
    pub timestamp: i64,
    pub message: String,
    pub stream: String,
    /// Unique within the log group: how a poll that starts at the last time it saw
    /// recognises the events it printed already.
    pub id: String,
}

/// One page of `FilterLogEvents`: the events (in time order within the page) and the
/// token of the next page. A page can be empty and still have a next one.
#[derive(Debug, Default)]
pub struct Page {
    pub events: Vec<Event>,
    pub next: Option<String>,
}

/// Events of `group` from `start_ms` on (inclusive) that match `pattern` (CloudWatch
/// Logs filter pattern syntax), one page from `token`.
pub async fn filter_page(
    client: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    start_ms: i64,
    pattern: Option<&str>,
    token: Option<String>,
) -> Result<Page, Error> {
    let out = client
        .filter_log_events()
        .log_group_name(group)
        .start_time(start_ms)
        .set_filter_pattern(pattern.map(str::to_string))
        .set_next_token(token)
        .send()
        .await
        .map_err(|e| Error(AwsError::from_sdk("CloudWatch Logs", "FilterLogEvents", e)))?;
    let mut events: Vec<Event> = out
        .events()
        .iter()
        .map(|e| Event {
            timestamp: e.timestamp().unwrap_or_default(),
            message: e.message().unwrap_or_default().to_string(),
            stream: e.log_stream_name().unwrap_or_default().to_string(),
            id: e.event_id().unwrap_or_default().to_string(),
        })
        .collect();
    // Interleaved from several streams, a page is not always in time order (moto's never
    // is); the merge of the two groups needs it to be.
    events.sort_by_key(|e| e.timestamp);
    Ok(Page {
        events,
        next: out.next_token().map(str::to_string),
    })
}

pub fn client(sdk: &aws_config::SdkConfig) -> aws_sdk_cloudwatchlogs::Client {
    aws_sdk_cloudwatchlogs::Client::new(sdk)
}

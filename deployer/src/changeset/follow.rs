//! Following a stack operation as it runs: every new stack event as one line (time,
//! status, resource, type, reason), and on a terminal a spinner with the count of
//! resources done, until the stack is no longer in progress.

use std::collections::BTreeSet;
use std::time::{Duration, UNIX_EPOCH};

use aws_sdk_cloudformation::Client;

use crate::aws::Error;
use crate::aws::cloudformation::{self, Event, Stack};
use crate::progress::Progress;

/// The newest event id of the stack now, to follow only what comes after it.
pub async fn marker(client: &Client, stack: &str) -> Result<Option<String>, Error> {
    Ok(cloudformation::events_after(client, stack, None)
        .await?
        .pop()
        .map(|e| e.id))
}

/// Prints events after `marker` until the stack settles, and returns the settled stack.
pub async fn follow(
    client: &Client,
    stack: &str,
    marker: Option<String>,
    every: Duration,
    progress: &Progress,
) -> Result<Stack, Error> {
    let label = stack_name(stack);
    let spinner = progress.spinner(&format!("{label}: in progress"));
    let mut last = marker;
    let mut done = BTreeSet::new();
    let mut print = |events: Vec<Event>, last: &mut Option<String>| {
        for e in events {
            if e.status.ends_with("_COMPLETE") && !e.is_stack() {
                done.insert(e.logical_id.clone());
            }
            progress.println(&spinner, &line(&e));
            *last = Some(e.id);
        }
        spinner.set_message(format!("{label}: {} resource(s) done", done.len()));
    };
    loop {
        let events = cloudformation::events_after(client, stack, last.as_deref()).await?;
        print(events, &mut last);
        let state = cloudformation::describe(client, stack).await?;
        match state {
            Some(s) if s.in_progress() => tokio::time::sleep(every).await,
            Some(s) => {
                // Events written between the two calls.
                let events = cloudformation::events_after(client, stack, last.as_deref()).await?;
                print(events, &mut last);
                spinner.finish_and_clear();
                return Ok(s);
            }
            None => {
                spinner.finish_and_clear();
                // A stack whose creation failed and was deleted, or one being deleted.
                return Ok(Stack::named(stack, "DELETE_COMPLETE"));
            }
        }
    }
}

/// The name in a stack ARN (`arn:aws:cloudformation:R:A:stack/NAME/UUID`), or `stack`
/// itself when it is a name.
fn stack_name(stack: &str) -> &str {
    stack
        .split_once(":stack/")
        .and_then(|(_, rest)| rest.split('/').next())
        .unwrap_or(stack)
}

/// `10:00:29  CREATE_FAILED  Repository  AWS::ECR::Repository  reason`
pub fn line(e: &Event) -> String {
    let time = e
        .timestamp
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or_else(|| "--:--:--".to_string(), clock);
    let mut line = format!(
        "{time}  {:<28} {:<32} {}",
        e.status, e.logical_id, e.resource_type
    );
    if let Some(reason) = e.reason.as_deref().filter(|r| !r.is_empty()) {
        line.push_str("  ");
        line.push_str(reason);
    }
    line
}

/// UTC wall clock, HH:MM:SS.
fn clock(since_epoch: Duration) -> String {
    let s = since_epoch.as_secs() % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_show_as_names() {
        assert_eq!(
            stack_name(
                "arn:aws:cloudformation:ap-northeast-1:123456789012:stack/efs-autoscaler-prod/1f2e"
            ),
            "efs-autoscaler-prod"
        );
        assert_eq!(stack_name("efs-autoscaler-prod"), "efs-autoscaler-prod");
    }

    #[test]
    fn an_event_is_one_line_with_utc_time_and_reason() {
        let e = Event {
            id: "1".into(),
            timestamp: Some(UNIX_EPOCH + Duration::from_secs(1_795_000_000 + 29)),
            stack_name: "efs-autoscaler-bootstrap".into(),
            logical_id: "Repository".into(),
            resource_type: "AWS::ECR::Repository".into(),
            status: "CREATE_FAILED".into(),
            reason: Some("already exists".into()),
        };
        let l = line(&e);
        assert!(
            l.starts_with(&clock(Duration::from_secs(1_795_000_029))),
            "{l}"
        );
        assert!(l.contains("CREATE_FAILED"), "{l}");
        assert!(l.ends_with("AWS::ECR::Repository  already exists"), "{l}");
        assert_eq!(clock(Duration::from_secs(3_600 * 25 + 61)), "01:01:01");
    }
}

//! `deployer logs --env NAME [scaler|router]`: the scaler's and the router's log groups
//! as one stream in time order, their JSON and EMF lines made readable (or passed
//! through as JSON lines with `--output json`), once or with `--follow`.
//!
//! Each group is read page by page and the two are merged by time, so memory holds one
//! page per group however long the window. Following polls every two seconds from the
//! last time seen; an event that CloudWatch Logs ingests later than that with an older
//! time is not shown (as `sam logs --tail` and `aws logs tail --follow` behave).

use std::collections::{HashSet, VecDeque};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_cloudwatchlogs::primitives::{DateTime, DateTimeFormat};
use miette::miette;
use serde_json::{Value, json};

use crate::aws::logs::{self, Event};
use crate::cli::{AwsArgs, LogSource, LogsArgs, OutputFormat};
use crate::commands::status::deployed_resources;
use crate::config;

const POLL: Duration = Duration::from_secs(2);

/// The log groups' logical ids in the template, by source.
fn logical_id(source: LogSource) -> &'static str {
    match source {
        LogSource::Scaler => "ScalerLogGroup",
        LogSource::Router => "ServiceLogGroup",
    }
}

fn label(source: LogSource) -> &'static str {
    match source {
        LogSource::Scaler => "scaler",
        LogSource::Router => "router",
    }
}

pub fn run(
    environments_dir: &std::path::Path,
    aws_args: &AwsArgs,
    output: OutputFormat,
    args: &LogsArgs,
) -> miette::Result<ExitCode> {
    let env = config::load(environments_dir, &args.env)?;
    let start = since_millis(&args.since, SystemTime::now())?;
    let wanted: Vec<LogSource> = match args.source {
        Some(one) => vec![one],
        None => vec![LogSource::Scaler, LogSource::Router],
    };
    super::block_on(async {
        let sdk = super::connect(&env, aws_args).await?;
        let cfn = aws_sdk_cloudformation::Client::new(&sdk);
        let resources = deployed_resources(&cfn, &env).await?;
        let mut streams = Vec::new();
        for source in wanted {
            let group = resources
                .iter()
                .find(|(logical, _, _)| logical == logical_id(source))
                .map(|(_, _, physical)| physical.clone())
                .ok_or_else(|| {
                    miette!(
                        help = format!(
                            "deploy the current templates with `deployer up --env {}`",
                            env.name
                        ),
                        "the stack {} has no {} log group ({})",
                        env.stack_name(),
                        label(source),
                        logical_id(source)
                    )
                })?;
            streams.push(Stream::new(source, group, start));
        }
        let client = logs::client(&sdk);
        let filter = args.filter.as_deref();
        loop {
            drain(&client, &mut streams, filter, output).await?;
            if !args.follow {
                return Ok(ExitCode::SUCCESS);
            }
            tokio::select! {
                () = tokio::time::sleep(POLL) => {}
                _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            }
            for stream in &mut streams {
                stream.rewind();
            }
        }
    })?
}

/// One log group being read: its buffered page, where the next page starts and what was
/// printed at the latest time (a poll from that time returns those events again).
struct Stream {
    source: LogSource,
    group: String,
    buffer: VecDeque<Event>,
    token: Option<String>,
    exhausted: bool,
    from_ms: i64,
    seen_at_last: HashSet<String>,
}

impl Stream {
    fn new(source: LogSource, group: String, from_ms: i64) -> Self {
        Stream {
            source,
            group,
            buffer: VecDeque::new(),
            token: None,
            exhausted: false,
            from_ms,
            seen_at_last: HashSet::new(),
        }
    }

    /// Ready for the next poll: from the latest time printed, all pages again.
    fn rewind(&mut self) {
        self.token = None;
        self.exhausted = false;
    }

    /// Fills the buffer with the next non-empty page unless the group has no more.
    async fn fill(
        &mut self,
        client: &aws_sdk_cloudwatchlogs::Client,
        filter: Option<&str>,
    ) -> miette::Result<()> {
        while self.buffer.is_empty() && !self.exhausted {
            let page = logs::filter_page(client, &self.group, self.from_ms, filter, self.token.take())
                .await
                .map_err(|e| {
                    let missing = e.0.code.as_deref() == Some("ResourceNotFoundException");
                    if missing {
                        miette!(
                            help = "the log group is made with the stack; `deployer status` shows whether it is complete",
                            "the log group {} does not exist",
                            self.group
                        )
                    } else {
                        miette::Report::new(e)
                    }
                })?;
            let seen = &self.seen_at_last;
            self.buffer
                .extend(page.events.into_iter().filter(|e| !seen.contains(&e.id)));
            self.exhausted = page.next.is_none();
            self.token = page.next;
        }
        Ok(())
    }

    fn pop(&mut self) -> Option<Event> {
        let event = self.buffer.pop_front()?;
        // Pages are in time order; an older event (another stream's, late) moves nothing.
        if event.timestamp > self.from_ms {
            self.from_ms = event.timestamp;
            self.seen_at_last.clear();
        }
        if event.timestamp == self.from_ms {
            self.seen_at_last.insert(event.id.clone());
        }
        Some(event)
    }
}

/// Prints every event the streams have now, oldest first across them.
async fn drain(
    client: &aws_sdk_cloudwatchlogs::Client,
    streams: &mut [Stream],
    filter: Option<&str>,
    output: OutputFormat,
) -> miette::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    loop {
        for stream in streams.iter_mut() {
            stream.fill(client, filter).await?;
        }
        let heads: Vec<Option<i64>> = streams
            .iter()
            .map(|s| s.buffer.front().map(|e| e.timestamp))
            .collect();
        let Some(next) = earliest(&heads) else {
            return Ok(());
        };
        let stream = &mut streams[next];
        let Some(event) = stream.pop() else {
            return Ok(());
        };
        let line = match output {
            OutputFormat::Text => text_line(label(stream.source), &event),
            OutputFormat::Json => json_line(label(stream.source), &stream.group, &event),
        };
        // A closed pipe (`| head`) ends the command quietly.
        if writeln!(stdout, "{line}").is_err() {
            return Ok(());
        }
    }
}

/// The stream whose first event is the oldest (the first such on a tie, so one stream's
/// events at the same millisecond stay together), if any has one.
fn earliest(heads: &[Option<i64>]) -> Option<usize> {
    heads
        .iter()
        .enumerate()
        .filter_map(|(i, t)| t.map(|t| (t, i)))
        .min()
        .map(|(_, i)| i)
}

/// `--since`: a duration back from `now` (`30s`, `15m`, `2h`, `1d`, `1w`) or an RFC 3339
/// time, as milliseconds since the epoch.
fn since_millis(text: &str, now: SystemTime) -> miette::Result<i64> {
    let bad = || {
        miette!(
            help = "give a duration such as 30s, 15m, 2h, 1d or 1w, or a time such as 2026-12-07T09:00:00Z",
            "--since {text:?} is neither a duration nor a time"
        )
    };
    let trimmed = text.trim();
    if let Ok(time) = DateTime::from_str(trimmed, DateTimeFormat::DateTimeWithOffset) {
        return time.to_millis().map_err(|_| bad());
    }
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(bad)?;
    let (digits, unit) = trimmed.split_at(split);
    let amount: u64 = digits.parse().map_err(|_| bad())?;
    let unit_seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(bad()),
    };
    let back = Duration::from_secs(amount.checked_mul(unit_seconds).ok_or_else(bad)?);
    let then = now.checked_sub(back).unwrap_or(UNIX_EPOCH);
    let millis = then
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    i64::try_from(millis).map_err(|_| bad())
}

fn time_text(millis: i64) -> String {
    DateTime::from_millis(millis)
        .fmt(DateTimeFormat::DateTime)
        .unwrap_or_else(|_| millis.to_string())
}

/// `--output json`: the event as CloudWatch Logs stored it, one JSON object per line.
fn json_line(source: &str, group: &str, event: &Event) -> String {
    json!({
        "time": time_text(event.timestamp),
        "timestamp": event.timestamp,
        "source": source,
        "log_group": group,
        "log_stream": event.stream,
        "event_id": event.id,
        "message": event.message,
    })
    .to_string()
}

/// One event for a person: its time, where it came from and the message made readable.
fn text_line(source: &str, event: &Event) -> String {
    format!(
        "{} {source:<6} {}",
        time_text(event.timestamp),
        readable(&event.message)
    )
}

/// A JSON log line (the programs' `tracing` output) as `LEVEL message key=value…`, an EMF
/// line as the metrics it carries, anything else (Lambda's START/END/REPORT lines, a
/// panic) as it is, without its line break.
fn readable(message: &str) -> String {
    let trimmed = message.trim_end();
    let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(trimmed) else {
        return trimmed.replace('\t', "  ");
    };
    if let Some(directive) = fields.get("_aws") {
        return metrics_text(directive, &fields);
    }
    let mut out = String::new();
    if let Some(level) = fields.get("level").and_then(Value::as_str) {
        out.push_str(&format!("{level:<5} "));
    }
    match fields.get("message") {
        Some(Value::String(text)) => out.push_str(text),
        Some(other) => out.push_str(&other.to_string()),
        None => {}
    }
    // The event's own time is the line's; the emitting module says nothing to a reader.
    for (key, value) in &fields {
        if !["timestamp", "target", "level", "message"].contains(&key.as_str()) {
            out.push_str(&format!(" {key}={}", scalar(value)));
        }
    }
    out.trim().to_string()
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) if !s.is_empty() && !s.contains(char::is_whitespace) => s.clone(),
        other => other.to_string(),
    }
}

/// An EMF line: `metrics` then each declared metric with its value and unit, then the
/// dimensions' values.
fn metrics_text(directive: &Value, fields: &serde_json::Map<String, Value>) -> String {
    let mut out = String::from("metrics");
    let mut shown = HashSet::new();
    for declared in directive["CloudWatchMetrics"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for metric in declared["Metrics"].as_array().into_iter().flatten() {
            let Some(name) = metric["Name"].as_str() else {
                continue;
            };
            let value = fields.get(name).map_or_else(|| "?".to_string(), scalar);
            let unit = match metric["Unit"].as_str() {
                Some("None") | None => String::new(),
                Some(unit) => format!(" {unit}"),
            };
            out.push_str(&format!(" {name}={value}{unit}"));
            shown.insert(name.to_string());
        }
        for set in declared["Dimensions"].as_array().into_iter().flatten() {
            for dimension in set.as_array().into_iter().flatten() {
                let Some(name) = dimension.as_str() else {
                    continue;
                };
                if shown.insert(name.to_string())
                    && let Some(value) = fields.get(name)
                {
                    out.push_str(&format!(" {name}={}", scalar(value)));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_read_as_level_message_and_fields() {
        let line = r#"{"timestamp":"2026-12-07T10:00:00.123Z","level":"INFO","message":"run finished","target":"runtime::scaler","run_id":"abc-1","file_count":1200,"decision":"scale out"}"#;
        assert_eq!(
            readable(line),
            r#"INFO  run finished run_id=abc-1 file_count=1200 decision="scale out""#
        );
        let error = r#"{"level":"ERROR","message":"EFS CreateMountTarget failed","detail":{"code":"MountTargetConflict"}}"#;
        assert_eq!(
            readable(error),
            r#"ERROR EFS CreateMountTarget failed detail={"code":"MountTargetConflict"}"#
        );
    }

    #[test]
    fn emf_lines_read_as_their_metrics() {
        let line = runtime::emf::line(
            UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            &["FileSystemId"],
            &[
                ("FileCount", "Count"),
                ("ThresholdExceeded", "Count"),
                ("Skipped", "None"),
            ],
            json!({"FileSystemId": "fs-1", "FileCount": 1200, "ThresholdExceeded": 1, "Skipped": 0}),
        );
        assert_eq!(
            readable(&line),
            "metrics FileCount=1200 Count ThresholdExceeded=1 Count Skipped=0 FileSystemId=fs-1"
        );
    }

    #[test]
    fn other_lines_stay_as_they_are() {
        assert_eq!(
            readable("REPORT RequestId: 1\tDuration: 2.00 ms\n"),
            "REPORT RequestId: 1  Duration: 2.00 ms"
        );
        assert_eq!(readable("[1, 2]"), "[1, 2]");
        assert_eq!(readable("thread 'main' panicked"), "thread 'main' panicked");
    }

    #[test]
    fn the_oldest_head_goes_first_and_ties_keep_the_first_stream() {
        assert_eq!(earliest(&[Some(5), Some(3)]), Some(1));
        assert_eq!(earliest(&[Some(3), Some(3)]), Some(0));
        assert_eq!(earliest(&[None, Some(9)]), Some(1));
        assert_eq!(earliest(&[None, None]), None);
    }

    #[test]
    fn since_takes_durations_and_times() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(since_millis("30s", now).unwrap(), 999_970_000);
        assert_eq!(since_millis("15m", now).unwrap(), 999_100_000);
        assert_eq!(since_millis("2h", now).unwrap(), 992_800_000);
        assert_eq!(since_millis("1d", now).unwrap(), 913_600_000);
        assert_eq!(since_millis("1w", now).unwrap(), 395_200_000);
        assert_eq!(
            since_millis("52w", now).unwrap(),
            0,
            "before the epoch clamps"
        );
        assert_eq!(
            since_millis("2026-12-07T09:00:00Z", now).unwrap(),
            1_796_634_000_000
        );
        for bad in [
            "",
            "m",
            "10",
            "10 minutes",
            "1y",
            "-5m",
            "99999999999999999999s",
        ] {
            let error = since_millis(bad, now).unwrap_err().to_string();
            assert!(
                error.contains("neither a duration nor a time"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn json_output_keeps_the_message_as_stored() {
        let event = Event {
            timestamp: 1_796_634_000_000,
            message: "{\"level\":\"INFO\"}\n".into(),
            stream: "2026/12/07/[$LATEST]abc".into(),
            id: "42".into(),
        };
        let line: Value =
            serde_json::from_str(&json_line("scaler", "/aws/lambda/x", &event)).unwrap();
        assert_eq!(line["time"], "2026-12-07T09:00:00Z");
        assert_eq!(line["message"], "{\"level\":\"INFO\"}\n");
        assert_eq!(line["source"], "scaler");
        assert_eq!(line["log_stream"], "2026/12/07/[$LATEST]abc");
    }
}

//! Log set-up shared by both binaries: JSON lines on stdout where a log service reads
//! them (Lambda, the awslogs driver), readable lines on stderr for a person at a shell
//! (stdout then stays free for results). One level, from `AWS_LAMBDA_LOG_LEVEL` (Lambda's
//! log-level setting) or `RUST_LOG` (e.g. `debug`); `info` otherwise.

use tracing_subscriber::filter::LevelFilter;

pub fn init(json: bool) {
    let level = ["AWS_LAMBDA_LOG_LEVEL", "RUST_LOG"]
        .iter()
        .find_map(|v| std::env::var(v).ok())
        .and_then(|v| v.trim().to_ascii_lowercase().parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let builder = tracing_subscriber::fmt().with_max_level(level);
    // A second init (tests) keeps the first subscriber; nothing to report.
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_writer(std::io::stdout)
            .try_init()
    } else {
        builder
            .with_writer(std::io::stderr)
            .with_target(false)
            .try_init()
    };
}

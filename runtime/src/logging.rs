//! Log set-up shared by both binaries: JSON lines on stdout where a log service reads
//! them (Lambda, the awslogs driver), readable lines on stderr for a person at a shell
//! (stdout then stays free for results). One level, from `AWS_LAMBDA_LOG_LEVEL` (Lambda's
//! log-level setting) or `RUST_LOG` (e.g. `debug`); `info` otherwise.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub fn init(json: bool) {
    let level = ["AWS_LAMBDA_LOG_LEVEL", "RUST_LOG"]
        .iter()
        .find_map(|v| std::env::var(v).ok())
        .and_then(|v| v.trim().to_ascii_lowercase().parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    // nfs-rs narrates every mount attempt at info and every failed retry at warn; the
    // router reports the same events once, in its own words. Its detail returns at debug.
    let quiet = if level >= LevelFilter::DEBUG {
        level
    } else {
        LevelFilter::ERROR
    };
    // s3s logs every S3 error answer (a 404, a bad signature) at error: a client's
    // mistake, not the router's. The router logs its own failures; s3s's view returns at
    // debug.
    let s3s = if level >= LevelFilter::DEBUG {
        level
    } else {
        LevelFilter::OFF
    };
    let filter = Targets::new()
        .with_default(level)
        .with_target("nfs_rs", quiet)
        .with_target("s3s", s3s);
    let registry = tracing_subscriber::registry().with(filter);
    // A second init (tests) keeps the first subscriber; nothing to report.
    let _ = if json {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_writer(std::io::stdout),
            )
            .try_init()
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_target(false),
            )
            .try_init()
    };
}

//! `deployer`: thin entry point. Parses arguments, runs the command, maps errors to exit
//! code 1 with a readable report on stderr.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use deployer::cli::Cli;

fn main() -> ExitCode {
    // On a terminal, wrap reports to its width; in CI logs and pipes keep each message on
    // one line so `file:line:col: key: message` can be searched for.
    let terminal = std::io::stderr().is_terminal();
    let _ = miette::set_hook(Box::new(move |_| {
        Box::new(
            miette::MietteHandlerOpts::new()
                .wrap_lines(terminal)
                .build(),
        )
    }));
    let mut command = Cli::command();
    if std::env::args().any(|a| a == "--version" || a == "-V") {
        // What this binary carries, read from its own file only when asked.
        command = command.version(deployer::package::bundle::version_text());
    }
    let parsed = command
        .try_get_matches()
        .and_then(|matches| Cli::from_arg_matches(&matches));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
            // Help and version go to stdout, usage errors to stderr (clap decides).
            let _ = e.print();
            return code;
        }
    };
    logging(cli.verbose);
    match deployer::commands::run(cli) {
        Ok(code) => code,
        Err(report) => {
            eprintln!("{report:?}");
            ExitCode::from(1)
        }
    }
}

/// `-v` logs each AWS call (the SDK names service and operation in the span of each
/// attempt it logs) and the deployer's own decisions; `-vv` everything the SDK says.
/// Logs go to stderr.
fn logging(verbose: u8) {
    use tracing::Level;
    use tracing_subscriber::filter::filter_fn;
    use tracing_subscriber::prelude::*;
    let filter = filter_fn(move |meta| match verbose {
        // The SDK warns about every credential provider it tried; the deployer says
        // what failed in one sentence, and `-v` shows the SDK's account of it.
        0 => {
            *meta.level() <= Level::ERROR
                || (*meta.level() <= Level::WARN && !meta.target().starts_with("aws_"))
        }
        1 => {
            *meta.level() <= Level::WARN
                || meta.target().starts_with("deployer")
                // Spans only print as the context of an event below.
                || meta.is_span()
                || meta.target() == "aws_smithy_runtime::client::orchestrator"
        }
        _ => *meta.level() <= Level::DEBUG,
    });
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(verbose > 1);
    let _ = tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .try_init();
}

//! What both binaries do the same way as command-line programs.

use std::process::ExitCode;

/// Parses the command line. `Err` carries the exit code after clap has printed its
/// message: help and version are successes, everything else is bad input.
pub fn parse<C: clap::Parser>() -> Result<C, ExitCode> {
    C::try_parse().map_err(|e| {
        let _ = e.print();
        if e.use_stderr() {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    })
}

/// Runs `fut` on a multi-threaded runtime; failing to build one is reported as
/// `program: ...` and exit 1.
pub fn block_on(program: &str, fut: impl Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // File calls of the dir and kernel backends run on the blocking pool; tokio's
        // default of 512 threads let a listing of 100,000 keys (a sidecar lookup per
        // key) start 140 of them, each with its own allocator state.
        .max_blocking_threads(64)
        .build()
    {
        Ok(rt) => rt.block_on(fut),
        Err(e) => {
            eprintln!("{program}: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

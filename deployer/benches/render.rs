//! Render + validate-config of all four environments, beside a baseline, in one run.
//!
//! `cargo bench -p deployer --bench render` (or scripts/bench-render). Prints medians and
//! the ratio; the budget (50 ms for all four environments) is reported, not asserted.
//!
//! - `deployer validate --all --config-only`: one process that loads, layers, validates and
//!   renders every environment and writes the templates, as a user or CI runs it.
//! - in-process: the same work through the library, without process start-up.
//! - baseline: Python (the original version's language) only *parsing* the same YAML files
//!   with PyYAML, no layering, validation or rendering: the floor a Python tool pays.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const RUNS: usize = 30;
const BUDGET: Duration = Duration::from_millis(50);

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time_command(mut make: impl FnMut() -> Command) -> Duration {
    // One warm-up run so the page cache holds the binary and the files.
    let warm = make().output().expect("start command");
    assert!(
        warm.status.success(),
        "command failed: {}",
        String::from_utf8_lossy(&warm.stderr)
    );
    median(
        (0..RUNS)
            .map(|_| {
                let start = Instant::now();
                let out = make().output().expect("run command");
                let took = start.elapsed();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                took
            })
            .collect(),
    )
}

fn python() -> PathBuf {
    let venv = deployer::lint::project_venv().join("bin/python");
    assert!(
        venv.is_file(),
        "{} missing: run scripts/setup (PyYAML comes with cfn-lint)",
        venv.display()
    );
    venv
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let envs_dir = repo.join("environments");
    let envs = deployer::config::list_environments(&envs_dir).unwrap();
    assert_eq!(
        envs.len(),
        4,
        "expected dev, local, prod, staging: {envs:?}"
    );

    let cli = time_command(|| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_deployer"));
        c.args(["validate", "--all", "--config-only", "--environments-dir"])
            .arg(&envs_dir);
        c
    });

    let renderer = deployer::render::Renderer::new().unwrap();
    let in_process = median(
        (0..RUNS)
            .map(|_| {
                let start = Instant::now();
                for env in &envs {
                    let loaded = deployer::config::load(&envs_dir, env).unwrap();
                    std::hint::black_box(renderer.render(&loaded).unwrap());
                }
                start.elapsed()
            })
            .collect(),
    );

    let script = "import glob, sys, yaml\n[yaml.safe_load(open(f)) for f in sorted(glob.glob(sys.argv[1] + '/*.yaml'))]";
    let python = python();
    let baseline = time_command(|| {
        let mut c = Command::new(&python);
        c.args(["-c", script]).arg(&envs_dir);
        c
    });

    println!(
        "render + validate-config, all {} environments, median of {RUNS} runs",
        envs.len()
    );
    println!(
        "  deployer validate --all --config-only   {:>8.2} ms  (budget {} ms: {})",
        ms(cli),
        BUDGET.as_millis(),
        if cli <= BUDGET { "within" } else { "OVER" }
    );
    println!(
        "  in-process load + render                {:>8.2} ms",
        ms(in_process)
    );
    println!(
        "  baseline: python3 + PyYAML, parse only  {:>8.2} ms",
        ms(baseline)
    );
    println!(
        "  ratio deployer / baseline               {:>8.2}",
        cli.as_secs_f64() / baseline.as_secs_f64()
    );
}

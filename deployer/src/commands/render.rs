//! `deployer render --env NAME [--out DIR]`

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use miette::{Context as _, IntoDiagnostic};

use crate::cli::RenderArgs;
use crate::config;
use crate::render::{Rendered, Renderer};

pub fn run(environments_dir: &Path, args: &RenderArgs) -> miette::Result<ExitCode> {
    let env = config::load(environments_dir, &args.env)?;
    let rendered = Renderer::new()?.render(&env)?;
    match &args.out {
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(rendered.main.as_bytes())
                .into_diagnostic()
                .wrap_err("writing to stdout")?;
        }
        Some(dir) => {
            write_all(dir, &rendered)?;
            for (name, text) in rendered.files() {
                eprintln!("wrote {} ({} bytes)", dir.join(name).display(), text.len());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes each file through a temporary name and a rename, so an interrupted render never
/// leaves a half-written template behind.
pub fn write_all(dir: &Path, rendered: &Rendered) -> miette::Result<()> {
    for (name, text) in rendered.files() {
        let path = dir.join(name);
        crate::files::write_atomic(&path, text.as_bytes())
            .into_diagnostic()
            .wrap_err_with(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

//! `deployer completions SHELL` and `deployer manpage`: shell completion scripts and a
//! roff man page, both generated from the command-line definition (`cli.rs`), so they
//! never fall behind it.

use std::io::Write;
use std::process::ExitCode;

use clap::CommandFactory;

use crate::cli::{Cli, Shell};

pub fn completions(shell: Shell) -> miette::Result<ExitCode> {
    let mut command = Cli::command();
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
        Shell::Elvish => clap_complete::Shell::Elvish,
        Shell::Powershell => clap_complete::Shell::PowerShell,
    };
    clap_complete::generate(shell, &mut command, "deployer", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

/// Man pages: `deployer.1` on stdout, or with `out` one page per command written there
/// (`deployer.1`, `deployer-up.1`, …), as `man` finds them in a `man1` directory.
pub fn manpage(out: Option<&std::path::Path>) -> miette::Result<ExitCode> {
    let command = Cli::command();
    let render = |cmd: clap::Command| -> miette::Result<Vec<u8>> {
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd)
            .render(&mut page)
            .map_err(|e| miette::miette!("cannot render the man page: {e}"))?;
        Ok(page)
    };
    let Some(dir) = out else {
        std::io::stdout()
            .write_all(&render(command)?)
            .map_err(|e| miette::miette!("cannot write the man page: {e}"))?;
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| miette::miette!("cannot create {}: {e}", dir.display()))?;
    let mut pages = vec![("deployer".to_string(), command.clone())];
    pages.extend(command.get_subcommands().map(|sub| {
        let name = format!("deployer-{}", sub.get_name());
        (name.clone(), sub.clone().name(name))
    }));
    for (name, cmd) in pages {
        let path = dir.join(format!("{name}.1"));
        crate::files::write_atomic(&path, &render(cmd)?)
            .map_err(|e| miette::miette!("cannot write {}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

//! Progress for long steps. On a terminal: a line per step, spinners while work runs,
//! and a bar in bytes for uploads, all on stderr (stdout stays the command's result).
//! Off a terminal (CI logs, pipes) nothing is drawn: the command prints one summary
//! line per artifact at the end instead.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Where progress goes: stderr when it is a terminal, nowhere otherwise.
#[derive(Debug, Clone)]
pub struct Progress {
    target: Target,
}

#[derive(Debug, Clone)]
enum Target {
    Hidden,
    Stderr,
    #[cfg(test)]
    Term(indicatif::InMemoryTerm),
}

impl Progress {
    /// Draws on stderr if it is a terminal.
    pub fn stderr() -> Progress {
        use std::io::IsTerminal;
        let target = if std::io::stderr().is_terminal() {
            Target::Stderr
        } else {
            Target::Hidden
        };
        Progress { target }
    }

    /// Whether anything is drawn; the compiler's own progress follows the same choice.
    pub fn visible(&self) -> bool {
        !matches!(self.target, Target::Hidden)
    }

    fn draw_target(&self) -> ProgressDrawTarget {
        match &self.target {
            Target::Hidden => ProgressDrawTarget::hidden(),
            Target::Stderr => ProgressDrawTarget::stderr(),
            #[cfg(test)]
            Target::Term(term) => ProgressDrawTarget::term_like(Box::new(term.clone())),
        }
    }

    /// Says which step starts (the compiler draws its own bar beneath).
    pub fn step(&self, message: &str) {
        match &self.target {
            Target::Hidden => {}
            Target::Stderr => eprintln!("{message}"),
            #[cfg(test)]
            Target::Term(term) => {
                let _ = indicatif::TermLike::write_line(term, message);
            }
        }
    }

    /// Prints a line above `bar` on a terminal, or to stderr otherwise: lines that
    /// matter in a CI log too (stack events), unlike the bars.
    pub fn println(&self, bar: &ProgressBar, line: &str) {
        if self.visible() {
            bar.println(line);
        } else {
            eprintln!("{line}");
        }
    }

    /// A spinner with `message` until the returned bar is finished.
    pub fn spinner(&self, message: &str) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(None, self.draw_target());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(message.to_string());
        if self.visible() {
            bar.enable_steady_tick(Duration::from_millis(100));
        }
        bar
    }

    /// A bar of `total` bytes with `message`; the caller advances it as uploads finish.
    pub fn bytes(&self, message: &str, total: u64) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(Some(total), self.draw_target());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {elapsed})",
            )
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(message.to_string());
        if self.visible() {
            bar.enable_steady_tick(Duration::from_millis(100));
        }
        bar
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term() -> (Progress, indicatif::InMemoryTerm) {
        let term = indicatif::InMemoryTerm::new(4, 120);
        (
            Progress {
                target: Target::Term(term.clone()),
            },
            term,
        )
    }

    #[test]
    fn byte_bar_shows_what_is_uploaded_of_the_total() {
        let (progress, term) = term();
        let bar = progress.bytes("uploading", 3 * 1024 * 1024);
        bar.inc(1024 * 1024);
        // Draws are rate-limited; abandoning forces the last state on screen.
        bar.abandon();
        let screen = term.contents();
        assert!(screen.contains("uploading"), "{screen}");
        assert!(screen.contains("1.00 MiB/3.00 MiB"), "{screen}");
        assert!(
            screen.contains("[==========>   "),
            "a third of the bar: {screen}"
        );
    }

    #[test]
    fn a_finished_bar_leaves_nothing_behind() {
        let (progress, term) = term();
        let bar = progress.bytes("uploading", 10);
        bar.inc(10);
        bar.finish_and_clear();
        assert_eq!(term.contents().trim(), "");
    }

    #[test]
    fn step_and_spinner_draw_on_a_terminal() {
        let (progress, term) = term();
        progress.step("building efs-scaler for aarch64-unknown-linux-musl");
        let spinner = progress.spinner("making the image");
        spinner.tick();
        let screen = term.contents();
        assert!(
            screen.contains("building efs-scaler for aarch64-unknown-linux-musl"),
            "{screen}"
        );
        assert!(screen.contains("making the image"), "{screen}");
    }

    #[test]
    fn nothing_is_drawn_off_a_terminal() {
        let progress = Progress {
            target: Target::Hidden,
        };
        assert!(!progress.visible());
        let bar = progress.bytes("uploading", 10);
        bar.inc(10);
        assert!(bar.is_hidden());
    }
}

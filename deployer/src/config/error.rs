//! Configuration errors that point at the file, line and key, with the fix.

use std::fmt;
use std::sync::{Arc, OnceLock};

use miette::{Diagnostic, NamedSource, SourceSpan};

/// One loaded environment file: its name as the user should see it and its text.
#[derive(Debug)]
pub struct SourceFile {
    name: String,
    text: String,
    line_starts: Vec<usize>,
    /// Byte offset of each character, built only for non-ASCII files (the parser counts
    /// characters, miette wants bytes).
    char_bytes: OnceLock<Vec<usize>>,
}

impl SourceFile {
    pub fn new(name: String, text: String) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        SourceFile {
            name,
            text,
            line_starts,
            char_bytes: OnceLock::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    fn byte_of_char(&self, char_index: usize) -> usize {
        if self.text.is_ascii() {
            return char_index.min(self.text.len());
        }
        let table = self
            .char_bytes
            .get_or_init(|| self.text.char_indices().map(|(b, _)| b).collect());
        table.get(char_index).copied().unwrap_or(self.text.len())
    }

    /// 1-based line and column of a byte offset.
    fn line_col(&self, byte: usize) -> (usize, usize) {
        let line = self
            .line_starts
            .partition_point(|&start| start <= byte)
            .max(1);
        let start = self.line_starts[line - 1];
        let col = self
            .text
            .get(start..byte)
            .map_or(1, |s| s.chars().count() + 1);
        (line, col)
    }
}

/// Where a value was written. `line == 0` means "the whole file" (or a built-in default
/// when `file` is `None`).
#[derive(Clone)]
pub struct Loc {
    pub file: Option<Arc<SourceFile>>,
    pub offset: usize,
    pub len: usize,
    pub line: usize,
    pub col: usize,
}

impl fmt::Debug for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.position())
    }
}

impl PartialEq for Loc {
    fn eq(&self, other: &Self) -> bool {
        self.file_name() == other.file_name()
            && self.offset == other.offset
            && self.len == other.len
    }
}

impl Loc {
    pub fn from_char_range(file: &Arc<SourceFile>, char_index: usize, char_len: usize) -> Self {
        let offset = file.byte_of_char(char_index);
        let end = file.byte_of_char(char_index + char_len);
        let (line, col) = file.line_col(offset);
        Loc {
            file: Some(file.clone()),
            offset,
            len: end.saturating_sub(offset),
            line,
            col,
        }
    }

    pub fn whole_file(file: &Arc<SourceFile>) -> Self {
        Loc {
            file: Some(file.clone()),
            offset: 0,
            len: 0,
            line: 0,
            col: 0,
        }
    }

    /// A value nobody wrote: the built-in default of a key.
    pub fn builtin() -> Self {
        Loc {
            file: None,
            offset: 0,
            len: 0,
            line: 0,
            col: 0,
        }
    }

    pub fn file_name(&self) -> &str {
        self.file
            .as_ref()
            .map_or("<built-in default>", |f| f.name())
    }

    /// `file:line:col`, or just the file when no line is known.
    pub fn position(&self) -> String {
        if self.line == 0 {
            self.file_name().to_string()
        } else {
            format!("{}:{}:{}", self.file_name(), self.line, self.col)
        }
    }
}

/// A configuration problem. Rendered as
/// `environments/prod.yaml:12:25: scaler.file_count_threshold: 0 is not allowed`
/// followed, on a terminal, by the source line and the help.
#[derive(Debug, Clone)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub key: Option<String>,
    pub message: String,
    pub help: Option<String>,
    pub label: Option<String>,
    source_code: Option<NamedSource<String>>,
    span: Option<SourceSpan>,
}

impl ConfigError {
    pub fn at(loc: &Loc, key: Option<String>, message: String) -> Self {
        let (source_code, span) = match (&loc.file, loc.line) {
            (Some(file), line) if line > 0 => (
                Some(NamedSource::new(file.name(), file.text().to_string()).with_language("yaml")),
                Some(SourceSpan::new(loc.offset.into(), loc.len)),
            ),
            _ => (None, None),
        };
        ConfigError {
            file: loc.file_name().to_string(),
            line: loc.line,
            col: loc.col,
            key,
            message,
            help: None,
            label: None,
            source_code,
            span,
        }
    }

    /// An error about a whole file (missing, unreadable, binary).
    pub fn file(name: &str, message: String) -> Self {
        ConfigError {
            file: name.to_string(),
            line: 0,
            col: 0,
            key: None,
            message,
            help: None,
            label: None,
            source_code: None,
            span: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn help_text(&self) -> Option<String> {
        self.help.clone()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: ", self.file)?;
        } else {
            write!(f, "{}:{}:{}: ", self.file, self.line, self.col)?;
        }
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

impl Diagnostic for ConfigError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new("deployer::config"))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source_code
            .as_ref()
            .map(|s| s as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let span = self.span?;
        let label = self.label.clone().or_else(|| Some(self.message.clone()));
        Some(Box::new(std::iter::once(
            miette::LabeledSpan::new_with_span(label, span),
        )))
    }
}

/// Every problem found in one environment, reported together so a user fixes them in one go.
#[derive(Debug, thiserror::Error)]
pub struct ConfigErrors {
    pub env: String,
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(
            f,
            "environment `{}` has {n} configuration error{}",
            self.env,
            if n == 1 { "" } else { "s" }
        )
    }
}

impl Diagnostic for ConfigErrors {
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        Some(Box::new(self.errors.iter().map(|e| e as &dyn Diagnostic)))
    }
}

impl From<(String, ConfigError)> for ConfigErrors {
    fn from((env, e): (String, ConfigError)) -> Self {
        ConfigErrors {
            env,
            errors: vec![e],
        }
    }
}

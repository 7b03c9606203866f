//! Diagnostics: every problem in an input names the file, line and column,
//! the key, what was expected and what was found, rendered like rustc.
//!
//! Diagnostics are collected, never thrown: one run reports every error of
//! every file. This module must never print by itself; callers decide where
//! the rendered text goes.

use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One input file, kept in memory so diagnostics can quote its lines.
#[derive(Debug)]
pub struct Source {
    pub path: PathBuf,
    pub text: String,
}

impl Source {
    pub fn new(path: impl Into<PathBuf>, text: impl Into<String>) -> Arc<Source> {
        Arc::new(Source {
            path: path.into(),
            text: text.into(),
        })
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..floor_char_boundary(&self.text, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Where a value came from: a file and a byte range in it.
#[derive(Debug, Clone)]
pub struct Span {
    pub source: Arc<Source>,
    pub range: Range<usize>,
}

impl Span {
    pub fn new(source: &Arc<Source>, range: Range<usize>) -> Span {
        Span {
            source: Arc::clone(source),
            range,
        }
    }

    /// A span covering a whole file, for problems that belong to no value.
    pub fn file(source: &Arc<Source>) -> Span {
        Span {
            source: Arc::clone(source),
            range: 0..0,
        }
    }

    /// A sub-range relative to the start of this span, clamped to it.
    pub fn sub(&self, inner: Range<usize>) -> Span {
        let start = (self.range.start + inner.start).min(self.range.end);
        let end = (self.range.start + inner.end)
            .min(self.range.end)
            .max(start);
        Span {
            source: Arc::clone(&self.source),
            range: start..end,
        }
    }

    pub fn path(&self) -> &Path {
        &self.source.path
    }

    pub fn line_col(&self) -> (usize, usize) {
        self.source.line_col(self.range.start)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// A problem with an input, tied to a key and a place.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub severity: Severity,
    pub span: Span,
    /// Dotted path of the key, e.g. `container.ports[1]`; empty for the file.
    pub key: String,
    pub message: String,
    pub help: Option<String>,
    /// Do not quote the source line (it may hold a secret value).
    pub redact: bool,
}

impl Diagnostic {
    pub fn error(span: Span, key: impl Into<String>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            span,
            key: key.into(),
            message: message.into(),
            help: None,
            redact: false,
        }
    }

    pub fn warning(span: Span, key: impl Into<String>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(span, key, message)
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Renders the diagnostic like rustc: headline, location, the source line
    /// and a caret under the offending value. `display_path` lets callers
    /// print paths relative to the directory the user named.
    pub fn render(&self) -> String {
        let src = &self.span.source;
        let (line, col) = self.span.line_col();
        let mut out = String::new();
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let message = one_line(&self.message);
        if self.key.is_empty() {
            let _ = writeln!(out, "{sev}: {message}");
        } else {
            let _ = writeln!(out, "{sev}: `{}`: {message}", one_line(&self.key));
        }
        let _ = writeln!(out, "  --> {}:{line}:{col}", src.path.display());
        if self.redact {
            let _ = writeln!(
                out,
                "   | (source line not shown: it may hold a secret value)"
            );
        } else if let Some(text) = src.text.lines().nth(line - 1) {
            let gutter = line.to_string().len();
            let shown: String = text
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            let start = col - 1;
            let start_b = floor_char_boundary(&src.text, self.span.range.start.min(src.text.len()));
            let end_b = floor_char_boundary(&src.text, self.span.range.end.min(src.text.len()))
                .max(start_b);
            let span_text = &src.text[start_b..end_b];
            let width = span_text
                .lines()
                .next()
                .map_or(1, |l| l.chars().count().max(1));
            let width = width.min(shown.chars().count().saturating_sub(start).max(1));
            let _ = writeln!(out, "{:gutter$} |", "");
            let _ = writeln!(out, "{line} | {shown}");
            let _ = writeln!(
                out,
                "{:gutter$} | {}{}",
                "",
                " ".repeat(start),
                "^".repeat(width)
            );
        }
        if let Some(help) = &self.help {
            let _ = writeln!(out, "  = help: {help}");
        }
        out
    }
}

/// Sorts diagnostics by file, then position, so output is stable.
pub fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| {
        (a.span.path(), a.span.range.start, &a.key, &a.message).cmp(&(
            b.span.path(),
            b.span.range.start,
            &b.key,
            &b.message,
        ))
    });
}

/// Shows control characters as escapes so a headline stays on one line.
fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

/// Quotes a found value for a message: short, with control characters shown
/// as escapes so a message never spans lines.
pub fn found(s: &str) -> String {
    let mut q = String::from("\"");
    for (i, c) in s.chars().enumerate() {
        if i == 60 {
            q.push('…');
            break;
        }
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(q, "\\u{{{:x}}}", c as u32);
            }
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

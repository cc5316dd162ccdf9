//! The crate's single error type: what went wrong, where (span, line, column), what was
//! expected, and a rustc-style rendering with a caret under the faulty token.
//!
//! Errors are produced by `parser/` (syntax, literals, limits) and never by panics. The
//! engine's binder may build its own semantic errors on the same spans and reuse the same
//! rendering shape. Every message is listed, with a sample rendering, in
//! `docs/query-language.md`.

use std::fmt::Write as _;

use crate::span::{Span, line_column};

/// What kind of mistake an [`Error`] reports. The server can map all of them to one
/// "invalid query" status; the kind is for tests, metrics and finer handling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The text does not follow the grammar: something else was expected here.
    Syntax,
    /// A `"` string or a `` ` `` quoted name is not closed.
    UnterminatedString,
    /// A `\` escape other than `\"`, `` \` ``, `\\`, `\n`, `\t`, `\r`.
    InvalidEscape,
    /// An event or segment name is `""`.
    EmptyName,
    /// A number does not fit: an integer outside `i64`, or a decimal too large for `f64`.
    NumberOutOfRange,
    /// A duration longer than [`crate::MAX_DURATION_MS`].
    InvalidDuration,
    /// A date or date-time that does not exist or is outside years 0000–9999.
    InvalidTime,
    /// A count larger than `u32::MAX`, or `between N and M times` with `N > M`.
    InvalidCount,
    /// A `user.` property inside a `where` (which tests the event's own properties).
    UserPropertyInWhere,
    /// `event.P` in a segment expression (it only has a meaning inside a trigger).
    EventRefOutsideTrigger,
    /// The source is longer than [`crate::MAX_QUERY_BYTES`].
    TooLong,
    /// Parentheses and `not` are nested deeper than [`crate::MAX_NESTING_DEPTH`].
    TooDeep,
    /// The tree would have more than [`crate::MAX_AST_NODES`] nodes.
    TooManyNodes,
}

/// A syntax error or a limit violation, located in the source.
///
/// `Display` gives a one-line form (`message (line L, column C)`); [`Error::render`] gives
/// the multi-line form with the source line and a caret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} (line {line}, column {column})")]
pub struct Error {
    kind: ErrorKind,
    span: Span,
    message: String,
    expected: Vec<String>,
    help: Option<String>,
    line: usize,
    column: usize,
}

impl Error {
    /// An error of `kind` at `span` of `source`.
    pub(crate) fn new(
        kind: ErrorKind,
        span: Span,
        message: impl Into<String>,
        source: &str,
    ) -> Self {
        let (line, column) = line_column(source, span.start);
        Error {
            kind,
            span,
            message: message.into(),
            expected: Vec::new(),
            help: None,
            line,
            column,
        }
    }

    /// Records what the parser expected at the error position.
    pub(crate) fn with_expected(mut self, expected: Vec<String>) -> Self {
        self.expected = expected;
        self
    }

    /// Adds a hint on how to fix the query.
    pub(crate) fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// What kind of mistake this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The faulty bytes of the source (empty at the end of the input).
    pub fn span(&self) -> Span {
        self.span
    }

    /// The sentence that explains the error, e.g. "expected a duration such as 10m or 7d
    /// after `in last`".
    pub fn message(&self) -> &str {
        &self.message
    }

    /// For syntax errors, the things the parser would have accepted at the error position,
    /// as human phrases ("a duration such as 10m or 7d", "`and`", …). Empty otherwise.
    pub fn expected(&self) -> &[String] {
        &self.expected
    }

    /// A hint on how to fix the query, when the parser recognises a common mistake.
    pub fn help(&self) -> Option<&str> {
        self.help.as_deref()
    }

    /// The 1-based line of the start of the fault.
    pub fn line(&self) -> usize {
        self.line
    }

    /// The column of the start of the fault: the number of characters before it on its line (as in the specification's example).
    pub fn column(&self) -> usize {
        self.column
    }

    /// Renders the error for a human, in the shape of the specification:
    ///
    /// ```text
    /// error: expected a duration such as 10m or 7d after `in last`
    ///  --> line 1, column 28
    ///   |
    /// 1 | did "Added To Cart" in last seven
    ///   |                             ^^^^^
    /// ```
    ///
    /// `source` must be the text that was parsed. The carets cover the faulty token (one
    /// caret at the end of the input); lines longer than [`MAX_RENDERED_CHARS`] characters
    /// are cut around the fault with `…`; a hint, if any, follows as `= help: …`.
    pub fn render(&self, source: &str) -> String {
        let (line_number, column) = line_column(source, self.span.start);
        let line_text = source.lines().nth(line_number - 1).unwrap_or("");
        let line_chars: Vec<char> = line_text
            .trim_end_matches('\r')
            .chars()
            .map(|c| if c.is_control() && c != '\t' { '\u{fffd}' } else { c })
            .collect();

        let caret_start = column;
        let span_chars = self.span.slice(source).chars().take_while(|&c| c != '\n').count();
        let caret_len = span_chars.max(1);

        let (shown, caret_offset) = window_around(&line_chars, caret_start);
        let shown_len = shown.chars().count();
        let caret_len = caret_len.min((shown_len + 1).saturating_sub(caret_offset)).max(1);
        let padding: String = shown
            .chars()
            .chain(std::iter::repeat(' '))
            .take(caret_offset)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();

        let gutter = line_number.to_string().len();
        let blank = " ".repeat(gutter);
        let mut out = String::new();
        let _ = writeln!(out, "error: {}", self.message);
        let _ = writeln!(out, "{blank}--> line {line_number}, column {column}");
        let _ = writeln!(out, "{blank} |");
        let _ = writeln!(out, "{line_number} | {shown}");
        let _ = write!(out, "{blank} | {padding}{}", "^".repeat(caret_len));
        if let Some(help) = &self.help {
            let _ = write!(out, "\n{blank} = help: {help}");
        }
        out
    }
}

/// Lines longer than this many characters are shown cut around the fault.
pub const MAX_RENDERED_CHARS: usize = 100;

/// The part of `line` to show and the character offset of `caret` within it.
fn window_around(line: &[char], caret: usize) -> (String, usize) {
    if line.len() <= MAX_RENDERED_CHARS {
        return (line.iter().collect(), caret);
    }
    let start = caret.saturating_sub(MAX_RENDERED_CHARS / 2).min(line.len());
    let end = (start + MAX_RENDERED_CHARS).min(line.len());
    let mut shown = String::new();
    let mut caret_offset = caret - start;
    if start > 0 {
        shown.push('…');
        caret_offset += 1;
    }
    shown.extend(&line[start..end]);
    if end < line.len() {
        shown.push('…');
    }
    (shown, caret_offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_specification_example() {
        let source = r#"did "Added To Cart" in last seven"#;
        let error = Error::new(
            ErrorKind::Syntax,
            Span::new(28, 33),
            "expected a duration such as 10m or 7d after `in last`",
            source,
        );
        assert_eq!((error.line(), error.column()), (1, 28));
        assert_eq!(
            error.render(source),
            "error: expected a duration such as 10m or 7d after `in last`\n \
             --> line 1, column 28\n  |\n1 | did \"Added To Cart\" in last seven\n  \
             |                             ^^^^^"
        );
    }

    #[test]
    fn renders_at_the_end_of_input_on_a_later_line() {
        let source = "\n\n\n\n\n\n\n\n\n\tdid";
        let error = Error::new(ErrorKind::Syntax, Span::new(13, 13), "expected x", source)
            .with_help("try y");
        assert_eq!(
            error.render(source),
            "error: expected x\n  --> line 10, column 4\n   |\n10 | \tdid\n   | \t   ^\n   = help: try y"
        );
    }

    #[test]
    fn cuts_long_lines_around_the_fault() {
        let source = format!("{}bad{}", "a ".repeat(100), " b".repeat(100));
        let error = Error::new(ErrorKind::Syntax, Span::new(200, 203), "expected x", &source);
        let rendered = error.render(&source);
        let lines: Vec<&str> = rendered.lines().collect();
        assert_eq!(lines[1], " --> line 1, column 200");
        assert!(lines[3].starts_with("1 | …a a") && lines[3].ends_with(" …"), "{rendered}");
        let caret_column = lines[4].chars().position(|c| c == '^').expect("caret");
        let shown: String = lines[3].chars().skip(caret_column).take(3).collect();
        assert_eq!(shown, "bad", "{rendered}");
        assert_eq!(lines[4].matches('^').count(), 3);
    }
}

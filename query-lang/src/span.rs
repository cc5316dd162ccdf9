//! Byte-offset spans, the [`Spanned`] wrapper that attaches them to AST nodes, and the
//! offset → line/column lookup used by error messages.
//!
//! Every node of the AST carries the [`Span`] of the source text it came from, so that the
//! engine's binder can report semantic errors ("unknown property") with the same caret
//! rendering as syntax errors. [`Spanned<T>`] compares **only its node**: two ASTs parsed
//! from differently spelled but equivalent sources (`7 days` and `7d`) are equal. Compare
//! spans explicitly through the `span` field when they matter.
//!
//! This module knows nothing about the grammar; see `parser.rs` for how spans are filled.

use std::fmt;
use std::ops::Deref;

/// A half-open range `start..end` of **byte** offsets into the parsed source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    /// Offset of the first byte.
    pub start: usize,
    /// Offset one past the last byte.
    pub end: usize,
}

impl Span {
    /// The span `start..end`.
    pub const fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }

    /// Length in bytes.
    pub const fn len(self) -> usize {
        self.end.saturating_sub(self.start)
    }

    /// Whether the span covers no byte (a position, e.g. the end of the input).
    pub const fn is_empty(self) -> bool {
        self.end <= self.start
    }

    /// The slice of `source` that this span covers, or `""` if it does not fit `source`.
    pub fn slice(self, source: &str) -> &str {
        source.get(self.start..self.end).unwrap_or("")
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

/// An AST node together with the span of source it was parsed from.
///
/// `PartialEq` ignores the span (see the module doc), `Deref` gives the node, `Display`
/// prints the node's canonical syntax, and `Debug` prints `node @start..end`.
#[derive(Clone, Default)]
pub struct Spanned<T> {
    /// The node.
    pub node: T,
    /// Where it came from.
    pub span: Span,
}

impl<T> Spanned<T> {
    /// Wraps `node` with `span`.
    pub const fn new(node: T, span: Span) -> Self {
        Spanned { node, span }
    }

    /// Wraps `node` with an empty span at offset 0, for ASTs built by hand (tests, code
    /// generators). Such an AST compares equal to a parsed one.
    pub fn unspanned(node: T) -> Self {
        Spanned { node, span: Span::default() }
    }

    /// Unwraps the node.
    pub fn into_inner(self) -> T {
        self.node
    }
}

impl<T: PartialEq> PartialEq for Spanned<T> {
    fn eq(&self, other: &Self) -> bool {
        self.node == other.node
    }
}

impl<T: Eq> Eq for Spanned<T> {}

impl<T> Deref for Spanned<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.node
    }
}

impl<T: fmt::Display> fmt::Display for Spanned<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.node.fmt(f)
    }
}

impl<T: fmt::Debug> fmt::Debug for Spanned<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            write!(f, "{:#?} @{}", self.node, self.span)
        } else {
            write!(f, "{:?} @{}", self.node, self.span)
        }
    }
}

/// The 1-based line of byte `offset` in `source`, and its column: the number of characters before it on its line (the specification's convention). Columns count Unicode
/// scalar values (characters), not bytes; an offset inside a character or past the end is
/// clamped to the nearest preceding character boundary.
pub fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let column = source[line_start..offset].chars().count();
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_lines_from_one_and_characters_before_the_fault() {
        let source = "ab\ncé d";
        assert_eq!(line_column(source, 0), (1, 0));
        assert_eq!(line_column(source, 2), (1, 2));
        assert_eq!(line_column(source, 3), (2, 0));
        // `d` is at byte 7 (é is two bytes) with 3 characters before it on its line.
        assert_eq!(line_column(source, 7), (2, 3));
        assert_eq!(line_column(source, 99), (2, 4));
        // Inside `é`: clamped to its start.
        assert_eq!(line_column(source, 5), (2, 1));
    }

    #[test]
    fn spanned_equality_ignores_spans() {
        assert_eq!(Spanned::new(1, Span::new(0, 1)), Spanned::new(1, Span::new(5, 9)));
        assert_ne!(Spanned::new(1, Span::new(0, 1)), Spanned::new(2, Span::new(0, 1)));
    }
}

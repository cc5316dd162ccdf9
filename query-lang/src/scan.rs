//! Lexical pre-scan of the source, run before pest.
//!
//! One linear pass that (1) rejects unterminated strings and quoted names with a precise
//! span, (2) bounds the parenthesis depth so that pest's recursive descent can never
//! exhaust the stack, and (3) returns rough tokens that `parser.rs` uses to phrase syntax
//! errors: the token under the caret and the keywords before it ("after `in last`").
//!
//! The tokens are *not* the grammar's tokens and nothing is parsed from them: they only
//! delimit words, literals and symbols well enough to underline them.

use crate::MAX_NESTING_DEPTH;
use crate::error::{Error, ErrorKind};
use crate::span::Span;

/// What a [`Token`] looks like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenKind {
    /// A keyword or a property name: a letter or `_`, then letters, digits, `_` and `.`.
    Word,
    /// Starts with a digit (or `-` and a digit): numbers, durations, dates.
    Number,
    /// A double-quoted string.
    Text,
    /// A backtick-quoted name.
    QuotedName,
    /// Anything else: operators, parentheses, brackets, commas, stray characters.
    Symbol,
}

/// A rough token: its kind and where it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Token {
    pub kind: TokenKind,
    pub span: Span,
}

/// Splits `source` into rough tokens, skipping whitespace and `#` comments.
pub(crate) fn scan(source: &str) -> Result<Vec<Token>, Error> {
    let mut tokens = Vec::new();
    let mut depth = 0usize;
    let mut position = 0;
    while let Some(character) = source[position..].chars().next() {
        let start = position;
        let rest = &source[position..];
        let (kind, end) = match character {
            ' ' | '\t' | '\r' | '\n' => {
                position += 1;
                continue;
            }
            '#' => {
                position += rest.find('\n').unwrap_or(rest.len());
                continue;
            }
            '"' | '`' => (
                if character == '"' { TokenKind::Text } else { TokenKind::QuotedName },
                quoted_end(source, start, character)?,
            ),
            '(' => {
                depth += 1;
                if depth > MAX_NESTING_DEPTH {
                    return Err(too_deep(source, Span::new(start, start + 1)));
                }
                (TokenKind::Symbol, start + 1)
            }
            ')' => {
                depth = depth.saturating_sub(1);
                (TokenKind::Symbol, start + 1)
            }
            _ if character.is_ascii_digit()
                || (character == '-' && rest[1..].starts_with(|c: char| c.is_ascii_digit())) =>
            {
                let length = 1 + rest[1..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || "_.:+-".contains(c)))
                    .unwrap_or(rest.len() - 1);
                (TokenKind::Number, start + length)
            }
            _ if character.is_ascii_alphabetic() || character == '_' => {
                let length = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                    .unwrap_or(rest.len());
                (TokenKind::Word, start + length)
            }
            '=' | '!' | '<' | '>' if rest[1..].starts_with('=') => (TokenKind::Symbol, start + 2),
            _ => (TokenKind::Symbol, start + character.len_utf8()),
        };
        tokens.push(Token { kind, span: Span::new(start, end) });
        position = end;
    }
    Ok(tokens)
}

/// The error for parentheses nested deeper than [`MAX_NESTING_DEPTH`] (also used by the
/// parser for `not` chains).
pub(crate) fn too_deep(source: &str, span: Span) -> Error {
    Error::new(
        ErrorKind::TooDeep,
        span,
        format!(
            "the query is nested too deeply: more than {MAX_NESTING_DEPTH} levels of \
             parentheses and `not`"
        ),
        source,
    )
}

/// The offset just past the closing `quote` of the string or name opened at `start`.
fn quoted_end(source: &str, start: usize, quote: char) -> Result<usize, Error> {
    let mut escaped = false;
    for (offset, character) in source[start + 1..].char_indices() {
        match character {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            _ if character == quote => return Ok(start + 1 + offset + 1),
            _ => {}
        }
    }
    // Underline from the opening quote to the end of its line.
    let line_end = source[start..].find('\n').map_or(source.len(), |newline| start + newline);
    let (what, closing) = if quote == '"' {
        ("string", "the closing `\"`")
    } else {
        ("quoted name", "the closing backtick")
    };
    Err(Error::new(
        ErrorKind::UnterminatedString,
        Span::new(start, line_end),
        format!("unterminated {what}: {closing} is missing"),
        source,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds_and_texts(source: &str) -> Vec<(TokenKind, &str)> {
        scan(source)
            .expect("scans")
            .into_iter()
            .map(|token| (token.kind, token.span.slice(source)))
            .collect()
    }

    #[test]
    fn splits_words_literals_and_symbols() {
        use TokenKind::*;
        assert_eq!(
            kinds_and_texts(
                "did \"A \\\" #x\" # comment (\n where `a b`.c>=-2.5 in last 7d since 2026-11-01T09:30:00+05:30"
            ),
            vec![
                (Word, "did"),
                (Text, "\"A \\\" #x\""),
                (Word, "where"),
                (QuotedName, "`a b`"),
                (Symbol, "."),
                (Word, "c"),
                (Symbol, ">="),
                (Number, "-2.5"),
                (Word, "in"),
                (Word, "last"),
                (Number, "7d"),
                (Word, "since"),
                (Number, "2026-11-01T09:30:00+05:30"),
            ]
        );
    }

    #[test]
    fn rejects_unterminated_strings_and_deep_nesting() {
        let error = scan("did \"abc\\\" x\nand").expect_err("unterminated");
        assert_eq!(error.kind(), ErrorKind::UnterminatedString);
        assert_eq!(error.span(), Span::new(4, 12));

        let deep = "(".repeat(MAX_NESTING_DEPTH + 1);
        let error = scan(&deep).expect_err("too deep");
        assert_eq!(error.kind(), ErrorKind::TooDeep);
        assert_eq!(error.span(), Span::new(MAX_NESTING_DEPTH, MAX_NESTING_DEPTH + 1));
        assert!(scan(&"(".repeat(MAX_NESTING_DEPTH)).is_ok());
        // Parentheses in strings and comments do not count.
        assert!(scan(&format!("\"{deep}\" # {deep}")).is_ok());
    }
}

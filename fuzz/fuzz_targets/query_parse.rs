//! Fuzz target `query_parse`: the query language's entry points on arbitrary UTF-8, the
//! way `POST /v1/query`, saved segments and campaign triggers reach them: `parse_segment`,
//! `parse_trigger`, and the rendered error message shown to the user; also the duration
//! and date-time parsers the JSON API reuses.
//!
//! Failure means a panic (including a stack overflow), an error whose span lies outside the
//! input, or a broken round trip: whatever parses must print canonically, and the printed
//! form must parse back to the same tree and print identically. Syntax errors are expected
//! and fine. The only tolerated failure of the re-parse is a size limit: the canonical
//! form can be longer than a compact source (`x==1` prints as `x == 1`).
//!
//! Run: `fuzz/run.sh 60 query_parse` (or see docs/fuzzing.md).

#![no_main]

use libfuzzer_sys::fuzz_target;
use nudge_query_lang::{
    Error, ErrorKind, MAX_DURATION_MS, parse_date_time, parse_duration, parse_segment,
    parse_trigger,
};

/// Checks what every error must satisfy, whatever the input.
fn check_error(source: &str, error: &Error) {
    assert!(error.span().start <= error.span().end, "{error:?}");
    assert!(error.span().end <= source.len(), "{error:?}");
    assert!(error.line() >= 1, "{error:?}");
    // Columns count the characters before the fault on its line (the spec's convention).
    let line_text = source.lines().nth(error.line() - 1).unwrap_or("");
    assert!(error.column() <= line_text.chars().count(), "{error:?}");
    let rendered = error.render(source);
    assert!(rendered.starts_with("error: "), "{rendered}");
    assert!(!error.to_string().is_empty());
}

/// Whether a re-parse failed only because the canonical form hit a size limit.
fn is_size_limit(error: &Error) -> bool {
    matches!(error.kind(), ErrorKind::TooLong | ErrorKind::TooManyNodes)
}

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };

    match parse_segment(source) {
        Ok(expr) => {
            let printed = expr.to_string();
            match parse_segment(&printed) {
                Ok(reparsed) => {
                    assert_eq!(reparsed, expr, "segment round trip of {source:?} via {printed:?}");
                    assert_eq!(reparsed.to_string(), printed, "printing is not idempotent");
                }
                Err(error) if is_size_limit(&error) => {}
                Err(error) => panic!("canonical {printed:?} fails:\n{}", error.render(&printed)),
            }
        }
        Err(error) => check_error(source, &error),
    }

    match parse_trigger(source) {
        Ok(trigger) => {
            let printed = trigger.to_string();
            match parse_trigger(&printed) {
                Ok(reparsed) => {
                    assert_eq!(
                        reparsed, trigger,
                        "trigger round trip of {source:?} via {printed:?}"
                    );
                    assert_eq!(reparsed.to_string(), printed, "printing is not idempotent");
                }
                Err(error) if is_size_limit(&error) => {}
                Err(error) => panic!("canonical {printed:?} fails:\n{}", error.render(&printed)),
            }
        }
        Err(error) => check_error(source, &error),
    }

    if let Some(ms) = parse_duration(source) {
        assert!(ms <= MAX_DURATION_MS, "{source:?} gave {ms} ms");
    }
    let _ = parse_date_time(source);
});

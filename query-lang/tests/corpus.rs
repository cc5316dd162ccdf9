//! The query corpus: every file under `tests/cases/ok/` must parse, every file under
//! `tests/cases/err/` must fail, and the outcome is compared with a reviewed snapshot in
//! `tests/snapshots/`.
//!
//! - `ok/NNNN_name.nq`: the snapshot records the canonical printing and the AST with spans;
//!   the test also checks that the canonical printing re-parses to the same AST and prints
//!   identically (idempotence).
//! - `err/NNNN_name.nq`: the snapshot records the rendered error, exactly as a user sees it.
//!
//! Files whose name (after the number) starts with `trigger_` are parsed with
//! `parse_trigger`, all others with `parse_segment`.
//!
//! To add a case, add a file and run `INSTA_UPDATE=always cargo test -p nudge-query-lang
//! --test corpus`, then review the new `.snap` file before committing it.

use std::path::Path;

use nudge_query_lang::{parse_segment, parse_trigger};

/// Whether the case file is a trigger (`NNNN_trigger_….nq`).
fn is_trigger(path: &Path) -> bool {
    let name = path.file_stem().and_then(|stem| stem.to_str()).unwrap_or_default();
    name.split_once('_').is_some_and(|(_, rest)| rest.starts_with("trigger_"))
}

/// Canonical text and debug AST of a source that must parse, checking the round trip.
fn parse_ok(path: &Path, source: &str) -> (String, String) {
    if is_trigger(path) {
        let trigger =
            parse_trigger(source).unwrap_or_else(|error| panic!("{}", error.render(source)));
        let canonical = trigger.to_string();
        let reparsed = parse_trigger(&canonical)
            .unwrap_or_else(|error| panic!("canonical form fails: {}", error.render(&canonical)));
        assert_eq!(reparsed, trigger, "canonical form parses differently: {canonical}");
        assert_eq!(reparsed.to_string(), canonical, "printing is not idempotent");
        (canonical, format!("{trigger:#?}"))
    } else {
        let expr = parse_segment(source).unwrap_or_else(|error| panic!("{}", error.render(source)));
        let canonical = expr.to_string();
        let reparsed = parse_segment(&canonical)
            .unwrap_or_else(|error| panic!("canonical form fails: {}", error.render(&canonical)));
        assert_eq!(reparsed, expr, "canonical form parses differently: {canonical}");
        assert_eq!(reparsed.to_string(), canonical, "printing is not idempotent");
        (canonical, format!("{expr:#?}"))
    }
}

/// Checks every `@start..end` of a debug AST: within the source, on character boundaries,
/// not empty, and trimmed (a node never starts or ends with whitespace).
fn check_spans(path: &Path, source: &str, debug_ast: &str) {
    for (at, _) in debug_ast.match_indices('@') {
        let Some((start, rest)) = debug_ast[at + 1..].split_once("..") else { continue };
        let end: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let (Ok(start), Ok(end)) = (start.parse::<usize>(), end.parse::<usize>()) else {
            continue;
        };
        let text = source.get(start..end).unwrap_or_else(|| {
            panic!("{}: span {start}..{end} is not within the source", path.display())
        });
        assert!(!text.is_empty(), "{}: empty span at {start}", path.display());
        assert_eq!(text, text.trim(), "{}: span {start}..{end} is not trimmed", path.display());
    }
}

#[test]
fn ok_cases_parse_and_print_canonically() {
    insta::glob!("cases/ok/*.nq", |path| {
        let source = std::fs::read_to_string(path).expect("readable case");
        let (canonical, ast) = parse_ok(path, &source);
        check_spans(path, &source, &ast);
        insta::assert_snapshot!(format!("{canonical}\n\n{ast}"));
    });
}

#[test]
fn err_cases_fail_with_a_rendered_error() {
    insta::glob!("cases/err/*.nq", |path| {
        let source = std::fs::read_to_string(path).expect("readable case");
        let result = if is_trigger(path) {
            parse_trigger(&source).map(|trigger| trigger.to_string())
        } else {
            parse_segment(&source).map(|expr| expr.to_string())
        };
        let error = match result {
            Ok(printed) => panic!("{} parses, as `{printed}`", path.display()),
            Err(error) => error,
        };
        // The accessors agree with the rendering.
        let rendered = error.render(&source);
        let location = format!("--> line {}, column {}", error.line(), error.column());
        assert!(rendered.contains(&location), "{rendered}");
        insta::assert_snapshot!(format!("{rendered}\n\nkind: {:?}", error.kind()));
    });
}

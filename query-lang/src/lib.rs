//! Syntax of the Nudge query language: segment expressions and triggers.
//!
//! This crate turns text into a typed, spanned AST ([`Expr`], [`Trigger`]) or into an
//! [`Error`] that names the line and column, shows the line with a caret under the fault
//! and says what was expected. It prints ASTs back in canonical syntax (`Display`), with
//! `parse(ast.to_string()) == ast`.
//!
//! It is **syntax only**: it depends on nothing else in the workspace, knows nothing about
//! storage, and does not check that events or properties exist or that types fit. The
//! engine's binder and evaluator do that, reusing the spans for their own errors. The user
//! reference, including every error message, is `docs/query-language.md`.
//!
//! # Grammar
//!
//! Keywords are case-insensitive; whitespace, newlines and `#` comments are free between
//! tokens. `not` binds tighter than `and`, which binds tighter than `or`.
//!
//! ```ebnf
//! segment   = expr ;
//! trigger   = "on" filter [ tail ] [ "if" expr ] ;
//! tail      = "unless" filter "within" duration
//!           | "then" filter "within" duration
//!           | "at" property ( "+" | "-" ) duration ;
//!
//! expr      = term { "or" term } ;
//! term      = factor { "and" factor } ;
//! factor    = { "not" } ( "(" expr ")" | clause ) ;
//! clause    = "did" filter "then" "not" filter "within" duration [ window ]
//!           | "did" filter ( "then" filter ) { "then" filter } [ "within" duration ] [ window ]
//!           | "did" filter integer ( "times" | "time" ) "in" "a" "row" [ window ]
//!           | "did" filter [ count [ window ] | window [ count ] ]
//!           | ( "first" | "last" ) "did" filter window
//!           | aggregate "(" property ")" "of" filter [ window ] compare-op number
//!           | "user." path test
//!           | "in" "segment" string
//!           | "reachable" "via" "webpush" ;
//! aggregate = "sum" | "avg" | "min" | "max" | "count_distinct" ;
//! filter    = string [ "where" condition ] ;       (* the event name, then a condition *)
//! count     = ( "at" "least" | "at" "most" | "exactly" ) integer times
//!           | "between" integer "and" integer times ;
//! times     = "times" | "time" ;
//! window    = "in" "last" duration | "between" time "and" time
//!           | "since" time | "before" time ;
//! time      = date | date-time | "now" | duration "ago" ;
//!
//! condition = { "not" } ( "(" cond-or ")" | comparison ) ;   (* after `where` *)
//! cond-or   = cond-and { "or" cond-and } ;
//! cond-and  = condition { "and" condition } ;
//! comparison= property test ;
//! test      = compare-op value | "in" list-or-ref | "not" "in" list-or-ref
//!           | "contains" scalar | "starts" "with" scalar
//!           | "between" scalar "and" scalar | "exists" | "not" "exists" ;
//! compare-op= "==" | "!=" | "<" | "<=" | ">" | ">=" ;
//! value     = scalar | list ;           list-or-ref = list | event-ref ;
//! scalar    = string | number | "true" | "false" | event-ref ;
//! list      = "[" [ literal { "," literal } [ "," ] ] "]" ;
//! event-ref = "event." path ;           (* triggers only *)
//! property  = path ;                    path = name { "." name } ;
//! name      = identifier | "`" quoted "`" ;   (* identifier: [A-Za-z_][A-Za-z0-9_]* *)
//! duration  = digits [ spaces ] unit ;  (* ms s m h d w, or words: 7 days, 1 week, 10 mins *)
//! ```
//!
//! A `where` takes **one** comparison (possibly negated) or a **parenthesised** boolean, so
//! a bare `and` after it belongs to the enclosing expression: `did "A" where x == 1 and
//! did "B"` is two clauses.
//!
//! # Limits
//!
//! Inputs are bounded before and during parsing, so hostile input cannot exhaust the stack
//! or memory: at most [`MAX_QUERY_BYTES`] bytes, [`MAX_NESTING_DEPTH`] nested parentheses
//! and `not`s, [`MAX_AST_NODES`] AST nodes; durations up to [`MAX_DURATION_MS`]; instants
//! in years 0000–9999 UTC; counts up to `u32::MAX`; integers in `i64`. The parenthesis
//! depth is checked before pest runs; a query at the depth limit parses in well under
//! 1 MiB of stack even in an unoptimised build (a test holds it to that).
//!
//! # Example
//!
//! ```
//! use nudge_query_lang::{parse_segment, parse_trigger};
//!
//! let segment = parse_segment(r#"did "Session Started" AT LEAST 5 times in last 14 days"#)?;
//! assert_eq!(segment.to_string(), r#"did "Session Started" at least 5 times in last 14d"#);
//!
//! let trigger = parse_trigger(r#"on "Flight Booked" at travel_date - 1d"#)?;
//! assert_eq!(trigger.tail.and_then(|tail| tail.at_offset_ms()), Some(-86_400_000));
//!
//! let error = parse_segment(r#"did "Added To Cart" in last seven"#).unwrap_err();
//! assert_eq!((error.line(), error.column()), (1, 28));
//! assert_eq!(
//!     error.render(r#"did "Added To Cart" in last seven"#),
//!     "error: expected a duration such as 10m or 7d after `in last`
//!  --> line 1, column 28
//!   |
//! 1 | did \"Added To Cart\" in last seven
//!   |                             ^^^^^"
//! );
//! # Ok::<(), nudge_query_lang::Error>(())
//! ```

mod ast;
mod error;
mod parser;
mod print;
mod scan;
mod span;
mod time;

pub use ast::{
    Aggregate, AggregateFn, Clause, CompareOp, Comparison, Condition, ConditionKind, Count, Did,
    Duration, EventFilter, Expr, ExprKind, FirstLast, InARow, Number, PropertyPath, Sequence, Sign,
    Test, ThenNot, TimePoint, Trigger, TriggerTail, Value, Window,
};
pub use error::{Error, ErrorKind, MAX_RENDERED_CHARS};
pub use span::{Span, Spanned, line_column};
pub use time::{MAX_TIME_MS, MIN_TIME_MS, duration_unit_ms, parse_date_time, parse_duration};

/// The result of parsing: a tree or an [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Longest accepted source, in bytes (16 KiB). Longer input is rejected before parsing.
pub const MAX_QUERY_BYTES: usize = 16 * 1024;

/// Deepest accepted nesting of parentheses and `not` (in expressions and conditions
/// together). Checked before pest runs, so parsing never overflows the stack.
pub const MAX_NESTING_DEPTH: usize = 32;

/// Most AST nodes (every [`Spanned`] counts) a query may produce.
pub const MAX_AST_NODES: usize = 2_000;

/// Longest accepted duration: one million days (about 2,700 years), in milliseconds. With
/// instants limited to years 0000–9999, `now ± duration` always fits in an `i64`.
pub const MAX_DURATION_MS: u64 = 1_000_000 * 86_400_000;

/// Parses a segment expression (`POST /v1/query`, saved segments, campaign audiences).
///
/// `event.P` values are rejected ([`ErrorKind::EventRefOutsideTrigger`]): they only have a
/// meaning inside a trigger.
pub fn parse_segment(source: &str) -> Result<Expr> {
    parser::parse_segment(source)
}

/// Parses a trigger: `on E [where C] [unless … | then … | at …] [if expr]`.
///
/// `event.P` values (a property of the triggering event) are accepted in every `where` of
/// the trigger and anywhere in its `if` expression.
pub fn parse_trigger(source: &str) -> Result<Trigger> {
    parser::parse_trigger(source)
}

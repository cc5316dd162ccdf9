//! Segment evaluation: a query's text → the users it selects, with the count,
//! a limited sorted list of external ids, the time taken, warnings (names never
//! seen), and the plan with per-step sizes and times (`explain`).
//!
//! - `condition.rs`: `where` and `user.` comparisons, bound to key ids.
//! - `eval.rs`: the clauses, evaluated within a narrowing scope of candidates.
//! - `columnar.rs`: counts, aggregates and sequences over event-major day rows.
//! - `count.rs`: count-only answers that count the last step instead of building it.
//! - `fusion.rs`: aggregates over the same values answered in one pass.
//! - `aggregate.rs`: `sum`, `avg`, `min`, `max`, `count_distinct` on a timeline.
//!
//! The semantics are specified in `docs/query-language.md` ("Evaluation
//! semantics"). Syntax is `query-lang`'s business; this module binds names to
//! dictionary ids and reads the indexes and timelines of `state/`.

mod aggregate;
mod columnar;
pub mod condition;
mod count;
mod eval;
mod fusion;

use std::time::Instant;

pub use eval::MAX_SEGMENT_REFERENCE_DEPTH;

use crate::dict::Dictionaries;
use crate::error::{Error, Result};
use crate::state::DerivedState;

/// Longest saved segment name, in bytes.
pub const MAX_SEGMENT_NAME_BYTES: usize = 128;
/// Most user ids an answer lists when the caller sets no limit.
pub const DEFAULT_ANSWER_LIMIT: usize = 1000;

/// How to evaluate a query.
#[derive(Debug, Clone, Default)]
pub struct QueryOptions {
    /// The query's `now` in epoch ms; `None` means the engine clock.
    pub now_ms: Option<i64>,
    /// Most user ids to list (sorted); `None` means [`DEFAULT_ANSWER_LIMIT`], 0 counts only.
    pub limit: Option<usize>,
    /// How candidates are checked (the answer is the same either way).
    pub strategy: Strategy,
}

/// How clauses that bitmaps alone cannot answer check their candidates. Every
/// strategy gives the same answer; they differ in speed only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Strategy {
    /// Day rows when at least [`DAY_ROWS_MIN_CANDIDATES`] candidates remain,
    /// each candidate's timeline otherwise.
    #[default]
    Auto,
    /// Always each candidate's timeline.
    Timelines,
    /// Always the event-major day rows.
    DayRows,
}

/// Candidates from which [`Strategy::Auto`] reads day rows rather than timelines.
pub const DAY_ROWS_MIN_CANDIDATES: u64 = 2048;

/// One evaluated clause, for `explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanStep {
    /// Nesting under `and`/`or`/`not`/saved segments.
    pub depth: usize,
    /// The clause, in canonical syntax.
    pub clause: String,
    /// Users in play when the clause ran.
    pub scope_users: u64,
    /// Users it selected.
    pub selected_users: u64,
    /// Time it took, in microseconds.
    pub took_us: u64,
}

/// A query's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Users selected.
    pub count: u64,
    /// Their external ids, sorted, at most the limit.
    pub users: Vec<String>,
    /// Evaluation time in microseconds (parse included).
    pub took_us: u64,
    /// Names never seen, and the like: not errors, but worth showing.
    pub warnings: Vec<String>,
    /// The clauses in evaluation order, with sizes and times.
    pub plan: Vec<PlanStep>,
    /// The `now` used.
    pub now_ms: i64,
}

/// Builds a bitmap from user ids in strictly ascending order (as bitmaps
/// iterate). `RoaringBitmap::push` rescans a dense container for its maximum
/// on every call; appending a sorted run does not.
pub(crate) fn from_ascending(
    users: impl Iterator<Item = crate::dict::UserId>,
) -> roaring::RoaringBitmap {
    roaring::RoaringBitmap::from_sorted_iter(users).expect("user ids come in ascending order")
}

/// Parses a segment expression, turning a syntax error into [`Error::Query`].
pub fn parse(text: &str) -> Result<nudge_query_lang::Expr> {
    nudge_query_lang::parse_segment(text).map_err(|e| Error::Query {
        line: e.line(),
        column: e.column(),
        message: e.message().to_string(),
        rendered: e.render(text),
    })
}

/// Evaluates `text` against one consistent view of the engine.
pub fn evaluate(
    dicts: &Dictionaries,
    state: &DerivedState,
    text: &str,
    now_ms: i64,
    limit: usize,
    strategy: Strategy,
) -> Result<Answer> {
    let started = Instant::now();
    let expr = parse(text)?;
    let mut evaluator = eval::Evaluator::new(dicts, state, now_ms, &state.segments, strategy);
    let (count, users) = if limit == 0 {
        (evaluator.count(&expr)?, Vec::new())
    } else {
        let selected = evaluator.expr(&expr, &state.indexes.all_user_ids)?;
        // The first `limit` external ids in sorted order, not the first dense ids.
        let mut names: Vec<&str> = selected.iter().filter_map(|u| dicts.users.name(u)).collect();
        if names.len() > limit {
            names.select_nth_unstable(limit);
            names.truncate(limit);
        }
        names.sort_unstable();
        (selected.len(), names.into_iter().map(str::to_owned).collect())
    };
    Ok(Answer {
        count,
        users,
        took_us: started.elapsed().as_micros() as u64,
        warnings: evaluator.warnings,
        plan: evaluator.plan,
        now_ms,
    })
}

/// The users of `scope` that `expr` selects at `now` by `strategy`, with
/// `event.P` references read from `event` (a trigger's `if`, checked for the
/// user it would fire for; `Timelines` suits one user, `Auto` a scheduled
/// campaign's audience).
pub(crate) fn select_by(
    dicts: &Dictionaries,
    state: &DerivedState,
    expr: &nudge_query_lang::Expr,
    now_ms: i64,
    scope: &roaring::RoaringBitmap,
    event: condition::EventRefs<'_>,
    strategy: Strategy,
) -> Result<roaring::RoaringBitmap> {
    let mut evaluator = eval::Evaluator::new(dicts, state, now_ms, &state.segments, strategy);
    evaluator.event = event;
    evaluator.expr(expr, scope)
}

/// The saved segments `expr` refers to with `in segment`.
fn references(expr: &nudge_query_lang::Expr, out: &mut Vec<String>) {
    use nudge_query_lang::{Clause, ExprKind};
    match &expr.node {
        ExprKind::Or(items) | ExprKind::And(items) => items.iter().for_each(|e| references(e, out)),
        ExprKind::Not(inner) => references(inner, out),
        ExprKind::Clause(clause) => {
            if let Clause::InSegment(name) = &**clause {
                out.push(name.node.clone());
            }
        }
    }
}

/// Checks that, among `segments`, following `in segment` references from
/// `start` never comes back to a segment already on the path. References to
/// names not saved (yet) are allowed; evaluating them is an error.
pub fn check_references(
    segments: &std::collections::BTreeMap<String, String>,
    start: &str,
) -> Result<()> {
    fn visit(
        segments: &std::collections::BTreeMap<String, String>,
        name: &str,
        path: &mut Vec<String>,
    ) -> Result<()> {
        if path.iter().any(|p| p == name) {
            path.push(name.to_owned());
            return Err(Error::invalid(
                None,
                "q",
                format!(
                    "saved segments would refer to each other in a cycle: {}",
                    path.join(" → ")
                ),
            ));
        }
        if path.len() >= MAX_SEGMENT_REFERENCE_DEPTH {
            return Err(Error::invalid(
                None,
                "q",
                format!(
                    "saved segments would nest deeper than {MAX_SEGMENT_REFERENCE_DEPTH} levels"
                ),
            ));
        }
        let Some(text) = segments.get(name) else { return Ok(()) };
        let Ok(expr) = nudge_query_lang::parse_segment(text) else { return Ok(()) };
        let mut names = Vec::new();
        references(&expr, &mut names);
        path.push(name.to_owned());
        for next in names {
            visit(segments, &next, path)?;
        }
        path.pop();
        Ok(())
    }
    visit(segments, start, &mut Vec::new())
}

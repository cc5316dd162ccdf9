//! Segment evaluation: a query's text → the users it selects, with the count,
//! a limited sorted list of external ids, the time taken, warnings (names never
//! seen), and the plan with per-step sizes and times (`explain`).
//!
//! - `condition.rs`: `where` and `user.` comparisons, bound to key ids.
//! - `eval.rs`: the clauses, evaluated within a narrowing scope of candidates.
//! - `profile.rs`: `user.` comparisons, from the profile value index or the profiles.
//! - `saved.rs`: saved segments, which are public, and their parsed expressions.
//! - `columnar.rs`: counts, aggregates and sequences over event-major day rows.
//! - `count.rs`: count-only answers that count the last step instead of building it.
//! - `fusion.rs`: aggregates over the same values answered in one pass.
//! - `aggregate.rs`: `sum`, `avg`, `min`, `max`, `count_distinct` on a timeline.
//!
//! The semantics are specified in `docs/query-language.md` ("Evaluation
//! semantics"). Syntax is `query-lang`'s business; this module binds names to
//! dictionary ids and reads the indexes and timelines of the store (`store/state/`) through [`Source`], with the query cache (`day_rows.rs`) beside them.

mod aggregate;
mod columnar;
pub mod condition;
mod count;
pub mod day_rows;
mod eval;
mod fusion;
mod profile;
mod saved;

use std::time::Instant;

pub use eval::MAX_SEGMENT_REFERENCE_DEPTH;

use crate::error::{Error, Result};
use crate::store::dict::Dictionaries;
use crate::store::log::entry::ArchivedLogEntry;
use crate::store::state::StoreState;
pub use day_rows::ColumnCache;
pub use saved::SavedSegments;

/// What a query reads: the store's derived state, and the query layer's cache
/// of views built from it. Dereferences to the store's state.
#[derive(Clone, Copy)]
pub struct Source<'a> {
    /// Timelines, indexes, profiles, subscriptions.
    pub store: &'a StoreState,
    /// Day rows and other views built from them on demand.
    pub columns: &'a ColumnCache,
    /// The saved segments `in segment` refers to.
    pub segments: &'a SavedSegments,
}

impl std::ops::Deref for Source<'_> {
    type Target = StoreState;

    fn deref(&self) -> &StoreState {
        self.store
    }
}

/// The query layer's derived state: the saved segments (a fold of their log
/// entries) and the query cache (never saved; rebuilt as days change, and
/// dropped whole when a day is sealed).
#[derive(Debug, Clone, Default)]
pub struct QueryState {
    /// Saved segments: name → expression text.
    pub segments: SavedSegments,
    /// Event-major views built on demand by queries (not saved, not compared).
    pub columns: ColumnCache,
}

impl QueryState {
    /// Applies one entry of a durable batch: saved segments; every other
    /// entry belongs to another layer and is ignored.
    pub fn apply_entry(&mut self, entry: &ArchivedLogEntry) {
        self.segments.apply_entry(entry);
        if matches!(entry, ArchivedLogEntry::SealDay(_) | ArchivedLogEntry::DaySealed(_)) {
            // Rows moved between the tiers: the cached rows hold property
            // handles that no longer point at them.
            self.columns = ColumnCache::default();
        }
    }

    /// What a query of `store` reads.
    pub fn source<'a>(&'a self, store: &'a StoreState) -> Source<'a> {
        Source { store, columns: &self.columns, segments: &self.segments }
    }
}

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
    /// How long the query may run, in ms, before it is stopped with
    /// `Error::QueryStopped`; `None` means [`crate::limits::DEFAULT_QUERY_DEADLINE_MS`].
    /// It is checked between clauses and, inside a clause's check of its
    /// candidates, every [`crate::limits::QUERY_DEADLINE_SAMPLE_USERS`] user ids.
    pub deadline_ms: Option<u64>,
    /// How many bytes of intermediate results the query may build before it is
    /// stopped with `Error::QueryOverMemory`; `None` means
    /// [`crate::limits::DEFAULT_QUERY_MEMORY_LIMIT_BYTES`].
    pub memory_limit_bytes: Option<u64>,
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
    users: impl Iterator<Item = crate::store::dict::UserId>,
) -> roaring::RoaringBitmap {
    roaring::RoaringBitmap::from_sorted_iter(users).expect("user ids come in ascending order")
}

/// When a query must stop: a point on the monotonic clock (a wall-clock
/// budget, not a point in the data's time, which is `now`). Checked
/// cooperatively: between clauses, and for one user id in
/// [`crate::limits::QUERY_DEADLINE_SAMPLE_USERS`] while a clause checks candidates.
#[derive(Debug)]
pub struct Deadline {
    /// `None` when the budget is too large to reach (never passes).
    at: Option<Instant>,
    budget_ms: u64,
    passed: std::sync::atomic::AtomicBool,
}

impl Deadline {
    /// A deadline `budget_ms` from now.
    pub fn after(budget_ms: u64) -> Deadline {
        let at = Instant::now().checked_add(std::time::Duration::from_millis(budget_ms));
        Deadline { at, budget_ms, passed: std::sync::atomic::AtomicBool::new(false) }
    }

    /// Whether the deadline has passed (remembered once seen).
    pub(crate) fn passed(&self) -> bool {
        use std::sync::atomic::Ordering;
        if self.passed.load(Ordering::Relaxed) {
            return true;
        }
        let passed = self.at.is_some_and(|at| Instant::now() >= at);
        if passed {
            self.passed.store(true, Ordering::Relaxed);
        }
        passed
    }

    /// Whether to stop at user `user`: reads the clock for one id in
    /// [`crate::limits::QUERY_DEADLINE_SAMPLE_USERS`] only.
    pub(crate) fn passed_at(&self, user: u32) -> bool {
        use std::sync::atomic::Ordering;
        if user & (crate::limits::QUERY_DEADLINE_SAMPLE_USERS - 1) == 0 {
            self.passed()
        } else {
            self.passed.load(Ordering::Relaxed)
        }
    }

    /// `Err(Error::QueryStopped)` once the deadline has passed.
    pub(crate) fn check(&self) -> Result<()> {
        if self.passed() {
            Err(Error::QueryStopped { deadline_ms: self.budget_ms })
        } else {
            Ok(())
        }
    }
}

/// How much memory a query's intermediate results may take: each clause's
/// result bitmap is counted when it is made (and never uncounted, so the sum
/// bounds what is held at once), as is the listing of the answer's ids.
#[derive(Debug, Clone, Copy)]
pub struct MemoryBudget {
    limit_bytes: u64,
    used_bytes: u64,
}

impl MemoryBudget {
    /// A budget of `limit_bytes`.
    pub fn new(limit_bytes: u64) -> MemoryBudget {
        MemoryBudget { limit_bytes, used_bytes: 0 }
    }

    /// Counts `bytes` more; `Err(Error::QueryOverMemory)` once past the limit.
    pub(crate) fn charge(&mut self, bytes: u64) -> Result<()> {
        self.used_bytes = self.used_bytes.saturating_add(bytes);
        if self.used_bytes > self.limit_bytes {
            Err(Error::QueryOverMemory { limit_bytes: self.limit_bytes })
        } else {
            Ok(())
        }
    }
}

/// Parses a segment expression, turning a syntax error into [`Error::Query`].
pub fn parse(text: &str) -> Result<nudge_query_lang::Expr> {
    nudge_query_lang::parse_segment(text).map_err(|e| Error::query(&e, text, "q"))
}

/// Evaluates `text` against one consistent view of the engine, within its
/// deadline and memory limit.
pub fn evaluate(
    dicts: &Dictionaries,
    state: &Source<'_>,
    text: &str,
    now_ms: i64,
    limit: usize,
    strategy: Strategy,
    (deadline, memory): (Deadline, MemoryBudget),
) -> Result<Answer> {
    let started = Instant::now();
    let expr = parse(text)?;
    let mut evaluator =
        eval::Evaluator::new(dicts, state, now_ms, state.segments.by_name(), strategy);
    evaluator.deadline = Some(deadline);
    evaluator.memory = Some(memory);
    let (count, users) = if limit == 0 {
        (evaluator.count(&expr)?, Vec::new())
    } else {
        let selected = evaluator.expr(&expr, &state.indexes.all_user_ids)?;
        if let Some(memory) = &mut evaluator.memory {
            memory.charge(selected.len().saturating_mul(std::mem::size_of::<&str>() as u64))?;
        }
        // The first `limit` external ids in sorted order, not the first dense ids.
        let mut names: Vec<&str> = selected.iter().filter_map(|u| dicts.users.name(u)).collect();
        if names.len() > limit {
            names.select_nth_unstable(limit);
            names.truncate(limit);
        }
        names.sort_unstable();
        (selected.len(), names.into_iter().map(str::to_owned).collect())
    };
    // A day file section that failed its check read as no rows.
    state.sealed.damage()?;
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
    state: &Source<'_>,
    expr: &nudge_query_lang::Expr,
    now_ms: i64,
    scope: &roaring::RoaringBitmap,
    event: condition::EventRefs<'_>,
    strategy: Strategy,
) -> Result<roaring::RoaringBitmap> {
    let mut evaluator =
        eval::Evaluator::new(dicts, state, now_ms, state.segments.by_name(), strategy);
    evaluator.event = event;
    evaluator.record_plan = false;
    let selected = evaluator.expr(expr, scope)?;
    // A day file section that failed its check read as no rows.
    state.sealed.damage()?;
    Ok(selected)
}

/// The saved segments one user is in ([`segments_of_user`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserSegments {
    /// Their names, sorted.
    pub segments: Vec<String>,
    /// The saved segments that could not be evaluated (a text that no longer
    /// parses, a reference to a segment removed since), each with why; they
    /// are left out of `segments`.
    pub warnings: Vec<String>,
}

/// The saved segments (every one, or the public ones only) that `user` is in
/// at `now_ms`: each is evaluated with a scope of that one user, from its
/// parsed expression, reading that user's rows only.
pub fn segments_of_user(
    dicts: &Dictionaries,
    state: &Source<'_>,
    user: crate::store::dict::UserId,
    public_only: bool,
    now_ms: i64,
) -> Result<UserSegments> {
    let scope = roaring::RoaringBitmap::from_iter([user]);
    let segments = state.segments.by_name();
    let mut answer = UserSegments::default();
    for name in segments.keys() {
        if public_only && !state.segments.is_public(name) {
            continue;
        }
        let Some(expr) = state.segments.parsed(name) else {
            answer.warnings.push(format!("saved segment {name:?} no longer parses"));
            continue;
        };
        let mut evaluator =
            eval::Evaluator::new(dicts, state, now_ms, segments, Strategy::Timelines);
        evaluator.record_plan = false;
        // The day files are checked once, after every segment.
        match evaluator.expr(expr, &scope) {
            Ok(selected) if selected.contains(user) => answer.segments.push(name.clone()),
            Ok(_) => {}
            Err(error) => answer.warnings.push(format!("saved segment {name:?}: {error}")),
        }
    }
    // A day file section that failed its check read as no rows: the answer is not whole.
    state.sealed.damage()?;
    Ok(answer)
}

#[cfg(test)]
mod deadline_tests {
    use super::Deadline;
    use crate::Error;

    #[test]
    fn a_passed_deadline_is_read_on_sampled_users_and_then_remembered() {
        let deadline = Deadline::after(0);
        // Not a sampled id, and nothing seen yet: the clock is not read.
        assert!(!deadline.passed_at(1));
        // A sampled id reads the clock, which is past a 0 ms budget.
        assert!(deadline.passed_at(crate::limits::QUERY_DEADLINE_SAMPLE_USERS));
        // Once seen, every id stops.
        assert!(deadline.passed_at(1));
        assert!(matches!(deadline.check(), Err(Error::QueryStopped { deadline_ms: 0 })));
    }

    #[test]
    fn a_generous_deadline_does_not_stop_anything() {
        for budget in [60_000, crate::limits::NO_QUERY_DEADLINE_MS] {
            let deadline = Deadline::after(budget);
            assert!(!deadline.passed_at(0));
            assert!(deadline.check().is_ok());
        }
    }
}

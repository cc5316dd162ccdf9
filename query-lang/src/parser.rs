//! Source text → typed AST. The only module that knows pest exists.
//!
//! Pipeline, for both entry points:
//!
//! 1. **limits first**: the length check ([`MAX_QUERY_BYTES`]) and the lexical pre-scan
//!    (`scan.rs`: unterminated strings, parenthesis depth) run before pest, so pest's
//!    recursion is bounded by [`MAX_NESTING_DEPTH`] and can never overflow the stack;
//! 2. **pest** recognises `grammar.pest`;
//! 3. **conversion**: one method per grammar rule turns pairs into AST nodes (each starts
//!    by asserting the rule it converts), attaches spans, validates literals (escapes,
//!    number ranges, dates, durations, count bounds), enforces the context rules (`event.P`
//!    only in triggers, no `user.` in `where`), counts nesting (parentheses *and* `not`)
//!    and nodes ([`MAX_AST_NODES`]);
//! 4. **errors**: a pest failure becomes an [`Error`] whose message lists, in words, what
//!    was expected and after which keywords, with the caret under the offending token.
//!
//! What it does not do: name resolution, types, evaluation (the engine's job). Tests go
//! through the public `parse_*` functions and assert on the AST and rendered errors, never
//! on pest pairs, so that this module could be replaced by a hand-written parser.

use pest::Parser as _;
use pest::error::{ErrorVariant, InputLocation};
use pest::iterators::Pair;
use pest_derive::Parser;

use crate::ast::{
    Aggregate, AggregateFn, Clause, CompareOp, Comparison, Condition, ConditionKind, Count, Did,
    Duration, EventFilter, Expr, ExprKind, FirstLast, InARow, Number, PropertyPath, Sequence, Sign,
    Test, ThenNot, TimePoint, Trigger, TriggerTail, Value, Window,
};
use crate::error::{Error, ErrorKind};
use crate::scan::{self, Token, TokenKind};
use crate::span::{Span, Spanned};
use crate::time::{MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE, MS_PER_SECOND, MS_PER_WEEK};
use crate::{MAX_AST_NODES, MAX_DURATION_MS, MAX_NESTING_DEPTH, MAX_QUERY_BYTES};

#[derive(Parser)]
#[grammar = "grammar.pest"]
struct Grammar;

/// Which entry point is parsing: `event.P` is only meaningful in a trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Segment,
    Trigger,
}

/// Parses a segment expression (see [`crate::parse_segment`]).
pub(crate) fn parse_segment(source: &str) -> Result<Expr> {
    let tokens = precheck(source)?;
    let root = Grammar::parse(Rule::segment, source)
        .map_err(|error| syntax_error(source, &tokens, &error, Mode::Segment))?
        .next()
        .expect("grammar: `segment` yields one pair");
    let mut converter = Converter::new(source, &tokens, Mode::Segment);
    let [expr] = parts(root);
    converter.expr(expr)
}

/// Parses a trigger (see [`crate::parse_trigger`]).
pub(crate) fn parse_trigger(source: &str) -> Result<Trigger> {
    let tokens = precheck(source)?;
    let root = Grammar::parse(Rule::trigger, source)
        .map_err(|error| syntax_error(source, &tokens, &error, Mode::Trigger))?
        .next()
        .expect("grammar: `trigger` yields one pair");
    let mut converter = Converter::new(source, &tokens, Mode::Trigger);
    converter.trigger(root)
}

/// Length limit and lexical pre-scan; returns the rough tokens for error messages.
fn precheck(source: &str) -> Result<Vec<Token>> {
    if source.len() > MAX_QUERY_BYTES {
        let mut start = MAX_QUERY_BYTES;
        while !source.is_char_boundary(start) {
            start -= 1;
        }
        let end = start + source[start..].chars().next().map_or(0, char::len_utf8);
        return Err(Error::new(
            ErrorKind::TooLong,
            Span::new(start, end),
            format!(
                "the query is too long: {} bytes, the limit is {MAX_QUERY_BYTES} bytes",
                source.len()
            ),
            source,
        ));
    }
    scan::scan(source)
}

// ------------------------------------------------------------------------------ conversion

/// The span of a pair.
fn span_of(pair: &Pair<'_, Rule>) -> Span {
    let span = pair.as_span();
    Span::new(span.start(), span.end())
}

/// Whether a rule only carries punctuation or a keyword that the AST does not record.
fn is_noise(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::EOI
            | Rule::lparen
            | Rule::rparen
            | Rule::rbracket
            | Rule::comma
            | Rule::kw_a
            | Rule::kw_ago
            | Rule::kw_and
            | Rule::kw_at
            | Rule::kw_before
            | Rule::kw_between
            | Rule::kw_contains
            | Rule::kw_did
            | Rule::kw_exactly
            | Rule::kw_exists
            | Rule::kw_first
            | Rule::kw_if
            | Rule::kw_in
            | Rule::kw_last
            | Rule::kw_least
            | Rule::kw_most
            | Rule::kw_not
            | Rule::kw_now
            | Rule::kw_of
            | Rule::kw_on
            | Rule::kw_or
            | Rule::kw_reachable
            | Rule::kw_row
            | Rule::kw_segment
            | Rule::kw_since
            | Rule::kw_starts
            | Rule::kw_then
            | Rule::kw_times
            | Rule::kw_unless
            | Rule::kw_via
            | Rule::kw_webpush
            | Rule::kw_where
            | Rule::kw_with
            | Rule::kw_within
    )
}

/// The meaningful children of `pair` (keywords and punctuation dropped), exactly `N` of
/// them: the grammar guarantees the count, so a mismatch is a bug in this module.
fn parts<const N: usize>(pair: Pair<'_, Rule>) -> [Pair<'_, Rule>; N] {
    let rule = pair.as_rule();
    let children: Vec<_> = pair.into_inner().filter(|child| !is_noise(child.as_rule())).collect();
    let count = children.len();
    children
        .try_into()
        .unwrap_or_else(|_| panic!("grammar: `{rule:?}` has {count} parts, expected {N}"))
}

/// The meaningful children of `pair`, however many.
fn all_parts(pair: Pair<'_, Rule>) -> impl Iterator<Item = Pair<'_, Rule>> {
    pair.into_inner().filter(|child| !is_noise(child.as_rule()))
}

/// The only child of a rule that wraps a choice (`value`, `window`, `test`, …).
fn only_child(pair: Pair<'_, Rule>) -> Pair<'_, Rule> {
    let rule = pair.as_rule();
    pair.into_inner().next().unwrap_or_else(|| panic!("grammar: `{rule:?}` has a child"))
}

/// Converts pairs into AST nodes, counting nodes and nesting.
struct Converter<'s> {
    source: &'s str,
    /// The pre-scan's tokens, to trim spans (see [`Converter::span`]).
    tokens: &'s [Token],
    mode: Mode,
    /// Current number of enclosing parentheses and `not`s.
    depth: usize,
    /// Nodes created so far.
    nodes: usize,
}

type Result<T> = std::result::Result<T, Error>;

impl<'s> Converter<'s> {
    fn new(source: &'s str, tokens: &'s [Token], mode: Mode) -> Self {
        Converter { source, tokens, mode, depth: 0, nodes: 0 }
    }

    /// The span of a pair, trimmed to the tokens it covers. pest extends a rule over the
    /// whitespace and comments it skipped before an optional part that turned out empty
    /// (`did "A"   # note` would end after the comment); carets must not underline those.
    fn span(&self, pair: &Pair<'_, Rule>) -> Span {
        let Span { start, end } = span_of(pair);
        let first = self.tokens.partition_point(|token| token.span.start < start);
        let last = self.tokens.partition_point(|token| token.span.end <= end);
        let start = match self.tokens.get(first) {
            Some(token) if token.span.start < end => token.span.start,
            _ => start,
        };
        let end = match last.checked_sub(1).and_then(|index| self.tokens.get(index)) {
            Some(token) if token.span.end > start => token.span.end,
            _ => end,
        };
        Span::new(start, end)
    }

    fn error(&self, kind: ErrorKind, span: Span, message: impl Into<String>) -> Error {
        Error::new(kind, span, message, self.source)
    }

    /// Wraps `node` with `span`, counting it against [`MAX_AST_NODES`].
    fn node<T>(&mut self, node: T, span: Span) -> Result<Spanned<T>> {
        self.nodes += 1;
        if self.nodes > MAX_AST_NODES {
            return Err(self.error(
                ErrorKind::TooManyNodes,
                span,
                format!("the query is too large: more than {MAX_AST_NODES} syntax nodes"),
            ));
        }
        Ok(Spanned::new(node, span))
    }

    /// Enters one level of nesting (a parenthesis or a `not`) at `span`.
    fn enter(&mut self, span: Span) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_NESTING_DEPTH {
            return Err(scan::too_deep(self.source, span));
        }
        Ok(())
    }

    // ------------------------------------------------------------------- expressions

    fn expr(&mut self, pair: Pair<'s, Rule>) -> Result<Expr> {
        debug_assert_eq!(pair.as_rule(), Rule::expr);
        let span = self.span(&pair);
        let mut operands = Vec::new();
        for term in all_parts(pair) {
            match self.term(term)? {
                Spanned { node: ExprKind::Or(inner), .. } => operands.extend(inner),
                operand => operands.push(operand),
            }
        }
        self.combine(operands, span, ExprKind::Or)
    }

    fn term(&mut self, pair: Pair<'s, Rule>) -> Result<Expr> {
        debug_assert_eq!(pair.as_rule(), Rule::term);
        let span = self.span(&pair);
        let mut operands = Vec::new();
        for factor in all_parts(pair) {
            match self.factor(factor)? {
                Spanned { node: ExprKind::And(inner), .. } => operands.extend(inner),
                operand => operands.push(operand),
            }
        }
        self.combine(operands, span, ExprKind::And)
    }

    /// One operand as is, several under `make` (`Or` or `And`).
    fn combine<T>(
        &mut self,
        mut operands: Vec<Spanned<T>>,
        span: Span,
        make: fn(Vec<Spanned<T>>) -> T,
    ) -> Result<Spanned<T>> {
        if operands.len() == 1 {
            return Ok(operands.pop().expect("one operand"));
        }
        self.node(make(operands), span)
    }

    fn factor(&mut self, pair: Pair<'s, Rule>) -> Result<Expr> {
        debug_assert_eq!(pair.as_rule(), Rule::factor);
        let end = self.span(&pair).end;
        let saved_depth = self.depth;
        let mut not_starts = Vec::new();
        let mut expr = None;
        for child in pair.into_inner() {
            match child.as_rule() {
                Rule::kw_not => {
                    let span = self.span(&child);
                    self.enter(span)?;
                    not_starts.push(span.start);
                }
                Rule::group => expr = Some(self.group(child)?),
                _ => {
                    debug_assert_eq!(child.as_rule(), Rule::clause);
                    let span = self.span(&child);
                    let clause = self.clause(only_child(child))?;
                    expr = Some(self.node(ExprKind::Clause(Box::new(clause)), span)?);
                }
            }
        }
        let mut expr = expr.expect("grammar: a factor ends with a group or a clause");
        for start in not_starts.into_iter().rev() {
            expr = self.node(ExprKind::Not(Box::new(expr)), Span::new(start, end))?;
        }
        self.depth = saved_depth;
        Ok(expr)
    }

    fn group(&mut self, pair: Pair<'s, Rule>) -> Result<Expr> {
        debug_assert_eq!(pair.as_rule(), Rule::group);
        let span = self.span(&pair);
        self.enter(Span::new(span.start, span.start + 1))?;
        let [expr] = parts(pair);
        let expr = self.expr(expr)?;
        self.depth -= 1;
        // The node stands for the whole group, parentheses included.
        Ok(Spanned::new(expr.node, span))
    }

    // ----------------------------------------------------------------------- clauses

    fn clause(&mut self, pair: Pair<'s, Rule>) -> Result<Clause> {
        match pair.as_rule() {
            Rule::did_clause => self.did_clause(pair),
            Rule::first_clause => Ok(Clause::FirstDid(self.first_last(pair)?)),
            Rule::last_clause => Ok(Clause::LastDid(self.first_last(pair)?)),
            Rule::aggregate_clause => Ok(Clause::Aggregate(self.aggregate(pair)?)),
            Rule::user_clause => {
                let [property, test] = parts(pair);
                let property = self.property(property)?;
                let test = self.test(test)?;
                Ok(Clause::User(Comparison { property, test }))
            }
            Rule::segment_clause => {
                let [name] = parts(pair);
                Ok(Clause::InSegment(self.name(name, "segment name")?))
            }
            Rule::reachable_clause => Ok(Clause::ReachableViaWebpush),
            rule => unreachable!("grammar: `{rule:?}` is not a clause"),
        }
    }

    fn did_clause(&mut self, pair: Pair<'s, Rule>) -> Result<Clause> {
        debug_assert_eq!(pair.as_rule(), Rule::did_clause);
        let [filter, rest] = parts(pair);
        let filter = self.event_filter(filter)?;
        match rest.as_rule() {
            Rule::then_not => {
                let mut children = all_parts(rest);
                let absent = self.event_filter(children.next().expect("grammar: then not F"))?;
                let within = self.within(children.next().expect("grammar: within D"))?;
                let window = children.next().map(|window| self.window(window)).transpose()?;
                Ok(Clause::ThenNot(ThenNot { first: filter, absent, within, window }))
            }
            Rule::sequence => {
                let mut sequence = Sequence { steps: vec![filter], within: None, window: None };
                for child in all_parts(rest) {
                    match child.as_rule() {
                        Rule::then_step => {
                            let [step] = parts(child);
                            sequence.steps.push(self.event_filter(step)?);
                        }
                        Rule::within => sequence.within = Some(self.within(child)?),
                        _ => sequence.window = Some(self.window(child)?),
                    }
                }
                Ok(Clause::Sequence(sequence))
            }
            Rule::in_a_row => {
                let mut children = all_parts(rest);
                let times = self.integer(children.next().expect("grammar: N times in a row"))?;
                let window = children.next().map(|window| self.window(window)).transpose()?;
                Ok(Clause::InARow(InARow { filter, times, window }))
            }
            Rule::count_window => {
                let mut did = Did { filter, count: None, window: None };
                for child in all_parts(rest) {
                    match child.as_rule() {
                        Rule::count => did.count = Some(self.count(child)?),
                        _ => did.window = Some(self.window(child)?),
                    }
                }
                Ok(Clause::Did(did))
            }
            rule => unreachable!("grammar: `{rule:?}` cannot follow `did E`"),
        }
    }

    fn first_last(&mut self, pair: Pair<'s, Rule>) -> Result<FirstLast> {
        let [filter, window] = parts(pair);
        Ok(FirstLast { filter: self.event_filter(filter)?, window: self.window(window)? })
    }

    fn aggregate(&mut self, pair: Pair<'s, Rule>) -> Result<Aggregate> {
        debug_assert_eq!(pair.as_rule(), Rule::aggregate_clause);
        let mut children = all_parts(pair);
        let mut next = || children.next().expect("grammar: aggregate part");
        let function = next();
        let function_span = self.span(&function);
        let function = match function.as_str().to_ascii_lowercase().as_str() {
            "sum" => AggregateFn::Sum,
            "avg" => AggregateFn::Avg,
            "min" => AggregateFn::Min,
            "max" => AggregateFn::Max,
            _ => AggregateFn::CountDistinct,
        };
        let function = self.node(function, function_span)?;
        let property = self.property(next())?;
        let filter = self.event_filter(next())?;
        let mut child = next();
        let mut window = None;
        if child.as_rule() == Rule::window {
            window = Some(self.window(child)?);
            child = next();
        }
        let op = self.compare_op(child)?;
        let value = self.number(next())?;
        Ok(Aggregate { function, property, filter, window, op, value })
    }

    fn event_filter(&mut self, pair: Pair<'s, Rule>) -> Result<EventFilter> {
        debug_assert_eq!(pair.as_rule(), Rule::event_filter);
        let mut children = all_parts(pair);
        let event = self.name(children.next().expect("grammar: event name"), "event name")?;
        let condition = match children.next() {
            Some(where_clause) => {
                let [condition] = parts(where_clause);
                Some(self.cond_factor(condition)?)
            }
            None => None,
        };
        Ok(EventFilter { event, condition })
    }

    // -------------------------------------------------------------- counts and windows

    fn count(&mut self, pair: Pair<'s, Rule>) -> Result<Spanned<Count>> {
        debug_assert_eq!(pair.as_rule(), Rule::count);
        let span = self.span(&pair);
        let form = only_child(pair);
        let rule = form.as_rule();
        let numbers = all_parts(form)
            .map(|number| self.integer(number).map(|n| n.node))
            .collect::<Result<Vec<u32>>>()?;
        let count = match (rule, numbers.as_slice()) {
            (Rule::at_least, &[n]) => Count::AtLeast(n),
            (Rule::at_most, &[n]) => Count::AtMost(n),
            (Rule::exactly, &[n]) => Count::Exactly(n),
            (Rule::between_count, &[low, high]) if low <= high => Count::Between(low, high),
            (Rule::between_count, &[low, high]) => {
                return Err(self.error(
                    ErrorKind::InvalidCount,
                    span,
                    format!(
                        "`between {low} and {high} times` can never match: write the smaller \
                         number first"
                    ),
                ));
            }
            _ => unreachable!("grammar: `{rule:?}` is not a count"),
        };
        self.node(count, span)
    }

    /// A count: a non-negative integer that fits in `u32`.
    fn integer(&mut self, pair: Pair<'s, Rule>) -> Result<Spanned<u32>> {
        debug_assert!(matches!(pair.as_rule(), Rule::integer | Rule::row_count));
        let span = self.span(&pair);
        let text = pair.as_str();
        let value = text.parse::<u32>().map_err(|_| {
            self.error(
                ErrorKind::InvalidCount,
                span,
                format!("the count `{text}` is too large: the limit is {}", u32::MAX),
            )
        })?;
        self.node(value, span)
    }

    fn window(&mut self, pair: Pair<'s, Rule>) -> Result<Spanned<Window>> {
        debug_assert_eq!(pair.as_rule(), Rule::window);
        let span = self.span(&pair);
        let form = only_child(pair);
        let window = match form.as_rule() {
            Rule::in_last => {
                let [duration] = parts(form);
                Window::InLast(self.duration(duration)?)
            }
            Rule::between_window => {
                let [from, to] = parts(form);
                Window::Between(self.time_point(from)?, self.time_point(to)?)
            }
            Rule::since_window => {
                let [from] = parts(form);
                Window::Since(self.time_point(from)?)
            }
            Rule::before_window => {
                let [to] = parts(form);
                Window::Before(self.time_point(to)?)
            }
            rule => unreachable!("grammar: `{rule:?}` is not a window"),
        };
        self.node(window, span)
    }

    fn within(&mut self, pair: Pair<'s, Rule>) -> Result<Spanned<Duration>> {
        debug_assert_eq!(pair.as_rule(), Rule::within);
        let [duration] = parts(pair);
        self.duration(duration)
    }

    fn duration(&mut self, pair: Pair<'s, Rule>) -> Result<Spanned<Duration>> {
        debug_assert_eq!(pair.as_rule(), Rule::duration);
        let span = self.span(&pair);
        let text = pair.as_str();
        let digits_end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
        let unit = text[digits_end..].trim_start().to_ascii_lowercase();
        let unit_ms = match unit.as_str() {
            "ms" | "millisecond" | "milliseconds" => 1,
            "s" | "sec" | "secs" | "second" | "seconds" => MS_PER_SECOND,
            "m" | "min" | "mins" | "minute" | "minutes" => MS_PER_MINUTE,
            "h" | "hr" | "hrs" | "hour" | "hours" => MS_PER_HOUR,
            "d" | "day" | "days" => MS_PER_DAY,
            _ => MS_PER_WEEK,
        } as u64;
        let ms = text[..digits_end]
            .parse::<u64>()
            .ok()
            .and_then(|amount| amount.checked_mul(unit_ms))
            .filter(|&ms| ms <= MAX_DURATION_MS)
            .ok_or_else(|| {
                self.error(
                    ErrorKind::InvalidDuration,
                    span,
                    format!(
                        "the duration `{text}` is too long: the limit is {} days",
                        MAX_DURATION_MS / MS_PER_DAY as u64
                    ),
                )
            })?;
        self.node(Duration::from_ms(ms), span)
    }

    fn time_point(&mut self, pair: Pair<'s, Rule>) -> Result<Spanned<TimePoint>> {
        debug_assert_eq!(pair.as_rule(), Rule::time_point);
        let span = self.span(&pair);
        let form = only_child(pair);
        let time_point = match form.as_rule() {
            Rule::date_time => {
                let text = form.as_str();
                let ms = crate::time::parse_date_time(text).map_err(|reason| {
                    self.error(
                        ErrorKind::InvalidTime,
                        span,
                        format!("invalid date `{text}`: {reason}"),
                    )
                })?;
                TimePoint::Absolute(ms)
            }
            Rule::kw_now => TimePoint::Now,
            Rule::ago => {
                let [duration] = parts(form);
                TimePoint::Ago(self.duration(duration)?.node)
            }
            rule => unreachable!("grammar: `{rule:?}` is not a time point"),
        };
        self.node(time_point, span)
    }

    // -------------------------------------------------------------------- conditions

    fn cond_or(&mut self, pair: Pair<'s, Rule>) -> Result<Condition> {
        debug_assert_eq!(pair.as_rule(), Rule::cond_or);
        let span = self.span(&pair);
        let mut operands = Vec::new();
        for operand in all_parts(pair) {
            match self.cond_and(operand)? {
                Spanned { node: ConditionKind::Or(inner), .. } => operands.extend(inner),
                operand => operands.push(operand),
            }
        }
        self.combine(operands, span, ConditionKind::Or)
    }

    fn cond_and(&mut self, pair: Pair<'s, Rule>) -> Result<Condition> {
        debug_assert_eq!(pair.as_rule(), Rule::cond_and);
        let span = self.span(&pair);
        let mut operands = Vec::new();
        for operand in all_parts(pair) {
            match self.cond_factor(operand)? {
                Spanned { node: ConditionKind::And(inner), .. } => operands.extend(inner),
                operand => operands.push(operand),
            }
        }
        self.combine(operands, span, ConditionKind::And)
    }

    fn cond_factor(&mut self, pair: Pair<'s, Rule>) -> Result<Condition> {
        debug_assert_eq!(pair.as_rule(), Rule::cond_factor);
        let end = self.span(&pair).end;
        let saved_depth = self.depth;
        let mut not_starts = Vec::new();
        let mut condition = None;
        for child in pair.into_inner() {
            match child.as_rule() {
                Rule::kw_not => {
                    let span = self.span(&child);
                    self.enter(span)?;
                    not_starts.push(span.start);
                }
                Rule::cond_group => {
                    let span = self.span(&child);
                    self.enter(Span::new(span.start, span.start + 1))?;
                    let [inner] = parts(child);
                    let inner = self.cond_or(inner)?;
                    self.depth -= 1;
                    condition = Some(Spanned::new(inner.node, span));
                }
                _ => {
                    let span = self.span(&child);
                    let comparison = self.comparison(child)?;
                    condition = Some(self.node(ConditionKind::Comparison(comparison), span)?);
                }
            }
        }
        let mut condition = condition.expect("grammar: a condition ends with a comparison");
        for start in not_starts.into_iter().rev() {
            condition =
                self.node(ConditionKind::Not(Box::new(condition)), Span::new(start, end))?;
        }
        self.depth = saved_depth;
        Ok(condition)
    }

    fn comparison(&mut self, pair: Pair<'s, Rule>) -> Result<Comparison> {
        debug_assert_eq!(pair.as_rule(), Rule::comparison);
        let [property, test] = parts(pair);
        if property.as_rule() == Rule::user_property {
            let text = property.as_str();
            let tail = text.split_once('.').map_or(text, |(_, tail)| tail);
            return Err(self
                .error(
                    ErrorKind::UserPropertyInWhere,
                    self.span(&property),
                    format!(
                        "`{text}` is a user property, but a `where` tests the properties of \
                         the event"
                    ),
                )
                .with_help(format!(
                    "test it as a clause of its own, e.g. `did \"…\" and {text} == …`; for an \
                     event property named `user`, quote it: `` `user`.{tail} ``"
                )));
        }
        let property = self.property(property)?;
        let test = self.test(test)?;
        Ok(Comparison { property, test })
    }

    fn test(&mut self, pair: Pair<'s, Rule>) -> Result<Spanned<Test>> {
        debug_assert_eq!(pair.as_rule(), Rule::test);
        let span = self.span(&pair);
        let form = only_child(pair);
        let test = match form.as_rule() {
            Rule::exists_test => Test::Exists,
            Rule::not_exists_test => Test::NotExists,
            Rule::in_test => {
                let [list] = parts(form);
                Test::In(self.value(list)?)
            }
            Rule::not_in_test => {
                let [list] = parts(form);
                Test::NotIn(self.value(list)?)
            }
            Rule::contains_test => {
                let [value] = parts(form);
                Test::Contains(self.value(value)?)
            }
            Rule::starts_with_test => {
                let [value] = parts(form);
                Test::StartsWith(self.value(value)?)
            }
            Rule::between_test => {
                let [low, high] = parts(form);
                Test::Between { low: self.value(low)?, high: self.value(high)? }
            }
            Rule::compare_test => {
                let [op, value] = parts(form);
                Test::Compare { op: self.compare_op(op)?.node, value: self.value(value)? }
            }
            rule => unreachable!("grammar: `{rule:?}` is not a test"),
        };
        self.node(test, span)
    }

    fn compare_op(&mut self, pair: Pair<'s, Rule>) -> Result<Spanned<CompareOp>> {
        debug_assert_eq!(pair.as_rule(), Rule::compare_op);
        let op = match pair.as_str() {
            "==" => CompareOp::Eq,
            "!=" => CompareOp::Ne,
            "<" => CompareOp::Lt,
            "<=" => CompareOp::Le,
            ">" => CompareOp::Gt,
            _ => CompareOp::Ge,
        };
        self.node(op, self.span(&pair))
    }

    // ------------------------------------------------------------------------ values

    /// Converts `value`, `scalar_value`, `list_value`, `literal` and their alternatives.
    fn value(&mut self, pair: Pair<'s, Rule>) -> Result<Spanned<Value>> {
        let span = self.span(&pair);
        let value = match pair.as_rule() {
            Rule::value | Rule::scalar_value | Rule::list_value | Rule::literal => {
                return self.value(only_child(pair));
            }
            Rule::list => {
                let items =
                    all_parts(pair).map(|item| self.value(item)).collect::<Result<Vec<_>>>()?;
                Value::List(items)
            }
            Rule::string => Value::String(self.unescape(&pair)?),
            Rule::number => Value::Number(self.number(pair)?.node),
            Rule::boolean => Value::Bool(pair.as_str().eq_ignore_ascii_case("true")),
            Rule::event_ref => {
                if self.mode == Mode::Segment {
                    return Err(self
                        .error(
                            ErrorKind::EventRefOutsideTrigger,
                            span,
                            format!(
                                "`{}` names a property of the triggering event, which only \
                                 exists inside a trigger",
                                pair.as_str()
                            ),
                        )
                        .with_help(
                            "in a segment, compare with a literal such as \"abc\" or 42; \
                             `event.P` works in a trigger's `where` and `if`",
                        ));
                }
                Value::EventRef(self.path(pair)?)
            }
            rule => unreachable!("grammar: `{rule:?}` is not a value"),
        };
        self.node(value, span)
    }

    fn number(&mut self, pair: Pair<'s, Rule>) -> Result<Spanned<Number>> {
        debug_assert_eq!(pair.as_rule(), Rule::number);
        let span = self.span(&pair);
        let text = pair.as_str();
        let number = if text.contains('.') {
            text.parse::<f64>().ok().filter(|float| float.is_finite()).map(Number::Float)
        } else {
            text.parse::<i64>().ok().map(Number::Int)
        };
        let number = number.ok_or_else(|| {
            self.error(
                ErrorKind::NumberOutOfRange,
                span,
                format!(
                    "the number `{text}` is out of range: integers must lie between {} and {}",
                    i64::MIN,
                    i64::MAX
                ),
            )
            .with_help("an identifier that long is best written as a string, e.g. \"1234…\"")
        })?;
        self.node(number, span)
    }

    /// An event or segment name: a non-empty string.
    fn name(&mut self, pair: Pair<'s, Rule>, what: &str) -> Result<Spanned<String>> {
        let span = self.span(&pair);
        let name = self.unescape(&pair)?;
        if name.is_empty() {
            return Err(self.error(ErrorKind::EmptyName, span, format!("the {what} is empty")));
        }
        self.node(name, span)
    }

    /// `property` or `user_property` (whose `user.` is not part of the path).
    fn property(&mut self, pair: Pair<'s, Rule>) -> Result<Spanned<PropertyPath>> {
        let span = self.span(&pair);
        let path = self.path(pair)?;
        self.node(path, span)
    }

    /// The segments of `property`, `user_property` or `event_ref`.
    fn path(&mut self, pair: Pair<'s, Rule>) -> Result<PropertyPath> {
        let segments = pair
            .into_inner()
            .map(|segment| match segment.as_rule() {
                Rule::quoted_name => self.unescape(&segment),
                _ => Ok(segment.as_str().to_string()),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(PropertyPath { segments })
    }

    /// The content of a quoted token (string or backtick name) with escapes resolved.
    fn unescape(&self, pair: &Pair<'s, Rule>) -> Result<String> {
        let text = pair.as_str();
        let content_start = self.span(pair).start + 1;
        let content = &text[1..text.len() - 1];
        let mut unescaped = String::with_capacity(content.len());
        let mut chars = content.char_indices();
        while let Some((offset, character)) = chars.next() {
            if character != '\\' {
                unescaped.push(character);
                continue;
            }
            let (escape_offset, escaped) = chars.next().expect("grammar: `\\` is followed");
            unescaped.push(match escaped {
                '"' | '`' | '\\' => escaped,
                'n' => '\n',
                't' => '\t',
                'r' => '\r',
                _ => {
                    let start = content_start + offset;
                    let end = content_start + escape_offset + escaped.len_utf8();
                    return Err(self.error(
                        ErrorKind::InvalidEscape,
                        Span::new(start, end),
                        format!(
                            "unknown escape `\\{escaped}`: the escapes are \\\" \\` \\\\ \\n \\t \
                             and \\r"
                        ),
                    ));
                }
            });
        }
        Ok(unescaped)
    }

    // ---------------------------------------------------------------------- triggers

    fn trigger(&mut self, pair: Pair<'s, Rule>) -> Result<Trigger> {
        debug_assert_eq!(pair.as_rule(), Rule::trigger);
        let span = self.span(&pair);
        let mut trigger = None;
        let mut tail = None;
        let mut condition = None;
        for child in all_parts(pair) {
            let child_span = self.span(&child);
            match child.as_rule() {
                Rule::event_filter => trigger = Some(self.event_filter(child)?),
                Rule::unless_tail => {
                    let [event, within] = parts(child);
                    let event = self.event_filter(event)?;
                    let within = self.within(within)?;
                    tail = Some(self.node(TriggerTail::Unless { event, within }, child_span)?);
                }
                Rule::then_tail => {
                    let [event, within] = parts(child);
                    let event = self.event_filter(event)?;
                    let within = self.within(within)?;
                    tail = Some(self.node(TriggerTail::Then { event, within }, child_span)?);
                }
                Rule::at_tail => {
                    let [property, sign, offset] = parts(child);
                    let property = self.property(property)?;
                    let sign = if sign.as_str() == "+" { Sign::Plus } else { Sign::Minus };
                    let offset = self.duration(offset)?;
                    tail = Some(self.node(TriggerTail::At { property, sign, offset }, child_span)?);
                }
                Rule::trigger_if => {
                    let [expr] = parts(child);
                    condition = Some(self.expr(expr)?);
                }
                rule => unreachable!("grammar: `{rule:?}` in a trigger"),
            }
        }
        let event = trigger.expect("grammar: `on E`");
        Ok(Trigger { event, tail, condition, span })
    }
}

// ---------------------------------------------------------------------------------- errors

/// What a grammar rule is called in an error message.
fn describe(rule: Rule) -> &'static str {
    match rule {
        Rule::EOI => "the end of the query",
        Rule::factor | Rule::expr | Rule::term => "a clause such as `did \"Event\"`, `not` or `(`",
        Rule::group | Rule::cond_group => "`(`",
        Rule::did_clause
        | Rule::first_clause
        | Rule::last_clause
        | Rule::aggregate_clause
        | Rule::user_clause
        | Rule::segment_clause
        | Rule::reachable_clause
        | Rule::clause => "a clause such as `did \"Event\"`",
        Rule::event_name | Rule::event_filter => "an event name in double quotes",
        Rule::segment_name => "a segment name in double quotes",
        Rule::string => "a string in double quotes",
        Rule::where_clause => "`where`",
        Rule::count | Rule::at_least | Rule::at_most | Rule::exactly | Rule::between_count => {
            "a count such as `at least 3 times`"
        }
        Rule::count_window => "a count such as `at least 3 times` or a time window",
        Rule::in_a_row => "`N times in a row`",
        Rule::window
        | Rule::in_last
        | Rule::between_window
        | Rule::since_window
        | Rule::before_window => "a time window such as `in last 7d`",
        Rule::duration | Rule::within => "a duration such as 10m or 7d",
        Rule::time_point | Rule::ago => "a time (2026-11-01, 2026-11-01T09:30:00Z, now, 3d ago)",
        Rule::date_time => "a date such as 2026-11-01",
        Rule::integer => "a whole number",
        Rule::row_count => "`N times in a row`",
        Rule::number => "a number",
        Rule::boolean => "a boolean (`true`, `false`)",
        Rule::value => "a value (\"text\", 42, true, [\"a\", \"b\"])",
        Rule::scalar_value | Rule::literal => "a value (\"text\", 42, true)",
        Rule::list_value | Rule::list => "a list ([\"a\", \"b\"])",
        Rule::event_ref => "`event.` and a property name",
        Rule::property | Rule::bare_name | Rule::quoted_name => {
            "a property name such as `price` or `item.sku`"
        }
        Rule::user_property => "a user property such as `user.city`",
        Rule::test
        | Rule::exists_test
        | Rule::not_exists_test
        | Rule::in_test
        | Rule::not_in_test
        | Rule::contains_test
        | Rule::starts_with_test
        | Rule::between_test
        | Rule::compare_test => {
            "a comparison operator (==, !=, <, <=, >, >=, in, not in, contains, starts with, \
             exists, not exists, between)"
        }
        Rule::compare_op => "a comparison operator (==, !=, <, <=, >, >=)",
        Rule::cond_factor | Rule::cond_and | Rule::cond_or => {
            "a condition such as `price > 10`, `not` or `(`"
        }
        Rule::comparison => "a condition such as `price > 10`",
        Rule::aggregate_fn => "an aggregate (sum, avg, min, max, count_distinct)",
        Rule::then_not | Rule::sequence | Rule::then_step | Rule::then_tail => "`then`",
        Rule::unless_tail => "`unless`",
        Rule::at_tail => "`at`",
        Rule::trigger_if => "`if`",
        Rule::sign => "`+` or `-`",
        Rule::lparen => "`(`",
        Rule::rparen => "`)`",
        Rule::rbracket => "`]`",
        Rule::comma => "`,`",
        Rule::segment => "a segment expression",
        Rule::trigger => "a trigger",
        Rule::kw_a => "`a`",
        Rule::kw_ago => "`ago`",
        Rule::kw_and => "`and`",
        Rule::kw_at => "`at`",
        Rule::kw_before => "`before`",
        Rule::kw_between => "`between`",
        Rule::kw_contains => "`contains`",
        Rule::kw_did => "`did`",
        Rule::kw_exactly => "`exactly`",
        Rule::kw_exists => "`exists`",
        Rule::kw_first => "`first`",
        Rule::kw_if => "`if`",
        Rule::kw_in => "`in`",
        Rule::kw_last => "`last`",
        Rule::kw_least => "`least`",
        Rule::kw_most => "`most`",
        Rule::kw_not => "`not`",
        Rule::kw_now => "`now`",
        Rule::kw_of => "`of`",
        Rule::kw_on => "`on`",
        Rule::kw_or => "`or`",
        Rule::kw_reachable => "`reachable`",
        Rule::kw_row => "`row`",
        Rule::kw_segment => "`segment`",
        Rule::kw_since => "`since`",
        Rule::kw_starts => "`starts`",
        Rule::kw_then => "`then`",
        Rule::kw_times => "`times`",
        Rule::kw_unless => "`unless`",
        Rule::kw_via => "`via`",
        Rule::kw_webpush => "`webpush`",
        Rule::kw_where => "`where`",
        Rule::kw_with => "`with`",
        Rule::kw_within => "`within`",
        Rule::trigger_tail => "`unless`, `then` or `at`",
        Rule::WHITESPACE
        | Rule::COMMENT
        | Rule::duration_unit
        | Rule::name_segment
        | Rule::ident_char
        | Rule::reserved_word => "more text",
    }
}

/// Phrases listed last: what may end or continue a whole expression.
fn rank(rule: Rule) -> u8 {
    match rule {
        Rule::kw_where => 0,
        Rule::EOI => 3,
        Rule::kw_and | Rule::kw_or | Rule::rparen => 2,
        _ => 1,
    }
}

/// Multi-word keywords quoted together in "after `…`".
const PHRASES: &[&str] = &[
    "in a row",
    "in a",
    "in last",
    "at least",
    "at most",
    "not in",
    "starts with",
    "in segment",
    "reachable via",
    "first did",
    "last did",
    "then not",
    "and not",
    "or not",
];

/// Words that can start a clause: after `and`, anything else suggests a misplaced condition.
const CLAUSE_STARTS: &[&str] = &[
    "did",
    "first",
    "last",
    "not",
    "in",
    "reachable",
    "sum",
    "avg",
    "min",
    "max",
    "count_distinct",
];

/// The hint for `where a == 1 and b == 2`.
const WHERE_TAKES_ONE_COMPARISON: &str = "a `where` takes one comparison; to combine several, \
    put them in parentheses: `where (price > 10 and category == \"shoes\")`";

/// Turns pest's failure into an [`Error`] with phrases, context and a caret.
fn syntax_error(
    source: &str,
    tokens: &[Token],
    error: &pest::error::Error<Rule>,
    mode: Mode,
) -> Error {
    let position = match error.location {
        InputLocation::Pos(position) => position,
        InputLocation::Span((start, _)) => start,
    };
    let mut rules = match &error.variant {
        ErrorVariant::ParsingError { positives, .. } => positives.clone(),
        ErrorVariant::CustomError { message } => {
            return Error::new(ErrorKind::Syntax, Span::new(position, position), message, source);
        }
    };
    rules.sort_by_key(|&rule| rank(rule));
    let mut expected: Vec<String> = Vec::new();
    for rule in rules {
        let phrase = describe(rule);
        if !expected.iter().any(|known| known == phrase) {
            expected.push(phrase.to_string());
        }
    }

    let before: Vec<&Token> = tokens.iter().filter(|token| token.span.end <= position).collect();
    let found = tokens.iter().find(|token| token.span.end > position);
    let (span, at_end) = match found {
        Some(token) => (Span::new(position.max(token.span.start), token.span.end), false),
        None => {
            let end = before.last().map_or(0, |token| token.span.end);
            (Span::new(end, end), true)
        }
    };

    let mut message = if expected.is_empty() {
        "unexpected text".to_string()
    } else {
        format!("expected {}", join_phrases(&expected))
    };
    if at_end && before.is_empty() {
        message = format!("the query is empty: {message}");
    }
    if let Some(context) = context(source, &before) {
        message.push_str(&format!(" after `{context}`"));
    }
    if at_end && !before.is_empty() {
        message.push_str(", found the end of the query");
    }
    let mut error = Error::new(ErrorKind::Syntax, span, message, source).with_expected(expected);
    if let Some(help) = help(source, &before, found, &error, mode) {
        error = error.with_help(help);
    }
    error
}

/// "a", "a or b", "a, b or c".
fn join_phrases(phrases: &[String]) -> String {
    match phrases {
        [] => String::new(),
        [only] => only.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// The keyword phrase or the token just before the error, e.g. `in last`.
fn context(source: &str, before: &[&Token]) -> Option<String> {
    let last = before.last()?;
    for length in [3, 2] {
        if before.len() < length {
            continue;
        }
        let window = &before[before.len() - length..];
        if window.iter().all(|token| token.kind == TokenKind::Word) {
            let words: Vec<&str> = window.iter().map(|token| token.span.slice(source)).collect();
            let phrase = words.join(" ");
            if PHRASES.iter().any(|known| known.eq_ignore_ascii_case(&phrase)) {
                return Some(phrase);
            }
        }
    }
    let text = last.span.slice(source);
    Some(if text.chars().count() > 40 {
        format!("{}…", text.chars().take(39).collect::<String>())
    } else {
        text.to_string()
    })
}

/// A hint for mistakes that the expected-list alone explains poorly.
fn help(
    source: &str,
    before: &[&Token],
    found: Option<&Token>,
    error: &Error,
    mode: Mode,
) -> Option<String> {
    let found_text = found.map_or("", |token| token.span.slice(source));
    let previous = before.last().map_or("", |token| token.span.slice(source));
    let expects = |phrase_start: &str| error.expected().iter().any(|p| p.starts_with(phrase_start));
    if mode == Mode::Trigger && before.is_empty() && !found_text.eq_ignore_ascii_case("on") {
        return Some(
            "a trigger starts with `on` and an event name, e.g. `on \"Signed Up\"`".into(),
        );
    }
    if found_text == "=" && expects("a comparison operator") {
        return Some("use `==` to test equality".into());
    }
    if expects("a duration") && found.is_some_and(|token| token.kind == TokenKind::Number) {
        return Some(
            "a duration is a whole number and a unit: s, m, h, d or w (e.g. 30m, 7d)".into(),
        );
    }
    let found_word = found.is_some_and(|token| token.kind == TokenKind::Word);
    if found_word && expects("an event name") {
        return Some(format!("event names are written in double quotes: \"{found_text}\""));
    }
    if found_word && expects("a value") && !found_text.contains('.') {
        return Some(format!("strings are written in double quotes: \"{found_text}\""));
    }
    let next_is_parenthesis =
        found.is_some_and(|token| source[token.span.end..].trim_start().starts_with('('));
    if found_word && next_is_parenthesis && expects("a clause") {
        return Some("the aggregates are sum, avg, min, max and count_distinct".into());
    }
    let previous_is_times =
        ["times", "time"].iter().any(|word| previous.eq_ignore_ascii_case(word));
    let number_before_times = before.len() >= 2
        && before[before.len() - 2].kind == TokenKind::Number
        && previous_is_times;
    if number_before_times && expects("`in`") {
        return Some(
            "`N times` alone is not a count: write `at least N times`, `at most N times`, \
             `exactly N times` or `N times in a row`"
                .into(),
        );
    }
    let found_boolean = ["and", "or"].iter().any(|word| found_text.eq_ignore_ascii_case(word));
    let had_where =
        before.iter().any(|token| token.span.slice(source).eq_ignore_ascii_case("where"));
    if found_boolean && had_where && !expects("`and`") {
        return Some(WHERE_TAKES_ONE_COMPARISON.into());
    }
    let after_boolean = previous.eq_ignore_ascii_case("and") || previous.eq_ignore_ascii_case("or");
    let looks_like_property = found_word
        && !CLAUSE_STARTS.iter().any(|word| word.eq_ignore_ascii_case(found_text))
        && !found_text.to_ascii_lowercase().starts_with("user.");
    if expects("a clause") && after_boolean && had_where && looks_like_property {
        return Some(WHERE_TAKES_ONE_COMPARISON.into());
    }
    None
}

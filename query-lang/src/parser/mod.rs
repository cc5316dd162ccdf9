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
use crate::time::{MS_PER_DAY, MS_PER_WEEK, duration_unit_ms};
use crate::{MAX_AST_NODES, MAX_DURATION_MS, MAX_NESTING_DEPTH, MAX_QUERY_BYTES};

mod errors;
mod literals;

use errors::syntax_error;

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
        self.chain(
            pair,
            Self::term,
            |node| match node {
                ExprKind::Or(inner) => Some(std::mem::take(inner)),
                _ => None,
            },
            ExprKind::Or,
        )
    }

    fn term(&mut self, pair: Pair<'s, Rule>) -> Result<Expr> {
        debug_assert_eq!(pair.as_rule(), Rule::term);
        self.chain(
            pair,
            Self::factor,
            |node| match node {
                ExprKind::And(inner) => Some(std::mem::take(inner)),
                _ => None,
            },
            ExprKind::And,
        )
    }

    /// Converts each part of `pair` with `operand` and joins the results under
    /// `make`; an operand already joined the same way (`split` takes its
    /// operands out) is flattened, so `a or (b or c)` is one three-way `Or`.
    fn chain<T>(
        &mut self,
        pair: Pair<'s, Rule>,
        operand: fn(&mut Self, Pair<'s, Rule>) -> Result<Spanned<T>>,
        split: fn(&mut T) -> Option<Vec<Spanned<T>>>,
        make: fn(Vec<Spanned<T>>) -> T,
    ) -> Result<Spanned<T>> {
        let span = self.span(&pair);
        let mut operands = Vec::new();
        for part in all_parts(pair) {
            let mut item = operand(self, part)?;
            match split(&mut item.node) {
                Some(inner) => operands.extend(inner),
                None => operands.push(item),
            }
        }
        self.combine(operands, span, make)
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

    fn cond_or(&mut self, pair: Pair<'s, Rule>) -> Result<Condition> {
        debug_assert_eq!(pair.as_rule(), Rule::cond_or);
        self.chain(
            pair,
            Self::cond_and,
            |node| match node {
                ConditionKind::Or(inner) => Some(std::mem::take(inner)),
                _ => None,
            },
            ConditionKind::Or,
        )
    }

    fn cond_and(&mut self, pair: Pair<'s, Rule>) -> Result<Condition> {
        debug_assert_eq!(pair.as_rule(), Rule::cond_and);
        self.chain(
            pair,
            Self::cond_factor,
            |node| match node {
                ConditionKind::And(inner) => Some(std::mem::take(inner)),
                _ => None,
            },
            ConditionKind::And,
        )
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

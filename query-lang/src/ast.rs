//! The typed syntax tree of segment expressions and triggers, and its canonical printing.
//!
//! The tree mirrors the grammar of `docs/query-language.md` one to one; it says what the
//! user *wrote*, not what it means. It does not know which events or properties exist and
//! does not evaluate anything: that is the engine's binder and evaluator.
//!
//! Spans: every node is reachable through a [`Spanned`] (or, for the root trigger, has a
//! `span` field), so each node can be pointed at in an error. Equality ignores spans.
//!
//! Printing: `Display` prints **canonical syntax**: lowercase keywords, single spaces, no
//! comments, the fewest parentheses, `count` before `window`, durations in the largest
//! exact unit among `d`, `h`, `m`, `s` (weeks print as days), instants in UTC. For every
//! tree that the parser can produce, `parse(tree.to_string()) == tree`.
//!
//! Invariants of trees produced by the parser (trees built by hand should keep them, or
//! their printing will not re-parse to the same tree):
//! - `Or`/`And` have at least two operands, and no operand of an `Or` is an `Or` (same for
//!   `And`): parenthesised groups of the same operator are flattened;
//! - a [`PropertyPath`] has at least one segment;
//! - the elements of a [`Value::List`] are strings, numbers or booleans;
//! - a [`Duration`] is a whole number of milliseconds at most [`crate::MAX_DURATION_MS`]
//!   and an absolute [`TimePoint`] lies in years 0000–9999 UTC;
//! - `Count::Between(low, high)` has `low <= high`; event and segment names are not empty.

use std::fmt::{self, Display, Formatter, Write as _};

use crate::span::{Span, Spanned};
use crate::time::{MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE, MS_PER_SECOND, fmt_epoch_ms};

// ------------------------------------------------------------------------------ expressions

/// A segment expression: a boolean combination of clauses.
pub type Expr = Spanned<ExprKind>;

/// The shape of an [`Expr`].
#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// `a or b or …`: at least two operands, none of them an `Or`.
    Or(Vec<Expr>),
    /// `a and b and …`: at least two operands, none of them an `And`.
    And(Vec<Expr>),
    /// `not a`: the users of the universe that `a` does not select.
    Not(Box<Expr>),
    /// A single clause (boxed: clauses are much larger than the other variants).
    Clause(Box<Clause>),
}

/// One clause of section 2.1 of the specification.
#[derive(Clone, Debug, PartialEq)]
pub enum Clause {
    /// `did E [where C] [COUNT] [WINDOW]`
    Did(Did),
    /// `did E [where C] then F [where C2] [then …] [within D] [WINDOW]`
    Sequence(Sequence),
    /// `did E [where C] then not F [where C2] within D [WINDOW]`
    ThenNot(ThenNot),
    /// `did E [where C] N times in a row [WINDOW]`
    InARow(InARow),
    /// `first did E [where C] WINDOW`
    FirstDid(FirstLast),
    /// `last did E [where C] WINDOW`
    LastDid(FirstLast),
    /// `AGG(prop) of E [where C] [WINDOW] CMP number`
    Aggregate(Aggregate),
    /// `user.P TEST`: the comparison's property is the path after `user.`.
    User(Comparison),
    /// `in segment "name"`
    InSegment(Spanned<String>),
    /// `reachable via webpush`
    ReachableViaWebpush,
}

/// `E [where C]`: an event name and an optional condition on that event's properties.
#[derive(Clone, Debug, PartialEq)]
pub struct EventFilter {
    /// The event name (unescaped, never empty).
    pub event: Spanned<String>,
    /// The `where` condition, if any.
    pub condition: Option<Condition>,
}

/// `did E [where C] [COUNT] [WINDOW]`
#[derive(Clone, Debug, PartialEq)]
pub struct Did {
    /// The events counted.
    pub filter: EventFilter,
    /// How many are required; `None` means at least one.
    pub count: Option<Spanned<Count>>,
    /// When they must have happened; `None` means all time up to `now`.
    pub window: Option<Spanned<Window>>,
}

/// `did E [where C] then F [where C2] [then …] [within D] [WINDOW]`
#[derive(Clone, Debug, PartialEq)]
pub struct Sequence {
    /// The steps in order; at least two.
    pub steps: Vec<EventFilter>,
    /// Maximum time from the first step to the last, if given.
    pub within: Option<Spanned<Duration>>,
    /// When all the steps must have happened.
    pub window: Option<Spanned<Window>>,
}

/// `did E [where C] then not F [where C2] within D [WINDOW]`
#[derive(Clone, Debug, PartialEq)]
pub struct ThenNot {
    /// The event that happened.
    pub first: EventFilter,
    /// The event that did not follow it.
    pub absent: EventFilter,
    /// How long after `first` the absence is checked.
    pub within: Spanned<Duration>,
    /// When `first` must have happened.
    pub window: Option<Spanned<Window>>,
}

/// `did E [where C] N times in a row [WINDOW]`
#[derive(Clone, Debug, PartialEq)]
pub struct InARow {
    /// The events; the condition must hold for `times` consecutive ones.
    pub filter: EventFilter,
    /// The run length `N`.
    pub times: Spanned<u32>,
    /// When the events must have happened.
    pub window: Option<Spanned<Window>>,
}

/// `first did E [where C] WINDOW` and `last did E [where C] WINDOW`
#[derive(Clone, Debug, PartialEq)]
pub struct FirstLast {
    /// The events.
    pub filter: EventFilter,
    /// Where the earliest (latest) matching event must lie.
    pub window: Spanned<Window>,
}

/// `AGG(prop) of E [where C] [WINDOW] CMP number`
#[derive(Clone, Debug, PartialEq)]
pub struct Aggregate {
    /// `sum`, `avg`, `min`, `max` or `count_distinct`.
    pub function: Spanned<AggregateFn>,
    /// The event property aggregated.
    pub property: Spanned<PropertyPath>,
    /// The events aggregated over.
    pub filter: EventFilter,
    /// When the events must have happened.
    pub window: Option<Spanned<Window>>,
    /// How the aggregate is compared.
    pub op: Spanned<CompareOp>,
    /// What it is compared with.
    pub value: Spanned<Number>,
}

/// An aggregate function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AggregateFn {
    /// `sum`
    Sum,
    /// `avg`
    Avg,
    /// `min`
    Min,
    /// `max`
    Max,
    /// `count_distinct`
    CountDistinct,
}

// ------------------------------------------------------------------------------- conditions

/// A condition on properties: the argument of `where`.
pub type Condition = Spanned<ConditionKind>;

/// The shape of a [`Condition`].
#[derive(Clone, Debug, PartialEq)]
pub enum ConditionKind {
    /// One comparison.
    Comparison(Comparison),
    /// `a and b and …`: at least two operands, none of them an `And`.
    And(Vec<Condition>),
    /// `a or b or …`: at least two operands, none of them an `Or`.
    Or(Vec<Condition>),
    /// `not a`
    Not(Box<Condition>),
}

/// `property TEST`, e.g. `price >= 100` or `user.city exists`.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// The property tested: an event property in a `where`, the path after `user.` in a
    /// [`Clause::User`].
    pub property: Spanned<PropertyPath>,
    /// The test applied to it.
    pub test: Spanned<Test>,
}

/// A comparison operator with its operands.
#[derive(Clone, Debug, PartialEq)]
pub enum Test {
    /// `== != < <= > >=` value (a literal, a list, or `event.P`).
    Compare {
        /// The operator.
        op: CompareOp,
        /// The right-hand side.
        value: Spanned<Value>,
    },
    /// `in [list]` (the value is a [`Value::List`] or a [`Value::EventRef`]).
    In(Spanned<Value>),
    /// `not in [list]` (the value is a [`Value::List`] or a [`Value::EventRef`]).
    NotIn(Spanned<Value>),
    /// `contains V`: substring of a string, or element of an array.
    Contains(Spanned<Value>),
    /// `starts with V`
    StartsWith(Spanned<Value>),
    /// `between A and B`, inclusive.
    Between {
        /// `A`
        low: Spanned<Value>,
        /// `B`
        high: Spanned<Value>,
    },
    /// `exists`
    Exists,
    /// `not exists`
    NotExists,
}

/// `==`, `!=`, `<`, `<=`, `>`, `>=`
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// The right-hand side of a comparison.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A string (unescaped).
    String(String),
    /// A number.
    Number(Number),
    /// `true` or `false`.
    Bool(bool),
    /// `[v, …]`: strings, numbers and booleans only.
    List(Vec<Spanned<Value>>),
    /// `event.P`: a property of the event that fired the trigger. [`crate::parse_segment`]
    /// rejects it; [`crate::parse_trigger`] accepts it in every `where` and in the `if`.
    EventRef(PropertyPath),
}

/// A number literal. Integers and decimals compare numerically; [`Number::as_f64`] helps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Number {
    /// Written without a decimal point.
    Int(i64),
    /// Written with a decimal point; always finite.
    Float(f64),
}

impl Number {
    /// The value as a float (exact for integers up to 2^53 in magnitude).
    pub fn as_f64(self) -> f64 {
        match self {
            Number::Int(int) => int as f64,
            Number::Float(float) => float,
        }
    }
}

/// A property name: one key, or several for nested keys (`item.sku` is `["item", "sku"]`;
/// `` `item.sku` `` is the single key `"item.sku"`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PropertyPath {
    /// The keys from the outermost in; at least one.
    pub segments: Vec<String>,
}

impl PropertyPath {
    /// A path from its keys.
    pub fn new<S: Into<String>>(segments: impl IntoIterator<Item = S>) -> Self {
        PropertyPath { segments: segments.into_iter().map(Into::into).collect() }
    }
}

// ------------------------------------------------------------------------------------ time

/// A length of time in milliseconds. Written `10m`, `24h`, `7 days`, … (whole units).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Duration {
    /// Milliseconds.
    pub ms: u64,
}

impl Duration {
    /// A duration of `ms` milliseconds.
    pub const fn from_ms(ms: u64) -> Self {
        Duration { ms }
    }
}

/// A point in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimePoint {
    /// An instant in milliseconds since the Unix epoch, UTC (`2026-11-01`,
    /// `2026-11-01T09:30:00+05:30`).
    Absolute(i64),
    /// `now`: the query's `now`.
    Now,
    /// `D ago`: the query's `now` minus `D`.
    Ago(Duration),
}

/// When events must have happened.
#[derive(Clone, Debug, PartialEq)]
pub enum Window {
    /// `in last D`: `now - D <= ts <= now`.
    InLast(Spanned<Duration>),
    /// `between T1 and T2`: `T1 <= ts < T2`.
    Between(Spanned<TimePoint>, Spanned<TimePoint>),
    /// `since T`: `T <= ts <= now`.
    Since(Spanned<TimePoint>),
    /// `before T`: `ts < T`.
    Before(Spanned<TimePoint>),
}

/// How many matching events a `did` requires (bounds inclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Count {
    /// `at least N times`
    AtLeast(u32),
    /// `at most N times` (`did` still means at least once)
    AtMost(u32),
    /// `exactly N times`
    Exactly(u32),
    /// `between N and M times`, `N <= M`.
    Between(u32, u32),
}

// -------------------------------------------------------------------------------- triggers

/// `on E [where C] [tail] [if expr]`
#[derive(Clone, Debug)]
pub struct Trigger {
    /// The triggering event.
    pub event: EventFilter,
    /// `unless …`, `then …` or `at …`, if any.
    pub tail: Option<Spanned<TriggerTail>>,
    /// The `if` expression, if any.
    pub condition: Option<Expr>,
    /// The whole trigger.
    pub span: Span,
}

impl PartialEq for Trigger {
    /// Ignores spans, like [`Spanned`].
    fn eq(&self, other: &Self) -> bool {
        self.event == other.event && self.tail == other.tail && self.condition == other.condition
    }
}

/// What follows `on E [where C]` in a trigger.
#[derive(Clone, Debug, PartialEq)]
pub enum TriggerTail {
    /// `unless F [where C2] within D`: fire `D` after E unless F happened in between.
    Unless {
        /// The event whose arrival cancels.
        event: EventFilter,
        /// How long to wait.
        within: Spanned<Duration>,
    },
    /// `then F [where C2] within D`: fire at the F that completes the pair.
    Then {
        /// The completing event.
        event: EventFilter,
        /// Maximum time from E to F.
        within: Spanned<Duration>,
    },
    /// `at prop (+|-) D`: fire at the time held in the event's property, shifted.
    At {
        /// The event property holding the time.
        property: Spanned<PropertyPath>,
        /// `+` or `-`.
        sign: Sign,
        /// The shift.
        offset: Spanned<Duration>,
    },
}

impl TriggerTail {
    /// For [`TriggerTail::At`], the signed shift in milliseconds.
    pub fn at_offset_ms(&self) -> Option<i64> {
        match self {
            TriggerTail::At { sign, offset, .. } => {
                let ms = i64::try_from(offset.ms).unwrap_or(i64::MAX);
                Some(match sign {
                    Sign::Plus => ms,
                    Sign::Minus => -ms,
                })
            }
            _ => None,
        }
    }
}

/// The sign of an `at` shift.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Sign {
    /// `+`
    Plus,
    /// `-`
    Minus,
}

// ------------------------------------------------------------------------ canonical printing

/// Prints `items` separated by `separator`, each with `item`.
fn join<T>(
    f: &mut Formatter<'_>,
    items: &[T],
    separator: &str,
    mut item: impl FnMut(&mut Formatter<'_>, &T) -> fmt::Result,
) -> fmt::Result {
    for (index, element) in items.iter().enumerate() {
        if index > 0 {
            f.write_str(separator)?;
        }
        item(f, element)?;
    }
    Ok(())
}

impl Display for ExprKind {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        // Parenthesise an operand when its operator binds no tighter than the parent's:
        // `or` < `and` < `not` < clause.
        let operand = |f: &mut Formatter<'_>, expr: &Expr, parent_is_and: bool| match &expr.node {
            ExprKind::Or(_) => write!(f, "({expr})"),
            ExprKind::And(_) if parent_is_and => write!(f, "({expr})"),
            _ => write!(f, "{expr}"),
        };
        match self {
            ExprKind::Or(operands) => join(f, operands, " or ", |f, e| operand(f, e, false)),
            ExprKind::And(operands) => join(f, operands, " and ", |f, e| operand(f, e, true)),
            ExprKind::Not(inner) => {
                f.write_str("not ")?;
                operand(f, inner, true)
            }
            ExprKind::Clause(clause) => clause.fmt(f),
        }
    }
}

impl Display for ConditionKind {
    /// Prints the condition as it reads inside parentheses (no outer parentheses).
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let operand =
            |f: &mut Formatter<'_>, cond: &Condition, parent_is_and: bool| match &cond.node {
                ConditionKind::Or(_) => write!(f, "({cond})"),
                ConditionKind::And(_) if parent_is_and => write!(f, "({cond})"),
                _ => write!(f, "{cond}"),
            };
        match self {
            ConditionKind::Comparison(comparison) => comparison.fmt(f),
            ConditionKind::And(operands) => join(f, operands, " and ", |f, c| operand(f, c, true)),
            ConditionKind::Or(operands) => join(f, operands, " or ", |f, c| operand(f, c, false)),
            ConditionKind::Not(inner) => {
                f.write_str("not ")?;
                operand(f, inner, true)
            }
        }
    }
}

/// Prints ` where C`: a single comparison or `not` stays bare, a boolean is parenthesised,
/// so that a following `and` keeps belonging to the enclosing expression.
fn fmt_where(f: &mut Formatter<'_>, condition: &Condition) -> fmt::Result {
    match &condition.node {
        ConditionKind::Comparison(_) | ConditionKind::Not(_) => write!(f, " where {condition}"),
        ConditionKind::And(_) | ConditionKind::Or(_) => write!(f, " where ({condition})"),
    }
}

impl Display for EventFilter {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        fmt_string(f, &self.event)?;
        match &self.condition {
            Some(condition) => fmt_where(f, condition),
            None => Ok(()),
        }
    }
}

/// Prints ` WINDOW` if there is one.
fn fmt_window(f: &mut Formatter<'_>, window: &Option<Spanned<Window>>) -> fmt::Result {
    match window {
        Some(window) => write!(f, " {window}"),
        None => Ok(()),
    }
}

/// `time` for one, `times` otherwise.
fn times(n: u32) -> &'static str {
    if n == 1 { "time" } else { "times" }
}

impl Display for Clause {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Clause::Did(did) => {
                write!(f, "did {}", did.filter)?;
                if let Some(count) = &did.count {
                    write!(f, " {count}")?;
                }
                fmt_window(f, &did.window)
            }
            Clause::Sequence(sequence) => {
                f.write_str("did ")?;
                join(f, &sequence.steps, " then ", |f, step| step.fmt(f))?;
                if let Some(within) = &sequence.within {
                    write!(f, " within {within}")?;
                }
                fmt_window(f, &sequence.window)
            }
            Clause::ThenNot(then_not) => {
                write!(
                    f,
                    "did {} then not {} within {}",
                    then_not.first, then_not.absent, then_not.within
                )?;
                fmt_window(f, &then_not.window)
            }
            Clause::InARow(in_a_row) => {
                let n = in_a_row.times.node;
                write!(f, "did {} {n} {} in a row", in_a_row.filter, times(n))?;
                fmt_window(f, &in_a_row.window)
            }
            Clause::FirstDid(first) => write!(f, "first did {} {}", first.filter, first.window),
            Clause::LastDid(last) => write!(f, "last did {} {}", last.filter, last.window),
            Clause::Aggregate(aggregate) => {
                write!(
                    f,
                    "{}({}) of {}",
                    aggregate.function, aggregate.property, aggregate.filter
                )?;
                fmt_window(f, &aggregate.window)?;
                write!(f, " {} {}", aggregate.op, aggregate.value)
            }
            Clause::User(comparison) => {
                f.write_str("user.")?;
                fmt_path_tail(f, &comparison.property)?;
                write!(f, " {}", comparison.test)
            }
            Clause::InSegment(name) => {
                f.write_str("in segment ")?;
                fmt_string(f, name)
            }
            Clause::ReachableViaWebpush => f.write_str("reachable via webpush"),
        }
    }
}

impl Display for AggregateFn {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AggregateFn::Sum => "sum",
            AggregateFn::Avg => "avg",
            AggregateFn::Min => "min",
            AggregateFn::Max => "max",
            AggregateFn::CountDistinct => "count_distinct",
        })
    }
}

impl Display for Comparison {
    /// Prints `property TEST` with the property as an event property.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.property, self.test)
    }
}

impl Display for Test {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Test::Compare { op, value } => write!(f, "{op} {value}"),
            Test::In(list) => write!(f, "in {list}"),
            Test::NotIn(list) => write!(f, "not in {list}"),
            Test::Contains(value) => write!(f, "contains {value}"),
            Test::StartsWith(value) => write!(f, "starts with {value}"),
            Test::Between { low, high } => write!(f, "between {low} and {high}"),
            Test::Exists => f.write_str("exists"),
            Test::NotExists => f.write_str("not exists"),
        }
    }
}

impl Display for CompareOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CompareOp::Eq => "==",
            CompareOp::Ne => "!=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
        })
    }
}

impl Display for Value {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Value::String(string) => fmt_string(f, string),
            Value::Number(number) => number.fmt(f),
            Value::Bool(boolean) => write!(f, "{boolean}"),
            Value::List(items) => {
                f.write_char('[')?;
                join(f, items, ", ", |f, item| item.fmt(f))?;
                f.write_char(']')
            }
            Value::EventRef(path) => {
                f.write_str("event.")?;
                fmt_path_tail(f, path)
            }
        }
    }
}

impl Display for Number {
    /// Integers print as written; decimals print in the shortest form that reads back to
    /// the same `f64`, always with a decimal point (`3.0`, never `3` or `3e0`).
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Number::Int(int) => write!(f, "{int}"),
            Number::Float(float) => {
                let text = float.to_string();
                f.write_str(&text)?;
                if float.is_finite() && !text.contains('.') {
                    f.write_str(".0")?;
                }
                Ok(())
            }
        }
    }
}

impl Display for PropertyPath {
    /// Prints the path as an event property: segments that are not plain identifiers, a
    /// first segment that is `and`/`or`/`not`, and a first segment `user` (which would read
    /// as a user property) are quoted in backticks.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for (index, segment) in self.segments.iter().enumerate() {
            if index > 0 {
                f.write_char('.')?;
            }
            let is_keyword = ["and", "or", "not", "user"]
                .iter()
                .any(|keyword| segment.eq_ignore_ascii_case(keyword));
            if is_bare_name(segment) && !(index == 0 && is_keyword) {
                f.write_str(segment)?;
            } else {
                fmt_quoted_name(f, segment)?;
            }
        }
        Ok(())
    }
}

/// Prints a path after `user.` or `event.`, where no word is special.
fn fmt_path_tail(f: &mut Formatter<'_>, path: &PropertyPath) -> fmt::Result {
    for (index, segment) in path.segments.iter().enumerate() {
        if index > 0 {
            f.write_char('.')?;
        }
        if is_bare_name(segment) {
            f.write_str(segment)?;
        } else {
            fmt_quoted_name(f, segment)?;
        }
    }
    Ok(())
}

/// Whether `name` is an identifier: a letter or `_`, then letters, digits and `_`.
fn is_bare_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|rest| rest.is_ascii_alphanumeric() || rest == '_')
}

/// Prints `text` between `quote`s, escaping the quote, `\`, newline, tab and carriage return.
fn fmt_escaped(f: &mut Formatter<'_>, text: &str, quote: char) -> fmt::Result {
    f.write_char(quote)?;
    for character in text.chars() {
        match character {
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            '\r' => f.write_str("\\r")?,
            _ if character == quote => {
                f.write_char('\\')?;
                f.write_char(quote)?;
            }
            _ => f.write_char(character)?,
        }
    }
    f.write_char(quote)
}

/// Prints a double-quoted string literal.
fn fmt_string(f: &mut Formatter<'_>, text: &str) -> fmt::Result {
    fmt_escaped(f, text, '"')
}

/// Prints a backtick-quoted property name.
fn fmt_quoted_name(f: &mut Formatter<'_>, name: &str) -> fmt::Result {
    fmt_escaped(f, name, '`')
}

impl Display for Duration {
    /// Prints the largest exact unit among `d`, `h`, `m`, `s`, `ms` (`7d`, not `1w`).
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let ms = self.ms;
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit_ms, unit) in
            [(MS_PER_DAY, "d"), (MS_PER_HOUR, "h"), (MS_PER_MINUTE, "m"), (MS_PER_SECOND, "s")]
        {
            let unit_ms = unit_ms as u64;
            if ms.is_multiple_of(unit_ms) {
                return write!(f, "{}{unit}", ms / unit_ms);
            }
        }
        write!(f, "{ms}ms")
    }
}

impl fmt::Debug for Duration {
    /// `Duration(3600000ms)`: compact, for snapshots.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "Duration({}ms)", self.ms)
    }
}

impl fmt::Debug for PropertyPath {
    /// `PropertyPath(item.sku)`: the canonical spelling, compact, for snapshots.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "PropertyPath({self})")
    }
}

impl Display for TimePoint {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            TimePoint::Absolute(ms) => fmt_epoch_ms(*ms, f),
            TimePoint::Now => f.write_str("now"),
            TimePoint::Ago(duration) => write!(f, "{duration} ago"),
        }
    }
}

impl Display for Window {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Window::InLast(duration) => write!(f, "in last {duration}"),
            Window::Between(from, to) => write!(f, "between {from} and {to}"),
            Window::Since(from) => write!(f, "since {from}"),
            Window::Before(to) => write!(f, "before {to}"),
        }
    }
}

impl Display for Count {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match *self {
            Count::AtLeast(n) => write!(f, "at least {n} {}", times(n)),
            Count::AtMost(n) => write!(f, "at most {n} {}", times(n)),
            Count::Exactly(n) => write!(f, "exactly {n} {}", times(n)),
            Count::Between(low, high) => write!(f, "between {low} and {high} {}", times(high)),
        }
    }
}

impl Display for Trigger {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "on {}", self.event)?;
        if let Some(tail) = &self.tail {
            write!(f, " {tail}")?;
        }
        if let Some(condition) = &self.condition {
            write!(f, " if {condition}")?;
        }
        Ok(())
    }
}

impl Display for TriggerTail {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            TriggerTail::Unless { event, within } => write!(f, "unless {event} within {within}"),
            TriggerTail::Then { event, within } => write!(f, "then {event} within {within}"),
            TriggerTail::At { property, sign, offset } => {
                let sign = match sign {
                    Sign::Plus => '+',
                    Sign::Minus => '-',
                };
                write!(f, "at {property} {sign} {offset}")
            }
        }
    }
}

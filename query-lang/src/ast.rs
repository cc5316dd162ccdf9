//! The typed syntax tree of segment expressions and triggers (canonical printing is in `print.rs`).
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

use crate::span::{Span, Spanned};

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

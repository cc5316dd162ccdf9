//! Canonical printing of the syntax tree: `Display` for every node, so that
//! `parse(tree.to_string()) == tree` for every tree the parser produces. The rules
//! (lowercase keywords, single spaces, fewest parentheses, `count` before `window`,
//! durations in the largest exact unit, instants in UTC) are listed in `ast.rs`.

use std::fmt::{self, Display, Formatter, Write as _};

use crate::ast::*;
use crate::span::Spanned;
use crate::time::{MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE, MS_PER_SECOND, fmt_epoch_ms};

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

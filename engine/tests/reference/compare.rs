//! Property comparison rules of the reference evaluator: one stored value (or a missing
//! one) against one test of a `where` condition or a `user.` clause, exactly as the section
//! "Evaluation semantics" of `docs/query-language.md` states them.
//!
//! - a missing property makes every test false except `not exists`;
//! - numbers compare numerically, strings by equality and byte order, booleans by `==` and
//!   `!=` only, arrays equal a list literal with equal elements in the same order;
//! - values of different types are neither equal nor unequal nor ordered: the test is false;
//! - an `event.P` value (only possible in hand-built trees: `parse_segment` rejects it)
//!   matches nothing.

use std::cmp::Ordering;

use nudge_engine::Value;
use nudge_query_lang::{
    CompareOp, Condition, ConditionKind, PropertyPath, Spanned, Test, Value as Literal,
};

/// The flattened key a property path names: its segments joined with `.`.
pub fn key(path: &PropertyPath) -> String {
    path.segments.join(".")
}

/// Whether a `where` condition holds for an event with properties `props`.
pub fn condition_holds(condition: &Condition, props: &[(String, Value)]) -> bool {
    match &condition.node {
        ConditionKind::Comparison(comparison) => {
            let key = key(&comparison.property);
            let value = props.iter().find(|(k, _)| *k == key).map(|(_, v)| v);
            test_holds(value, &comparison.test)
        }
        ConditionKind::And(operands) => operands.iter().all(|c| condition_holds(c, props)),
        ConditionKind::Or(operands) => operands.iter().any(|c| condition_holds(c, props)),
        ConditionKind::Not(inner) => !condition_holds(inner, props),
    }
}

/// Whether `test` holds for a property whose value is `value` (`None`: missing).
pub fn test_holds(value: Option<&Value>, test: &Test) -> bool {
    let Some(x) = value else {
        return matches!(test, Test::NotExists);
    };
    match test {
        Test::Exists => true,
        Test::NotExists => false,
        Test::Compare { op, value } => compare(x, *op, &value.node),
        Test::In(list) => list_items(list)
            .is_some_and(|items| items.iter().any(|item| compare(x, CompareOp::Eq, &item.node))),
        Test::NotIn(list) => list_items(list)
            .is_some_and(|items| items.iter().all(|item| compare(x, CompareOp::Ne, &item.node))),
        Test::Contains(v) => contains(x, &v.node),
        Test::StartsWith(v) => starts_with(x, &v.node),
        Test::Between { low, high } => {
            compare(x, CompareOp::Ge, &low.node) && compare(x, CompareOp::Le, &high.node)
        }
    }
}

/// `x OP literal`: false whenever the two are of different types.
pub fn compare(x: &Value, op: CompareOp, literal: &Literal) -> bool {
    match op {
        CompareOp::Eq => equal(x, literal) == Some(true),
        CompareOp::Ne => equal(x, literal) == Some(false),
        CompareOp::Lt => order(x, literal) == Some(Ordering::Less),
        CompareOp::Le => matches!(order(x, literal), Some(Ordering::Less | Ordering::Equal)),
        CompareOp::Gt => order(x, literal) == Some(Ordering::Greater),
        CompareOp::Ge => matches!(order(x, literal), Some(Ordering::Greater | Ordering::Equal)),
    }
}

/// `op` applied to two numbers (aggregates).
pub fn compare_numbers(a: f64, op: CompareOp, b: f64) -> bool {
    match op {
        CompareOp::Eq => a == b,
        CompareOp::Ne => a != b,
        CompareOp::Lt => a < b,
        CompareOp::Le => a <= b,
        CompareOp::Gt => a > b,
        CompareOp::Ge => a >= b,
    }
}

/// `Some(equal?)` when `x` and `literal` have the same type, `None` when they do not.
fn equal(x: &Value, literal: &Literal) -> Option<bool> {
    match (x, literal) {
        (Value::Number(a), Literal::Number(b)) => Some(*a == b.as_f64()),
        (Value::String(a), Literal::String(b)) => Some(a == b),
        (Value::Bool(a), Literal::Bool(b)) => Some(a == b),
        (Value::Array(items), Literal::List(elements)) => Some(
            items.len() == elements.len()
                && items.iter().zip(elements).all(|(item, e)| equal(item, &e.node) == Some(true)),
        ),
        _ => None,
    }
}

/// The order of `x` and `literal` when both are numbers or both strings (byte order).
fn order(x: &Value, literal: &Literal) -> Option<Ordering> {
    match (x, literal) {
        (Value::Number(a), Literal::Number(b)) => a.partial_cmp(&b.as_f64()),
        (Value::String(a), Literal::String(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
        _ => None,
    }
}

/// The elements of an `in` / `not in` list (`None` for an `event.P` or a scalar).
fn list_items(list: &Spanned<Literal>) -> Option<&[Spanned<Literal>]> {
    match &list.node {
        Literal::List(items) => Some(items),
        _ => None,
    }
}

/// `x contains v`: a substring of a string, or an element of an array.
fn contains(x: &Value, v: &Literal) -> bool {
    match (x, v) {
        (Value::String(s), Literal::String(part)) => s.contains(part.as_str()),
        (Value::Array(items), _) => items.iter().any(|item| equal(item, v) == Some(true)),
        _ => false,
    }
}

/// `x starts with v`: both strings.
fn starts_with(x: &Value, v: &Literal) -> bool {
    match (x, v) {
        (Value::String(s), Literal::String(prefix)) => s.starts_with(prefix.as_str()),
        _ => false,
    }
}

//! `where` conditions and `user.` comparisons: binding property names to key
//! ids and testing a property blob, with the rules of "Evaluation semantics"
//! in `docs/query-language.md` (missing property or differing types: false,
//! `!=` included; only `not exists` holds for a missing property).

use nudge_query_lang::{self as ql, CompareOp, ConditionKind, Test};

use crate::store::dict::Dictionaries;
use crate::store::props::{self, KeyId, ValueRef};
use crate::store::sealed::SealedEventRows;

/// A literal of the query, typed.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A number (integer literals become `f64`, as stored values do).
    Number(f64),
    /// A string.
    Str(String),
    /// A boolean.
    Bool(bool),
    /// A list (for `in`, `not in`, and `==` against arrays).
    List(Vec<Literal>),
}

impl Literal {
    /// The literal as a stored scalar would be read (lists are not scalars).
    pub fn as_value_ref(&self) -> Option<ValueRef<'_>> {
        match self {
            Literal::Number(n) => Some(ValueRef::Number(*n)),
            Literal::Str(s) => Some(ValueRef::Str(s)),
            Literal::Bool(b) => Some(ValueRef::Bool(*b)),
            Literal::List(_) => None,
        }
    }

    /// The literal a stored value reads as.
    pub fn of_value(value: ValueRef<'_>) -> Literal {
        match value {
            ValueRef::Number(n) => Literal::Number(n),
            ValueRef::Str(s) => Literal::Str(s.to_owned()),
            ValueRef::Bool(b) => Literal::Bool(b),
            ValueRef::Array(items) => Literal::List(items.iter().map(Literal::of_value).collect()),
        }
    }

    /// Converts a parsed value, reading `event.P` references from the
    /// triggering event (`None`: there is none, as in a segment).
    pub fn resolve(value: &ql::Value, event: EventRefs<'_>) -> Option<Literal> {
        match (value, event) {
            (ql::Value::EventRef(path), Some((dicts, blob))) => {
                key_id(dicts, path).and_then(|k| props::get(blob, k)).map(Literal::of_value)
            }
            (ql::Value::List(items), Some(_)) => Some(Literal::List(
                items.iter().map(|i| Literal::resolve(i, event)).collect::<Option<_>>()?,
            )),
            _ => Literal::from_ast(value),
        }
    }

    /// Converts a parsed value; `event.P` references have no meaning in a segment.
    pub fn from_ast(value: &ql::Value) -> Option<Literal> {
        Some(match value {
            ql::Value::String(s) => Literal::Str(s.clone()),
            ql::Value::Number(n) => Literal::Number(n.as_f64()),
            ql::Value::Bool(b) => Literal::Bool(*b),
            ql::Value::List(items) => {
                Literal::List(items.iter().map(|i| Literal::from_ast(i)).collect::<Option<_>>()?)
            }
            ql::Value::EventRef(_) => return None,
        })
    }
}

/// What `event.P` reads from: the dictionaries and the triggering event's
/// properties (`None` in a segment, where such a reference never matches).
pub type EventRefs<'e> = Option<(&'e Dictionaries, &'e [u8])>;

/// A comparison test with its literals bound.
#[derive(Debug, Clone, PartialEq)]
pub enum BoundTest {
    /// `== != < <= > >=`.
    Compare(CompareOp, Literal),
    /// `in [..]`.
    In(Vec<Literal>),
    /// `not in [..]`.
    NotIn(Vec<Literal>),
    /// `contains v`.
    Contains(Literal),
    /// `starts with v`.
    StartsWith(Literal),
    /// `between a and b`, inclusive.
    Between(Literal, Literal),
    /// `exists`.
    Exists,
    /// `not exists`.
    NotExists,
}

/// A condition over one property blob.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    /// A test of one property; `None` when the key was never seen (it is missing everywhere).
    Test(Option<KeyId>, BoundTest),
    /// All hold.
    And(Vec<Cond>),
    /// Any holds.
    Or(Vec<Cond>),
    /// Negation of the whole condition.
    Not(Box<Cond>),
}

fn list(value: &ql::Value, event: EventRefs<'_>) -> Vec<Literal> {
    match Literal::resolve(value, event) {
        Some(Literal::List(items)) => items,
        Some(single) => vec![single],
        None => Vec::new(),
    }
}

/// Binds a parsed test, reading `event.P` from `event` (a reference to a
/// missing property binds to a test that never holds).
pub fn bind_test_with(test: &Test, event: EventRefs<'_>) -> BoundTest {
    let literal = |v: &ql::Value| {
        Literal::resolve(v, event).unwrap_or(Literal::List(vec![Literal::List(Vec::new())]))
    };
    match test {
        Test::Compare { op, value } => BoundTest::Compare(*op, literal(value)),
        Test::In(v) => BoundTest::In(list(v, event)),
        Test::NotIn(v) => BoundTest::NotIn(list(v, event)),
        Test::Contains(v) => BoundTest::Contains(literal(v)),
        Test::StartsWith(v) => BoundTest::StartsWith(literal(v)),
        Test::Between { low, high } => BoundTest::Between(literal(low), literal(high)),
        Test::Exists => BoundTest::Exists,
        Test::NotExists => BoundTest::NotExists,
    }
}

/// The flattened key a property path names.
pub fn key_name(path: &ql::PropertyPath) -> String {
    path.segments.join(".")
}

/// The key id of a property path, if the key was ever seen.
pub fn key_id(dicts: &Dictionaries, path: &ql::PropertyPath) -> Option<KeyId> {
    dicts.keys.get(&key_name(path)).and_then(|k| KeyId::try_from(k).ok())
}

/// Binds a `where` condition; unknown keys are reported through `unknown`.
pub fn bind(condition: &ql::Condition, dicts: &Dictionaries, unknown: &mut Vec<String>) -> Cond {
    bind_with(condition, dicts, unknown, None)
}

/// Binds a `where` condition, reading `event.P` from `event`.
pub fn bind_with(
    condition: &ql::Condition,
    dicts: &Dictionaries,
    unknown: &mut Vec<String>,
    event: EventRefs<'_>,
) -> Cond {
    match &condition.node {
        ConditionKind::Comparison(c) => {
            let key = key_id(dicts, &c.property);
            if key.is_none() {
                unknown.push(key_name(&c.property));
            }
            Cond::Test(key, bind_test_with(&c.test, event))
        }
        ConditionKind::And(items) => {
            Cond::And(items.iter().map(|c| bind_with(c, dicts, unknown, event)).collect())
        }
        ConditionKind::Or(items) => {
            Cond::Or(items.iter().map(|c| bind_with(c, dicts, unknown, event)).collect())
        }
        ConditionKind::Not(inner) => Cond::Not(Box::new(bind_with(inner, dicts, unknown, event))),
    }
}

impl Cond {
    /// Whether the properties in `blob` satisfy the condition.
    pub fn holds(&self, blob: &[u8]) -> bool {
        match self {
            Cond::Test(key, test) => test_value(test, key.and_then(|k| props::get(blob, k))),
            Cond::And(items) => items.iter().all(|c| c.holds(blob)),
            Cond::Or(items) => items.iter().any(|c| c.holds(blob)),
            Cond::Not(inner) => !inner.holds(blob),
        }
    }

    /// Which of `rows` rows satisfy the condition, read from their typed
    /// columns where the key has one (a number or a code column: NaN or
    /// `NO_CODE` where absent; a code's test is decided once per distinct
    /// string), else from row `r`'s blob (`blob(r)`): keys whose values
    /// changed type within the day, booleans, arrays.
    pub fn mask<'b>(
        &self,
        rows: &SealedEventRows<'b>,
        blob: &impl Fn(usize) -> &'b [u8],
    ) -> Vec<bool> {
        let n = rows.len();
        match self {
            Cond::Test(None, test) => vec![test_value(test, None); n],
            Cond::Test(Some(key), test) => {
                if let Some(numbers) = rows.numbers(*key) {
                    let absent = test_value(test, None);
                    return numbers
                        .iter()
                        .map(|&v| {
                            if v.is_nan() {
                                absent
                            } else {
                                test_value(test, Some(ValueRef::Number(v)))
                            }
                        })
                        .collect();
                }
                if let Some(codes) = rows.codes(*key) {
                    let absent = test_value(test, None);
                    let decided: Vec<bool> = (0..codes.dictionary_len() as u32)
                        .map(|c| {
                            codes.text(c).is_some_and(|t| test_value(test, Some(ValueRef::Str(t))))
                        })
                        .collect();
                    return codes
                        .codes
                        .iter()
                        .map(|&c| decided.get(c as usize).copied().unwrap_or(absent))
                        .collect();
                }
                (0..n).map(|r| test_value(test, props::get(blob(r), *key))).collect()
            }
            Cond::And(items) => {
                let mut mask = vec![true; n];
                for item in items {
                    for (m, v) in mask.iter_mut().zip(item.mask(rows, blob)) {
                        *m &= v;
                    }
                }
                mask
            }
            Cond::Or(items) => {
                let mut mask = vec![false; n];
                for item in items {
                    for (m, v) in mask.iter_mut().zip(item.mask(rows, blob)) {
                        *m |= v;
                    }
                }
                mask
            }
            Cond::Not(inner) => inner.mask(rows, blob).into_iter().map(|v| !v).collect(),
        }
    }

    /// The (key, value) of a condition that is a single `==` on a scalar, if it is one:
    /// a value index can then narrow candidates before any timeline is read.
    pub fn equality(&self) -> Option<(KeyId, ValueRef<'_>)> {
        match self {
            Cond::Test(Some(key), BoundTest::Compare(CompareOp::Eq, literal)) => {
                Some((*key, literal.as_value_ref()?))
            }
            Cond::And(items) => items.iter().find_map(Cond::equality),
            _ => None,
        }
    }
}

/// Whether `test` is false for every array value and for a missing one, so
/// that the scalar values a value index holds decide it alone.
pub fn never_holds_for_arrays(test: &BoundTest) -> bool {
    let scalar = |l: &Literal| !matches!(l, Literal::List(_));
    match test {
        BoundTest::Compare(_, literal) | BoundTest::StartsWith(literal) => scalar(literal),
        BoundTest::In(items) => items.iter().all(scalar),
        // `not in []` holds for every present value, arrays included.
        BoundTest::NotIn(items) => !items.is_empty() && items.iter().all(scalar),
        BoundTest::Between(low, high) => scalar(low) && scalar(high),
        BoundTest::Contains(_) | BoundTest::Exists | BoundTest::NotExists => false,
    }
}

/// Applies a test to a property value (`None`: missing).
pub fn test_value(test: &BoundTest, value: Option<ValueRef<'_>>) -> bool {
    let Some(value) = value else { return matches!(test, BoundTest::NotExists) };
    match test {
        BoundTest::Compare(op, literal) => compare(*op, value, literal),
        BoundTest::In(items) => items.iter().any(|l| compare(CompareOp::Eq, value, l)),
        BoundTest::NotIn(items) => items.iter().all(|l| compare(CompareOp::Ne, value, l)),
        BoundTest::Contains(literal) => match (value, literal) {
            (ValueRef::Str(s), Literal::Str(needle)) => s.contains(needle.as_str()),
            (ValueRef::Array(items), _) => {
                items.iter().any(|item| compare(CompareOp::Eq, item, literal))
            }
            _ => false,
        },
        BoundTest::StartsWith(literal) => match (value, literal) {
            (ValueRef::Str(s), Literal::Str(prefix)) => s.starts_with(prefix.as_str()),
            _ => false,
        },
        BoundTest::Between(low, high) => {
            compare(CompareOp::Ge, value, low) && compare(CompareOp::Le, value, high)
        }
        BoundTest::Exists => true,
        BoundTest::NotExists => false,
    }
}

fn ordered(op: CompareOp, ordering: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match op {
        CompareOp::Eq => ordering == Equal,
        CompareOp::Ne => ordering != Equal,
        CompareOp::Lt => ordering == Less,
        CompareOp::Le => ordering != Greater,
        CompareOp::Gt => ordering == Greater,
        CompareOp::Ge => ordering != Less,
    }
}

/// Compares two numbers (what [`compare`] does for a number and a number literal).
pub fn compare_numbers(op: CompareOp, value: f64, literal: f64) -> bool {
    value.partial_cmp(&literal).is_some_and(|o| ordered(op, o))
}

/// Compares a stored value with a literal; differing types are never related.
pub fn compare(op: CompareOp, value: ValueRef<'_>, literal: &Literal) -> bool {
    match (value, literal) {
        (ValueRef::Number(a), Literal::Number(b)) => compare_numbers(op, a, *b),
        (ValueRef::Str(a), Literal::Str(b)) => ordered(op, a.cmp(b.as_str())),
        (ValueRef::Bool(a), Literal::Bool(b)) => match op {
            CompareOp::Eq => a == *b,
            CompareOp::Ne => a != *b,
            _ => false,
        },
        (ValueRef::Array(items), Literal::List(list)) => {
            let equal = items.len() == list.len()
                && items.iter().zip(list).all(|(item, l)| compare(CompareOp::Eq, item, l));
            match op {
                CompareOp::Eq => equal,
                CompareOp::Ne => !equal,
                _ => false,
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tests_that_no_array_passes_may_be_answered_from_scalar_values() {
        let mut blob = Vec::new();
        let cities = props::Value::Array(vec![props::Value::String("Delhi".into())]);
        props::encode(&mut blob, &[(0, &cities)]);
        let array = props::get(&blob, 0).expect("the array");
        let city = Literal::Str("Delhi".into());
        let tests = [
            BoundTest::In(vec![city.clone()]),
            BoundTest::In(Vec::new()),
            BoundTest::NotIn(vec![city.clone()]),
            BoundTest::NotIn(Vec::new()),
            BoundTest::Compare(CompareOp::Ne, city.clone()),
            BoundTest::Contains(city),
            BoundTest::Exists,
        ];
        for test in tests {
            if never_holds_for_arrays(&test) {
                assert!(!test_value(&test, Some(array)), "{test:?} holds for an array");
            }
        }
        // `not in []` holds for any present value.
        assert!(test_value(&BoundTest::NotIn(Vec::new()), Some(array)));
        assert!(!never_holds_for_arrays(&BoundTest::NotIn(Vec::new())));
    }
}

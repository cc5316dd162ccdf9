//! Aggregates over the property values of a user's matching events: `sum`,
//! `avg`, `min` and `max` over the values that are numbers, and
//! `count_distinct` over distinct present values of any type. No counted value
//! gives no result, so the user is not selected whatever the comparison.

use std::collections::HashSet;

use nudge_query_lang::AggregateFn;

use crate::store::props::{DistinctValue, ValueRef};

/// Computes `function` over `values`; `None` when nothing was counted.
pub fn compute<'v>(
    function: AggregateFn,
    values: impl Iterator<Item = ValueRef<'v>>,
) -> Option<f64> {
    if function == AggregateFn::CountDistinct {
        let seen: HashSet<DistinctValue> = values.map(DistinctValue::from).collect();
        return (!seen.is_empty()).then_some(seen.len() as f64);
    }
    let mut numbers = values.filter_map(|v| match v {
        ValueRef::Number(n) => Some(n),
        _ => None,
    });
    let first = numbers.next()?;
    let (mut sum, mut count, mut min, mut max) = (first, 1u64, first, first);
    for n in numbers {
        sum += n;
        count += 1;
        min = min.min(n);
        max = max.max(n);
    }
    Some(match function {
        AggregateFn::Sum => sum,
        AggregateFn::Avg => sum / count as f64,
        AggregateFn::Min => min,
        AggregateFn::Max => max,
        AggregateFn::CountDistinct => count as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_non_numbers_and_counts_distinct_values_of_any_type() {
        let values = [
            ValueRef::Number(2.0),
            ValueRef::Str("x"),
            ValueRef::Number(4.0),
            ValueRef::Str("x"),
            ValueRef::Number(-0.0),
            ValueRef::Number(0.0),
        ];
        assert_eq!(compute(AggregateFn::Sum, values.iter().copied()), Some(6.0));
        assert_eq!(compute(AggregateFn::Avg, values.iter().copied()), Some(1.5));
        assert_eq!(compute(AggregateFn::Min, values.iter().copied()), Some(-0.0));
        assert_eq!(compute(AggregateFn::Max, values.iter().copied()), Some(4.0));
        assert_eq!(compute(AggregateFn::CountDistinct, values.iter().copied()), Some(4.0));
        assert_eq!(compute(AggregateFn::Sum, [ValueRef::Str("5")].into_iter()), None);
        assert_eq!(compute(AggregateFn::CountDistinct, std::iter::empty()), None);
    }
}

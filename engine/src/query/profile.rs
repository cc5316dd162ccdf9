//! `user.` comparisons: read from the profile value index when it can answer
//! (an equality, or a complete index and a test no array passes), else each
//! user of the scope's profile is read.

use nudge_query_lang as ql;
use roaring::{MultiOps, RoaringBitmap};

use super::Strategy;
use super::condition;
use super::eval::Evaluator;

/// What reading one profile value costs, in ids of bitmap union: a union
/// runs at about a nanosecond per id, a profile read at tens of nanoseconds.
const PROFILE_READ_COST_IN_IDS: u64 = 32;

impl<'a> Evaluator<'a> {
    /// `user.k == v` read from the profile value index: `Some(None)` when no
    /// profile holds that value (or the key has no index, or was never seen),
    /// `Some(Some(users))`, and `None` when the index cannot answer (another
    /// test, an overflowed index, a list or an unresolved `event.P`).
    pub(super) fn profile_equality(
        &self,
        comparison: &ql::Comparison,
    ) -> Option<Option<&'a RoaringBitmap>> {
        let ql::Test::Compare { op: ql::CompareOp::Eq, value } = &comparison.test.node else {
            return None;
        };
        let index = condition::key_id(self.dicts, &comparison.property)
            .and_then(|k| self.state.indexes.profile_property_value_user_ids.get(&k));
        let Some(index) = index else { return Some(None) };
        let literal = condition::Literal::resolve(value, self.event)?;
        index.get(literal.as_value_ref()?)
    }

    pub(super) fn user(
        &mut self,
        comparison: &ql::Comparison,
        scope: &RoaringBitmap,
    ) -> RoaringBitmap {
        let name = condition::key_name(&comparison.property);
        let test = condition::bind_test_with(&comparison.test, self.event);
        let Some(key) = condition::key_id(self.dicts, &comparison.property) else {
            self.warn(format!(
                "user property {name:?} has never been seen: it is missing on every profile"
            ));
            return if test == condition::BoundTest::NotExists {
                scope.clone()
            } else {
                RoaringBitmap::new()
            };
        };
        if let Some(answer) = self.profile_equality(comparison) {
            return answer.map_or_else(RoaringBitmap::new, |users| self.within(users, scope));
        }
        let index = self.state.indexes.profile_property_value_user_ids.get(&key);
        // A complete index and a test no array can pass: unite the bitmaps of
        // the values that pass, unless reading the scope's profiles is cheaper.
        if let Some(index) = index
            && index.is_complete()
            && condition::never_holds_for_arrays(&test)
            && self.strategy != Strategy::Timelines
            && (index.value_count() as u64) < scope.len()
        {
            let passing: Vec<&RoaringBitmap> = index
                .values()
                .filter(|(value, _)| condition::test_value(&test, Some(*value)))
                .map(|(_, users)| users)
                .collect();
            let ids: u64 = passing.iter().map(|users| users.len()).sum();
            if self.use_day_rows(scope)
                || ids <= scope.len().saturating_mul(PROFILE_READ_COST_IN_IDS)
            {
                return self.within(&passing.into_iter().union(), scope);
            }
        }
        let profiles = &self.state.profiles;
        self.verify(scope, |u| condition::test_value(&test, profiles.value(u, key)))
    }
}

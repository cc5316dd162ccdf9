//! When each UTC day last received an event, counted in events applied: a
//! view built from a day's events is stale once its day changed after it.
//! Not saved: a fresh or loaded state starts at zero, so every view is built
//! again after open.

use crate::store::dict::FastMap;

/// When each UTC day last received an event, as a count of events applied:
/// a cached view of a day is current while the day has not changed since.
#[derive(Debug, Clone, Default)]
pub struct DayChanges {
    applied: u64,
    changed_at: FastMap<i32, u64>,
    /// The most recent day touched and when: ingest mostly repeats one day,
    /// which then costs no hash lookup.
    last: Option<(i32, u64)>,
}

impl DayChanges {
    /// Records an event on `day`.
    pub fn touch(&mut self, day: i32) {
        self.applied += 1;
        match &mut self.last {
            Some((last_day, at)) if *last_day == day => *at = self.applied,
            last => {
                if let Some((old_day, at)) = last.take() {
                    self.changed_at.insert(old_day, at);
                }
                *last = Some((day, self.applied));
            }
        }
    }

    /// Events applied so far (the stamp of a view built now).
    pub fn stamp(&self) -> u64 {
        self.applied
    }

    /// When `day` last changed (0: never since the state was built or loaded).
    pub fn changed_at(&self, day: i32) -> u64 {
        match self.last {
            Some((last_day, at)) if last_day == day => at,
            _ => self.changed_at.get(&day).copied().unwrap_or(0),
        }
    }

    /// Whether any day of `from..=to` changed after `stamp`.
    pub fn changed_since(&self, from: i32, to: i32, stamp: u64) -> bool {
        if self.applied <= stamp || from > to {
            return false;
        }
        let span = (i64::from(to) - i64::from(from) + 1) as usize;
        if span <= self.changed_at.len() + 1 {
            (from..=to).any(|d| self.changed_at(d) > stamp)
        } else {
            // A long range: look at the days that ever changed instead.
            self.last
                .into_iter()
                .chain(self.changed_at.iter().map(|(&d, &at)| (d, at)))
                .any(|(d, at)| (from..=to).contains(&d) && at > stamp)
        }
    }
}

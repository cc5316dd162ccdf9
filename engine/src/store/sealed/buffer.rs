//! A sealing buffer: the rows of one UTC day cut from the in-memory head
//! (`SealDay`), laid out as the day file will hold them, until the file is
//! durable (`DaySealed`) and replaces it. Its rows are exactly the file's,
//! so a missing or damaged file is written again from it.

use crate::store::sealed::write::{EventRows, SealRow};

/// The rows of one event in a sealing buffer: users ascending, each user's
/// rows in time and then log order, property blobs copied out of the arena.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BufferedEvent {
    /// The event (dense id).
    pub event: u32,
    /// The users with rows, ascending.
    pub users: Vec<u32>,
    /// Row ranges: `users[i]`'s rows are `starts[i]..starts[i + 1]`.
    pub starts: Vec<u32>,
    /// Each row's timestamp, epoch ms.
    pub ts_ms: Vec<i64>,
    /// Each row's rank among its user's rows of the day (all events).
    pub order: Vec<u32>,
    /// Offsets of each row's blob in `props` (one more than the rows).
    pub props_at: Vec<u64>,
    /// The property blobs.
    pub props: Vec<u8>,
}

impl BufferedEvent {
    /// Row `row`'s property blob.
    pub fn blob(&self, row: usize) -> &[u8] {
        &self.props[self.props_at[row] as usize..self.props_at[row + 1] as usize]
    }

    /// Appends a row of `user` (users must come in ascending order).
    pub fn push(&mut self, user: u32, ts_ms: i64, order: u32, blob: &[u8]) {
        if self.starts.is_empty() {
            self.starts.push(0);
            self.props_at.push(0);
        }
        if self.users.last() != Some(&user) {
            debug_assert!(self.users.last().is_none_or(|&last| last < user));
            self.users.push(user);
            self.starts.push(self.starts[self.starts.len() - 1]);
        }
        if let Some(end) = self.starts.last_mut() {
            *end += 1;
        }
        self.ts_ms.push(ts_ms);
        self.order.push(order);
        self.props.extend_from_slice(blob);
        self.props_at.push(self.props.len() as u64);
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.ts_ms.len()
    }

    /// Checks the shape the accessors rely on (for rows read back from a
    /// snapshot): users ascending, row ranges and blob offsets that cover
    /// the rows and blobs exactly.
    pub fn check_shape(&self) -> Result<(), String> {
        let rows = self.ts_ms.len();
        let name = self.event;
        let covers = |offsets: &[u64], end: u64| {
            offsets.first() == Some(&0)
                && offsets.windows(2).all(|w| w[0] <= w[1])
                && offsets.last() == Some(&end)
        };
        let starts: Vec<u64> = self.starts.iter().map(|&s| u64::from(s)).collect();
        if self.users.windows(2).any(|w| w[0] >= w[1]) {
            return Err(format!("event {name}: users not ascending"));
        }
        if starts.len() != self.users.len() + 1 || !covers(&starts, rows as u64) {
            return Err(format!("event {name}: row ranges do not cover the rows"));
        }
        if self.order.len() != rows
            || self.props_at.len() != rows + 1
            || !covers(&self.props_at, self.props.len() as u64)
        {
            return Err(format!("event {name}: columns of different lengths"));
        }
        Ok(())
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.ts_ms.is_empty()
    }
}

/// The rows of one day cut from the head, by event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SealBuffer {
    /// The UTC day.
    pub day: i32,
    /// The log position of the cut.
    pub cut_position: u64,
    /// Events with rows, ascending by id.
    pub events: Vec<BufferedEvent>,
}

impl SealBuffer {
    /// Rows over all events.
    pub fn rows(&self) -> usize {
        self.events.iter().map(BufferedEvent::len).sum()
    }

    /// The buffer as the writer takes it (`write::write_day_file`).
    pub fn to_write(&self) -> Vec<EventRows<'_>> {
        self.events
            .iter()
            .map(|e| EventRows {
                event: e.event,
                rows: e
                    .users
                    .iter()
                    .enumerate()
                    .flat_map(|(i, &user)| {
                        (e.starts[i] as usize..e.starts[i + 1] as usize).map(move |r| SealRow {
                            user,
                            ts_ms: e.ts_ms[r],
                            order: e.order[r],
                            props: e.blob(r),
                        })
                    })
                    .collect(),
            })
            .collect()
    }
}

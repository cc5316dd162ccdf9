//! Segment queries and saved segments: thin calls into the query layer on
//! one consistent read of the state.

use std::collections::{BTreeMap, BTreeSet};

use super::{Engine, IngestOutcome};
use crate::error::Result;
use crate::query::{self, Answer, QueryOptions, UserSegments};

impl Engine {
    /// Evaluates a segment expression (see `docs/query-language.md`).
    pub fn query(&self, text: &str, options: &QueryOptions) -> Result<Answer> {
        let now = options.now_ms.unwrap_or_else(|| self.options.clock.now_ms());
        let limit = options.limit.unwrap_or(query::DEFAULT_ANSWER_LIMIT);
        let reader = self.read_state();
        let deadline = query::Deadline::after(
            options.deadline_ms.unwrap_or(crate::limits::DEFAULT_QUERY_DEADLINE_MS),
        );
        let memory = query::MemoryBudget::new(
            options.memory_limit_bytes.unwrap_or(crate::limits::DEFAULT_QUERY_MEMORY_LIMIT_BYTES),
        );
        query::evaluate(
            &reader.dicts,
            &reader.state.source(),
            text,
            now,
            limit,
            options.strategy,
            (deadline, memory),
        )
    }

    /// Saves (or replaces) a named segment, durably. The expression must parse,
    /// and must not make saved segments refer to each other in a cycle.
    pub fn save_segment(&self, name: &str, query: &str) -> Result<IngestOutcome> {
        self.save_segment_as(name, query, false)
    }

    /// [`Engine::save_segment`], marked public or not: a public segment may
    /// be named to the write key (`GET /v1/users/{id}/segments`).
    pub fn save_segment_as(&self, name: &str, query: &str, public: bool) -> Result<IngestOutcome> {
        let entries = self.read_state().state.queries.segments.save_entries(name, query, public)?;
        self.ingest_inputs(entries.into_iter().map(Into::into).collect())
    }

    /// Removes a saved segment; `Ok(None)` when there was none by that name.
    pub fn remove_segment(&self, name: &str) -> Result<Option<IngestOutcome>> {
        let Some(entry) = self.read_state().state.queries.segments.remove_entry(name) else {
            return Ok(None);
        };
        self.ingest_inputs(vec![entry.into()]).map(Some)
    }

    /// The saved segments, by name.
    pub fn segments(&self) -> BTreeMap<String, String> {
        self.read_state().state.queries.segments.by_name().clone()
    }

    /// The names of the saved segments marked public.
    pub fn public_segments(&self) -> BTreeSet<String> {
        self.read_state().state.queries.segments.public().clone()
    }

    /// The saved segments user `user_id` is in at `now_ms` (the engine clock
    /// when `None`): every one, or only the public ones. `None` when the
    /// user id was never seen; an error when a day file failed its check
    /// while it was read. See [`query::segments_of_user`].
    pub fn user_segments(
        &self,
        user_id: &str,
        public_only: bool,
        now_ms: Option<i64>,
    ) -> Result<Option<UserSegments>> {
        let now = now_ms.unwrap_or_else(|| self.options.clock.now_ms());
        let reader = self.read_state();
        let Some(user) = reader.dicts.users.get(user_id) else { return Ok(None) };
        let source = reader.state.source();
        query::segments_of_user(&reader.dicts, &source, user, public_only, now).map(Some)
    }
}

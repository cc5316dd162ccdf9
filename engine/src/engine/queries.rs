//! Segment queries and saved segments: thin calls into the query layer on
//! one consistent read of the state.

use std::collections::BTreeMap;

use super::{Engine, IngestOutcome};
use crate::error::Result;
use crate::query::{self, Answer, QueryOptions};

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
        let entry = self.read_state().state.queries.segments.save_entry(name, query)?;
        self.ingest_inputs(vec![entry.into()])
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
}

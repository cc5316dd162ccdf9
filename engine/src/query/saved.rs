//! Saved segments: the fold of their log entries, the log entries that save
//! and remove them, and the check that `in segment` references never form a
//! cycle.

use std::collections::BTreeMap;

use super::MAX_SEGMENT_REFERENCE_DEPTH;
use crate::error::{Error, Result};
use crate::store::log::entry::{ArchivedLogEntry, LogEntry, LogSegment, LogSegmentRemoved};

/// Saved segments by name: the expression text as the user wrote it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SavedSegments {
    by_name: BTreeMap<String, String>,
}

impl SavedSegments {
    /// Applies a `SegmentSaved` or `SegmentRemoved` entry; ignores the rest.
    pub fn apply_entry(&mut self, entry: &ArchivedLogEntry) {
        match entry {
            ArchivedLogEntry::SegmentSaved(segment) => {
                self.by_name.insert(segment.name.to_string(), segment.query.to_string());
            }
            ArchivedLogEntry::SegmentRemoved(removed) => {
                self.by_name.remove(removed.name.as_str());
            }
            _ => {}
        }
    }

    /// The segments by name.
    pub fn by_name(&self) -> &BTreeMap<String, String> {
        &self.by_name
    }

    /// Replaces every segment (a snapshot being loaded).
    pub fn restore(by_name: BTreeMap<String, String>) -> Self {
        SavedSegments { by_name }
    }

    /// Checks a segment about to be saved (its name, its expression, and that
    /// it forms no cycle with the segments saved now), and returns its log entry.
    pub fn save_entry(&self, name: &str, query: &str) -> Result<LogEntry> {
        check_name(name)?;
        super::parse(query)?;
        let mut segments = self.by_name.clone();
        segments.insert(name.to_owned(), query.to_owned());
        check_references(&segments, name)?;
        Ok(LogEntry::SegmentSaved(LogSegment { name: name.to_owned(), query: query.to_owned() }))
    }

    /// The log entry that removes `name`, or `None` when no segment has that name.
    pub fn remove_entry(&self, name: &str) -> Option<LogEntry> {
        self.by_name
            .contains_key(name)
            .then(|| LogEntry::SegmentRemoved(LogSegmentRemoved { name: name.to_owned() }))
    }
}

/// Checks a segment name against its limits.
pub fn check_name(name: &str) -> Result<()> {
    crate::limits::check_text("name", name, super::MAX_SEGMENT_NAME_BYTES, "segment name")
}

/// The saved segments `expr` refers to with `in segment`.
fn references(expr: &nudge_query_lang::Expr, out: &mut Vec<String>) {
    use nudge_query_lang::{Clause, ExprKind};
    match &expr.node {
        ExprKind::Or(items) | ExprKind::And(items) => items.iter().for_each(|e| references(e, out)),
        ExprKind::Not(inner) => references(inner, out),
        ExprKind::Clause(clause) => {
            if let Clause::InSegment(name) = &**clause {
                out.push(name.node.clone());
            }
        }
    }
}

/// Checks that, among `segments`, following `in segment` references from
/// `start` never comes back to a segment already on the path. References to
/// names not saved (yet) are allowed; evaluating them is an error.
pub fn check_references(segments: &BTreeMap<String, String>, start: &str) -> Result<()> {
    fn visit(
        segments: &BTreeMap<String, String>,
        name: &str,
        path: &mut Vec<String>,
    ) -> Result<()> {
        if path.iter().any(|p| p == name) {
            path.push(name.to_owned());
            return Err(Error::invalid(
                None,
                "q",
                format!(
                    "saved segments would refer to each other in a cycle: {}",
                    path.join(" → ")
                ),
            ));
        }
        if path.len() >= MAX_SEGMENT_REFERENCE_DEPTH {
            return Err(Error::invalid(
                None,
                "q",
                format!(
                    "saved segments would nest deeper than {MAX_SEGMENT_REFERENCE_DEPTH} levels"
                ),
            ));
        }
        let Some(text) = segments.get(name) else { return Ok(()) };
        let Ok(expr) = nudge_query_lang::parse_segment(text) else { return Ok(()) };
        let mut names = Vec::new();
        references(&expr, &mut names);
        path.push(name.to_owned());
        for next in names {
            visit(segments, &next, path)?;
        }
        path.pop();
        Ok(())
    }
    visit(segments, start, &mut Vec::new())
}

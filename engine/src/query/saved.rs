//! Saved segments: the fold of their log entries, the log entries that save
//! and remove them, and the check that `in segment` references never form a
//! cycle. Each segment keeps its parsed expression, so evaluating saved
//! segments for one user (`GET /v1/users/{id}/segments`) parses nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::MAX_SEGMENT_REFERENCE_DEPTH;
use crate::error::{Error, Result};
use crate::store::log::entry::{
    ArchivedLogEntry, LogEntry, LogSegment, LogSegmentRemoved, LogSegmentVisibility,
};

/// Saved segments by name: the expression text as the user wrote it, and
/// which of them are public.
#[derive(Debug, Clone, Default)]
pub struct SavedSegments {
    by_name: BTreeMap<String, String>,
    public: BTreeSet<String>,
    /// The parsed expression of each segment whose text parses (derived from
    /// `by_name`, not compared).
    parsed: BTreeMap<String, Arc<nudge_query_lang::Expr>>,
}

impl PartialEq for SavedSegments {
    fn eq(&self, other: &Self) -> bool {
        self.by_name == other.by_name && self.public == other.public
    }
}

impl Eq for SavedSegments {}

impl SavedSegments {
    /// Applies a `SegmentSaved`, `SegmentRemoved` or `SegmentVisibility`
    /// entry; ignores the rest.
    pub fn apply_entry(&mut self, entry: &ArchivedLogEntry) {
        match entry {
            ArchivedLogEntry::SegmentSaved(segment) => {
                self.insert(segment.name.to_string(), segment.query.to_string());
                self.public.remove(segment.name.as_str());
            }
            ArchivedLogEntry::SegmentRemoved(removed) => {
                self.by_name.remove(removed.name.as_str());
                self.parsed.remove(removed.name.as_str());
                self.public.remove(removed.name.as_str());
            }
            ArchivedLogEntry::SegmentVisibility(visibility) => {
                let name = visibility.name.as_str();
                if visibility.public && self.by_name.contains_key(name) {
                    self.public.insert(name.to_owned());
                } else {
                    self.public.remove(name);
                }
            }
            _ => {}
        }
    }

    fn insert(&mut self, name: String, query: String) {
        match nudge_query_lang::parse_segment(&query) {
            Ok(expr) => self.parsed.insert(name.clone(), Arc::new(expr)),
            Err(_) => self.parsed.remove(&name),
        };
        self.by_name.insert(name, query);
    }

    /// The segments by name.
    pub fn by_name(&self) -> &BTreeMap<String, String> {
        &self.by_name
    }

    /// The names of the public segments.
    pub fn public(&self) -> &BTreeSet<String> {
        &self.public
    }

    /// Whether `name` is a saved segment marked public.
    pub fn is_public(&self, name: &str) -> bool {
        self.public.contains(name)
    }

    /// The parsed expression of `name` (`None`: no such segment, or its text
    /// no longer parses).
    pub fn parsed(&self, name: &str) -> Option<&Arc<nudge_query_lang::Expr>> {
        self.parsed.get(name)
    }

    /// Replaces every segment (a snapshot being loaded); public names that
    /// are not segments are ignored.
    pub fn restore(by_name: BTreeMap<String, String>, public: BTreeSet<String>) -> Self {
        let mut segments = SavedSegments::default();
        for (name, query) in by_name {
            segments.insert(name, query);
        }
        segments.public =
            public.into_iter().filter(|name| segments.by_name.contains_key(name)).collect();
        segments
    }

    /// Checks a segment about to be saved (its name, its expression, and that
    /// it forms no cycle with the segments saved now), and returns its log
    /// entries: the save, and when `public`, its visibility.
    pub fn save_entries(&self, name: &str, query: &str, public: bool) -> Result<Vec<LogEntry>> {
        check_name(name)?;
        super::parse(query)?;
        let mut segments = self.by_name.clone();
        segments.insert(name.to_owned(), query.to_owned());
        check_references(&segments, name)?;
        let mut entries = vec![LogEntry::SegmentSaved(LogSegment {
            name: name.to_owned(),
            query: query.to_owned(),
        })];
        if public {
            entries.push(LogEntry::SegmentVisibility(LogSegmentVisibility {
                name: name.to_owned(),
                public,
            }));
        }
        Ok(entries)
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

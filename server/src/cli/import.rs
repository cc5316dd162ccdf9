//! `nudge import`: loads NDJSON records into a data directory.
//!
//! Records are read line by line, decoded, and ingested in batches of
//! [`IMPORT_BATCH_RECORDS`] with buffered durability (one sync at the end, and
//! at every chunk rotation), which is what a bulk load wants. Import fires no
//! triggers. The first bad line stops the import with its line number; every
//! batch before it is stored, so after fixing the file a rerun is safe when
//! events carry ids (repeats are acknowledged, not stored twice).
//! A progress bar (bytes read, records per second) is drawn when standard
//! error is a terminal.
//!
//! Every day of history is already closed, so the in-memory head would hold
//! all of it: whenever the head's rows take more than the head budget
//! (`--head-memory-mb`, by default a quarter of physical memory), the days
//! holding the most rows are sealed into day files, and at the end every
//! closed day is (`docs/design/sealed-days.md`).

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::path::Path;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use nudge_engine::{Durability, Engine, EngineOptions, Record};

use crate::error::{Error, Result};
use crate::json::ndjson;

/// Records per ingest call during import.
pub const IMPORT_BATCH_RECORDS: usize = 2000;
/// Batches between two looks at the head's size.
const BUDGET_CHECK_BATCHES: u64 = 64;
/// What an import did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ImportSummary {
    /// Records stored.
    pub accepted: u64,
    /// Events skipped as repeats of an id already stored.
    pub duplicates: u64,
    /// Lines read (blank lines included).
    pub lines: u64,
    /// Day files written (a day sealed twice counts twice).
    pub day_files: u64,
}

fn progress(total_bytes: Option<u64>) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    match total_bytes {
        Some(total) => ProgressBar::new(total).with_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({eta}) {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bytes} read {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    }
}

/// Ingests the batch; `lines` holds the input line of each record, for errors.
fn flush_batch(
    engine: &Engine,
    batch: &mut Vec<Record>,
    lines: &mut Vec<u64>,
    summary: &mut ImportSummary,
) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    // History: what an import stores arms and fires no trigger.
    let outcome = engine.ingest_history(std::mem::take(batch)).map_err(|e| match e {
        nudge_engine::Error::InvalidInput { index: Some(i), field, reason } => {
            let line = lines.get(i).copied().unwrap_or_default();
            Error::Usage(format!("line {line}: invalid `{field}`: {reason}"))
        }
        other => Error::Engine(other),
    })?;
    lines.clear();
    summary.accepted += outcome.accepted as u64;
    summary.duplicates += outcome.duplicates as u64;
    Ok(())
}

/// Saves or removes a segment or trigger (removing one that does not exist is no error).
fn apply_definition(
    engine: &Engine,
    definition: ndjson::Definition,
) -> std::result::Result<(), nudge_engine::Error> {
    match definition {
        ndjson::Definition::SaveSegment { name, query } => {
            engine.save_segment(&name, &query).map(drop)
        }
        ndjson::Definition::RemoveSegment { name } => engine.remove_segment(&name).map(drop),
        ndjson::Definition::SaveTrigger { name, trigger } => {
            engine.save_trigger(&name, &trigger).map(drop)
        }
        ndjson::Definition::RemoveTrigger { name } => engine.remove_trigger(&name).map(drop),
    }
}

/// Imports `source` (a path, or `-` for standard input) into `data_dir`,
/// sealing days whenever the head's rows take more than `head_budget_bytes`.
pub fn run(
    data_dir: &Path,
    source: &str,
    options: EngineOptions,
    head_budget_bytes: usize,
) -> Result<ImportSummary> {
    let (reader, total): (Box<dyn Read>, Option<u64>) = if source == "-" {
        (Box::new(std::io::stdin().lock()), None)
    } else {
        let file = File::open(source)
            .map_err(|e| Error::Io { context: format!("opening {source}"), source: e })?;
        let len = file.metadata().ok().map(|m| m.len());
        (Box::new(file), len)
    };
    let engine =
        Engine::open(data_dir, EngineOptions { durability: Durability::Buffered, ..options })?;
    let bar = progress(total);
    let started = Instant::now();
    let mut reader = BufReader::with_capacity(1 << 20, bar.wrap_read(reader));
    let mut summary = ImportSummary::default();
    let mut batch = Vec::with_capacity(IMPORT_BATCH_RECORDS);
    let mut batch_lines = Vec::with_capacity(IMPORT_BATCH_RECORDS);
    let mut line = String::new();
    let mut batches = 0u64;
    loop {
        line.clear();
        let read = reader
            .read_line(&mut line)
            .map_err(|e| Error::Io { context: format!("reading {source}"), source: e })?;
        if read == 0 {
            break;
        }
        summary.lines += 1;
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        let line_number = summary.lines;
        let record = match ndjson::decode_line(text.as_bytes())
            .map_err(|e| Error::Usage(format!("line {line_number}: {e}")))?
        {
            ndjson::Line::Record(record) => record,
            ndjson::Line::Definition(definition) => {
                // Definitions take effect in file order: what came before is stored first.
                flush_batch(&engine, &mut batch, &mut batch_lines, &mut summary)?;
                apply_definition(&engine, definition).map_err(|e| match e {
                    nudge_engine::Error::InvalidInput { field, reason, .. } => {
                        Error::Usage(format!("line {line_number}: invalid `{field}`: {reason}"))
                    }
                    nudge_engine::Error::Query { rendered, .. } => {
                        Error::Usage(format!("line {line_number}: {rendered}"))
                    }
                    other => Error::Engine(other),
                })?;
                summary.accepted += 1;
                continue;
            }
        };
        batch.push(record);
        batch_lines.push(summary.lines);
        if batch.len() == IMPORT_BATCH_RECORDS {
            flush_batch(&engine, &mut batch, &mut batch_lines, &mut summary)?;
            batches += 1;
            if batches.is_multiple_of(BUDGET_CHECK_BATCHES) {
                summary.day_files += engine.seal_over_budget(head_budget_bytes)?.len() as u64;
            }
            let rate = summary.accepted as f64 / started.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!("{} records, {rate:.0}/s", summary.accepted));
        }
    }
    flush_batch(&engine, &mut batch, &mut batch_lines, &mut summary)?;
    bar.set_message("sealing the closed days");
    summary.day_files += engine.seal_closed_days()?.len() as u64;
    engine.flush()?;
    bar.finish_and_clear();
    engine.close()?;
    Ok(summary)
}

//! `nudge query`, `nudge explain`, `nudge check` and `nudge repl`: the query
//! language from the command line (see `docs/cli.md`).
//!
//! Read-only commands open the data directory without writing a snapshot on
//! close; `nudge import` leaves one behind, so they start quickly.

use std::fmt::Write as _;
use std::path::Path;

use nudge_engine::{Answer, Engine, EngineOptions, QueryOptions};

use crate::error::{Error, Result};

/// Opens a data directory for reading queries.
pub fn open(data: &Path) -> Result<Engine> {
    if !data.join("log").exists() {
        return Err(Error::Usage(format!(
            "{} holds no Nudge data (no log directory); import some first with `nudge import --data {}`",
            data.display(),
            data.display()
        )));
    }
    Ok(Engine::open(data, EngineOptions { snapshot_on_close: false, ..Default::default() })?)
}

/// The options of a query asked from the command line: `--now` (RFC 3339 or
/// epoch ms) and `--limit`, with no deadline and no memory limit (the one
/// waiting is the one who asked, and Ctrl-C stops it).
pub fn local_options(now: Option<String>, limit: usize) -> Result<QueryOptions> {
    let now_ms = now
        .map(|text| {
            crate::json::parse_timestamp_text(&text)
                .map_err(|e| Error::Usage(format!("--now: {e}")))
        })
        .transpose()?;
    Ok(QueryOptions {
        now_ms,
        limit: Some(limit),
        deadline_ms: Some(nudge_engine::limits::NO_QUERY_DEADLINE_MS),
        memory_limit_bytes: Some(nudge_engine::limits::NO_QUERY_MEMORY_LIMIT_BYTES),
        ..Default::default()
    })
}

/// The plan of an answer as indented text, one clause a line.
pub fn plan_text(answer: &Answer) -> String {
    let mut out = String::new();
    for step in &answer.plan {
        let _ = writeln!(
            out,
            "{:indent$}{}  [{} → {} users, {} µs]",
            "",
            step.clause,
            step.scope_users,
            step.selected_users,
            step.took_us,
            indent = step.depth * 2
        );
    }
    let _ = writeln!(
        out,
        "total: {} users in {} µs (now = {})",
        answer.count, answer.took_us, answer.now_ms
    );
    out
}

fn print_warnings(answer: &Answer) {
    for warning in &answer.warnings {
        eprintln!("warning: {warning}");
    }
}

/// `nudge query`.
pub fn query(engine: &Engine, text: &str, options: &QueryOptions, json: bool) -> Result<()> {
    let answer = engine.query(text, options)?;
    print_warnings(&answer);
    if json {
        println!("{}", crate::json::answer_to_json(&answer));
    } else {
        println!("{} users ({} µs)", answer.count, answer.took_us);
        for user in &answer.users {
            println!("{user}");
        }
        if (answer.users.len() as u64) < answer.count {
            println!("… {} more (raise --limit)", answer.count - answer.users.len() as u64);
        }
    }
    Ok(())
}

/// `nudge explain`.
pub fn explain(engine: &Engine, text: &str, options: &QueryOptions) -> Result<()> {
    let answer = engine.query(text, &QueryOptions { limit: Some(0), ..options.clone() })?;
    print_warnings(&answer);
    print!("{}", plan_text(&answer));
    Ok(())
}

/// True when `text` is a trigger (`on …`) rather than a segment expression.
fn is_trigger(text: &str) -> bool {
    let mut words =
        text.lines().filter(|l| !l.trim_start().starts_with('#')).flat_map(str::split_whitespace);
    words.next().is_some_and(|w| w.eq_ignore_ascii_case("on"))
}

/// `nudge check`: parses a segment expression or a trigger; prints its canonical form.
pub fn check(text: &str) -> Result<String> {
    let trigger = is_trigger(text);
    let canonical = if trigger {
        nudge_query_lang::parse_trigger(text).map(|t| t.to_string())
    } else {
        nudge_query_lang::parse_segment(text).map(|e| e.to_string())
    };
    canonical.map_err(|e| {
        let field = if trigger { "trigger" } else { "q" };
        Error::Engine(nudge_engine::Error::query(&e, text, field))
    })
}

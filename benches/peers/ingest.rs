//! Ingest, side by side: Nudge's durable ingest (1000-record batches, one
//! fdatasync per group commit, every index maintained) against PostgreSQL COPY
//! (synchronous commit, with the (event, ts, user_id) index) and SQLite (WAL,
//! synchronous=FULL, one transaction per 1000 rows, same index), plus DuckDB's
//! bulk CSV load for reference. Loading is also what prepares every system for
//! the query part, so it leaves each store in `ctx.scale_dir()`.

use std::time::Instant;

use nudge_engine::{Engine, EngineOptions, Record};

use crate::context::{Context, Part, Ratio, Result};
use crate::dataset;
use crate::postgres::Postgres;

/// Records per Nudge ingest call (the batch size of the plan's headline).
const NUDGE_BATCH_RECORDS: usize = 1000;
/// The marker file saying every system is loaded with this scale's data.
const LOADED_MARKER: &str = "loaded";

/// One system's load.
#[derive(Debug)]
struct Load {
    system: &'static str,
    how: &'static str,
    events: u64,
    seconds: f64,
}

impl Load {
    fn rate(&self) -> f64 {
        self.events as f64 / self.seconds
    }
}

/// Loads every system unless a previous run did; used by the query part.
pub fn ensure_loaded(ctx: &Context) -> Result<()> {
    if ctx.scale_dir().join(LOADED_MARKER).exists() {
        return Ok(());
    }
    load_all(ctx).map(|_| ())
}

/// Runs the ingest comparison (always loading afresh).
pub fn run(ctx: &Context) -> Result<Part> {
    let loads = load_all(ctx)?;
    let nudge = &loads[0];
    let mut markdown = String::from(
        "### Ingest\n\n| system | how | events | seconds | events/s | Nudge ÷ system |\n|---|---|---:|---:|---:|---:|\n",
    );
    let mut ratios = Vec::new();
    for load in &loads {
        let times = nudge.rate() / load.rate();
        markdown.push_str(&format!(
            "| {} | {} | {} | {:.1} | {} | {} |\n",
            load.system,
            load.how,
            load.events,
            load.seconds,
            crate::report::thousands(load.rate()),
            if load.system == "Nudge" { "—".to_owned() } else { format!("{times:.1}×") },
        ));
        let target = match load.system {
            "PostgreSQL" => Some(10.0),
            _ => None,
        };
        if load.system != "Nudge" {
            ratios.push(Ratio {
                measure: "ingest".into(),
                peer: load.system.into(),
                times,
                target,
            });
        }
    }
    markdown.push_str(
        "\nNudge acknowledges each 1000-record batch after its fsync, the contract of \
         `POST /v1/events`; the PostgreSQL and SQLite rows with the target commit every 1000 rows \
         the same way. Nudge's time also covers the profiles and subscriptions of the dataset \
         (not counted as events) and every derived index (bitmaps, counters, timelines); its \
         records are generated in memory before the clock starts, while the peers parse CSV. \
         One COPY of everything and DuckDB's bulk load commit once at the end: shown for \
         reference, without a target.\n",
    );
    Ok(Part { markdown, ratios })
}

fn load_all(ctx: &Context) -> Result<Vec<Load>> {
    let dir = ctx.scale_dir();
    let _ = std::fs::remove_file(dir.join(LOADED_MARKER));
    let exported = dataset::exported(ctx)?;
    let mut loads = vec![nudge_ingest(ctx)?];
    let csv = |system: &'static str, extra: &[String]| -> Result<(u64, f64, Option<f64>)> {
        let mut args = vec![
            "load".to_owned(),
            system.to_owned(),
            "--dir".to_owned(),
            dir.display().to_string(),
            "--users".to_owned(),
            exported.users_csv.display().to_string(),
            "--events".to_owned(),
            exported.events_csv.display().to_string(),
        ];
        args.extend_from_slice(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out: serde_json::Value = serde_json::from_str(&ctx.python("sql_peers.py", &args)?)?;
        let events = out["events"].as_u64().unwrap_or_default();
        if events != exported.events {
            return Err(crate::fail!(
                "{system} loaded {events} events, the export has {}",
                exported.events
            ));
        }
        Ok((events, out["seconds"].as_f64().unwrap_or(f64::NAN), out["bulk_seconds"].as_f64()))
    };
    if ctx.row_stores() {
        let postgres = Postgres::start(&dir.join("postgres"))?;
        let (events, seconds, bulk) = csv("postgres", &postgres.script_args())?;
        loads.push(Load {
            system: "PostgreSQL",
            how: "COPY per 1000 rows, each committed (synchronous), 1 index",
            events,
            seconds,
        });
        if let Some(seconds) = bulk {
            loads.push(Load {
                system: "PostgreSQL bulk",
                how: "one COPY of the whole file (one commit), 1 index",
                events,
                seconds,
            });
        }
        drop(postgres);
        let (events, seconds, _) = csv("sqlite", &[])?;
        loads.push(Load {
            system: "SQLite",
            how: "WAL, synchronous=FULL, 1000 rows/txn, 1 index",
            events,
            seconds,
        });
    }
    let (events, seconds, _) = csv("duckdb", &[])?;
    loads.push(Load { system: "DuckDB", how: "bulk CSV load (one transaction)", events, seconds });
    std::fs::write(dir.join(LOADED_MARKER), "")?;
    Ok(loads)
}

/// The directory of Nudge's data for this scale.
pub fn nudge_dir(ctx: &Context) -> std::path::PathBuf {
    ctx.scale_dir().join("nudge")
}

fn nudge_ingest(ctx: &Context) -> Result<Load> {
    let dir = nudge_dir(ctx);
    let _ = std::fs::remove_dir_all(&dir);
    let engine = Engine::open(&dir, EngineOptions::default())?;
    // Records are generated a slice at a time with the clock stopped (at M
    // they would not fit in memory at once); the clock runs over the
    // ingest calls and the sealing that keeps the head within its budget.
    let mut records = nudge_engine::dataset::records(ctx.spec);
    let head_budget = nudge_engine::default_head_budget_bytes();
    let (mut events, mut ingest_seconds, mut batches) = (0u64, 0f64, 0u64);
    eprintln!("peers: ingesting the {} records into Nudge", ctx.args.scale.name());
    loop {
        let slice: Vec<Record> = records.by_ref().take(GENERATED_SLICE_RECORDS).collect();
        if slice.is_empty() {
            break;
        }
        events += slice.iter().filter(|r| matches!(r, Record::Event(_))).count() as u64;
        let mut slice = slice.into_iter().peekable();
        let started = Instant::now();
        while slice.peek().is_some() {
            engine.ingest(slice.by_ref().take(NUDGE_BATCH_RECORDS).collect())?;
            batches += 1;
            if batches.is_multiple_of(BUDGET_CHECK_BATCHES) {
                engine.seal_over_budget(head_budget)?;
            }
        }
        ingest_seconds += started.elapsed().as_secs_f64();
    }
    eprintln!("peers: Nudge ingested {events} events in {ingest_seconds:.1} s");
    let started = Instant::now();
    let sealed = engine.seal_closed_days()?;
    let median = |mut times: Vec<f64>| {
        times.sort_by(f64::total_cmp);
        nudge_benches::percentile(&times, 0.5).unwrap_or(f64::NAN)
    };
    eprintln!(
        "peers: Nudge sealed the last {} days in {:.1} s (per day, median: cut {:.0} ms, write {:.0} ms, install {:.0} ms): {:?}",
        sealed.len(),
        started.elapsed().as_secs_f64(),
        median(sealed.iter().map(|s| s.cut.as_secs_f64() * 1000.0).collect()),
        median(sealed.iter().map(|s| s.write.as_secs_f64() * 1000.0).collect()),
        median(sealed.iter().map(|s| s.install.as_secs_f64() * 1000.0).collect()),
        engine.storage_tiers()
    );
    engine.close()?;
    Ok(Load {
        system: "Nudge",
        how: "durable ingest, 1000 records/batch, all indexes",
        events,
        seconds: ingest_seconds,
    })
}

/// Records generated at a time, outside the timed ingest.
const GENERATED_SLICE_RECORDS: usize = 1_000_000;
/// Batches between two looks at the head's size.
const BUDGET_CHECK_BATCHES: u64 = 64;

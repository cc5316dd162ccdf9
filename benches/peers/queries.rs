//! The 15 segment queries of performance.md §4.2, side by side: Nudge's
//! language (`nudge_benches::SEGMENT_QUERIES`) against the same questions in
//! SQL over the raw `events` table for DuckDB (2 threads), SQLite and
//! PostgreSQL (S only). Each system's user-id set is checksummed and must
//! equal Nudge's before any time is reported; then cold (first run after
//! opening) and warm (median, p99) times, and the Nudge ÷ peer ratio.

use std::time::Instant;

use nudge_engine::{Engine, EngineOptions, QueryOptions};
use serde::Deserialize;

use crate::context::{Context, Part, Ratio, Result};
use crate::postgres::Postgres;
use crate::{dataset, fail, ingest};

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;
/// Warm runs of each Nudge query: its runs are microseconds, so more of them
/// give a real p99 (the peers run `--runs`).
const NUDGE_WARM_RUNS: usize = 200;

/// What one system answered and how long it took.
#[derive(Debug, Clone, Deserialize)]
pub struct Timing {
    /// The query's id (`Q01_did_7d`).
    pub id: String,
    /// Users selected.
    pub count: u64,
    /// Checksum of the sorted id list (see `checksum`).
    pub checksum: String,
    /// First run after opening, ms.
    pub cold_ms: f64,
    /// Warm runs, ms.
    pub warm_ms: Vec<f64>,
}

impl Timing {
    /// Median of the warm runs, ms.
    pub fn median(&self) -> f64 {
        percentile(&self.warm_ms, 0.5)
    }

    /// 99th percentile of the warm runs, ms.
    pub fn p99(&self) -> f64 {
        percentile(&self.warm_ms, 0.99)
    }
}

fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    nudge_benches::percentile(&sorted, p).unwrap_or(f64::NAN)
}

/// SHA-256 of the sorted ids as little-endian u32, first 16 hex digits; the
/// same function as `checksum` in sql_peers.py.
pub fn checksum(ids: &mut [u32]) -> String {
    ids.sort_unstable();
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for id in ids.iter() {
        context.update(&id.to_le_bytes());
    }
    context.finish().as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The target ratio over DuckDB, by the classes: bitmap-shaped and Q4
/// 100×, aggregates (and the composite Q15, which holds one) 20×, sequences 10×.
fn target(id: &str) -> f64 {
    match &id[..3] {
        "Q05" | "Q06" | "Q07" | "Q08" | "Q14" | "Q15" => 20.0,
        "Q11" | "Q12" => 10.0,
        _ => 100.0,
    }
}

/// The SQL selecting the user ids of query `id`, with `now` in epoch ms. The
/// windows follow the language: `in last D` is `now - D <= ts <= now`,
/// `between T1 and T2` is `T1 <= ts < T2`; events are ordered by (ts, seq).
pub fn sql(id: &str, now: i64) -> String {
    let ago = |days: i64| now - days * DAY_MS;
    let last = |days: i64| format!("ts >= {} AND ts <= {now}", ago(days));
    let q4 = format!(
        "SELECT s.user_id FROM (SELECT user_id FROM events WHERE {} AND event IN ('Product Viewed', 'Charged') \
         GROUP BY user_id HAVING SUM(CASE WHEN event = 'Product Viewed' THEN 1 ELSE 0 END) >= 3 \
         AND SUM(CASE WHEN event = 'Charged' THEN 1 ELSE 0 END) = 0) s \
         JOIN users u ON u.user_id = s.user_id WHERE u.city = 'Delhi'",
        last(7)
    );
    let q7 = format!(
        "SELECT user_id FROM events WHERE event = 'Charged' AND amount IS NOT NULL AND {} \
         GROUP BY user_id HAVING SUM(amount) >= 10000",
        last(30)
    );
    // The first Charged after each cart, in (ts, seq) order.
    let next_charge = format!(
        "SELECT user_id, event, ts, MIN(CASE WHEN event = 'Charged' THEN ts END) OVER \
         (PARTITION BY user_id ORDER BY ts, seq ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING) AS next_charge \
         FROM events WHERE {} AND event IN ('Added To Cart', 'Charged')",
        last(7)
    );
    match &id[..3] {
        "Q01" => format!("SELECT DISTINCT user_id FROM events WHERE event = 'App Launched' AND {}", last(7)),
        "Q02" => "SELECT user_id FROM users WHERE city = 'Delhi' AND platform = 'android' AND push_subscribed = TRUE"
            .to_owned(),
        "Q03" => format!(
            "SELECT user_id FROM events WHERE event = 'Product Viewed' AND {} \
             EXCEPT SELECT user_id FROM events WHERE event = 'Charged' AND {}",
            last(30),
            last(7)
        ),
        "Q04" => q4,
        "Q05" => format!(
            "SELECT DISTINCT user_id FROM events WHERE event = 'Charged' AND amount > 2000 AND {}",
            last(30)
        ),
        "Q06" => format!(
            "SELECT user_id FROM events WHERE event = 'Product Viewed' AND category = 'Shoes' AND {} \
             GROUP BY user_id HAVING COUNT(*) >= 5",
            last(30)
        ),
        "Q07" => q7,
        "Q08" => format!(
            "SELECT user_id FROM events WHERE event = 'Charged' AND amount IS NOT NULL AND {} \
             GROUP BY user_id HAVING AVG(amount) >= 500 AND AVG(amount) <= 2000",
            last(90)
        ),
        "Q09" => format!(
            "SELECT user_id FROM events WHERE event = 'Charged' AND ts <= {now} \
             GROUP BY user_id HAVING MIN(ts) >= {}",
            ago(7)
        ),
        "Q10" => format!(
            "SELECT user_id FROM events WHERE event = 'App Launched' AND ts >= {} AND ts < {} \
             EXCEPT SELECT user_id FROM events WHERE event = 'App Launched' AND {}",
            ago(30),
            ago(7),
            last(7)
        ),
        "Q11" => format!(
            "SELECT DISTINCT user_id FROM ({next_charge}) x \
             WHERE event = 'Added To Cart' AND next_charge <= ts + {HOUR_MS}"
        ),
        "Q12" => format!(
            "SELECT DISTINCT user_id FROM ({next_charge}) x \
             WHERE event = 'Added To Cart' AND ts + {half} <= {now} \
             AND (next_charge IS NULL OR next_charge > ts + {half})",
            half = HOUR_MS / 2
        ),
        "Q13" => (1..=5)
            .map(|d| {
                format!(
                    "SELECT user_id FROM events WHERE event = 'App Launched' AND ts >= {} AND ts < {}",
                    ago(d),
                    ago(d - 1)
                )
            })
            .collect::<Vec<_>>()
            .join(" INTERSECT "),
        "Q14" => format!(
            "SELECT user_id FROM events WHERE event = 'Product Viewed' AND category IS NOT NULL AND {} \
             GROUP BY user_id HAVING COUNT(DISTINCT category) >= 3",
            last(14)
        ),
        "Q15" => format!(
            "SELECT user_id FROM users WHERE push_subscribed = TRUE AND holdout >= 5 \
             AND user_id IN ({q4} UNION {q7}) ORDER BY user_id"
        ),
        other => panic!("no SQL for {other}"),
    }
}

/// Runs the query comparison.
pub fn run(ctx: &Context) -> Result<Part> {
    ingest::ensure_loaded(ctx)?;
    let nudge = nudge_timings(ctx)?;
    let plan: Vec<serde_json::Value> = nudge_benches::SEGMENT_QUERIES
        .iter()
        .map(|(id, _)| {
            serde_json::json!({"id": id, "sql": sql(id, ctx.spec.now_ms), "ids": id.ends_with("_ids")})
        })
        .collect();
    let plan_path = ctx.scale_dir().join("plan.json");
    std::fs::write(&plan_path, serde_json::to_string_pretty(&plan)?)?;
    let mut peers: Vec<(&str, Vec<Timing>)> = Vec::new();
    let peer = |system: &str, extra: &[String]| -> Result<Vec<Timing>> {
        let dir = ctx.scale_dir().display().to_string();
        let plan = plan_path.display().to_string();
        let runs = ctx.args.runs.to_string();
        let mut args = vec!["query", system, "--dir", &dir, "--plan", &plan, "--runs", &runs];
        args.extend(extra.iter().map(String::as_str));
        let timings: Vec<Timing> = serde_json::from_str(&ctx.python("sql_peers.py", &args)?)?;
        Ok(timings)
    };
    peers.push(("DuckDB", peer("duckdb", &[])?));
    if ctx.row_stores() {
        peers.push(("SQLite", peer("sqlite", &[])?));
        let postgres = Postgres::start(&ctx.scale_dir().join("postgres"))?;
        peers.push(("PostgreSQL", peer("postgres", &postgres.script_args())?));
    }
    compare(&nudge, &peers)?;
    Ok(report(ctx, &nudge, &peers))
}

/// Every peer's answer must equal Nudge's: same count, same checksum.
fn compare(nudge: &[Timing], peers: &[(&str, Vec<Timing>)]) -> Result<()> {
    let mut disagreements = Vec::new();
    for (system, timings) in peers {
        for (ours, theirs) in nudge.iter().zip(timings) {
            if ours.id != theirs.id {
                return Err(fail!(
                    "{system} answered {} where {} was expected",
                    theirs.id,
                    ours.id
                ));
            }
            if (ours.count, &ours.checksum) != (theirs.count, &theirs.checksum) {
                disagreements.push(format!(
                    "{}: Nudge {} users ({}), {system} {} users ({})",
                    ours.id, ours.count, ours.checksum, theirs.count, theirs.checksum
                ));
            }
        }
        if timings.len() != nudge.len() {
            return Err(fail!("{system} answered {} of {} queries", timings.len(), nudge.len()));
        }
    }
    if disagreements.is_empty() {
        eprintln!("peers: all {} answers agree across {} peers", nudge.len(), peers.len());
        Ok(())
    } else {
        Err(fail!("answers disagree:\n  {}", disagreements.join("\n  ")))
    }
}

fn nudge_timings(ctx: &Context) -> Result<Vec<Timing>> {
    let options = EngineOptions { snapshot_on_close: false, ..Default::default() };
    let opened = Instant::now();
    let engine = Engine::open(ingest::nudge_dir(ctx), options)?;
    eprintln!(
        "peers: Nudge opened in {:.2} s ({:?}); memory {}",
        opened.elapsed().as_secs_f64(),
        engine.storage_tiers(),
        resident_memory()
    );
    let mut timings = Vec::new();
    for (id, text) in nudge_benches::SEGMENT_QUERIES {
        let list = id.ends_with("_ids");
        let options = QueryOptions {
            now_ms: Some(ctx.spec.now_ms),
            limit: Some(if list { usize::MAX } else { 0 }),
            // Cold first runs at M scale take seconds: measure them, do not stop them.
            deadline_ms: Some(nudge_engine::limits::NO_QUERY_DEADLINE_MS),
            memory_limit_bytes: Some(nudge_engine::limits::NO_QUERY_MEMORY_LIMIT_BYTES),
            ..Default::default()
        };
        let timed = || -> Result<(u64, f64)> {
            let started = Instant::now();
            let answer = engine.query(text, &options)?;
            Ok((answer.count, started.elapsed().as_secs_f64() * 1000.0))
        };
        let (count, cold_ms) = timed()?;
        let all = QueryOptions { limit: Some(usize::MAX), ..options.clone() };
        let answer = engine.query(text, &all)?;
        let mut ids =
            answer.users.iter().map(|u| dataset::numeric_id(u)).collect::<Result<Vec<u32>>>()?;
        if ids.len() as u64 != count {
            return Err(fail!("Nudge {id}: {} ids listed, count says {count}", ids.len()));
        }
        let checksum = checksum(&mut ids);
        timed()?;
        let runs = if ctx.args.check { ctx.args.runs } else { NUDGE_WARM_RUNS.max(ctx.args.runs) };
        let warm_ms = (0..runs).map(|_| timed().map(|t| t.1)).collect::<Result<Vec<f64>>>()?;
        let timing = Timing { id: (*id).to_owned(), count, checksum, cold_ms, warm_ms };
        eprintln!(
            "peers: Nudge {id}: {count} users, cold {:.3} ms, warm median {:.3} ms",
            cold_ms,
            timing.median()
        );
        timings.push(timing);
    }
    eprintln!("peers: Nudge after the queries: memory {}", resident_memory());
    Ok(timings)
}

/// This process's resident memory by kind, from `/proc/self/status`:
/// anonymous (the heap) and file-backed (mapped day files in the page cache).
fn resident_memory() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map_or_else(|| "?".to_owned(), |v| v.trim().to_owned())
    };
    format!("RssAnon {}, RssFile {}", field("RssAnon:"), field("RssFile:"))
}

fn report(ctx: &Context, nudge: &[Timing], peers: &[(&str, Vec<Timing>)]) -> Part {
    use crate::report::duration;
    let mut markdown = format!(
        "### Segment queries ({} scale, warm median and p99; answers checked equal)\n\n| query | users |",
        ctx.args.scale.name()
    );
    let mut rule = String::from("|---|---:|");
    for name in std::iter::once("Nudge").chain(peers.iter().map(|(n, _)| *n)) {
        markdown.push_str(&format!(" {name} |"));
        rule.push_str("---:|");
    }
    for (name, _) in peers {
        markdown.push_str(&format!(" ÷ {name} |"));
        rule.push_str("---:|");
    }
    markdown.push_str(&format!(" target ÷ DuckDB |\n{rule}---:|\n"));
    let mut ratios = Vec::new();
    for (i, ours) in nudge.iter().enumerate() {
        let short = &ours.id[..3];
        markdown.push_str(&format!(
            "| {} | {} | {} (p99 {}) |",
            ours.id,
            ours.count,
            duration(ours.median()),
            duration(ours.p99())
        ));
        for (_, timings) in peers {
            let theirs = &timings[i];
            markdown.push_str(&format!(
                " {} (p99 {}) |",
                duration(theirs.median()),
                duration(theirs.p99())
            ));
        }
        for (name, timings) in peers {
            let times = timings[i].median() / ours.median();
            markdown.push_str(&format!(" {} |", crate::report::times(times)));
            ratios.push(Ratio {
                measure: short.to_owned(),
                peer: (*name).to_owned(),
                times,
                target: (*name == "DuckDB").then(|| target(&ours.id)),
            });
        }
        markdown.push_str(&format!(" {}× |\n", target(&ours.id)));
    }
    markdown.push_str("\nCold: the first run of each query after opening (a fresh engine, a fresh connection).\n\n| query |");
    let mut rule = String::from("|---|");
    for name in std::iter::once("Nudge").chain(peers.iter().map(|(n, _)| *n)) {
        markdown.push_str(&format!(" {name} |"));
        rule.push_str("---:|");
    }
    markdown.push_str(&format!("\n{rule}\n"));
    for (i, ours) in nudge.iter().enumerate() {
        markdown.push_str(&format!("| {} | {} |", &ours.id[..3], duration(ours.cold_ms)));
        for (_, timings) in peers {
            markdown.push_str(&format!(" {} |", duration(timings[i].cold_ms)));
        }
        markdown.push('\n');
    }
    Part { markdown, ratios }
}

//! Exports the generated dataset once per scale, as CSV files every peer loads
//! (`users.csv`, `events.csv`), so all systems hold identical data and share one
//! `now`. The Nudge side ingests the same records straight from the generator.
//!
//! Ids: `user_id` is the 32-bit number inside the external id `u_xxxxxxxx`
//! (a bijection), so an answer's user set reads the same in every system.
//! `seq` is the arrival order, the tie-break of equal timestamps in Nudge.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use nudge_engine::dataset;
use nudge_engine::{Record, Value};

use crate::context::{Context, Result};
use crate::fail;

/// The exported files of a scale.
#[derive(Debug, Clone)]
pub struct Exported {
    /// `user_id,city,country,platform,language,acquisition_source,signup,ltv,age,timezone,push_subscribed,holdout`
    pub users_csv: PathBuf,
    /// `user_id,seq,ts,event,category,amount,product_id,payment_mode`, in arrival order.
    pub events_csv: PathBuf,
    /// Number of event rows.
    pub events: u64,
}

/// The exported dataset of the context's scale.
pub fn exported(ctx: &Context) -> Result<Exported> {
    let dir = ctx.scale_dir();
    let events = std::fs::read_to_string(dir.join("events.count"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| fail!("the dataset of {} is not exported", dir.display()))?;
    Ok(Exported { users_csv: dir.join("users.csv"), events_csv: dir.join("events.csv"), events })
}

/// The dataset number of an external user id `u_xxxxxxxx`.
pub fn numeric_id(external: &str) -> Result<u32> {
    external
        .strip_prefix("u_")
        .and_then(|hex| u32::from_str_radix(hex, 16).ok())
        .ok_or_else(|| fail!("unexpected user id {external:?}"))
}

/// Writes the CSV files unless this scale's export is already complete.
pub fn export(ctx: &Context) -> Result<()> {
    let dir = ctx.scale_dir();
    let marker = dir.join("events.count");
    if marker.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(&dir)?;
    eprintln!("peers: exporting the {} dataset to {}", ctx.args.scale.name(), dir.display());
    let started = std::time::Instant::now();
    let mut users = BufWriter::with_capacity(1 << 20, File::create(dir.join("users.csv"))?);
    let mut events = BufWriter::with_capacity(1 << 20, File::create(dir.join("events.csv"))?);
    writeln!(
        users,
        "user_id,city,country,platform,language,acquisition_source,signup,ltv,age,timezone,push_subscribed,holdout"
    )?;
    writeln!(events, "user_id,seq,ts,event,category,amount,product_id,payment_mode")?;
    let mut seq: u64 = 0;
    for record in dataset::records(ctx.spec) {
        match record {
            Record::Profile(update) => {
                let id = numeric_id(&update.user_id)?;
                let get = |name: &str| update.set.iter().find(|(k, _)| k == name).map(|(_, v)| v);
                write!(users, "{id}")?;
                for name in [
                    "city",
                    "country",
                    "platform",
                    "language",
                    "acquisition_source",
                    "signup",
                    "ltv",
                    "age",
                    "timezone",
                    "push_subscribed",
                    "holdout",
                ] {
                    write!(users, ",{}", csv_value(get(name)))?;
                }
                writeln!(users)?;
            }
            Record::Event(event) => {
                let id = numeric_id(&event.user_id)?;
                let ts = event.ts_ms.ok_or_else(|| fail!("generated event without a time"))?;
                let prop = |name: &str| {
                    csv_value(event.props.iter().find(|(k, _)| k == name).map(|(_, v)| v))
                };
                writeln!(
                    events,
                    "{id},{seq},{ts},{},{},{},{},{}",
                    csv_text(&event.name),
                    prop("category"),
                    prop("amount"),
                    prop("product_id"),
                    prop("payment_mode"),
                )?;
                seq += 1;
            }
            _ => {}
        }
    }
    users.flush()?;
    events.flush()?;
    users.get_ref().sync_all()?;
    events.get_ref().sync_all()?;
    std::fs::write(&marker, seq.to_string())?;
    eprintln!("peers: exported {seq} events in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// A CSV field: empty for a missing value (NULL to every loader).
fn csv_value(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Array(_)) => String::new(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => csv_text(s),
    }
}

fn csv_text(text: &str) -> String {
    if text.contains([',', '"', '\n']) || text.is_empty() {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

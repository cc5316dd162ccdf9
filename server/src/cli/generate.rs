//! `nudge gen`: writes the deterministic synthetic dataset of
//! `nudge_engine::dataset` to standard output as NDJSON records
//! ([`crate::json::ndjson::encode`]), in the format `nudge import` reads.

use std::io::{BufWriter, Write};

use nudge_engine::dataset::{self, DatasetSpec};

use crate::error::{Error, Result};
use crate::json::{self, ndjson};

/// Writes `users` users over `days` days of history, seeded by `seed`, ending at
/// `now` (RFC 3339 or epoch ms; the generator's default end when `None`).
pub fn run(users: u64, days: u32, seed: u64, now: Option<String>) -> Result<()> {
    let mut spec = DatasetSpec { users, days, seed, ..DatasetSpec::new(users) };
    if let Some(text) = now {
        spec.now_ms =
            json::parse_timestamp_text(&text).map_err(|e| Error::Usage(format!("--now: {e}")))?;
    }
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
    let io =
        |e: std::io::Error| Error::Io { context: "writing to standard output".into(), source: e };
    for record in dataset::records(spec) {
        serde_json::to_writer(&mut out, &ndjson::encode(&record)).map_err(|e| io(e.into()))?;
        out.write_all(b"\n").map_err(io)?;
    }
    out.flush().map_err(io)
}

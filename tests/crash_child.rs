//! Child process of the kill -9 test (`tests/crash.rs`): ingests numbered
//! batches into a data directory and prints `ready` once open, then `ack N` after each acknowledged
//! batch, until it is killed.
//!
//! Usage: `nudge-crash-child DATA_DIR FIRST_BATCH`. Batch N holds
//! [`nudge_tests::CRASH_BATCH_EVENTS`] events of user `bN`, all in one record,
//! so a batch is either wholly present after recovery or wholly absent.
//! After every fifth batch it seals the day of an earlier batch
//! (`Engine::seal_day`), so kills also land while a day file is written, and
//! later batches add late rows to sealed days (their next versions).

use std::io::Write;

use nudge_engine::{Engine, EngineOptions};

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(first)) = (args.next(), args.next().and_then(|n| n.parse::<u64>().ok()))
    else {
        eprintln!("usage: nudge-crash-child DATA_DIR FIRST_BATCH");
        std::process::exit(2);
    };
    let options = EngineOptions { snapshot_on_close: false, ..Default::default() };
    let engine = match Engine::open(&dir, options) {
        Ok(engine) => engine,
        Err(error) => {
            eprintln!("open failed: {error}");
            std::process::exit(3);
        }
    };
    let stdout = std::io::stdout();
    {
        let mut out = stdout.lock();
        let _ = writeln!(out, "ready");
        let _ = out.flush();
    }
    for batch in first.. {
        match engine.ingest(nudge_tests::crash_batch(batch)) {
            Ok(_) => {
                {
                    let mut out = stdout.lock();
                    let _ = writeln!(out, "ack {batch}");
                    let _ = out.flush();
                }
                if batch % 5 == 4
                    && let Err(error) = engine.seal_day(nudge_tests::crash_batch_day(batch + 3))
                {
                    eprintln!("sealing failed: {error}");
                    std::process::exit(5);
                }
            }
            Err(error) => {
                eprintln!("ingest failed: {error}");
                std::process::exit(4);
            }
        }
    }
}

//! Child process of the fire crash test (`tests/fire_crash.rs`): saves the
//! trigger `on "Ping"` if needed, then ingests one `Ping` of user `pN` at a
//! time and decides the fires due, printing `ack N` after each ingest and
//! `fired USER FIRE_ID` after each decided fire, until it is killed.
//!
//! Usage: `nudge-fire-child DATA_DIR FIRST`.

use std::io::Write;

use nudge_engine::FireOutcome;
use nudge_engine::{Engine, EngineOptions, Event};

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(first)) = (args.next(), args.next().and_then(|n| n.parse::<u64>().ok()))
    else {
        eprintln!("usage: nudge-fire-child DATA_DIR FIRST");
        std::process::exit(2);
    };
    let engine = match Engine::open(
        &dir,
        EngineOptions { snapshot_on_close: false, ..Default::default() },
    ) {
        Ok(engine) => engine,
        Err(error) => {
            eprintln!("open failed: {error}");
            std::process::exit(3);
        }
    };
    if engine.triggers().is_empty()
        && let Err(error) = engine.save_trigger("ping", r#"on "Ping""#)
    {
        eprintln!("save failed: {error}");
        std::process::exit(4);
    }
    let say = |line: String| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    for n in first.. {
        if let Err(error) = engine.ingest(vec![Event::new(format!("p{n}"), "Ping").into()]) {
            eprintln!("ingest failed: {error}");
            std::process::exit(5);
        }
        say(format!("ack {n}"));
        match engine.fire_due() {
            Ok(fires) => {
                for fire in fires.iter().filter(|f| f.outcome == FireOutcome::Fired) {
                    say(format!("fired {} {}", fire.user_id, fire.id()));
                }
            }
            Err(error) => {
                eprintln!("fire_due failed: {error}");
                std::process::exit(6);
            }
        }
    }
}

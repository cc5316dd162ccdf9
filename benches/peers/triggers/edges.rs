//! The boundary cases of `unless`, run through both systems before the
//! dataset is: a small hand-written stream whose fires are worked out by hand
//! from the engine's rules (`engine/src/rules/mod.rs`, `on_event`), so the
//! Redis consumer is shown to match them where the dataset rarely goes.

use std::io::Write;

use super::*;

/// A tick-aligned base time for the cases (2026-11-01T00:00:00Z).
const BASE_MS: i64 = 1_793_491_200_000;
const _: () = assert!(BASE_MS % TICK_MS == 0 && WITHIN_MS % TICK_MS == 0);

/// (user, ms after BASE_MS, cart?); `seq` is the position, so of two events
/// at the same ms the one listed first arrives first. Ticks are 1 min, the
/// window 10 min: a fire due at 10:00 is decided before the tick at 11:00.
const CASES: [(u32, i64, bool); 17] = [
    // A charge at exactly the deadline (cart + 10m) cancels: the window is closed.
    (1, 0, true),
    (1, WITHIN_MS, false),
    // A charge 1 ms after the deadline, in the tick the fire falls due, cancels nothing.
    (2, 0, true),
    (2, WITHIN_MS + 1, false),
    // A charge at the cart's own ms, arriving after it, cancels.
    (3, 1_000, true),
    (3, 1_000, false),
    // A charge at the cart's own ms, arriving before it, cancels nothing.
    (4, 2_000, false),
    (4, 2_000, true),
    // A second cart while one is pending starts nothing.
    (5, 3_000, true),
    (5, 4_000, true),
    // A cart after the deadline but before the fire is decided (the same tick)
    // starts nothing; a cart in a later tick starts a new one.
    (6, 5_000, true),
    (6, WITHIN_MS + 5_500, true),
    (6, WITHIN_MS + 100_000, true),
    // A charge 1 ms before the deadline cancels.
    (7, 10_000, true),
    (7, WITHIN_MS + 9_999, false),
    // The fire is decided before the next tick's charge, which cancels nothing.
    (8, 20_000, true),
    (8, WITHIN_MS + 60_000, false),
];

/// The fires the cases must give: (user, due ms after BASE_MS).
const EXPECTED: [(u32, i64); 6] = [
    (2, WITHIN_MS),
    (4, 2_000 + WITHIN_MS),
    (5, 3_000 + WITHIN_MS),
    (6, 5_000 + WITHIN_MS),
    (6, WITHIN_MS + 100_000 + WITHIN_MS),
    (8, 20_000 + WITHIN_MS),
];

/// Runs the cases through Nudge and through Redis (every server); fails on any difference.
pub(super) fn check(ctx: &Context, servers: &[&RedisServer], dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let csv = dir.join("edges.csv");
    let mut out = std::io::BufWriter::new(File::create(&csv)?);
    writeln!(out, "user_id,seq,ts,event,category,amount,product_id,payment_mode")?;
    let mut rows: Vec<(i64, usize, u32, bool)> = CASES
        .iter()
        .enumerate()
        .map(|(seq, &(user, at, cart))| (BASE_MS + at, seq, user, cart))
        .collect();
    rows.sort_unstable_by_key(|&(ts, seq, ..)| (ts, seq));
    for (ts, seq, user, cart) in rows {
        writeln!(out, "{user},{seq},{ts},{},,,,", if cart { CART } else { CHARGED })?;
    }
    out.flush()?;
    drop(out);
    let expected: Vec<(u32, i64)> = EXPECTED.iter().map(|&(u, at)| (u, BASE_MS + at)).collect();
    let stream = load(&csv)?;
    let nudge = nudge_simulated(&dir.join("nudge"), &stream, Durability::SyncPerBatch)?;
    compare("boundary cases", "Nudge", &nudge.fires, "the worked answer", &expected)?;
    let (runs, _) = redis_simulated(ctx, servers, &csv, dir)?;
    for run in runs {
        compare("boundary cases", "Redis", &run.fires, "the worked answer", &expected)?;
    }
    Ok(())
}

//! A live trigger with the fire loop: "added to cart and did not buy within
//! 10 minutes". The clock is a `ManualClock`, so the example moves time
//! itself; a `FireLoop` thread decides the fire when it falls due and hands
//! it to a closure.
//!
//! Run with `cargo run -p nudge-engine --example live_trigger`.

use std::sync::Arc;
use std::time::Duration;

use nudge_engine::clock::{Clock, ManualClock};
use nudge_engine::{Engine, EngineOptions, Event, FireLoop, FireOutcome};

const MINUTE_MS: i64 = 60_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::new(1_767_225_600_000); // 2026-01-01T00:00:00Z
    let options = EngineOptions { clock: Arc::new(clock.clone()), ..EngineOptions::default() };
    let engine = Arc::new(Engine::open(dir.path(), options)?);
    engine.save_trigger("cart", r#"on "Added To Cart" unless "Charged" within 10m"#)?;

    let (fired_tx, fired_rx) = crossbeam_channel::unbounded();
    let _fires = FireLoop::spawn(
        Arc::clone(&engine),
        move |fires| fires.into_iter().for_each(|fire| drop(fired_tx.send(fire))),
        |error| eprintln!("deciding fires failed: {error}"),
    )?;

    let now = clock.now_ms();
    engine.ingest(vec![
        Event::new("ann", "Added To Cart").at(now).prop("cart_id", "c1").into(),
        Event::new("bob", "Added To Cart").at(now).prop("cart_id", "c2").into(),
    ])?;
    // Bob pays within the 10 minutes: his fire is cancelled.
    clock.set(now + 3 * MINUTE_MS);
    engine.ingest(vec![Event::new("bob", "Charged").at(clock.now_ms()).into()])?;
    println!("pending fires after bob paid: {}", engine.pending_fires());

    // Ten minutes after ann's cart, the loop decides her fire.
    clock.set(now + 10 * MINUTE_MS);
    let fire = fired_rx.recv_timeout(Duration::from_secs(5))?;
    assert_eq!((fire.user_id.as_str(), fire.outcome), ("ann", FireOutcome::Fired));
    println!("fired {} for {} (fire id {})", fire.trigger, fire.user_id, fire.id());
    Ok(())
}

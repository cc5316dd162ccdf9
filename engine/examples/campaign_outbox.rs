//! A live campaign whose outbox is drained by a closure standing in for a
//! sender. This is how the server uses the library: `fire_due` decides and
//! queues messages durably, and an `OutboxLoop` hands due items to a sender
//! that reports what became of each one.
//!
//! Run with `cargo run -p nudge-engine --example campaign_outbox`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nudge_engine::campaign::{Attempt, Campaign, Message, Target};
use nudge_engine::clock::{Clock, ManualClock};
use nudge_engine::{Engine, EngineOptions, Event, OutboxLoop, Record, Subscription};

const MINUTE_MS: i64 = 60_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::new(1_767_261_600_000); // 2026-01-01T10:00:00Z
    let options = EngineOptions { clock: Arc::new(clock.clone()), ..EngineOptions::default() };
    let engine = Arc::new(Engine::open(dir.path(), options)?);

    engine.save_campaign(Campaign {
        id: "cart".into(),
        name: "Cart reminder".into(),
        trigger: Some(r#"on "Added To Cart" unless "Charged" within 10m"#.into()),
        message: Message {
            title: "Still thinking about {{ event.item }}?".into(),
            body: "Your cart is waiting, {{ user.first_name | default('there') }}.".into(),
            ..Message::default()
        },
        ..Campaign::default()
    })?;
    let subscription = Subscription {
        endpoint: "https://push.example/ann".into(),
        p256dh: "BExamplePublicKey".into(),
        auth: "ExampleAuth".into(),
    };
    let now = clock.now_ms();
    engine.ingest(vec![
        Record::Subscribe { user_id: "ann".into(), subscription },
        Event::new("ann", "Added To Cart").at(now).prop("item", "red shoes").into(),
    ])?;

    // Ten minutes later the fire is decided and its message queued, in one batch.
    clock.set(now + 10 * MINUTE_MS);
    let fires = engine.fire_due()?;
    println!("fired: {:?}, queued: {}", fires.first().map(|f| &f.trigger), engine.outbox_len());

    // The "sender": prints each message and reports it delivered.
    let _sending = OutboxLoop::spawn(
        Arc::clone(&engine),
        |items, reports| {
            for item in items {
                if let Target::WebPush { endpoint, .. } = &item.target {
                    println!("send to {endpoint}: {:?}", item.notification.title);
                }
                reports.report(item.id, Attempt::Delivered { status: 201 });
            }
        },
        |error| eprintln!("outbox failed: {error}"),
    )?;
    let started = Instant::now();
    while engine.outbox_len() > 0 && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(engine.outbox_len(), 0, "every message was sent and reported");
    let stats = engine.campaign_stats("cart")?.ok_or("no stats")?;
    println!("sent {}, delivered {}", stats.sent, stats.delivered);
    Ok(())
}

//! What's measured: how soon fires are decided on the wall clock, through
//! `FireLoop` (the thread the server runs), with durable fire records
//! (one fdatasync per decision batch).
//!
//! - Decision latency: `on "Ping"`; one event is ingested at a time, and the
//!   time from `ingest` returning to the fire reaching the sink is taken, 1000 times.
//! - Timer lateness: `on "Book" at at + 0s`, with `at` spread over the next
//!   3 s for 2000 events; lateness is when the fire reaches the sink minus
//!   its due time.
//! - Campaign latency: a live campaign `on "Cart"` with templates, for users
//!   with a push subscription; the time from `ingest` returning to the
//!   rendered message reaching the sender through the outbox (`OutboxLoop`),
//!   1000 times. That includes the fire, the delivery decision and its
//!   records (one batch, one fdatasync) and the claim.
//!
//! Run with: `cargo bench -p nudge-benches --bench fire_loop`

#![allow(missing_docs)]

use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mimalloc::MiMalloc;
use nudge_engine::OutboxLoop;
use nudge_engine::campaign::Attempt;
use nudge_engine::campaign::{Campaign, Message};
use nudge_engine::clock::{Clock, SystemClock};
use nudge_engine::{Engine, EngineOptions, Event, FireLoop, Record, Subscription};

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    nudge_benches::percentile(sorted, p).unwrap_or(f64::NAN)
}

fn report(what: &str, unit: &str, mut values: Vec<f64>) {
    values.sort_by(f64::total_cmp);
    println!(
        "{what}: p50 {:.3} {unit}, p99 {:.3} {unit}, max {:.3} {unit} ({} samples)",
        percentile(&values, 0.5),
        percentile(&values, 0.99),
        values[values.len() - 1],
        values.len()
    );
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Arc::new(
        Engine::open(dir.path(), EngineOptions { snapshot_on_close: false, ..Default::default() })
            .expect("open"),
    );
    engine.save_trigger("ping", r#"on "Ping""#).expect("save");
    engine.save_trigger("book", r#"on "Book" at at + 0s"#).expect("save");
    let (tx, rx) = mpsc::channel();
    let fires = FireLoop::spawn(
        Arc::clone(&engine),
        move |fires| {
            let (at, wall) = (Instant::now(), SystemClock.now_ms());
            let _ = tx.send((at, wall, fires));
        },
        |e| eprintln!("fire loop: {e}"),
    )
    .expect("fire loop");

    let mut latencies = Vec::new();
    for i in 0..1000 {
        engine.ingest(vec![Event::new(format!("p{i}"), "Ping").into()]).expect("ingest");
        let ingested = Instant::now();
        let (at, _, batch) = rx.recv_timeout(Duration::from_secs(5)).expect("a fire");
        assert_eq!(batch.len(), 1);
        latencies.push(at.saturating_duration_since(ingested).as_secs_f64() * 1000.0);
    }
    report("decision latency (ingest returned → fire in the sink)", "ms", latencies);

    let now = SystemClock.now_ms();
    let records = (0..2000)
        .map(|i| {
            Event::new(format!("b{i}"), "Book")
                .prop("at", now + 200 + (i * 3000 / 2000) as i64)
                .into()
        })
        .collect();
    engine.ingest(records).expect("ingest");
    let mut lateness = Vec::new();
    while lateness.len() < 2000 {
        let (_, wall, batch) = rx.recv_timeout(Duration::from_secs(10)).expect("fires");
        lateness.extend(batch.iter().map(|f| (wall - f.due_ms) as f64));
    }
    report("timer lateness (fire in the sink − due time)", "ms", lateness);

    let subscribe = |i: usize| Record::Subscribe {
        user_id: format!("c{i}"),
        subscription: Subscription {
            endpoint: format!("https://push.example/c{i}"),
            p256dh: "k".into(),
            auth: "a".into(),
        },
    };
    engine.ingest((0..1000).map(subscribe).collect()).expect("subscribe");
    let cart = Campaign {
        id: "cart".into(),
        name: "Cart".into(),
        trigger: Some(r#"on "Cart""#.into()),
        message: Message {
            title: "Still thinking about {{ event.product }}?".into(),
            body: "Hi {{ user.first_name | default('there') }}".into(),
            url: Some("https://shop.example/cart/{{ event.cart_id }}".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    engine.save_campaign(cart).expect("campaign");
    let (sent_tx, sent_rx) = mpsc::channel();
    let sender = OutboxLoop::spawn(
        Arc::clone(&engine),
        move |items, reports| {
            let at = Instant::now();
            for item in &items {
                reports.report(item.id, Attempt::Delivered { status: 201 });
            }
            let _ = sent_tx.send((at, items.len()));
        },
        |e| eprintln!("outbox loop: {e}"),
    )
    .expect("outbox loop");
    let mut to_sender = Vec::new();
    for i in 0..1000 {
        let event =
            Event::new(format!("c{i}"), "Cart").prop("product", "shoes").prop("cart_id", "c9");
        engine.ingest(vec![event.into()]).expect("ingest");
        let ingested = Instant::now();
        let (at, items) = sent_rx.recv_timeout(Duration::from_secs(5)).expect("a send");
        assert_eq!(items, 1);
        to_sender.push(at.saturating_duration_since(ingested).as_secs_f64() * 1000.0);
        while rx.try_recv().is_ok() {}
    }
    report("campaign latency (ingest returned → rendered message at the sender)", "ms", to_sender);
    drop(sender);
    drop(fires);
}

//! The outbox's sending pipeline (`OutboxLoop`) on a manual clock: items in
//! flight are bounded and places come free as reports are recorded, answers
//! given later from another thread are all recorded, an item whose answer is
//! lost is sent again after its lease, and dropping the loop records the
//! answers still in flight.

mod common;

use std::time::{Duration, Instant};

use common::NOW;
use crossbeam_channel::Receiver;
use nudge_engine::campaign::{Attempt, OUTBOX_LEASE_MS, OutboxItem};
use nudge_engine::campaign::{Campaign, Message};
use nudge_engine::clock::ManualClock;
use nudge_engine::{Engine, Event, QueryOptions, Record, Subscription};
use nudge_engine::{MAX_ITEMS_IN_FLIGHT, OutboxLoop, OutboxReports};

/// Longest wait for something the loop should do promptly.
const PROMPTLY: Duration = Duration::from_secs(10);
/// How long the test watches for something that must not happen.
const QUIET: Duration = Duration::from_millis(300);

fn setup(dir: &std::path::Path, clock: &ManualClock, users: usize) -> std::sync::Arc<Engine> {
    let engine = std::sync::Arc::new(common::open(dir, clock));
    let subscriptions = (0..users)
        .map(|u| Record::Subscribe {
            user_id: format!("u{u}"),
            subscription: Subscription {
                endpoint: format!("https://push.example/{u}"),
                p256dh: "k".into(),
                auth: "a".into(),
            },
        })
        .collect();
    engine.ingest(subscriptions).expect("subscribe");
    engine
        .save_campaign(Campaign {
            id: "c".into(),
            name: "c".into(),
            trigger: Some(r#"on "A""#.into()),
            message: Message { title: "hi".into(), body: "there".into(), ..Default::default() },
            ..Default::default()
        })
        .expect("campaign");
    engine
}

/// One "A" for each of the first `users`, decided: one queued push each.
fn queue(engine: &Engine, users: usize) {
    let now = engine.clock().now_ms();
    let events = (0..users).map(|u| Event::new(format!("u{u}"), "A").at(now).into()).collect();
    engine.ingest(events).expect("events");
    engine.fire_due().expect("fire");
}

/// An engine in a temporary directory on a manual clock at [`NOW`], with one
/// queued push for each of `users` subscribed users.
fn queued(users: usize) -> (tempfile::TempDir, ManualClock, std::sync::Arc<Engine>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(NOW);
    let engine = setup(dir.path(), &clock, users);
    queue(&engine, users);
    (dir, clock, engine)
}

/// A loop whose sender only passes the claimed items (and where to answer
/// them) to the test.
fn passing_loop(
    engine: &std::sync::Arc<Engine>,
) -> (OutboxLoop, Receiver<(OutboxItem, OutboxReports)>) {
    let (claimed, handed) = crossbeam_channel::unbounded();
    let running = OutboxLoop::spawn(
        engine.clone(),
        move |items, reports| {
            for item in items {
                let _ = claimed.send((item, reports.clone()));
            }
        },
        |e| panic!("outbox loop: {e}"),
    )
    .expect("spawn");
    (running, handed)
}

fn take(
    handed: &Receiver<(OutboxItem, OutboxReports)>,
    n: usize,
) -> Vec<(OutboxItem, OutboxReports)> {
    (0..n)
        .map(|i| {
            handed.recv_timeout(PROMPTLY).unwrap_or_else(|_| panic!("item {i} of {n} was not sent"))
        })
        .collect()
}

fn delivered_count(engine: &Engine) -> u64 {
    let options = QueryOptions { now_ms: Some(engine.clock().now_ms()), ..Default::default() };
    engine.query(r#"did "$push_delivered""#, &options).expect("query").count
}

fn wait_until(what: &str, done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < PROMPTLY, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn items_in_flight_are_bounded_and_late_answers_from_other_threads_are_all_recorded() {
    let users = MAX_ITEMS_IN_FLIGHT + 1000;
    let (_dir, _clock, engine) = queued(users);
    assert_eq!(engine.outbox_len(), users);

    let (running, handed) = passing_loop(&engine);
    let first = take(&handed, MAX_ITEMS_IN_FLIGHT);
    assert!(handed.recv_timeout(QUIET).is_err(), "no more than {MAX_ITEMS_IN_FLIGHT} in flight");
    assert_eq!(engine.outbox_leased(), MAX_ITEMS_IN_FLIGHT);

    // Answer the first half from another thread: that many places come free.
    let half = MAX_ITEMS_IN_FLIGHT / 2;
    let (answer_now, answer_later) = first.split_at(half);
    let answered = answer_now.to_vec();
    std::thread::spawn(move || {
        for (item, reports) in answered {
            reports.report(item.id, Attempt::Delivered { status: 201 });
        }
    })
    .join()
    .expect("answering thread");
    let rest = take(&handed, 1000);
    assert!(handed.recv_timeout(QUIET).is_err(), "every item was handed out once");
    for (item, reports) in answer_later.iter().chain(&rest) {
        reports.report(item.id, Attempt::Delivered { status: 201 });
    }
    wait_until("the outbox is empty and nothing is leased", || {
        engine.outbox_len() == 0 && engine.outbox_leased() == 0
    });
    assert_eq!(delivered_count(&engine), users as u64, "one $push_delivered per user");
    drop(running);
}

#[test]
fn an_item_whose_answer_is_lost_is_sent_again_after_its_lease() {
    let (_dir, clock, engine) = queued(3);
    let (running, handed) = passing_loop(&engine);
    let first = take(&handed, 3);
    for (item, reports) in &first[..2] {
        reports.report(item.id, Attempt::Delivered { status: 201 });
    }
    // The third answer never comes (a lost task); nothing is sent twice
    // while its lease runs.
    wait_until("two reports are recorded", || engine.outbox_len() == 1);
    assert!(handed.recv_timeout(QUIET).is_err(), "not sent again within its lease");
    clock.advance(OUTBOX_LEASE_MS + 1);
    let again = take(&handed, 1);
    assert_eq!(again[0].0.delivery_id, first[2].0.delivery_id, "the lost item, again");
    again[0].1.report(again[0].0.id, Attempt::Delivered { status: 201 });
    wait_until("the outbox is empty", || engine.outbox_len() == 0);
    assert_eq!(delivered_count(&engine), 3);
    drop(running);
}

#[test]
fn dropping_the_loop_records_the_answers_still_in_flight() {
    let (_dir, _clock, engine) = queued(50);
    let (running, handed) = passing_loop(&engine);
    let in_flight = take(&handed, 50);
    let answering = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        for (item, reports) in in_flight {
            reports.report(
                item.id,
                Attempt::Failed { status: Some(400), reason: "bad".into(), unsubscribe: false },
            );
        }
    });
    drop(running);
    assert_eq!(engine.outbox_len(), 0, "every answer given within the grace is recorded");
    answering.join().expect("answering thread");
    let options = QueryOptions { now_ms: Some(NOW), ..Default::default() };
    assert_eq!(engine.query(r#"did "$push_failed""#, &options).expect("query").count, 50);
}

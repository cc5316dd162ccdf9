//! Kill -9 harness over the real `nudge serve` under ingest and campaign load.
//!
//! A live campaign (`on "Added To Cart" unless "Charged" within 1s`) pushes to
//! a loopback push service. A client thread keeps sending batches over HTTP:
//! each batch subscribes six new users, then adds a cart for all six and a
//! purchase for two of them, in one request with idempotency ids. The server
//! is killed with SIGKILL at a random moment (one cycle in twenty it is
//! stopped with SIGTERM instead, so later cycles replay from a snapshot plus a
//! tail) and restarted on the same data directory. Each answer is kept in
//! Jepsen's three kinds: acknowledged (2xx), refused (4xx/5xx) and unknown
//! (the connection broke).
//!
//! What must hold, checked along the way and at the end:
//! - every acknowledged batch is present: sending it again is answered as all
//!   duplicates; an unknown batch is wholly present or wholly absent;
//! - the state a restart derives (snapshot plus tail) equals a full replay of
//!   the log, every ten cycles and at the end;
//! - pending timers survive: every acknowledged cart of a user who did not buy
//!   is pushed in the end, even when the kill came before its timer was due;
//! - nothing fires twice: at most one fire record per user, and every push a
//!   user gets carries one and the same delivery id (at-least-once sending
//!   may repeat that delivery after a crash; the browser shows it once, by tag);
//!   buyers get nothing.
//!
//! `NUDGE_SERVE_CRASH_CYCLES` sets the number of cycles (default 200, the CI
//! size) and `NUDGE_SERVE_CRASH_SEED` the seed of the kill times.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nudge_engine::{Engine, EngineOptions, TRIGGER_FIRED_EVENT};
use nudge_tests::server::{
    BrowserKeys, NudgeServer, Receiver, TEST_ADMIN_KEY, TEST_WRITE_KEY, call,
};
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// Users a batch adds carts for; the first [`BUYERS_PER_BATCH`] also buy.
const USERS_PER_BATCH: usize = 6;
/// Users of a batch who buy right after their cart (no push is due to them).
const BUYERS_PER_BATCH: usize = 2;
/// One cycle in this many ends with SIGTERM (a snapshot) instead of SIGKILL.
const CLEAN_STOP_EVERY: u64 = 20;
/// Snapshot-plus-tail is compared with a full replay every this many cycles.
const REPLAY_CHECK_EVERY: u64 = 10;
/// How long the end waits for every due push.
const PUSH_WAIT: Duration = Duration::from_secs(60);
/// Longest time one client request may take before it counts as unknown.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What became of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Acked,
    Refused,
    Unknown,
}

fn user(batch: u64, i: usize) -> String {
    if i < BUYERS_PER_BATCH { format!("buyer-{batch}-{i}") } else { format!("waverer-{batch}-{i}") }
}

fn batch_events(batch: u64) -> Value {
    let mut events = Vec::new();
    for i in 0..USERS_PER_BATCH {
        let user = user(batch, i);
        events.push(json!({"user_id": user, "name": "Added To Cart", "id": format!("cart-{user}"),
            "props": {"cart_id": format!("c-{user}")}}));
        if i < BUYERS_PER_BATCH {
            events.push(json!({"user_id": user, "name": "Charged", "id": format!("charge-{user}"),
                "props": {"amount": 10}}));
        }
    }
    Value::Array(events)
}

/// One request that reports a broken connection instead of panicking.
fn try_call(agent: &ureq::Agent, method: &str, url: &str, body: &Value) -> Result<u16, String> {
    match agent
        .request(method, url)
        .set("Authorization", &format!("Bearer {TEST_WRITE_KEY}"))
        .send_string(&body.to_string())
    {
        Ok(response) => Ok(response.status()),
        Err(ureq::Error::Status(status, _)) => Ok(status),
        Err(e) => Err(e.to_string()),
    }
}

/// Sends batches from `first` on until the server goes away or `stop` is
/// set; records each batch's outcome. Subscriptions come first, so a user
/// whose cart is stored always has somewhere to be pushed.
fn load(
    base: String,
    endpoint_base: String,
    keys: Arc<BrowserKeys>,
    first: u64,
    stop: Arc<AtomicBool>,
    outcomes: Arc<Mutex<BTreeMap<u64, Outcome>>>,
) {
    let agent = ureq::AgentBuilder::new().timeout(REQUEST_TIMEOUT).build();
    let mut batch = first;
    while !stop.load(Ordering::Relaxed) {
        for i in 0..USERS_PER_BATCH {
            let user = user(batch, i);
            let body = json!({"user_id": user,
                "subscription": keys.subscription(&format!("{endpoint_base}/push/{user}"))});
            match try_call(&agent, "POST", &format!("{base}/v1/subscriptions"), &body) {
                Ok(200) => {}
                Ok(status) => panic!("subscribing {user}: status {status}"),
                Err(_) => return,
            }
        }
        let outcome =
            match try_call(&agent, "POST", &format!("{base}/v1/events"), &batch_events(batch)) {
                Ok(200) => Outcome::Acked,
                Ok(_) => Outcome::Refused,
                Err(_) => Outcome::Unknown,
            };
        outcomes.lock().unwrap().insert(batch, outcome);
        if outcome != Outcome::Acked {
            return;
        }
        batch += 1;
    }
}

fn define_campaign(server: &NudgeServer) {
    let campaign = json!({
        "name": "Cart rescue under crashes",
        "trigger": "on \"Added To Cart\" unless \"Charged\" within 1s",
        "message": {"title": "Your cart {{ event.cart_id }}", "body": "Still there?",
            "url": "https://shop.example/cart", "ttl": "1h"}
    });
    let (status, answer) =
        call("PUT", &server.url("/v1/campaigns/rescue"), TEST_ADMIN_KEY, Some(campaign));
    assert_eq!(status, 200, "{answer}");
}

/// Opens the data directory twice, from its snapshot plus tail and by full
/// replay, and checks that both derive the same state. Nothing is written.
fn assert_replay_equal(data: &Path, when: &str) {
    let options = EngineOptions { snapshot_on_close: false, ..Default::default() };
    let restarted = Engine::open(data, options.clone()).expect("reopen");
    let from_snapshot = restarted.encode_state().expect("encode");
    let used_snapshot = restarted.open_report().snapshot_position.is_some();
    drop(restarted);
    let full =
        Engine::open(data, EngineOptions { load_snapshot: false, ..options }).expect("replay");
    assert!(
        full.encode_state().expect("encode") == from_snapshot,
        "{when}: the state derived at restart (snapshot used: {used_snapshot}) differs from a full replay"
    );
}

#[test]
fn serve_survives_kill_9_under_ingest_and_campaign_load() {
    let cycles: u64 = nudge_tests::env_u64("NUDGE_SERVE_CRASH_CYCLES", 200);
    let seed: u64 = nudge_tests::env_u64("NUDGE_SERVE_CRASH_SEED", 17);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    let keys = Arc::new(BrowserKeys::new(7));
    let outcomes: Arc<Mutex<BTreeMap<u64, Outcome>>> = Arc::default();
    let started = Instant::now();
    let (mut kills, mut clean_stops) = (0u64, 0u64);

    for cycle in 0..cycles {
        let server = NudgeServer::start(dir.path(), &["--allow-insecure-push"]);
        if cycle == 0 {
            define_campaign(&server);
        }
        // Batch numbers are never reused: an unknown batch may be stored.
        let first = outcomes.lock().unwrap().keys().next_back().map_or(0, |b| b + 1);
        let stop = Arc::new(AtomicBool::new(false));
        let client = {
            let (base, endpoint, keys) = (server.base.clone(), receiver.base.clone(), keys.clone());
            let (stop, outcomes) = (stop.clone(), outcomes.clone());
            std::thread::spawn(move || load(base, endpoint, keys, first, stop, outcomes))
        };
        // Kill only once the server is under load: a cycle without an
        // acknowledged batch tests nothing.
        let waited = Instant::now();
        while !outcomes.lock().unwrap().contains_key(&first) {
            assert!(waited.elapsed() < Duration::from_secs(30), "cycle {cycle}: no batch answered");
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..300)));
        if cycle % CLEAN_STOP_EVERY == CLEAN_STOP_EVERY - 1 {
            stop.store(true, Ordering::Relaxed);
            client.join().unwrap();
            let status = server.stop();
            assert!(status.success(), "cycle {cycle}: SIGTERM exit {status:?}");
            clean_stops += 1;
        } else {
            drop(server); // SIGKILL
            client.join().unwrap();
            kills += 1;
        }
        let refused: Vec<u64> = outcomes
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, o)| **o == Outcome::Refused)
            .map(|(b, _)| *b)
            .collect();
        assert!(refused.is_empty(), "cycle {cycle}: batches refused: {refused:?} (seed {seed})");
        if cycle % REPLAY_CHECK_EVERY == REPLAY_CHECK_EVERY - 1 {
            assert_replay_equal(dir.path(), &format!("cycle {cycle} (seed {seed})"));
        }
    }

    // The last start: pending timers fire, the outbox sends what is left.
    let server = NudgeServer::start(dir.path(), &["--allow-insecure-push"]);
    let outcomes = outcomes.lock().unwrap().clone();
    let acked: Vec<u64> =
        outcomes.iter().filter(|(_, o)| **o == Outcome::Acked).map(|(b, _)| *b).collect();
    let unknown: Vec<u64> =
        outcomes.iter().filter(|(_, o)| **o == Outcome::Unknown).map(|(b, _)| *b).collect();
    let waverers = |batches: &[u64]| -> Vec<String> {
        batches
            .iter()
            .flat_map(|&b| (BUYERS_PER_BATCH..USERS_PER_BATCH).map(move |i| user(b, i)))
            .collect()
    };
    let due = waverers(&acked);
    let deadline = Instant::now() + PUSH_WAIT;
    let missing = loop {
        let missing: Vec<&String> =
            due.iter().filter(|u| receiver.received(&format!("/push/{u}")).is_empty()).collect();
        if missing.is_empty() || Instant::now() > deadline {
            break missing.into_iter().cloned().collect::<Vec<_>>();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        missing.is_empty(),
        "{} acknowledged carts were never pushed (timers lost?), e.g. {:?} (seed {seed})",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    // Let sends in flight land before counting.
    std::thread::sleep(Duration::from_secs(2));

    // Pushes: one delivery per user, none to buyers.
    let mut repeats = 0usize;
    let mut pushed_users = BTreeSet::new();
    for batch in acked.iter().chain(&unknown) {
        for i in 0..USERS_PER_BATCH {
            let user = user(*batch, i);
            let pushes = receiver.received(&format!("/push/{user}"));
            if i < BUYERS_PER_BATCH {
                assert!(pushes.is_empty(), "buyer {user} was pushed (seed {seed})");
                continue;
            }
            let deliveries: BTreeSet<String> = pushes
                .iter()
                .map(|p| keys.notification(&p.body)["delivery_id"].as_str().unwrap().to_owned())
                .collect();
            assert!(
                deliveries.len() <= 1,
                "{user} got {} different deliveries: {deliveries:?} (seed {seed})",
                deliveries.len()
            );
            repeats += pushes.len().saturating_sub(1);
            if !pushes.is_empty() {
                pushed_users.insert(user);
            }
        }
    }

    // Every acknowledged batch is stored: sent again, it is all duplicates.
    // An unknown batch is stored whole or not at all.
    for (&batch, &outcome) in &outcomes {
        let events = batch_events(batch);
        let n = events.as_array().unwrap().len() as u64;
        let (status, answer) =
            call("POST", &server.url("/v1/events"), TEST_WRITE_KEY, Some(events));
        assert_eq!(status, 200, "{answer}");
        let (accepted, duplicates) =
            (answer["accepted"].as_u64().unwrap(), answer["duplicates"].as_u64().unwrap());
        match outcome {
            Outcome::Acked => assert_eq!(
                (accepted, duplicates),
                (0, n),
                "acknowledged batch {batch} was not all stored (seed {seed})"
            ),
            _ => assert!(
                (accepted, duplicates) == (0, n) || (accepted, duplicates) == (n, 0),
                "unknown batch {batch} was stored in part: {answer} (seed {seed})"
            ),
        }
    }
    let status = server.stop();
    assert!(status.success(), "final SIGTERM exit {status:?}");
    assert_replay_equal(dir.path(), "the end");

    // Fire records: one per pushed user, at most one for anyone.
    let engine =
        Engine::open(dir.path(), EngineOptions { snapshot_on_close: false, ..Default::default() })
            .expect("reopen");
    let reader = engine.read();
    let fired = reader.dicts.events.get(TRIGGER_FIRED_EVENT).expect("some fires");
    for user in waverers(&acked).iter().chain(&waverers(&unknown)) {
        let Some(id) = reader.dicts.users.get(user) else { continue };
        let fires = reader.state.store.events_of(id).iter().filter(|e| e.event() == fired).count();
        assert!(fires <= 1, "{user} fired {fires} times (seed {seed})");
        if pushed_users.contains(user) {
            assert_eq!(fires, 1, "{user} was pushed without a fire record");
        }
    }
    eprintln!(
        "serve_crash: {cycles} cycles ({kills} kill -9, {clean_stops} SIGTERM) in {:.0?}: \
         {} batches acknowledged, {} unknown; {} users pushed, {repeats} repeated sends of the same delivery (seed {seed})",
        started.elapsed(),
        acked.len(),
        unknown.len(),
        pushed_users.len(),
    );
}

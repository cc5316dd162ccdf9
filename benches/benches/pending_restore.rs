//! What's measured: restoring pending fires on open. 1M users each add a cart
//! under `on "Added To Cart" unless "Charged" within 10m` (1M pending fires
//! and 1M armed events); the engine writes a snapshot at close, then open is
//! timed (median of 3), and the pending fires are counted after it. It also
//! measures the heap bytes per pending fire: the trigger state is cloned
//! under a counting allocator (a clone allocates what the state holds, with
//! the same slack in hash tables); and, the same way, the dictionaries' bytes
//! per user id and, for 200k users with one push subscription each (an
//! FCM-shaped endpoint of 163 bytes), the subscriptions' bytes each.
//!
//! Run with: `cargo bench -p nudge-benches --bench pending_restore`

#![allow(missing_docs)]

use std::alloc::{GlobalAlloc, Layout};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use mimalloc::MiMalloc;
use nudge_engine::clock::ManualClock;
use nudge_engine::{Durability, Engine, EngineOptions, Event, Record, Subscription};

/// mimalloc, counting the bytes currently allocated (this bench's only use
/// of `unsafe`: `GlobalAlloc` is an unsafe trait; every call is forwarded).
struct Counting;

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

#[allow(unsafe_code)]
// SAFETY: every call is forwarded unchanged to mimalloc, which upholds the
// `GlobalAlloc` contract; the counter is bookkeeping only.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's layout, forwarded.
        unsafe { MiMalloc.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { MiMalloc.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const USERS: usize = 1_000_000;
/// Users with a push subscription, for the subscriptions' bytes.
const SUBSCRIBED_USERS: usize = 200_000;
const NOW: i64 = 1_793_491_200_000;

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(NOW);
    let options = || EngineOptions {
        clock: Arc::new(clock.clone()),
        durability: Durability::Buffered,
        ..Default::default()
    };
    {
        let engine = Engine::open(dir.path(), options()).expect("open");
        engine
            .save_trigger("cart", r#"on "Added To Cart" unless "Charged" within 10m"#)
            .expect("save");
        for chunk in (0..USERS).collect::<Vec<_>>().chunks(5000) {
            let records: Vec<Record> = chunk
                .iter()
                .map(|u| Event::new(format!("u{u}"), "Added To Cart").at(NOW).into())
                .collect();
            engine.ingest(records).expect("ingest");
        }
        println!("pending before close: {}", engine.pending_fires());
        let reader = engine.read();
        let before = ALLOCATED.load(Ordering::Relaxed);
        let copy = reader.state.triggers.clone();
        let bytes = ALLOCATED.load(Ordering::Relaxed) - before;
        println!(
            "trigger state: {bytes} heap bytes for {} pending `unless` fires: {:.1} bytes each",
            copy.pending(),
            bytes as f64 / copy.pending() as f64
        );
        let before = ALLOCATED.load(Ordering::Relaxed);
        let dicts = reader.dicts.clone();
        let bytes = ALLOCATED.load(Ordering::Relaxed) - before;
        let text: usize = dicts.users.names().map(str::len).sum();
        println!(
            "dictionaries: {bytes} heap bytes for {} user ids ({text} bytes of text): {:.1} bytes each",
            dicts.users.len(),
            bytes as f64 / f64::from(dicts.users.len())
        );
    }
    subscription_bytes(&options());
    let mut times = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let engine = Engine::open(dir.path(), options()).expect("reopen");
        times.push(started.elapsed());
        assert_eq!(engine.pending_fires(), USERS);
        drop(engine);
    }
    times.sort();
    println!("open with {USERS} pending fires restored: median {:?} of 3", times[1]);
}

/// Heap bytes per subscription, measured like the trigger state.
fn subscription_bytes(options: &EngineOptions) {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Engine::open(dir.path(), options.clone()).expect("open");
    for chunk in (0..SUBSCRIBED_USERS).collect::<Vec<_>>().chunks(5000) {
        let records: Vec<Record> = chunk
            .iter()
            .map(|u| Record::Subscribe {
                user_id: format!("u{u}"),
                subscription: Subscription {
                    endpoint: format!(
                        "https://fcm.googleapis.com/fcm/send/{u:011x}:APA91bH{}",
                        "x".repeat(108)
                    ),
                    p256dh: format!("B{}", "k".repeat(86)),
                    auth: "a".repeat(22),
                },
            })
            .collect();
        engine.ingest(records).expect("ingest");
    }
    let reader = engine.read();
    let before = ALLOCATED.load(Ordering::Relaxed);
    let copy = reader.state.store.subscriptions.clone();
    let bytes = ALLOCATED.load(Ordering::Relaxed) - before;
    drop(copy);
    println!(
        "subscriptions: {bytes} heap bytes for {SUBSCRIBED_USERS} subscriptions: {:.1} bytes each",
        bytes as f64 / SUBSCRIBED_USERS as f64
    );
}

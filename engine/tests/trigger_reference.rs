//! Differential test of live triggers: the engine's fires against a
//! brute-force reference that follows section 3 of the language spec
//! literally, on random streams of live batches (stale events, future events,
//! cancels, completions, `event.P` correlation, `at`, `if`). After every batch
//! the clock is at its arrival and due fires are decided; both sides must
//! decide the same (trigger, user, due time, outcome) at the same moment.
//!
//! On odd seeds, every day seen so far is sealed after every fourth batch
//! (`Engine::seal_day`), so `if` checks read sealed days and later events
//! are late rows of sealed days.
//!
//! `NUDGE_TRIGGER_SEEDS` sets the number of streams (default 60).

mod common;

use std::collections::BTreeMap;

use common::NOW;
use nudge_engine::clock::ManualClock;
use nudge_engine::{DEFAULT_FIRE_GRACE_MS, DEFAULT_FRESHNESS_MS, FireOutcome};
use nudge_engine::{Event, Record};

const MIN: i64 = 60_000;

/// The triggers, with the reference's reading of each.
const TRIGGERS: [&str; 8] = [
    r#"on "A" where n > 2"#,
    r#"on "B""#,
    r#"on "A" unless "B" within 10m"#,
    r#"on "A" unless "B" where k == event.k within 10m"#,
    r#"on "A" then "C" within 20m"#,
    r#"on "C" then "B" where n >= event.n within 30m"#,
    r#"on "B" at due + 5m"#,
    r#"on "A" if did "B" in last 1h"#,
];

#[derive(Debug, Clone)]
struct Ev {
    user: String,
    name: &'static str,
    ts: i64,
    n: i64,
    k: &'static str,
    due: Option<i64>,
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A stream of batches: (arrival time, events).
fn stream(seed: u64) -> Vec<(i64, Vec<Ev>)> {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut arrival = NOW;
    (0..40)
        .map(|_| {
            // Now and then a long pause, as if the process were down: fires fall due late.
            let pause = if rng.below(12) == 0 { 20 + rng.below(20) } else { rng.below(6) };
            arrival += pause as i64 * MIN + rng.below(1000) as i64;
            let events = (0..1 + rng.below(5))
                .map(|_| {
                    let ts = match rng.below(10) {
                        0 => arrival - 61 * MIN - rng.below(60) as i64 * MIN, // stale
                        1 => arrival + rng.below(5) as i64 * MIN,             // future
                        _ => arrival - rng.below(3) as i64 * MIN,
                    };
                    Ev {
                        user: format!("u{}", rng.below(4)),
                        name: ["A", "B", "C"][rng.below(3) as usize],
                        ts,
                        n: rng.below(5) as i64,
                        k: ["x", "y"][rng.below(2) as usize],
                        due: (rng.below(2) == 0)
                            .then(|| arrival + rng.below(40) as i64 * MIN - 10 * MIN),
                    }
                })
                .collect();
            (arrival, events)
        })
        .collect()
}

#[derive(Debug, Clone)]
struct Pending {
    trigger: usize,
    user: String,
    due: i64,
    /// The triggering event (for `event.P`).
    cause: Ev,
    /// Arrival order of the triggering event, to tell armed events apart.
    seq: usize,
}

/// The reference: pending fires, the events armed for `unless` and `then`, and every event stored.
#[derive(Default)]
struct Reference {
    stored: Vec<Ev>,
    pending: Vec<Pending>,
    unless: BTreeMap<(usize, String), usize>,
    then: BTreeMap<(usize, String), Vec<(Ev, usize)>>,
    seq: usize,
}

impl Reference {
    fn start_holds(trigger: usize, e: &Ev) -> bool {
        match trigger {
            0 => e.n > 2,
            _ => true,
        }
    }

    fn tail(trigger: usize) -> Option<(&'static str, i64, bool)> {
        // (F, within, is `unless`)
        match trigger {
            2 | 3 => Some(("B", 10 * MIN, true)),
            4 => Some(("C", 20 * MIN, false)),
            5 => Some(("B", 30 * MIN, false)),
            _ => None,
        }
    }

    fn start_event(trigger: usize) -> &'static str {
        ["A", "B", "A", "A", "A", "C", "B", "A"][trigger]
    }

    fn tail_holds(trigger: usize, f: &Ev, e: &Ev) -> bool {
        match trigger {
            3 => f.k == e.k,
            5 => f.n >= e.n,
            _ => true,
        }
    }

    fn apply(&mut self, arrival: i64, e: &Ev) {
        self.stored.push(e.clone());
        self.seq += 1;
        if e.ts < arrival - DEFAULT_FRESHNESS_MS {
            return;
        }
        for t in 0..TRIGGERS.len() {
            let Some((f, within, unless)) = Self::tail(t) else { continue };
            if e.name != f {
                continue;
            }
            let key = (t, e.user.clone());
            if unless {
                let Some(&seq) = self.unless.get(&key) else { continue };
                let Some(at) = self.pending.iter().position(|p| p.trigger == t && p.seq == seq)
                else {
                    continue;
                };
                let armed = &self.pending[at].cause;
                if e.ts >= armed.ts && e.ts - armed.ts <= within && Self::tail_holds(t, e, armed) {
                    self.pending.remove(at);
                    self.unless.remove(&key);
                }
            } else if let Some(list) = self.then.get_mut(&key) {
                list.retain(|(a, _)| e.ts - a.ts <= within);
                if let Some(i) =
                    list.iter().position(|(a, _)| a.ts <= e.ts && Self::tail_holds(t, e, a))
                {
                    let (cause, seq) = list.remove(i);
                    self.pending.push(Pending {
                        trigger: t,
                        user: e.user.clone(),
                        due: arrival,
                        cause,
                        seq,
                    });
                }
            }
        }
        for t in 0..TRIGGERS.len() {
            if e.name != Self::start_event(t) || !Self::start_holds(t, e) {
                continue;
            }
            let pending = |due| Pending {
                trigger: t,
                user: e.user.clone(),
                due,
                cause: e.clone(),
                seq: self.seq,
            };
            match (t, Self::tail(t)) {
                (6, _) => {
                    if let Some(due) = e.due.map(|d| d + 5 * MIN)
                        && due >= arrival
                    {
                        self.pending.push(pending(due));
                    }
                }
                (_, Some((_, within, true))) => {
                    let key = (t, e.user.clone());
                    if !self.unless.contains_key(&key) {
                        self.unless.insert(key, self.seq);
                        self.pending.push(pending(e.ts + within));
                    }
                }
                (_, Some((_, _, false))) => {
                    self.then.entry((t, e.user.clone())).or_default().push((e.clone(), self.seq));
                }
                (_, None) => self.pending.push(pending(arrival)),
            }
        }
    }

    /// Decides the fires due at `now`: (trigger text, user, due, outcome), sorted.
    fn decide(&mut self, now: i64) -> Vec<(String, String, i64, FireOutcome)> {
        let (due, rest): (Vec<_>, Vec<_>) = self.pending.drain(..).partition(|p| p.due <= now);
        self.pending = rest;
        let mut out = Vec::new();
        for p in due {
            if self.unless.get(&(p.trigger, p.user.clone())) == Some(&p.seq) {
                self.unless.remove(&(p.trigger, p.user.clone()));
            }
            let outcome = if now - p.due > DEFAULT_FIRE_GRACE_MS {
                FireOutcome::DroppedLate
            } else if p.trigger == 7
                && !self.stored.iter().any(|s| {
                    s.user == p.user && s.name == "B" && s.ts >= now - 60 * MIN && s.ts <= now
                })
            {
                FireOutcome::DroppedCondition
            } else {
                FireOutcome::Fired
            };
            out.push((format!("t{}", p.trigger), p.user, p.due, outcome));
        }
        out.sort_by(|a, b| (&a.0, &a.1, a.2, a.3 as u8).cmp(&(&b.0, &b.1, b.2, b.3 as u8)));
        out
    }
}

fn record(e: &Ev) -> Record {
    let mut event = Event::new(e.user.clone(), e.name).at(e.ts).prop("n", e.n).prop("k", e.k);
    if let Some(due) = e.due {
        event = event.prop("due", due);
    }
    event.into()
}

#[test]
fn fires_agree_with_the_reference_on_random_streams() {
    let seeds: u64 =
        std::env::var("NUDGE_TRIGGER_SEEDS").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    let mut decisions = 0;
    let mut outcomes = [0usize; 3];
    let mut sealed_rows = 0;
    for seed in 0..seeds {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = ManualClock::new(NOW);
        let engine = common::open(dir.path(), &clock);
        for (i, text) in TRIGGERS.iter().enumerate() {
            engine.save_trigger(&format!("t{i}"), text).expect("save");
        }
        let mut reference = Reference::default();
        let mut days = std::collections::BTreeSet::new();
        for (b, (arrival, events)) in stream(seed).into_iter().enumerate() {
            clock.set(arrival);
            let records: Vec<Record> = events.iter().map(record).collect();
            days.extend(common::event_days(&records));
            engine.ingest(records).expect("ingest");
            if seed % 2 == 1 && b % 4 == 3 {
                for &day in &days {
                    engine.seal_day(day).expect("seal");
                }
            }
            for e in &events {
                reference.apply(arrival, e);
            }
            let expected = reference.decide(arrival);
            let mut actual: Vec<_> = engine
                .fire_due()
                .expect("fire")
                .into_iter()
                .map(|f| (f.trigger, f.user_id, f.due_ms, f.outcome))
                .collect();
            actual.sort_by(|a, b| (&a.0, &a.1, a.2, a.3 as u8).cmp(&(&b.0, &b.1, b.2, b.3 as u8)));
            assert_eq!(actual, expected, "seed {seed}, batch {b} at {arrival}");
            decisions += expected.len();
            for (.., outcome) in &expected {
                outcomes[*outcome as usize] += 1;
            }
        }
        sealed_rows += engine.storage_tiers().sealed_rows;
    }
    eprintln!("{decisions} decisions: {outcomes:?} (fired, late, condition)");
    assert!(sealed_rows > 0, "sealed days were exercised");
    assert!(outcomes.iter().all(|&n| n > 0), "every outcome is exercised: {outcomes:?}");
}

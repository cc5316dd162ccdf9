//! The engine's trigger API: saving triggers, importing history that fires
//! nothing, and settling the fires that fell due (`rules/` holds the state).
//!
//! [`Engine::fire_due`] is the only place a fire is decided. It runs under a
//! lock, writes every decision as a `Fire` record (and as a `$trigger_fired`
//! or `$trigger_dropped` event of the user) and waits for it to be
//! durable and applied before it reports anything, so an action can never run
//! for a fire that a crash could make the engine decide again.

use roaring::RoaringBitmap;

use crate::engine::{Engine, IngestOutcome};
use crate::error::Result;
use crate::limits::MAX_BATCH_RECORDS;
use crate::query;
use crate::store::record::{Event, FireRecord, Record};
use crate::triggers::FireOutcome;

/// A decided fire, reported after its record is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fire {
    /// The trigger's name.
    pub trigger: String,
    /// The user's external id.
    pub user_id: String,
    /// The triggering event's place in the log (`rules::cause`).
    pub cause: u64,
    /// When it fell due, epoch ms.
    pub due_ms: i64,
    /// When it was decided, epoch ms (engine clock).
    pub decided_ms: i64,
    /// What was decided.
    pub outcome: FireOutcome,
    /// For a campaign's trigger that fired: what its delivery decision was.
    pub delivery: Option<crate::campaigns::delivery::Delivery>,
}

/// The system event a fire adds to the user's timeline, so that "why was
/// this sent, or not" is a query: `did "$trigger_fired" where trigger == "cart"`.
pub const TRIGGER_FIRED_EVENT: &str = "$trigger_fired";
/// The system event of a dropped fire (`reason`: `late` or `condition`).
pub const TRIGGER_DROPPED_EVENT: &str = "$trigger_dropped";

impl Fire {
    /// The decision as an event of the user: `$trigger_fired` or
    /// `$trigger_dropped`, at the decision time, with `trigger`, `reason`,
    /// `fire_id` and `due` (epoch ms).
    pub fn system_event(&self) -> Record {
        let name = match self.outcome {
            FireOutcome::Fired => TRIGGER_FIRED_EVENT,
            FireOutcome::DroppedLate | FireOutcome::DroppedCondition => TRIGGER_DROPPED_EVENT,
        };
        Event::new(self.user_id.clone(), name)
            .at(self.decided_ms)
            .prop("trigger", self.trigger.clone())
            .prop("reason", self.outcome.name())
            .prop("fire_id", self.id())
            .prop("due", self.due_ms)
            .into()
    }

    /// A stable identifier of the fire: the same (trigger, user, cause) always
    /// gives the same id (for idempotency keys downstream).
    pub fn id(&self) -> String {
        let key = format!("{}\u{0}{}\u{0}{}", self.trigger, self.user_id, self.cause);
        format!("{:032x}", xxhash_rust::xxh3::xxh3_128(key.as_bytes()))
    }
}

impl Engine {
    /// Saves (or replaces) a named trigger, durably. It arms on events ingested
    /// from now on.
    pub fn save_trigger(&self, name: &str, trigger: &str) -> Result<IngestOutcome> {
        self.ingest(vec![Record::SaveTrigger {
            name: name.to_owned(),
            trigger: trigger.to_owned(),
        }])
    }

    /// Removes a trigger and its pending fires; `Ok(None)` when there was none.
    pub fn remove_trigger(&self, name: &str) -> Result<Option<IngestOutcome>> {
        if self.read().state.rules.trigger(name).is_none() {
            return Ok(None);
        }
        self.ingest(vec![Record::RemoveTrigger { name: name.to_owned() }]).map(Some)
    }

    /// The saved triggers: (name, text).
    pub fn triggers(&self) -> Vec<(String, String)> {
        let reader = self.read();
        reader.state.rules.triggers().map(|t| (t.name.to_string(), t.text.clone())).collect()
    }

    /// Ingests records as history (`nudge import`): stored like any others,
    /// but they arm and fire no trigger.
    pub fn ingest_history(&self, mut records: Vec<Record>) -> Result<IngestOutcome> {
        records.insert(0, Record::History);
        let mut outcome = self.ingest(records).map_err(|e| match e {
            // Indexes name the caller's records, not the marker.
            crate::Error::InvalidInput { index: Some(i), field, reason } => {
                crate::Error::InvalidInput { index: i.checked_sub(1), field, reason }
            }
            other => other,
        })?;
        outcome.accepted = outcome.accepted.saturating_sub(1);
        Ok(outcome)
    }

    /// Fires pending and due by the clock.
    pub fn pending_fires(&self) -> usize {
        self.read().state.rules.pending()
    }

    /// When the next pending fire falls due, if any.
    pub fn next_fire_due(&self) -> Option<i64> {
        self.read().state.rules.next_due()
    }

    /// Decides every pending fire due by the engine clock: dropped when it is
    /// later than the grace period, or when the user is not in the trigger's
    /// `if` now; fired otherwise. The decisions are recorded durably before
    /// they are returned.
    pub fn fire_due(&self) -> Result<Vec<Fire>> {
        let _deciding = self.fire_lock.lock();
        let now = self.options.clock.now_ms();
        let grace = self.options.fire_grace_ms;
        let (groups, fires) = {
            let reader = self.read();
            let (dicts, state) = (&*reader.dicts, &*reader.state);
            let mut planner = crate::campaigns::delivery::Planner::new(dicts, state, now);
            // Each fire's records (the decision, its event, a campaign's
            // deliveries) go into one batch together.
            let mut groups: Vec<Vec<Record>> = Vec::new();
            let mut fires = Vec::new();
            for pending in state.rules.due_by(now) {
                let mut records = Vec::new();
                let Some(trigger) = state.rules.trigger(&pending.trigger) else { continue };
                let outcome = if now - pending.due_ms > grace {
                    FireOutcome::DroppedLate
                } else if let Some(expr) = &trigger.ast.condition {
                    let blob = state.timelines.arena().get(pending.props_at);
                    let scope: RoaringBitmap = std::iter::once(pending.user).collect();
                    let selected = query::select_by(
                        dicts,
                        state,
                        expr,
                        now,
                        &scope,
                        Some((dicts, blob)),
                        query::Strategy::Timelines,
                    )?;
                    if selected.contains(pending.user) {
                        FireOutcome::Fired
                    } else {
                        FireOutcome::DroppedCondition
                    }
                } else {
                    FireOutcome::Fired
                };
                records.push(Record::Fire(FireRecord {
                    trigger: pending.trigger.to_string(),
                    user: pending.user,
                    cause: pending.cause,
                    due_ms: pending.due_ms,
                    outcome,
                }));
                let mut fire = Fire {
                    trigger: pending.trigger.to_string(),
                    user_id: dicts.users.name(pending.user).unwrap_or_default().to_owned(),
                    cause: pending.cause,
                    due_ms: pending.due_ms,
                    decided_ms: now,
                    outcome,
                    delivery: None,
                };
                records.push(fire.system_event());
                let campaign =
                    pending.trigger.strip_prefix(crate::campaigns::campaign::TRIGGER_PREFIX);
                if let (FireOutcome::Fired, Some(stored)) =
                    (outcome, campaign.and_then(|id| state.campaigns.get(id)))
                {
                    let cause = crate::campaigns::delivery::Cause {
                        key: fire.id(),
                        event: Some(state.timelines.arena().get(pending.props_at)),
                        due_ms: pending.due_ms,
                        check_audience: true,
                        test: false,
                    };
                    fire.delivery =
                        Some(planner.plan(stored, pending.user, &cause, &mut records)?);
                }
                groups.push(records);
                fires.push(fire);
            }
            (groups, fires)
        };
        self.ingest_groups(groups)?;
        self.run_schedules(now)?;
        Ok(fires)
    }
}

impl Engine {
    /// Ingests groups of records, never splitting a group across batches.
    pub(crate) fn ingest_groups(&self, groups: Vec<Vec<Record>>) -> Result<()> {
        let total: usize = groups.iter().map(Vec::len).sum();
        let mut batch = Vec::with_capacity(total.min(MAX_BATCH_RECORDS));
        for group in groups {
            if !batch.is_empty() && batch.len() + group.len() > MAX_BATCH_RECORDS {
                let next = Vec::with_capacity(total.min(MAX_BATCH_RECORDS));
                self.ingest(std::mem::replace(&mut batch, next))?;
            }
            batch.extend(group);
        }
        if !batch.is_empty() {
            self.ingest(batch)?;
        }
        Ok(())
    }
}

/// Longest wait of a [`FireLoop`] between two looks at the pending fires
/// when nothing is due sooner and nothing was ingested.
pub const FIRE_IDLE_WAIT_MS: u64 = 100;

/// A thread that decides fires as they fall due and hands them to a sink
/// (the server's sender). It sleeps until the next due time, and wakes early
/// after every ingest, since a just-ingested event may arm a fire due now.
/// Dropping it stops the thread.
pub struct FireLoop {
    _running: EngineLoop,
}

impl FireLoop {
    /// Starts deciding `engine`'s fires. Errors (the engine closed, a failed
    /// write) go to `on_error`, and the loop keeps trying.
    pub fn spawn(
        engine: std::sync::Arc<Engine>,
        sink: impl Fn(Vec<Fire>) + Send + 'static,
        on_error: impl Fn(crate::Error) + Send + 'static,
    ) -> std::io::Result<FireLoop> {
        EngineLoop::spawn(engine, "nudge-fires", move |engine| {
            match engine.fire_due() {
                Ok(fires) if !fires.is_empty() => sink(fires),
                Ok(_) => {}
                Err(e) => on_error(e),
            }
            engine.next_fire_due()
        })
        .map(|running| FireLoop { _running: running })
    }
}

/// A thread that runs `step` over and over: after each step it sleeps until
/// the time the step returned (at most [`FIRE_IDLE_WAIT_MS`]), and wakes
/// early after every ingest. Dropping it stops the thread.
pub(crate) struct EngineLoop {
    engine: std::sync::Arc<Engine>,
    stop: Option<crossbeam_channel::Sender<()>>,
    wake: crossbeam_channel::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EngineLoop {
    /// Starts the thread; `step` returns when it next has work (`None`: no
    /// known time, look again after the idle wait).
    pub(crate) fn spawn(
        engine: std::sync::Arc<Engine>,
        name: &str,
        mut step: impl FnMut(&Engine) -> Option<i64> + Send + 'static,
    ) -> std::io::Result<EngineLoop> {
        let (stop, stopped) = crossbeam_channel::bounded::<()>(1);
        let (wake, woken) = crossbeam_channel::bounded::<()>(1);
        engine.wakers.lock().push(wake.clone());
        let looping = std::sync::Arc::clone(&engine);
        let thread = std::thread::Builder::new().name(name.into()).spawn(move || {
            let engine = looping;
            loop {
                let next = step(&engine);
                let now = engine.options.clock.now_ms();
                let wait = next.map_or(FIRE_IDLE_WAIT_MS, |due| {
                    due.saturating_sub(now).clamp(0, FIRE_IDLE_WAIT_MS as i64) as u64
                });
                crossbeam_channel::select! {
                    recv(stopped) -> _ => break,
                    recv(woken) -> _ => {}
                    default(std::time::Duration::from_millis(wait)) => {}
                }
            }
        })?;
        Ok(EngineLoop { engine, stop: Some(stop), wake, thread: Some(thread) })
    }

    /// A handle that wakes the thread for another step.
    pub(crate) fn waker(&self) -> crossbeam_channel::Sender<()> {
        self.wake.clone()
    }
}

impl Drop for EngineLoop {
    fn drop(&mut self) {
        self.engine.wakers.lock().retain(|w| !w.same_channel(&self.wake));
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

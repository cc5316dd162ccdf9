//! Triggers in the facade: saving and removing them, and `fire_due`, which
//! composes the triggers layer's decisions with the campaigns layer's
//! planning under one lock, one fire's records in one batch.
//!
//! [`Engine::fire_due`] is the only place a fire is decided. It runs under a
//! lock, writes every decision as a `Fire` entry (and as a `$trigger_fired`
//! or `$trigger_dropped` event of the user) and waits for it to be durable
//! and applied before it reports anything, so an action can never run for a
//! fire that a crash could make the engine decide again. It then runs the
//! scheduled campaigns' occurrences that are due.

use std::sync::atomic::Ordering;

use super::{Engine, IngestOutcome};
use crate::campaigns::campaign::campaign_of_trigger;
use crate::campaigns::delivery::{Cause, Delivery, Planner};
use crate::campaigns::schedule::{self, SCHEDULE_RECHECK_MS};
use crate::error::Result;
use crate::store::sequencer::Input;
use crate::triggers::decide::{self, decide_due};
use crate::triggers::{self, FireOutcome};

/// A decided fire, reported after its record is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fire {
    /// The trigger's name.
    pub trigger: String,
    /// The user's external id.
    pub user_id: String,
    /// The triggering event's place in the log (`triggers::cause`).
    pub cause: u64,
    /// When it fell due, epoch ms.
    pub due_ms: i64,
    /// When it was decided, epoch ms (engine clock).
    pub decided_ms: i64,
    /// What was decided.
    pub outcome: FireOutcome,
    /// For a campaign's trigger that fired: what its delivery decision was.
    pub delivery: Option<Delivery>,
}

impl Fire {
    /// The decision as an event of the user: `$trigger_fired` or
    /// `$trigger_dropped`, at the decision time, with `trigger`, `reason`,
    /// `fire_id` and `due` (epoch ms).
    pub fn system_event(&self) -> crate::store::record::Event {
        decide::system_event(
            &self.trigger,
            &self.user_id,
            self.cause,
            self.due_ms,
            self.decided_ms,
            self.outcome,
        )
    }

    /// A stable identifier of the fire: the same (trigger, user, cause) always
    /// gives the same id (for idempotency keys downstream).
    pub fn id(&self) -> String {
        decide::fire_id(&self.trigger, &self.user_id, self.cause)
    }
}

impl Engine {
    /// Saves (or replaces) a named trigger, durably. It arms on events ingested
    /// from now on.
    pub fn save_trigger(&self, name: &str, trigger: &str) -> Result<IngestOutcome> {
        self.ingest_inputs(vec![triggers::saved_entry(name, trigger)?.into()])
    }

    /// Removes a trigger and its pending fires; `Ok(None)` when there was none.
    pub fn remove_trigger(&self, name: &str) -> Result<Option<IngestOutcome>> {
        if self.read_state().state.triggers.trigger(name).is_none() {
            return Ok(None);
        }
        self.ingest_inputs(vec![triggers::removed_entry(name).into()]).map(Some)
    }

    /// The saved triggers: (name, text).
    pub fn triggers(&self) -> Vec<(String, String)> {
        let reader = self.read_state();
        reader.state.triggers.triggers().map(|t| (t.name.to_string(), t.text.clone())).collect()
    }

    /// Fires pending, due or not.
    pub fn pending_fires(&self) -> usize {
        self.read_state().state.triggers.pending()
    }

    /// When the next pending fire falls due, if any.
    pub fn next_fire_due(&self) -> Option<i64> {
        self.read_state().state.triggers.next_due()
    }

    /// Decides every pending fire due by the engine clock: dropped when it is
    /// later than the grace period, or when the user is not in the trigger's
    /// `if` now; fired otherwise. A campaign's fire is planned as a delivery
    /// in the same batch. The decisions are recorded durably before they are
    /// returned. Then runs the scheduled campaigns' due occurrences.
    pub fn fire_due(&self) -> Result<Vec<Fire>> {
        let _deciding = self.fire_lock.lock();
        let now = self.options.clock.now_ms();
        let grace = self.options.fire_grace_ms;
        let (groups, fires) = {
            let reader = self.read_state();
            let (dicts, state) = (&*reader.dicts, &*reader.state);
            let source = state.source();
            let decisions = decide_due(dicts, source, &state.triggers, now, grace)?;
            let mut planner = Planner::new(dicts, source, &state.campaigns, now);
            // Each fire's records (the decision, its event, a campaign's
            // deliveries) go into one batch together.
            let mut groups: Vec<Vec<Input>> = Vec::with_capacity(decisions.len());
            let mut fires = Vec::with_capacity(decisions.len());
            for decision in decisions {
                let pending = &decision.pending;
                let mut records: Vec<Input> = vec![decision.entry().into()];
                let mut fire = Fire {
                    trigger: pending.trigger.to_string(),
                    user_id: dicts.users.name(pending.user).unwrap_or_default().to_owned(),
                    cause: pending.cause,
                    due_ms: pending.due_ms,
                    decided_ms: now,
                    outcome: decision.outcome,
                    delivery: None,
                };
                records.push(fire.system_event().into());
                let campaign = campaign_of_trigger(&pending.trigger);
                if let (FireOutcome::Fired, Some(stored)) =
                    (decision.outcome, campaign.and_then(|id| state.campaigns.campaigns.get(id)))
                {
                    let cause = Cause {
                        key: fire.id(),
                        event: Some(&pending.props),
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

    /// Runs the scheduled campaigns' occurrences that are due (called by
    /// `fire_due`, under its lock). Returns when the next one falls due.
    pub(crate) fn run_schedules(&self, now: i64) -> Result<Option<i64>> {
        if now < self.schedule_check_ms.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let grace = self.options.fire_grace_ms;
        let mut next_due: Option<i64> = None;
        // Each round decides at most one batch, with the state read afresh.
        for _ in 0..1_000_000 {
            let (records, more) = {
                let reader = self.read_state();
                let (dicts, state) = (&*reader.dicts, &*reader.state);
                schedule::next_batch(
                    dicts,
                    state.source(),
                    &state.campaigns,
                    (now, grace),
                    &mut next_due,
                )?
            };
            if !records.is_empty() {
                self.ingest_inputs(records)?;
            }
            if !more {
                break;
            }
        }
        let recheck = now + SCHEDULE_RECHECK_MS;
        let check_at = next_due.map_or(recheck, |due| due.min(recheck));
        self.schedule_check_ms.store(check_at, Ordering::Relaxed);
        Ok(next_due)
    }
}

//! The engine's loops: [`FireLoop`] decides fires as they fall due, and
//! [`OutboxLoop`] runs the outbox's sending pipeline, both on [`EngineLoop`].
//!
//! The outbox's sending pipeline: one thread claims due items and hands them
//! to a sender that answers when it likes; a second thread records the
//! answers in group-committed batches while more items are being sent.
//!
//! Claiming never waits for a batch to finish, so one slow push service does
//! not hold up the rest, and the fsync of the reports overlaps the sending.
//! The items in flight are bounded by [`MAX_ITEMS_IN_FLIGHT`], counted from
//! the engine's leases: an item the sender never answers (a lost task) frees
//! its place when its lease runs out and is claimed again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::campaigns::outbox::{Attempt, MAX_CLAIM, OutboxItem};
use crate::engine::Engine;

/// Most claimed items awaiting their report at once.
pub const MAX_ITEMS_IN_FLIGHT: usize = 4096;
/// While items are in flight, the loop claims again only when at least this
/// many places are free, so claims (each walks past the leased items) stay
/// few under a stream of small report batches.
pub const MIN_CLAIM_WHILE_BUSY: usize = MAX_ITEMS_IN_FLIGHT / 8;
/// Most reports recorded in one engine batch (one fsync).
pub const MAX_REPORTS_PER_BATCH: usize = 4096;
/// How long dropping an [`OutboxLoop`] waits for the answers of items in
/// flight before it stops recording (the rest are sent again after their
/// leases run out: at least once).
pub const OUTBOX_DRAIN_GRACE: Duration = Duration::from_secs(5);
/// How often the drain looks at what is left.
const DRAIN_POLL: Duration = Duration::from_millis(5);

/// Where a sender hands back what became of each item it was given. Cheap to
/// clone; every item should get exactly one report.
#[derive(Clone)]
pub struct OutboxReports {
    reports: Sender<(u64, Attempt)>,
}

impl OutboxReports {
    /// Reports one attempt of item `id`; recorded durably soon after.
    pub fn report(&self, id: u64, attempt: Attempt) {
        // The recording thread outlives every sender it waits for; after it
        // stopped, a report is dropped and the item is sent again later.
        let _ = self.reports.send((id, attempt));
    }
}

/// The claim → send → report pipeline over an engine's outbox. Dropping it
/// stops claiming, waits up to [`OUTBOX_DRAIN_GRACE`] for the answers in
/// flight, records them and stops.
pub struct OutboxLoop {
    claiming: Option<EngineLoop>,
    engine: Arc<Engine>,
    stop_recording: Option<Sender<()>>,
    recorder: Option<std::thread::JoinHandle<()>>,
}

impl OutboxLoop {
    /// Starts sending `engine`'s outbox through `send`, which gets claimed
    /// items and an [`OutboxReports`] to answer each one through, later and
    /// from any thread. `send` runs on the claiming thread and should hand
    /// the work off rather than do it.
    pub fn spawn(
        engine: Arc<Engine>,
        mut send: impl FnMut(Vec<OutboxItem>, &OutboxReports) + Send + 'static,
        on_error: impl Fn(crate::Error) + Send + Sync + 'static,
    ) -> std::io::Result<OutboxLoop> {
        let on_error = Arc::new(on_error);
        let (reports_in, reports_out) = crossbeam_channel::unbounded();
        let reports = OutboxReports { reports: reports_in };
        let claim_error = on_error.clone();
        let claiming = EngineLoop::spawn(engine.clone(), "nudge-outbox", move |engine| {
            let leased = engine.outbox_leased();
            let room = MAX_ITEMS_IN_FLIGHT.saturating_sub(leased);
            if room == 0 || (leased > 0 && room < MIN_CLAIM_WHILE_BUSY) {
                // The recorder wakes this loop after each batch it records.
                return None;
            }
            match engine.claim_outbox(room.min(MAX_CLAIM)) {
                // What is due is in flight: wait for a report, an ingest, or
                // the next item that is not due yet.
                Ok(items) if items.is_empty() => {
                    let now = engine.options.clock.now_ms();
                    engine.next_outbox_due().filter(|due| *due > now)
                }
                Ok(items) => {
                    send(items, &reports);
                    // More may be due at once.
                    Some(i64::MIN)
                }
                Err(e) => {
                    claim_error(e);
                    engine.next_outbox_due()
                }
            }
        })?;
        let (stop_recording, stopped) = crossbeam_channel::bounded(1);
        let wake = claiming.waker();
        let recording = engine.clone();
        let recorder = std::thread::Builder::new()
            .name("nudge-outbox-reports".into())
            .spawn(move || record_reports(&recording, &reports_out, &stopped, &wake, &*on_error))?;
        Ok(OutboxLoop {
            claiming: Some(claiming),
            engine,
            stop_recording: Some(stop_recording),
            recorder: Some(recorder),
        })
    }
}

/// The recording thread: waits for reports, takes whatever else is queued
/// (up to [`MAX_REPORTS_PER_BATCH`]) and records it as one batch, then wakes
/// the claiming thread, as places in flight came free. After the stop signal
/// it records what is queued and ends.
fn record_reports(
    engine: &Engine,
    reports: &Receiver<(u64, Attempt)>,
    stopped: &Receiver<()>,
    wake: &Sender<()>,
    on_error: &dyn Fn(crate::Error),
) {
    loop {
        let first = crossbeam_channel::select! {
            recv(reports) -> report => report.ok(),
            recv(stopped) -> _ => None,
        };
        let Some(first) = first else { break };
        let mut batch = vec![first];
        batch.extend(reports.try_iter().take(MAX_REPORTS_PER_BATCH - 1));
        if let Err(e) = engine.report_outbox(batch) {
            on_error(e);
        }
        let _ = wake.try_send(());
    }
    let rest: Vec<_> = reports.try_iter().collect();
    for batch in rest.chunks(MAX_REPORTS_PER_BATCH) {
        if let Err(e) = engine.report_outbox(batch.to_vec()) {
            on_error(e);
        }
    }
}

impl Drop for OutboxLoop {
    fn drop(&mut self) {
        drop(self.claiming.take());
        let deadline = Instant::now() + OUTBOX_DRAIN_GRACE;
        while self.engine.outbox_leased() > 0 && Instant::now() < deadline {
            std::thread::sleep(DRAIN_POLL);
        }
        drop(self.stop_recording.take());
        if let Some(recorder) = self.recorder.take() {
            let _ = recorder.join();
        }
    }
}

/// Longest wait of an engine loop ([`FireLoop`], [`OutboxLoop`]) between two
/// looks at its work when nothing is due sooner and nothing was ingested.
pub const LOOP_IDLE_WAIT_MS: u64 = 100;

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
        sink: impl Fn(Vec<super::Fire>) + Send + 'static,
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

/// A thread that seals each UTC day into its day file once it has closed
/// (its end plus `EngineOptions::seal_grace_ms`), and sleeps until the next
/// day closes. Dropping it stops the thread.
pub struct SealLoop {
    _running: EngineLoop,
}

impl SealLoop {
    /// Starts sealing `engine`'s closed days. Errors go to `on_error`, and
    /// the loop tries again at its next step.
    pub fn spawn(
        engine: std::sync::Arc<Engine>,
        on_error: impl Fn(crate::Error) + Send + 'static,
    ) -> std::io::Result<SealLoop> {
        EngineLoop::spawn(engine, "nudge-sealer", move |engine| {
            // First the background pass over the day files open left
            // unchecked, one file per step (so stopping stays quick).
            match engine.check_next_day_file() {
                Ok(Some(check)) => {
                    if let Some(damage) = check.damage {
                        on_error(damage);
                    }
                    return Some(engine.options.clock.now_ms());
                }
                Ok(None) => {}
                Err(e) => on_error(e),
            }
            if let Err(e) = engine.seal_closed_days() {
                on_error(e);
            }
            Some(engine.next_day_closes())
        })
        .map(|running| SealLoop { _running: running })
    }
}

/// A thread that runs `step` over and over: after each step it sleeps until
/// the time the step returned (at most [`LOOP_IDLE_WAIT_MS`]), and wakes
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
                let wait = next.map_or(LOOP_IDLE_WAIT_MS, |due| {
                    due.saturating_sub(now).clamp(0, LOOP_IDLE_WAIT_MS as i64) as u64
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

//! Request coalescing for ingest: many small requests become one engine batch.
//!
//! Each `POST /v1/events` or `/v1/profiles` hands its records to a queue and
//! waits. A few ingest threads each take every request waiting (up to
//! [`MAX_COALESCED_RECORDS`] records), ingest them as one engine batch (one
//! sequencing, one frame, one fsync), and answer every request from the one
//! outcome: its own accepted and duplicate counts, from the positions the
//! engine reports. A request is still atomic and still acknowledged only after
//! fsync. When the combined batch is refused because of one request's record,
//! that request gets the error (with its own index) and the others are
//! ingested again without it; any other failure retries each request alone, so
//! each gets its own answer.
//!
//! The queue is bounded and never waits: when it is full a request is refused
//! at once with [`Error::Overloaded`] (HTTP 503 with `Retry-After`), before
//! anything is written, so overload shows up as fast refusals rather than as a
//! growing queue or callers waiting without bound.

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use nudge_engine::{Engine, Record};
use tokio::sync::oneshot;

use crate::error::{Error, Result};

/// Most records one coalesced engine batch holds.
pub const MAX_COALESCED_RECORDS: usize = nudge_engine::limits::MAX_BATCH_RECORDS;
/// Threads taking requests from the queue (one ingests while another waits for its fsync).
pub const INGEST_THREADS: usize = 3;
/// Requests that may wait in the queue; beyond it callers are refused with 503.
/// The in-flight request limit (`--max-in-flight`) normally binds first.
pub const QUEUE_CAPACITY: usize = 1024;
/// What a refused caller is told to wait before retrying, in seconds.
pub const QUEUE_FULL_RETRY_AFTER_S: u64 = 1;

/// What one request got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acked {
    /// Records stored.
    pub accepted: usize,
    /// Events acknowledged as repeats of an idempotency id.
    pub duplicates: usize,
}

struct Job {
    records: Vec<Record>,
    reply: oneshot::Sender<Result<Acked>>,
}

/// The queue the handlers send to.
#[derive(Clone)]
pub struct IngestQueue {
    jobs: Sender<Job>,
}

impl IngestQueue {
    /// Starts the ingest threads over `engine`. They stop when every handle
    /// of the queue is dropped.
    pub fn start(engine: Arc<Engine>) -> std::io::Result<IngestQueue> {
        let (jobs, queue) = crossbeam_channel::bounded(QUEUE_CAPACITY);
        for n in 0..INGEST_THREADS {
            let (engine, queue) = (engine.clone(), queue.clone());
            std::thread::Builder::new()
                .name(format!("nudge-ingest-{n}"))
                .spawn(move || run(&engine, &queue))?;
        }
        Ok(IngestQueue { jobs })
    }

    /// Ingests `records` atomically; answers after they are durable. A full
    /// queue refuses at once with [`Error::Overloaded`], having written nothing.
    pub async fn ingest(&self, records: Vec<Record>) -> Result<Acked> {
        let (reply, answer) = oneshot::channel();
        self.jobs.try_send(Job { records, reply }).map_err(|e| match e {
            TrySendError::Full(_) => Error::Overloaded {
                reason: format!("the ingest queue holds {} requests", self.jobs.len()),
                retry_after_s: QUEUE_FULL_RETRY_AFTER_S,
            },
            TrySendError::Disconnected(_) => Error::Engine(nudge_engine::Error::Closed),
        })?;
        answer.await.map_err(|_| Error::Engine(nudge_engine::Error::Closed))?
    }
}

fn run(engine: &Engine, queue: &Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut total = first.records.len();
        let mut jobs = vec![first];
        while total < MAX_COALESCED_RECORDS {
            match queue.try_recv() {
                Ok(job) if total + job.records.len() <= MAX_COALESCED_RECORDS => {
                    total += job.records.len();
                    jobs.push(job);
                }
                Ok(job) => {
                    // Too big to add: ingest what we have, then this one.
                    process(engine, jobs);
                    jobs = vec![job];
                    break;
                }
                Err(_) => break,
            }
        }
        process(engine, jobs);
    }
}

fn alone(engine: &Engine, job: Job) {
    let len = job.records.len();
    let answer = engine
        .ingest(job.records)
        .map(|o| Acked { accepted: len - o.duplicates, duplicates: o.duplicates })
        .map_err(Error::Engine);
    let _ = job.reply.send(answer);
}

fn process(engine: &Engine, jobs: Vec<Job>) {
    if jobs.len() == 1 {
        if let Some(job) = jobs.into_iter().next() {
            alone(engine, job);
        }
        return;
    }
    let lengths: Vec<usize> = jobs.iter().map(|j| j.records.len()).collect();
    let combined: Vec<Record> = jobs.iter().flat_map(|j| j.records.iter().cloned()).collect();
    match engine.ingest(combined) {
        Ok(outcome) => {
            let mut start = 0;
            let mut duplicates = outcome.duplicate_indexes.iter().peekable();
            for (job, len) in jobs.into_iter().zip(lengths) {
                let mut dups = 0;
                while duplicates.next_if(|&&i| i < start + len).is_some() {
                    dups += 1;
                }
                start += len;
                let _ = job.reply.send(Ok(Acked { accepted: len - dups, duplicates: dups }));
            }
        }
        Err(nudge_engine::Error::InvalidInput { index: Some(index), field, reason }) => {
            // One request's record: refuse that request, ingest the others again.
            let mut start = 0;
            let mut rest = Vec::with_capacity(jobs.len() - 1);
            let mut culprit = Some((index, field, reason));
            for (job, len) in jobs.into_iter().zip(lengths) {
                match culprit.take() {
                    Some((i, field, reason)) if i >= start && i < start + len => {
                        let error = nudge_engine::Error::InvalidInput {
                            index: Some(i - start),
                            field,
                            reason,
                        };
                        let _ = job.reply.send(Err(Error::Engine(error)));
                    }
                    other => {
                        culprit = other;
                        rest.push(job);
                    }
                }
                start += len;
            }
            if culprit.is_some() {
                // The index matched no request (cannot happen): answer each alone.
                rest.into_iter().for_each(|job| alone(engine, job));
            } else {
                process(engine, rest);
            }
        }
        Err(error) => match storage_failure_copy(&error) {
            // The log refused the write: every request gets that answer (ingesting
            // each alone would only meet the poisoned writer).
            Some(copy) => {
                let mut jobs = jobs.into_iter();
                if let Some(first) = jobs.next() {
                    let _ = first.reply.send(Err(Error::Engine(error)));
                }
                for job in jobs {
                    let _ = job.reply.send(Err(Error::Engine(copy())));
                }
            }
            None => {
                for job in jobs {
                    alone(engine, job);
                }
            }
        },
    }
}

/// For a failure of the log itself (I/O, full disk, poisoned, closed), a
/// way to make more of the same error; `None` for anything about the records.
fn storage_failure_copy(
    error: &nudge_engine::Error,
) -> Option<Box<dyn Fn() -> nudge_engine::Error>> {
    use nudge_engine::Error as E;
    let io = |source: &std::io::Error| std::io::Error::new(source.kind(), source.to_string());
    let make: Box<dyn Fn() -> E> = match error {
        E::Io { context, source } => {
            let (context, source) = (context.clone(), io(source));
            Box::new(move || E::Io { context: context.clone(), source: io(&source) })
        }
        E::DiskFull { context, source } => {
            let (context, source) = (context.clone(), io(source));
            Box::new(move || E::DiskFull { context: context.clone(), source: io(&source) })
        }
        E::Poisoned { cause } => {
            let cause = cause.clone();
            Box::new(move || E::Poisoned { cause: cause.clone() })
        }
        E::Closed => Box::new(|| E::Closed),
        _ => return None,
    };
    Some(make)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use nudge_engine::{EngineOptions, Event, QueryOptions};

    fn job(records: Vec<Record>) -> (Job, oneshot::Receiver<Result<Acked>>) {
        let (reply, answer) = oneshot::channel();
        (Job { records, reply }, answer)
    }

    fn count(engine: &Engine, q: &str) -> u64 {
        engine.query(q, &QueryOptions { limit: Some(0), ..Default::default() }).unwrap().count
    }

    #[test]
    fn one_bad_request_is_refused_alone_and_duplicates_are_counted_per_request() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path(), EngineOptions::default()).unwrap();
        let e = |user: &str, id: &str| -> Record { Event::new(user, "Seen").id(id).into() };
        let (first, first_answer) = job(vec![e("a", "1"), e("a", "2")]);
        let (bad, bad_answer) = job(vec![e("b", "3"), Event::new("", "Seen").into()]);
        let (repeat, repeat_answer) = job(vec![e("c", "2"), e("c", "4")]);
        process(&engine, vec![first, bad, repeat]);
        assert_eq!(
            first_answer.blocking_recv().unwrap().unwrap(),
            Acked { accepted: 2, duplicates: 0 }
        );
        match bad_answer.blocking_recv().unwrap() {
            Err(Error::Engine(nudge_engine::Error::InvalidInput { index, field, .. })) => {
                assert_eq!((index, field.as_str()), (Some(1), "user_id"));
            }
            other => panic!("{other:?}"),
        }
        // Id "2" repeats the first request's: acknowledged, not stored again.
        assert_eq!(
            repeat_answer.blocking_recv().unwrap().unwrap(),
            Acked { accepted: 1, duplicates: 1 }
        );
        assert_eq!(count(&engine, r#"did "Seen""#), 2, "a and c; nothing of b's request");
        assert_eq!(count(&engine, r#"did "Seen" at least 2 times"#), 1);
    }

    #[test]
    fn a_full_queue_refuses_at_once_and_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(Engine::open(dir.path(), EngineOptions::default()).unwrap());
        // Nobody takes from a queue of one: the first request stays and fills it.
        let (jobs, _taken_by_nobody) = crossbeam_channel::bounded(1);
        let queue = IngestQueue { jobs };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let waiting = queue.clone();
            let first = tokio::spawn(async move {
                waiting.ingest(vec![Event::new("a", "Queued").into()]).await
            });
            while queue.jobs.is_empty() {
                tokio::task::yield_now().await;
            }
            match queue.ingest(vec![Event::new("b", "Refused").into()]).await {
                Err(Error::Overloaded { retry_after_s, .. }) => assert!(retry_after_s >= 1),
                other => panic!("{other:?}"),
            }
            first.abort();
        });
        assert_eq!(count(&engine, r#"did "Refused""#), 0);
    }

    #[test]
    fn concurrent_requests_through_the_queue_are_each_answered() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(Engine::open(dir.path(), EngineOptions::default()).unwrap());
        let queue = IngestQueue::start(engine.clone()).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        let answers = runtime.block_on(async {
            let mut tasks = tokio::task::JoinSet::new();
            for n in 0..200u32 {
                let queue = queue.clone();
                // Every tenth request repeats the id of the one before it.
                let id = if n % 10 == 9 { n - 1 } else { n };
                tasks.spawn(async move {
                    queue
                        .ingest(vec![Event::new(format!("u{n}"), "Hit").id(id.to_string()).into()])
                        .await
                });
            }
            let mut answers = Vec::new();
            while let Some(answer) = tasks.join_next().await {
                answers.push(answer.unwrap().unwrap());
            }
            answers
        });
        let duplicates: usize = answers.iter().map(|a| a.duplicates).sum();
        let accepted: usize = answers.iter().map(|a| a.accepted).sum();
        assert_eq!((accepted, duplicates), (180, 20));
        assert_eq!(count(&engine, r#"did "Hit""#), 180);
    }

    #[test]
    fn a_storage_failure_answers_every_coalesced_request_with_that_failure() {
        let dir = tempfile::tempdir().unwrap();
        let full: nudge_engine::internals::log::writer::FaultInjector = std::sync::Arc::new(|op| {
            if op == nudge_engine::internals::log::writer::IoOp::Write {
                return Err(std::io::Error::from(std::io::ErrorKind::StorageFull));
            }
            Ok(())
        });
        let options = EngineOptions { fault_injector: Some(full), ..Default::default() };
        let engine = Engine::open(dir.path(), options).unwrap();
        let e = |user: &str| -> Record { Event::new(user, "Seen").into() };
        let (jobs, answers): (Vec<_>, Vec<_>) =
            ["a", "b", "c"].into_iter().map(|u| job(vec![e(u)])).unzip();
        process(&engine, jobs);
        for answer in answers {
            match answer.blocking_recv().unwrap() {
                Err(Error::Engine(nudge_engine::Error::DiskFull { .. })) => {}
                other => panic!("expected the full disk for every request, got {other:?}"),
            }
        }
        assert_eq!(count(&engine, r#"did "Seen""#), 0);
    }
}

//! The Nudge side of the push part: the release `nudge serve` as its own
//! process (so its CPU time is its own), fed over HTTP as an application would.
//!
//! Before timing: the subscriptions are registered (`POST /v1/subscriptions`,
//! each key checked on the curve) and a live campaign `on "Go"` is saved
//! whose message renders to the benchmark's notification. Timed: from the
//! first `POST /v1/events` (batches of [`EVENT_BATCH`] `Go` events) until the
//! receiver has every subscription's message; the CPU seconds are the server
//! process's user + system time over that window (`/proc/<pid>/stat`). So
//! Nudge's figure covers the whole pipeline (ingest with fsync, the trigger
//! decision, the outbox, encryption, VAPID, HTTP/2 and the durable reports as
//! they happen), not only the sending.

use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Method;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use nudge_benches::serve::ServeProcess;

use crate::context::{Failure, Result};
use crate::fail;
use crate::push::receiver::Receiver;
use crate::push::{Measured, Notification, Subscriber, VAPID_SUBJECT};

/// Events per `POST /v1/events` in the timed phase.
pub const EVENT_BATCH: usize = 1000;
/// Registrations in flight at once (before timing).
const REGISTER_CONCURRENCY: usize = 64;
/// The benchmark's write key (at least 16 characters).
const WRITE_KEY: &str = "wk_peers_push_write_key_0123456789";
/// The benchmark's admin key.
const ADMIN_KEY: &str = "ak_peers_push_admin_key_0123456789";
/// The campaign's id.
const CAMPAIGN: &str = "peers-push";
/// The trigger event.
const TRIGGER_EVENT: &str = "Go";
/// Longest wait for the durable reports after the last message arrived.
const REPORT_TIMEOUT: Duration = Duration::from_secs(120);
/// The fan-out fails if no new subscription is reached for this long.
pub const STALL: Duration = Duration::from_secs(60);
/// The running server, stopped (SIGTERM, then waited for) when dropped.
/// A small client of the server's HTTP API.
struct Api {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

impl Api {
    /// Calls `method path` with `key` and a JSON body; the answer's JSON, or
    /// an error naming the call unless the status is 2xx.
    async fn call(&self, method: Method, path: &str, key: &str, body: Bytes) -> Result<Value> {
        let request = hyper::Request::builder()
            .method(method.clone())
            .uri(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/json")
            .body(Full::new(body))
            .map_err(|e| fail!("bad request {path}: {e}"))?;
        let response =
            self.client.request(request).await.map_err(|e| fail!("{method} {path}: {e}"))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| fail!("{method} {path}: {e}"))?
            .to_bytes();
        if !status.is_success() {
            return Err(fail!(
                "{method} {path} answered {status}: {}",
                String::from_utf8_lossy(&bytes)
            ));
        }
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        Ok(serde_json::from_slice(&bytes)?)
    }

    async fn json(&self, method: Method, path: &str, key: &str, body: &Value) -> Result<Value> {
        self.call(method, path, key, Bytes::from(serde_json::to_vec(body)?)).await
    }
}

/// Registers every subscriber, `REGISTER_CONCURRENCY` at a time.
async fn register(api: Arc<Api>, receiver: &Receiver, subscribers: &[Subscriber]) -> Result<()> {
    let bodies: Arc<Vec<Bytes>> = Arc::new(
        subscribers
            .iter()
            .enumerate()
            .map(|(n, s)| {
                let body = json!({
                    "user_id": format!("p{n}"),
                    "subscription": {"endpoint": receiver.endpoint(n), "keys": {"p256dh": s.p256dh, "auth": s.auth}},
                });
                serde_json::to_vec(&body).map(Bytes::from)
            })
            .collect::<std::result::Result<_, _>>()?,
    );
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers: tokio::task::JoinSet<Result<()>> = tokio::task::JoinSet::new();
    for _ in 0..REGISTER_CONCURRENCY {
        let (api, bodies, next) = (api.clone(), bodies.clone(), next.clone());
        workers.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(n) else { return Ok(()) };
                api.call(Method::POST, "/v1/subscriptions", WRITE_KEY, body.clone()).await?;
            }
        });
    }
    while let Some(joined) = workers.join_next().await {
        joined.map_err(|e| fail!("a registration task failed: {e}"))??;
    }
    Ok(())
}

/// The campaign: live on `Go`, no caps, no quiet hours, no control group.
fn campaign(notification: &Notification) -> Value {
    json!({
        "name": "Peer benchmark fan-out",
        "trigger": format!("on \"{TRIGGER_EVENT}\""),
        "message": {
            "title": notification.title,
            "body": notification.body,
            "url": notification.url,
            "icon": notification.icon,
            "ttl": "1h",
        },
    })
}

/// Waits for the durable report of every message: the campaign's stats must
/// say `sent` = `delivered` = `n` and nothing failed or dropped.
async fn check_reports(api: &Api, n: u64) -> Result<()> {
    let started = Instant::now();
    loop {
        let path = format!("/v1/campaigns/{CAMPAIGN}/stats");
        let stats = api.call(Method::GET, &path, ADMIN_KEY, Bytes::new()).await?;
        let get = |field: &str| stats[field].as_u64().unwrap_or(0);
        if get("failed") > 0 || get("sent") > n {
            return Err(fail!("Nudge's campaign stats show failures: {stats}"));
        }
        if get("delivered") == n && get("sent") == n {
            return Ok(());
        }
        if started.elapsed() > REPORT_TIMEOUT {
            return Err(fail!("Nudge's reports did not reach {n} delivered: {stats}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs the Nudge side under `dir`; returns the measurement and Nudge's VAPID public key.
pub fn run(
    dir: &Path,
    receiver: &Receiver,
    subscribers: &[Subscriber],
    notification: &Notification,
) -> Result<(Measured, String)> {
    let data = dir.join("nudge-data");
    if data.exists() {
        std::fs::remove_dir_all(&data)?;
    }
    let ca_file = dir.join("receiver-ca.pem");
    std::fs::write(&ca_file, &receiver.ca_pem)?;
    let args: [&OsStr; 7] = [
        "--data".as_ref(),
        data.as_os_str(),
        "--allow-insecure-push".as_ref(),
        "--push-ca-file".as_ref(),
        ca_file.as_os_str(),
        "--vapid-subject".as_ref(),
        VAPID_SUBJECT.as_ref(),
    ];
    let server = ServeProcess::start(
        &args,
        &[("NUDGE_WRITE_KEY", WRITE_KEY), ("NUDGE_ADMIN_KEY", ADMIN_KEY)],
    )
    .map_err(Failure)?;
    let (pid, port) = (server.pid(), server.port);

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let api = Arc::new(Api {
        client: Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(REGISTER_CONCURRENCY)
            .build_http(),
        base: format!("http://127.0.0.1:{port}"),
    });
    let n = subscribers.len();
    eprintln!("peers: push: registering {n} subscriptions with Nudge");
    let vapid_key = runtime.block_on(async {
        let key = api.call(Method::GET, "/v1/webpush/vapid-public-key", WRITE_KEY, Bytes::new());
        let key = key.await?["key"].as_str().unwrap_or_default().to_owned();
        register(api.clone(), receiver, subscribers).await?;
        let path = format!("/v1/campaigns/{CAMPAIGN}");
        api.json(Method::PUT, &path, ADMIN_KEY, &campaign(notification)).await?;
        Ok::<_, crate::context::Failure>(key)
    })?;
    let batches: Vec<Bytes> = (0..n)
        .collect::<Vec<_>>()
        .chunks(EVENT_BATCH)
        .map(|chunk| {
            let events: Vec<Value> = chunk
                .iter()
                .map(|u| json!({"user_id": format!("p{u}"), "name": TRIGGER_EVENT, "id": format!("go-{u}")}))
                .collect();
            serde_json::to_vec(&events).map(Bytes::from)
        })
        .collect::<std::result::Result<_, _>>()?;

    receiver.reset(n);
    let ticks = nudge_benches::cpu::clock_ticks();
    eprintln!("peers: push: Nudge fan-out to {n} subscriptions");
    let cpu_before = nudge_benches::cpu::process_seconds(pid, ticks)?;
    let t0 = Instant::now();
    runtime.block_on(async {
        for batch in &batches {
            let answer = api.call(Method::POST, "/v1/events", WRITE_KEY, batch.clone()).await?;
            if answer["accepted"].as_u64().is_none_or(|a| a == 0) {
                return Err(fail!("Nudge accepted no events: {answer}"));
            }
        }
        Ok(())
    })?;
    let done = receiver.wait_done(STALL)?;
    let cpu_after = nudge_benches::cpu::process_seconds(pid, ticks)?;
    let wall_s = done.duration_since(t0).as_secs_f64();
    runtime.block_on(check_reports(&api, n as u64))?;
    let counts = receiver.counts();
    drop(server);
    Ok((
        Measured {
            system: "Nudge",
            messages: counts.distinct,
            wall_s,
            cpu_s: cpu_after - cpu_before,
            counts,
        },
        vapid_key,
    ))
}

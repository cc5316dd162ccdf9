//! HTTP and push throughput (issue 5's targets), measured end to end:
//!
//! 1. **HTTP ingest, batches**: the real `nudge serve` (release build) on
//!    loopback, `POST /v1/events` with 1000-event batches from 8 connections;
//!    events/s acknowledged (each answer comes after fsync).
//! 2. **HTTP ingest, single events**: one event per request from 128
//!    connections; requests/s.
//! 3. **Push fan-out**: an engine, the real `Sender` and a loopback push
//!    service that answers 201. A live campaign fires for N subscribed users;
//!    messages/s to the last request received, twice: end to end from the
//!    first ingest (decisions, outbox, RFC 8291 encryption with a fresh key per
//!    message, VAPID, HTTP, the durable reports), and from the outbox with
//!    every message already decided and queued (the sending alone). Each run
//!    prints the CPU it cost, by thread.
//!
//! The load generator and the receiver run on the same 2 cores as the server,
//! so every figure is lower than the server alone would reach.
//! Run with `cargo bench -p nudge-benches --bench http` (`NUDGE_BENCH_SECONDS`
//! sets each ingest phase's length, default 10; `NUDGE_BENCH_RUNS` the runs of
//! each fan-out, default 5, reported as a median; `NUDGE_BENCH_ONLY=ingest` or
//! `=fanout` runs one part, `=outbox` the fan-out from the outbox alone).

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mimalloc::MiMalloc;
use nudge_benches::serve::ServeProcess;
use p256::elliptic_curve::sec1::ToEncodedPoint;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

const WRITE_KEY: &str = "wk_bench_write_key_0123456789";
const ADMIN_KEY: &str = "ak_bench_admin_key_0123456789";
const BATCH_EVENTS: usize = 1000;
const BATCH_CONNECTIONS: usize = 8;
const SINGLE_CONNECTIONS: usize = 128;
const FANOUT_USERS: usize = 50_000;

fn start_server(data: &Path) -> ServeProcess {
    ServeProcess::start(
        &[OsStr::new("--data"), data.as_os_str()],
        &[("NUDGE_WRITE_KEY", WRITE_KEY), ("NUDGE_ADMIN_KEY", ADMIN_KEY)],
    )
    .expect("nudge serve")
}

fn seconds() -> u64 {
    std::env::var("NUDGE_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10)
}

/// Posts bodies made by `body(connection, n)` from `connections` loops for
/// `duration`; returns (requests, events acknowledged, latencies in µs).
async fn load(
    url: String,
    connections: usize,
    duration: Duration,
    body: impl Fn(usize, u64) -> Bytes + Send + Sync + 'static,
) -> (u64, u64, Vec<u64>) {
    let client: Client<_, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).pool_max_idle_per_host(connections).build_http();
    let body = Arc::new(body);
    let deadline = Instant::now() + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for connection in 0..connections {
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        tasks.spawn(async move {
            let (mut requests, mut events, mut latencies) = (0u64, 0u64, Vec::new());
            let mut n = 0u64;
            while Instant::now() < deadline {
                let request = hyper::Request::post(url.as_str())
                    .header("authorization", format!("Bearer {WRITE_KEY}"))
                    .header("content-type", "application/json")
                    .body(Full::new(body(connection, n)))
                    .expect("request");
                n += 1;
                let sent = Instant::now();
                let response = client.request(request).await.expect("answer");
                let status = response.status();
                let answer = response.into_body().collect().await.expect("body").to_bytes();
                assert!(status.is_success(), "{status}: {}", String::from_utf8_lossy(&answer));
                latencies.push(sent.elapsed().as_micros() as u64);
                let json: serde_json::Value = serde_json::from_slice(&answer).expect("json");
                requests += 1;
                events += json["accepted"].as_u64().unwrap_or(0);
            }
            (requests, events, latencies)
        });
    }
    let mut total = (0, 0, Vec::new());
    while let Some(Ok((r, e, l))) = tasks.join_next().await {
        total.0 += r;
        total.1 += e;
        total.2.extend(l);
    }
    total.2.sort_unstable();
    total
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    nudge_benches::percentile(sorted, p).unwrap_or(0)
}

fn event_json(user: u64, n: u64) -> String {
    format!(
        r#"{{"user_id":"u{user}","name":"Product Viewed","props":{{"price":{}.5,"sku":"s{}"}},"id":"e{user}-{n}"}}"#,
        n % 100,
        n % 977
    )
}

fn http_ingest(runtime: &tokio::runtime::Runtime) {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start_server(dir.path());
    let url = format!("http://127.0.0.1:{}/v1/events", server.port);
    let duration = Duration::from_secs(seconds());

    let (requests, events, latencies) =
        runtime.block_on(load(url.clone(), BATCH_CONNECTIONS, duration, |c, n| {
            let events: Vec<String> = (0..BATCH_EVENTS as u64)
                .map(|i| {
                    event_json(
                        (c as u64 * 1_000_003 + n * 1000 + i) % 200_000,
                        c as u64 * 1_000_000_000 + n * 1000 + i,
                    )
                })
                .collect();
            Bytes::from(format!("[{}]", events.join(",")))
        }));
    let secs = duration.as_secs_f64();
    println!(
        "http ingest, {BATCH_EVENTS}-event batches, {BATCH_CONNECTIONS} connections: {:.0} events/s ({requests} requests, p50 {} µs, p99 {} µs per batch)",
        events as f64 / secs,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );

    let (requests, _, latencies) =
        runtime.block_on(load(url, SINGLE_CONNECTIONS, duration, |c, n| {
            Bytes::from(format!(
                "[{}]",
                event_json((c as u64 * 7919 + n) % 200_000, 1 << 40 | (c as u64) << 32 | n)
            ))
        }));
    println!(
        "http ingest, single events, {SINGLE_CONNECTIONS} connections: {:.0} requests/s (p50 {} µs, p99 {} µs)",
        requests as f64 / secs,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
}

/// A loopback push service that answers 201 and counts.
fn start_receiver(count: Arc<AtomicU64>) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    listener.set_nonblocking(true).expect("nonblocking");
    let receiving = std::thread::Builder::new().name("push-receiver".into());
    let _ = receiving.spawn(move || {
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let count = count.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: hyper::Request<hyper::body::Incoming>| {
                            let count = count.clone();
                            async move {
                                let _ = request.into_body().collect().await;
                                count.fetch_add(1, Ordering::Relaxed);
                                hyper::Response::builder().status(201).body(Full::new(Bytes::new()))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    addr
}

/// Where a fan-out run starts the clock.
#[derive(Clone, Copy, PartialEq)]
enum FanOut {
    /// At the first `Go` ingest: the decisions (`FireLoop`), the outbox and
    /// the sending all run inside the timed window.
    EndToEnd,
    /// With every message already decided and queued (a campaign's audience
    /// resolved, as a scheduled run leaves it): claim, encrypt, VAPID, POST and
    /// the durable reports only.
    FromOutbox,
}

/// Fan-out runs of each kind (`NUDGE_BENCH_RUNS`); the median is reported.
fn fanout_runs() -> usize {
    std::env::var("NUDGE_BENCH_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(5).max(1)
}

/// Runs one fan-out; returns messages/s.
fn push_fanout(mode: FanOut) -> f64 {
    use nudge_engine::{Engine, EngineOptions, Event, Record, Subscription};
    let received = Arc::new(AtomicU64::new(0));
    let receiver = start_receiver(received.clone());
    let dir = tempfile::tempdir().expect("temp dir");
    let engine = Arc::new(Engine::open(dir.path(), EngineOptions::default()).expect("open"));
    let secret = p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
    let public = secret.public_key().to_encoded_point(false);
    let b64 = |bytes: &[u8]| nudge_server::push::webpush::b64u_encode(bytes);
    let (p256dh, auth) = (b64(public.as_bytes()), b64(&[7u8; 16]));
    let records: Vec<Record> = (0..FANOUT_USERS)
        .map(|u| Record::Subscribe {
            user_id: format!("u{u}"),
            subscription: Subscription {
                endpoint: format!("http://{receiver}/push/{u}"),
                p256dh: p256dh.clone(),
                auth: auth.clone(),
            },
        })
        .collect();
    for chunk in records.chunks(10_000) {
        engine.ingest(chunk.to_vec()).expect("subscriptions");
    }
    let campaign = nudge_server::json::campaign_from_json(
        "fanout",
        &serde_json::json!({"name": "Fan-out", "trigger": "on \"Go\"", "message": {"title": "Hi {{ user_id | default('') }}", "body": "A message", "url": "https://shop.example/", "ttl": "1h"}}),
        &jiff::tz::TimeZone::UTC,
    )
    .expect("campaign");
    engine.save_campaign(campaign).expect("save");
    let go = || {
        let events: Vec<Record> =
            (0..FANOUT_USERS).map(|u| Event::new(format!("u{u}"), "Go").into()).collect();
        for chunk in events.chunks(10_000) {
            engine.ingest(chunk.to_vec()).expect("events");
        }
    };
    if mode == FanOut::FromOutbox {
        go();
        engine.fire_due().expect("decisions");
        assert_eq!(engine.outbox_len(), FANOUT_USERS, "every message queued before the clock");
    }

    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let metrics = Arc::new(nudge_server::http::metrics::Metrics::new());
    let vapid_dir = tempfile::tempdir().expect("temp dir");
    let vapid = nudge_server::push::webpush::vapid::Vapid::load_or_create(
        &vapid_dir.path().join("vapid.pk8"),
        "mailto:bench@nudge-demo.dev",
    )
    .expect("vapid");
    let sender = Arc::new(
        nudge_server::push::sender::Sender::new(vapid, true, engine.clock().clone(), metrics)
            .expect("sender"),
    );
    let _fires = nudge_engine::FireLoop::spawn(engine.clone(), |_| {}, |e| eprintln!("fire: {e}"))
        .expect("fire loop");
    let (pid, ticks) = (std::process::id(), nudge_benches::cpu::clock_ticks());
    let cpu_before = nudge_benches::cpu::thread_seconds(pid, ticks);
    let started = Instant::now();
    let handle = runtime.handle().clone();
    let outbox_sender = sender.clone();
    let _outbox = nudge_engine::OutboxLoop::spawn(
        engine.clone(),
        move |items, reports| outbox_sender.dispatch(&handle, items, reports),
        |e| eprintln!("outbox: {e}"),
    )
    .expect("outbox loop");
    if mode == FanOut::EndToEnd {
        go();
    }
    while received.load(Ordering::Relaxed) < FANOUT_USERS as u64 {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "fan-out stalled at {}",
            received.load(Ordering::Relaxed)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = started.elapsed();
    let cpu_after = nudge_benches::cpu::thread_seconds(pid, ticks);
    let what = match mode {
        FanOut::EndToEnd => "end to end (ingest, decide, encrypt, VAPID, POST, durable report)",
        FanOut::FromOutbox => "from the outbox (claim, encrypt, VAPID, POST, durable report)",
    };
    println!(
        "push fan-out {what}, {FANOUT_USERS} users, loopback receiver: {:.0} messages/s ({:.2} s)",
        FANOUT_USERS as f64 / took.as_secs_f64(),
        took.as_secs_f64()
    );
    while engine.outbox_len() > 0 && started.elapsed() < Duration::from_secs(300) {
        std::thread::sleep(Duration::from_millis(10));
    }
    println!(
        "  all {FANOUT_USERS} reports recorded after {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let spent = nudge_benches::cpu::spent(&cpu_before, &cpu_after);
    let total: f64 = spent.iter().map(|(_, s)| s).sum();
    println!(
        "  CPU until the last message: {total:.2} s ({:.1} µs per message), by thread:",
        total * 1e6 / FANOUT_USERS as f64
    );
    for (thread, seconds) in spent {
        println!("    {thread:<24} {seconds:.2} s");
    }
    FANOUT_USERS as f64 / took.as_secs_f64()
}

/// Runs `mode` [`fanout_runs`] times and prints the median and range.
fn push_fanouts(mode: FanOut, name: &str) {
    let mut rates: Vec<f64> = (0..fanout_runs()).map(|_| push_fanout(mode)).collect();
    rates.sort_by(f64::total_cmp);
    let median = nudge_benches::percentile(&rates, 0.5).unwrap_or(0.0);
    println!(
        "push fan-out {name}: median {median:.0} messages/s over {} runs (min {:.0}, max {:.0})",
        rates.len(),
        rates[0],
        rates[rates.len() - 1]
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: run only under bench.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    // NUDGE_BENCH_ONLY=ingest or =fanout runs one part; =outbox only the
    // fan-out from the outbox.
    let only = std::env::var("NUDGE_BENCH_ONLY").unwrap_or_default();
    if only != "fanout" && only != "outbox" {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
        http_ingest(&runtime);
    }
    if only != "ingest" && only != "outbox" {
        push_fanouts(FanOut::EndToEnd, "end to end");
    }
    if only != "ingest" {
        push_fanouts(FanOut::FromOutbox, "from the outbox");
    }
}

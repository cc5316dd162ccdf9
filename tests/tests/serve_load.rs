//! Black-box load and abuse tests of `nudge serve`: slowloris and idle
//! connections are cut off at the header-read timeout while a normal client is
//! served; connections beyond `--max-connections` are closed at once;
//! oversized bodies get 413 and stalled bodies 408; a burst over the key's rate
//! and the in-flight limit gets 429 and 503 with `Retry-After`, never hangs,
//! and afterwards the server serves normally. Everything acknowledged is
//! stored and nothing refused is.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nudge_tests::server::{NudgeServer, TEST_ADMIN_KEY, TEST_WRITE_KEY, call_with};
use serde_json::{Value, json};

/// The header-read timeout the slowloris test runs the server with.
const HEADER_TIMEOUT: Duration = Duration::from_millis(2000);
/// Slack allowed past a timeout before a connection must be closed.
const CLOSE_SLACK: Duration = Duration::from_secs(1);
/// Longest any single answer may take before the test calls it a hang.
const HANG: Duration = Duration::from_secs(30);

fn address(server: &NudgeServer) -> String {
    server.base.trim_start_matches("http://").to_owned()
}

/// Opens a connection and writes `bytes` (a partial request, or nothing).
fn open_and_write(address: &str, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.write_all(bytes).unwrap();
    stream
}

/// Reads until the server closes `stream` (end of stream or reset), at most
/// until `deadline`: what it sent, or `None` when it is still open.
fn closed_by(stream: &mut TcpStream, deadline: Instant) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buffer) {
            Ok(0) => return Some(got),
            Ok(n) => got.extend_from_slice(&buffer[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return None;
            }
            Err(_) => return Some(got),
        }
    }
}

/// One answer: status, `Retry-After`, JSON body, and how long it took.
struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: Value,
    took: Duration,
}

fn new_agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(HANG).build()
}

fn send(agent: &ureq::Agent, method: &str, url: &str, key: &str, body: Option<Value>) -> Answer {
    let started = Instant::now();
    let request = agent.request(method, url).set("Authorization", &format!("Bearer {key}"));
    let result = match body {
        Some(body) => request.send_json(body),
        None => request.call(),
    };
    let response = match result {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(e) => panic!("{method} {url}: no answer within {HANG:?}: {e}"),
    };
    let status = response.status();
    let retry_after = response.header("retry-after").map(str::to_owned);
    let body = response.into_json().unwrap_or(Value::Null);
    Answer { status, retry_after, body, took: started.elapsed() }
}

fn count(server: &NudgeServer, q: &str) -> u64 {
    let query = json!({"q": q, "limit": 0});
    let (status, answer) =
        call_with("POST", &server.url("/v1/query"), Some(TEST_ADMIN_KEY), Some(query));
    assert_eq!(status, 200, "{answer}");
    answer["count"].as_u64().unwrap()
}

fn users(server: &NudgeServer, q: &str) -> BTreeSet<String> {
    let query = json!({"q": q, "limit": 100_000});
    let (status, answer) =
        call_with("POST", &server.url("/v1/query"), Some(TEST_ADMIN_KEY), Some(query));
    assert_eq!(status, 200, "{answer}");
    answer["users"].as_array().unwrap().iter().map(|u| u.as_str().unwrap().to_owned()).collect()
}

/// A well-behaved client calling `/healthz` and posting one event in turn
/// until `stop`: every answer it got and how long it took.
fn normal_client(
    server: &NudgeServer,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<Answer>> {
    let (health, events) = (server.url("/healthz"), server.url("/v1/events"));
    std::thread::spawn(move || {
        let agent = new_agent();
        let mut answers = Vec::new();
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            answers.push(send(&agent, "GET", &health, TEST_WRITE_KEY, None));
            let event =
                json!([{"user_id": format!("normal{n}"), "name": "Normal", "id": format!("n{n}")}]);
            answers.push(send(&agent, "POST", &events, TEST_WRITE_KEY, Some(event)));
            n += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
        answers
    })
}

fn metric(server: &NudgeServer, name: &str) -> f64 {
    let text = ureq::get(&server.url("/metrics")).call().unwrap().into_string().unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[test]
fn slowloris_and_idle_connections_are_cut_off_while_a_normal_client_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let timeout_ms = HEADER_TIMEOUT.as_millis().to_string();
    let server = NudgeServer::start(dir.path(), &["--header-read-timeout-ms", &timeout_ms]);
    let address = address(&server);
    let stop = Arc::new(AtomicBool::new(false));
    let client = normal_client(&server, stop.clone());

    // 150 partial HTTP/1.1 heads, 25 connections that send nothing, and 25 that
    // stop inside the HTTP/2 preface (before hyper can tell the version).
    let partial_head = format!(
        "POST /v1/events HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {TEST_WRITE_KEY}\r\ncontent-"
    );
    let mut slow = Vec::new();
    for i in 0..200 {
        let bytes: &[u8] = match i % 8 {
            0 => b"",
            1 => b"PRI * HTTP/2.0\r\n",
            _ => partial_head.as_bytes(),
        };
        slow.push((open_and_write(&address, bytes), Instant::now()));
    }
    for (i, (stream, sent)) in slow.iter_mut().enumerate() {
        let got = closed_by(stream, *sent + HEADER_TIMEOUT + CLOSE_SLACK);
        let got = got.unwrap_or_else(|| {
            panic!("slow connection {i} still open {:?} after it stalled", sent.elapsed())
        });
        let text = String::from_utf8_lossy(&got);
        assert!(text.is_empty() || text.starts_with("HTTP/1.1 408"), "connection {i}: {text}");
    }
    stop.store(true, Ordering::Relaxed);
    let answers = client.join().unwrap();

    assert!(answers.len() >= 10, "the normal client made only {} calls", answers.len());
    for answer in &answers {
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert!(answer.took < HEADER_TIMEOUT, "a normal call waited {:?}", answer.took);
    }
    let posted = answers.iter().filter(|a| a.body.get("accepted").is_some()).count() as u64;
    assert_eq!(count(&server, r#"did "Normal""#), posted);
    // The 50 silent ones can only have been closed by the idle watch.
    assert!(metric(&server, "nudge_connections_idle_closed_total") >= 50.0);
    assert!(server.stop().success());
}

#[test]
fn connections_beyond_the_limit_are_closed_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = NudgeServer::start(
        dir.path(),
        &["--max-connections", "32", "--header-read-timeout-ms", "20000"],
    );
    let address = address(&server);
    let mut held: Vec<TcpStream> = (0..32).map(|_| open_and_write(&address, b"")).collect();
    std::thread::sleep(Duration::from_secs(1));
    // Far sooner than the 20 s header timeout: closed because the limit is reached.
    for i in 0..20 {
        let mut extra = open_and_write(&address, b"");
        let closed = closed_by(&mut extra, Instant::now() + Duration::from_secs(5));
        assert!(closed.is_some(), "connection {i} over the limit was kept open");
    }
    for stream in &mut held {
        assert!(closed_by(stream, Instant::now() + Duration::from_millis(50)).is_none());
    }
    held.clear();
    // The slots come back as soon as those connections close.
    let started = Instant::now();
    loop {
        let ok = ureq::get(&server.url("/healthz")).call().is_ok_and(|r| r.status() == 200);
        if ok {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the server never came back");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(metric(&server, "nudge_connections_refused_total") >= 20.0);
    assert!(server.stop().success());
}

/// Writes `head` and then `body` from another thread (the server may answer
/// before reading it all) and returns what the server sent back.
fn post_whole(address: &str, path: &str, key: &str, body: Vec<u8>) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let mut writer = stream.try_clone().unwrap();
    let sending = std::thread::spawn(move || {
        let _ = writer.write_all(head.as_bytes());
        let _ = writer.write_all(&body);
    });
    let got = closed_by(&mut stream, Instant::now() + HANG).expect("an answer and a close");
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = sending.join();
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn oversized_and_stalled_bodies_are_cut_off_while_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let body_timeout = Duration::from_millis(1500);
    let timeout_ms = body_timeout.as_millis().to_string();
    let server = NudgeServer::start(dir.path(), &["--body-read-timeout-ms", &timeout_ms]);
    let address = address(&server);
    let stop = Arc::new(AtomicBool::new(false));
    let client = normal_client(&server, stop.clone());

    // A body that stops half-way: 408 after the body timeout, nothing stored.
    let body = json!([{"user_id": "s", "name": "Stalled"}, {"user_id": "s2", "name": "Stalled"}])
        .to_string();
    let (half, _) = body.split_at(body.len() / 2);
    let stalled_head = format!(
        "POST /v1/events HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {TEST_WRITE_KEY}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{half}",
        body.len()
    );
    let sent = Instant::now();
    let mut stalled = open_and_write(&address, stalled_head.as_bytes());
    let answer = closed_by(&mut stalled, sent + body_timeout + CLOSE_SLACK)
        .expect("the stalled upload is closed after the body timeout");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"timeout""#), "{answer}");

    // Over the size limits: 413, and the connection is closed.
    let big_event = json!({"user_id": "big", "name": "Big", "props": {"pad": "x".repeat(1 << 20)}});
    let oversized = serde_json::to_vec(&vec![big_event; 17]).unwrap();
    let answer = post_whole(&address, "/v1/events", TEST_WRITE_KEY, oversized);
    assert!(answer.starts_with("HTTP/1.1 413"), "{}", &answer[..answer.len().min(300)]);
    let query =
        serde_json::to_vec(&json!({"q": format!("did \"{}\"", "x".repeat(2 << 20))})).unwrap();
    let answer = post_whole(&address, "/v1/query", TEST_ADMIN_KEY, query);
    assert!(answer.starts_with("HTTP/1.1 413"), "{}", &answer[..answer.len().min(300)]);

    stop.store(true, Ordering::Relaxed);
    let answers = client.join().unwrap();
    assert!(!answers.is_empty());
    for answer in &answers {
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    assert_eq!(count(&server, r#"did "Stalled" or did "Big""#), 0);
    let posted = answers.iter().filter(|a| a.body.get("accepted").is_some()).count() as u64;
    assert_eq!(count(&server, r#"did "Normal""#), posted);
    assert!(server.stop().success());
}

/// Opens `n` uploads that send their head and part of the body, then stall,
/// each holding one in-flight slot of the server.
fn stalled_uploads(address: &str, n: usize) -> Vec<TcpStream> {
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {TEST_WRITE_KEY}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n[{{\"user_id\""
    );
    (0..n).map(|_| open_and_write(address, head.as_bytes())).collect()
}

fn events_of(request: &str, n: usize, name: &str) -> Value {
    let events: Vec<Value> = (0..n)
        .map(|i| json!({"user_id": request, "name": name, "id": format!("{request}-{i}")}))
        .collect();
    Value::Array(events)
}

#[test]
fn a_burst_gets_429_and_503_with_retry_after_and_what_was_acknowledged_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let in_flight = 4;
    let server = NudgeServer::start(
        dir.path(),
        &["--max-in-flight", &in_flight.to_string(), "--write-rate-limit", "10"],
    );
    let address = address(&server);
    let events_url = server.url("/v1/events");
    let agent = new_agent();

    // Every in-flight slot held by a stalled upload: everything else but
    // /healthz and /metrics is refused at once with 503 and Retry-After.
    // The uploads are admitted once the server has read their heads; until
    // then /metrics (exempt) shows fewer in flight. A request sent before that
    // could take a slot and leave an upload refused, so nothing else is sent.
    let mut uploads = stalled_uploads(&address, in_flight);
    let started = Instant::now();
    while metric(&server, "nudge_requests_in_flight") < in_flight as f64 {
        assert!(started.elapsed() < HANG, "the stalled uploads never took every slot");
        std::thread::sleep(Duration::from_millis(20));
    }
    let segments = server.url("/v1/segments");
    assert_eq!(send(&agent, "GET", &segments, TEST_ADMIN_KEY, None).status, 503);
    let shed: Vec<Answer> = (0..20)
        .map(|n| {
            let body = events_of(&format!("shed{n}"), 1, "Shed");
            send(&agent, "POST", &events_url, TEST_WRITE_KEY, Some(body))
        })
        .collect();
    for answer in &shed {
        assert_eq!(answer.status, 503, "{}", answer.body);
        assert_eq!(answer.body["error"]["code"], "overloaded", "{}", answer.body);
        assert!(answer.retry_after.as_deref().is_some_and(|s| s.parse::<u64>().is_ok()));
    }
    assert_eq!(send(&agent, "GET", &server.url("/healthz"), TEST_WRITE_KEY, None).status, 200);
    // Closing the stalled uploads frees their slots.
    uploads.clear();

    // A burst from 16 clients at once, each request a distinct user with 20 events.
    std::thread::sleep(Duration::from_millis(1100));
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let url = events_url.clone();
            std::thread::spawn(move || {
                let agent = new_agent();
                (0..15)
                    .map(|n| {
                        let request = format!("burst{t}-{n}");
                        let body = events_of(&request, 20, "Burst");
                        (request, send(&agent, "POST", &url, TEST_WRITE_KEY, Some(body)))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let answers: Vec<(String, Answer)> =
        threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let mut acknowledged = BTreeSet::new();
    let (mut limited, mut overloaded) = (0, 0);
    for (request, answer) in &answers {
        match answer.status {
            200 => {
                assert_eq!(answer.body["accepted"], 20, "{}", answer.body);
                acknowledged.insert(request.clone());
            }
            429 | 503 => {
                let code = if answer.status == 429 { "rate_limited" } else { "overloaded" };
                assert_eq!(answer.body["error"]["code"], code, "{}", answer.body);
                assert!(answer.retry_after.is_some(), "{} without Retry-After", answer.status);
                if answer.status == 429 {
                    limited += 1;
                } else {
                    overloaded += 1;
                }
            }
            other => panic!("{request}: unexpected {other}: {}", answer.body),
        }
    }
    eprintln!("burst: {limited} rate-limited, {overloaded} overloaded, {} ok", acknowledged.len());
    assert!(limited > 0, "240 requests over a rate of 10/s were all admitted");
    assert!(!acknowledged.is_empty());

    // After the burst the server serves normally.
    std::thread::sleep(Duration::from_millis(1100));
    for n in 0..5 {
        let request = format!("after{n}");
        let answer = send(
            &agent,
            "POST",
            &events_url,
            TEST_WRITE_KEY,
            Some(events_of(&request, 20, "Burst")),
        );
        assert_eq!(answer.status, 200, "{}", answer.body);
        acknowledged.insert(request);
    }

    // Exactly what was acknowledged is stored: every event of it, nothing refused.
    assert_eq!(users(&server, r#"did "Burst""#), acknowledged);
    assert_eq!(count(&server, r#"did "Burst" at least 20 times"#), acknowledged.len() as u64);
    assert_eq!(count(&server, r#"did "Shed""#), 0);
    assert!(server.stop().success());
}

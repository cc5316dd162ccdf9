//! Security of the real `nudge serve`, beyond the key and CORS checks of
//! `serve_api.rs`.
//!
//! Secrets stay secret: the server sends pushes and webhooks that
//! fail in every way the sender handles (5xx, 404, 410, 400, 401, a refused
//! connection, a redirect), is called with a wrong key, and is then stopped.
//! Nothing it printed, and nothing it answered (errors, `/metrics`,
//! decisions, stats), contains an API key, the wrong key a client sent, the
//! VAPID private key, a webhook secret, a subscription's keys or the secret
//! path of a push endpoint. The VAPID private key is in no file but its own.
//! A push service's redirect is not followed: the place it points to gets
//! nothing.
//!
//! Without `--allow-insecure-push`, a webhook host whose name resolves to a
//! loopback address is refused when the call is made: not one connection
//! reaches it.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use nudge_tests::server::{
    BrowserKeys, NudgeServer, Receiver, TEST_ADMIN_KEY, TEST_WRITE_KEY, call, call_with,
};
use serde_json::{Value, json};

/// A key no server has, sent by a client; it must not be echoed or logged.
const WRONG_KEY: &str = "ak_wrong_key_canary_5f1e0c9a77d2";
/// The campaign's webhook secret.
const WEBHOOK_SECRET: &str = "whsec_canary_0b7f3c2e91aa";

/// The forms in which `bytes` could leak into text.
fn encodings(bytes: &[u8]) -> Vec<String> {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    vec![hex, URL_SAFE_NO_PAD.encode(bytes), STANDARD.encode(bytes)]
}

/// The 32-byte private scalar inside the server's PKCS#8 VAPID key file: the
/// OCTET STRING (`04 20`) of the ECPrivateKey.
fn vapid_private_scalar(data: &Path) -> Vec<u8> {
    let pk8 = std::fs::read(data.join("vapid.pk8")).unwrap();
    let at = pk8.windows(2).position(|w| w == [0x04, 0x20]).expect("an EC private key");
    pk8[at + 2..at + 34].to_vec()
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn no_secret_reaches_the_output_or_the_answers_and_redirects_are_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    let canary = Receiver::start();
    let server = NudgeServer::start(dir.path(), &["--allow-insecure-push"]);
    let keys = BrowserKeys::new(9);

    // A refused connection: a port that was free a moment ago (its listener is dropped at once).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let users: Vec<(&str, String)> = vec![
        ("ok", format!("{}/push/tok-ok-7d3f1a", receiver.base)),
        ("flaky", format!("{}/push/tok-flaky-91c0e4", receiver.base)),
        ("gone", format!("{}/push/tok-gone-2b8d55", receiver.base)),
        ("missing", format!("{}/push/tok-missing-6e0a93", receiver.base)),
        ("bad", format!("{}/push/tok-bad-c4f217", receiver.base)),
        ("refused-auth", format!("{}/push/tok-auth-58be0d", receiver.base)),
        ("redirected", format!("{}/push/tok-redirect-0f9d6c", receiver.base)),
        ("unreachable", format!("http://{closed}/push/tok-closed-a1e5b7")),
    ];
    receiver.script("/push/tok-flaky-91c0e4", vec![(500, vec![])]);
    receiver.script("/push/tok-gone-2b8d55", vec![(410, vec![])]);
    receiver.script("/push/tok-missing-6e0a93", vec![(404, vec![])]);
    receiver.script("/push/tok-bad-c4f217", vec![(400, vec![])]);
    receiver.script("/push/tok-auth-58be0d", vec![(401, vec![]), (403, vec![])]);
    let stolen = format!("{}/stolen", canary.base);
    receiver.script("/push/tok-redirect-0f9d6c", vec![(302, vec![("Location".into(), stolen)])]);
    receiver.script("/hook/tok-hook-3c6a0e", vec![(500, vec![])]);

    let mut answers: Vec<Value> = Vec::new();
    for (user, endpoint) in &users {
        let body = json!({"user_id": user, "subscription": keys.subscription(endpoint)});
        let (status, answer) =
            call("POST", &server.url("/v1/subscriptions"), TEST_WRITE_KEY, Some(body));
        assert_eq!(status, 200, "{answer}");
    }
    let campaign = json!({
        "name": "Ping back",
        "trigger": "on \"Ping\"",
        "message": {"title": "Pong", "body": "for {{ user.id }}", "ttl": "1h"},
        "webhook": {"url": format!("{}/hook/tok-hook-3c6a0e", receiver.base), "secret": WEBHOOK_SECRET}
    });
    let (status, answer) =
        call("PUT", &server.url("/v1/campaigns/ping"), TEST_ADMIN_KEY, Some(campaign));
    assert_eq!(status, 200, "{answer}");
    let pings: Vec<Value> =
        users.iter().map(|(u, _)| json!({"user_id": u, "name": "Ping"})).collect();
    let (status, answer) =
        call("POST", &server.url("/v1/events"), TEST_WRITE_KEY, Some(Value::Array(pings)));
    assert_eq!(status, 200, "{answer}");

    // Wrong and misused keys are refused without echoing the key.
    for (key, expected) in [(Some(WRONG_KEY), 401), (Some(TEST_WRITE_KEY), 403), (None, 401)] {
        let (status, answer) = call_with("GET", &server.url("/v1/campaigns"), key, None);
        assert_eq!(status, expected, "{answer}");
        answers.push(answer);
    }

    // Every push service was tried, the flaky one and the webhook twice (backoff).
    for (_, endpoint) in users.iter().filter(|(u, _)| *u != "unreachable") {
        let path = endpoint.trim_start_matches(&receiver.base).to_owned();
        wait_until(&path, Duration::from_secs(20), || !receiver.received(&path).is_empty());
    }
    wait_until("the 500 retried", Duration::from_secs(20), || {
        receiver.received("/push/tok-flaky-91c0e4").len() >= 2
    });
    wait_until("the webhook retried", Duration::from_secs(20), || {
        receiver.received("/hook/tok-hook-3c6a0e").len() >= 2
    });
    wait_until("the 401 retried with a new token", Duration::from_secs(20), || {
        receiver.received("/push/tok-auth-58be0d").len() >= 2
    });
    // Time for a redirect to be followed, were it followed, and for the refused
    // connection to be tried and reported.
    std::thread::sleep(Duration::from_secs(2));
    assert!(canary.received("/stolen").is_empty(), "a push service's redirect was followed");
    assert_eq!(receiver.received("/push/tok-redirect-0f9d6c").len(), 1, "a 3xx is not retried");

    // What an operator reads: metrics, decisions, stats.
    let (status, metrics, _) =
        nudge_tests::server::call_raw("GET", &server.url("/metrics"), &[], None);
    assert_eq!(status, 200);
    answers.push(metrics);
    for (user, _) in &users {
        let url = server.url(&format!("/v1/decisions?user_id={user}&campaign=ping"));
        let (status, answer) = call("GET", &url, TEST_ADMIN_KEY, None);
        assert_eq!(status, 200, "{answer}");
        answers.push(answer);
    }
    let (status, stats) =
        call("GET", &server.url("/v1/campaigns/ping/stats"), TEST_ADMIN_KEY, None);
    assert_eq!(status, 200, "{stats}");
    // The redirect and the 400 were refused, not delivered.
    let redirected = call(
        "GET",
        &server.url("/v1/decisions?user_id=redirected&campaign=ping"),
        TEST_ADMIN_KEY,
        None,
    )
    .1;
    assert!(redirected.to_string().contains("$push_failed"), "{redirected}");
    answers.push(stats);

    let (status, output) = server.stop_and_collect();
    assert!(status.success(), "{status:?}");

    let mut secrets: Vec<(String, String)> = vec![
        ("the admin key".into(), TEST_ADMIN_KEY.into()),
        ("the write key".into(), TEST_WRITE_KEY.into()),
        ("a wrong key a client sent".into(), WRONG_KEY.into()),
        ("the webhook secret".into(), WEBHOOK_SECRET.into()),
        ("the webhook's path".into(), "tok-hook-3c6a0e".into()),
    ];
    for (user, endpoint) in &users {
        let token = endpoint.rsplit('/').next().unwrap().to_owned();
        secrets.push((format!("the push endpoint path of {user}"), token));
    }
    for form in encodings(&keys.public).into_iter().chain(encodings(&keys.auth)) {
        secrets.push(("a subscription key".into(), form));
    }
    let scalar = vapid_private_scalar(dir.path());
    for form in encodings(&scalar) {
        secrets.push(("the VAPID private key".into(), form));
    }

    let printed = output.join("\n");
    let answered: String = answers.iter().map(Value::to_string).collect::<Vec<_>>().join("\n");
    for (what, secret) in &secrets {
        assert!(!printed.contains(secret.as_str()), "{what} was printed:\n{printed}");
        assert!(!answered.contains(secret.as_str()), "{what} was in an answer:\n{answered}");
    }
    assert!(output.len() >= 3, "the banner was printed: {output:?}");

    // The VAPID private key is in its own file and nowhere else in the data directory.
    let mut files = vec![dir.path().to_path_buf()];
    let mut checked = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if path.file_name().is_some_and(|n| n == "vapid.pk8") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(scalar.len()).any(|w| w == scalar.as_slice()),
            "the VAPID private key is in {}",
            path.display()
        );
        checked += 1;
    }
    assert!(checked > 1, "the data directory has files to check");
}

#[test]
fn a_webhook_host_that_resolves_to_loopback_is_never_connected_to() {
    let dir = tempfile::tempdir().unwrap();
    // A canary that counts every TCP connection made to it.
    let canary = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = canary.local_addr().unwrap().port();
    canary.set_nonblocking(true).unwrap();
    let server = NudgeServer::start(dir.path(), &[]);
    // `localhost` is a name, not an address: it passes the check at definition
    // and must be refused by the resolver when the call is made.
    let campaign = json!({
        "name": "Hook", "trigger": "on \"Ping\"", "message": {"title": "t"},
        "webhook": {"url": format!("https://localhost:{port}/hook"), "secret": WEBHOOK_SECRET}
    });
    let (status, answer) =
        call("PUT", &server.url("/v1/campaigns/hook"), TEST_ADMIN_KEY, Some(campaign));
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = call(
        "POST",
        &server.url("/v1/events"),
        TEST_WRITE_KEY,
        Some(json!([{"user_id": "u1", "name": "Ping"}])),
    );
    assert_eq!(status, 200, "{answer}");
    let decisions = server.url("/v1/decisions?user_id=u1&campaign=hook");
    wait_until("the webhook to be tried and refused", Duration::from_secs(20), || {
        call("GET", &decisions, TEST_ADMIN_KEY, None).1.to_string().contains("$webhook_failed")
    });
    let answer = call("GET", &decisions, TEST_ADMIN_KEY, None).1.to_string();
    assert!(answer.contains("no public address"), "the refusal says why: {answer}");
    let mut connections = 0;
    while canary.accept().is_ok() {
        connections += 1;
    }
    assert_eq!(connections, 0, "a connection reached the loopback canary");
    assert!(server.stop().success());
}

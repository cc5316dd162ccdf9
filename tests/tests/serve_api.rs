//! Black-box tests of the HTTP API of `nudge serve`: keys (the write key may
//! not read or define anything; missing and wrong keys are refused), CORS only
//! on write endpoints, atomic and idempotent batch ingest, errors that say
//! where, oversized and malformed bodies refused while the server keeps
//! serving, segments, settings, and acknowledged events surviving SIGTERM.
#![allow(clippy::unwrap_used)]

use nudge_tests::server::{
    NudgeServer, TEST_ADMIN_KEY, TEST_WRITE_KEY, call_raw, call_with as call,
};
use serde_json::{Value, json};

/// Posts a body over a raw connection, writing it from another thread (the
/// server may answer and close before reading it all), and returns the answer.
fn post_raw(server: &NudgeServer, path: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let address = server.base.trim_start_matches("http://").to_owned();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {TEST_WRITE_KEY}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let mut writer = stream.try_clone().unwrap();
    let body = body.to_owned();
    let sending = std::thread::spawn(move || {
        let _ = writer.write_all(head.as_bytes());
        let _ = writer.write_all(body.as_bytes());
    });
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = sending.join();
    String::from_utf8_lossy(&answer).into_owned()
}

fn count(server: &NudgeServer, q: &str) -> u64 {
    let (status, answer) = call(
        "POST",
        &server.url("/v1/query"),
        Some(TEST_ADMIN_KEY),
        Some(json!({"q": q, "limit": 0})),
    );
    assert_eq!(status, 200, "{answer}");
    answer["count"].as_u64().unwrap()
}

#[test]
fn keys_cors_errors_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    let server = NudgeServer::start(dir.path(), &[]);
    let keys_file = std::fs::metadata(dir.path().join("keys.json")).unwrap();
    let vapid_file = std::fs::metadata(dir.path().join("vapid.pk8")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(keys_file.permissions().mode() & 0o777, 0o600);
    assert_eq!(vapid_file.permissions().mode() & 0o777, 0o600);
    assert!(server.banner.iter().any(|l| l.contains("VAPID public key")), "{:?}", server.banner);

    // The write key may send, not read or define.
    let event = json!([{"user_id": "u1", "name": "Added To Cart"}]);
    assert_eq!(
        call("POST", &server.url("/v1/events"), Some(TEST_WRITE_KEY), Some(event.clone())).0,
        200
    );
    let admin_only: [(&str, &str, Option<Value>); 9] = [
        ("POST", "/v1/query", Some(json!({"q": "did \"Added To Cart\""}))),
        ("GET", "/v1/segments", None),
        ("PUT", "/v1/segments/s", Some(json!({"q": "did \"A\""}))),
        ("GET", "/v1/campaigns", None),
        (
            "PUT",
            "/v1/campaigns/c",
            Some(
                json!({"name": "c", "trigger": "on \"A\"", "message": {"title": "t", "body": "b"}}),
            ),
        ),
        ("POST", "/v1/campaigns/c/test", Some(json!({"user_id": "u1"}))),
        ("GET", "/v1/decisions?user_id=u1", None),
        ("PUT", "/v1/settings", Some(json!({"default_timezone": "UTC"}))),
        ("GET", "/v1/campaigns/c/stats", None),
    ];
    for (method, path, body) in &admin_only {
        let (status, answer) = call(method, &server.url(path), Some(TEST_WRITE_KEY), body.clone());
        assert_eq!(status, 403, "{method} {path} with the write key: {answer}");
        assert_eq!(answer["error"]["code"], "forbidden");
        let (status, _) = call(method, &server.url(path), None, body.clone());
        assert_eq!(status, 401, "{method} {path} without a key");
        let (status, _) =
            call(method, &server.url(path), Some("ak_test_admin_key_012345678X"), body.clone());
        assert_eq!(status, 401, "{method} {path} with a wrong key");
    }
    assert!(
        call("GET", &server.url("/v1/campaigns"), Some(TEST_ADMIN_KEY), None).1["campaigns"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(call("POST", &server.url("/v1/events"), None, Some(event.clone())).0, 401);
    assert_eq!(
        call("POST", &server.url("/v1/events"), Some("nope-nope-nope-nope"), Some(event.clone())).0,
        401
    );
    let (status, _, headers) =
        call_raw("POST", &server.url("/v1/events"), &[("Authorization", "Basic abc")], Some("[]"));
    assert_eq!(status, 401);
    assert!(
        headers.iter().any(|(n, v)| n.eq_ignore_ascii_case("www-authenticate") && v == "Bearer")
    );
    // The scheme is case-insensitive (RFC 7235): every spelling of Bearer is the same key.
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let admin = format!("{scheme} {TEST_ADMIN_KEY}");
        let (status, answer, _) =
            call_raw("GET", &server.url("/v1/segments"), &[("Authorization", &admin)], None);
        assert_eq!(status, 200, "{scheme}: {answer}");
        let write = format!("{scheme} {TEST_WRITE_KEY}");
        let (status, answer, _) =
            call_raw("GET", &server.url("/v1/segments"), &[("Authorization", &write)], None);
        assert_eq!(status, 403, "{scheme} with the write key is that key: {answer}");
    }

    // CORS: preflights are answered on write endpoints only.
    let preflight = [
        ("Origin", "https://shop.example"),
        ("Access-Control-Request-Method", "POST"),
        ("Access-Control-Request-Headers", "authorization,content-type"),
    ];
    let (_, _, headers) = call_raw("OPTIONS", &server.url("/v1/events"), &preflight, None);
    assert!(
        headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("access-control-allow-origin") && v == "*"),
        "{headers:?}"
    );
    let (_, _, headers) = call_raw(
        "GET",
        &server.url("/v1/webpush/vapid-public-key"),
        &[("Origin", "https://shop.example")],
        None,
    );
    assert!(
        headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("access-control-allow-origin") && v == "*"),
        "{headers:?}"
    );
    let (_, _, headers) = call_raw("OPTIONS", &server.url("/v1/query"), &preflight, None);
    assert!(
        !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("access-control-allow-origin")),
        "{headers:?}"
    );

    // A batch with one bad event is refused whole, naming the index and field.
    let before = count(&server, "did \"Viewed\"");
    let batch = json!([{"user_id": "u2", "name": "Viewed"}, {"user_id": "u3", "name": "Viewed", "ts": "yesterday"}]);
    let (status, answer) =
        call("POST", &server.url("/v1/events"), Some(TEST_WRITE_KEY), Some(batch));
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["index"], 1, "{answer}");
    assert_eq!(answer["error"]["field"], "ts", "{answer}");
    assert_eq!(count(&server, "did \"Viewed\""), before, "nothing of the refused batch is stored");

    // Idempotent ids: a repeat is acknowledged, not stored twice.
    let batch = json!({"events": [{"user_id": "u4", "name": "Viewed", "id": "e-1"}, {"user_id": "u4", "name": "Viewed", "id": "e-2"}]});
    let (status, answer) =
        call("POST", &server.url("/v1/events"), Some(TEST_WRITE_KEY), Some(batch.clone()));
    assert_eq!(
        (status, answer["accepted"].as_u64(), answer["duplicates"].as_u64()),
        (200, Some(2), Some(0)),
        "{answer}"
    );
    let (status, answer) =
        call("POST", &server.url("/v1/events"), Some(TEST_WRITE_KEY), Some(batch));
    assert_eq!((status, answer["duplicates"].as_u64()), (200, Some(2)), "{answer}");
    assert_eq!(count(&server, "did \"Viewed\" at least 2 times"), 1);
    assert_eq!(count(&server, "did \"Viewed\" at least 3 times"), 0);

    // Malformed and oversized bodies: clear errors, and the server keeps serving.
    let write = format!("Bearer {TEST_WRITE_KEY}");
    let auth = [("Authorization", write.as_str())];
    let (status, answer, _) =
        call_raw("POST", &server.url("/v1/events"), &auth, Some("[{\"user_id\": \"u1\", "));
    assert_eq!(status, 400);
    assert!(answer["error"]["message"].as_str().unwrap().contains("not valid JSON"), "{answer}");
    let (status, _, _) = call_raw("POST", &server.url("/v1/events"), &auth, Some(""));
    assert_eq!(status, 400);
    let (status, answer, _) =
        call_raw("POST", &server.url("/v1/events"), &auth, Some("{\"events\": 3}"));
    assert_eq!((status, answer["error"]["field"].as_str()), (400, Some("events")), "{answer}");
    let huge = format!("[{}]", vec![r#"{"user_id":"u","name":"Big","props":{"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}}"#; 200_000].join(","));
    let answer = post_raw(&server, "/v1/events", &huge);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("too_large"), "{answer}");
    let many = Value::Array(vec![json!({"user_id": "u", "name": "Many"}); 10_001]);
    let (status, answer) =
        call("POST", &server.url("/v1/events"), Some(TEST_WRITE_KEY), Some(many));
    assert_eq!(status, 413, "{answer}");
    let (status, answer) = call(
        "POST",
        &server.url("/v1/profiles"),
        Some(TEST_WRITE_KEY),
        Some(json!({"user_id": "u1", "set": {"plan": {"tier": "gold"}}, "type": "event"})),
    );
    assert_eq!((status, answer["error"]["field"].as_str()), (400, Some("type")), "{answer}");
    assert_eq!(count(&server, "did \"Big\" or did \"Many\""), 0);
    assert_eq!(call("GET", &server.url("/healthz"), None, None).0, 200, "still serving");

    // Subscriptions: keys and endpoints are checked (no --allow-insecure-push here).
    let p256dh =
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    let sub = |endpoint: &str, p256dh: &str| json!({"user_id": "u1", "subscription": {"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": "BTBZMqHH6r4Tts7J_aSIgg"}}});
    for (endpoint, key, why) in [
        ("http://fcm.googleapis.com/fcm/send/x", p256dh, "http"),
        ("https://127.0.0.1/push", p256dh, "loopback"),
        ("https://169.254.169.254/latest", p256dh, "link-local"),
        ("https://evil.example/push", p256dh, "not a push service"),
        ("https://[::1]/push", p256dh, "IPv6 loopback"),
        ("https://10.0.0.5/push", p256dh, "private"),
        ("https://[fe80::1]/push", p256dh, "IPv6 link-local"),
        ("https://user@fcm.googleapis.com/fcm/send/x", p256dh, "user name"),
        ("https://fcm.googleapis.com:8443/fcm/send/x", p256dh, "port"),
        ("ftp://fcm.googleapis.com/fcm/send/x", p256dh, "scheme"),
        ("fcm.googleapis.com/fcm/send/x", p256dh, "relative"),
        ("https://fcm.googleapis.com/fcm/send/x", "BAAA", "bad key"),
    ] {
        let (status, answer) = call(
            "POST",
            &server.url("/v1/subscriptions"),
            Some(TEST_WRITE_KEY),
            Some(sub(endpoint, key)),
        );
        assert_eq!(status, 400, "{why}: {answer}");
    }
    let (status, answer) = call(
        "POST",
        &server.url("/v1/subscriptions"),
        Some(TEST_WRITE_KEY),
        Some(sub("https://fcm.googleapis.com/fcm/send/abc", p256dh)),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(count(&server, "reachable via webpush"), 1);
    let (status, _) = call(
        "DELETE",
        &server.url("/v1/subscriptions"),
        Some(TEST_WRITE_KEY),
        Some(json!({"endpoint": "https://fcm.googleapis.com/fcm/send/abc"})),
    );
    assert_eq!(status, 200);
    assert_eq!(count(&server, "reachable via webpush"), 0);

    // Queries say where they are wrong.
    let (status, answer) = call(
        "POST",
        &server.url("/v1/query"),
        Some(TEST_ADMIN_KEY),
        Some(json!({"q": "did \"A\" in last seven"})),
    );
    assert_eq!(status, 400);
    assert_eq!(
        (answer["error"]["line"].as_u64(), answer["error"]["column"].as_u64()),
        (Some(1), Some(16)),
        "{answer}"
    );
    assert!(answer["error"]["rendered"].as_str().unwrap().contains('^'));
    // A deadline or memory limit out of range is refused by name; in range, it is used.
    let query_with = |name: &str, value: Value| {
        let mut body = json!({"q": "did \"Added To Cart\""});
        body[name] = value;
        call("POST", &server.url("/v1/query"), Some(TEST_ADMIN_KEY), Some(body))
    };
    for (name, bads) in [
        ("deadline_ms", [json!(0), json!(60_001), json!("2s")]),
        ("memory_limit_bytes", [json!(0), json!(1_073_741_825u64), json!("1MB")]),
    ] {
        for bad in bads {
            let (status, answer) = query_with(name, bad);
            assert_eq!((status, answer["error"]["field"].as_str()), (400, Some(name)), "{answer}");
        }
    }
    let (status, answer) = query_with("deadline_ms", json!(60_000));
    assert_eq!((status, answer["count"].as_u64()), (200, Some(1)), "{answer}");
    // A query past its memory limit is stopped with 422 and the limit.
    let (status, answer) = query_with("memory_limit_bytes", json!(1));
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["code"], "query_stopped", "{answer}");
    assert_eq!(answer["error"]["memory_limit_bytes"], 1, "{answer}");

    // Segments and campaigns through the admin key.
    let (status, _) = call(
        "PUT",
        &server.url("/v1/segments/carters"),
        Some(TEST_ADMIN_KEY),
        Some(json!({"q": "did \"Added To Cart\""})),
    );
    assert_eq!(status, 200);
    let (status, answer) =
        call("GET", &server.url("/v1/segments/carters"), Some(TEST_ADMIN_KEY), None);
    assert_eq!((status, answer["count"].as_u64()), (200, Some(1)), "{answer}");
    assert_eq!(call("GET", &server.url("/v1/segments/none"), Some(TEST_ADMIN_KEY), None).0, 404);
    let (status, answer) = call(
        "PUT",
        &server.url("/v1/campaigns/c"),
        Some(TEST_ADMIN_KEY),
        Some(json!({"name": "c", "trigger": "on \"A\"", "mesage": {}})),
    );
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"]["field"].as_str().unwrap().contains("mesage"), "{answer}");
    // Webhook targets are checked when the campaign is defined, and nothing is stored.
    for (url, why) in [
        ("http://hooks.example/in", "http"),
        ("https://127.0.0.1/in", "loopback"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://[::1]:8443/in", "IPv6 loopback"),
        ("https://user:pw@hooks.example/in", "user name"),
    ] {
        let campaign = json!({"name": "c", "trigger": "on \"A\"", "message": {"title": "t"},
            "webhook": {"url": url, "secret": "s3cret-hook-key"}});
        let (status, answer) =
            call("PUT", &server.url("/v1/campaigns/c"), Some(TEST_ADMIN_KEY), Some(campaign));
        assert_eq!(
            (status, answer["error"]["field"].as_str()),
            (400, Some("webhook.url")),
            "{why}: {answer}"
        );
    }
    assert_eq!(call("GET", &server.url("/v1/campaigns/c"), Some(TEST_ADMIN_KEY), None).0, 404);
    let (status, answer) = call(
        "PUT",
        &server.url("/v1/settings"),
        Some(TEST_ADMIN_KEY),
        Some(json!({"default_timezone": "Mars/Olympus"})),
    );
    assert_eq!(
        (status, answer["error"]["field"].as_str()),
        (400, Some("default_timezone")),
        "{answer}"
    );
    assert_eq!(call("GET", &server.url("/v1/nothing"), Some(TEST_ADMIN_KEY), None).0, 404);

    // What was acknowledged survives SIGTERM and a restart.
    let acknowledged = count(&server, "did \"Viewed\" or did \"Added To Cart\"");
    assert!(server.stop().success());
    let server = NudgeServer::start(dir.path(), &[]);
    assert!(
        !server.banner.iter().any(|l| l.contains(TEST_ADMIN_KEY)),
        "keys are printed on first start only"
    );
    assert_eq!(count(&server, "did \"Viewed\" or did \"Added To Cart\""), acknowledged);
    assert!(server.stop().success());
}

#[test]
fn rate_limits_answer_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let server = NudgeServer::start(dir.path(), &["--write-rate-limit", "5"]);
    let statuses: Vec<u16> = (0..20)
        .map(|i| {
            call(
                "POST",
                &server.url("/v1/events"),
                Some(TEST_WRITE_KEY),
                Some(json!([{"user_id": "u", "name": "R", "id": format!("r{i}")}])),
            )
            .0
        })
        .collect();
    assert!(statuses.iter().filter(|s| **s == 200).count() >= 5, "{statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");
    let write = format!("Bearer {TEST_WRITE_KEY}");
    let (status, _, headers) = call_raw(
        "POST",
        &server.url("/v1/events"),
        &[("Authorization", write.as_str())],
        Some("[]"),
    );
    if status == 429 {
        assert!(headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("retry-after")), "{headers:?}");
    }
    // The admin key has its own budget.
    assert_eq!(call("GET", &server.url("/v1/segments"), Some(TEST_ADMIN_KEY), None).0, 200);
}

#[test]
fn unknown_fields_are_refused_by_name_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let server = NudgeServer::start(dir.path(), &[]);
    let refused = |method: &str, path: &str, key: &str, body: Value, field: &str| {
        let (status, answer) = call(method, &server.url(path), Some(key), Some(body));
        assert_eq!(status, 400, "{method} {path}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_field", "{method} {path}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{method} {path}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("unknown field `{}`", field.rsplit('.').next().unwrap())),
            "{message}"
        );
    };

    // A typo in a query option was silently ignored before.
    refused("POST", "/v1/query", TEST_ADMIN_KEY, json!({"q": "did \"A\"", "limt": 5}), "limt");

    refused(
        "POST",
        "/v1/profiles",
        TEST_WRITE_KEY,
        json!({"user_id": "u1", "set": {"plan": "gold"}, "sett": {"city": "Delhi"}}),
        "sett",
    );
    assert_eq!(count(&server, "user.plan == \"gold\""), 0, "the profile is not stored");

    refused(
        "POST",
        "/v1/events",
        TEST_WRITE_KEY,
        json!([{"user_id": "u1", "name": "Viewed"}, {"user_id": "u1", "name": "Viewed", "prop": {"a": 1}}]),
        "prop",
    );
    assert_eq!(count(&server, "did \"Viewed\""), 0, "nothing of the batch is stored");

    // The write key's engagement report: checked before the delivery is looked up.
    refused(
        "POST",
        "/v1/track",
        TEST_WRITE_KEY,
        json!({"delivery_id": "1f.00", "type": "click", "actoin": "a0"}),
        "actoin",
    );

    let keys = json!({"p256dh": "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4", "auth": "BTBZMqHH6r4Tts7J_aSIgg"});
    let endpoint = "https://fcm.googleapis.com/fcm/send/abc";
    refused(
        "POST",
        "/v1/subscriptions",
        TEST_WRITE_KEY,
        json!({"user_id": "u1", "subscription": {"endpoint": endpoint, "keys": keys}, "usr": "u2"}),
        "usr",
    );
    refused(
        "POST",
        "/v1/subscriptions",
        TEST_WRITE_KEY,
        json!({"user_id": "u1", "subscription": {"endpoint": endpoint, "key": keys}}),
        "subscription.key",
    );
    assert_eq!(count(&server, "reachable via webpush"), 0, "no subscription is stored");
    // What a browser sends (PushSubscription.toJSON(), with expirationTime) is accepted.
    let (status, answer) = call(
        "POST",
        &server.url("/v1/subscriptions"),
        Some(TEST_WRITE_KEY),
        Some(
            json!({"user_id": "u1", "subscription": {"endpoint": endpoint, "expirationTime": null, "keys": keys}}),
        ),
    );
    assert_eq!(status, 200, "{answer}");
    refused(
        "DELETE",
        "/v1/subscriptions",
        TEST_WRITE_KEY,
        json!({"endpoint": endpoint, "all": true}),
        "all",
    );
    assert_eq!(count(&server, "reachable via webpush"), 1, "the subscription is kept");

    refused(
        "PUT",
        "/v1/segments/s",
        TEST_ADMIN_KEY,
        json!({"q": "did \"A\"", "query": "x"}),
        "query",
    );
    assert_eq!(call("GET", &server.url("/v1/segments/s"), Some(TEST_ADMIN_KEY), None).0, 404);
    // `public` is part of the segment body in interfaces.md.
    let (status, answer) = call(
        "PUT",
        &server.url("/v1/segments/s"),
        Some(TEST_ADMIN_KEY),
        Some(json!({"q": "did \"A\"", "public": false})),
    );
    assert_eq!(status, 200, "{answer}");

    let campaign = json!({"name": "c", "trigger": "on \"A\"", "message": {"title": "t"}});
    let (status, answer) =
        call("PUT", &server.url("/v1/campaigns/c"), Some(TEST_ADMIN_KEY), Some(campaign));
    assert_eq!(status, 200, "{answer}");
    refused("POST", "/v1/campaigns/c/test", TEST_ADMIN_KEY, json!({"user": "u1"}), "user");
    refused(
        "PUT",
        "/v1/settings",
        TEST_ADMIN_KEY,
        json!({"default_timezon": "UTC"}),
        "default_timezon",
    );
    assert!(server.stop().success());
}

#[test]
fn a_query_mistake_gets_the_same_answer_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let server = NudgeServer::start(dir.path(), &[]);
    // The same mistake (a window without a unit) wherever a query is written.
    let bad = "did \"A\" in last 7";
    let same = |method: &str, path: &str, body: Value, field: &str, column: u64| {
        let (status, answer) = call(method, &server.url(path), Some(TEST_ADMIN_KEY), Some(body));
        assert_eq!(status, 400, "{method} {path}: {answer}");
        let error = &answer["error"];
        assert_eq!(error["code"], "invalid_query", "{method} {path}: {answer}");
        assert_eq!(error["field"], field, "{method} {path}: {answer}");
        assert_eq!(error["line"], 1, "{method} {path}: {answer}");
        assert_eq!(error["column"], column, "{method} {path}: {answer}");
        let rendered = error["rendered"].as_str().unwrap_or_default();
        assert!(rendered.contains("^"), "a caret under the fault: {rendered}");
        error["message"].as_str().unwrap_or_default().to_owned()
    };
    let column = 16;
    let from_query = same("POST", "/v1/query", json!({"q": bad}), "q", column);
    let from_segment = same("PUT", "/v1/segments/s", json!({"q": bad}), "q", column);
    let audience = json!({"name": "c", "audience": bad,
        "schedule": {"at": ["2099-01-01T09:00:00"], "timezone": "UTC"},
        "message": {"title": "t"}});
    let from_audience = same("PUT", "/v1/campaigns/c", audience, "audience", column);
    let trigger =
        json!({"name": "c", "trigger": format!("on \"A\" if {bad}"), "message": {"title": "t"}});
    let from_trigger = same("PUT", "/v1/campaigns/c", trigger, "trigger", column + 10);
    assert_eq!(from_query, from_segment);
    assert_eq!(from_query, from_audience);
    assert_eq!(from_query, from_trigger);
    let (status, _) = call("GET", &server.url("/v1/segments/s"), Some(TEST_ADMIN_KEY), None);
    assert_eq!(status, 404, "the segment is not stored");
    let (status, _) = call("GET", &server.url("/v1/campaigns/c"), Some(TEST_ADMIN_KEY), None);
    assert_eq!(status, 404, "the campaign is not stored");
}

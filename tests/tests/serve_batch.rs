//! Black-box tests of `POST /v1/batch` (issue 17): any caller record, as a
//! JSON array or as NDJSON, stored atomically; a bad record refuses the whole
//! batch, naming its index and field, and nothing is stored.
#![allow(clippy::unwrap_used)]

use nudge_tests::server::{
    NudgeServer, TEST_ADMIN_KEY, TEST_WRITE_KEY, call_raw, call_with as call,
};
use serde_json::{Value, json};

const P256DH: &str =
    "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";
const ENDPOINT: &str = "https://fcm.googleapis.com/fcm/send/batch-1";

fn count(server: &NudgeServer, q: &str) -> u64 {
    let body = json!({"q": q, "limit": 0});
    let (status, answer) = call("POST", &server.url("/v1/query"), Some(TEST_ADMIN_KEY), Some(body));
    assert_eq!(status, 200, "{answer}");
    answer["count"].as_u64().unwrap()
}

/// Posts `body` as NDJSON with the write key.
fn post_ndjson(server: &NudgeServer, body: &str) -> (u16, Value) {
    let auth = format!("Bearer {TEST_WRITE_KEY}");
    let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/x-ndjson")];
    let (status, answer, _) = call_raw("POST", &server.url("/v1/batch"), &headers, Some(body));
    (status, answer)
}

fn post_array(server: &NudgeServer, body: Value) -> (u16, Value) {
    call("POST", &server.url("/v1/batch"), Some(TEST_WRITE_KEY), Some(body))
}

#[test]
fn a_batch_of_any_record_is_stored_atomically_as_json_or_ndjson() {
    let dir = tempfile::tempdir().unwrap();
    let server = NudgeServer::start(dir.path(), &[]);
    let subscription = json!({"endpoint": ENDPOINT, "keys": {"p256dh": P256DH, "auth": AUTH}});
    let (status, answer) = post_array(
        &server,
        json!([
            {"user_id": "u1", "name": "Added To Cart", "props": {"cart_id": "c1"}, "id": "e1"},
            {"type": "profile", "user_id": "u1", "set": {"city": "Delhi"}},
            {"type": "subscription", "user_id": "u1", "subscription": subscription},
        ]),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, json!({"accepted": 3, "duplicates": 0}));
    assert_eq!(count(&server, "did \"Added To Cart\" and user.city == \"Delhi\""), 1);
    assert_eq!(count(&server, "reachable via webpush"), 1);

    // NDJSON: blank lines skipped, a repeated event id counted as a duplicate.
    let ndjson = format!(
        "{}\n\n{}\r\n{}\n",
        json!({"type": "event", "user_id": "u2", "name": "Charged", "props": {"amount": 10}}),
        json!({"user_id": "u1", "name": "Added To Cart", "id": "e1"}),
        json!({"type": "unsubscribe", "endpoint": ENDPOINT}),
    );
    let (status, answer) = post_ndjson(&server, &ndjson);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, json!({"accepted": 2, "duplicates": 1}));
    assert_eq!(count(&server, "did \"Charged\""), 1);
    assert_eq!(count(&server, "reachable via webpush"), 0, "unsubscribed");
    assert_eq!(count(&server, "did \"Added To Cart\" at least 2 times"), 0, "e1 stored once");
}

#[test]
fn a_bad_record_refuses_the_whole_batch_by_index_and_field_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let server = NudgeServer::start(dir.path(), &[]);
    let good = json!({"user_id": "u1", "name": "Page Viewed"});
    let cases: [(Value, usize, &str, &str); 5] = [
        // A Segment-style field is not silently dropped.
        (json!({"user_id": "u1", "name": "A", "properties": {"x": 1}}), 1, "properties", ""),
        (json!({"type": "alias", "anonymous_id": "anon-1", "user_id": "u1"}), 1, "type", "alias"),
        (json!({"type": "segment", "name": "s", "q": "did \"A\""}), 1, "type", "definition"),
        (
            json!({"type": "profile", "user_id": "u1", "set": {"a": {"b": {}}}, "nope": 1}),
            1,
            "nope",
            "",
        ),
        (json!({"type": "teleport", "user_id": "u1"}), 1, "type", "teleport"),
    ];
    for (bad, index, field, words) in cases {
        let (status, answer) = post_array(&server, json!([good, bad, good]));
        assert_eq!(status, 400, "{bad}: {answer}");
        let error = &answer["error"];
        assert_eq!(error["code"], "invalid_field", "{bad}: {answer}");
        assert_eq!(error["index"], json!(index), "{bad}: {answer}");
        assert_eq!(error["field"], json!(field), "{bad}: {answer}");
        assert!(error["message"].as_str().unwrap().contains(words), "{bad}: {answer}");
        // The same as NDJSON.
        let lines = format!("{good}\n{bad}\n{good}\n");
        let (status, again) = post_ndjson(&server, &lines);
        assert_eq!((status, &again["error"]["index"]), (400, &json!(index)), "{again}");
    }
    // A line that is not JSON is named by its index too.
    let (status, answer) = post_ndjson(&server, &format!("{good}\n{{\"user_id\": \n"));
    assert_eq!((status, &answer["error"]["index"]), (400, &json!(1)), "{answer}");
    // A body that is neither an array nor NDJSON says what is expected.
    let (status, answer) = post_array(&server, json!({"events": [good]}));
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("x-ndjson"), "{answer}");
    assert_eq!(count(&server, "did \"Page Viewed\""), 0, "nothing was stored");

    // The write key may post batches; no key may not.
    let (status, _) = call("POST", &server.url("/v1/batch"), None, Some(json!([good])));
    assert_eq!(status, 401);
}

fn post_segment(server: &NudgeServer, body: Value) -> (u16, Value) {
    call("POST", &server.url("/v1/integrations/segment"), Some(TEST_WRITE_KEY), Some(body))
}

/// The delivery fields every Segment call carries (accepted, not stored).
fn envelope(mut call: Value) -> Value {
    let fields = json!({
        "context": {"ip": "8.8.8.8", "library": {"name": "analytics.js", "version": "2.11.1"},
                    "page": {"path": "/academy/", "url": "https://example.com/academy/"}},
        "integrations": {"All": true},
        "receivedAt": "2026-10-30T12:00:01.266Z",
        "sentAt": "2026-10-30T12:00:01.169Z",
        "originalTimestamp": "2026-10-30T12:00:01.152Z",
        "version": 2,
        "channel": "browser",
    });
    call.as_object_mut().unwrap().extend(fields.as_object().unwrap().clone());
    call
}

#[test]
fn segment_spec_calls_become_events_and_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let server = NudgeServer::start(dir.path(), &[]);
    let track = envelope(json!({
        "type": "track", "userId": "u1", "anonymousId": "anon-1", "event": "Course Clicked",
        "properties": {"title": "Intro to Analytics", "price": {"amount": 10}},
        "timestamp": "2026-10-30T12:00:01.249Z", "messageId": "ajs-1",
    }));
    let (status, answer) = post_segment(&server, track.clone());
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, json!({"accepted": 1, "duplicates": 0}));
    // messageId is the idempotency id.
    assert_eq!(post_segment(&server, track).1, json!({"accepted": 0, "duplicates": 1}));
    assert_eq!(
        count(
            &server,
            "did \"Course Clicked\" where (title == \"Intro to Analytics\" and price.amount == 10)"
        ),
        1
    );

    let batch = json!({"batch": [
        envelope(json!({"type": "identify", "userId": "u2", "traits": {"name": "Peter", "plan": "premium"}})),
        envelope(json!({"type": "page", "anonymousId": "anon-9", "name": "Home", "category": "Docs",
                        "properties": {"path": "/", "title": "Welcome"}, "messageId": "ajs-2"})),
        envelope(json!({"type": "screen", "userId": "u2", "name": "Settings", "messageId": "ajs-3"})),
    ], "context": {"library": {"name": "analytics-node"}}, "sentAt": "2026-10-30T12:00:02Z"});
    let (status, answer) = post_segment(&server, batch);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, json!({"accepted": 3, "duplicates": 0}));
    assert_eq!(count(&server, "user.plan == \"premium\" and user.name == \"Peter\""), 1);
    assert_eq!(
        count(
            &server,
            "did \"Page Viewed\" where (name == \"Home\" and category == \"Docs\" and path == \"/\")"
        ),
        1,
        "the anonymous id is the user"
    );
    assert_eq!(count(&server, "did \"Screen Viewed\" where name == \"Settings\""), 1);

    // Refusals name the field (and the call of a batch); nothing is stored.
    let cases: [(Value, Option<usize>, &str, &str); 6] = [
        (
            json!({"type": "track", "userId": "u1", "event": "A", "prperties": {}}),
            None,
            "prperties",
            "",
        ),
        (json!({"type": "track", "userId": "u1"}), None, "event", "missing"),
        (json!({"type": "track", "event": "A"}), None, "userId", "missing"),
        (json!({"type": "alias", "userId": "u1", "previousId": "anon-1"}), None, "previousId", ""),
        (json!({"type": "group", "userId": "u1"}), None, "type", "group"),
        (
            json!({"batch": [{"type": "track", "userId": "u1", "event": "A"}, {"type": "track", "userId": "u1"}]}),
            Some(1),
            "event",
            "missing",
        ),
    ];
    for (body, index, field, words) in cases {
        let (status, answer) = post_segment(&server, body.clone());
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["field"], json!(field), "{body}: {answer}");
        assert_eq!(answer["error"]["index"], json!(index), "{body}: {answer}");
        assert!(answer["error"]["message"].as_str().unwrap().contains(words), "{body}: {answer}");
    }
    let (status, answer) =
        post_segment(&server, json!({"type": "alias", "userId": "u1", "anonymousId": "anon-1"}));
    assert_eq!((status, &answer["error"]["field"]), (400, &json!("type")), "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("identity merge"), "{answer}");
    assert_eq!(count(&server, "did \"A\""), 0, "nothing of a refused batch was stored");
}

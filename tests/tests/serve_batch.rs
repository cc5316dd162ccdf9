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

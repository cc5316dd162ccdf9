//! Black-box tests of the user endpoints of `nudge serve` (issue 17):
//! `GET /v1/users/{id}/segments` names, to the write key and across origins,
//! only the saved segments marked `"public": true` that the user is in.
#![allow(clippy::unwrap_used)]

use nudge_tests::server::{
    NudgeServer, TEST_ADMIN_KEY, TEST_WRITE_KEY, call_raw, call_with as call,
};
use serde_json::{Value, json};

fn put_segment(server: &NudgeServer, name: &str, body: Value) -> (u16, Value) {
    call("PUT", &server.url(&format!("/v1/segments/{name}")), Some(TEST_ADMIN_KEY), Some(body))
}

fn segments_of(server: &NudgeServer, user: &str, key: Option<&str>) -> (u16, Value) {
    call("GET", &server.url(&format!("/v1/users/{user}/segments")), key, None)
}

#[test]
fn a_users_public_segments_are_named_to_the_write_key_and_private_ones_never() {
    let dir = tempfile::tempdir().unwrap();
    let server = NudgeServer::start(dir.path(), &[]);
    let events = json!([
        {"user_id": "u1", "name": "Added To Cart", "props": {"cart_id": "c1"}},
        {"user_id": "u1", "name": "Added To Cart", "props": {"cart_id": "c2"}},
        {"user_id": "u2", "name": "Charged", "props": {"amount": 10}},
    ]);
    let (status, answer) =
        call("POST", &server.url("/v1/events"), Some(TEST_WRITE_KEY), Some(events));
    assert_eq!(status, 200, "{answer}");

    let public = json!({"q": "did \"Added To Cart\" at least 2 times", "public": true});
    assert_eq!(put_segment(&server, "cart-lovers", public).0, 200);
    let (status, answer) =
        put_segment(&server, "carters", json!({"q": "did \"Added To Cart\"", "public": false}));
    assert_eq!((status, &answer["public"]), (200, &json!(false)), "{answer}");
    assert_eq!(put_segment(&server, "buyers", json!({"q": "did \"Charged\""})).0, 200);

    let (status, answer) = segments_of(&server, "u1", Some(TEST_WRITE_KEY));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, json!({"user_id": "u1", "segments": ["cart-lovers"]}));
    // u2 is only in a private segment; a user never seen is in none.
    assert_eq!(segments_of(&server, "u2", Some(TEST_WRITE_KEY)).1["segments"], json!([]));
    assert_eq!(segments_of(&server, "nobody", Some(TEST_WRITE_KEY)).1["segments"], json!([]));
    // The admin key reads the same list; no key reads nothing.
    assert_eq!(
        segments_of(&server, "u1", Some(TEST_ADMIN_KEY)).1["segments"],
        json!(["cart-lovers"])
    );
    assert_eq!(segments_of(&server, "u1", None).0, 401);

    // The admin's list shows which are public.
    let (_, list) = call("GET", &server.url("/v1/segments"), Some(TEST_ADMIN_KEY), None);
    let flags: Vec<(String, bool)> = list["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap().to_owned(), s["public"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        flags,
        [("buyers".into(), false), ("cart-lovers".into(), true), ("carters".into(), false)]
    );
    let (_, one) = call("GET", &server.url("/v1/segments/cart-lovers"), Some(TEST_ADMIN_KEY), None);
    assert_eq!((&one["public"], &one["count"]), (&json!(true), &json!(1)), "{one}");

    // A bad `public` is refused by name and changes nothing.
    let (status, answer) =
        put_segment(&server, "cart-lovers", json!({"q": "did \"Charged\"", "public": "yes"}));
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("public"), "{answer}");
    assert_eq!(
        segments_of(&server, "u1", Some(TEST_WRITE_KEY)).1["segments"],
        json!(["cart-lovers"])
    );

    // Saved again without `public`, the segment is private again.
    let (status, _) =
        put_segment(&server, "cart-lovers", json!({"q": "did \"Added To Cart\" at least 2 times"}));
    assert_eq!(status, 200);
    assert_eq!(segments_of(&server, "u1", Some(TEST_WRITE_KEY)).1["segments"], json!([]));

    // Pages on other origins may call it: the preflight allows GET.
    let preflight = [
        ("Origin", "https://shop.example"),
        ("Access-Control-Request-Method", "GET"),
        ("Access-Control-Request-Headers", "authorization"),
    ];
    let (_, _, headers) =
        call_raw("OPTIONS", &server.url("/v1/users/u1/segments"), &preflight, None);
    let allowed = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("access-control-allow-methods"))
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    assert!(allowed.contains("GET"), "{headers:?}");
}

/// A subscription's endpoint path and keys, which `GET /v1/users/{id}` never shows.
const PATH: &str = "secret-path-0123";
const P256DH: &str =
    "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";

#[test]
fn the_admin_sees_one_user_without_push_keys_and_the_write_key_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let server = NudgeServer::start(dir.path(), &[]);
    let post = |path: &str, body: Value| {
        let (status, answer) = call("POST", &server.url(path), Some(TEST_WRITE_KEY), Some(body));
        assert_eq!(status, 200, "{path}: {answer}");
    };
    post("/v1/profiles", json!({"user_id": "u1", "set": {"first_name": "Ann"}}));
    post(
        "/v1/subscriptions",
        json!({"user_id": "u1", "subscription": {"endpoint": format!("https://fcm.googleapis.com/fcm/send/{PATH}"),
               "keys": {"p256dh": P256DH, "auth": AUTH}}}),
    );
    post(
        "/v1/events",
        json!([{"user_id": "u1", "name": "Added To Cart", "props": {"cart_id": "c9"}}]),
    );
    assert_eq!(put_segment(&server, "carters", json!({"q": "did \"Added To Cart\""})).0, 200);

    let (status, user) = call("GET", &server.url("/v1/users/u1"), Some(TEST_ADMIN_KEY), None);
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["user_id"], "u1");
    assert_eq!(user["profile"], json!({"first_name": "Ann"}));
    assert_eq!(user["aliases"], json!([]));
    assert_eq!(user["subscriptions"].as_array().unwrap().len(), 1, "{user}");
    assert_eq!(user["subscriptions"][0]["host"], "fcm.googleapis.com");
    assert!(user["subscriptions"][0]["created"].as_str().unwrap().ends_with('Z'), "{user}");
    assert_eq!(user["events"][0]["name"], "Added To Cart");
    assert_eq!(user["events"][0]["props"], json!({"cart_id": "c9"}));
    assert_eq!(user["segments"], json!(["carters"]));
    let text = user.to_string();
    for secret in [PATH, P256DH, AUTH] {
        assert!(!text.contains(secret), "{secret} shown: {text}");
    }

    let (status, answer) = call("GET", &server.url("/v1/users/nobody"), Some(TEST_ADMIN_KEY), None);
    assert_eq!((status, answer["error"]["code"].as_str()), (404, Some("not_found")), "{answer}");
    assert_eq!(call("GET", &server.url("/v1/users/u1"), Some(TEST_WRITE_KEY), None).0, 403);
    assert_eq!(call("GET", &server.url("/v1/users/u1"), None, None).0, 401);
}

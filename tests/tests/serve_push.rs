//! End to end, over loopback: the real `nudge serve` binary, subscriptions
//! made from keys this test generates as a browser would, a live campaign
//! (`on "Added To Cart" unless "Charged" within 2s`), and a loopback push
//! service that checks the VAPID JWT, decrypts every message (RFC 8291) and
//! answers as scripted: 201, 410 (the subscription is removed), 429 with
//! `Retry-After` (waited for), 500 (backed off and retried).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use nudge_tests::server::{
    BrowserKeys, NudgeServer, Received, Receiver, TEST_ADMIN_KEY, TEST_WRITE_KEY, call,
};
use serde_json::{Value, json};

/// Wall-clock seconds: the server under test is another process on the system clock.
#[allow(clippy::disallowed_methods)]
fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// Checks the request's VAPID token (signature, `aud` with the receiver's
/// non-default port, `exp` within 24 h) and Web Push headers.
fn check_push_request(request: &Received, receiver: &Receiver, vapid_key: &str) {
    let authorization = request.headers.get("authorization").expect("an Authorization header");
    let claims = nudge_server::push::webpush::vapid::verify(authorization, Some(now_secs()))
        .expect("the VAPID token verifies");
    assert_eq!(claims.aud, receiver.base, "aud is the push service's origin, port included");
    assert_eq!(claims.key, vapid_key, "k is the server's VAPID public key");
    assert!(claims.exp <= now_secs() + 24 * 3600);
    assert!(
        claims.sub.as_deref().is_some_and(|s| s.starts_with("mailto:") || s.starts_with("https:"))
    );
    assert_eq!(request.headers.get("content-encoding").map(String::as_str), Some("aes128gcm"));
    let ttl: u64 = request.headers.get("ttl").and_then(|t| t.parse().ok()).expect("a TTL header");
    assert!(ttl > 0 && ttl <= 24 * 3600, "ttl {ttl}");
}

fn events(server: &NudgeServer, events: Value) {
    let (status, answer) = call("POST", &server.url("/v1/events"), TEST_WRITE_KEY, Some(events));
    assert_eq!(status, 200, "{answer}");
}

fn decision_names(server: &NudgeServer, user: &str) -> Vec<String> {
    let (status, answer) = call(
        "GET",
        &server.url(&format!("/v1/decisions?user_id={user}&campaign=cart")),
        TEST_ADMIN_KEY,
        None,
    );
    assert_eq!(status, 200, "{answer}");
    answer["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let reason = d["props"]["reason"].as_str().map(|r| format!(":{r}")).unwrap_or_default();
            format!("{}{reason}", d["event"].as_str().unwrap())
        })
        .collect()
}

#[test]
fn a_live_campaign_reaches_the_right_browser_once_and_outcomes_are_handled() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    let server = NudgeServer::start(dir.path(), &["--allow-insecure-push"]);
    let (status, key) =
        call("GET", &server.url("/v1/webpush/vapid-public-key"), TEST_WRITE_KEY, None);
    assert_eq!(status, 200);
    let vapid_key = key["key"].as_str().unwrap().to_owned();
    assert_eq!(B64.decode(&vapid_key).unwrap().len(), 65);

    // Five browsers, each with its own scripted push service answers.
    let users = ["buyer", "waverer", "gone", "limited", "flaky"];
    let keys: Vec<BrowserKeys> = (0..users.len()).map(|i| BrowserKeys::new(i as u8 + 1)).collect();
    receiver.script("/push/gone", vec![(410, vec![])]);
    receiver.script("/push/limited", vec![(429, vec![("Retry-After".into(), "2".into())])]);
    receiver.script("/push/flaky", vec![(500, vec![])]);
    for (user, keys) in users.iter().zip(&keys) {
        let endpoint = format!("{}/push/{user}", receiver.base);
        let body = json!({"user_id": user, "subscription": keys.subscription(&endpoint)});
        let (status, answer) =
            call("POST", &server.url("/v1/subscriptions"), TEST_WRITE_KEY, Some(body));
        assert_eq!(status, 200, "{answer}");
        let profile = json!({"user_id": user, "set": {"first_name": user.to_uppercase()}});
        let (status, answer) =
            call("POST", &server.url("/v1/profiles"), TEST_WRITE_KEY, Some(profile));
        assert_eq!(status, 200, "{answer}");
    }

    let campaign = json!({
        "name": "Cart rescue",
        "trigger": "on \"Added To Cart\" unless \"Charged\" within 2s",
        "message": {
            "title": "Still thinking about {{ event.product_name }}?",
            "body": "Hi {{ user.first_name | default('there') }}",
            "url": "https://shop.example/cart/{{ event.cart_id }}",
            "actions": [{"title": "Checkout", "url": "https://shop.example/checkout"}],
            "ttl": "1h", "urgency": "high", "topic": "cart"
        }
    });
    let (status, answer) =
        call("PUT", &server.url("/v1/campaigns/cart"), TEST_ADMIN_KEY, Some(campaign));
    assert_eq!(status, 200, "{answer}");

    let carts: Vec<Value> = users
        .iter()
        .map(|u| json!({"user_id": u, "name": "Added To Cart", "props": {"product_name": "Blue Shoes", "cart_id": format!("c-{u}")}}))
        .collect();
    events(&server, Value::Array(carts));
    events(&server, json!([{"user_id": "buyer", "name": "Charged", "props": {"amount": 49.5}}]));

    // The waverer gets exactly one push, with the right content.
    let pushes = receiver.wait_for("/push/waverer", 1, Duration::from_secs(20));
    assert_eq!(pushes.len(), 1, "one push for the user who did not buy");
    check_push_request(&pushes[0], &receiver, &vapid_key);
    assert_eq!(pushes[0].headers.get("urgency").map(String::as_str), Some("high"));
    assert_eq!(pushes[0].headers.get("topic").map(String::as_str), Some("cart"));
    let notification = keys[1].notification(&pushes[0].body);
    assert_eq!(notification["title"], "Still thinking about Blue Shoes?");
    assert_eq!(notification["body"], "Hi WAVERER");
    assert_eq!(notification["url"], "https://shop.example/cart/c-waverer");
    assert_eq!(notification["campaign"], "cart");
    assert_eq!(notification["actions"][0]["title"], "Checkout");
    let delivery_id = notification["delivery_id"].as_str().unwrap().to_owned();
    assert_eq!(notification["tag"], delivery_id.as_str());

    // 429 with Retry-After: 2 → retried no sooner than 2 s later, then delivered.
    let limited = receiver.wait_for("/push/limited", 2, Duration::from_secs(20));
    assert_eq!(limited.len(), 2, "retried after the 429");
    assert!(limited[1].at - limited[0].at >= Duration::from_millis(1900), "Retry-After honoured");
    assert_eq!(
        keys[3].notification(&limited[1].body)["delivery_id"],
        keys[3].notification(&limited[0].body)["delivery_id"]
    );
    // 500 → backed off (about 1 s, jittered) and retried.
    let flaky = receiver.wait_for("/push/flaky", 2, Duration::from_secs(20));
    assert_eq!(flaky.len(), 2, "retried after the 500");
    assert!(flaky[1].at - flaky[0].at >= Duration::from_millis(700), "backed off before retrying");
    // 410 → tried once, never again.
    let gone = receiver.wait_for("/push/gone", 1, Duration::from_secs(20));
    assert_eq!(gone.len(), 1);

    // Nothing for the buyer; no repeats anywhere.
    std::thread::sleep(Duration::from_secs(3));
    assert!(receiver.received("/push/buyer").is_empty(), "the buyer got a push");
    assert_eq!(receiver.received("/push/waverer").len(), 1);
    assert_eq!(receiver.received("/push/gone").len(), 1);

    // What the decisions say.
    assert_eq!(decision_names(&server, "buyer"), Vec::<String>::new());
    let waverer = decision_names(&server, "waverer");
    assert_eq!(waverer, ["$campaign_fired", "$push_sent", "$push_delivered"]);
    let gone_decisions = decision_names(&server, "gone");
    assert_eq!(gone_decisions.len(), 3, "{gone_decisions:?}");
    assert!(gone_decisions[2].starts_with("$push_failed:gone"), "{gone_decisions:?}");
    assert_eq!(decision_names(&server, "limited").last().unwrap(), "$push_delivered");
    assert_eq!(decision_names(&server, "flaky").last().unwrap(), "$push_delivered");

    // The gone subscription was removed: the next cart finds nobody to reach.
    events(
        &server,
        json!([{"user_id": "gone", "name": "Added To Cart", "props": {"product_name": "Hat", "cart_id": "c2"}}]),
    );
    let started = std::time::Instant::now();
    let reason = loop {
        let names = decision_names(&server, "gone");
        if names.len() > 3 {
            break names[3..].to_vec();
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no decision for the second cart");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(reason.contains(&"$push_dropped:unreachable".to_owned()), "{reason:?}");
    assert_eq!(receiver.received("/push/gone").len(), 1);

    // A view and a click, as the service worker reports them, count in the stats.
    for kind in ["view", "click"] {
        let body = json!({"delivery_id": delivery_id, "type": kind});
        let (status, answer) = call("POST", &server.url("/v1/track"), TEST_WRITE_KEY, Some(body));
        assert_eq!(status, 200, "{answer}");
    }
    let (status, stats) =
        call("GET", &server.url("/v1/campaigns/cart/stats"), TEST_ADMIN_KEY, None);
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["sent"], 4, "{stats}");
    assert_eq!(stats["delivered"], 3, "{stats}");
    assert_eq!(stats["failed"], 1, "{stats}");
    assert_eq!(stats["viewed"], 1, "{stats}");
    assert_eq!(stats["clicked"], 1, "{stats}");

    let metrics = ureq::get(&server.url("/metrics")).call().unwrap().into_string().unwrap();
    assert!(
        metrics.contains(
            "nudge_push_sends_total{service=\"other\",outcome=\"delivered\",status=\"201\"} 3"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("outcome=\"gone\",status=\"410\"} 1"), "{metrics}");

    // SIGTERM stops it cleanly; a restart sends nothing again.
    assert!(server.stop().success());
    let server = NudgeServer::start(dir.path(), &["--allow-insecure-push"]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        receiver.received("/push/waverer").len(),
        1,
        "nothing is sent twice after a restart"
    );
    let after_restart = decision_names(&server, "waverer");
    assert_eq!(after_restart[..3], ["$campaign_fired", "$push_sent", "$push_delivered"]);
    assert_eq!(after_restart[3..], ["$push_viewed", "$push_clicked"]);
    assert!(server.stop().success());
}

#[test]
fn campaign_webhooks_are_signed_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    receiver.script("/hook", vec![(503, vec![])]);
    let server = NudgeServer::start(dir.path(), &["--allow-insecure-push"]);
    let campaign = json!({
        "name": "Hook", "trigger": "on \"Signed Up\"",
        "message": {"title": "Welcome {{ user_id | default('') }}", "body": "Hello"},
        "webhook": {"url": format!("{}/hook", receiver.base), "secret": "s3cret"}
    });
    let (status, answer) =
        call("PUT", &server.url("/v1/campaigns/hook"), TEST_ADMIN_KEY, Some(campaign));
    assert_eq!(status, 200, "{answer}");
    events(&server, json!([{"user_id": "ann", "name": "Signed Up"}]));
    // 503 first, then retried with backoff and accepted (201).
    let calls = receiver.wait_for("/hook", 2, Duration::from_secs(20));
    assert_eq!(calls.len(), 2, "the 503 was retried");
    for call in &calls {
        let signature = call.headers.get("nudge-signature").expect("a signature header");
        assert!(nudge_server::push::webhook::verify(
            "s3cret",
            signature,
            &call.body,
            now_secs() as i64,
            300
        ));
        assert!(!nudge_server::push::webhook::verify(
            "wrong",
            signature,
            &call.body,
            now_secs() as i64,
            300
        ));
        let body: Value = serde_json::from_slice(&call.body).unwrap();
        assert_eq!(body["user_id"], "ann");
        assert_eq!(body["campaign"], "hook");
        assert_eq!(
            call.headers.get("idempotency-key").map(String::as_str),
            body["delivery_id"].as_str()
        );
    }
    assert_eq!(calls[0].headers.get("idempotency-key"), calls[1].headers.get("idempotency-key"));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(receiver.received("/hook").len(), 2, "not sent again once accepted");
    assert!(server.stop().success());
}

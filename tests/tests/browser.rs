//! Browser test of the SDK, the service worker and the demo page
//! (`server/assets/`) against the real `nudge serve`, driven in headless
//! Chromium over the DevTools protocol (`nudge_tests::cdp`). It fails, and does
//! not skip, when Chromium is missing.
//!
//! The page, the SDK, the worker and the API all come from the server's own
//! origin. What the browser sent is checked through the server: events and
//! profiles with `POST /v1/query`, the worker's view, click and close reports
//! with `GET /v1/decisions` (test sends are kept out of the campaign stats).
//! The SDK's `onRequest` hook adds what the page saw: each request's body and
//! the server's status.
//!
//! The push is the server's own: a test send of a campaign to the browser's
//! user goes to a loopback push service ([`Receiver`], hence
//! `--allow-insecure-push`) through a subscription whose keys this test holds
//! ([`BrowserKeys`]), because headless Chromium cannot subscribe. The test
//! decrypts the message and hands that exact JSON to the real service worker
//! with `ServiceWorker.deliverPushMessage`.
//!
//! What headless Chromium 148 and 156 do (measured here, see [`browser_flow`]):
//! * permission: `Browser.grantPermissions(["notifications"])` for the origin
//!   is enough; `pushManager.permissionState({userVisibleOnly: true})` is then
//!   `granted` too (`Browser.setPermission` with `push` is accepted but not needed).
//! * service workers register, activate and run normally.
//! * `pushManager.subscribe` never settles: there is no reachable push service
//!   (GCM), with or without `--disable-background-networking`. The SDK bounds
//!   the wait (`pushTimeoutMs`, 1 s here) and `Nudge.enablePush()` rejects with a
//!   `TimeoutError` after registering the worker and fetching the VAPID key, so
//!   no subscription is POSTed; if a future Chromium subscribes, the test
//!   asserts the POST instead. `ServiceWorker.deliverPushMessage` needs no
//!   subscription.
//! * `showNotification` works and `registration.getNotifications()` lists the
//!   notifications with their title, body, tag, data and actions.
//! * nothing can click or close a notification; both are synthetic
//!   `NotificationEvent`s dispatched inside the worker (evaluated in its target),
//!   whose `waitUntil` throws for untrusted events (the worker tolerates that)
//!   and whose `clients.openWindow` is refused.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use nudge_tests::cdp::{Browser, Page};
use nudge_tests::server::{
    BrowserKeys, NudgeServer, Receiver, TEST_ADMIN_KEY, TEST_WRITE_KEY, call,
};
use serde_json::{Value, json};

/// Bound on every wait of this test.
const WAIT: Duration = Duration::from_secs(20);

/// The campaign whose test sends the browser receives.
const CAMPAIGN: &str = "browser-test";

/// The user the page identifies as.
const USER: &str = "u-browser";

// ---------------------------------------------------------------------------
// The server side.

/// An admin call that must answer 200.
fn admin(server: &NudgeServer, method: &str, path: &str, body: Option<Value>) -> Value {
    let (status, answer) = call(method, &server.url(path), TEST_ADMIN_KEY, body);
    assert_eq!(status, 200, "{method} {path}: {answer}");
    answer
}

/// Polls `probe` until it gives a value; fails after [`WAIT`] naming `what` and
/// what the last probe saw instead.
fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        match probe() {
            Ok(found) => return found,
            Err(seen) if Instant::now() >= deadline => {
                panic!("no {what} within {WAIT:?}; last seen: {seen}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Waits until the segment `q` contains `user`: the server stored the events
/// or profile the expression asks for.
fn wait_segment(server: &NudgeServer, q: &str, user: &str) {
    wait_for(&format!("{user} in `{q}`"), || {
        let answer = admin(server, "POST", "/v1/query", Some(json!({"q": q, "limit": 100})));
        let users = answer["users"].as_array().cloned().unwrap_or_default();
        if users.iter().any(|u| u == user) { Ok(()) } else { Err(answer.to_string()) }
    });
}

/// Waits for the decision event `name` about `delivery_id`; returns its props.
fn wait_decision(server: &NudgeServer, name: &str, delivery_id: &str) -> Value {
    wait_for(&format!("{name} for delivery {delivery_id}"), || {
        let answer = admin(server, "GET", &format!("/v1/decisions?user_id={USER}"), None);
        let decisions = answer["decisions"].as_array().cloned().unwrap_or_default();
        decisions
            .iter()
            .find(|d| d["event"] == name && d["props"]["delivery_id"] == delivery_id)
            .map(|d| d["props"].clone())
            .ok_or_else(|| answer.to_string())
    })
}

/// A test send of [`CAMPAIGN`] to [`USER`], received at the loopback push
/// service as push number `n`: the delivery id and the decrypted payload.
fn test_send(
    server: &NudgeServer,
    receiver: &Receiver,
    keys: &BrowserKeys,
    n: usize,
) -> (String, String) {
    let answer = admin(
        server,
        "POST",
        &format!("/v1/campaigns/{CAMPAIGN}/test"),
        Some(json!({"user_id": USER})),
    );
    assert_eq!(answer["outcome"], "sent", "{answer}");
    let delivery_id = answer["delivery_id"].as_str().unwrap().to_owned();
    let pushes = receiver.wait_for("/push/browser", n, WAIT);
    assert_eq!(pushes.len(), n, "push {n} did not reach the push service");
    let payload =
        String::from_utf8(keys.decrypt(&pushes[n - 1].body)).expect("the push payload is UTF-8");
    let parsed: Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(parsed["delivery_id"], delivery_id.as_str(), "{payload}");
    assert_eq!(parsed["tag"], delivery_id.as_str(), "{payload}");
    wait_decision(server, "$push_delivered", &delivery_id);
    (delivery_id, payload)
}

// ---------------------------------------------------------------------------
// The browser side.

fn launch() -> Browser {
    match Browser::launch() {
        Ok(browser) => browser,
        Err(e) => panic!("{e}"),
    }
}

/// Evaluates until the expression's value equals `expected`.
fn wait_value(browser: &mut Browser, session: &str, expression: &str, expected: &Value) {
    wait_for(&format!("{expression} == {expected}"), || {
        let value = browser.evaluate(session, expression).unwrap();
        if &value == expected { Ok(()) } else { Err(value.to_string()) }
    });
}

/// The requests the SDK reported to the page's `onRequest` hook that match,
/// oldest first.
fn sent(browser: &mut Browser, session: &str, method: &str, path: &str) -> Vec<Value> {
    let all = browser.evaluate(session, "sent").unwrap();
    let all = all.as_array().unwrap();
    all.iter().filter(|r| r["method"] == method && r["path"] == path).cloned().collect()
}

/// Waits for the worker of `page`'s origin to be activated and running; returns
/// its registration id.
fn running_worker(browser: &mut Browser, page: &Page) -> String {
    let session = page.session_id.clone();
    let event = browser
        .wait_event("an activated, running /sw.js version", |e| {
            e.session_id.as_deref() == Some(&session)
                && e.method == "ServiceWorker.workerVersionUpdated"
                && e.params["versions"].as_array().is_some_and(|vs| {
                    vs.iter().any(|v| {
                        v["status"] == "activated"
                            && v["runningStatus"] == "running"
                            && v["scriptURL"].as_str().is_some_and(|u| u.contains("/sw.js"))
                    })
                })
        })
        .unwrap();
    let versions = event.params["versions"].as_array().unwrap();
    let version = versions.iter().find(|v| v["status"] == "activated").unwrap();
    version["registrationId"].as_str().unwrap().to_string()
}

/// The whole browser-side flow against `server`: page view, identify, track,
/// service worker, the server's pushes shown and reported as viewed, clicked
/// and closed, and the page left.
fn browser_flow(server: &NudgeServer, receiver: &Receiver) {
    let origin = server.base.clone();
    let mut browser = launch();
    browser.timeout = WAIT;

    // 1. Permission, then the demo page the server serves with its write key.
    browser
        .call(
            "Browser.grantPermissions",
            json!({"origin": origin, "permissions": ["notifications"]}),
        )
        .unwrap();
    let page = browser.new_page(&format!("{origin}/")).unwrap();
    let s = page.session_id.clone();
    assert_eq!(browser.evaluate(&s, "Notification.permission").unwrap(), json!("granted"));

    // 2. Events and profile. The demo page called Nudge.init with the key the server
    //    put in it; a second init only updates the options it names: record every API
    //    request, and bound pushManager.subscribe, which headless Chromium never settles.
    assert_eq!(browser.evaluate(&s, "WRITE_KEY").unwrap(), json!(TEST_WRITE_KEY));
    let reinit = "window.sent = []; \
                  Nudge.init({pushTimeoutMs: 1000, onRequest: r => sent.push(r)}) === Nudge";
    assert_eq!(browser.evaluate(&s, reinit).unwrap(), json!(true));
    let anonymous = browser.evaluate(&s, "Nudge.userId()").unwrap().as_str().unwrap().to_owned();
    assert!(anonymous.starts_with("anon-"), "anonymous id {anonymous}");
    wait_segment(
        server,
        &format!(
            "did \"Page Viewed\" where (url == \"{origin}/\" and path == \"/\" \
             and title == \"Nudge demo shop\" and referrer == \"\")"
        ),
        &anonymous,
    );

    let identified =
        browser.evaluate(&s, &format!("Nudge.identify('{USER}', {{first_name: 'Bea'}})"));
    assert_eq!(identified.unwrap(), json!(true), "the server accepted the profile");
    let profiles = sent(&mut browser, &s, "POST", "/v1/profiles");
    assert_eq!(
        profiles,
        [json!({"method": "POST", "path": "/v1/profiles", "status": 200,
                "body": {"user_id": USER, "set": {"first_name": "Bea"}}})]
    );
    assert_eq!(browser.evaluate(&s, "localStorage.getItem('nudge_user_id')").unwrap(), json!(USER));
    wait_segment(server, "user.first_name == \"Bea\"", USER);

    browser
        .evaluate(
            &s,
            "Nudge.track('Added To Cart', {cart_id: 'c-9', product_name: 'Shoes', price: 49.5}); \
             document.getElementById('product-viewed').click(); \
             Nudge.flush()",
        )
        .unwrap();
    let batches = sent(&mut browser, &s, "POST", "/v1/events");
    let events: Vec<&Value> = batches.iter().flat_map(|b| b["body"].as_array().unwrap()).collect();
    assert!(batches.iter().all(|b| b["status"] == 200), "{batches:?}");
    let cart = events.iter().find(|e| e["name"] == "Added To Cart").expect("Added To Cart sent");
    assert_eq!(cart["user_id"], json!(USER));
    assert_eq!(cart["props"], json!({"cart_id": "c-9", "product_name": "Shoes", "price": 49.5}));
    assert!(cart["ts"].as_f64().is_some_and(|t| t > 1.7e12), "ts {}", cart["ts"]);
    assert!(cart["id"].as_str().is_some_and(|id| id.len() >= 16), "id {}", cart["id"]);
    wait_segment(
        server,
        "did \"Added To Cart\" where (cart_id == \"c-9\" and product_name == \"Shoes\" and price == 49.5)",
        USER,
    );
    wait_segment(
        server,
        "did \"Product Viewed\" where (product_name == \"Trail running shoes\" and price == 4999)",
        USER,
    );
    // The public segments the page may personalize with: only those marked public.
    for (name, q, public) in [
        ("cart-holders", "did \"Added To Cart\" where cart_id == \"c-9\"", true),
        ("secret-carts", "did \"Added To Cart\"", false),
    ] {
        admin(
            server,
            "PUT",
            &format!("/v1/segments/{name}"),
            Some(json!({"q": q, "public": public})),
        );
    }
    assert_eq!(browser.evaluate(&s, "Nudge.segments()").unwrap(), json!(["cart-holders"]));

    // 3. The service worker. enablePush registers it, fetches the VAPID key, subscribes.
    browser.call_in(Some(&s), "ServiceWorker.enable", json!({})).unwrap();
    let enabled = browser
        .evaluate(
            &s,
            "Nudge.enablePush().then(sub => ({ok: true, endpoint: sub && sub.endpoint}), \
                                     e => ({ok: false, error: String(e)}))",
        )
        .unwrap();
    eprintln!("Nudge.enablePush(): {enabled}");
    let metrics = ureq::get(&server.url("/metrics")).call().unwrap().into_string().unwrap();
    assert!(
        metrics.contains(
            r#"nudge_http_requests_total{route="/v1/webpush/vapid-public-key",status="200"} 1"#
        ),
        "the SDK fetched the VAPID key once, without a key: {metrics}"
    );
    if enabled["ok"] == json!(true) {
        let endpoint = enabled["endpoint"].as_str().unwrap().to_string();
        let subs = sent(&mut browser, &s, "POST", "/v1/subscriptions");
        let sub = subs.iter().find(|r| r["body"]["subscription"]["endpoint"] == json!(endpoint));
        let sub = sub.expect("the subscription was POSTed");
        assert_eq!(sub["status"], 200, "{sub}");
        assert_eq!(sub["body"]["user_id"], json!(USER));
    } else {
        // Headless Chromium has no push service; anything else is a bug in the SDK.
        let error = enabled["error"].as_str().unwrap_or("");
        assert!(
            error.starts_with("TimeoutError") && error.contains("pushManager.subscribe"),
            "enablePush failed for another reason than a missing push service: {error}"
        );
    }
    let registration_id = running_worker(&mut browser, &page);
    // The notifications grant covers push: no separate permission is needed.
    let push_state = "navigator.serviceWorker.ready.then(r => \
                      r.pushManager.permissionState({userVisibleOnly: true}))";
    assert_eq!(browser.evaluate(&s, push_state).unwrap(), json!("granted"));

    // The worker knows the API and the key from its URL, and the SDK told it the
    // user id, which it keeps for pushsubscriptionchange.
    let worker = browser.wait_target("service_worker", "/sw.js?api=").unwrap();
    let url = worker["url"].as_str().unwrap();
    assert!(url.contains(&format!("key={TEST_WRITE_KEY}")), "worker url {url}");
    let w = browser.attach(worker["targetId"].as_str().unwrap()).unwrap();
    assert_eq!(browser.evaluate(&w, "API").unwrap(), json!(origin));
    wait_value(&mut browser, &w, "getUserId()", &json!(USER));

    // 4. The server's push: a test send through the subscription this test holds,
    //    decrypted, and handed to the worker as it is. Shown, and reported as viewed.
    let keys = BrowserKeys::new(7);
    let endpoint = format!("{}/push/browser", receiver.base);
    let body = json!({"user_id": USER, "subscription": keys.subscription(&endpoint)});
    let (status, answer) =
        call("POST", &server.url("/v1/subscriptions"), TEST_WRITE_KEY, Some(body));
    assert_eq!(status, 200, "{answer}");
    let (d1, payload) = test_send(server, receiver, &keys, 1);
    let deliver = |browser: &mut Browser, payload: &str| {
        browser
            .call_in(
                Some(&s),
                "ServiceWorker.deliverPushMessage",
                json!({"origin": origin, "registrationId": registration_id, "data": payload}),
            )
            .unwrap();
    };
    deliver(&mut browser, &payload);
    let viewed = wait_decision(server, "$push_viewed", &d1);
    assert_eq!(viewed["campaign"], CAMPAIGN, "{viewed}");

    let shown = browser
        .evaluate(
            &s,
            "navigator.serviceWorker.ready.then(r => r.getNotifications()).then(ns => ns.map(n => \
             ({title: n.title, body: n.body, tag: n.tag, data: n.data, \
               actions: n.actions.map(a => ({action: a.action, title: a.title}))})))",
        )
        .unwrap();
    assert_eq!(
        shown,
        json!([{
            "title": "Hi Bea", "body": "Your Shoes are waiting", "tag": d1,
            "actions": [{"action": "a0", "title": "Checkout"}],
            "data": {"url": format!("{origin}/healthz?cart=c-9"), "delivery_id": d1, "campaign": CAMPAIGN,
                     "action_urls": {"a0": format!("{origin}/healthz?checkout=1")}},
        }]),
        "the notifications shown for {payload}"
    );

    // 5. A click on the action button, then a close: synthetic events in the worker.
    let dispatch = |event: &str, tag: &str, action: &str| {
        format!(
            "self.registration.getNotifications({{tag: '{tag}'}}).then(([n]) => \
             self.dispatchEvent(new NotificationEvent('{event}', {{notification: n, action: '{action}'}})))"
        )
    };
    let clicked = browser.evaluate(&w, &dispatch("notificationclick", &d1, "a0")).unwrap();
    assert_eq!(clicked, json!(true));
    let click = wait_decision(server, "$push_clicked", &d1);
    assert_eq!(click["action"], "a0", "{click}");
    assert_eq!(click["test"], true, "{click}");
    // The click closed the notification.
    wait_value(
        &mut browser,
        &w,
        "self.registration.getNotifications().then(ns => ns.length)",
        &json!(0),
    );

    let (d2, payload) = test_send(server, receiver, &keys, 2);
    assert_ne!(d1, d2);
    deliver(&mut browser, &payload);
    wait_decision(server, "$push_viewed", &d2);
    let closed = browser.evaluate(&w, &dispatch("notificationclose", &d2, "")).unwrap();
    assert_eq!(closed, json!(true));
    wait_decision(server, "$push_closed", &d2);

    // What the server recorded, in order: per delivery sent, delivered, viewed, then
    // the click or the close, and nothing twice.
    let answer = admin(server, "GET", &format!("/v1/decisions?user_id={USER}"), None);
    let trail = |id: &str| -> Vec<String> {
        let decisions = answer["decisions"].as_array().unwrap();
        decisions
            .iter()
            .filter(|d| d["props"]["delivery_id"] == id)
            .map(|d| d["event"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(trail(&d1), ["$push_sent", "$push_delivered", "$push_viewed", "$push_clicked"]);
    assert_eq!(trail(&d2), ["$push_sent", "$push_delivered", "$push_viewed", "$push_closed"]);

    // disablePush unsubscribes and tells the server, when there is a subscription.
    let disabled = browser.evaluate(&s, "Nudge.disablePush()").unwrap();
    if enabled["ok"] == json!(true) {
        assert_eq!(disabled, json!(true));
        let gone = sent(&mut browser, &s, "DELETE", "/v1/subscriptions");
        assert_eq!(gone.last().unwrap()["status"], 200, "{gone:?}");
    } else {
        assert_eq!(disabled, json!(false));
    }

    // 6. Leaving the page reports the time spent on it.
    browser.navigate(&page, &format!("{origin}/healthz")).unwrap();
    wait_segment(server, "did \"Page Left\" where (path == \"/\" and seconds >= 0)", USER);
}

#[test]
fn sdk_and_service_worker_in_headless_chromium_against_nudge_serve() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    let server = NudgeServer::start(dir.path(), &["--allow-insecure-push"]);
    let origin = server.base.clone();
    let campaign = json!({
        "name": "Browser test",
        "trigger": "on \"Never Sent\"",
        "message": {
            "title": "Hi {{ user.first_name }}",
            "body": "Your Shoes are waiting",
            "url": format!("{origin}/healthz?cart=c-9"),
            "actions": [{"title": "Checkout", "url": format!("{origin}/healthz?checkout=1")}],
        },
    });
    admin(&server, "PUT", &format!("/v1/campaigns/{CAMPAIGN}"), Some(campaign));
    browser_flow(&server, &receiver);
    assert!(server.stop().success(), "nudge serve stops cleanly on SIGTERM");
    eprintln!("took {:?}", started.elapsed());
}

//! Browser test of the SDK, the service worker and the demo page
//! (`server/assets/`), driven in headless Chromium over the DevTools protocol
//! (`nudge_tests::cdp`). It fails, and does not skip, when Chromium is missing.
//!
//! The page, SDK and API come from one loopback origin that records every API
//! request ([`Loopback`]). Today that origin answers itself ([`Loopback::fake`]);
//! to run the same flow against `nudge serve`, start the server with
//! `NUDGE_WRITE_KEY` and `--allow-insecure-push`, and put [`Loopback::proxy`] in
//! front of it: the proxy records each request and relays it, so
//! [`browser_flow`] and its assertions stay as they are.
//!
//! What Chromium 148 headless does (measured here, see [`browser_flow`]):
//! * permission: `Browser.grantPermissions(["notifications"])` for the origin
//!   is enough; `pushManager.permissionState({userVisibleOnly: true})` is then
//!   `granted` too (`Browser.setPermission` with `push` is accepted but not needed).
//! * service workers register, activate and run normally.
//! * `pushManager.subscribe` never settles: there is no reachable push service
//!   (GCM), with or without `--disable-background-networking`. The SDK bounds
//!   the wait (`pushTimeoutMs`, 1 s here) and `Nudge.enablePush()` rejects with a
//!   `TimeoutError` after registering the worker, so no subscription is POSTed;
//!   if a future Chromium subscribes, the test asserts the POST instead. The push
//!   path is driven with `ServiceWorker.deliverPushMessage`, which needs no
//!   subscription.
//! * `showNotification` works and `registration.getNotifications()` lists the
//!   notifications with their title, body, tag, data and actions.
//! * nothing can click or close a notification; both are synthetic
//!   `NotificationEvent`s dispatched inside the worker (evaluated in its target),
//!   whose `waitUntil` throws for untrusted events (the worker tolerates that)
//!   and whose `clients.openWindow` is refused.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nudge_tests::cdp::{Browser, Page};
use serde_json::{Value, json};

/// Bound on every wait of this test.
const WAIT: Duration = Duration::from_secs(20);

/// The write key the fake server expects and injects into the demo page.
const WRITE_KEY: &str = "wk_browser_test_0123456789";

// ---------------------------------------------------------------------------
// The server side, behind a small interface.

/// One API request (`/v1/…`) as the browser sent it.
#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    /// Without the query string.
    path: String,
    authorization: Option<String>,
    /// The body parsed as JSON; `Null` when empty or not JSON.
    body: Value,
}

/// What the browser flow needs from a Nudge server: one origin serving `/`,
/// `/sdk.js`, `/sw.js` and the API, its write key, and the API requests it got.
trait Backend {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    fn origin(&self) -> String;
    /// The write key the demo page carries.
    fn write_key(&self) -> String;
    /// Every API request so far, oldest first.
    fn requests(&self) -> Vec<Recorded>;
}

/// How [`Loopback`] answers.
enum Answer {
    /// By itself: the assets from `server/assets/`, a VAPID key, and `200`s.
    Fake { vapid_public_key: String },
    /// By relaying each request to a real server.
    Proxy { upstream: SocketAddr },
}

/// A recording HTTP/1.1 server on `127.0.0.1`, one thread per connection,
/// one request per connection (`Connection: close`).
struct Loopback {
    addr: SocketAddr,
    write_key: String,
    recorded: Arc<Mutex<Vec<Recorded>>>,
}

impl Loopback {
    /// A stand-in for `nudge serve` until the real HTTP server exists.
    fn fake(write_key: &str) -> Loopback {
        Loopback::start(write_key, Answer::Fake { vapid_public_key: vapid_public_key() })
    }

    /// A recording proxy in front of a real server at `upstream` that uses `write_key`.
    fn proxy(upstream: SocketAddr, write_key: &str) -> Loopback {
        Loopback::start(write_key, Answer::Proxy { upstream })
    }

    fn start(write_key: &str, answer: Answer) -> Loopback {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let state = Arc::new((answer, write_key.to_string(), Arc::clone(&recorded)));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = Arc::clone(&state);
                std::thread::spawn(move || {
                    let (answer, key, recorded) = &*state;
                    if let Err(e) = serve_one(stream, answer, key, recorded) {
                        eprintln!("loopback server: {e}");
                    }
                });
            }
        });
        Loopback { addr, write_key: write_key.to_string(), recorded }
    }
}

impl Backend for Loopback {
    fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }
    fn write_key(&self) -> String {
        self.write_key.clone()
    }
    fn requests(&self) -> Vec<Recorded> {
        self.recorded.lock().unwrap().clone()
    }
}

/// A fresh P-256 public key as the server's VAPID key: the uncompressed point,
/// base64url without padding, as `GET /v1/webpush/vapid-public-key` answers.
fn vapid_public_key() -> String {
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let point = pair.public_key().as_ref();
    assert_eq!(point.len(), 65);
    base64url(point)
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// An HTTP request as read off the socket.
struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
}

fn read_request(reader: &mut impl BufRead) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("/").to_string();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    let mut request = Request { method, target, headers, body: Vec::new() };
    let length: usize = request.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    request.body.resize(length, 0);
    reader.read_exact(&mut request.body)?;
    Ok(Some(request))
}

fn serve_one(
    stream: TcpStream,
    answer: &Answer,
    write_key: &str,
    recorded: &Mutex<Vec<Recorded>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(WAIT))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let Some(request) = read_request(&mut reader)? else { return Ok(()) };
    if request.path().starts_with("/v1/") && request.method != "OPTIONS" {
        recorded.lock().unwrap().push(Recorded {
            method: request.method.clone(),
            path: request.path().to_string(),
            authorization: request.header("authorization").map(str::to_string),
            body: serde_json::from_slice(&request.body).unwrap_or(Value::Null),
        });
    }
    let mut out = stream;
    match answer {
        Answer::Fake { vapid_public_key } => {
            let (status, content_type, body) = fake_answer(&request, write_key, vapid_public_key);
            let head = format!(
                "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
                 cache-control: no-cache\r\naccess-control-allow-origin: *\r\n\
                 access-control-allow-headers: authorization, content-type\r\n\
                 access-control-allow-methods: GET, POST, PUT, DELETE\r\nconnection: close\r\n\r\n",
                body.len()
            );
            out.write_all(head.as_bytes())?;
            out.write_all(&body)?;
        }
        Answer::Proxy { upstream } => {
            let mut up = TcpStream::connect(upstream)?;
            let mut head = format!("{} {} HTTP/1.1\r\n", request.method, request.target);
            for (name, value) in &request.headers {
                if !name.eq_ignore_ascii_case("connection") && !name.eq_ignore_ascii_case("host") {
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
            }
            head.push_str(&format!("host: {upstream}\r\nconnection: close\r\n\r\n"));
            up.write_all(head.as_bytes())?;
            up.write_all(&request.body)?;
            // The answer is relayed as it is, and both connections end with it.
            std::io::copy(&mut up, &mut out)?;
        }
    }
    out.flush()
}

fn fake_answer(
    request: &Request,
    write_key: &str,
    vapid: &str,
) -> (&'static str, &'static str, Vec<u8>) {
    const JSON: &str = "application/json";
    const JS: &str = "text/javascript; charset=utf-8";
    let asset = |name: &str| {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../server/assets");
        std::fs::read(dir.join(name)).unwrap()
    };
    let authorized =
        request.header("authorization") == Some(format!("Bearer {write_key}").as_str());
    match (request.method.as_str(), request.path()) {
        ("OPTIONS", _) => ("204 No Content", "text/plain", Vec::new()),
        ("GET", "/" | "/index.html") => {
            let html = String::from_utf8(asset("index.html")).unwrap();
            ("200 OK", "text/html; charset=utf-8", html.replace("{{WRITE_KEY}}", write_key).into())
        }
        ("GET", "/sdk.js") => ("200 OK", JS, asset("sdk.js")),
        ("GET", "/sw.js") => ("200 OK", JS, asset("sw.js")),
        ("GET", "/landing") => {
            ("200 OK", "text/html", b"<!doctype html><title>Landing</title>landed".to_vec())
        }
        ("GET", "/v1/webpush/vapid-public-key") => {
            ("200 OK", JSON, json!({"key": vapid}).to_string().into())
        }
        (_, path) if path.starts_with("/v1/") && !authorized => (
            "401 Unauthorized",
            JSON,
            json!({"error": {"code": "unauthorized", "message": "bad key"}}).to_string().into(),
        ),
        ("POST", "/v1/events") => {
            let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
            let events = body.get("events").unwrap_or(&body);
            let accepted = events.as_array().map_or(0, Vec::len);
            ("200 OK", JSON, json!({"accepted": accepted, "duplicates": 0}).to_string().into())
        }
        ("POST", "/v1/profiles" | "/v1/subscriptions" | "/v1/track")
        | ("DELETE", "/v1/subscriptions") => ("200 OK", JSON, b"{}".to_vec()),
        _ => ("404 Not Found", JSON, json!({"error": {"code": "not_found"}}).to_string().into()),
    }
}

// ---------------------------------------------------------------------------
// Waiting and matching.

/// Polls the recorded requests until one is a `method path` request whose body
/// satisfies `matches`; fails after [`WAIT`] listing what did arrive.
fn wait_request(
    backend: &dyn Backend,
    method: &str,
    path: &str,
    what: &str,
    matches: impl Fn(&Value) -> bool,
) -> Recorded {
    let deadline = Instant::now() + WAIT;
    loop {
        let all = backend.requests();
        if let Some(found) =
            all.iter().find(|r| r.method == method && r.path == path && matches(&r.body))
        {
            return found.clone();
        }
        if Instant::now() >= deadline {
            let seen: Vec<String> =
                all.iter().map(|r| format!("{} {} {}", r.method, r.path, r.body)).collect();
            panic!(
                "no {method} {path} with {what} within {WAIT:?}; requests:\n{}",
                seen.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The event named `name` inside any recorded `POST /v1/events` batch, with
/// the request that carried it.
fn wait_event(backend: &dyn Backend, name: &str) -> (Value, Recorded) {
    let has = |body: &Value| body.as_array().is_some_and(|a| a.iter().any(|e| e["name"] == name));
    let request = wait_request(backend, "POST", "/v1/events", &format!("event {name:?}"), has);
    let event =
        request.body.as_array().unwrap().iter().find(|e| e["name"] == name).unwrap().clone();
    (event, request)
}

fn assert_write_key(backend: &dyn Backend, request: &Recorded) {
    let expected = format!("Bearer {}", backend.write_key());
    assert_eq!(
        request.authorization.as_deref(),
        Some(expected.as_str()),
        "{} {} without the write key",
        request.method,
        request.path
    );
}

/// Evaluates until the expression's value equals `expected`.
fn wait_value(browser: &mut Browser, session: &str, expression: &str, expected: &Value) {
    let deadline = Instant::now() + WAIT;
    loop {
        let value = browser.evaluate(session, expression).unwrap();
        if &value == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{expression} is {value}, not {expected}, after {WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------
// The flow.

fn launch() -> Browser {
    match Browser::launch() {
        Ok(browser) => browser,
        Err(e) => panic!("{e}"),
    }
}

/// The whole browser-side flow against `backend`: page view, identify, track,
/// service worker, a push shown and tracked as viewed, clicked and closed.
fn browser_flow(backend: &dyn Backend) {
    let origin = backend.origin();
    let mut browser = launch();
    browser.timeout = WAIT;

    // 1. Permission, then the demo page.
    browser
        .call(
            "Browser.grantPermissions",
            json!({"origin": origin, "permissions": ["notifications"]}),
        )
        .unwrap();
    let page = browser.new_page(&format!("{origin}/")).unwrap();
    let s = page.session_id.clone();
    assert_eq!(browser.evaluate(&s, "Notification.permission").unwrap(), json!("granted"));

    // 2. Events and profile. The demo page called Nudge.init with the injected key;
    //    a second init only updates options.
    //    Headless Chromium never settles pushManager.subscribe (below), so bound it.
    let reinit = format!(
        "Nudge.init({{writeKey: '{}', pushTimeoutMs: 1000}}) === Nudge",
        backend.write_key()
    );
    assert_eq!(browser.evaluate(&s, &reinit).unwrap(), json!(true));
    let (viewed, request) = wait_event(backend, "Page Viewed");
    assert_write_key(backend, &request);
    let anonymous = viewed["user_id"].as_str().unwrap().to_string();
    assert!(anonymous.starts_with("anon-"), "anonymous id {anonymous}");
    assert_eq!(viewed["props"]["url"], json!(format!("{origin}/")));
    assert_eq!(viewed["props"]["path"], json!("/"));
    assert_eq!(viewed["props"]["title"], json!("Nudge demo shop"));
    assert_eq!(viewed["props"]["referrer"], json!(""));

    let identified =
        browser.evaluate(&s, "Nudge.identify('u-browser', {first_name: 'Bea'})").unwrap();
    assert_eq!(identified, json!(true));
    let profile = wait_request(backend, "POST", "/v1/profiles", "user u-browser", |b| {
        b["user_id"] == "u-browser"
    });
    assert_write_key(backend, &profile);
    assert_eq!(profile.body, json!({"user_id": "u-browser", "set": {"first_name": "Bea"}}));
    assert_eq!(
        browser.evaluate(&s, "localStorage.getItem('nudge_user_id')").unwrap(),
        json!("u-browser")
    );

    browser
        .evaluate(
            &s,
            "Nudge.track('Added To Cart', {cart_id: 'c-9', product_name: 'Shoes', price: 49.5}); \
             document.getElementById('product-viewed').click(); \
             Nudge.flush()",
        )
        .unwrap();
    let (cart, request) = wait_event(backend, "Added To Cart");
    assert_write_key(backend, &request);
    assert_eq!(cart["user_id"], json!("u-browser"));
    assert_eq!(cart["props"], json!({"cart_id": "c-9", "product_name": "Shoes", "price": 49.5}));
    assert!(cart["ts"].as_f64().is_some_and(|t| t > 1.7e12), "ts {}", cart["ts"]);
    assert!(cart["id"].as_str().is_some_and(|id| id.len() >= 16), "id {}", cart["id"]);
    let (product, _) = wait_event(backend, "Product Viewed");
    assert_eq!(product["props"]["product_name"], json!("Trail running shoes"));

    // 3. The service worker. enablePush registers it, then subscribes.
    browser.call_in(Some(&s), "ServiceWorker.enable", json!({})).unwrap();
    let enabled = browser
        .evaluate(
            &s,
            "Nudge.enablePush().then(sub => ({ok: true, endpoint: sub && sub.endpoint}), \
                                     e => ({ok: false, error: String(e)}))",
        )
        .unwrap();
    eprintln!("Nudge.enablePush(): {enabled}");
    wait_request(backend, "GET", "/v1/webpush/vapid-public-key", "no body", |_| true);
    if enabled["ok"] == json!(true) {
        let endpoint = enabled["endpoint"].as_str().unwrap().to_string();
        let sub = wait_request(backend, "POST", "/v1/subscriptions", "the endpoint", |b| {
            b["subscription"]["endpoint"] == json!(endpoint)
        });
        assert_write_key(backend, &sub);
        assert_eq!(sub.body["user_id"], json!("u-browser"));
        assert!(sub.body["subscription"]["keys"]["p256dh"].is_string(), "{}", sub.body);
        assert!(sub.body["subscription"]["keys"]["auth"].is_string(), "{}", sub.body);
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

    // The SDK told the worker the user id; the worker kept it for pushsubscriptionchange.
    let worker = browser.wait_target("service_worker", "/sw.js?api=").unwrap();
    let url = worker["url"].as_str().unwrap();
    assert!(url.contains(&format!("key={}", backend.write_key())), "worker url {url}");
    let w = browser.attach(worker["targetId"].as_str().unwrap()).unwrap();
    wait_value(&mut browser, &w, "getUserId()", &json!("u-browser"));

    // 4. A push: shown, and reported as viewed.
    let payload = json!({
        "title": "Hi", "body": "B", "url": format!("{origin}/landing"),
        "delivery_id": "d-1", "tag": "d-1", "campaign": "cart-rescue",
        "actions": [{"action": "a0", "title": "Go", "url": format!("{origin}/landing?action=a0")}],
    });
    browser
        .call_in(
            Some(&s),
            "ServiceWorker.deliverPushMessage",
            json!({"origin": origin, "registrationId": registration_id, "data": payload.to_string()}),
        )
        .unwrap();
    let view = wait_request(backend, "POST", "/v1/track", "type view", |b| b["type"] == "view");
    assert_write_key(backend, &view);
    assert_eq!(view.body, json!({"delivery_id": "d-1", "type": "view"}));

    let shown = browser
        .evaluate(
            &s,
            "navigator.serviceWorker.ready.then(r => r.getNotifications()).then(ns => ns.map(n => \
             ({title: n.title, body: n.body, tag: n.tag, data: n.data, \
               actions: n.actions.map(a => a.action)})))",
        )
        .unwrap();
    assert_eq!(
        shown,
        json!([{
            "title": "Hi", "body": "B", "tag": "d-1", "actions": ["a0"],
            "data": {"url": format!("{origin}/landing"), "delivery_id": "d-1", "campaign": "cart-rescue",
                     "action_urls": {"a0": format!("{origin}/landing?action=a0")}},
        }]),
        "the notifications shown"
    );

    // 5. A click on the action button, then a close: synthetic events in the worker.
    let dispatch = |event: &str, action: &str| {
        format!(
            "self.registration.getNotifications({{tag: 'd-1'}}).then(([n]) => \
             self.dispatchEvent(new NotificationEvent('{event}', {{notification: n, action: '{action}'}})))"
        )
    };
    assert_eq!(browser.evaluate(&w, &dispatch("notificationclick", "a0")).unwrap(), json!(true));
    let click = wait_request(backend, "POST", "/v1/track", "type click", |b| b["type"] == "click");
    assert_write_key(backend, &click);
    assert_eq!(click.body, json!({"delivery_id": "d-1", "type": "click", "action": "a0"}));
    // The click closed the notification.
    wait_value(
        &mut browser,
        &w,
        "self.registration.getNotifications().then(ns => ns.length)",
        &json!(0),
    );

    browser
        .call_in(
            Some(&s),
            "ServiceWorker.deliverPushMessage",
            json!({"origin": origin, "registrationId": registration_id,
                   "data": json!({"title": "Again", "delivery_id": "d-2"}).to_string()}),
        )
        .unwrap();
    wait_request(backend, "POST", "/v1/track", "d-2 viewed", |b| b["delivery_id"] == "d-2");
    let close_d2 = "self.registration.getNotifications({tag: 'd-2'}).then(([n]) => \
                    self.dispatchEvent(new NotificationEvent('notificationclose', {notification: n})))";
    assert_eq!(browser.evaluate(&w, close_d2).unwrap(), json!(true));
    let close = wait_request(backend, "POST", "/v1/track", "type close", |b| b["type"] == "close");
    assert_eq!(close.body, json!({"delivery_id": "d-2", "type": "close"}));

    // disablePush unsubscribes and tells the server, when there is a subscription.
    let disabled = browser.evaluate(&s, "Nudge.disablePush()").unwrap();
    if enabled["ok"] == json!(true) {
        assert_eq!(disabled, json!(true));
        let gone = wait_request(backend, "DELETE", "/v1/subscriptions", "the endpoint", |b| {
            b["endpoint"] == enabled["endpoint"]
        });
        assert_write_key(backend, &gone);
    } else {
        assert_eq!(disabled, json!(false));
    }

    // 6. Leaving the page reports the time spent on it.
    browser.navigate(&page, &format!("{origin}/landing")).unwrap();
    let (left, _) = wait_event(backend, "Page Left");
    assert_eq!(left["props"]["path"], json!("/"));
    assert_eq!(left["user_id"], json!("u-browser"));
    assert!(left["props"]["seconds"].as_f64().is_some_and(|s| s >= 0.0), "{left}");
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

#[test]
fn sdk_and_service_worker_in_headless_chromium() {
    let started = Instant::now();
    let server = Loopback::fake(WRITE_KEY);
    browser_flow(&server);
    let mut counts: HashMap<String, usize> = HashMap::new();
    for r in server.requests() {
        *counts.entry(format!("{} {}", r.method, r.path)).or_default() += 1;
    }
    eprintln!("requests: {counts:?}; took {:?}", started.elapsed());
}

/// The proxy used against the real server records and relays; checked here
/// against the fake so it does not rot before it is needed.
#[test]
fn proxy_records_and_relays() {
    let upstream = Loopback::fake(WRITE_KEY);
    let proxy = Loopback::proxy(upstream.addr, WRITE_KEY);
    let send = |request: &str| {
        let mut stream = TcpStream::connect(proxy.addr).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    };
    let page = send("GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains(WRITE_KEY) && !page.contains("{{WRITE_KEY}}"), "{page}");
    let body = r#"[{"user_id":"u1","name":"E"}]"#;
    let events = send(&format!(
        "POST /v1/events HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {WRITE_KEY}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    ));
    assert!(events.ends_with(r#"{"accepted":1,"duplicates":0}"#), "{events}");
    for server in [&proxy, &upstream] {
        let recorded = server.requests();
        assert_eq!(recorded.len(), 1);
        assert_eq!(recorded[0].body, json!([{"user_id": "u1", "name": "E"}]));
        assert_eq!(
            recorded[0].authorization.as_deref(),
            Some(format!("Bearer {WRITE_KEY}").as_str())
        );
    }
}

//! The push part of the peer benchmark: Nudge's Web Push sender against
//! Node's `web-push`, sending the same notification to the same subscriptions
//! on the same loopback push receiver (issue 6, item 5).
//!
//! - Subscriptions: [`USERS_SMALL`] (tiny scale, `--check`) or
//!   [`USERS_LARGE`] users, each with a fresh P-256 key pair and auth secret
//!   made here, spread over the receiver's three origins.
//! - Nudge (`push_nudge.rs`): the release `nudge serve` process, fed by HTTP;
//!   timed from the first `Go` event to the last message received.
//! - Node (`webpush_sender.js`): `webpush.sendNotification` for every
//!   subscription with a keep-alive agent and [`NODE_IN_FLIGHT`] in flight,
//!   twice: as the library does it (a VAPID JWT signed per message; the
//!   target's ratio), and with one VAPID header per origin signed up front by
//!   the caller (a second, informative ratio).
//! - Both must reach every subscription exactly once, and every sampled
//!   message (`push_receiver.rs`) must carry a valid VAPID token for its
//!   origin and decrypt, with the subscription's private key, to the expected
//!   notification; anything else fails the run.
//!
//! The measure is messages per second of wall time and per CPU second of the
//! sender's process (user + system): Nudge's target is 5× Node per core.

#[path = "push_nudge.rs"]
mod nudge;
#[path = "push_receiver.rs"]
pub mod receiver;

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use p256::elliptic_curve::rand_core::{OsRng, RngCore};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use serde_json::{Value, json};

use nudge_server::push::webpush::{b64u_encode, ece, vapid};

use crate::context::{Context, Part, Ratio, Result, run_captured};
use crate::fail;
use receiver::{Counts, Receiver, Sample};

/// Subscriptions at the tiny scale and in `--check` runs.
pub const USERS_SMALL: usize = 2_000;
/// Subscriptions at the S and M scales.
pub const USERS_LARGE: usize = 50_000;
/// Node's requests in flight at once (Nudge's sender allows 512 in all, 128 per origin).
pub const NODE_IN_FLIGHT: usize = 256;
/// Node's agent: sockets per origin.
pub const NODE_MAX_SOCKETS: usize = 128;
/// The Web Push `TTL` Node sends (Nudge's campaign has `ttl: 1h`).
pub const TTL_SECONDS: u64 = 3600;
/// The VAPID `sub` claim both senders sign.
pub const VAPID_SUBJECT: &str = "mailto:peers-bench@nudge-demo.dev";
/// The target: Nudge's messages per CPU second over Node's.
pub const TARGET_PER_CORE: f64 = 5.0;
/// The `web-push` version `package.json` pins.
const WEB_PUSH_VERSION: &str = "3.6.7";
/// Threads that generate the subscribers' keys.
const KEYGEN_THREADS: usize = 2;
/// A representative `delivery_id` in Node's payload (Nudge's have this shape).
const NODE_DELIVERY_ID: &str = "c34f.5e1d2c3b4a596877";
/// Nudge's campaign id, which its payload carries.
const CAMPAIGN_ID: &str = "peers-push";

/// One subscriber: what the browser keeps and what it registers.
pub struct Subscriber {
    secret: p256::SecretKey,
    public: Vec<u8>,
    auth_bytes: [u8; ece::AUTH_LEN],
    /// `keys.p256dh`, base64url.
    pub p256dh: String,
    /// `keys.auth`, base64url.
    pub auth: String,
}

impl Subscriber {
    fn new() -> Subscriber {
        let secret = p256::SecretKey::random(&mut OsRng);
        let public = secret.public_key().to_encoded_point(false).as_bytes().to_vec();
        let mut auth_bytes = [0u8; ece::AUTH_LEN];
        OsRng.fill_bytes(&mut auth_bytes);
        Subscriber {
            p256dh: b64u_encode(&public),
            auth: b64u_encode(&auth_bytes),
            secret,
            public,
            auth_bytes,
        }
    }

    /// Decrypts a push body as the browser would.
    fn decrypt(&self, body: &[u8]) -> Result<Vec<u8>> {
        ece::decrypt(body, &self.auth_bytes, &self.public, |sender_public| {
            let sender = p256::PublicKey::from_sec1_bytes(sender_public).ok()?;
            let shared =
                p256::ecdh::diffie_hellman(self.secret.to_nonzero_scalar(), sender.as_affine());
            Some(shared.raw_secret_bytes().to_vec())
        })
        .map_err(|e| fail!("a sampled message does not decrypt: {e}"))
    }
}

/// The notification everybody gets.
pub struct Notification {
    /// Title.
    pub title: &'static str,
    /// Body text.
    pub body: &'static str,
    /// Where a click goes.
    pub url: &'static str,
    /// Icon URL.
    pub icon: &'static str,
}

/// The benchmark's notification (324 bytes of JSON once sent).
pub const NOTIFICATION: Notification = Notification {
    title: "Your weekly picks are ready",
    body: "Three new arrivals in the categories you follow.",
    url: "https://shop.example/picks?utm_source=push",
    icon: "https://shop.example/icon-192.png",
};

/// The payload JSON as Nudge's sender writes it (`Sender::payload`), with
/// `delivery_id` and `tag` set to `delivery_id`.
fn payload_json(n: &Notification, delivery_id: &str) -> Value {
    json!({
        "title": n.title,
        "body": n.body,
        "delivery_id": delivery_id,
        "campaign": CAMPAIGN_ID,
        "tag": delivery_id,
        "require_interaction": false,
        "actions": [],
        "url": n.url,
        "icon": n.icon,
    })
}

/// One sender's run.
#[derive(Debug)]
pub struct Measured {
    /// `Nudge` or `Node web-push`.
    pub system: &'static str,
    /// Messages delivered (distinct subscriptions reached).
    pub messages: u64,
    /// Wall seconds.
    pub wall_s: f64,
    /// The sender process's CPU seconds (user + system).
    pub cpu_s: f64,
    /// What the receiver counted.
    pub counts: Counts,
}

impl Measured {
    fn per_second(&self) -> f64 {
        self.messages as f64 / self.wall_s.max(f64::MIN_POSITIVE)
    }

    fn per_core(&self) -> f64 {
        self.messages as f64 / self.cpu_s.max(f64::MIN_POSITIVE)
    }
}

/// What a sampled message must decrypt to.
enum Expect<'a> {
    /// Exactly these bytes (Node sends one payload to everybody).
    Exact(&'a [u8]),
    /// Nudge's payload: these fields, with any `delivery_id` (equal to `tag`).
    Fields(&'a Value),
}

/// Generates `n` subscribers on [`KEYGEN_THREADS`] threads.
fn subscribers(n: usize) -> Vec<Subscriber> {
    let per_thread = n.div_ceil(KEYGEN_THREADS);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..KEYGEN_THREADS)
            .map(|t| {
                let count = per_thread.min(n.saturating_sub(t * per_thread));
                scope.spawn(move || (0..count).map(|_| Subscriber::new()).collect::<Vec<_>>())
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    })
}

/// Checks the receiver's counts and samples after one sender's run.
fn verify(
    system: &str,
    receiver: &Receiver,
    subscribers: &[Subscriber],
    expect: &Expect<'_>,
    vapid_key: &str,
) -> Result<usize> {
    let n = subscribers.len();
    let counts = receiver.counts();
    let missing = receiver.missing(n);
    if !missing.is_empty() || counts.distinct != n as u64 {
        return Err(fail!(
            "{system}: {} of {n} subscriptions got no message (first: {:?})",
            missing.len(),
            &missing[..missing.len().min(5)]
        ));
    }
    if counts.duplicates > 0 || counts.refused > 0 || counts.accepted != n as u64 {
        return Err(fail!(
            "{system}: {} duplicate and {} refused pushes ({counts:?})",
            counts.duplicates,
            counts.refused
        ));
    }
    let samples = receiver.take_samples();
    let wanted = (n as u64).div_ceil(receiver::SAMPLE_EVERY) as usize;
    if samples.len() < wanted {
        return Err(fail!("{system}: {} samples kept, expected {wanted}", samples.len()));
    }
    for sample in &samples {
        check_sample(system, receiver, &subscribers[sample.n], sample, expect, vapid_key)?;
    }
    Ok(samples.len())
}

fn check_sample(
    system: &str,
    receiver: &Receiver,
    subscriber: &Subscriber,
    sample: &Sample,
    expect: &Expect<'_>,
    vapid_key: &str,
) -> Result<()> {
    let which = format!("{system}, message to subscription {}", sample.n);
    if sample.content_encoding != "aes128gcm" {
        return Err(fail!("{which}: Content-Encoding {:?}", sample.content_encoding));
    }
    let ttl: u64 =
        sample.ttl.parse().map_err(|_| fail!("{which}: TTL {:?} is not a number", sample.ttl))?;
    if ttl == 0 || ttl > TTL_SECONDS {
        return Err(fail!("{which}: TTL {ttl}, expected 1 to {TTL_SECONDS}"));
    }
    let claims = vapid::verify(&sample.authorization, None)
        .map_err(|e| fail!("{which}: the VAPID header does not verify: {e}"))?;
    let origin = format!("https://127.0.0.1:{}", receiver.ports[sample.origin]);
    if claims.aud != origin
        || claims.key != vapid_key
        || claims.sub.as_deref() != Some(VAPID_SUBJECT)
    {
        return Err(fail!("{which}: unexpected VAPID claims {claims:?} (origin {origin})"));
    }
    let plaintext = subscriber.decrypt(&sample.body)?;
    match expect {
        Expect::Exact(wanted) if plaintext == *wanted => Ok(()),
        Expect::Exact(_) => Err(fail!(
            "{which}: decrypted to {:?}, not the payload",
            String::from_utf8_lossy(&plaintext)
        )),
        Expect::Fields(wanted) => {
            let got: Value = serde_json::from_slice(&plaintext)
                .map_err(|e| fail!("{which}: the notification is not JSON: {e}"))?;
            let delivery_id = got["delivery_id"].as_str().unwrap_or_default();
            let mut normalised = got.clone();
            for field in ["delivery_id", "tag"] {
                normalised[field] = wanted[field].clone();
            }
            if delivery_id.is_empty() || got["tag"] != got["delivery_id"] || normalised != **wanted
            {
                return Err(fail!("{which}: decrypted to {got}, expected {wanted}"));
            }
            Ok(())
        }
    }
}

/// The two ways Node's `web-push` is run.
#[derive(Debug, Clone, Copy)]
enum NodeMode {
    /// As the library does it: a VAPID JWT signed per message.
    Plain,
    /// One VAPID header per origin signed up front by the caller.
    CachedVapid,
}

impl NodeMode {
    fn system(self) -> &'static str {
        match self {
            NodeMode::Plain => "Node web-push",
            NodeMode::CachedVapid => "Node web-push (caller caches VAPID)",
        }
    }
}

/// Runs Node's `web-push` over the subscriptions.
fn run_node(
    ctx: &Context,
    dir: &Path,
    receiver: &Receiver,
    subscribers: &[Subscriber],
    payload: &str,
    mode: NodeMode,
) -> Result<(Measured, String)> {
    let secret = p256::SecretKey::random(&mut OsRng);
    let public_key = b64u_encode(secret.public_key().to_encoded_point(false).as_bytes());
    let subscriptions: Vec<Value> = subscribers
        .iter()
        .enumerate()
        .map(|(n, s)| {
            json!({"endpoint": receiver.endpoint(n), "keys": {"p256dh": s.p256dh, "auth": s.auth}})
        })
        .collect();
    let input = json!({
        "subscriptions": subscriptions,
        "payload": payload,
        "vapid": {"subject": VAPID_SUBJECT, "publicKey": public_key, "privateKey": b64u_encode(&secret.to_bytes())},
        "ca": receiver.ca_pem,
        "ttl": TTL_SECONDS,
        "in_flight": NODE_IN_FLIGHT,
        "max_sockets": NODE_MAX_SOCKETS,
        "cache_vapid": matches!(mode, NodeMode::CachedVapid),
    });
    let input_file = dir.join("node-input.json");
    std::fs::write(&input_file, serde_json::to_vec(&input)?)?;
    receiver.reset(subscribers.len());
    eprintln!("peers: push: {} fan-out to {} subscriptions", mode.system(), subscribers.len());
    let output = run_captured(
        Command::new("node")
            .arg(ctx.scripts.join("webpush_sender.js"))
            .arg(&input_file)
            .env("NODE_PATH", ctx.node_dir.join("node_modules")),
    )?;
    let line = output.lines().last().unwrap_or_default();
    let result: Value =
        serde_json::from_str(line).map_err(|e| fail!("webpush_sender.js printed {line:?}: {e}"))?;
    let (sent, failed) = (result["sent"].as_u64(), result["failed"].as_u64());
    if sent != Some(subscribers.len() as u64) || failed != Some(0) {
        return Err(fail!("{} did not send every message: {result}", mode.system()));
    }
    let counts = receiver.counts();
    let measured = Measured {
        system: mode.system(),
        messages: counts.distinct,
        wall_s: result["wall_s"].as_f64().unwrap_or(0.0),
        cpu_s: result["cpu_s"].as_f64().unwrap_or(0.0),
        counts,
    };
    Ok((measured, public_key))
}

/// `node --version`.
fn node_version() -> String {
    run_captured(Command::new("node").arg("--version"))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

fn protocol(counts: &Counts) -> &'static str {
    match (counts.h2 > 0, counts.http1 > 0) {
        (true, false) => "HTTP/2",
        (false, true) => "HTTP/1.1",
        _ => "HTTP/2 and HTTP/1.1",
    }
}

/// Runs the push comparison.
pub fn run(ctx: &Context) -> Result<Part> {
    let users = if ctx.args.check || ctx.args.scale == crate::context::Scale::Tiny {
        USERS_SMALL
    } else {
        USERS_LARGE
    };
    let dir = ctx.scale_dir().join("push");
    std::fs::create_dir_all(&dir)?;
    eprintln!("peers: push: generating {users} subscriber key pairs");
    let subscribers = subscribers(users);
    let receiver = Receiver::start(users)?;

    let (nudge, nudge_key) = nudge::run(&dir, &receiver, &subscribers, &NOTIFICATION)?;
    let nudge_expected = payload_json(&NOTIFICATION, NODE_DELIVERY_ID);
    let mut samples = vec![verify(
        "Nudge",
        &receiver,
        &subscribers,
        &Expect::Fields(&nudge_expected),
        &nudge_key,
    )?];
    let payload = serde_json::to_string(&payload_json(&NOTIFICATION, NODE_DELIVERY_ID))?;
    let mut nodes = Vec::new();
    for mode in [NodeMode::Plain, NodeMode::CachedVapid] {
        let (node, key) = run_node(ctx, &dir, &receiver, &subscribers, &payload, mode)?;
        let expect = Expect::Exact(payload.as_bytes());
        samples.push(verify(mode.system(), &receiver, &subscribers, &expect, &key)?);
        nodes.push(node);
    }
    drop(receiver);
    let [node, node_cached] =
        <[Measured; 2]>::try_from(nodes).map_err(|_| fail!("expected two Node runs"))?;
    let times = nudge.per_core() / node.per_core();
    let times_cached = nudge.per_core() / node_cached.per_core();
    eprintln!(
        "peers: push: Nudge {:.0} msg/s ({:.0} per core), Node {:.0} msg/s ({:.0} per core), Node with cached VAPID {:.0} msg/s ({:.0} per core): {times:.1}x ({times_cached:.1}x) per core",
        nudge.per_second(),
        nudge.per_core(),
        node.per_second(),
        node.per_core(),
        node_cached.per_second(),
        node_cached.per_core()
    );
    let markdown = report(users, payload.len(), [&nudge, &node, &node_cached], &samples);
    Ok(Part {
        markdown,
        ratios: vec![
            Ratio {
                measure: "push fan-out per core".into(),
                peer: node.system.into(),
                times,
                target: Some(TARGET_PER_CORE),
            },
            Ratio {
                measure: "push fan-out per core".into(),
                peer: node_cached.system.into(),
                times: times_cached,
                target: None,
            },
        ],
    })
}

/// The part's section: the table and the notes.
fn report(users: usize, payload_len: usize, runs: [&Measured; 3], samples: &[usize]) -> String {
    let [nudge, node, node_cached] = runs;
    let mut markdown = String::from("### Push fan-out\n\n");
    let _ = writeln!(
        markdown,
        "{users} subscriptions, one {payload_len}-byte JSON notification each (RFC 8291 `aes128gcm` with a fresh ECDH key per message, VAPID), sent to a loopback push service with three TLS origins (FCM-, Mozilla- and Apple-like).\n"
    );
    markdown.push_str(
        "| system | messages | wall s | messages/s | sender CPU s | messages/s per core |\n|---|---:|---:|---:|---:|---:|\n",
    );
    for m in runs {
        let _ = writeln!(
            markdown,
            "| {} | {} | {:.2} | {:.0} | {:.2} | {:.0} |",
            m.system,
            m.messages,
            m.wall_s,
            m.per_second(),
            m.cpu_s,
            m.per_core()
        );
    }
    let _ = writeln!(
        markdown,
        "\nPer CPU second Nudge sends **{:.1}×** as many messages as Node's web-push (target {TARGET_PER_CORE}×) and {:.1}× as many as web-push with the VAPID header cached by the caller; per wall second {:.1}× and {:.1}×.\n",
        nudge.per_core() / node.per_core(),
        nudge.per_core() / node_cached.per_core(),
        nudge.per_second() / node.per_second(),
        nudge.per_second() / node_cached.per_second()
    );
    let _ = writeln!(
        markdown,
        "- Nudge: the release `nudge serve` process, timed from the first `POST /v1/events` (batches of {} `Go` events, each fsynced) to the receiver's last message. Its CPU is the whole server's: ingest, the trigger decision, the outbox, encryption, VAPID (one token per origin, cached), {} to each origin, and the durable reports as they happen.",
        nudge::EVENT_BATCH,
        protocol(&nudge.counts)
    );
    let _ = writeln!(
        markdown,
        "- Node {} with web-push {WEB_PUSH_VERSION}: `sendNotification` per subscription, {NODE_IN_FLIGHT} in flight, one `https.Agent` with keep-alive ({NODE_MAX_SOCKETS} sockets per origin, {}); CPU is the process's `process.cpuUsage()` over the sending alone. web-push signs a fresh VAPID JWT (ES256, the key re-encoded to PEM each time) for every message and has no token cache: that is the library's behaviour, measured in the first Node row. The second row signs one header per origin up front and passes it with `vapidDetails: null`, as a careful caller can.",
        node_version(),
        protocol(&node.counts)
    );
    let _ = writeln!(
        markdown,
        "- Checked for each run: every subscription got exactly one message (per origin: {}), and the sampled messages ({} for Nudge, {} and {} for Node: the first and every {}th) carried a valid VAPID token for their origin and decrypted with the subscription's private key to the expected notification.",
        node.counts.per_origin.map(|c| c.to_string()).join(" / "),
        samples.first().copied().unwrap_or(0),
        samples.get(1).copied().unwrap_or(0),
        samples.get(2).copied().unwrap_or(0),
        receiver::SAMPLE_EVERY
    );
    markdown.push_str(
        "- The receiver (rustls, hyper) and the load generator run in the harness process on the same 2 cores, so wall figures are lower than a sender alone would reach; the per-core figures count only the sender's own process.\n",
    );
    markdown
}

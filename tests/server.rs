//! Helpers for black-box tests of `nudge serve`: start the real binary on a
//! loopback port with known keys, talk to it over HTTP, stop it with SIGTERM,
//! stand up a loopback push service that answers as scripted and keeps every
//! request it got, and hold a browser's subscription keys to decrypt pushes.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use serde_json::{Value, json};

/// The write key the test servers use.
pub const TEST_WRITE_KEY: &str = "wk_test_write_key_0123456789";
/// The admin key the test servers use.
pub const TEST_ADMIN_KEY: &str = "ak_test_admin_key_0123456789";
/// How long a test waits for the server to start.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The `nudge` binary of this build, built first when it is missing (when
/// only this package's tests were asked for).
pub fn nudge_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    // target/<profile>/deps/<test> → target/<profile>/nudge
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
    let binary = profile_dir.join("nudge");
    if !binary.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "nudge-server", "--bin", "nudge"])
            .status()
            .expect("running cargo build for the nudge binary");
        assert!(status.success(), "building the nudge binary failed");
    }
    binary
}

/// A running `nudge serve`.
pub struct NudgeServer {
    child: Option<Child>,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// Everything it printed on standard output so far (start-up lines).
    pub banner: Vec<String>,
    /// Every line it printed, on standard output and standard error, so far.
    output: Arc<Mutex<Vec<String>>>,
}

impl NudgeServer {
    /// Starts `nudge serve` on `data` at a free loopback port with the test
    /// keys and `extra` arguments, and waits until it listens.
    pub fn start(data: &Path, extra: &[&str]) -> NudgeServer {
        let mut child = Command::new(nudge_binary())
            .args(["serve", "--data"])
            .arg(data)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env("NUDGE_WRITE_KEY", TEST_WRITE_KEY)
            .env("NUDGE_ADMIN_KEY", TEST_ADMIN_KEY)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting nudge serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let output: Arc<Mutex<Vec<String>>> = Arc::default();
        let (lines_tx, lines_rx) = std::sync::mpsc::channel();
        let kept = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                kept.lock().expect("output").push(line.clone());
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Standard error is kept and passed on, so a failing test shows it.
        let kept = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
                kept.lock().expect("output").push(line);
            }
        });
        let started = Instant::now();
        let mut banner = Vec::new();
        let base = loop {
            let left = START_TIMEOUT.saturating_sub(started.elapsed());
            let line = lines_rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("nudge serve did not start; it printed {banner:?}"));
            banner.push(line.clone());
            if let Some(url) = line.split(" on ").nth(1).filter(|u| u.starts_with("http://")) {
                break url.trim().to_owned();
            }
        };
        // Collect the rest of the banner (keys, VAPID key) without blocking long.
        while let Ok(line) = lines_rx.recv_timeout(Duration::from_millis(200)) {
            banner.push(line);
        }
        std::thread::spawn(move || while lines_rx.recv().is_ok() {});
        NudgeServer { child: Some(child), base, banner, output }
    }

    /// Every line the server printed so far, standard output and error together.
    pub fn output(&self) -> Vec<String> {
        self.output.lock().expect("output").clone()
    }

    /// Stops the server with SIGTERM and returns its exit status and everything it printed.
    pub fn stop_and_collect(self) -> (ExitStatus, Vec<String>) {
        let output = self.output.clone();
        let status = self.stop();
        // The readers see end-of-file once the process is gone.
        std::thread::sleep(Duration::from_millis(200));
        let lines = output.lock().expect("output").clone();
        (status, lines)
    }

    /// A URL on the server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops the server with SIGTERM and waits for it to exit.
    pub fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("waiting for nudge") {
                return status;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "nudge did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NudgeServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// Request path.
    pub path: String,
    /// Headers, names lower-cased.
    pub headers: HashMap<String, String>,
    /// The body.
    pub body: Vec<u8>,
    /// When it arrived.
    pub at: Instant,
}

/// A scripted answer: status and extra headers.
pub type Answer = (u16, Vec<(String, String)>);

#[derive(Default)]
struct ReceiverState {
    received: Vec<Received>,
    scripts: HashMap<String, VecDeque<Answer>>,
}

/// A loopback HTTP/1.1 server standing in for a push service (or a webhook
/// receiver): answers each path from its script (then 201), keeps every request.
#[derive(Clone)]
pub struct Receiver {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    state: Arc<Mutex<ReceiverState>>,
}

impl Receiver {
    /// Starts a receiver on a free loopback port.
    pub fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the receiver");
        let base = format!("http://{}", listener.local_addr().expect("an address"));
        let state = Arc::new(Mutex::new(ReceiverState::default()));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let state = shared.clone();
                std::thread::spawn(move || serve_connection(stream, state));
            }
        });
        Receiver { base, state }
    }

    /// Answers the next requests to `path` with `answers`, in order (then 201).
    pub fn script(&self, path: &str, answers: Vec<Answer>) {
        self.state.lock().expect("receiver state").scripts.insert(path.into(), answers.into());
    }

    /// Every request so far to `path`.
    pub fn received(&self, path: &str) -> Vec<Received> {
        let state = self.state.lock().expect("receiver state");
        state.received.iter().filter(|r| r.path == path).cloned().collect()
    }

    /// Waits until `path` got at least `n` requests, or `timeout`.
    pub fn wait_for(&self, path: &str, n: usize, timeout: Duration) -> Vec<Received> {
        let started = Instant::now();
        loop {
            let got = self.received(path);
            if got.len() >= n || started.elapsed() > timeout {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn serve_connection(stream: TcpStream, state: Arc<Mutex<ReceiverState>>) {
    let mut reader = BufReader::new(stream.try_clone().expect("a second handle"));
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let path = request_line.split_whitespace().nth(1).unwrap_or_default().to_owned();
        let mut headers = HashMap::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
            }
        }
        let length: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let (status, extra) = {
            let mut state = state.lock().expect("receiver state");
            state.received.push(Received { path: path.clone(), headers, body, at: Instant::now() });
            state.scripts.get_mut(&path).and_then(VecDeque::pop_front).unwrap_or((201, Vec::new()))
        };
        let mut response = format!("HTTP/1.1 {status} Scripted\r\ncontent-length: 0\r\n");
        for (name, value) in extra {
            response.push_str(&format!("{name}: {value}\r\n"));
        }
        response.push_str("\r\n");
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// One request with any headers and a raw body: the status, the JSON answer
/// (or the text, when not JSON) and the response headers.
pub fn call_raw(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, Value, Vec<(String, String)>) {
    let mut request = ureq::request(method, url);
    for (name, value) in headers {
        request = request.set(name, value);
    }
    let result = match body {
        Some(body) => request.send_string(body),
        None => request.call(),
    };
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = response.status();
    let headers = response
        .headers_names()
        .into_iter()
        .map(|name| {
            let value = response.header(&name).unwrap_or_default().to_owned();
            (name, value)
        })
        .collect();
    let text = response.into_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)), headers)
}

/// One API call with an optional `Bearer` key: the status and the JSON answer
/// (`Null` when the body is not JSON).
pub fn call_with(method: &str, url: &str, key: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let auth = key.map(|k| format!("Bearer {k}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    let body = body.map(|b| b.to_string());
    let (status, value, _) = call_raw(method, url, &headers, body.as_deref());
    match value {
        Value::String(_) => (status, Value::Null),
        json => (status, json),
    }
}

/// One API call with `key`.
pub fn call(method: &str, url: &str, key: &str, body: Option<Value>) -> (u16, Value) {
    call_with(method, url, Some(key), body)
}

/// A browser's push subscription keys (P-256 pair and auth secret), made in
/// the test as a browser would, so the test can decrypt what the server sent.
pub struct BrowserKeys {
    secret: p256::SecretKey,
    /// The uncompressed public point (`p256dh`).
    pub public: Vec<u8>,
    /// The auth secret.
    pub auth: [u8; 16],
}

impl BrowserKeys {
    /// A fresh key pair with every auth byte `auth_byte`.
    pub fn new(auth_byte: u8) -> BrowserKeys {
        let secret = p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
        let public = secret.public_key().to_encoded_point(false).as_bytes().to_vec();
        BrowserKeys { secret, public, auth: [auth_byte; 16] }
    }

    /// `PushSubscription.toJSON()` for `endpoint`.
    pub fn subscription(&self, endpoint: &str) -> Value {
        json!({"endpoint": endpoint, "keys": {"p256dh": B64.encode(&self.public), "auth": B64.encode(self.auth)}})
    }

    /// Decrypts a push body (RFC 8291) as the browser would.
    pub fn decrypt(&self, body: &[u8]) -> Vec<u8> {
        nudge_server::push::webpush::ece::decrypt(body, &self.auth, &self.public, |sender_public| {
            let sender = p256::PublicKey::from_sec1_bytes(sender_public).ok()?;
            let shared =
                p256::ecdh::diffie_hellman(self.secret.to_nonzero_scalar(), sender.as_affine());
            Some(shared.raw_secret_bytes().to_vec())
        })
        .expect("the push body decrypts with the subscription's keys")
    }

    /// Decrypts a push body and parses the notification JSON.
    pub fn notification(&self, body: &[u8]) -> Value {
        serde_json::from_slice(&self.decrypt(body)).expect("the notification is JSON")
    }
}

//! A minimal Chrome DevTools Protocol client for browser tests: it launches
//! headless Chromium on a throw-away profile, talks to it over the DevTools
//! WebSocket with flattened target sessions (`sessionId` on each message), sends
//! commands and waits for their results, buffers events, and kills the browser
//! on drop.
//!
//! Chromium is required, not optional: [`Browser::launch`] fails with a message
//! saying to install the Debian package `chromium` when it is missing, so a
//! browser test never passes by skipping. `NUDGE_CHROMIUM` names another binary.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

/// Where Debian's `chromium` package puts the browser.
pub const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";

/// How long a command or a wait may take unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// Lines of Chromium's stderr kept for error messages.
const STDERR_LINES: usize = 60;

/// A failure of the browser or of the protocol.
#[derive(Debug)]
pub enum Error {
    /// Chromium is missing or did not start.
    Launch(String),
    /// The WebSocket failed or closed.
    Socket(String),
    /// A command answered with an error.
    Protocol {
        /// The command.
        method: String,
        /// The error object's message and data.
        message: String,
    },
    /// Evaluated JavaScript threw or rejected.
    Exception(String),
    /// Nothing arrived in time.
    Timeout(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Launch(m) => write!(f, "launching Chromium: {m}"),
            Error::Socket(m) => write!(f, "DevTools socket: {m}"),
            Error::Protocol { method, message } => write!(f, "{method} failed: {message}"),
            Error::Exception(m) => write!(f, "JavaScript exception: {m}"),
            Error::Timeout(m) => write!(f, "timed out: {m}"),
        }
    }
}

impl std::error::Error for Error {}

/// A protocol event: `method`, `params`, and the session it came from (`None`
/// for the browser session).
#[derive(Debug, Clone)]
pub struct Event {
    /// For example `ServiceWorker.workerVersionUpdated`.
    pub method: String,
    /// The event's parameters.
    pub params: Value,
    /// The flattened session that sent it.
    pub session_id: Option<String>,
}

/// A page opened by [`Browser::new_page`].
#[derive(Debug, Clone)]
pub struct Page {
    /// The page's target id.
    pub target_id: String,
    /// The flattened session attached to it.
    pub session_id: String,
}

/// A running headless Chromium and a DevTools connection to it.
pub struct Browser {
    child: Child,
    ws: WebSocket<TcpStream>,
    next_id: u64,
    responses: HashMap<u64, Value>,
    events: VecDeque<Event>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    /// Bound on each command and wait.
    pub timeout: Duration,
    // Dropped after the browser is killed (fields drop in declaration order).
    _profile: tempfile::TempDir,
}

/// The Chromium binary: `NUDGE_CHROMIUM`, else [`DEFAULT_CHROMIUM`].
pub fn chromium_path() -> PathBuf {
    std::env::var_os("NUDGE_CHROMIUM")
        .map_or_else(|| PathBuf::from(DEFAULT_CHROMIUM), PathBuf::from)
}

impl Browser {
    /// Starts headless Chromium on a fresh profile and connects to it.
    pub fn launch() -> Result<Browser, Error> {
        let path = chromium_path();
        if !path.exists() {
            return Err(Error::Launch(format!(
                "{} does not exist. The browser tests need headless Chromium: install the Debian \
                 package `chromium` (apt-get install chromium), as CI does, or point \
                 NUDGE_CHROMIUM at a Chromium binary",
                path.display()
            )));
        }
        let profile =
            tempfile::tempdir().map_err(|e| Error::Launch(format!("profile dir: {e}")))?;
        let mut child = Command::new(&path)
            .args([
                "--headless=new",
                // CI runs as root, where Chromium's sandbox refuses to start.
                "--no-sandbox",
                // Containers often give /dev/shm 64 MB; shared memory goes to /tmp instead.
                "--disable-dev-shm-usage",
                "--disable-gpu",
                "--remote-debugging-port=0",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--password-store=basic",
                "--use-mock-keychain",
                "--mute-audio",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own process group, so Drop can end the renderers and helpers too.
            .process_group(0)
            .spawn()
            .map_err(|e| {
                Error::Launch(format!(
                    "{}: {e}; install the Debian package `chromium`",
                    path.display()
                ))
            })?;
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let (url_tx, url_rx) = mpsc::channel();
        let pipe = child.stderr.take().ok_or_else(|| Error::Launch("no stderr pipe".into()))?;
        let lines = Arc::clone(&stderr);
        std::thread::spawn(move || {
            // Keeps draining stderr after the URL so Chromium never blocks on a full pipe.
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if let Some(url) = line.split("DevTools listening on ").nth(1) {
                    let _ = url_tx.send(url.trim().to_string());
                }
                let mut kept = lines.lock().unwrap_or_else(|p| p.into_inner());
                kept.push_back(line);
                if kept.len() > STDERR_LINES {
                    kept.pop_front();
                }
            }
        });
        let url = match url_rx.recv_timeout(DEFAULT_TIMEOUT) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let tail =
                    stderr.lock().map(|l| Vec::from(l.clone()).join("\n")).unwrap_or_default();
                return Err(Error::Launch(format!(
                    "{} printed no `DevTools listening on ws://…` line within {:?}; stderr:\n{tail}",
                    path.display(),
                    DEFAULT_TIMEOUT
                )));
            }
        };
        let ws = connect(&url)?;
        Ok(Browser {
            child,
            ws,
            next_id: 1,
            responses: HashMap::new(),
            events: VecDeque::new(),
            stderr,
            timeout: DEFAULT_TIMEOUT,
            _profile: profile,
        })
    }

    /// The last lines Chromium wrote to stderr, for failure messages.
    pub fn stderr_tail(&self) -> String {
        self.stderr.lock().map(|l| Vec::from(l.clone()).join("\n")).unwrap_or_default()
    }

    /// Sends a command to the browser session and waits for its result.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, Error> {
        self.call_in(None, method, params)
    }

    /// Sends a command to a session (`None`: the browser) and waits for its result.
    pub fn call_in(
        &mut self,
        session_id: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, Error> {
        let id = self.next_id;
        self.next_id += 1;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session_id {
            message["sessionId"] = json!(session);
        }
        self.ws
            .send(Message::text(message.to_string()))
            .map_err(|e| Error::Socket(format!("sending {method}: {e}")))?;
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(response) = self.responses.remove(&id) {
                if let Some(error) = response.get("error") {
                    let mut text = error["message"].as_str().unwrap_or("").to_string();
                    if let Some(data) = error.get("data") {
                        text.push_str(&format!(" ({data})"));
                    }
                    return Err(Error::Protocol { method: method.to_string(), message: text });
                }
                return Ok(response.get("result").cloned().unwrap_or(Value::Null));
            }
            if !self.pump(deadline)? {
                return Err(Error::Timeout(format!(
                    "no answer to {method} within {:?}",
                    self.timeout
                )));
            }
        }
    }

    /// Waits for the first event (buffered or new) that `matches`, removes it from
    /// the buffer and returns it. `what` names it in the timeout message.
    pub fn wait_event(
        &mut self,
        what: &str,
        mut matches: impl FnMut(&Event) -> bool,
    ) -> Result<Event, Error> {
        let deadline = Instant::now() + self.timeout;
        let mut seen = 0;
        loop {
            if let Some(i) = self.events.iter().skip(seen).position(&mut matches) {
                let found = self.events.remove(seen + i);
                return Ok(found.expect("index in range"));
            }
            seen = self.events.len();
            if !self.pump(deadline)? {
                let methods: Vec<&str> = self.events.iter().map(|e| e.method.as_str()).collect();
                return Err(Error::Timeout(format!(
                    "{what} within {:?}; buffered events: {methods:?}",
                    self.timeout
                )));
            }
        }
    }

    /// Takes every buffered event, after reading what has already arrived.
    pub fn drain_events(&mut self) -> Result<Vec<Event>, Error> {
        while self.pump(Instant::now() + Duration::from_millis(1))? {}
        Ok(self.events.drain(..).collect())
    }

    /// Opens a new tab, attaches a flattened session to it, enables the `Page` and
    /// `Runtime` domains, navigates to `url` and waits for its load event.
    pub fn new_page(&mut self, url: &str) -> Result<Page, Error> {
        let created = self.call("Target.createTarget", json!({"url": "about:blank"}))?;
        let target_id = str_field(&created, "targetId")?;
        let session_id = self.attach(&target_id)?;
        let page = Page { target_id, session_id };
        self.call_in(Some(&page.session_id), "Page.enable", json!({}))?;
        self.call_in(Some(&page.session_id), "Runtime.enable", json!({}))?;
        self.navigate(&page, url)?;
        Ok(page)
    }

    /// Navigates a page and waits for its load event.
    pub fn navigate(&mut self, page: &Page, url: &str) -> Result<(), Error> {
        let answer = self.call_in(Some(&page.session_id), "Page.navigate", json!({"url": url}))?;
        if let Some(error) = answer.get("errorText") {
            return Err(Error::Protocol {
                method: "Page.navigate".into(),
                message: format!("{url}: {error}"),
            });
        }
        let session = page.session_id.clone();
        self.wait_event(&format!("the load event of {url}"), |e| {
            e.method == "Page.loadEventFired" && e.session_id.as_deref() == Some(&session)
        })?;
        Ok(())
    }

    /// Attaches a flattened session to a target and returns the session id.
    pub fn attach(&mut self, target_id: &str) -> Result<String, Error> {
        let attached =
            self.call("Target.attachToTarget", json!({"targetId": target_id, "flatten": true}))?;
        str_field(&attached, "sessionId")
    }

    /// Polls `Target.getTargets` until a target of `kind` (`page`,
    /// `service_worker`, …) whose url contains `url_part` exists; returns its info.
    pub fn wait_target(&mut self, kind: &str, url_part: &str) -> Result<Value, Error> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let targets = self.call("Target.getTargets", json!({}))?;
            let found = targets["targetInfos"].as_array().and_then(|all| {
                all.iter()
                    .find(|t| {
                        t["type"] == kind && t["url"].as_str().is_some_and(|u| u.contains(url_part))
                    })
                    .cloned()
            });
            if let Some(target) = found {
                return Ok(target);
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout(format!(
                    "no {kind} target with url containing {url_part:?} within {:?}; targets: {}",
                    self.timeout, targets["targetInfos"]
                )));
            }
            self.pump(Instant::now() + Duration::from_millis(50))?;
        }
    }

    /// Evaluates `expression` in a session's main context with `awaitPromise`,
    /// `returnByValue` and a user gesture; returns the value (`Null` for
    /// `undefined`) or the exception as [`Error::Exception`].
    pub fn evaluate(&mut self, session_id: &str, expression: &str) -> Result<Value, Error> {
        let answer = self.call_in(
            Some(session_id),
            "Runtime.evaluate",
            json!({
                "expression": expression,
                "awaitPromise": true,
                "returnByValue": true,
                "userGesture": true,
            }),
        )?;
        if let Some(details) = answer.get("exceptionDetails") {
            let text = details["exception"]["description"]
                .as_str()
                .or_else(|| details["text"].as_str())
                .unwrap_or("(no description)");
            return Err(Error::Exception(format!("{text}\n  in: {expression}")));
        }
        Ok(answer["result"].get("value").cloned().unwrap_or(Value::Null))
    }

    /// Reads one message if it arrives before `deadline`: a command's answer is
    /// kept for [`Browser::call_in`], an event is buffered. False on timeout.
    fn pump(&mut self, deadline: Instant) -> Result<bool, Error> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        self.ws
            .get_mut()
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .map_err(|e| Error::Socket(e.to_string()))?;
        let message = match self.ws.read() {
            Ok(Message::Text(text)) => text,
            Ok(Message::Close(_)) => {
                return Err(Error::Socket(format!(
                    "Chromium closed the connection; stderr:\n{}",
                    self.stderr_tail()
                )));
            }
            Ok(_) => return Ok(true),
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(false);
            }
            Err(e) => {
                return Err(Error::Socket(format!(
                    "{e}; Chromium stderr:\n{}",
                    self.stderr_tail()
                )));
            }
        };
        let value: Value = serde_json::from_str(message.as_str())
            .map_err(|e| Error::Socket(format!("not JSON ({e}): {message}")))?;
        if let Some(id) = value.get("id").and_then(Value::as_u64) {
            self.responses.insert(id, value);
        } else if let Some(method) = value.get("method").and_then(Value::as_str) {
            self.events.push_back(Event {
                method: method.to_string(),
                params: value.get("params").cloned().unwrap_or(Value::Null),
                session_id: value.get("sessionId").and_then(Value::as_str).map(str::to_string),
            });
        }
        Ok(true)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ask politely, then make sure: the whole process group (renderers, GPU and
        // network helpers) is Chromium's own, started by `launch`.
        let close = json!({"id": self.next_id, "method": "Browser.close"});
        let _ = self.ws.send(Message::text(close.to_string()));
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn connect(url: &str) -> Result<WebSocket<TcpStream>, Error> {
    let authority = url
        .strip_prefix("ws://")
        .and_then(|rest| rest.split('/').next())
        .ok_or_else(|| Error::Socket(format!("unexpected DevTools URL {url}")))?;
    let stream = TcpStream::connect(authority)
        .map_err(|e| Error::Socket(format!("connecting to {authority}: {e}")))?;
    stream.set_nodelay(true).map_err(|e| Error::Socket(e.to_string()))?;
    let (ws, _response) = tungstenite::client::client(url, stream)
        .map_err(|e| Error::Socket(format!("WebSocket handshake with {url}: {e}")))?;
    Ok(ws)
}

fn str_field(value: &Value, field: &str) -> Result<String, Error> {
    value[field]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| Error::Socket(format!("no {field} in {value}")))
}

//! The wall-clock half of the triggers part, and the private redis-server
//! both halves talk to: Nudge's `FireLoop` on the system clock against a
//! Redis poller, on the same planned carts and charges.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use super::*;

/// How a redis-server keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Persistence {
    /// In memory only (`--save '' --appendonly no`).
    None,
    /// An append-only file, fsync'd before every reply (`--appendfsync always`).
    AofAlways,
}

/// A redis-server child on a private port; killed when dropped.
pub(super) struct RedisServer {
    child: Child,
    pub port: u16,
}

impl RedisServer {
    /// Starts redis-server with its files in `dir` and waits until it answers.
    pub fn start(dir: &Path, persistence: Persistence) -> Result<RedisServer> {
        std::fs::create_dir_all(dir)?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = File::create(dir.join("redis.log"))?;
        let aof: &[&str] = match persistence {
            Persistence::None => &["--appendonly", "no"],
            Persistence::AofAlways => &["--appendonly", "yes", "--appendfsync", "always"],
        };
        let child = Command::new(REDIS_SERVER)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--daemonize", "no"])
            .args(aof)
            .arg("--dir")
            .arg(dir)
            .stdout(log)
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| fail!("could not start {REDIS_SERVER}: {e}"))?;
        let server = RedisServer { child, port };
        let started = Instant::now();
        while !server.answers() {
            if started.elapsed() > REDIS_START_TIMEOUT {
                return Err(fail!(
                    "redis-server did not answer on port {port} (see {}/redis.log)",
                    dir.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    fn answers(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else { return false };
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }

    /// `redis-server --version`, e.g. `7.0.15`.
    pub fn version(&self) -> Result<String> {
        let out = crate::context::run_captured(Command::new(REDIS_SERVER).arg("--version"))?;
        Ok(out
            .split_whitespace()
            .find_map(|w| w.strip_prefix("v="))
            .unwrap_or(out.trim())
            .to_owned())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Nudge on the wall clock: carts and charges ingested at the start, fires
/// decided by `FireLoop` and observed in its sink.
pub(super) fn nudge_live(dir: &Path, plan: &LivePlan) -> Result<LiveRun> {
    let options = EngineOptions { snapshot_on_close: false, ..Default::default() };
    let engine = Arc::new(Engine::open(dir, options)?);
    engine.save_trigger(TRIGGER, RULE)?;
    let (tx, rx) = mpsc::channel();
    let fire_loop = FireLoop::spawn(
        Arc::clone(&engine),
        move |fires| {
            let _ = tx.send((SystemClock.now_ms(), fires));
        },
        |e| eprintln!("peers: triggers: fire loop: {e}"),
    )?;
    let t0 = SystemClock.now_ms();
    let user = |u: usize| format!("u_{u:08x}");
    let carts = (0..plan.carts)
        .map(|u| Event::new(user(u), CART).at(t0 + plan.due_offset(u) - WITHIN_MS).into())
        .collect();
    engine.ingest(carts)?;
    let charges = (0..plan.carts)
        .filter(|&u| LivePlan::charged(u))
        .map(|u| {
            let ts = t0 + plan.due_offset(u) - WITHIN_MS + LIVE_CHARGE_AFTER_MS;
            Event::new(user(u), CHARGED).at(ts).into()
        })
        .collect();
    engine.ingest(charges)?;
    let fed_ms = SystemClock.now_ms() - t0;
    let until = t0 + plan.due_offset(plan.carts - 1) + LIVE_TAIL_MS;
    let mut run = LiveRun { fires: Vec::new(), lateness: Vec::new(), fed_ms };
    loop {
        let left = until - SystemClock.now_ms();
        if left <= 0 {
            break;
        }
        let Ok((observed, fires)) = rx.recv_timeout(Duration::from_millis(left as u64)) else {
            continue;
        };
        for fire in fires {
            let (user, due) = fired(&fire)?;
            run.fires.push((user, due - t0));
            run.lateness.push(observed - due);
        }
    }
    drop(fire_loop);
    run.fires.sort_unstable();
    Ok(run)
}

/// Redis on the wall clock, through the Python consumer and poller.
pub(super) fn redis_live(ctx: &Context, redis: &RedisServer, plan: &LivePlan) -> Result<LiveRun> {
    let out = ctx.python(
        SCRIPT,
        &[
            "live",
            "--port",
            &redis.port.to_string(),
            "--within-ms",
            &WITHIN_MS.to_string(),
            "--carts",
            &plan.carts.to_string(),
            "--spread-ms",
            &plan.spread_ms.to_string(),
            "--lead-ms",
            &LIVE_LEAD_MS.to_string(),
            "--charged-every",
            &LIVE_CHARGED_EVERY.to_string(),
            "--charge-after-ms",
            &LIVE_CHARGE_AFTER_MS.to_string(),
            "--tail-ms",
            &LIVE_TAIL_MS.to_string(),
            "--poll-ms",
            &REDIS_POLL_MS.to_string(),
        ],
    )?;
    let summary: serde_json::Value = serde_json::from_str(out.trim())?;
    let bad = || fail!("{SCRIPT} live printed an unexpected summary: {out}");
    let pairs = |key: &str| -> Option<Vec<(i64, i64)>> {
        summary[key].as_array()?.iter().map(|p| Some((p[0].as_i64()?, p[1].as_i64()?))).collect()
    };
    let mut fires: Vec<(u32, i64)> =
        pairs("fires").ok_or_else(bad)?.into_iter().map(|(u, d)| (u as u32, d)).collect();
    fires.sort_unstable();
    let lateness = summary["lateness_ms"]
        .as_array()
        .and_then(|l| l.iter().map(serde_json::Value::as_i64).collect::<Option<Vec<i64>>>())
        .ok_or_else(bad)?;
    let fed_ms = summary["fed_ms"].as_i64().ok_or_else(bad)?;
    Ok(LiveRun { fires, lateness, fed_ms })
}

//! A private PostgreSQL server for the peer benchmark: its own data directory
//! (initdb on first use), a Unix socket in the work directory, no TCP, and the
//! settings of the plan (one parallel worker, synchronous commit). Run as the
//! `postgres` user when the harness runs as root (PostgreSQL refuses root).

use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::context::{Result, run_captured};
use crate::fail;
use crate::setup::postgres_bin;

/// The port number in the socket's name (no TCP listener is opened).
const PORT: u16 = 54_329;
/// Longest Unix socket path (`sun_path` holds 108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 100;
/// How long the server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Server settings: the plan's fairness rules plus memory a user would give it on 24 GiB.
const SETTINGS: [&str; 9] = [
    "listen_addresses=",
    "max_parallel_workers_per_gather=1",
    "synchronous_commit=on",
    "fsync=on",
    "shared_buffers=4GB",
    "work_mem=256MB",
    "maintenance_work_mem=1GB",
    "max_wal_size=2GB",
    "jit=off",
];

/// A running server; stopped (fast shutdown) when dropped.
#[derive(Debug)]
pub struct Postgres {
    child: Child,
    /// The socket directory (the `host` to connect to).
    pub socket_dir: PathBuf,
    /// The port in the socket's name.
    pub port: u16,
}

/// The uid and gid to run as: `postgres` when root, else the current user.
fn run_as() -> Result<Option<(u32, u32)>> {
    let uid = run_captured(Command::new("id").arg("-u"))?;
    if uid.trim() != "0" {
        return Ok(None);
    }
    let ids = |flag: &str| -> Result<u32> {
        run_captured(Command::new("id").args([flag, "postgres"]))?
            .trim()
            .parse()
            .map_err(|_| fail!("no `postgres` user to run PostgreSQL as"))
    };
    Ok(Some((ids("-u")?, ids("-g")?)))
}

/// `dir`, or a folder in the temporary directory when the `postgres` user
/// cannot reach `dir` (a parent closed to others) or its socket path would be
/// too long for a Unix socket.
fn usable_dir(dir: &Path, user: Option<(u32, u32)>) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let Some((uid, gid)) = user else { return Ok(dir.to_path_buf()) };
    chown(dir, Some(uid), Some(gid))?;
    let reachable = Command::new("test").arg("-w").arg(dir).uid(uid).gid(gid).status();
    let short = dir.join(format!("socket/.s.PGSQL.{PORT}")).as_os_str().len() < MAX_SOCKET_PATH;
    if reachable.is_ok_and(|s| s.success()) && short {
        return Ok(dir.to_path_buf());
    }
    let name = dir.iter().rev().take(2).map(|c| c.to_string_lossy()).collect::<Vec<_>>().join("-");
    let fallback = std::env::temp_dir().join(format!("nudge-peers-{name}"));
    eprintln!(
        "peers: the postgres user cannot use {}; using {}",
        dir.display(),
        fallback.display()
    );
    Ok(fallback)
}

fn command(program: PathBuf, user: Option<(u32, u32)>) -> Command {
    let mut command = Command::new(program);
    if let Some((uid, gid)) = user {
        command.uid(uid).gid(gid);
    }
    command.env("LC_ALL", "C");
    command
}

impl Postgres {
    /// Starts the server on `dir` (created with initdb if needed).
    pub fn start(dir: &Path) -> Result<Postgres> {
        let bin = postgres_bin()?;
        let user = run_as()?;
        let dir = &usable_dir(dir, user)?;
        let data = dir.join("data");
        let socket_dir = dir.join("socket");
        for d in [dir, &socket_dir] {
            std::fs::create_dir_all(d)?;
            if let Some((uid, gid)) = user {
                chown(d, Some(uid), Some(gid))?;
            }
        }
        if !data.join("PG_VERSION").exists() {
            let _ = std::fs::remove_dir_all(&data);
            run_captured(
                command(bin.join("initdb"), user)
                    .args([
                        "--auth=trust",
                        "--username=postgres",
                        "--encoding=UTF8",
                        "--no-locale",
                        "-D",
                    ])
                    .arg(&data)
                    .stdout(Stdio::null()),
            )?;
        }
        let mut server = command(bin.join("postgres"), user);
        server.arg("-D").arg(&data).arg("-k").arg(&socket_dir).args(["-p", &PORT.to_string()]);
        for setting in SETTINGS {
            server.args(["-c", setting]);
        }
        let log = std::fs::File::create(dir.join("server.log"))?;
        let child = server
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| fail!("could not start PostgreSQL: {e}"))?;
        let mut postgres = Postgres { child, socket_dir, port: PORT };
        let started = Instant::now();
        loop {
            let ready = command(bin.join("pg_isready"), None)
                .arg("-h")
                .arg(&postgres.socket_dir)
                .args(["-p", &PORT.to_string(), "-q"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return Ok(postgres);
            }
            if let Ok(Some(status)) = postgres.child.try_wait() {
                return Err(fail!(
                    "PostgreSQL stopped at start ({status}); see {}",
                    dir.join("server.log").display()
                ));
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(fail!(
                    "PostgreSQL did not accept connections within {START_TIMEOUT:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The `--pg-host`/`--pg-port` arguments of `sql_peers.py`.
    pub fn script_args(&self) -> Vec<String> {
        vec![
            "--pg-host".into(),
            self.socket_dir.display().to_string(),
            "--pg-port".into(),
            self.port.to_string(),
        ]
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGINT is PostgreSQL's fast shutdown.
        let _ = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}
